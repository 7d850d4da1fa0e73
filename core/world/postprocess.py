"""World post-processing of a TRACE result: shots, one camera, a level floor and planted feet.

`apply_world_processing(result)` turns a result as TRACE produced it (every track in its own TRACE
world, one long sequence) into a result-file version 2 (`trace_format`) that a user can animate
in, following the recipe of docs/world.md:

1. **Shots**: the tracks are split at the hard cuts so that no track spans one. The piece in the
   earliest shot keeps the track id; every later piece gets a fresh id above all existing ids
   (`world_processing["split_tracks"]` says which track each piece came from).
2. **Per shot, one camera** (`scene_camera.estimate_scene_camera`): fused over people by
   confidence, smoothed; it also gives each track the rigid registration of its TRACE world into
   the shot's shared world (TRACE starts a late track in the camera frame where it appeared).
3. **Per shot, the floor** (`ground.estimate_ground`) from everybody's feet, with the bodies' up
   axes as the prior; one rigid transform per shot (floor z = 0, +Z up) shared by every person and
   the camera. With `align=False`, or when no floor can be fitted, the shot keeps the fixed
   (x, z, -y) mapping and the reason is recorded (`alignment_info`, notes): never silently.
4. **Per track, contacts and skate cleanup** (`contacts.clean_foot_skate`) in the floor-aligned world.
   The cleaned hip centres are mapped back into the track's own TRACE world, so the same
   `TraceResult.blender_transform(track)` (shot alignment @ registration) places raw and cleaned
   motion. The cleanup needs a floor even when the output is not aligned: it then uses the fitted
   floor internally and stores TRACE-world results all the same.

Body joints come from forward kinematics on a rest skeleton: the SMPL body of the track's mean
shape when the caller passes `rest_joints_for_track` (see `smpl_rest_body`), else the default
skeleton. The raw TRACE-world arrays of every track are copied unchanged (the raw world stays
recoverable). numpy only, like the rest of core.world.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from trace_format.rotations import (axis_angle_to_matrix, axis_angle_to_quaternion, make_quaternions_continuous,
                                    matrix_to_axis_angle)
from trace_format.schema import (SceneCameraPath, ShotInfo, TraceResult, TrackResult, default_alignment_matrix,
                                 json_safe)
from trace_format.shape import rest_betas
from trace_format.skeleton import load_default_skeleton
from trace_format.validate import validate_result

from .denoise import (DenoiseSettings, TrackMotion, denoise_tracks, estimate_position_noise, estimate_rotation_noise,
                      motion_noise)
from .contacts import (ContactSettings, SkateCleanupSettings, clean_foot_skate, detect_foot_contacts, foot_sliding,
                       pose_to_joints)
from .ground import GroundAlignment, GroundFitError, GroundFitSettings, PersonJoints, estimate_ground, foot_joint_heights
from .scene_camera import (CameraEvidence, SceneCamera, SceneCameraError, SceneCameraSettings, apply_world_transform,
                           estimate_scene_camera)
from ..shots import shot_segments

__all__ = [
    "WorldProcessingError",
    "WorldProcessingSettings",
    "RestBody",
    "smpl_rest_body",
    "apply_world_processing",
    "WorldSummary",
]

# Per-frame arrays TRACE produced; copied unchanged into the pieces (the v2 world fields are recomputed).
_RAW_TRACK_FIELDS = ("frames", "times", "poses", "global_orient_world", "betas", "hip_center_cam", "hip_center_world",
                     "confidence", "observed", "center_2d", "joints_cam", "joints_world", "vertices_cam",
                     "vertices_world", "keypoints_2d", "box_2d")

# Frames per forward-kinematics call when only joints are needed (bounds FK's temporaries).
_FK_BLOCK_FRAMES = 4096

# A rest body: canonical rest joints [24,3] and, for an SMPL body, its rest vertices [V,3] (they locate the sole).
RestBody = tuple[np.ndarray, np.ndarray | None]


class WorldProcessingError(ValueError):
    """The world post-processing cannot run on what was given (bad rest skeleton, bad cut frames)."""


@dataclass(frozen=True)
class WorldProcessingSettings:
    """Parameters of every step (defaults: docs/world.md)."""

    ground: GroundFitSettings = field(default_factory=GroundFitSettings)
    camera: SceneCameraSettings = field(default_factory=SceneCameraSettings)
    contacts: ContactSettings = field(default_factory=ContactSettings)
    cleanup: SkateCleanupSettings = field(default_factory=SkateCleanupSettings)
    denoising: DenoiseSettings = field(default_factory=DenoiseSettings)
    # Weight (x confidence) of frames TRACE infilled from its memory (observed False) as evidence for
    # the camera and the floor: 0 = only detected frames count.
    infilled_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def smpl_rest_body(model: Any) -> Callable[[TrackResult], RestBody]:
    """`rest_joints_for_track` for an SMPL model (trace_format.smpl_file.SmplModelData or alike).

    Each track gets the rest joints and vertices of its rest shape (trace_format.shape.rest_betas,
    the same shape the Blender add-on builds the character from).
    """
    def rest_body(track: TrackResult) -> RestBody:
        betas = rest_betas(track)                                                          # [10]
        return np.asarray(model.joints_for_betas(betas), np.float64), np.asarray(model.vertices_for_betas(betas), np.float64)
    return rest_body


@dataclass
class _Body:
    """A track's rest skeleton and the rest heights of its foot joints above the sole."""

    rest_joints: np.ndarray   # [24,3] canonical
    foot_heights: np.ndarray  # [4] (ground.FOOT_JOINTS order)


