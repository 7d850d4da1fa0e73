"""The result file: every tracked person as SMPL parameters over time, in one versioned `.npz`.

Layout (documented field by field in docs/result_format.md): a single uncompressed `.npz` without
pickles. `meta_json` (a 0-d unicode array) holds the JSON metadata; `track_ids[K]` and
`track_offsets[K+1]` index the per-frame arrays, which are concatenated over tracks
(track k owns rows `track_offsets[k]:track_offsets[k+1]`). Reading is vectorised: each
`TrackResult` holds views into those arrays, so hours of motion load in one pass.

`read_result` also reads the official trace2 result `.npz` (see `core.official_result`). Older
format versions are upgraded on read through `_UPGRADES`; newer ones are refused with a message.

Standard library + numpy only (vendored into the Blender extension).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import secrets
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "SOURCE_FORMAT_TRACE_BLENDER", "NUM_JOINTS", "NUM_BETAS",
    "ResultFormatError", "ResultValidationError",
    "VideoInfo", "CameraInfo", "FramesProcessed", "TrackResult", "TraceResult",
    "write_result", "read_result", "default_software",
]

FORMAT_NAME = "trace-blender-result"
FORMAT_VERSION = 1
SOURCE_FORMAT_TRACE_BLENDER = "trace-blender"
NUM_JOINTS = 24
NUM_BETAS = 10
META_MEMBER = "meta_json"


class ResultFormatError(Exception):
    """A result file cannot be read: not a result, damaged, truncated, or from a newer version."""


class ResultValidationError(ResultFormatError):
    """A result's content is inconsistent (wrong shapes, NaN, unsorted frames, ...)."""


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

# Per-frame arrays of a track: name -> (shape after the frame axis, storage dtype).
# Poses and positions are float32 (about 1e-7 relative: micrometres for bodies metres away).
TRACK_FIELDS: dict[str, tuple[tuple[int, ...], Any]] = {
    "frames": ((), np.int64),
    "times": ((), np.float64),
    "poses": ((NUM_JOINTS, 3), np.float32),
    "global_orient_world": ((3,), np.float32),
    "betas": ((NUM_BETAS,), np.float32),
    "hip_center_cam": ((3,), np.float32),
    "hip_center_world": ((3,), np.float32),
    "confidence": ((), np.float32),
    "observed": ((), np.bool_),
    "center_2d": ((2,), np.float32),
}
# Optional per-frame arrays (all tracks have them or none); -1 = any size (vertex count V).
OPTIONAL_TRACK_FIELDS: dict[str, tuple[tuple[int, ...], Any]] = {
    "joints_cam": ((NUM_JOINTS, 3), np.float32),
    "joints_world": ((NUM_JOINTS, 3), np.float32),
    "vertices_cam": ((-1, 3), np.float32),
    "vertices_world": ((-1, 3), np.float32),
}
# Arrays that may hold NaN: center_2d is unknown where no detection was seen.
_NAN_ALLOWED = frozenset({"center_2d"})
_ALL_TRACK_FIELDS = {**TRACK_FIELDS, **OPTIONAL_TRACK_FIELDS}


def default_software() -> dict[str, str]:
    return {"name": "trace-blender", "version": __version__}


@dataclass
class VideoInfo:
    """The source footage. width/height/frame_count are 0 when unknown (official trace2 files)."""

    path: str
    fps: float
    width: int
    height: int
    frame_count: int
    rotation_deg: int = 0              # container rotation applied to the frames before inference
    variable_frame_rate: bool = False  # True: `times` are container timestamps, not frames / fps


@dataclass
class CameraInfo:
    """The pinhole camera assumed for the footage (TRACE's default: 50 degree field of view)."""

    fov_deg: float                 # field of view across the longer image side
    focal_px: float | None = None  # focal length in source pixels (None when the size is unknown)
    focal_source: str = "official"  # how it was chosen: official (50 deg) | fov | focal (user-given)


@dataclass
class FramesProcessed:
    """Which source frames were run through the network."""

    first: int
    last: int
    stopped_early: bool = False
    stop_reason: str | None = None


