"""Build animated SMPL characters in a Blender scene from a TRACE result.

All numbers come from pure functions (core.rig); this module only creates datablocks and keys them
in bulk (layered actions: slot + channelbag F-curves filled with foreach_set, never
keyframe_insert). Everything is built into new datablocks and removed again if anything fails, so a
failed import leaves the file as it was. Used by the add-on's operators and by
`python -m trace_blender import` alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy_extras import anim_utils

from . import core_bridge
from .errors import ResultFileError, SceneBuildError, SmplModelLoadError, TraceBlenderError

rig = core_bridge.rig
JOINT_NAMES: tuple[str, ...] = tuple(rig.SMPL_JOINT_NAMES)
PARENTS: tuple[int, ...] = tuple(rig.SMPL_PARENTS)

# Custom properties that mark what an import created (the panel lists people by them).
PROP_TRACK_ID = "trace_track_id"
PROP_PERSON = "trace_person"
PROP_RESULT = "trace_result"
PROP_ROLE = "trace_role"  # "armature" | "body"

# One colour per person, cycling: (RGBA viewport colour, collection colour tag, bone colour palette).
PERSON_COLOURS: tuple[tuple[tuple[float, float, float, float], str, str], ...] = (
    ((0.90, 0.30, 0.25, 1.0), "COLOR_01", "THEME01"),
    ((0.95, 0.60, 0.15, 1.0), "COLOR_02", "THEME09"),
    ((0.90, 0.85, 0.20, 1.0), "COLOR_03", "THEME13"),
    ((0.30, 0.75, 0.35, 1.0), "COLOR_04", "THEME03"),
    ((0.25, 0.50, 0.90, 1.0), "COLOR_05", "THEME04"),
    ((0.65, 0.35, 0.85, 1.0), "COLOR_06", "THEME06"),
    ((0.70, 0.45, 0.30, 1.0), "COLOR_07", "THEME08"),
    ((0.55, 0.55, 0.60, 1.0), "COLOR_08", "THEME10"),
)


@dataclass
class ImportOptions:
    """How to turn a result into characters."""

    smpl_model_path: str | None = None   # shapes + skinned mesh; None: default skeleton, no mesh
    frame_start: int = 1                 # video frame i -> scene frame frame_start + i
    set_scene_timing: bool = True        # scene fps (fps / fps_base) and frame range from the video
    build_mesh: bool = True              # skinned body when an SMPL model is given
    world_alignment: np.ndarray | None = None  # 4x4 TRACE->Blender; None: the fixed (x, z, -y) mapping


@dataclass
class ImportedPerson:
    track_id: int
    name: str
    armature: Any                       # bpy.types.Object (ARMATURE)
    body: Any | None                    # bpy.types.Object (MESH) or None
    collection: Any                     # bpy.types.Collection
    first_frame: int                    # scene frames with keys
    last_frame: int


@dataclass
class ImportSummary:
    people: list[ImportedPerson]
    collection: Any
    frame_start: int
    frame_end: int
    fps: float | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class _PersonData:
    """Everything about one person computed before touching Blender."""

    track_id: int
    video_frames: np.ndarray          # [T] int64
    poses_world: np.ndarray           # [T, 24, 3] axis-angle, joint 0 = world orientation (TRACE world)
    hip_center_world: np.ndarray      # [T, 3]
    rest_joints: np.ndarray           # [24, 3] canonical
    rest_vertices: np.ndarray | None  # [V, 3] canonical
    mean_betas: np.ndarray            # [B]


# ------------------------------------------------------------------------------------------------ reading
def read_result_file(path: str | os.PathLike, official_fps: float | None = None) -> Any:
    """core.result_file.read_result with errors a user can act on (ResultFileError).

    official_fps: frame rate of an official trace2 result (those files store none; reader default 30).
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise ResultFileError(f"result file not found: {file_path}")
    reader = core_bridge.result_file()
    try:
        return reader.read_result(file_path, official_fps=official_fps)
    except TraceBlenderError:
        raise
    except Exception as exc:  # every reader failure becomes one clear, chained error
        raise ResultFileError(f"cannot read the TRACE result {file_path}: {exc}") from exc


def load_smpl_model(path: str | os.PathLike) -> Any:
    reader = core_bridge.smpl_model_file()
    try:
        return reader.load_smpl_model_file(path, compute_sha256=False)
    except reader.SmplModelError as exc:
        raise SmplModelLoadError(str(exc)) from exc


def _fit_betas(betas: np.ndarray, count: int) -> np.ndarray:
    """Pad with zeros / cut to the model's number of shape coefficients."""
    out = np.zeros(count, np.float64)
    n = min(count, betas.shape[0])
    out[:n] = betas[:n]
    return out


