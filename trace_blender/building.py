"""Build animated SMPL characters, the scene camera and the shots in Blender from a TRACE result.

All numbers come from pure functions (core.rig, scene_math); this module only creates datablocks and
keys them in bulk (F-curves filled with keyframe_points.add + foreach_set, never keyframe_insert):
layered actions (slot + channelbag) where the running Blender has them (4.4+), else the legacy
`action.fcurves` (4.2/4.3), decided by feature detection. Everything is built into new datablocks
and removed again if anything fails, so a failed import leaves the file as it was. Used by the
add-on's operators and by `python -m trace_blender import` alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import bpy
import numpy as np
from bpy_extras import anim_utils

from . import core_bridge, scene_math
from .errors import ResultFileError, SceneBuildError, SmplModelLoadError, TraceBlenderError, UsageError

rig = core_bridge.rig
JOINT_NAMES: tuple[str, ...] = tuple(rig.SMPL_JOINT_NAMES)
PARENTS: tuple[int, ...] = tuple(rig.SMPL_PARENTS)

# Custom properties that mark what an import created (the panel lists people by them).
PROP_TRACK_ID = "trace_track_id"
PROP_PERSON = "trace_person"
PROP_RESULT = "trace_result"
PROP_ROLE = "trace_role"  # "armature" | "body" | "camera"
PROP_SHOT = "trace_shot"  # index of the shot an armature / camera belongs to
# Animated custom properties (0/1, constant interpolation): visible as curves in the Graph Editor.
PROP_CONTACT_LEFT = "trace_contact_left"
PROP_CONTACT_RIGHT = "trace_contact_right"
PROP_CAMERA_INTERPOLATED = "trace_camera_interpolated"
CONTACT_GROUP = "Foot contacts"
# keyframe_points "interpolation" enum values for foreach_set.
INTERPOLATION_CODES = {"CONSTANT": 0, "LINEAR": 1, "BEZIER": 2}
CAMERA_CLIP_START_M = 0.05
CAMERA_CLIP_END_M = 1000.0

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
    set_scene_timing: bool = True        # scene fps / frame range (and render size) from the video
    build_mesh: bool = True              # skinned body when an SMPL model is given
    world_alignment: np.ndarray | None = None  # explicit 4x4 for every shot (shared TRACE world -> Blender)
    apply_alignment: bool = True         # each shot's stored ground alignment; False: the fixed (x, z, -y)
    use_clean_motion: bool = True        # foot-skate-cleaned legs and hips when the result has them
    shots: Sequence[int] | None = None   # shot indices to import; None: every shot
    build_camera: bool = True            # one animated camera per shot when the result has a scene camera
    video_path: str | None = None        # camera background footage; None: the result's video.path


@dataclass
class ImportedPerson:
    track_id: int
    name: str
    armature: Any                       # bpy.types.Object (ARMATURE)
    body: Any | None                    # bpy.types.Object (MESH) or None
    collection: Any                     # bpy.types.Collection
    first_frame: int                    # scene frames with keys
    last_frame: int
    shot: int = 0


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
    shots: list[ImportedShot] = field(default_factory=list)                  # the imported shots
    result_shots: list[scene_math.ShotPlan] = field(default_factory=list)    # every shot of the result
    clip: Any | None = None             # bpy.types.MovieClip of the source video, when found


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
    shot: int = 0
    transform: np.ndarray | None = None  # [4, 4] the track's TRACE world -> Blender world
    contacts: np.ndarray | None = None   # [T, 2] float 0/1 (left, right foot)


# ------------------------------------------------------------------------------------------------ reading
def read_result_file(path: str | os.PathLike, official_fps: float | None = None) -> Any:
    """trace_format.npz.read_result with errors a user can act on (ResultFileError).

    official_fps: frame rate of an official trace2 result (those files store none; reader default 30).
    """
    file_path = Path(path)
    if not file_path.exists():
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


def _track_motion(track: Any, use_clean_motion: bool) -> tuple[np.ndarray, np.ndarray]:
    """(poses [T,24,3] with joint 0 = world orientation, hip centres [T,3]) in the track's TRACE world.

    The skate-cleaned body pose and hips when the result has them and use_clean_motion is on.
    """
    if hasattr(track, "world_poses"):
        return (np.asarray(track.world_poses(cleaned=use_clean_motion), np.float64),
                np.asarray(track.world_hip_centers(cleaned=use_clean_motion), np.float64))
    poses = np.array(track.poses, np.float64)
    if poses.ndim == 3 and poses.shape[1:] == (24, 3):
        poses[:, 0] = np.asarray(track.global_orient_world, np.float64)
    return poses, np.asarray(track.hip_center_world, np.float64)


def prepare_people(result: Any, model: Any | None, options: ImportOptions | None = None) -> list[_PersonData]:
    """Validate the tracks of the chosen shots and compute rest skeletons and world transforms.

    numpy only; nothing in Blender yet.
    """
    options = options or ImportOptions()
    tracks = list(getattr(result, "tracks", []) or [])
    if not tracks:
        raise ResultFileError("the result holds no tracked person: nothing to import")
    all_shots = {shot.index: shot for shot in scene_math.result_shots(result)}
    try:
        chosen = {shot.index: shot for shot in scene_math.select_shots(list(all_shots.values()), options.shots)}
    except scene_math.ShotSelectionError as exc:
        raise UsageError(str(exc)) from exc
    default_rest = None if model is not None else rig.load_default_skeleton()
    people = []
    for track in tracks:
        shot_index = int(getattr(track, "shot", 0))
        if shot_index not in all_shots:
            raise ResultFileError(f"track {track.track_id} names shot {shot_index}, but the result has shots "
                                  f"{sorted(all_shots)}; the result file is damaged")
        if shot_index not in chosen:
            continue
        frames = np.asarray(track.frames, np.int64).reshape(-1)
        count = frames.shape[0]
        if count == 0:
            raise ResultFileError(f"track {track.track_id} has no frames")
        poses_world, hips = _track_motion(track, options.use_clean_motion)
        expected = {"poses": (poses_world, (count, 24, 3)), "hip_center_world": (hips, (count, 3))}
        for key, (array, shape) in expected.items():
            if array.shape != shape:
                raise ResultFileError(f"track {track.track_id}: {key} has shape {array.shape}, expected {shape}")
            if not np.all(np.isfinite(array)):
                bad = np.flatnonzero(~np.all(np.isfinite(array.reshape(count, -1)), axis=1))
                raise ResultFileError(f"track {track.track_id}: {key} holds NaN/inf at video frames "
                                      f"{frames[bad[:5]].tolist()}; the result file is damaged")
        if np.any(np.diff(frames) <= 0) or frames[0] < 0:
            raise ResultFileError(f"track {track.track_id}: frame indices must be increasing and non-negative")
        try:
            base = scene_math.world_base(chosen[shot_index], options.apply_alignment, options.world_alignment)
            transform = scene_math.track_transform(base, getattr(track, "registration", None))
            contacts = scene_math.contact_values(getattr(track, "contacts", None), count)
        except ValueError as exc:  # not rigid (core.rig.FrameError), contacts of the wrong shape
            raise ResultFileError(f"track {track.track_id}: {exc}") from exc
        betas = np.asarray(track.betas, np.float64)
        mean_betas = betas.reshape(count, -1).mean(axis=0) if betas.size else np.zeros(10)
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
        people.append(_PersonData(int(track.track_id), frames, poses_world, hips, rest, vertices, mean_betas,
                                  shot=shot_index, transform=transform, contacts=contacts))
    if not people:
        raise UsageError(f"shot {', '.join(map(str, sorted(chosen)))} holds no tracked person: nothing to import "
                         "(choose other shots)")
    return people


# ------------------------------------------------------------------------------------------------ rollback
class _Created:
    """Datablocks (and timeline markers) made by one import, removed in reverse order if it fails."""

    def __init__(self, scene: Any = None) -> None:
        self.items: list[tuple[str, Any]] = []
        self.scene = scene

    def add(self, kind: str, datablock: Any) -> Any:
        self.items.append((kind, datablock))
        return datablock

    def remove_all(self) -> None:
        if bpy.context.mode != "OBJECT" and bpy.context.object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        for item_kind, marker in reversed(self.items):
            if item_kind == "markers" and self.scene is not None:
                try:
                    self.scene.timeline_markers.remove(marker)
                except (ReferenceError, RuntimeError):
                    pass
        order = ("objects", "meshes", "armatures", "cameras", "materials", "actions", "movieclips", "collections")
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


class _SceneSettings:
    """The scene settings an import may change (timing, render size, active camera), to restore on failure."""

    NAMES = ("render.fps", "render.fps_base", "frame_start", "frame_end", "render.resolution_x",
             "render.resolution_y", "render.resolution_percentage", "render.pixel_aspect_x",
             "render.pixel_aspect_y", "camera")

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.values = [getattr(*self._owner(name)) for name in self.NAMES]

    def _owner(self, name: str) -> tuple[Any, str]:
        """(object holding the setting, attribute name) for a dotted name such as 'render.fps'."""
        owner = self.scene
        *path, attribute = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        return owner, attribute

    def restore(self) -> None:
        for name, value in zip(self.NAMES, self.values):
            owner, attribute = self._owner(name)
            setattr(owner, attribute, value)


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
    """Create one collection per person (armature, optional skinned body) keyed from `result`, and one
    animated camera per shot (with the source video as its background) when the result has a scene camera.

    Shots: each is its own frame range (video frame i -> scene frame frame_start + i) with its own
    actions; with more than one shot, each gets a child collection and a timeline marker bound to its
    camera (so playback switches cameras at the cuts).
    """
    context = context or bpy.context
    options = options or ImportOptions()
    scene = context.scene
    model = load_smpl_model(options.smpl_model_path) if options.smpl_model_path else None
    people = prepare_people(result, model, options)
    all_shots = scene_math.result_shots(result)
    chosen = [shot for shot in scene_math.select_shots(all_shots, options.shots)
              if any(person.shot == shot.index for person in people)]
    source_name = Path(source_path).stem if source_path else "result"
    warnings = [str(n) for n in (getattr(result, "notes", None) or [])]
    warnings += _rest_skeleton_warnings(result, model, options)
    cameras_to_build = _camera_paths(result, chosen) if options.build_camera else {}
    if options.build_camera and not cameras_to_build:
        warnings.append("this result has no scene camera (written before result format 2, an official trace2 "
                        "result, or nobody was tracked): no camera was created")
    saved_settings = _SceneSettings(scene)
    created = _Created(scene)
    try:
        if context.mode != "OBJECT" and context.object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        top = created.add("collections", bpy.data.collections.new(unique_name(bpy.data.collections,
                                                                              f"TRACE {source_name}")))
        scene.collection.children.link(top)
        shot_collections = {}
        for shot in chosen:
            if len(all_shots) > 1:
                collection = created.add("collections", bpy.data.collections.new(
                    unique_name(bpy.data.collections, f"{source_name}_shot{shot.index}")))
                top.children.link(collection)
                collection[PROP_SHOT] = shot.index
                shot_collections[shot.index] = collection
            else:
                shot_collections[shot.index] = top
        imported = []
        for index, person in enumerate(people):
            colour = PERSON_COLOURS[index % len(PERSON_COLOURS)]
            imported.append(_build_person(context, person, model if options.build_mesh else None,
                                          shot_collections[person.shot], colour, person.transform,
                                          options.frame_start, source_name, created, source_path))
        clip = None
        if cameras_to_build:
            clip, clip_warnings = _load_video_clip(result, options, source_path, created)
            warnings += clip_warnings
        lens = scene_math.lens_settings(*_lens_inputs(result)) if cameras_to_build else None
        shots_imported = []
        for shot in chosen:
            first, last = shot.scene_range(options.frame_start)
            camera = None
            if shot.index in cameras_to_build:
                base = scene_math.world_base(shot, options.apply_alignment, options.world_alignment)
                camera = _build_camera(shot, cameras_to_build[shot.index], base, lens, clip, options.frame_start,
                                       shot_collections[shot.index], f"{source_name}_shot{shot.index}_camera",
                                       created, source_path)
            names = [p.armature.name for p in imported if p.shot == shot.index]
            applied = shot.aligned and options.apply_alignment and options.world_alignment is None
            shots_imported.append(ImportedShot(shot.index, shot.start, shot.stop, first, last, applied, names, camera))
        cameras = [s.camera for s in shots_imported if s.camera is not None]
        if cameras:
            scene.camera = cameras[0]
        if len(cameras) > 1:
            for shot in shots_imported:
                if shot.camera is not None:
                    marker = created.add("markers", scene.timeline_markers.new(f"shot {shot.index}",
                                                                               frame=shot.first_frame))
                    marker.camera = shot.camera
        frame_start, frame_end, fps = _scene_timing(result, people, options.frame_start,
                                                    None if options.shots is None else chosen)
        if options.set_scene_timing:
            if fps is not None:
                scene.render.fps, scene.render.fps_base = rig.blender_frame_rate(fps)
            scene.frame_start, scene.frame_end = frame_start, frame_end
            _set_render_size(scene, getattr(result, "video", None))
        for item in context.view_layer.objects.selected:
            item.select_set(False)
        for person in imported:
            person.armature.select_set(True)
        context.view_layer.objects.active = imported[0].armature
    except BaseException as exc:
        created.remove_all()
        saved_settings.restore()
        if isinstance(exc, TraceBlenderError) or not isinstance(exc, Exception):
            raise
        raise SceneBuildError(f"building the characters failed ({type(exc).__name__}: {exc}); "
                              "nothing was added to the scene") from exc
    return ImportSummary(imported, top, frame_start, frame_end, fps, warnings, shots_imported, all_shots, clip)


def _rest_skeleton_warnings(result: Any, model: Any | None, options: ImportOptions) -> list[str]:
    """The cleaned feet were computed on one rest skeleton; animating another can lift or sink them."""
    settings = ((getattr(result, "world_processing", None) or {}).get("settings") or {})
    used = settings.get("rest_skeleton")
    tracks = [t for t in getattr(result, "tracks", []) if getattr(t, "has_clean_motion", False)]
    if not used or not options.use_clean_motion or not tracks:
        return []
    if used == "default skeleton" and model is not None:
        return ["the feet were cleaned on the default skeleton, but this import uses the SMPL model's skeleton: "
                "planted feet may sit a few centimetres off the floor (import without the SMPL model, or run TRACE "
                "with it)"]
    if used != "default skeleton" and model is None:
        return ["the feet were cleaned on SMPL body skeletons, but this import uses the default skeleton: planted "
                "feet may sit a few centimetres off the floor (give the SMPL model file used for the run)"]
    return []


def _scene_timing(result: Any, people: list[_PersonData], frame_start: int,
                  shots: list[scene_math.ShotPlan] | None = None) -> tuple[int, int, float | None]:
    """(first, last scene frame, fps): the whole video, or the span of the chosen shots."""
    video = getattr(result, "video", None)
    fps = getattr(video, "fps", None)
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
    if shots:
        first = min(shot.start for shot in shots)
        last = max(shot.stop - 1 for shot in shots)
        return frame_start + first, frame_start + last, fps
    frame_count = _video_frame_count(video)
    last_video_frame = max(int(p.video_frames[-1]) for p in people)
    if frame_count is None or frame_count <= last_video_frame:
        frame_count = last_video_frame + 1
    return frame_start, frame_start + frame_count - 1, fps


def _set_render_size(scene: Any, video: Any) -> None:
    """Render resolution = the video's size (so the camera frame is the footage), when known."""
    width, height = int(getattr(video, "width", 0) or 0), int(getattr(video, "height", 0) or 0)
    if width <= 0 or height <= 0:
        return
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0


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
    armature[PROP_SHOT] = person.shot
    if source_path:
        armature[PROP_RESULT] = str(source_path)
    armature["trace_mean_betas"] = [float(b) for b in person.mean_betas]

    bone_rest = _build_bones(context, armature, person.rest_joints, bone_palette)
    animation = rig.armature_animation(person.rest_joints, person.poses_world, person.hip_center_world, bone_rest,
                                       transform, PARENTS)
    scene_frames = (person.video_frames + frame_start).astype(np.float64)
    key_armature(armature, animation.quaternions, animation.root_location, scene_frames, created,
                 contacts=person.contacts, action_name=f"{armature.name}_shot{person.shot}_motion")

    body = None
    if model is not None and person.rest_vertices is not None:
        body = _build_body(armature, collection, person, model, rgba, base, created)
    return ImportedPerson(person.track_id, base, armature, body, collection,
                          int(scene_frames[0]), int(scene_frames[-1]), person.shot)


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


