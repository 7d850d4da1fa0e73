"""Writing and reading the result `.npz` (layout in trace_format.schema and docs/result_format.md).

`read_result` also reads the official trace2 result `.npz` (trace_format.trace2). Older format
versions are upgraded on read through `_UPGRADES`; newer ones are refused with a message.
"""
from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import atomic_open
from .safe_pickle import RESULT_LIMITS, ArchiveError, ArchiveLimitError, NpzArchive
from .schema import (ALL_TRACK_FIELDS, CAMERA_FIELDS, CAMERA_MEMBER_PREFIX, FORMAT_NAME, FORMAT_VERSION, META_MEMBER,
                     OPTIONAL_TRACK_FIELDS, SOURCE_FORMAT_TRACE_BLENDER, TRACK_FIELDS, CameraInfo, FramesProcessed,
                     ResultFormatError, ResultValidationError, SceneCameraPath, ShotInfo, TraceResult, TrackResult,
                     VideoInfo, json_default)
from .trace2 import read_official_result
from .validate import _shape_text, validate_result

# Mesh vertices per body a result may store (SMPL: 6890, SMPL-X: 10475).
MAX_VERTICES = 100_000

__all__ = ["write_result", "read_result"]


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _result_arrays(result: TraceResult) -> dict[str, np.ndarray]:
    """Concatenate the per-track arrays (see the module docstring for the layout)."""
    tracks = result.tracks
    counts = np.array([track.num_frames for track in tracks], dtype=np.int64)
    arrays = {
        "track_ids": np.array([track.track_id for track in tracks], dtype=np.int64),  # [K]
        "track_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),  # [K+1]
    }
    for name, (tail, dtype) in TRACK_FIELDS.items():
        parts = [getattr(track, name) for track in tracks]
        arrays[name] = np.concatenate(parts) if parts else np.zeros((0,) + tail, dtype=dtype)
    present = tracks[0].present_optional_fields() if tracks else ()
    for name in present:
        arrays[name] = np.concatenate([getattr(track, name) for track in tracks])
    arrays["track_shots"] = np.array([track.shot for track in tracks], dtype=np.int64)  # [K]
    arrays["track_registrations"] = (np.stack([track.registration for track in tracks]).astype(np.float64)
                                     if tracks else np.zeros((0, 4, 4)))              # [K,4,4]
    if result.scene_camera is not None:
        for name in CAMERA_FIELDS:
            arrays[CAMERA_MEMBER_PREFIX + name] = getattr(result.scene_camera, name)
    return arrays