def prepare_people(result: Any, model: Any | None) -> list[_PersonData]:
    """Validate the tracks and compute rest skeletons (numpy only; nothing in Blender yet)."""
    tracks = list(getattr(result, "tracks", []) or [])
    if not tracks:
        raise ResultFileError("the result holds no tracked person: nothing to import")
    default_rest = None if model is not None else rig.load_default_skeleton()
    people = []
    for track in tracks:
        frames = np.asarray(track.frames, np.int64).reshape(-1)
        poses = np.asarray(track.poses, np.float64)
        orient = np.asarray(track.global_orient_world, np.float64)
        hips = np.asarray(track.hip_center_world, np.float64)
        betas = np.asarray(track.betas, np.float64)
        count = frames.shape[0]
        if count == 0:
            raise ResultFileError(f"track {track.track_id} has no frames")
        expected = {"poses": (poses, (count, 24, 3)), "global_orient_world": (orient, (count, 3)),
                    "hip_center_world": (hips, (count, 3))}
        for key, (array, shape) in expected.items():
            if array.shape != shape:
                raise ResultFileError(f"track {track.track_id}: {key} has shape {array.shape}, expected {shape}")
            if not np.all(np.isfinite(array)):
                bad = np.flatnonzero(~np.all(np.isfinite(array.reshape(count, -1)), axis=1))
                raise ResultFileError(f"track {track.track_id}: {key} holds NaN/inf at video frames "
                                      f"{frames[bad[:5]].tolist()}; the result file is damaged")
        if np.any(np.diff(frames) <= 0) or frames[0] < 0:
            raise ResultFileError(f"track {track.track_id}: frame indices must be increasing and non-negative")
        mean_betas = betas.reshape(count, -1).mean(axis=0) if betas.size else np.zeros(10)
        poses_world = poses.copy()
        poses_world[:, 0] = orient
        vertices = None
        if model is not None:
            fitted = _fit_betas(mean_betas, model.num_betas)
            rest = np.asarray(model.joints_for_betas(fitted), np.float64)
            vertices = np.asarray(model.vertices_for_betas(fitted), np.float64)
            # Stand the rest pose on the ground plane (y = 0): a pure offset, the animation is unchanged.
            ground = np.array([0.0, vertices[:, 1].min(), 0.0])
            rest, vertices = rest - ground, vertices - ground
        else:
            rest = default_rest
        people.append(_PersonData(int(track.track_id), frames, poses_world, hips, rest, vertices, mean_betas))
    return people


