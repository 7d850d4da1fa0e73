"""The result file: every tracked person as SMPL parameters over time, in one versioned `.npz`.

Layout (documented field by field in docs/result_format.md): a single uncompressed `.npz` without
pickles. `meta_json` (a 0-d unicode array) holds the JSON metadata; `track_ids[K]` and
`track_offsets[K+1]` index the per-frame arrays, which are concatenated over tracks
(track k owns rows `track_offsets[k]:track_offsets[k+1]`). Reading is vectorised: each
`TrackResult` holds views into those arrays, so hours of motion load in one pass.

Version 2 adds the world a user animates in (core.world, docs/world.md): shots (`meta.shots`, one
per hard cut, each with its TRACE world -> Blender world alignment), per track its shot
(`track_shots[K]`) and the rigid registration of its TRACE world into the shot's shared world
(`track_registrations[K,4,4]`), optional foot contacts and skate-cleaned motion per frame, the scene
camera (`camera_*` arrays) and `meta.world_processing` (settings and metrics). The raw TRACE-world
arrays of version 1 are untouched: `TraceResult.blender_transform(track)` = shot alignment @ track
registration maps them (and the cleaned motion) into Blender's world.

`read_result` also reads the official trace2 result `.npz` (see `core.official_result`). Older
format versions are upgraded on read through `_UPGRADES`; newer ones are refused with a message.

Standard library + numpy only (vendored into the Blender extension).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import stat
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .atomic import atomic_open
from .safe_pickle import RESULT_LIMITS, ArchiveError, ArchiveLimitError, NpzArchive

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "SOURCE_FORMAT_TRACE_BLENDER", "NUM_JOINTS", "NUM_BETAS",
    "ResultFormatError", "ResultValidationError",
    "VideoInfo", "CameraInfo", "FramesProcessed", "TrackResult", "TraceResult", "ShotInfo", "SceneCameraPath",
    "DEFAULT_ALIGNMENT_MATRIX", "DEFAULT_ALIGNMENT_INFO", "default_alignment_matrix",
    "write_result", "read_result", "default_software",
]

FORMAT_NAME = "trace-blender-result"
FORMAT_VERSION = 2
SOURCE_FORMAT_TRACE_BLENDER = "trace-blender"
NUM_JOINTS = 24
NUM_BETAS = 10
META_MEMBER = "meta_json"


# The fixed TRACE world -> Blender world mapping (x, z, -y) as a rigid 4x4: what a shot without a
# ground alignment uses. Equal to core.rig.frames.TRACE_TO_BLENDER and core.world.default_alignment();
# spelled out here so that reading a result needs nothing beyond numpy.
DEFAULT_ALIGNMENT_MATRIX = np.array([[1.0, 0.0, 0.0, 0.0],
                                     [0.0, 0.0, 1.0, 0.0],
                                     [0.0, -1.0, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, 1.0]])
DEFAULT_ALIGNMENT_MATRIX.setflags(write=False)
DEFAULT_ALIGNMENT_INFO = {"method": "none", "note": "no ground alignment: fixed axis swap (x, z, -y)"}
# Tolerance of the rigid-matrix checks (float64 matrices computed by SVD / products of rotations).
_RIGID_TOLERANCE = 1e-6
# Camera rotations are stored as float32: orthonormal to about 1e-6.
_CAMERA_ROTATION_TOLERANCE = 1e-4


def default_alignment_matrix() -> np.ndarray:
    """A writable copy [4,4] of the fixed TRACE -> Blender mapping (x, z, -y)."""
    return np.array(DEFAULT_ALIGNMENT_MATRIX)


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
    # Version 2, written by core.world.postprocess (docs/world.md):
    "contacts": ((2,), np.bool_),                                # foot contacts (left, right)
    "clean_body_pose": ((NUM_JOINTS - 1, 3), np.float32),       # poses[:, 1:] after foot-skate cleanup
    "clean_hip_center_world": ((3,), np.float32),               # hip centre after cleanup, track's TRACE world
}
# The cleaned motion comes as a pair: body pose and hip centre.
_CLEAN_MOTION_FIELDS = ("clean_body_pose", "clean_hip_center_world")
# Scene camera arrays (version 2): member name -> (shape after the frame axis, dtype).
CAMERA_FIELDS: dict[str, tuple[tuple[int, ...], Any]] = {
    "frames": ((), np.int64),
    "rotations": ((3, 3), np.float32),
    "positions": ((3,), np.float32),
    "interpolated": ((), np.bool_),
    "shots": ((), np.int64),
}
CAMERA_MEMBER_PREFIX = "camera_"
# Arrays that may hold NaN: center_2d is unknown where no detection was seen.
_NAN_ALLOWED = frozenset({"center_2d"})
_ALL_TRACK_FIELDS = {**TRACK_FIELDS, **OPTIONAL_TRACK_FIELDS}
# Mesh vertices per body a result may store (SMPL: 6890, SMPL-X: 10475).
MAX_VERTICES = 100_000


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
    contacts: np.ndarray | None = None                # [T,2] bool foot contacts (left, right)
    clean_body_pose: np.ndarray | None = None         # [T,23,3] joints 1-23 after foot-skate cleanup
    clean_hip_center_world: np.ndarray | None = None  # [T,3] cleaned hip centre, this track's TRACE world
    shot: int = 0                                     # index of the shot the track belongs to
    registration: np.ndarray | None = None            # [4,4] track's TRACE world -> its shot's world; None = identity

    def __post_init__(self) -> None:
        # Storage dtypes; np.asarray keeps views (no copy) when the dtype already matches.
        self.track_id = int(self.track_id)
        self.shot = int(self.shot)
        for name, (_, dtype) in _ALL_TRACK_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=dtype))
        self.registration = np.eye(4) if self.registration is None else np.asarray(self.registration, np.float64)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def present_optional_fields(self) -> tuple[str, ...]:
        return tuple(name for name in OPTIONAL_TRACK_FIELDS if getattr(self, name) is not None)

    @property
    def has_clean_motion(self) -> bool:
        return self.clean_body_pose is not None and self.clean_hip_center_world is not None

    def world_poses(self, cleaned: bool = True) -> np.ndarray:
        """[T,24,3] pose for world-space animation: joint 0 = global_orient_world, joints 1-23 the
        skate-cleaned body pose when present and `cleaned`, else `poses[:, 1:]` (TRACE world)."""
        body = self.clean_body_pose if cleaned and self.has_clean_motion else self.poses[:, 1:]
        return np.concatenate([self.global_orient_world[:, None], body], axis=1)

    def world_hip_centers(self, cleaned: bool = True) -> np.ndarray:
        """[T,3] hip centres in this track's TRACE world (the cleaned ones when present and `cleaned`)."""
        return self.clean_hip_center_world if cleaned and self.has_clean_motion else self.hip_center_world

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
        return TrackResult(track_id=self.track_id, shot=self.shot, registration=self.registration, **values)

    def equals(self, other: "TrackResult") -> bool:
        """Exact equality of id, shot, registration and every array (NaN equal to NaN)."""
        if not isinstance(other, TrackResult) or self.track_id != other.track_id or self.shot != other.shot:
            return False
        if not _arrays_equal(self.registration, other.registration):
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
class ShotInfo:
    """One shot: source frames start <= f < stop between two hard cuts, and its world alignment.

    Every track of the shot is mapped into the shot's shared world by its registration, then into
    Blender's world (floor z = 0, +Z up) by `alignment_matrix`. `aligned` False means the fixed axis
    swap (x, z, -y) (no floor was fitted, or the user turned alignment off).
    """

    index: int
    start: int
    stop: int                                    # exclusive
    aligned: bool = False
    alignment_matrix: np.ndarray | None = None   # [4,4] shared TRACE world -> Blender world; None = the swap
    alignment_info: dict = field(default_factory=lambda: dict(DEFAULT_ALIGNMENT_INFO))  # method, fit quality

    def __post_init__(self) -> None:
        self.index, self.start, self.stop = int(self.index), int(self.start), int(self.stop)
        self.aligned = bool(self.aligned)
        matrix = DEFAULT_ALIGNMENT_MATRIX if self.alignment_matrix is None else self.alignment_matrix
        self.alignment_matrix = np.array(matrix, dtype=np.float64)
        self.alignment_info = dict(self.alignment_info)

    @property
    def frame_count(self) -> int:
        return self.stop - self.start

    def to_json(self) -> dict[str, Any]:
        """The shot's entry in `meta_json["shots"]` (the matrix as nested lists inside `alignment`)."""
        return {"index": self.index, "start": self.start, "stop": self.stop, "aligned": self.aligned,
                "alignment": {**self.alignment_info, "matrix": self.alignment_matrix.tolist()}}

    @classmethod
    def from_json(cls, entry: dict) -> "ShotInfo":
        alignment = dict(entry.get("alignment") or {})
        matrix = alignment.pop("matrix", None)
        return cls(index=entry["index"], start=entry["start"], stop=entry["stop"], aligned=entry.get("aligned", False),
                   alignment_matrix=None if matrix is None else np.asarray(matrix, dtype=np.float64),
                   alignment_info=alignment)