@dataclass
class _TrackOutcome:
    """What the processing of one shot gives one of its tracks."""

    registration: np.ndarray = field(default_factory=lambda: np.eye(4))   # [4,4]
    contacts: np.ndarray | None = None                                     # [T,2] bool
    clean_body_pose: np.ndarray | None = None                              # [T,23,3]
    clean_hip_center_world: np.ndarray | None = None                       # [T,3] track's TRACE world
    clean_global_orient_world: np.ndarray | None = None                    # [T,3] track's TRACE world
    metrics: dict = field(default_factory=dict)


def apply_world_processing(result: TraceResult, *, align: bool = True, foot_cleanup: bool = True,
                           denoise: bool = True, cut_frames: Sequence[int] = (),
                           rest_joints_for_track: Callable[[TrackResult], np.ndarray | RestBody] | None = None,
                           settings: WorldProcessingSettings | None = None,
                           on_progress: Callable[[int, int], None] | None = None) -> TraceResult:
    """A new version-2 result with shots, registrations, per-shot alignment, camera and feet.

    result: as TRACE produced it (any version; an already processed result is processed again from
    its raw arrays, keeping its shot boundaries). align: fit the floor and put it at z = 0 with +Z up
    (else the fixed (x, z, -y) mapping). foot_cleanup: detect contacts and remove foot skate (stored as
    clean_* arrays; the raw motion stays). Contacts are stored whenever align or foot_cleanup is on.
    cut_frames: first frames of new shots (core.shots.ShotCutDetector.cut_frames).
    rest_joints_for_track(track) -> rest joints [24,3] standing on y = 0, or (joints [24,3], rest
    vertices [V,3]) for an SMPL body (`smpl_rest_body(model)`); default: the default skeleton.
    on_progress(done, total): called as person-frames are finished (for a progress bar).
    """
    s = settings or WorldProcessingSettings()
    validate_result(result)
    notes: list[str] = []
    start, stop = result.processed_range()
    cuts = _shot_cuts(result, cut_frames, start, stop, notes)
    bounds = [start, *cuts, stop]
    shot_ranges = list(zip(bounds[:-1], bounds[1:]))
    pieces, split_records = _split_tracks(result.tracks, cuts)
    default_rest = load_default_skeleton() if rest_joints_for_track is None else None
    fps = float(result.video.fps)

    shots: list[ShotInfo] = []
    camera_parts: list[SceneCameraPath] = []
    outcomes: dict[int, _TrackOutcome] = {}
    shot_metrics: list[dict] = []
    total_rows = sum(piece.num_frames for piece in pieces)
    done_rows = 0

    def advance(rows: int) -> None:
        nonlocal done_rows
        done_rows += rows
        if on_progress is not None:
            on_progress(done_rows, total_rows)

    for index, (shot_start, shot_stop) in enumerate(shot_ranges):
        members = [piece for piece in pieces if piece.shot == index]
        bodies = [_rest_body(piece, rest_joints_for_track, default_rest) for piece in members]
        shot, camera, shot_outcomes, metrics = _process_shot(index, shot_start, shot_stop, members, bodies, align,
                                                             foot_cleanup, denoise, s, fps, notes, advance)
        shots.append(shot)
        shot_metrics.append(metrics)
        if camera is not None:
            camera_parts.append(camera)
        outcomes.update({piece.track_id: outcome for piece, outcome in zip(members, shot_outcomes)})

    tracks = []
    for piece in sorted(pieces, key=lambda p: p.shot):  # stable: original order within a shot
        outcome = outcomes[piece.track_id]
        tracks.append(dataclasses.replace(
            piece, registration=outcome.registration, contacts=outcome.contacts,
            clean_body_pose=outcome.clean_body_pose, clean_hip_center_world=outcome.clean_hip_center_world,
            clean_global_orient_world=outcome.clean_global_orient_world))
    track_metrics = [outcomes[track.track_id].metrics for track in tracks]

    world_processing = json_safe({
        # "clean_feet" is the result format's key for foot cleanup (kept: files written earlier use it)
        "settings": {"align": bool(align), "clean_feet": bool(foot_cleanup), "denoise": bool(denoise), "cut_frames": cuts,
                     "rest_skeleton": "default skeleton" if rest_joints_for_track is None else "given per track",
                     **s.to_dict()},
        "split_tracks": split_records,
        "metrics": {"foot_sliding": _overall_sliding(track_metrics, foot_cleanup or denoise), "tracks": track_metrics,
                    "shots": shot_metrics},
    })
    processed = TraceResult(
        tracks=tracks, video=result.video, camera=result.camera, settings=dict(result.settings),
        software=dict(result.software), weights_sha256=dict(result.weights_sha256), smpl_model=result.smpl_model,
        source_format=result.source_format, notes=list(result.notes) + notes,
        frames_processed=result.frames_processed, created_utc=None, shots=shots,
        scene_camera=_concatenate_cameras(camera_parts), world_processing=world_processing)
    validate_result(processed)
    return processed