def uses_layered_actions(action: Any) -> bool:
    """True where Blender keys through action slots and channelbags (4.4+); else the legacy action.fcurves."""
    return hasattr(action, "slots") and hasattr(anim_utils, "action_ensure_channelbag_for_slot")


def assign_action(id_object: Any, action: Any) -> Callable[[str, int, str], Any]:
    """Assign `action` to the object and return new_curve(data_path, index, group) -> F-curve.

    Layered actions (4.4+): one slot for this object and its channelbag. Legacy actions (4.2/4.3,
    detected by the missing `slots`): the action's own F-curves, grouped the same way.
    """
    animation_data = id_object.animation_data_create()
    if uses_layered_actions(action):
        slot = action.slots.new(id_type="OBJECT", name=id_object.name)
        animation_data.action = action
        animation_data.action_slot = slot
        channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        return lambda data_path, index, group: channelbag.fcurves.new(data_path, index=index, group_name=group)
    animation_data.action = action
    return lambda data_path, index, group: action.fcurves.new(data_path, index=index, action_group=group)


def fill_curve(curve: Any, frames: np.ndarray, values: np.ndarray, interpolation: str = "LINEAR") -> None:
    """All keys of one F-curve at once: frames [T], values [T] (keyframe_points.add + foreach_set)."""
    count = int(frames.shape[0])
    coordinates = np.empty(2 * count, np.float32)  # [2T] interleaved (frame, value)
    coordinates[0::2] = frames
    coordinates[1::2] = values
    curve.keyframe_points.add(count)
    curve.keyframe_points.foreach_set("co", coordinates)
    curve.keyframe_points.foreach_set("interpolation", np.full(count, INTERPOLATION_CODES[interpolation], np.int8))
    curve.update()