@dataclass(eq=False)
class TrackResult:
    """One tracked person over time. Every array has the frame axis first (T frames).

    Positions are metres in the camera frame (x right, y down, z forward) or the TRACE world
    (first frame's camera frame); rotations are axis-angle radians. A body is placed by its hip
    centre (midpoint of SMPL joints 1 and 2 after posing), see docs/result_format.md.
    """

    track_id: int
    frames: np.ndarray               # [T] int64 source frame numbers, strictly increasing
    times: np.ndarray                # [T] float64 seconds from the start of the video
    poses: np.ndarray                # [T,24,3] SMPL axis-angle; joint 0 = orientation in the camera frame
    global_orient_world: np.ndarray  # [T,3] root orientation in the TRACE world
    betas: np.ndarray                # [T,10] SMPL shape
    hip_center_cam: np.ndarray       # [T,3] hip centre in the camera frame
    hip_center_world: np.ndarray     # [T,3] hip centre in the TRACE world
    confidence: np.ndarray           # [T] detection score (0..1)
    observed: np.ndarray             # [T] bool: False where the frame was infilled from memory
    center_2d: np.ndarray            # [T,2] detected body centre (x, y) in source pixels, NaN if none
    joints_cam: np.ndarray | None = None      # [T,24,3] posed SMPL joints, camera frame
    joints_world: np.ndarray | None = None    # [T,24,3] posed SMPL joints, TRACE world
    vertices_cam: np.ndarray | None = None    # [T,V,3] mesh vertices, camera frame
    vertices_world: np.ndarray | None = None  # [T,V,3] mesh vertices, TRACE world

    def __post_init__(self) -> None:
        # Storage dtypes; np.asarray keeps views (no copy) when the dtype already matches.
        self.track_id = int(self.track_id)
        for name, (_, dtype) in _ALL_TRACK_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=dtype))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def present_optional_fields(self) -> tuple[str, ...]:
        return tuple(name for name in OPTIONAL_TRACK_FIELDS if getattr(self, name) is not None)

    def index_of(self, frames: Any) -> np.ndarray:
        """Row index of each given source frame in this track, -1 where the track has no such frame."""
        query = np.asarray(frames, dtype=np.int64)
        position = np.searchsorted(self.frames, query)
        clipped = np.minimum(position, max(self.num_frames - 1, 0))
        found = (position < self.num_frames) & (self.frames[clipped] == query) if self.num_frames else \
            np.zeros(query.shape, dtype=bool)
        return np.where(found, clipped, -1)

    def slice_frames(self, first: int | None = None, last: int | None = None) -> "TrackResult":
        """The rows with first <= frame <= last, as views (no copy)."""
        start = 0 if first is None else int(np.searchsorted(self.frames, first, side="left"))
        stop = self.num_frames if last is None else int(np.searchsorted(self.frames, last, side="right"))
        return self.rows(slice(start, stop))

    def rows(self, selection: slice | np.ndarray) -> "TrackResult":
        """A TrackResult made of the selected rows (a slice gives views)."""
        values = {name: (None if getattr(self, name) is None else getattr(self, name)[selection])
                  for name in _ALL_TRACK_FIELDS}
        return TrackResult(track_id=self.track_id, **values)

    def equals(self, other: "TrackResult") -> bool:
        """Exact equality of id and every array (NaN equal to NaN)."""
        if not isinstance(other, TrackResult) or self.track_id != other.track_id:
            return False
        for name in _ALL_TRACK_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if (mine is None) != (theirs is None):
                return False
            if mine is not None and not _arrays_equal(mine, theirs):
                return False
        return True


def _arrays_equal(first: np.ndarray, second: np.ndarray) -> bool:
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    if np.issubdtype(first.dtype, np.floating):
        return bool(np.array_equal(first, second, equal_nan=True))
    return bool(np.array_equal(first, second))


