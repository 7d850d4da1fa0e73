"""Content checks of a TraceResult: shapes, dtypes, finiteness, frame order, shots, registrations,
scene camera. `validate_result` is called on every write and read (standard library + numpy only)."""
from __future__ import annotations

import json
import math
import numbers
from typing import Any

import numpy as np

from .schema import (ALL_TRACK_FIELDS, CAMERA_FIELDS, DEFAULT_ALIGNMENT_MATRIX, CameraInfo, FramesProcessed,
                     ResultValidationError, SceneCameraPath, ShotInfo, TraceResult, TrackResult, VideoInfo,
                     json_default)

__all__ = ["validate_result"]

# Tolerance of the rigid-matrix checks (float64 matrices computed by SVD / products of rotations).
_RIGID_TOLERANCE = 1e-6
# Camera rotations are stored as float32: orthonormal to about 1e-6.
_CAMERA_ROTATION_TOLERANCE = 1e-4
# Arrays that may hold NaN: center_2d is unknown where no detection was seen.
_NAN_ALLOWED = frozenset({"center_2d"})


def validate_result(result: TraceResult) -> None:
    """Raise ResultValidationError listing what is inconsistent; return None when all is well."""
    problems = _validation_problems(result)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ResultValidationError(f"invalid TRACE result: {shown}")


def _validation_problems(result: TraceResult) -> list[str]:
    problems: list[str] = []
    video, camera = result.video, result.camera
    if not isinstance(video, VideoInfo):
        problems.append("video must be a VideoInfo")
    else:
        if not (isinstance(video.fps, numbers.Real) and math.isfinite(video.fps) and video.fps > 0):
            problems.append(f"video.fps must be a positive number, got {video.fps!r}")
        for name in ("width", "height", "frame_count"):
            value = getattr(video, name)
            if not isinstance(value, numbers.Integral) or value < 0:
                problems.append(f"video.{name} must be an integer >= 0 (0 = unknown), got {value!r}")
        if video.rotation_deg not in (0, 90, 180, 270):
            problems.append(f"video.rotation_deg must be 0, 90, 180 or 270, got {video.rotation_deg!r}")
    if not isinstance(camera, CameraInfo):
        problems.append("camera must be a CameraInfo")
    else:
        if not (isinstance(camera.fov_deg, numbers.Real) and 0 < camera.fov_deg < 180):
            problems.append(f"camera.fov_deg must be in (0, 180), got {camera.fov_deg!r}")
        if camera.focal_px is not None and not (isinstance(camera.focal_px, numbers.Real)
                                                and math.isfinite(camera.focal_px) and camera.focal_px > 0):
            problems.append(f"camera.focal_px must be positive or None, got {camera.focal_px!r}")
    if not isinstance(result.source_format, str) or not result.source_format:
        problems.append("source_format must be a non-empty string")
    software = result.software
    if not isinstance(software, dict) or not isinstance(software.get("name"), str) \
            or not isinstance(software.get("version"), str):
        problems.append("software must be a dict with string 'name' and 'version'")
    if not isinstance(result.weights_sha256, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in result.weights_sha256.items()):
        problems.append("weights_sha256 must map file names to hex strings")
    if result.smpl_model is not None and not (isinstance(result.smpl_model, dict)
                                              and {"path", "sha256"} <= set(result.smpl_model)):
        problems.append("smpl_model must be None or a dict with 'path' and 'sha256'")
    if not all(isinstance(note, str) for note in result.notes):
        problems.append("notes must be strings")
    if not isinstance(result.shots, list) or not all(isinstance(shot, ShotInfo) for shot in result.shots):
        return problems + ["shots must be a list of ShotInfo (empty: one shot over all frames)"]
    if result.world_processing is not None and not isinstance(result.world_processing, dict):
        problems.append("world_processing must be a dict or None")
    try:
        json.dumps(result.metadata(created_utc="check"), allow_nan=False, default=json_default)
    except (TypeError, ValueError) as exc:
        problems.append(f"metadata (settings, ...) must be JSON-serialisable without NaN: {exc}")
    processed = result.frames_processed
    if processed is not None and not (isinstance(processed, FramesProcessed) and 0 <= processed.first
                                      and processed.first <= processed.last):
        problems.append(f"frames_processed must have 0 <= first <= last, got {processed!r}")
    shots = result.effective_shots()
    problems.extend(_shot_problems(shots, processed))
    if result.scene_camera is not None:
        problems.extend(_camera_problems(result.scene_camera, shots))

    seen_ids: set[int] = set()
    optional_sets = set()
    vertex_counts = set()
    for track in result.tracks:
        if not isinstance(track, TrackResult):
            problems.append(f"tracks must be TrackResult objects, got {type(track).__name__}")
            continue
        label = f"track {track.track_id}"
        if track.track_id < 0:
            problems.append(f"{label}: track_id must be >= 0")
        if track.track_id in seen_ids:
            problems.append(f"{label}: duplicate track id")
        seen_ids.add(track.track_id)
        problems.extend(_track_problems(track, label, processed))
        problems.extend(_track_world_problems(track, label, shots))
        optional_sets.add(track.present_optional_fields())
        for name in ("vertices_cam", "vertices_world"):
            value = getattr(track, name)
            if value is not None and value.ndim == 3:
                vertex_counts.add(value.shape[1])
    if len(optional_sets) > 1:
        problems.append("optional arrays (joints_*, vertices_*, contacts, clean_*) must be present for all tracks "
                        f"or for none; found the combinations {sorted(optional_sets)}")
    if len(vertex_counts) > 1:
        problems.append(f"all vertex arrays must have the same vertex count, found {sorted(vertex_counts)}")
    return problems


