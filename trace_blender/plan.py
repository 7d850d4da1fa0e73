"""What an import will build, decided before Blender is touched (numpy only, no bpy).

`plan_import(result, model, options)` picks the shots, computes every person's rest skeleton, world
transform and contact keys, the cameras to build, the scene timing and the warnings to show. The
`build` package then turns an ImportPlan into datablocks; everything here is tested without Blender.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from trace_format.schema import SceneCameraPath, ShotInfo, TraceResult, TrackResult
from trace_format.shape import rest_betas
from trace_format.skeleton import load_default_skeleton
from trace_format.smpl_file import SmplModelData

from . import frames
from .errors import ResultFileError, UsageError


@dataclass
class ImportOptions:
    """How to turn a result into characters."""

    smpl_model_path: str | None = None   # shapes + skinned mesh; None: default skeleton, no mesh
    frame_start: int = 1                 # video frame i -> scene frame frame_start + i
    set_scene_timing: bool = True        # scene fps / frame range (and render size) from the video
    build_mesh: bool = True              # skinned body: the SMPL mesh with a model, else the mannequin
    world_alignment: np.ndarray | None = None  # explicit 4x4 for every shot (shared TRACE world -> Blender)
    apply_alignment: bool = True         # each shot's stored ground alignment; False: the fixed (x, z, -y)
    use_clean_motion: bool = True        # the world stage's denoised, skate-cleaned motion when stored
    shots: Sequence[int] | None = None   # shot indices to import; None: every shot
    build_camera: bool = True            # one animated camera per shot when the result has a scene camera
    video_path: str | None = None        # camera background footage; None: the result's video.path
    replace_shots: bool = False          # replace what an earlier import of this result made for these shots


class ShotSelectionError(UsageError):
    """A requested shot does not exist in the result, or the shot list cannot be read."""


@dataclass(frozen=True)
class ShotPlan:
    """One shot of a result: half-open source frames [start, stop) and its world alignment."""

    index: int
    start: int
    stop: int
    aligned: bool
    alignment: np.ndarray   # [4,4] shared TRACE world -> Blender world as stored (the swap when not aligned)
    method: str             # how the alignment was found ("none" = fixed swap)
    floor_confidence: str = "high"   # "low": the floor fit is not to be trusted (core.world.ground)
    floor_note: str = ""

    def scene_range(self, frame_start: int) -> tuple[int, int]:
        """(first, last) scene frame of the shot, inclusive: video frame i -> frame_start + i."""
        return frame_start + self.start, frame_start + self.stop - 1


@dataclass
class PersonPlan:
    """Everything about one person computed before touching Blender."""

    track_id: int
    shot: int
    video_frames: np.ndarray          # [T] int64
    poses_world: np.ndarray           # [T, 24, 3] axis-angle, joint 0 = world orientation (TRACE world)
    hip_center_world: np.ndarray      # [T, 3]
    rest_joints: np.ndarray           # [24, 3] canonical
    rest_vertices: np.ndarray | None  # [V, 3] canonical (with an SMPL model)
    rest_betas: np.ndarray            # [B] the shape the skeleton was built from
    transform: np.ndarray             # [4, 4] the track's TRACE world -> Blender world
    contacts: np.ndarray | None = None   # [T, 2] float 0/1 (left, right foot)


@dataclass
class CameraPlan:
    """One shot's animated camera: its stored path and the shot's world base."""

    shot: int
    path: SceneCameraPath
    base: np.ndarray                  # [4, 4] shared TRACE world -> Blender world


@dataclass
class ImportPlan:
    people: list[PersonPlan]
    result_shots: list[ShotPlan]      # every shot of the result
    shots: list[ShotPlan]             # the shots that will be imported (chosen and holding people)
    cameras: list[CameraPlan]
    lens: frames.LensSettings | None  # None when no camera is built
    frame_start: int                  # scene range of the import and the video's frame rate
    frame_end: int
    fps: float | None
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ shots
def result_shots(result: TraceResult) -> list[ShotPlan]:
    """The shots of a result (one unaligned shot over all frames for v1 and official trace2 results)."""
    return [_shot_plan(shot) for shot in result.effective_shots()]


def _shot_plan(shot: ShotInfo) -> ShotPlan:
    info = (shot.alignment_info or {}) if shot.aligned else {}
    return ShotPlan(int(shot.index), int(shot.start), int(shot.stop), bool(shot.aligned),
                    frames.trace_to_blender_transform(shot.alignment_matrix if shot.aligned else None),
                    str(info.get("method", "none")), str(info.get("confidence") or "high"),
                    str(info.get("confidence_note") or ""))


def select_shots(shots: Sequence[ShotPlan], wanted: Iterable[int] | None) -> list[ShotPlan]:
    """The shots to import: all of them (wanted None / empty) or those named, in shot order."""
    if wanted is None:
        return list(shots)
    wanted = sorted({int(index) for index in wanted})
    if not wanted:
        return list(shots)
    known = {shot.index: shot for shot in shots}
    missing = [index for index in wanted if index not in known]
    if missing:
        raise ShotSelectionError(f"shot {', '.join(map(str, missing))} does not exist in this result; it has "
                                 f"shot{'s' if len(known) > 1 else ''} {', '.join(map(str, sorted(known)))}")
    return [known[index] for index in wanted]


def parse_shot_list(text: str) -> list[int] | None:
    """'0, 2' -> [0, 2]; '' or 'all' -> None (every shot). Raises ShotSelectionError on anything else."""
    cleaned = text.strip().lower()
    if cleaned in ("", "all"):
        return None
    try:
        values = [int(part) for part in cleaned.replace(";", ",").split(",") if part.strip()]
    except ValueError as exc:
        raise ShotSelectionError(f"shots must be comma-separated shot numbers such as '0,2' (or empty for all), "
                                 f"got {text!r}") from exc
    if any(value < 0 for value in values):
        raise ShotSelectionError(f"shot numbers start at 0, got {text!r}")
    return values or None


def world_base(shot: ShotPlan, apply_alignment: bool, override: np.ndarray | None = None) -> np.ndarray:
    """Rigid [4,4] shared TRACE world -> Blender world for one shot.

    override (an explicit matrix) wins; else the shot's ground alignment when it has one and
    apply_alignment is on; else the fixed swap (x, z, -y).
    """
    if override is not None:
        return frames.trace_to_blender_transform(override)
    if apply_alignment and shot.aligned:
        return np.array(shot.alignment)
    return frames.trace_to_blender_transform()


def track_transform(base: np.ndarray, registration: np.ndarray) -> np.ndarray:
    """Rigid [4,4] mapping a track's own TRACE world into Blender: base @ registration."""
    return frames.trace_to_blender_transform(base @ np.asarray(registration, np.float64))