def _new_action(id_object: Any, name: str, created: _Created | None, action: Any = None
                ) -> Callable[[str, int, str], Any]:
    if action is None:
        action = bpy.data.actions.new(unique_name(bpy.data.actions, name))
        if created is not None:
            created.add("actions", action)
    return assign_action(id_object, action)


def _add_flag_property(id_object: Any, name: str, description: str) -> None:
    """An int custom property 0/1 on the object (animated with constant interpolation)."""
    id_object[name] = 0
    id_object.id_properties_ui(name).update(min=0, max=1, soft_min=0, soft_max=1, description=description)


def key_armature(armature: Any, quaternions: np.ndarray, root_location: np.ndarray, scene_frames: np.ndarray,
                 created: _Created | None = None, contacts: np.ndarray | None = None,
                 action_name: str | None = None, action: Any = None) -> Any:
    """Key rotations [T, 24, 4] (w, x, y, z) on every bone and root_location [T, 3] on the pelvis, in bulk.

    One action for this armature (a slot of a layered action on 4.4+); each F-curve gets all its keys
    at once, linear interpolation. contacts [T, 2] (0/1, left/right foot) become the animated custom
    properties trace_contact_left / trace_contact_right of the armature object (constant interpolation).
    action: an existing (empty) action to fill instead of a new one.
    """
    new_curve = _new_action(armature, action_name or f"{armature.name}_motion", created, action)
    frames = np.asarray(scene_frames, np.float32)  # [T]
    root_name = JOINT_NAMES[0]
    for axis in range(3):
        fill_curve(new_curve(f'pose.bones["{root_name}"].location', axis, root_name), frames, root_location[:, axis])
    for joint, name in enumerate(JOINT_NAMES):
        for component in range(4):
            fill_curve(new_curve(f'pose.bones["{name}"].rotation_quaternion', component, name), frames,
                       quaternions[:, joint, component])
    if contacts is not None:
        for side, prop in enumerate((PROP_CONTACT_LEFT, PROP_CONTACT_RIGHT)):
            foot = "left" if side == 0 else "right"
            _add_flag_property(armature, prop, f"1 where the {foot} foot touches the floor (TRACE foot contacts)")
            fill_curve(new_curve(f'["{prop}"]', 0, CONTACT_GROUP), frames, contacts[:, side], "CONSTANT")
    return armature.animation_data.action


