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

This module is the schema (constants and dataclasses); `trace_format.validate` checks a result's
content, `trace_format.npz` writes and reads the file (and upgrades older versions), and
`trace_format.trace2` reads the official trace2 result `.npz`.

Standard library + numpy only (shared with the Blender extension).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "SOURCE_FORMAT_TRACE_BLENDER", "NUM_JOINTS", "NUM_BETAS",
    "ResultFormatError", "ResultValidationError",
    "VideoInfo", "CameraInfo", "FramesProcessed", "TrackResult", "TraceResult", "ShotInfo", "SceneCameraPath",
    "DEFAULT_ALIGNMENT_MATRIX", "DEFAULT_ALIGNMENT_INFO", "default_alignment_matrix", "default_software",
    "json_default", "json_safe",
]

FORMAT_NAME = "trace-blender-result"
FORMAT_VERSION = 3
SOURCE_FORMAT_TRACE_BLENDER = "trace-blender"
NUM_JOINTS = 24
NUM_BETAS = 10
META_MEMBER = "meta_json"


# The fixed TRACE world -> Blender world mapping (x, z, -y) as a rigid 4x4: what a shot without a
# ground alignment uses. Equal to trace_blender.frames.TRACE_TO_BLENDER and core.world.default_alignment();
# spelled out here so that reading a result needs nothing beyond numpy.
DEFAULT_ALIGNMENT_MATRIX = np.array([[1.0, 0.0, 0.0, 0.0],
                                     [0.0, 0.0, 1.0, 0.0],
                                     [0.0, -1.0, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, 1.0]])
DEFAULT_ALIGNMENT_MATRIX.setflags(write=False)
DEFAULT_ALIGNMENT_INFO = {"method": "none", "note": "no ground alignment: fixed axis swap (x, z, -y)"}


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
    # 2D keypoints (24 joints) and their tight box (x_min, y_min, x_max, y_max) in source pixels; NaN = not visible.
    "keypoints_2d": ((NUM_JOINTS, 2), np.float32),
    "box_2d": ((4,), np.float32),
    # Version 3: the world orientation of the denoised (and cleaned) motion.
    "clean_global_orient_world": ((3,), np.float32),            # root orientation, track's TRACE world
}
# The cleaned motion comes as a pair: body pose and hip centre.
_CLEAN_MOTION_FIELDS = ("clean_body_pose", "clean_hip_center_world", "clean_global_orient_world")
# Scene camera arrays (version 2): member name -> (shape after the frame axis, dtype).
CAMERA_FIELDS: dict[str, tuple[tuple[int, ...], Any]] = {
    "frames": ((), np.int64),
    "rotations": ((3, 3), np.float32),
    "positions": ((3,), np.float32),
    "interpolated": ((), np.bool_),
    "shots": ((), np.int64),
}
CAMERA_MEMBER_PREFIX = "camera_"
ALL_TRACK_FIELDS = {**TRACK_FIELDS, **OPTIONAL_TRACK_FIELDS}


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
    keypoints_2d: np.ndarray | None = None    # [T,24,2] joints projected to source pixels (core.keypoints)
    box_2d: np.ndarray | None = None          # [T,4] tight box of keypoints_2d: x_min, y_min, x_max, y_max
    contacts: np.ndarray | None = None                # [T,2] bool foot contacts (left, right)
    clean_body_pose: np.ndarray | None = None         # [T,23,3] joints 1-23 after foot-skate cleanup
    clean_hip_center_world: np.ndarray | None = None  # [T,3] cleaned hip centre, this track's TRACE world
    clean_global_orient_world: np.ndarray | None = None  # [T,3] denoised root orientation, track's TRACE world
    shot: int = 0                                     # index of the shot the track belongs to
    registration: np.ndarray | None = None            # [4,4] track's TRACE world -> its shot's world; None = identity

    def __post_init__(self) -> None:
        # Storage dtypes; np.asarray keeps views (no copy) when the dtype already matches.
        self.track_id = int(self.track_id)
        self.shot = int(self.shot)
        for name, (_, dtype) in ALL_TRACK_FIELDS.items():
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
        return (self.clean_body_pose is not None and self.clean_hip_center_world is not None
                and self.clean_global_orient_world is not None)

    def world_poses(self, cleaned: bool = True) -> np.ndarray:
        """[T,24,3] pose for world-space animation (TRACE world): with `cleaned` and when present, the
        world stage's motion (denoised and/or skate-cleaned: clean_global_orient_world and
        clean_body_pose), else the raw one (global_orient_world and poses[:, 1:])."""
        if cleaned and self.has_clean_motion:
            return np.concatenate([self.clean_global_orient_world[:, None], self.clean_body_pose], axis=1)
        return np.concatenate([self.global_orient_world[:, None], self.poses[:, 1:]], axis=1)

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
                  for name in ALL_TRACK_FIELDS}
        return TrackResult(track_id=self.track_id, shot=self.shot, registration=self.registration, **values)

    def equals(self, other: "TrackResult") -> bool:
        """Exact equality of id, shot, registration and every array (NaN equal to NaN)."""
        if not isinstance(other, TrackResult) or self.track_id != other.track_id or self.shot != other.shot:
            return False
        if not _arrays_equal(self.registration, other.registration):
            return False
        for name in ALL_TRACK_FIELDS:
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
        if json_safe(self.metadata()) != json_safe(other.metadata()):
            return False
        if (self.scene_camera is None) != (other.scene_camera is None) or (
                self.scene_camera is not None and not self.scene_camera.equals(other.scene_camera)):
            return False
        return all(mine.equals(theirs) for mine, theirs in zip(self.tracks, other.tracks))


def _dataclass_dict(instance: Any) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in fields(instance)}


def json_default(value: Any) -> Any:
    """The `default=` hook of json.dumps: numpy scalars/arrays and paths become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def json_safe(value: Any) -> Any:
    """The one JSON normaliser: plain JSON values all the way down (json_default's conversions,
    tuples to lists, dict keys to strings) and NaN/inf to None."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray, Path)):
        return json_safe(json_default(value))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