def contact_values(contacts: np.ndarray | None) -> np.ndarray | None:
    """Contacts [T,2] bool (left, right) -> float key values [T,2] (0 / 1), or None when absent."""
    return None if contacts is None else np.asarray(contacts).astype(bool).astype(np.float32)


# ------------------------------------------------------------------------------------------------ people
def plan_person(track: TrackResult, shot: ShotPlan, model: SmplModelData | None, options: ImportOptions,
                default_rest: np.ndarray | None) -> PersonPlan:
    """Rest skeleton (and vertices), motion and world transform of one validated track."""
    betas = rest_betas(track)
    vertices = None
    if model is not None:
        fitted = np.zeros(model.num_betas, np.float64)
        count = min(model.num_betas, betas.shape[0])
        fitted[:count] = betas[:count]
        rest = np.asarray(model.joints_for_betas(fitted), np.float64)
        vertices = np.asarray(model.vertices_for_betas(fitted), np.float64)
        # Stand the rest pose on the ground plane (y = 0): a pure offset, the animation is unchanged.
        ground = np.array([0.0, vertices[:, 1].min(), 0.0])
        rest, vertices = rest - ground, vertices - ground
    else:
        rest = default_rest
    base = world_base(shot, options.apply_alignment, options.world_alignment)
    return PersonPlan(
        track_id=int(track.track_id), shot=shot.index, video_frames=np.asarray(track.frames, np.int64),
        poses_world=np.asarray(track.world_poses(cleaned=options.use_clean_motion), np.float64),
        hip_center_world=np.asarray(track.world_hip_centers(cleaned=options.use_clean_motion), np.float64),
        rest_joints=rest, rest_vertices=vertices, rest_betas=betas,
        transform=track_transform(base, track.registration), contacts=contact_values(track.contacts))