# ---------------------------------------------------------------------------------------------
# Shots and track pieces
# ---------------------------------------------------------------------------------------------


def _shot_cuts(result: TraceResult, cut_frames: Sequence[int], start: int, stop: int, notes: list[str]) -> list[int]:
    """Sorted cut frames strictly inside [start, stop): the given ones plus the result's own shot starts."""
    try:
        given = {int(frame) for frame in cut_frames}
    except (TypeError, ValueError) as exc:
        raise WorldProcessingError(f"cut_frames must be frame numbers, got {cut_frames!r}") from exc
    existing = {shot.start for shot in result.shots[1:]}
    outside = sorted(frame for frame in given if not start < frame < stop)
    if outside:
        notes.append(f"shot cuts at frames {outside[:10]} ignored: outside the processed frames {start}..{stop - 1} "
                     "(a cut at the first frame starts nothing new)")
    return sorted(frame for frame in given | existing if start < frame < stop)


def _split_tracks(tracks: Sequence[TrackResult], cuts: list[int]) -> tuple[list[TrackResult], list[dict]]:
    """Raw copies of the tracks cut at the shot boundaries, each with its shot index.

    The piece in the earliest shot keeps the id; later pieces get new ids above every existing id.
    Returns (pieces, records of the renamed pieces {track_id, source_track_id, shot}).
    """
    next_id = max((track.track_id for track in tracks), default=-1) + 1
    cut_array = np.asarray(cuts, dtype=np.int64)
    pieces, records = [], []
    for track in tracks:
        for position, rows in enumerate(shot_segments(track.frames, cuts)):
            shot = int(np.searchsorted(cut_array, track.frames[rows[0]], side="right"))
            values = {name: (None if getattr(track, name) is None else np.array(getattr(track, name)[rows]))
                      for name in _RAW_TRACK_FIELDS}
            track_id = track.track_id
            if position:
                track_id, next_id = next_id, next_id + 1
                records.append({"track_id": track_id, "source_track_id": track.track_id, "shot": shot})
            pieces.append(TrackResult(track_id=track_id, shot=shot, **values))
    return pieces, records


def _rest_body(track: TrackResult, rest_joints_for_track: Callable | None, default_rest: np.ndarray | None) -> _Body:
    """The track's rest skeleton and foot-joint heights (from the caller's body or the default skeleton)."""
    if rest_joints_for_track is None:
        joints, vertices = default_rest, None
    else:
        given = rest_joints_for_track(track)
        joints, vertices = given if isinstance(given, tuple) else (given, None)
    joints = np.asarray(joints, np.float64)
    if joints.shape != (24, 3) or not np.all(np.isfinite(joints)):
        raise WorldProcessingError(f"rest_joints_for_track gave rest joints of shape {joints.shape} for track "
                                   f"{track.track_id}; it must return finite [24,3] canonical SMPL joints")
    try:
        heights = foot_joint_heights(joints, vertices)
    except GroundFitError as exc:
        raise WorldProcessingError(
            f"track {track.track_id}: {exc}. For an SMPL body return (joints, rest vertices), e.g. with "
            "core.world.postprocess.smpl_rest_body(model)") from exc
    return _Body(joints, heights)