def write_result(path: str | os.PathLike, result: TraceResult) -> Path:
    """Validate and write `result` to `path` atomically; returns the path.

    The file is written to a temporary file in the same folder and moved into place with
    os.replace: a crash or error midway leaves any previous file untouched and no partial file.
    """
    validate_result(result)
    path = Path(path)
    meta = result.metadata(created_utc=result.created_utc or _utc_now())
    meta_text = json.dumps(meta, allow_nan=False, default=json_default, indent=1)
    arrays = _result_arrays(result)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **{META_MEMBER: np.array(meta_text)}, **arrays)
    return path


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def _upgrade_version_1(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 1 -> 2: one unaligned shot over the processed frames, every track in it with an
    identity registration; no camera, contacts, cleaned motion or world processing."""
    frames = arrays.get("frames")
    processed = meta.get("frames_processed")
    if isinstance(processed, dict) and isinstance(processed.get("first"), int) and isinstance(processed.get("last"), int):
        start, stop = processed["first"], processed["last"] + 1
    elif isinstance(frames, np.ndarray) and frames.ndim == 1 and frames.size and frames.dtype.kind in "iu":
        start, stop = int(frames.min()), int(frames.max()) + 1
    else:
        frame_count = (meta.get("video") or {}).get("frame_count")
        start, stop = 0, max(frame_count if isinstance(frame_count, int) else 0, 1)
    track_ids = arrays.get("track_ids")
    track_count = int(track_ids.shape[0]) if isinstance(track_ids, np.ndarray) and track_ids.ndim == 1 else 0
    shot = ShotInfo(index=0, start=start, stop=stop)
    meta = dict(meta, version=2, shots=[shot.to_json()], world_processing=None)
    arrays = dict(arrays, track_shots=np.zeros(track_count, dtype=np.int64),
                  track_registrations=np.broadcast_to(np.eye(4), (track_count, 4, 4)))
    return meta, arrays


def _upgrade_version_2(meta: dict, arrays: dict) -> tuple[dict, dict]:
    """Version 2 -> 3: the cleaned motion gains its world orientation. Version 2 had no denoising
    and its skate cleanup kept the root orientation, so it is the raw global_orient_world."""
    arrays = dict(arrays)
    if "clean_body_pose" in arrays and "global_orient_world" in arrays:
        arrays["clean_global_orient_world"] = np.array(arrays["global_orient_world"])
    return dict(meta, version=3), arrays


# Upgrades of older format versions, applied in sequence on read: version -> function mapping
# (meta, arrays) of that version to (meta, arrays) of version + 1. Version 1 is the first.
_UPGRADES: dict[int, Callable[[dict, dict], tuple[dict, dict]]] = {1: _upgrade_version_1, 2: _upgrade_version_2}


def read_result(path: str | os.PathLike, *, official_fps: float | None = None) -> TraceResult:
    """Read a result file: this project's format (any version up to FORMAT_VERSION) or an official
    trace2 result `.npz` (its frame rate is unknown: pass `official_fps`, default 30).

    Every member's size is checked from the archive directory and its `.npy` header before any
    data is decompressed (core.safe_pickle.NpzArchive, limits RESULT_LIMITS), so a damaged or
    hostile file is refused in milliseconds with bounded memory. Raises FileNotFoundError for a
    missing file and ResultFormatError (with what to do) for anything that is not a readable result.
    """
    path = Path(path)
    _check_regular_file(path)
    with _open_archive(path) as archive:
        if META_MEMBER in archive.members:
            return _read_own_format(path, archive)
        names = archive.names
    if "outputs" in names:
        return read_official_result(path, fps=official_fps)
    raise ResultFormatError(
        f"{path.name} is an .npz archive but not a TRACE result: it holds "
        f"{', '.join(sorted(names)[:10]) or 'no arrays'}, but neither "
        f"'{META_MEMBER}' (TRACE for Blender results) nor 'outputs' (official trace2 results)"
    )


def _check_regular_file(path: Path) -> None:
    """FileNotFoundError for a missing file; ResultFormatError for folders, pipes and devices."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"result file not found: {path}") from None
    except OSError as exc:
        raise ResultFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise ResultFormatError(f"{path} is {kind}, not a result file: give the .npz file a TRACE run wrote")


def _open_archive(path: Path) -> NpzArchive:
    try:
        return NpzArchive(path, RESULT_LIMITS)
    except ArchiveLimitError as exc:
        raise ResultFormatError(f"{path.name} was refused before reading it: {exc}. TRACE results never "
                                f"declare that much data; the file is damaged or not a result") from exc
    except ArchiveError as exc:
        message = str(exc)
        if "not an .npz" in message:
            raise ResultFormatError(f"{path.name} is not a TRACE result file (expected an .npz archive"
                                    + (": it starts like one but is not a readable zip archive)" if "PK" in message
                                       else ")")) from exc
        raise ResultFormatError(f"{message}; write it again") from exc
    except OSError as exc:
        raise ResultFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_own_format(path: Path, archive: NpzArchive) -> TraceResult:
    try:
        meta = _parse_meta(archive.read(META_MEMBER), path)
        _check_row_headers(archive, path)
        arrays = {name: archive.read(name) for name in archive.names if name != META_MEMBER}
    except ResultFormatError:
        raise
    except ArchiveLimitError as exc:
        raise ResultFormatError(f"{path.name} was refused: {exc}") from exc
    except (ArchiveError, ValueError) as exc:   # includes object arrays refused without pickles
        raise ResultFormatError(f"{path.name} is damaged or not a TRACE result ({exc})") from exc
    except (OSError, EOFError, KeyError) as exc:
        raise ResultFormatError(f"{path.name} is damaged or truncated ({type(exc).__name__}: {exc}); "
                                f"write it again") from exc
    stored_version = meta["version"]
    meta, arrays = _upgrade_to_current(meta, arrays, path)
    result = _result_from_current(meta, arrays, path, stored_version)
    try:
        validate_result(result)
    except ResultValidationError as exc:
        raise ResultFormatError(f"{path.name}: {exc}") from exc
    return result


def _check_row_headers(archive: NpzArchive, path: Path) -> None:
    """Before reading any data: every per-frame array has the row count of `frames` and its schema's
    trailing shape, so the file's size is what its rows need (no array can declare more)."""
    frames = archive.members.get("frames")
    if frames is None or len(frames.shape) != 1:
        return                                            # reported with the other missing arrays
    rows = frames.shape[0]
    for name, (tail, _dtype) in ALL_TRACK_FIELDS.items():
        entry = archive.members.get(name)
        if entry is None:
            continue
        shape = entry.shape
        fits = len(shape) == 1 + len(tail) and all(want in (-1, got) for want, got in zip(tail, shape[1:]))
        if not shape or shape[0] != rows or not fits:
            raise ResultFormatError(f"{path.name}: array '{name}' has shape {shape}, expected "
                                    f"{_shape_text((rows,) + tail)}; the file is damaged")
        if name.startswith("vertices_") and shape[1] > MAX_VERTICES:
            raise ResultFormatError(f"{path.name}: '{name}' declares {shape[1]:,} vertices (limit {MAX_VERTICES:,})")


def _parse_meta(member: np.ndarray, path: Path) -> dict[str, Any]:
    if member.shape != () or member.dtype.kind != "U":
        raise ResultFormatError(f"{path.name}: '{META_MEMBER}' must be a single string")
    try:
        meta = json.loads(str(member[()]))
    except json.JSONDecodeError as exc:
        raise ResultFormatError(f"{path.name}: metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ResultFormatError(f"{path.name}: metadata does not describe a '{FORMAT_NAME}' file")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultFormatError(f"{path.name}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ResultFormatError(
            f"{path.name} was written by a newer TRACE for Blender (result format version {version}; this "
            f"version reads up to {FORMAT_VERSION}). Update the TRACE for Blender add-on and core."
        )
    return meta


def _upgrade_to_current(meta: dict, arrays: dict, path: Path) -> tuple[dict, dict]:
    while meta["version"] < FORMAT_VERSION:
        step = _UPGRADES.get(meta["version"])
        if step is None:
            raise ResultFormatError(f"{path.name}: no upgrade from result format version {meta['version']}")
        meta, arrays = step(meta, arrays)
    return meta, arrays


def _result_from_current(meta: dict, arrays: dict[str, np.ndarray], path: Path, stored_version: int) -> TraceResult:
    """Build a TraceResult (tracks as views into the concatenated arrays) from version-current data."""
    name = path.name
    missing = [key for key in ("track_ids", "track_offsets", *TRACK_FIELDS, "track_shots", "track_registrations")
               if key not in arrays]
    if missing:
        raise ResultFormatError(f"{name}: missing arrays {', '.join(missing)}; the file is damaged")
    track_ids = arrays["track_ids"]
    offsets = arrays["track_offsets"]
    if track_ids.ndim != 1 or offsets.shape != (track_ids.shape[0] + 1,) \
            or track_ids.dtype.kind not in "iu" or offsets.dtype.kind not in "iu":
        raise ResultFormatError(f"{name}: track_ids / track_offsets have inconsistent shapes")
    rows = int(arrays["frames"].shape[0]) if arrays["frames"].ndim else -1
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != rows:
        raise ResultFormatError(f"{name}: track_offsets do not partition the {rows} rows")
    optional = [key for key in OPTIONAL_TRACK_FIELDS if key in arrays]
    for key in (*TRACK_FIELDS, *optional):
        if arrays[key].ndim == 0 or arrays[key].shape[0] != rows:
            raise ResultFormatError(f"{name}: array '{key}' has {arrays[key].shape} rows, expected {rows}")
    track_shots, registrations = arrays["track_shots"], arrays["track_registrations"]
    track_count = track_ids.shape[0]
    if track_shots.shape != (track_count,) or track_shots.dtype.kind not in "iu" \
            or registrations.shape != (track_count, 4, 4) or registrations.dtype.kind != "f":
        raise ResultFormatError(f"{name}: track_shots {track_shots.shape} / track_registrations {registrations.shape} "
                                f"do not match the {track_count} tracks")
    camera_members = [CAMERA_MEMBER_PREFIX + key for key in CAMERA_FIELDS]
    present_camera = [key for key in camera_members if key in arrays]
    if present_camera and len(present_camera) != len(camera_members):
        raise ResultFormatError(f"{name}: scene camera arrays incomplete (has {', '.join(present_camera)}; "
                                f"needs {', '.join(camera_members)}); the file is damaged")
    for key in present_camera:
        if arrays[key].ndim == 0:
            raise ResultFormatError(f"{name}: array '{key}' must have a frame axis")
    scene_camera = SceneCameraPath(**{key: arrays[CAMERA_MEMBER_PREFIX + key] for key in CAMERA_FIELDS}) \
        if present_camera else None

    tracks = []
    for index, track_id in enumerate(track_ids.tolist()):
        part = slice(int(offsets[index]), int(offsets[index + 1]))
        values = {key: arrays[key][part] for key in (*TRACK_FIELDS, *optional)}
        tracks.append(TrackResult(track_id=track_id, shot=int(track_shots[index]),
                                  registration=registrations[index], **values))

    try:
        video = VideoInfo(**meta["video"])
        camera = CameraInfo(**meta["camera"])
        processed = meta.get("frames_processed")
        return TraceResult(
            tracks=tracks, video=video, camera=camera, settings=meta.get("settings") or {},
            software=meta.get("software") or {}, weights_sha256=meta.get("weights_sha256") or {},
            smpl_model=meta.get("smpl_model"), source_format=meta.get("source_format", SOURCE_FORMAT_TRACE_BLENDER),
            notes=list(meta.get("notes") or []),
            frames_processed=None if processed is None else FramesProcessed(**processed),
            created_utc=meta.get("created_utc"), format_version=stored_version, source_path=str(path),
            shots=[ShotInfo.from_json(entry) for entry in meta["shots"]], scene_camera=scene_camera,
            world_processing=meta.get("world_processing"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultFormatError(f"{name}: metadata is incomplete ({type(exc).__name__}: {exc})") from exc