@dataclass(eq=False)
class TraceResult:
    """Everything one run produced: the tracks plus the metadata needed to interpret them."""

    tracks: list[TrackResult]
    video: VideoInfo
    camera: CameraInfo
    settings: dict = field(default_factory=dict)          # run settings (JSON-serialisable)
    software: dict = field(default_factory=default_software)  # at least {name, version}
    weights_sha256: dict = field(default_factory=dict)    # checkpoint file name -> SHA-256 hex
    smpl_model: dict | None = None                        # {path, sha256} of the SMPL file used, or None
    source_format: str = SOURCE_FORMAT_TRACE_BLENDER      # 'trace-blender' | 'trace2-official'
    notes: list[str] = field(default_factory=list)        # caveats a user should see
    frames_processed: FramesProcessed | None = None
    created_utc: str | None = None                        # ISO 8601; set on write when None
    format_version: int = FORMAT_VERSION                  # version of the file this was read from
    source_path: str | None = None                        # where it was read from (not stored)

    def __post_init__(self) -> None:
        if isinstance(self.video, dict):
            self.video = VideoInfo(**self.video)
        if isinstance(self.camera, dict):
            self.camera = CameraInfo(**self.camera)
        if isinstance(self.frames_processed, dict):
            self.frames_processed = FramesProcessed(**self.frames_processed)
        self.tracks = list(self.tracks)
        self.notes = list(self.notes)

    @property
    def track_ids(self) -> list[int]:
        return [track.track_id for track in self.tracks]

    def track(self, track_id: int) -> TrackResult:
        for candidate in self.tracks:
            if candidate.track_id == track_id:
                return candidate
        raise KeyError(f"no track {track_id} in this result (tracks: {self.track_ids})")

    def frame_range(self) -> tuple[int, int] | None:
        """(first, last) source frame over all tracks, None without tracks."""
        if not self.tracks or all(track.num_frames == 0 for track in self.tracks):
            return None
        firsts = [int(track.frames[0]) for track in self.tracks if track.num_frames]
        lasts = [int(track.frames[-1]) for track in self.tracks if track.num_frames]
        return min(firsts), max(lasts)

    def validate(self) -> None:
        """Raise ResultValidationError listing what is inconsistent; return None when all is well."""
        problems = _validation_problems(self)
        if problems:
            shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
            raise ResultValidationError(f"invalid TRACE result: {shown}")

    def metadata(self, created_utc: str | None = None) -> dict[str, Any]:
        """The `meta_json` dictionary of this result."""
        processed = self.frames_processed
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "software": dict(self.software),
            "video": _dataclass_dict(self.video),
            "camera": _dataclass_dict(self.camera),
            "settings": self.settings,
            "weights_sha256": dict(self.weights_sha256),
            "smpl_model": None if self.smpl_model is None else dict(self.smpl_model),
            "source_format": self.source_format,
            "created_utc": created_utc or self.created_utc,
            "frames_processed": None if processed is None else _dataclass_dict(processed),
            "notes": list(self.notes),
        }

    def equals(self, other: "TraceResult") -> bool:
        """Same metadata and tracks (arrays compared exactly)."""
        if not isinstance(other, TraceResult) or len(self.tracks) != len(other.tracks):
            return False
        if _json_normalised(self.metadata()) != _json_normalised(other.metadata()):
            return False
        return all(mine.equals(theirs) for mine, theirs in zip(self.tracks, other.tracks))


def _dataclass_dict(instance: Any) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in fields(instance)}