@dataclass(eq=False)
class SceneCameraPath:
    """The scene camera per source frame (core.world.scene_camera), concatenated over shots.

    Rotations map camera axes (x right, y down, z forward) into the shot's shared TRACE world and
    positions are the camera centre there; the shot's alignment maps both into Blender's world.
    """

    frames: np.ndarray         # [F] int64 source frames, strictly increasing
    rotations: np.ndarray      # [F,3,3] float32 camera -> shared TRACE world of the frame's shot
    positions: np.ndarray      # [F,3] float32 camera centre, metres
    interpolated: np.ndarray   # [F] bool: nobody gave evidence; bridged or held from neighbours
    shots: np.ndarray          # [F] int64 shot index of each frame

    def __post_init__(self) -> None:
        for name, (_, dtype) in CAMERA_FIELDS.items():
            setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def for_shot(self, shot_index: int) -> "SceneCameraPath":
        """The frames of one shot (empty when the shot has no camera estimate)."""
        rows = np.flatnonzero(self.shots == int(shot_index))
        return SceneCameraPath(**{name: getattr(self, name)[rows] for name in CAMERA_FIELDS})

    def equals(self, other: "SceneCameraPath | None") -> bool:
        return isinstance(other, SceneCameraPath) and all(
            _arrays_equal(getattr(self, name), getattr(other, name)) for name in CAMERA_FIELDS)