# ---------------------------------------------------------------------------------------------
# One shot
# ---------------------------------------------------------------------------------------------


def _evidence_weights(track: TrackResult, infilled_weight: float) -> np.ndarray:
    """[T] confidence x (1 for detected frames, infilled_weight for frames infilled from memory)."""
    weights = track.confidence.astype(np.float64) * np.where(track.observed, 1.0, float(infilled_weight))
    return np.clip(np.nan_to_num(weights), 0.0, None)


def _strict_times(track: TrackResult, fps: float) -> np.ndarray:
    """[T] seconds, strictly increasing (container timestamps can repeat: then frames / fps)."""
    times = track.times.astype(np.float64)
    if track.num_frames > 1 and np.any(np.diff(times) <= 0):
        return track.frames.astype(np.float64) / fps
    return times


def _process_shot(index: int, start: int, stop: int, tracks: list[TrackResult], bodies: list[_Body], align: bool,
                  foot_cleanup: bool, denoise: bool, s: WorldProcessingSettings, fps: float, notes: list[str],
                  advance: Callable[[int], None]) -> tuple[ShotInfo, SceneCameraPath | None, list[_TrackOutcome], dict]:
    """Camera, registrations, floor, contacts and cleanup of one shot (frames start <= f < stop).

    advance(rows) is told each time the person-frames of a track are finished."""
    where = f"shot {index} (frames {start}..{stop - 1})"
    outcomes = [_TrackOutcome(metrics={"track_id": track.track_id, "shot": index, "frames": track.num_frames})
                for track in tracks]
    metrics: dict[str, Any] = {"shot": index, "start": start, "stop": stop, "people": len(tracks)}
    if not tracks:
        reason = f"no person tracked in {where}: no camera, no floor (fixed axis swap)"
        notes.append(reason)
        metrics.update(camera=None, ground=None)
        return _unaligned_shot(index, start, stop, reason), None, outcomes, metrics

    weights = [_evidence_weights(track, s.infilled_weight) for track in tracks]
    times = [_strict_times(track, fps) for track in tracks]

    # 1. One camera for the shot; registrations put every track into one shared world.
    camera_path, camera = None, None
    try:
        evidence = [CameraEvidence(track.frames, track.poses[:, 0], track.global_orient_world, track.hip_center_cam,
                                   track.hip_center_world, weights=weight) for track, weight in zip(tracks, weights)]
        camera = estimate_scene_camera(evidence, s.camera, frame_range=(start, stop))
        for outcome, registration in zip(outcomes, camera.registrations):
            outcome.registration = np.asarray(registration, np.float64)
        camera_path = SceneCameraPath(frames=camera.frames, rotations=camera.rotations, positions=camera.positions,
                                      interpolated=camera.interpolated, shots=np.full(len(camera.frames), index))
        metrics["camera"] = _camera_metrics(camera)
    except SceneCameraError as exc:
        notes.append(f"no scene camera for {where}: {exc}; its tracks keep their own TRACE worlds")
        metrics["camera"] = {"error": str(exc)}

    registered = [apply_world_transform(outcome.registration, track.global_orient_world, track.hip_center_world)[:2]
                  for outcome, track in zip(outcomes, tracks)]      # (orient [T,3], hips [T,3]) in the shot world
    raw_registered = list(registered)
    body_poses = [track.poses for track in tracks]                   # [T,24,3]; joints 1-23 are used

    # 1b. Temporal denoising of every track in the shot world (root, orientation, joint rotations).
    if denoise:
        motions = [TrackMotion(frames=track.frames, global_orient=orient, body_pose=track.poses[:, 1:], hip_centers=hips,
                               weights=weight, rays=_camera_rays(track, orient, outcome.registration))
                   for track, weight, outcome, (orient, hips) in zip(tracks, weights, outcomes, registered)]
        smoothed = denoise_tracks(motions, fps, s.denoising)
        for outcome, result in zip(outcomes, smoothed):
            outcome.metrics["denoise"] = json_safe(result.summary())
            if not result.denoised:
                notes.append(f"{where}, track {outcome.metrics['track_id']}: {result.note}")
        registered = [(result.global_orient, result.hip_centers) for result in smoothed]
        body_poses = [np.concatenate([track.poses[:, :1], result.body_pose], axis=1)
                      for track, result in zip(tracks, smoothed)]
        noise = [result.motion_noise_m() for result in smoothed]
        del smoothed, motions   # the denoised body poses now live in body_poses only (memory: one copy per track)
    else:
        noise = [_raw_motion_noise(track, hips) for track, (_, hips) in zip(tracks, registered)]
    for outcome, value, track, (_, hips), (_, raw_hips) in zip(outcomes, noise, tracks, registered, raw_registered):
        outcome.metrics["motion_noise_m"] = value
        outcome.metrics["root_jitter_before"] = _root_jitter(np.asarray(raw_hips, np.float64), track.frames, fps)
        outcome.metrics["root_jitter_after"] = _root_jitter(np.asarray(hips, np.float64), track.frames, fps)

    # 2. The floor from everybody's feet (also needed for the cleanup when the output is not aligned).
    ground: GroundAlignment | None = None
    ground_error = ""
    if align or foot_cleanup:
        people = []
        for track, body, weight, time, (orient, hips), poses in zip(tracks, bodies, weights, times, registered,
                                                                    body_poses):
            joints = _joints_in_blocks(body.rest_joints, orient, poses, hips)                    # [T,24,3]
            people.append(PersonJoints(joints, time, weights=weight, foot_heights=body.foot_heights,
                                       up_axes=axis_angle_to_matrix(orient)[:, :, 1]))
        try:
            ground = estimate_ground(people, s.ground)
        except GroundFitError as exc:
            ground_error = str(exc)
            notes.append(f"no floor found in {where}: {exc}")
        del people   # the joints of everybody are only needed for the fit
        metrics["ground"] = None if ground is None else _ground_dict(ground)
        if ground is not None:
            metrics["ground"]["used_for"] = "alignment and contacts" if align else "contacts only (alignment off)"
    else:
        metrics["ground"] = None

    if align and ground is not None:
        shot = ShotInfo(index=index, start=start, stop=stop, aligned=True, alignment_matrix=ground.matrix,
                        alignment_info=_ground_dict(ground))
        if ground.method != "plane_fit":
            notes.append(f"{where}: {ground.note}")
        elif ground.confidence != "high":
            notes.append(f"{where}: floor fit has low confidence: {ground.confidence_note}")
    elif align:
        shot = _unaligned_shot(index, start, stop, f"ground alignment failed, fixed axis swap kept: {ground_error}")
    else:
        shot = _unaligned_shot(index, start, stop, "ground alignment turned off: fixed axis swap (x, z, -y)")

    # 3. Contacts and skate cleanup per track, in the floor-aligned world.
    if not (align or foot_cleanup):
        if denoise:   # denoised motion only
            for track, outcome, (orient, hips), poses in zip(tracks, outcomes, registered, body_poses):
                _store_motion(outcome, orient, poses[:, 1:], hips, np.eye(4))
        advance(sum(track.num_frames for track in tracks))
    else:
        for track, body, time, outcome, (orient, hips), poses, raw in zip(tracks, bodies, times, outcomes, registered,
                                                                          body_poses, raw_registered):
            _feet(track, body, time, orient, poses, hips, ground, foot_cleanup, denoise, s, outcome,
                  outcome.metrics["motion_noise_m"], raw)
            advance(track.num_frames)
        if ground is None:
            notes.append(f"{where}: without a floor no foot contacts were detected"
                         + (" and the feet were not cleaned" if foot_cleanup else ""))
    return shot, camera_path, outcomes, metrics