def plan_import(result: TraceResult, model: SmplModelData | None = None,
                options: ImportOptions | None = None) -> ImportPlan:
    """Everything an import builds, from a result that `read_result` has validated."""
    options = options or ImportOptions()
    if not result.tracks:
        raise ResultFileError("the result holds no tracked person: nothing to import")
    all_shots = result_shots(result)
    chosen = {shot.index: shot for shot in select_shots(all_shots, options.shots)}
    if options.world_alignment is not None:
        try:
            frames.trace_to_blender_transform(options.world_alignment)
        except frames.FrameError as exc:
            raise UsageError(f"world alignment: {exc}") from exc
    default_rest = None if model is not None else load_default_skeleton()
    people = [plan_person(track, chosen[track.shot], model, options, default_rest)
              for track in result.tracks if track.shot in chosen]
    if not people:
        raise UsageError(f"shot {', '.join(map(str, sorted(chosen)))} holds no tracked person: nothing to import "
                         "(choose other shots)")
    with_people = {person.shot for person in people}
    shots = [shot for shot in chosen.values() if shot.index in with_people]

    warnings = [str(note) for note in result.notes]
    warnings += rest_skeleton_warnings(result, model, options)
    cameras = []
    if options.build_camera:
        cameras = camera_plans(result, shots, options)
        if not cameras:
            warnings.append("this result has no scene camera (written before result format 2, an official trace2 "
                            "result, or nobody was tracked): no camera was created")
    lens = None
    if cameras:
        lens = frames.lens_settings(result.camera.fov_deg, result.camera.focal_px, result.video.width,
                                    result.video.height)
    first, last, fps = scene_timing(result, people, options.frame_start,
                                    None if options.shots is None else shots)
    return ImportPlan(people, all_shots, shots, cameras, lens, first, last, fps, warnings)


def camera_plans(result: TraceResult, shots: Sequence[ShotPlan], options: ImportOptions) -> list[CameraPlan]:
    """One camera per shot that has a stored scene-camera path."""
    if result.scene_camera is None:
        return []
    plans = []
    for shot in shots:
        path = result.scene_camera.for_shot(shot.index)
        if path.num_frames:
            plans.append(CameraPlan(shot.index, path, world_base(shot, options.apply_alignment,
                                                                 options.world_alignment)))
    return plans


def rest_skeleton_warnings(result: TraceResult, model: SmplModelData | None, options: ImportOptions) -> list[str]:
    """The cleaned feet were computed on one rest skeleton; animating another can lift or sink them."""
    settings = (result.world_processing or {}).get("settings") or {}
    used = settings.get("rest_skeleton")
    cleaned = [track for track in result.tracks if track.has_clean_motion]
    if not used or not options.use_clean_motion or not cleaned:
        return []
    if used == "default skeleton" and model is not None:
        return ["the feet were cleaned on the default skeleton, but this import uses the SMPL model's skeleton: "
                "planted feet may sit a few centimetres off the floor (import without the SMPL model, or run TRACE "
                "with it)"]
    if used != "default skeleton" and model is None:
        return ["the feet were cleaned on SMPL body skeletons, but this import uses the default skeleton: planted "
                "feet may sit a few centimetres off the floor (give the SMPL model file used for the run)"]
    return []


def scene_timing(result: TraceResult, people: Sequence[PersonPlan], frame_start: int,
                 shots: Sequence[ShotPlan] | None = None) -> tuple[int, int, float | None]:
    """(first, last scene frame, fps): the whole video, or the span of the chosen shots."""
    fps = float(result.video.fps)
    fps = fps if np.isfinite(fps) and fps > 0 else None
    if shots:
        first = min(shot.start for shot in shots)
        last = max(shot.stop - 1 for shot in shots)
        return frame_start + first, frame_start + last, fps
    last_video_frame = max(int(person.video_frames[-1]) for person in people)
    frame_count = max(int(result.video.frame_count), last_video_frame + 1)
    return frame_start, frame_start + frame_count - 1, fps