# ------------------------------------------------------------------------------------------------ rollback
class _Created:
    """Datablocks made by one import, removed in reverse order if the import fails."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def add(self, kind: str, datablock: Any) -> Any:
        self.items.append((kind, datablock))
        return datablock

    def remove_all(self) -> None:
        if bpy.context.mode != "OBJECT" and bpy.context.object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        order = ("objects", "meshes", "armatures", "materials", "actions", "collections")
        for kind in order:
            store = getattr(bpy.data, kind)
            for item_kind, datablock in reversed(self.items):
                if item_kind != kind:
                    continue
                try:
                    store.remove(datablock)
                except ReferenceError:  # already freed together with its owner
                    pass
        self.items.clear()


def unique_name(store: Any, base: str) -> str:
    """`base`, or `base_2`, `base_3`, ... so that an import never takes over an existing datablock."""
    if store.get(base) is None:
        return base
    index = 2
    while store.get(f"{base}_{index}") is not None:
        index += 1
    return f"{base}_{index}"


# ------------------------------------------------------------------------------------------------ building
def import_result(result: Any, context: Any = None, options: ImportOptions | None = None,
                  source_path: str | os.PathLike | None = None) -> ImportSummary:
    """Create one collection per person (armature, optional skinned body) keyed from `result`."""
    context = context or bpy.context
    options = options or ImportOptions()
    scene = context.scene
    model = load_smpl_model(options.smpl_model_path) if options.smpl_model_path else None
    people = prepare_people(result, model)
    transform = rig.trace_to_blender_transform(options.world_alignment)
    source_name = Path(source_path).stem if source_path else "result"
    warnings = [str(n) for n in (getattr(result, "notes", None) or [])]
    saved_timing = (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end)
    created = _Created()
    try:
        if context.mode != "OBJECT" and context.object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        top = created.add("collections", bpy.data.collections.new(unique_name(bpy.data.collections,
                                                                              f"TRACE {source_name}")))
        scene.collection.children.link(top)
        imported = []
        for index, person in enumerate(people):
            colour = PERSON_COLOURS[index % len(PERSON_COLOURS)]
            imported.append(_build_person(context, person, model if options.build_mesh else None, top, colour,
                                          transform, options.frame_start, source_name, created, source_path))
        frame_start, frame_end, fps = _scene_timing(result, people, options.frame_start)
        if options.set_scene_timing:
            if fps is not None:
                scene.render.fps, scene.render.fps_base = rig.blender_frame_rate(fps)
            scene.frame_start, scene.frame_end = frame_start, frame_end
        for item in context.view_layer.objects.selected:
            item.select_set(False)
        for person in imported:
            person.armature.select_set(True)
        context.view_layer.objects.active = imported[0].armature
    except BaseException as exc:
        created.remove_all()
        scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end = saved_timing
        if isinstance(exc, TraceBlenderError) or not isinstance(exc, Exception):
            raise
        raise SceneBuildError(f"building the characters failed ({type(exc).__name__}: {exc}); "
                              "nothing was added to the scene") from exc
    return ImportSummary(imported, top, frame_start, frame_end, fps, warnings)


def _scene_timing(result: Any, people: list[_PersonData], frame_start: int) -> tuple[int, int, float | None]:
    video = getattr(result, "video", None)
    fps = getattr(video, "fps", None)
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
    frame_count = _video_frame_count(video)
    last_video_frame = max(int(p.video_frames[-1]) for p in people)
    if frame_count is None or frame_count <= last_video_frame:
        frame_count = last_video_frame + 1
    return frame_start, frame_start + frame_count - 1, fps


def _video_frame_count(video: Any) -> int | None:
    for name in ("num_frames", "frame_count", "total_frames"):
        value = getattr(video, name, None)
        if value is not None:
            return int(value)
    return None


def _build_person(context: Any, person: _PersonData, model: Any | None, parent_collection: Any,
                  colour: tuple, transform: np.ndarray, frame_start: int, source_name: str,
                  created: _Created, source_path: Any) -> ImportedPerson:
    rgba, colour_tag, bone_palette = colour
    base = f"{source_name}_person{person.track_id}"
    collection = created.add("collections", bpy.data.collections.new(unique_name(bpy.data.collections, base)))
    collection.color_tag = colour_tag
    parent_collection.children.link(collection)

    armature_name = unique_name(bpy.data.objects, base)
    armature_data = created.add("armatures", bpy.data.armatures.new(unique_name(bpy.data.armatures, armature_name)))
    armature = created.add("objects", bpy.data.objects.new(armature_name, armature_data))
    collection.objects.link(armature)
    armature.color = rgba
    armature.show_in_front = True
    armature[PROP_TRACK_ID] = person.track_id
    armature[PROP_PERSON] = base
    armature[PROP_ROLE] = "armature"
    if source_path:
        armature[PROP_RESULT] = str(source_path)
    armature["trace_mean_betas"] = [float(b) for b in person.mean_betas]

    bone_rest = _build_bones(context, armature, person.rest_joints, bone_palette)
    animation = rig.armature_animation(person.rest_joints, person.poses_world, person.hip_center_world, bone_rest,
                                       transform, PARENTS)
    scene_frames = (person.video_frames + frame_start).astype(np.float64)
    key_armature(armature, animation.quaternions, animation.root_location, scene_frames, created)

    body = None
    if model is not None and person.rest_vertices is not None:
        body = _build_body(armature, collection, person, model, rgba, base, created)
    return ImportedPerson(person.track_id, base, armature, body, collection,
                          int(scene_frames[0]), int(scene_frames[-1]))


def _build_bones(context: Any, armature: Any, rest_joints: np.ndarray, bone_palette: str) -> np.ndarray:
    """Edit-mode bones at the rest joints (Blender rest frame); returns their rest rotations [24, 3, 3]."""
    heads = rig.canonical_to_blender_rest(rest_joints)
    tails = rig.canonical_to_blender_rest(rig.bone_tails(rest_joints, PARENTS))
    view_layer = context.view_layer
    view_layer.objects.active = armature
    armature.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = armature.data.edit_bones
        made = []
        for index, name in enumerate(JOINT_NAMES):
            bone = edit_bones.new(name)
            bone.head = heads[index].tolist()
            bone.tail = tails[index].tolist()
            bone.roll = 0.0
            bone.use_deform = True
            bone.use_connect = False
            made.append(bone)
        for index, parent in enumerate(PARENTS):
            if parent >= 0:
                made[index].parent = made[parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    bones = armature.data.bones
    for name in JOINT_NAMES:
        bones[name].color.palette = bone_palette
        armature.pose.bones[name].rotation_mode = "QUATERNION"
    return np.array([np.array(bones[name].matrix_local)[:3, :3] for name in JOINT_NAMES])


def key_armature(armature: Any, quaternions: np.ndarray, root_location: np.ndarray, scene_frames: np.ndarray,
                 created: _Created | None = None) -> Any:
    """Key rotations [T, 24, 4] (w, x, y, z) on every bone and root_location [T, 3] on the pelvis, in bulk.

    One layered action with one slot for this armature; each F-curve gets all its keys with
    keyframe_points.add + foreach_set('co' / 'interpolation'), linear interpolation.
    """
    action = bpy.data.actions.new(unique_name(bpy.data.actions, f"{armature.name}_motion"))
    if created is not None:
        created.add("actions", action)
    slot = action.slots.new(id_type="OBJECT", name=armature.name)
    animation_data = armature.animation_data_create()
    animation_data.action = action
    animation_data.action_slot = slot
    channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
    frames = np.asarray(scene_frames, np.float32)
    count = frames.shape[0]
    interpolation = np.full(count, 1, np.int8)  # LINEAR
    coordinates = np.empty(2 * count, np.float32)
    coordinates[0::2] = frames

    def add_curve(data_path: str, index: int, group: str, values: np.ndarray) -> None:
        curve = channelbag.fcurves.new(data_path, index=index, group_name=group)
        curve.keyframe_points.add(count)
        coordinates[1::2] = values
        curve.keyframe_points.foreach_set("co", coordinates)
        curve.keyframe_points.foreach_set("interpolation", interpolation)
        curve.update()

    root_name = JOINT_NAMES[0]
    for axis in range(3):
        add_curve(f'pose.bones["{root_name}"].location', axis, root_name, root_location[:, axis])
    for joint, name in enumerate(JOINT_NAMES):
        for component in range(4):
            add_curve(f'pose.bones["{name}"].rotation_quaternion', component, name, quaternions[:, joint, component])
    return action


def _build_body(armature: Any, collection: Any, person: _PersonData, model: Any, rgba: tuple, base: str,
                created: _Created) -> Any:
    """Shaped template mesh in the rest frame, 24 vertex groups, Armature modifier, parented."""
    vertices = rig.canonical_to_blender_rest(person.rest_vertices)  # [V, 3]
    faces = np.asarray(model.faces, np.int64)
    weights = np.asarray(model.weights, np.float64)  # [V, 24]
    mesh_name = unique_name(bpy.data.meshes, f"{base}_body")
    mesh = created.add("meshes", bpy.data.meshes.new(mesh_name))
    mesh.vertices.add(vertices.shape[0])
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(faces.shape[0])
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    if mesh.validate(verbose=False):
        raise SceneBuildError(f"the SMPL model's faces do not form a valid mesh ({model.source_path})")
    mesh.polygons.foreach_set("use_smooth", np.ones(faces.shape[0], bool))

    material = created.add("materials", bpy.data.materials.new(unique_name(bpy.data.materials, f"{base}_skin")))
    material.diffuse_color = rgba
    mesh.materials.append(material)

    body = created.add("objects", bpy.data.objects.new(unique_name(bpy.data.objects, f"{base}_body"), mesh))
    collection.objects.link(body)
    body.parent = armature
    body.color = rgba
    body[PROP_TRACK_ID] = person.track_id
    body[PROP_PERSON] = base
    body[PROP_ROLE] = "body"
    for joint, name in enumerate(JOINT_NAMES):
        group = body.vertex_groups.new(name=name)
        column = weights[:, joint]
        for vertex in np.flatnonzero(column > 0.0).tolist():
            group.add([vertex], float(column[vertex]), "REPLACE")
    modifier = body.modifiers.new(name="Armature", type="ARMATURE")
    modifier.object = armature
    return body


# ------------------------------------------------------------------------------------------------ queries
def imported_people(scene: Any) -> list[Any]:
    """Armature objects of people imported by TRACE in this scene, in name order."""
    return sorted((ob for ob in scene.objects if ob.type == "ARMATURE" and PROP_TRACK_ID in ob.keys()),
                  key=lambda ob: ob.name)


def bodies_of(armature: Any) -> list[Any]:
    return [child for child in armature.children if child.type == "MESH"]


def import_result_file(path: str | os.PathLike, context: Any = None,
                       options: ImportOptions | None = None) -> ImportSummary:
    """Read a result file (ours or official trace2) and build its people."""
    result = read_result_file(path)
    return import_result(result, context, options, source_path=path)