def _joints_in_blocks(rest_joints: np.ndarray, orient: np.ndarray, poses: np.ndarray, hips: np.ndarray,
                      block: int = _FK_BLOCK_FRAMES) -> np.ndarray:
    """FK joints [T,24,3] of poses [T,24,3] with root orientation orient [T,3], placed at hips [T,3].

    Computed `block` frames at a time: FK's temporaries (rotation matrices of every joint) then stay
    a few tens of MB however long the track is.
    """
    count = len(orient)
    joints = np.empty((count, 24, 3))
    for begin in range(0, count, block):
        part = slice(begin, begin + block)
        joints[part] = pose_to_joints(rest_joints, _with_root(orient[part], poses[part]), hips[part])[1]
    return joints


def _with_root(orient: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """[T,24,3] pose with joint 0 replaced by a world orientation [T,3]."""
    return np.concatenate([np.asarray(orient, np.float64)[:, None], np.asarray(poses, np.float64)[:, 1:]], axis=1)


def _raw_motion_noise(track: TrackResult, hips: np.ndarray) -> float:
    """Per-frame position noise (metres, RMS per axis) of a track that is not denoised."""
    if track.num_frames < 4 or not np.all(np.isfinite(hips)):
        return 0.0
    rotations = np.concatenate([track.global_orient_world[:, None], track.poses[:, 1:]], axis=1)
    quats = make_quaternions_continuous(axis_angle_to_quaternion(rotations.astype(np.float64)), axis=0)
    along, across = estimate_position_noise(np.asarray(hips, np.float64), track.frames, None)
    return motion_noise(along, across, float(np.degrees(2.0 * np.median(estimate_rotation_noise(quats, track.frames)))))


def _camera_rays(track: TrackResult, orient: np.ndarray, registration: np.ndarray) -> np.ndarray:
    """[T,3] unit camera rays towards the person in the shot world, from the track's own camera pose.

    R_world_cam = R_world_body R_cam_body^T (per frame); ray = R_world_cam hip_cam / |hip_cam|.
    """
    world_cam = axis_angle_to_matrix(orient) @ np.swapaxes(axis_angle_to_matrix(track.poses[:, 0]), -1, -2)
    direction = np.asarray(track.hip_center_cam, np.float64)
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    direction = np.where(norm > 1e-9, direction / np.where(norm > 1e-9, norm, 1.0), [0.0, 0.0, 1.0])
    return np.einsum("tij,tj->ti", world_cam, direction)


def _store_motion(outcome: _TrackOutcome, orient: np.ndarray, body_pose: np.ndarray, hips: np.ndarray,
                  world_to_shot: np.ndarray) -> None:
    """Store a world motion (orient, hips in the world of `world_to_shot @ registration`) in the
    track's own TRACE world."""
    to_track_world = np.linalg.inv(world_to_shot @ outcome.registration)
    rotation = to_track_world[:3, :3]
    outcome.clean_body_pose = np.asarray(body_pose, np.float64)
    outcome.clean_hip_center_world = np.asarray(hips, np.float64) @ rotation.T + to_track_world[:3, 3]
    outcome.clean_global_orient_world = matrix_to_axis_angle(rotation @ axis_angle_to_matrix(orient))


def _feet(track: TrackResult, body: _Body, times: np.ndarray, orient: np.ndarray, poses: np.ndarray, hips: np.ndarray,
          ground: GroundAlignment | None, foot_cleanup: bool, denoise: bool, s: WorldProcessingSettings,
          outcome: _TrackOutcome, noise_m: float, raw: tuple[np.ndarray, np.ndarray]) -> None:
    """Contacts and the final motion (denoised and/or skate-cleaned), stored in the track's TRACE world.

    orient, poses [T,24,3] (joints 1-23 used), hips: the (denoised) motion in the shot world; raw:
    (orient, hips) of the raw motion in the shot world. Foot sliding "before" is that of the raw
    motion, "after" that of the stored motion, both on the detected contacts.
    """
    count = track.num_frames
    if ground is None:
        outcome.contacts = np.zeros((count, 2), bool)
        if foot_cleanup or denoise:   # nothing to clean against: the motion stays as it is (denoised or raw)
            _store_motion(outcome, orient, poses[:, 1:], hips, np.eye(4))
        outcome.metrics.update(contact_frames=[0, 0], sliding_before_m=None, sliding_after_m=None, sliding_pairs=0,
                               cleaned=False)
        return
    floor_orient, floor_hips, _ = apply_world_transform(ground.matrix, orient, hips)      # [T,3], [T,3]
    floor_poses = _with_root(floor_orient, poses)                                         # [T,24,3]
    if foot_cleanup:
        cleaned = clean_foot_skate(body.rest_joints, floor_poses, floor_hips, times, foot_heights=body.foot_heights,
                                   contact_settings=s.contacts, settings=s.cleanup, noise_m=noise_m)
        contacts = cleaned.contacts
        _store_motion(outcome, cleaned.poses[:, 0], cleaned.poses[:, 1:], cleaned.hip_centers, ground.matrix)
        after = cleaned.sliding_after_m
        outcome.metrics.update(unreached_ik_frames=cleaned.unreached_frames, cleaned=True)
    else:
        _, joints = pose_to_joints(body.rest_joints, floor_poses, floor_hips)
        contacts = detect_foot_contacts(joints, times, body.foot_heights, s.contacts, noise_m)
        after = foot_sliding(joints, contacts) if denoise else None
        if denoise:
            _store_motion(outcome, floor_orient, poses[:, 1:], floor_hips, ground.matrix)
        outcome.metrics.update(cleaned=False)
    raw_orient, raw_hips, _ = apply_world_transform(ground.matrix, *raw)
    _, raw_joints = pose_to_joints(body.rest_joints, _with_root(raw_orient, track.poses), raw_hips)
    before = foot_sliding(raw_joints, contacts)
    outcome.contacts = contacts
    pairs = int(2 * np.count_nonzero(contacts[1:] & contacts[:-1]))   # (foot, frame pair) x ankle and toe
    outcome.metrics.update(contact_frames=contacts.sum(axis=0).tolist(), sliding_before_m=before,
                           sliding_after_m=after, sliding_pairs=pairs)


def _unaligned_shot(index: int, start: int, stop: int, reason: str) -> ShotInfo:
    return ShotInfo(index=index, start=start, stop=stop, aligned=False, alignment_matrix=default_alignment_matrix(),
                    alignment_info={"method": "none", "note": reason})


def _ground_dict(ground: GroundAlignment) -> dict:
    """GroundAlignment.to_dict() without the matrix (stored on its own), JSON-safe."""
    info = ground.to_dict()
    info.pop("matrix", None)
    return json_safe(info)


def _camera_metrics(camera: SceneCamera) -> dict:
    """How well people agreed on the camera (spread = residual of the fusion) and how much was bridged."""
    def summary(values: np.ndarray) -> tuple[float | None, float | None]:
        finite = values[np.isfinite(values)]
        return (float(np.median(finite)), float(finite.max())) if finite.size else (None, None)

    median_deg, max_deg = summary(camera.spread_deg)
    median_m, max_m = summary(camera.spread_m)
    return {"frames": int(len(camera.frames)), "observed_frames": int(camera.observed.sum()),
            "interpolated_frames": int(camera.interpolated.sum()), "max_witnesses": int(camera.witnesses.max()),
            "spread_deg_median": median_deg, "spread_deg_max": max_deg,
            "spread_m_median": median_m, "spread_m_max": max_m}


def _overall_sliding(track_metrics: list[dict], changed: bool) -> dict:
    """Foot sliding over all tracks: per-track means weighted by their (frame pair, joint) counts."""
    def pooled(key: str) -> float | None:
        values = [(m[key], m["sliding_pairs"]) for m in track_metrics
                  if m.get(key) is not None and m.get("sliding_pairs") and math.isfinite(m[key])]
        total = sum(pairs for _, pairs in values)
        return sum(value * pairs for value, pairs in values) / total if total else None

    before = pooled("sliding_before_m")
    after = pooled("sliding_after_m") if changed else None
    reduction = None if before is None or after is None or before <= 0 else 1.0 - after / before
    return {"metric": "mean per-frame displacement of ankle and toe joints of feet in contact at both frames (m)",
            "before_m": before, "after_m": after, "reduction": reduction}


def _concatenate_cameras(parts: list[SceneCameraPath]) -> SceneCameraPath | None:
    if not parts:
        return None
    return SceneCameraPath(**{name: np.concatenate([getattr(part, name) for part in parts])
                              for name in ("frames", "rotations", "positions", "interpolated", "shots")})


# ---------------------------------------------------------------------------------------------
# Summary for people and programs (command line, JSON 'done' event, the add-on)
# ---------------------------------------------------------------------------------------------


def _rounded(value: Any, digits: int) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), digits)