def _track_problems(track: TrackResult, label: str, processed: FramesProcessed | None) -> list[str]:
    problems: list[str] = []
    frames = track.frames
    if frames.ndim != 1:
        return [f"{label}: frames must be 1-D, got shape {frames.shape}"]
    count = frames.shape[0]
    if count == 0:
        problems.append(f"{label}: has no frames")
    for name, (tail, dtype) in ALL_TRACK_FIELDS.items():
        value = getattr(track, name)
        if value is None:
            continue
        expected = (count,) + tail
        if value.ndim != len(expected) or any(e not in (-1, s) for e, s in zip(expected, value.shape)):
            problems.append(f"{label}: {name} must have shape {_shape_text(expected)}, got {value.shape}")
            continue
        if value.dtype != np.dtype(dtype):
            problems.append(f"{label}: {name} must be {np.dtype(dtype).name}, got {value.dtype}")
            continue
        if np.issubdtype(value.dtype, np.floating):
            finite = np.isfinite(value)
            if name in _NAN_ALLOWED:
                finite |= np.isnan(value)
            if not finite.all():
                bad_rows = np.flatnonzero(~finite.reshape(count, -1).all(axis=1))
                problems.append(f"{label}: {name} has non-finite values at frames {frames[bad_rows[:5]].tolist()}")
    if count:
        steps = np.diff(frames)
        if frames[0] < 0 or np.any(steps <= 0):
            problems.append(f"{label}: frames must be >= 0 and strictly increasing")
        if track.times.shape == frames.shape and np.any(np.diff(track.times) < 0):
            problems.append(f"{label}: times must not decrease")
        if processed is not None and (frames[0] < processed.first or frames[-1] > processed.last):
            problems.append(f"{label}: frames {int(frames[0])}..{int(frames[-1])} lie outside the processed range "
                            f"{processed.first}..{processed.last}")
    return problems


def _rigid_problem(matrix: Any, label: str) -> str | None:
    """Why `matrix` is not a finite rigid 4x4 (rotation with det +1, last row 0 0 0 1), or None."""
    matrix = np.asarray(matrix)
    if matrix.shape != (4, 4) or not np.issubdtype(matrix.dtype, np.floating):
        return f"{label} must be a float 4x4 matrix, got shape {matrix.shape} ({matrix.dtype})"
    if not np.all(np.isfinite(matrix)):
        return f"{label} has non-finite entries"
    rotation = matrix[:3, :3]
    if (not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=_RIGID_TOLERANCE)
            or not np.allclose(rotation.T @ rotation, np.eye(3), atol=_RIGID_TOLERANCE)
            or np.linalg.det(rotation) <= 0):
        return f"{label} must be rigid (orthonormal rotation with det +1, last row 0 0 0 1)"
    return None


