"""Read the result `.npz` written by the official trace2 code into a `TraceResult`.

The official `save_results` stores `outputs` (a pickled dict of per-detection numpy arrays, one
row per tracked person-frame) and `imgpaths` (the frame image paths). The pickle is read with
`trace_format.safe_pickle`, so a file cannot run code. Rows are grouped by track id and sorted by frame.

What the official file lacks is filled with documented defaults and a note in `TraceResult.notes`:
frame rate (30 unless given), image size, which frames were infilled, detection centres.

Body placement: the official bodies are root-aligned on the midpoint of joints 35/36 of its 44-joint
set and then moved by `cam_trans` (camera frame) or `world_trans` (TRACE world). When `j3d` is in
the file, the first 24 joints are SMPL's, so the SMPL hip centre (joints 1/2, this project's
convention) and the SMPL joints are recovered exactly in both frames: a world body differs from the
camera body only by the root rotation R_world R_cam^T applied about the alignment point.

Standard library + numpy only (shared with the Blender extension).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .rotations import axis_angle_to_matrix
from .safe_pickle import UnsafePickleError, UnsupportedPickleContentError, read_npz_member
from .schema import (CameraInfo, FramesProcessed, ResultFormatError, ResultValidationError, TraceResult, TrackResult,
                     VideoInfo)
from .validate import validate_result

__all__ = ["SOURCE_FORMAT_OFFICIAL", "OFFICIAL_DEFAULT_FPS", "OFFICIAL_FOV_DEG", "read_official_result",
           "official_outputs_to_result"]

SOURCE_FORMAT_OFFICIAL = "trace2-official"
OFFICIAL_DEFAULT_FPS = 30.0  # the official code does not record the frame rate
OFFICIAL_FOV_DEG = 50.0      # trace2's fixed field of view
REQUIRED_OUTPUT_KEYS = ("smpl_thetas", "smpl_betas", "world_global_rots", "world_trans", "cam_trans",
                        "track_ids", "reorganize_idx")
LEFT_HIP, RIGHT_HIP = 1, 2


def read_official_result(path: str | os.PathLike, fps: float | None = None) -> TraceResult:
    """Read an official trace2 result `.npz` (members 'outputs' and 'imgpaths') without running code.

    `fps` sets the frame rate the official file does not store (default 30, noted in the result).
    Raises ResultFormatError for unsafe, damaged or unexpected content.
    """
    path = Path(path)
    try:
        outputs = read_npz_member(path, "outputs")
        try:
            imgpaths = read_npz_member(path, "imgpaths")
        except KeyError:
            imgpaths = None
    except UnsafePickleError as exc:
        raise ResultFormatError(
            f"{path.name} was not loaded because its 'outputs' pickle is unsafe: {exc}. Official trace2 results "
            f"only hold numpy arrays; only open files from sources you trust."
        ) from exc
    except (UnsupportedPickleContentError, KeyError, zipfile.BadZipFile, OSError, EOFError, ValueError,
            MemoryError) as exc:
        raise ResultFormatError(f"{path.name} is not a readable official trace2 result ({exc})") from exc
    if not (isinstance(outputs, np.ndarray) and outputs.shape == () and isinstance(outputs[()], dict)):
        raise ResultFormatError(f"{path.name}: 'outputs' must hold a dictionary of arrays (official trace2 layout)")
    paths = None if imgpaths is None else [str(p) for p in np.asarray(imgpaths).reshape(-1).tolist()]
    return official_outputs_to_result(outputs[()], imgpaths=paths, fps=fps, source_path=str(path))


def _row_array(outputs: dict[str, Any], key: str, rows: int, tail: tuple[int, ...] | None, where: str) -> np.ndarray:
    value = outputs[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise ResultFormatError(f"{where}: '{key}' must be a numeric array, got {type(value).__name__}")
    if value.shape[:1] != (rows,):
        raise ResultFormatError(f"{where}: '{key}' has {value.shape[:1]} rows, expected {rows}")
    if tail is not None:
        try:
            value = value.reshape((rows,) + tail)
        except ValueError as exc:
            raise ResultFormatError(f"{where}: '{key}' has shape {value.shape}, expected [{rows},{tail}]") from exc
    return value


def official_outputs_to_result(outputs: dict[str, Any], imgpaths: list[str] | None = None,
                               fps: float | None = None, source_path: str | None = None) -> TraceResult:
    """Convert the official `outputs` dict (numpy arrays, one row per person-frame) to a TraceResult."""
    where = Path(source_path).name if source_path else "official trace2 outputs"
    missing = [key for key in REQUIRED_OUTPUT_KEYS if key not in outputs]
    if missing:
        raise ResultFormatError(f"{where}: 'outputs' lacks {', '.join(missing)}; not an official trace2 result")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    notes: list[str] = []
    if fps is None:
        fps = OFFICIAL_DEFAULT_FPS
        notes.append(f"frame rate unknown in official trace2 results: assumed {OFFICIAL_DEFAULT_FPS:g} fps")

    rows = int(np.asarray(outputs["track_ids"]).reshape(-1).shape[0])
    track_ids = _row_array(outputs, "track_ids", rows, (), where)
    frames = _row_array(outputs, "reorganize_idx", rows, (), where)
    if np.any(track_ids != np.round(track_ids)) or np.any(frames != np.round(frames)):
        raise ResultFormatError(f"{where}: track_ids and reorganize_idx must be integers")
    track_ids, frames = track_ids.astype(np.int64), frames.astype(np.int64)
    thetas = _row_array(outputs, "smpl_thetas", rows, (24, 3), where).astype(np.float64)  # [N,24,3]
    betas = _row_array(outputs, "smpl_betas", rows, None, where)
    if betas.ndim != 2 or betas.shape[1] < 10:
        raise ResultFormatError(f"{where}: 'smpl_betas' must be [N,>=10], got {betas.shape}")
    betas = betas[:, :10]
    world_rots = _row_array(outputs, "world_global_rots", rows, (3,), where).astype(np.float64)
    world_trans = _row_array(outputs, "world_trans", rows, (3,), where).astype(np.float64)
    cam_trans = _row_array(outputs, "cam_trans", rows, (3,), where).astype(np.float64)
    if "center_confs" in outputs:
        confidence = _row_array(outputs, "center_confs", rows, None, where).reshape(rows, -1)[:, 0]
    else:
        confidence = np.ones(rows)
        notes.append("detection confidence not stored in this official file: set to 1")

    joints_cam = joints_world = None
    if "j3d" in outputs and np.ndim(outputs["j3d"]) == 3 and np.shape(outputs["j3d"])[1] >= 24:
        smpl_joints = _row_array(outputs, "j3d", rows, None, where)[:, :24].astype(np.float64)  # [N,24,3] root-aligned
        # Camera body -> world body: the root rotation changes from R_cam to R_world about the alignment point.
        cam_to_world = axis_angle_to_matrix(world_rots) @ np.swapaxes(axis_angle_to_matrix(thetas[:, 0]), -1, -2)
        joints_cam = smpl_joints + cam_trans[:, None, :]
        joints_world = np.einsum("nij,nkj->nki", cam_to_world, smpl_joints) + world_trans[:, None, :]
        hip_center_cam = 0.5 * (joints_cam[:, LEFT_HIP] + joints_cam[:, RIGHT_HIP])
        hip_center_world = 0.5 * (joints_world[:, LEFT_HIP] + joints_world[:, RIGHT_HIP])
    else:
        hip_center_cam, hip_center_world = cam_trans, world_trans
        notes.append("no j3d in this official file: hip centres are the official translations (the midpoint "
                     "of its 44-joint hips, a few centimetres from the SMPL hip centre); no joints stored")
    notes.append("official trace2 results do not mark infilled frames: every frame is marked observed")
    notes.append("official trace2 results do not store detection centres: center_2d is NaN")

    # Group rows by track, sorted by frame; on a duplicate (track, frame) keep the most confident row.
    order = np.lexsort((-confidence, frames, track_ids))
    sorted_ids, sorted_frames = track_ids[order], frames[order]
    duplicate = np.zeros(rows, dtype=bool)
    duplicate[1:] = (sorted_ids[1:] == sorted_ids[:-1]) & (sorted_frames[1:] == sorted_frames[:-1])
    if duplicate.any():
        notes.append(f"{int(duplicate.sum())} duplicate (track, frame) rows dropped, keeping the most confident")
    keep = order[~duplicate]
    kept_ids = track_ids[keep]
    starts = np.flatnonzero(np.concatenate([[True], kept_ids[1:] != kept_ids[:-1]])) if keep.size else np.zeros(0, int)
    stops = np.append(starts[1:], keep.size)

    columns = {
        "frames": frames, "times": frames / float(fps), "poses": thetas, "global_orient_world": world_rots,
        "betas": betas, "hip_center_cam": hip_center_cam, "hip_center_world": hip_center_world,
        "confidence": confidence, "observed": np.ones(rows, dtype=bool),
        "center_2d": np.full((rows, 2), np.nan),
    }
    if joints_cam is not None:
        columns.update(joints_cam=joints_cam, joints_world=joints_world)
    sorted_columns = {key: value[keep] for key, value in columns.items()}
    tracks = [TrackResult(track_id=int(kept_ids[start]), **{k: v[start:stop] for k, v in sorted_columns.items()})
              for start, stop in zip(starts, stops)]

    if imgpaths:
        frame_count = len(imgpaths)
        try:  # the official video mode reads frames extracted into one folder
            video_path = os.path.commonpath([os.path.dirname(p) for p in imgpaths])
        except ValueError:  # mixed absolute and relative paths
            video_path = ""
    else:
        frame_count = int(frames.max()) + 1 if rows else 0
        video_path = ""
        notes.append("frame image paths not stored: the frame count is taken from the last tracked frame")
    notes.append("image size unknown in official trace2 results (video width/height 0, focal length unset)")
    last_frame = max(frame_count - 1, int(frames.max()) if rows else 0)
    result = TraceResult(
        tracks=tracks,
        video=VideoInfo(path=video_path, fps=float(fps), width=0, height=0, frame_count=frame_count),
        camera=CameraInfo(fov_deg=OFFICIAL_FOV_DEG, focal_px=None, focal_source="official"),
        settings={}, software={"name": "trace2 (official)", "version": "unknown"}, weights_sha256={},
        smpl_model=None, source_format=SOURCE_FORMAT_OFFICIAL, notes=notes,
        frames_processed=FramesProcessed(first=0, last=last_frame), source_path=source_path,
    )
    try:
        validate_result(result)
    except ResultValidationError as exc:
        raise ResultFormatError(f"{where}: {exc}") from exc
    return result