@dataclass(frozen=True)
class WorldSummary:
    """What the world post-processing did to a result: floors per shot and the foot-sliding metric.

    Built from a processed result (`from_result`), so a result file read back gives the same
    summary as the run that wrote it.
    """

    shots: int
    aligned_shots: int
    split_tracks: int                       # track pieces renamed because a track crossed a cut
    foot_sliding_mm_before: float | None    # pooled over tracks (None: no contact frame pairs)
    foot_sliding_mm_after: float | None     # None when the cleanup was off
    foot_sliding_reduction: float | None    # 1 - after / before
    ground: list[dict]                      # per shot: see `_shot_ground`
    denoised_tracks: int = 0                # tracks the temporal denoising smoothed
    tracks: int = 0
    root_jitter_before: float | None = None  # median over tracks of the hip centre's jitter (m/s^3)
    root_jitter_after: float | None = None
    noise_m: float | None = None            # median estimated per-frame position noise of the input (m)

    @classmethod
    def from_result(cls, result: TraceResult) -> "WorldSummary":
        processing = result.world_processing or {}
        metrics = processing.get("metrics") or {}
        shot_metrics = {entry.get("shot"): entry for entry in metrics.get("shots") or []}
        shots = result.effective_shots()
        sliding = metrics.get("foot_sliding") or {}

        def millimetres(key: str) -> float | None:
            value = sliding.get(key)
            return None if value is None else _rounded(1000.0 * value, 3)

        return cls(shots=len(shots), aligned_shots=sum(shot.aligned for shot in shots),
                   split_tracks=len(processing.get("split_tracks") or []),
                   foot_sliding_mm_before=millimetres("before_m"), foot_sliding_mm_after=millimetres("after_m"),
                   foot_sliding_reduction=_rounded(sliding.get("reduction"), 4),
                   ground=[_shot_ground(shot, (shot_metrics.get(shot.index) or {}).get("ground")) for shot in shots],
                   **_denoise_summary(metrics.get("tracks") or []))

    def event_fields(self) -> dict[str, Any]:
        """Extra fields of the JSON 'done' event (docs/cli.md)."""
        return {"shots": self.shots, "foot_sliding_mm_before": self.foot_sliding_mm_before,
                "foot_sliding_mm_after": self.foot_sliding_mm_after,
                "foot_sliding_reduction": self.foot_sliding_reduction, "ground": self.ground,
                "denoised_tracks": self.denoised_tracks, "root_jitter_before": self.root_jitter_before,
                "root_jitter_after": self.root_jitter_after, "noise_m": self.noise_m}