def _shot_problems(shots: list[ShotInfo], processed: FramesProcessed | None) -> list[str]:
    """Shots are numbered 0.., contiguous, non-empty, cover the processed frames, with rigid alignments."""
    problems: list[str] = []
    if not shots:
        return ["there must be at least one shot"]
    for position, shot in enumerate(shots):
        label = f"shot {position}"
        if shot.index != position:
            problems.append(f"{label}: index must be {position} (shots are numbered in order), got {shot.index}")
        if not 0 <= shot.start < shot.stop:
            problems.append(f"{label}: frames [{shot.start}, {shot.stop}) must be a non-empty range of frames >= 0")
        if position and shot.start != shots[position - 1].stop:
            problems.append(f"{label}: starts at frame {shot.start} but the previous shot stops at "
                            f"{shots[position - 1].stop} (shots must be contiguous)")
        problem = _rigid_problem(shot.alignment_matrix, f"{label}: alignment matrix")
        if problem:
            problems.append(problem)
        elif not shot.aligned and not np.allclose(shot.alignment_matrix, DEFAULT_ALIGNMENT_MATRIX, atol=_RIGID_TOLERANCE):
            problems.append(f"{label}: aligned is False, so its alignment matrix must be the fixed swap (x, z, -y)")
        if "matrix" in shot.alignment_info:
            problems.append(f"{label}: alignment_info must not hold 'matrix' (use alignment_matrix)")
    if processed is not None and isinstance(processed, FramesProcessed) and (
            shots[0].start > processed.first or shots[-1].stop <= processed.last):
        problems.append(f"shots [{shots[0].start}, {shots[-1].stop}) do not cover the processed frames "
                        f"{processed.first}..{processed.last}")
    return problems


def _track_world_problems(track: TrackResult, label: str, shots: list[ShotInfo]) -> list[str]:
    """A track lies inside its shot, has a rigid registration and both halves of the cleaned motion."""
    problems: list[str] = []
    problem = _rigid_problem(track.registration, f"{label}: registration")
    if problem:
        problems.append(problem)
    clean = [getattr(track, name) is None for name in ("clean_body_pose", "clean_hip_center_world",
                                                       "clean_global_orient_world")]
    if any(clean) and not all(clean):
        problems.append(f"{label}: clean_body_pose, clean_hip_center_world and clean_global_orient_world come "
                        "together (all or none)")
    if not 0 <= track.shot < len(shots):
        problems.append(f"{label}: shot {track.shot} does not exist ({len(shots)} shot(s))")
    elif track.frames.ndim == 1 and track.num_frames:
        shot = shots[track.shot]
        if track.frames[0] < shot.start or track.frames[-1] >= shot.stop:
            problems.append(f"{label}: frames {int(track.frames[0])}..{int(track.frames[-1])} lie outside its shot "
                            f"{shot.index} [{shot.start}, {shot.stop}) (a track must not span a cut)")
    return problems


def _camera_problems(camera: SceneCameraPath, shots: list[ShotInfo]) -> list[str]:
    """Shapes, finiteness, increasing frames inside their shots, orthonormal rotations."""
    if not isinstance(camera, SceneCameraPath):
        return ["scene_camera must be a SceneCameraPath or None"]
    frames = camera.frames
    if frames.ndim != 1:
        return [f"scene camera: frames must be 1-D, got shape {frames.shape}"]
    count = frames.shape[0]
    problems: list[str] = []
    for name, (tail, _) in CAMERA_FIELDS.items():
        value = getattr(camera, name)
        if value.shape != (count,) + tail:
            problems.append(f"scene camera: {name} must have shape {_shape_text((count,) + tail)}, got {value.shape}")
    if problems:
        return problems
    if not (np.all(np.isfinite(camera.rotations)) and np.all(np.isfinite(camera.positions))):
        problems.append("scene camera: rotations/positions have non-finite values")
    elif count:
        rotations = camera.rotations.astype(np.float64)
        gram = np.swapaxes(rotations, -1, -2) @ rotations
        if np.abs(gram - np.eye(3)).max() > _CAMERA_ROTATION_TOLERANCE or np.linalg.det(rotations).min() <= 0:
            problems.append("scene camera: rotations must be orthonormal with det +1")
    if count:
        if frames[0] < 0 or np.any(np.diff(frames) <= 0):
            problems.append("scene camera: frames must be >= 0 and strictly increasing")
        shot_index = camera.shots
        if shot_index.min() < 0 or shot_index.max() >= len(shots):
            problems.append(f"scene camera: shot indices must be in 0..{len(shots) - 1}")
        else:
            starts = np.array([shot.start for shot in shots], dtype=np.int64)[shot_index]   # [F]
            stops = np.array([shot.stop for shot in shots], dtype=np.int64)[shot_index]     # [F]
            outside = (frames < starts) | (frames >= stops)
            if outside.any():
                problems.append(f"scene camera: frames {frames[outside][:5].tolist()} lie outside their shots")
    return problems


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join("V" if s == -1 else str(s) for s in shape) + "]"