# ------------------------------------------------------------------------------------------------ camera
def _camera_paths(result: Any, shots: list[scene_math.ShotPlan]) -> dict[int, Any]:
    """{shot index: the stored scene camera of that shot} for the shots that have one."""
    path = getattr(result, "scene_camera", None)
    if path is None:
        return {}
    found = {}
    for shot in shots:
        part = path.for_shot(shot.index)
        if part.num_frames:
            found[shot.index] = part
    return found


def _lens_inputs(result: Any) -> tuple[float | None, float | None, int, int]:
    camera, video = getattr(result, "camera", None), getattr(result, "video", None)
    return (getattr(camera, "fov_deg", None), getattr(camera, "focal_px", None),
            int(getattr(video, "width", 0) or 0), int(getattr(video, "height", 0) or 0))


def find_video(result: Any, options: ImportOptions, source_path: str | os.PathLike | None
               ) -> tuple[Path | None, list[Path]]:
    """The source video file: options.video_path, else the result's video.path, else a file of that name
    beside the result file. Returns (found or None, places looked at)."""
    stored = options.video_path or str(getattr(getattr(result, "video", None), "path", "") or "")
    if not stored:
        return None, []
    candidates = [Path(bpy.path.abspath(stored))]
    if source_path is not None:
        beside = Path(source_path).resolve().parent
        if not candidates[0].is_absolute():
            candidates.append(beside / stored)
        candidates.append(beside / Path(stored).name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate, candidates
    return None, candidates


def _load_video_clip(result: Any, options: ImportOptions, source_path: Any, created: _Created) -> tuple[Any, list[str]]:
    """The source video as a MovieClip starting at scene frame frame_start, or (None, [why not])."""
    video_file, looked = find_video(result, options, source_path)
    if video_file is None:
        where = ", ".join(str(p) for p in dict.fromkeys(looked)) or "(the result names no video)"
        return None, [f"source video not found at {where}: the camera has no background footage; pass the video "
                      "(python -m trace_blender import ... --video FILE) or put it beside the result"]
    try:
        clip = created.add("movieclips", bpy.data.movieclips.load(str(video_file), check_existing=False))
    except RuntimeError as exc:
        return None, [f"Blender cannot open the source video {video_file} ({exc}): the camera has no background"]
    clip.frame_start = options.frame_start   # clip frame 1 (video frame 0) at scene frame frame_start
    clip.frame_offset = 0
    warnings = []
    rotation = int(getattr(getattr(result, "video", None), "rotation_deg", 0) or 0)
    if rotation % 360:
        warnings.append(f"the source video carries a {rotation} degree rotation that TRACE applied before inference; "
                        "check that the camera background shows it upright")
    return clip, warnings


def _build_camera(shot: scene_math.ShotPlan, path: Any, base: np.ndarray, lens: scene_math.LensSettings,
                  clip: Any | None, frame_start: int, collection: Any, name: str, created: _Created,
                  source_path: Any) -> Any:
    """One camera object following the shot's scene camera (bulk keys), lens and footage background."""
    data = created.add("cameras", bpy.data.cameras.new(unique_name(bpy.data.cameras, name)))
    data.lens = lens.lens_mm
    data.sensor_fit = lens.sensor_fit
    data.sensor_width = lens.sensor_mm
    data.sensor_height = lens.sensor_mm
    data.clip_start, data.clip_end = CAMERA_CLIP_START_M, CAMERA_CLIP_END_M
    camera = created.add("objects", bpy.data.objects.new(unique_name(bpy.data.objects, name), data))
    collection.objects.link(camera)
    camera.rotation_mode = "QUATERNION"
    camera[PROP_ROLE] = "camera"
    camera[PROP_SHOT] = shot.index
    if source_path:
        camera[PROP_RESULT] = str(source_path)

    matrices = scene_math.camera_object_matrices(path.rotations, path.positions, base)  # [F, 4, 4]
    location, quaternions = scene_math.camera_keys(matrices)                            # [F, 3], [F, 4]
    camera.location = location[0].tolist()
    camera.rotation_quaternion = quaternions[0].tolist()
    frames = (np.asarray(path.frames, np.int64) + frame_start).astype(np.float32)       # [F]
    new_curve = _new_action(camera, f"{name}_motion", created)
    for axis in range(3):
        fill_curve(new_curve("location", axis, "Object Transforms"), frames, location[:, axis])
    for component in range(4):
        fill_curve(new_curve("rotation_quaternion", component, "Object Transforms"), frames, quaternions[:, component])
    _add_flag_property(camera, PROP_CAMERA_INTERPOLATED,
                       "1 where nobody was tracked and the camera pose was bridged from neighbouring frames")
    fill_curve(new_curve(f'["{PROP_CAMERA_INTERPOLATED}"]', 0, "TRACE"), frames,
               np.asarray(path.interpolated, np.float32), "CONSTANT")

    if clip is not None:
        background = data.background_images.new()
        background.source = "MOVIE_CLIP"
        background.clip = clip
        background.use_camera_clip = False
        background.alpha = 1.0
        background.display_depth = "BACK"
        background.frame_method = "STRETCH"
        data.show_background_images = True
    return camera


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


def imported_cameras(scene: Any) -> list[Any]:
    """Scene cameras created by TRACE imports in this scene, in name order."""
    return sorted((ob for ob in scene.objects if ob.type == "CAMERA" and ob.get(PROP_ROLE) == "camera"),
                  key=lambda ob: ob.name)


def bodies_of(armature: Any) -> list[Any]:
    return [child for child in armature.children if child.type == "MESH"]


def import_result_file(path: str | os.PathLike, context: Any = None,
                       options: ImportOptions | None = None) -> ImportSummary:
    """Read a result file (ours or official trace2) and build its people."""
    result = read_result_file(path)
    return import_result(result, context, options, source_path=path)