# Blender cameras look along local -Z with +Y up; the stored camera axes are OpenCV's (+Z forward, +Y down).
_OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


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
    shots: list[ShotInfo] = field(default_factory=list)   # empty: one unaligned shot over all frames
    scene_camera: SceneCameraPath | None = None           # None: no camera estimate
    world_processing: dict | None = None                  # settings and metrics of core.world.postprocess
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
        self.shots = [ShotInfo.from_json(shot) if isinstance(shot, dict) else shot for shot in self.shots]

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

    def processed_range(self) -> tuple[int, int]:
        """Half-open (start, stop) source frames this result covers: frames_processed, else the tracks'
        frames, else the whole video (at least one frame)."""
        processed = self.frames_processed
        if isinstance(processed, FramesProcessed):
            return int(processed.first), int(processed.last) + 1
        spans = [(int(track.frames[0]), int(track.frames[-1])) for track in self.tracks
                 if isinstance(track, TrackResult) and track.frames.ndim == 1 and track.num_frames]
        if spans:
            return min(first for first, _ in spans), max(last for _, last in spans) + 1
        frame_count = getattr(self.video, "frame_count", 0)
        return 0, max(int(frame_count) if isinstance(frame_count, numbers.Integral) else 0, 1)

    def effective_shots(self) -> list[ShotInfo]:
        """The shots; without explicit ones, a single unaligned shot over `processed_range()`."""
        if self.shots:
            return list(self.shots)
        start, stop = self.processed_range()
        return [ShotInfo(index=0, start=start, stop=stop)]

    def shot_of(self, track: "TrackResult | int") -> ShotInfo:
        """The shot a track (or track id) belongs to."""
        track = self.track(track) if isinstance(track, numbers.Integral) else track
        shots = self.effective_shots()
        if not 0 <= track.shot < len(shots):
            raise KeyError(f"track {track.track_id} names shot {track.shot}, but this result has {len(shots)} shot(s)")
        return shots[track.shot]

    def blender_transform(self, track: "TrackResult | int") -> np.ndarray:
        """Rigid [4,4] mapping a track's TRACE-world arrays (raw or cleaned) into Blender's world:
        its shot's alignment @ its registration."""
        track = self.track(track) if isinstance(track, numbers.Integral) else track
        return self.shot_of(track).alignment_matrix @ track.registration

    def camera_blender_matrices(self, shot_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(frames [F], world matrices [F,4,4]) of a Blender camera object following the scene
        camera in one shot (local axes: looks along -Z, +Y up). Raises KeyError without a camera."""
        shots = self.effective_shots()
        if not 0 <= int(shot_index) < len(shots):
            raise KeyError(f"no shot {shot_index} in this result ({len(shots)} shot(s))")
        path = None if self.scene_camera is None else self.scene_camera.for_shot(shot_index)
        if path is None or path.num_frames == 0:
            raise KeyError(f"no scene camera stored for shot {shot_index}: run the world post-processing "
                           "(core.world.postprocess.apply_world_processing) on a result with tracked people")
        alignment = shots[int(shot_index)].alignment_matrix
        rotations = path.rotations.astype(np.float64)   # [F,3,3]
        matrices = np.broadcast_to(np.eye(4), (path.num_frames, 4, 4)).copy()
        matrices[:, :3, :3] = alignment[:3, :3] @ rotations @ _OPENCV_TO_BLENDER_CAMERA
        matrices[:, :3, 3] = path.positions.astype(np.float64) @ alignment[:3, :3].T + alignment[:3, 3]
        return path.frames, matrices

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
            "shots": [shot.to_json() for shot in self.effective_shots()],
            "world_processing": self.world_processing,
        }

    def equals(self, other: "TraceResult") -> bool:
        """Same metadata and tracks (arrays compared exactly)."""
        if not isinstance(other, TraceResult) or len(self.tracks) != len(other.tracks):
            return False
        if _json_normalised(self.metadata()) != _json_normalised(other.metadata()):
            return False
        if (self.scene_camera is None) != (other.scene_camera is None) or (
                self.scene_camera is not None and not self.scene_camera.equals(other.scene_camera)):
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
    if not isinstance(result.shots, list) or not all(isinstance(shot, ShotInfo) for shot in result.shots):
        return problems + ["shots must be a list of ShotInfo (empty: one shot over all frames)"]
    if result.world_processing is not None and not isinstance(result.world_processing, dict):
        problems.append("world_processing must be a dict or None")
    try:
        json.dumps(result.metadata(created_utc="check"), allow_nan=False, default=_json_default)
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
    if (track.clean_body_pose is None) != (track.clean_hip_center_world is None):
        problems.append(f"{label}: clean_body_pose and clean_hip_center_world come together (both or neither)")
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
    result.validate()
    path = Path(path)
    meta = result.metadata(created_utc=result.created_utc or _utc_now())
    meta_text = json.dumps(meta, allow_nan=False, default=_json_default, indent=1)
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


# Upgrades of older format versions, applied in sequence on read: version -> function mapping
# (meta, arrays) of that version to (meta, arrays) of version + 1. Version 1 is the first.
_UPGRADES: dict[int, Callable[[dict, dict], tuple[dict, dict]]] = {1: _upgrade_version_1}


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
        from .official_result import read_official_result

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
        result.validate()
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
    for name, (tail, _dtype) in _ALL_TRACK_FIELDS.items():
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