def _denoise_summary(track_metrics: list[dict]) -> dict[str, Any]:
    """Denoising fields of WorldSummary from the per-track metrics."""
    denoised = [m for m in track_metrics if (m.get("denoise") or {}).get("denoised")]

    def median(key: str) -> float | None:
        values = [m[key] for m in track_metrics if m.get(key) is not None and math.isfinite(m[key])]
        return _rounded(float(np.median(values)), 4) if values else None

    return {"denoised_tracks": len(denoised), "tracks": len(track_metrics),
            "root_jitter_before": median("root_jitter_before"), "root_jitter_after": median("root_jitter_after"),
            "noise_m": median("motion_noise_m")}


def _root_jitter(hips: np.ndarray, frames: np.ndarray, fps: float) -> float | None:
    """Mean |third difference| x fps^3 of hip centres over runs of consecutive frames (m/s^3)."""
    if len(frames) < 4:
        return None
    ok = (frames[3:] - frames[:-3]) == 3
    d3 = hips[3:] - 3 * hips[2:-1] + 3 * hips[1:-2] - hips[:-3]
    return float(np.linalg.norm(d3[ok], axis=1).mean() * fps ** 3) if ok.any() else None


def _shot_ground(shot: ShotInfo, fit: dict | None) -> dict[str, Any]:
    """One shot's floor: the fit (also when it only served the foot contacts) or why there is none.

    camera_tilt_deg: angle between the floor's up normal and the image-up axis of the shot's
    reference camera (how far the camera looked down/rolled against the floor).
    """
    source = fit if fit else shot.alignment_info
    normal = source.get("floor_normal_trace")
    tilt = None
    if fit and normal is not None and len(normal) == 3:
        tilt = _rounded(math.degrees(math.acos(max(-1.0, min(1.0, -float(normal[1]))))), 2)
    return {"shot": shot.index, "start": shot.start, "stop": shot.stop, "aligned": bool(shot.aligned),
            "method": source.get("method", "none") if fit else "none",
            "camera_height_m": _rounded(source.get("camera_height_m"), 3) if fit else None,
            "camera_tilt_deg": tilt,
            "inliers": source.get("inliers") if fit else None, "candidates": source.get("candidates") if fit else None,
            "rms_residual_m": _rounded(source.get("rms_residual_m"), 4) if fit else None,
            "used_for": source.get("used_for") if fit else None,
            "confidence": source.get("confidence", "high") if fit else None,
            "confidence_note": source.get("confidence_note", "") if fit else None,
            "note": (shot.alignment_info or {}).get("note") if not shot.aligned else source.get("note")}