def _json_normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=_json_default))


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays in settings become plain JSON numbers/lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


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
    try:
        json.dumps(result.metadata(created_utc="check"), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        problems.append(f"metadata (settings, ...) must be JSON-serialisable without NaN: {exc}")
    processed = result.frames_processed
    if processed is not None and not (isinstance(processed, FramesProcessed) and 0 <= processed.first
                                      and processed.first <= processed.last):
        problems.append(f"frames_processed must have 0 <= first <= last, got {processed!r}")

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
        optional_sets.add(track.present_optional_fields())
        for name in ("vertices_cam", "vertices_world"):
            value = getattr(track, name)
            if value is not None and value.ndim == 3:
                vertex_counts.add(value.shape[1])
    if len(optional_sets) > 1:
        problems.append("optional arrays (joints_*/vertices_*) must be present for all tracks or for none; "
                        f"found the combinations {sorted(optional_sets)}")
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
    for name, (tail, dtype) in _ALL_TRACK_FIELDS.items():
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


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join("V" if s == -1 else str(s) for s in shape) + "]"


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


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
    return arrays


def write_result(path: str | os.PathLike, result: TraceResult) -> Path:
    """Validate and write `result` to `path` atomically; returns the path.

    The file is written to a temporary file in the same folder and moved into place with
    os.replace: a crash or error midway leaves any previous file untouched and no partial file.
    """
    result.validate()
    path = Path(path)
    meta = result.metadata(created_utc=result.created_utc or _utc_now())
    meta_text = json.dumps(meta, allow_nan=False, default=_json_default, indent=1)
    arrays = _result_arrays(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Exclusive create with a random name: default permissions (umask), unlike tempfile's 0600.
    temp_path = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(temp_path, "xb") as handle:
            np.savez(handle, **{META_MEMBER: np.array(meta_text)}, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

# Upgrades of older format versions, applied in sequence on read: version -> function mapping
# (meta, arrays) of that version to (meta, arrays) of version + 1. Version 1 is the first.
_UPGRADES: dict[int, Callable[[dict, dict], tuple[dict, dict]]] = {}


def read_result(path: str | os.PathLike, *, official_fps: float | None = None) -> TraceResult:
    """Read a result file: this project's format (any version up to FORMAT_VERSION) or an official
    trace2 result `.npz` (its frame rate is unknown: pass `official_fps`, default 30).

    Raises FileNotFoundError for a missing file and ResultFormatError (with what to do) for
    anything that is not a readable result.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file not found: {path}")
    members = _archive_members(path)
    if f"{META_MEMBER}.npy" in members:
        return _read_own_format(path)
    if "outputs.npy" in members:
        from .official_result import read_official_result

        return read_official_result(path, fps=official_fps)
    raise ResultFormatError(
        f"{path.name} is an .npz archive but not a TRACE result: it holds "
        f"{', '.join(sorted(m.removesuffix('.npy') for m in members)[:10]) or 'no arrays'}, but neither "
        f"'{META_MEMBER}' (TRACE for Blender results) nor 'outputs' (official trace2 results)"
    )


def _archive_members(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head.startswith(b"PK"):
        raise ResultFormatError(f"{path.name} is not a TRACE result file (expected an .npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ResultFormatError(
            f"{path.name} is damaged or truncated (incomplete .npz archive: {exc}); write it again"
        ) from exc


def _read_own_format(path: Path) -> TraceResult:
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = _parse_meta(archive[META_MEMBER], path)
            arrays = {name: archive[name] for name in archive.files if name != META_MEMBER}
    except ResultFormatError:
        raise
    except ValueError as exc:  # includes object arrays refused without pickles
        raise ResultFormatError(f"{path.name} is damaged or not a TRACE result ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as exc:
        raise ResultFormatError(f"{path.name} is damaged or truncated ({type(exc).__name__}: {exc}); "
                                f"write it again") from exc
    stored_version = meta["version"]
    meta, arrays = _upgrade_to_current(meta, arrays, path)
    result = _result_from_current(meta, arrays, path, stored_version)
    try:
        result.validate()
    except ResultValidationError as exc:
        raise ResultFormatError(f"{path.name}: {exc}") from exc
    return result


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
    missing = [key for key in ("track_ids", "track_offsets", *TRACK_FIELDS) if key not in arrays]
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

    tracks = []
    for index, track_id in enumerate(track_ids.tolist()):
        part = slice(int(offsets[index]), int(offsets[index + 1]))
        values = {key: arrays[key][part] for key in (*TRACK_FIELDS, *optional)}
        tracks.append(TrackResult(track_id=track_id, **values))

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
        )
    except (KeyError, TypeError) as exc:
        raise ResultFormatError(f"{name}: metadata is incomplete ({type(exc).__name__}: {exc})") from exc
