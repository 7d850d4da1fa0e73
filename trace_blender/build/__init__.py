"""Build animated characters, the scene cameras and the shots in Blender from a TRACE result.

`plan.plan_import` decides every number (numpy only); this package only creates datablocks and keys
them in bulk (`keys`), recording each one so that a failed import is removed again and leaves the
file as it was (`rollback`). Used by the add-on's operators and by `python -m trace_blender import`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from trace_format.npz import read_result
from trace_format.schema import ResultFormatError, TraceResult
from trace_format.smpl_file import SmplModelData, SmplModelError, load_smpl_model_file

from .. import advice, frames
from ..errors import ResultFileError, SceneBuildError, SmplModelLoadError, TraceBlenderError
from ..plan import ImportOptions, ImportPlan, ShotPlan, plan_import
from . import keys, replace, tags
from .armature import PERSON_COLOURS, ImportedPerson, build_people
from .body import build_body
from .camera import build_camera, load_video_clip
from .rollback import CreatedDatablocks, SavedSceneSettings, unique_name
from .tags import bodies_of, imported_people

__all__ = ["ImportOptions", "ImportSummary", "ImportedPerson", "ImportedShot", "bodies_of", "import_result",
           "import_result_file", "imported_people", "load_smpl_model", "read_result_file"]


@dataclass
class ImportedShot:
    index: int
    start: int                          # video frames [start, stop)
    stop: int
    first_frame: int                    # scene frames, inclusive
    last_frame: int
    aligned: bool                       # the ground alignment was applied (floor at z = 0)
    people: list[str]                   # armature names
    camera: Any | None                  # bpy.types.Object (CAMERA) or None (no scene camera stored)


@dataclass
class ImportSummary:
    people: list[ImportedPerson]
    collection: Any
    frame_start: int
    frame_end: int
    fps: float | None
    warnings: list[str] = field(default_factory=list)
    shots: list[ImportedShot] = field(default_factory=list)      # the imported shots
    result_shots: list[ShotPlan] = field(default_factory=list)   # every shot of the result
    clip: Any | None = None             # bpy.types.MovieClip of the source video, when found


def read_result_file(path: str | os.PathLike, official_fps: float | None = None) -> TraceResult:
    """read_result with errors a user can act on (ResultFileError).

    official_fps: frame rate of an official trace2 result (those files store none; reader default 30).
    """
    file_path = Path(path)
    if not file_path.exists():       # a FIFO, device or folder is named as such by the reader
        raise ResultFileError(f"result file not found: {file_path}")
    try:
        return read_result(file_path, official_fps=official_fps)
    except (ResultFormatError, OSError, ValueError) as exc:
        raise ResultFileError(advice.unreadable_result(str(file_path), str(exc))) from exc


def load_smpl_model(path: str | os.PathLike) -> SmplModelData:
    try:
        return load_smpl_model_file(path, compute_sha256=False)
    except SmplModelError as exc:
        raise SmplModelLoadError(str(exc)) from exc


def import_result_file(path: str | os.PathLike, context: Any = None,
                       options: ImportOptions | None = None) -> ImportSummary:
    """Read a result file (ours or official trace2) and build its people."""
    return import_result(read_result_file(path), context, options, source_path=path)


def import_result(result: TraceResult, context: Any = None, options: ImportOptions | None = None,
                  source_path: str | os.PathLike | None = None) -> ImportSummary:
    """Create one collection per person (armature, optional skinned body) keyed from `result`, and one
    animated camera per shot (with the source video as its background) when the result has a scene camera.

    Shots: each is its own frame range (video frame i -> scene frame frame_start + i) with its own
    actions; with more than one shot, each gets a child collection and a timeline marker bound to its
    camera (so playback switches cameras at the cuts).
    """
    context = context or bpy.context
    options = options or ImportOptions()
    model = load_smpl_model(options.smpl_model_path) if options.smpl_model_path else None
    plan = plan_import(result, model, options)
    saved_settings = SavedSceneSettings(context.scene)
    created = CreatedDatablocks(context.scene)
    earlier: list = []
    if options.replace_shots and source_path is not None:
        earlier = replace.earlier_import(context.scene, str(source_path), [shot.index for shot in plan.shots])
    home = replace.result_collection(context.scene, earlier)
    renamed = replace.set_aside(earlier)
    try:
        summary = _build(context, result, plan, model if options.build_mesh else None, options, source_path, created)
    except BaseException as exc:
        created.remove_all()
        replace.restore_names(renamed)
        saved_settings.restore()
        if isinstance(exc, TraceBlenderError) or not isinstance(exc, Exception):
            raise
        raise SceneBuildError(f"building the characters failed ({type(exc).__name__}: {exc}); "
                              "nothing was added to the scene") from exc
    if earlier:
        marked_shots = replace.remove_earlier(context.scene, earlier)
        for shot in summary.shots:   # the camera switch at the cut, bound to the new camera
            if shot.index in marked_shots and shot.camera is not None and not any(
                    m.camera == shot.camera for m in context.scene.timeline_markers):
                context.scene.timeline_markers.new(f"shot {shot.index}", frame=shot.first_frame).camera = shot.camera
        if home is not None and replace.still_exists(home) and home != summary.collection:
            # The result's collection still holds its other shots: the new shots go in there too.
            for child in list(summary.collection.children):
                home.children.link(child)
                summary.collection.children.unlink(child)
            for ob in list(summary.collection.objects):
                home.objects.link(ob)
                summary.collection.objects.unlink(ob)
            bpy.data.collections.remove(summary.collection)
            summary.collection = home
        for datablock in [summary.collection] + list(summary.collection.children):
            numbered = re.fullmatch(r"(.+)_\d+", datablock.name)   # "TRACE clip_2" -> "TRACE clip" once free
            if numbered and bpy.data.collections.get(numbered.group(1)) is None:
                datablock.name = numbered.group(1)
    return summary


def _build(context: Any, result: TraceResult, plan: ImportPlan, model: SmplModelData | None,
           options: ImportOptions, source_path: str | os.PathLike | None,
           created: CreatedDatablocks) -> ImportSummary:
    scene = context.scene
    source_name = Path(source_path).stem if source_path else "result"
    source_text = str(source_path) if source_path else None
    warnings = list(plan.warnings)
    if context.mode != "OBJECT" and context.object is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
    top = created.add("collections", bpy.data.collections.new(unique_name(bpy.data.collections,
                                                                          f"TRACE {source_name}")))
    scene.collection.children.link(top)
    shot_collections = {}
    for shot in plan.shots:
        if len(plan.result_shots) > 1:
            collection = created.add("collections", bpy.data.collections.new(
                unique_name(bpy.data.collections, f"{source_name}_shot{shot.index}")))
            top.children.link(collection)
            collection[tags.PROP_SHOT] = shot.index
            shot_collections[shot.index] = collection
        else:
            shot_collections[shot.index] = top

    imported = []
    colours = [PERSON_COLOURS[index % len(PERSON_COLOURS)] for index in range(len(plan.people))]
    built = build_people(context, [(person, shot_collections[person.shot], colour)
                                   for person, colour in zip(plan.people, colours)],
                         options.frame_start, source_name, created, source_text)
    for person, colour, (armature, collection, base) in zip(plan.people, colours, built):
        body = None
        if options.build_mesh:
            body = build_body(armature, collection, person, model, colour, base, created)
        first = int(person.video_frames[0]) + options.frame_start
        last = int(person.video_frames[-1]) + options.frame_start
        if body is not None:
            keys.hide_outside(body, first, last)   # like its armature: only during the person's frames
        imported.append(ImportedPerson(person.track_id, base, armature, body, collection, first, last, person.shot))

    clip = None
    if plan.cameras:
        clip, clip_warnings = load_video_clip(result, options.video_path, options.frame_start, source_path, created)
        warnings += clip_warnings
    cameras = {camera_plan.shot: build_camera(camera_plan, plan.lens, clip, options.frame_start,
                                              shot_collections[camera_plan.shot],
                                              f"{source_name}_shot{camera_plan.shot}_camera", created, source_text)
               for camera_plan in plan.cameras}
    shots_imported = []
    for shot in plan.shots:
        first, last = shot.scene_range(options.frame_start)
        names = [p.armature.name for p in imported if p.shot == shot.index]
        applied = shot.aligned and options.apply_alignment and options.world_alignment is None
        shots_imported.append(ImportedShot(shot.index, shot.start, shot.stop, first, last, applied, names,
                                           cameras.get(shot.index)))
    if cameras:
        scene.camera = next(iter(cameras.values()))
    if len(cameras) > 1:
        for shot in shots_imported:
            if shot.camera is not None:
                marker = created.add("markers", scene.timeline_markers.new(f"shot {shot.index}",
                                                                           frame=shot.first_frame))
                marker.camera = shot.camera
    if options.set_scene_timing:
        if plan.fps is not None:
            scene.render.fps, scene.render.fps_base = frames.blender_frame_rate(plan.fps)
        scene.frame_start, scene.frame_end = plan.frame_start, plan.frame_end
        _set_render_size(scene, result)
    for item in context.view_layer.objects.selected:
        item.select_set(False)
    for person in imported:
        person.armature.select_set(True)
    context.view_layer.objects.active = imported[0].armature
    return ImportSummary(imported, top, plan.frame_start, plan.frame_end, plan.fps, warnings, shots_imported,
                         plan.result_shots, clip)


def _set_render_size(scene: Any, result: TraceResult) -> None:
    """Render resolution = the video's size (so the camera frame is the footage), when known."""
    width, height = int(result.video.width or 0), int(result.video.height or 0)
    if width <= 0 or height <= 0:
        return
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
