"""The temporal loop: clips of frames through the network, rows decoded and gathered per track.

    frames (stream) -> preprocess -> clips of 8 -> model.run_clip (state carried in the stream)
        -> per-row decoding (SMPL axis-angle, lens, world trajectory, 2D centre)
        -> compact per-track numpy accumulation (names as in trace_format.schema.TrackResult)

Memory stays constant in the video length: one clip of preprocessed frames (8 x 512x512x3 uint8) is
alive at a time, and each tracked (person, frame) pair costs under a kilobyte of numpy arrays
(benchmarks/bench_memory.py measures it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch

from ..camera import Lens, cams_to_translation
from ..errors import FrameReadError
from ..preprocess import INPUT_SIZE, input_offsets, map_yx_to_source_xy, preprocess_frame
from ..progress import ProgressReporter
from ..shots import ShotCutDetector
from ..video import SourceInfo

CLIP_LENGTH = 8            # official temp_clip_length_eval: the ConvGRU state is trained for it
NUM_JOINTS = 24
NUM_BETAS = 10


class ClipModel(Protocol):
    """What the loop needs from the network (TraceModel, or the benchmark's stand-in)."""

    def new_stream(self) -> Any: ...

    def run_clip(self, images_u8: np.ndarray, stream: Any, settings: Any, capture: dict | None = None) -> Any: ...


# --------------------------------------------------------------------------------------------------
# Per-clip decoding
# --------------------------------------------------------------------------------------------------
def _numpy(value: Any, dtype: Any = None) -> np.ndarray:
    """Tensor / array / list -> numpy (CPU, detached)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    return array.astype(dtype, copy=False) if dtype is not None else array


@dataclass
class ClipFrames:
    """Source bookkeeping of one clip: which source frames its rows refer to."""

    frame_indices: np.ndarray      # [n] int64 source frame numbers
    timestamps_s: np.ndarray       # [n] float64


def decode_clip_rows(output: Any, clip: ClipFrames, offsets: np.ndarray, lens: Lens,
                     decode_params: Callable[[Any], dict]) -> dict[str, np.ndarray]:
    """ClipOutput rows [N] -> flat numpy rows in source terms (one row per tracked person-frame).

    Returns arrays: track_id[N], frames[N], times[N], poses[N,24,3] (joint 0 = camera-frame
    orientation), global_orient_world[N,3], betas[N,10], hip_center_cam[N,3], hip_center_world[N,3],
    confidence[N], observed[N] bool, center_2d[N,2] (x, y source pixels).
    """
    batch_ids = _numpy(output.pred_batch_ids).astype(np.int64)                 # [N] frame inside clip
    params = decode_params(output.params_pred)
    global_orient = _numpy(params["global_orient"], np.float64).reshape(-1, 3)  # [N,3]
    body_pose = _numpy(params["body_pose"], np.float64).reshape(len(global_orient), -1, 3)  # [N,23,3]
    betas = _numpy(params["betas"], np.float64).reshape(len(global_orient), -1)[:, :NUM_BETAS]  # [N,10]
    poses = np.concatenate([global_orient[:, None, :], body_pose], axis=1)    # [N,24,3]
    if poses.shape[1] != NUM_JOINTS:
        raise RuntimeError(f"decode_params returned {poses.shape[1]} joints, expected {NUM_JOINTS}")
    czyxs = _numpy(output.pred_czyxs, np.float64).reshape(-1, 3)                # [N,3] (z, y, x) map cells
    inherited = _numpy(output.inherited).astype(bool).reshape(-1)               # [N]
    raw_cams = _numpy(output.cam, np.float64).reshape(-1, 3)
    raw_world_cams = _numpy(output.world_cams, np.float64).reshape(-1, 3)
    rows = {
        "track_id": _numpy(output.track_ids).astype(np.int64).reshape(-1),
        "frames": clip.frame_indices[batch_ids],
        "times": clip.timestamps_s[batch_ids],
        "poses": poses,
        "global_orient_world": _numpy(output.world_global_rots, np.float64).reshape(-1, 3),
        "betas": betas,
        "hip_center_cam": cams_to_translation(raw_cams, lens.normalized_focal),
        "hip_center_world": cams_to_translation(raw_world_cams, lens.normalized_focal),
        "confidence": _numpy(output.top_score, np.float64).reshape(-1),
        "observed": ~inherited,
        "center_2d": map_yx_to_source_xy(czyxs[:, 1:3], offsets),
    }
    # Decoding hides bad numbers (an inf cam scale is a body at the camera centre, a NaN 6D rotation
    # comes out as some finite rotation): check what the network said as well as what was decoded.
    raw_params = _numpy(output.params_pred, np.float64).reshape(len(global_orient), -1)
    checked = [raw_params, raw_cams, raw_world_cams] + [rows[name].reshape(len(global_orient), -1)
                                                        for name in FINITE_FIELDS]
    rows["non_finite"] = ~np.all(np.isfinite(np.concatenate(checked, axis=1)), axis=1)   # [N]
    return rows


# Row fields that must be finite (center_2d may be NaN: unknown where nothing was detected).
FINITE_FIELDS = ("poses", "global_orient_world", "betas", "hip_center_cam", "hip_center_world", "confidence")


def infill_non_finite_rows(track: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """A track whose non-finite rows (network NaN / inf) are filled from the nearest finite row of
    the same person (earlier one preferred), marked unobserved with confidence 0; None when no row
    of the track is finite. One bad number must not cost the whole run."""
    bad = track["non_finite"]
    if not bad.any():
        return track
    good = np.flatnonzero(~bad)
    if good.size == 0:
        return None
    rows = np.arange(len(bad))
    previous = np.searchsorted(good, rows, side="right") - 1                  # index into good, -1 = none before
    source = good[np.where(previous >= 0, previous, 0)]
    filled = dict(track)
    for name in FINITE_FIELDS:
        values = track[name].copy()
        values[bad] = track[name][source[bad]]
        filled[name] = values
    filled["observed"] = np.where(bad, False, track["observed"])
    filled["confidence"] = np.where(bad, 0.0, filled["confidence"])
    return filled


ROW_FIELDS = ("frames", "times", "poses", "global_orient_world", "betas", "hip_center_cam", "hip_center_world",
              "confidence", "observed", "center_2d", "non_finite")


class TrackAccumulator:
    """Collects per-track rows clip by clip as small numpy chunks; concatenated once at the end."""

    def __init__(self) -> None:
        self._chunks: dict[int, dict[str, list[np.ndarray]]] = {}
        self.rows = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        track_ids = rows["track_id"]
        if len(track_ids) == 0:
            return
        order = np.argsort(track_ids, kind="stable")
        sorted_ids = track_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        for begin, end in zip(starts, np.r_[starts[1:], len(order)]):
            picked = order[begin:end]
            chunks = self._chunks.setdefault(int(sorted_ids[begin]), {name: [] for name in ROW_FIELDS})
            for name in ROW_FIELDS:
                chunks[name].append(rows[name][picked])
        self.rows += len(track_ids)

    def __len__(self) -> int:
        return len(self._chunks)

    def nbytes(self) -> int:
        return sum(a.nbytes for chunks in self._chunks.values() for parts in chunks.values() for a in parts)

    def finalize(self) -> dict[int, dict[str, np.ndarray]]:
        """{track_id: {field: [T,...]}} sorted by frame; a repeated (track, frame) keeps its first row."""
        tracks: dict[int, dict[str, np.ndarray]] = {}
        for track_id in sorted(self._chunks):
            arrays = {name: np.concatenate(parts) for name, parts in self._chunks[track_id].items()}
            frames = arrays["frames"]
            order = np.argsort(frames, kind="stable")
            keep = order[np.r_[True, frames[order][1:] != frames[order][:-1]]]
            tracks[track_id] = {name: array[keep] for name, array in arrays.items()}
        return tracks


def trim_unobserved_ends(tracks: dict[int, dict[str, np.ndarray]]) -> tuple[dict[int, dict[str, np.ndarray]], int, int]:
    """Drop each track's rows before its first and after its last observed frame; drop never-observed tracks.

    While the tracker waits to forget a lost person (up to ~2 s in product mode) it keeps reporting them
    at their last position with features from the memory unit. Between two observations that infilling
    is what users want (occlusions); before the first or after the last observation it is a phantom
    standing still. Returns (tracks, dropped track count, trimmed row count). Product mode only: the
    official settings keep every row the official code reports.
    """
    kept: dict[int, dict[str, np.ndarray]] = {}
    dropped = trimmed = 0
    for track_id, arrays in tracks.items():
        observed = np.flatnonzero(arrays["observed"])
        rows = len(arrays["observed"])
        if observed.size == 0:
            dropped += 1
            trimmed += rows
            continue
        first, last = int(observed[0]), int(observed[-1]) + 1
        trimmed += rows - (last - first)
        kept[track_id] = {name: array[first:last] for name, array in arrays.items()}
    return kept, dropped, trimmed


# --------------------------------------------------------------------------------------------------
# The temporal loop
# --------------------------------------------------------------------------------------------------
@dataclass
class InferenceOutcome:
    accumulator: TrackAccumulator
    frames_processed: int
    clips: int
    seconds: float
    read_error: FrameReadError | None = None
    first_frame: int | None = None
    last_frame: int | None = None
    shot_cuts: list[int] = field(default_factory=list)   # first source frame of each new shot


def run_inference(model: ClipModel, frames: Iterable, info: SourceInfo, tracking_settings: Any, lens: Lens,
                  decode_params: Callable[[Any], dict], reporter: ProgressReporter | None = None,
                  total_frames: int = 0, clip_length: int = CLIP_LENGTH,
                  shot_detector: ShotCutDetector | None = None) -> InferenceOutcome:
    """Feed consecutive clips of preprocessed frames through the network, accumulating tracks.

    `frames` yields video.Frame objects (already selected by start/end/stride). The StreamState
    carries the previous frame, ConvGRU hidden state, tracker and memory between clips. A
    FrameReadError from the source ends the loop after the frames read so far (outcome.read_error).

    With a `shot_detector` (core.shots.ShotCutDetector) the stream restarts at every hard cut: the
    frames before the cut finish as a (shorter) clip, and tracks of the new shot get ids above all
    earlier ones, so no track spans a cut (TRACE's tracker and world cams assume one camera).
    """
    offsets = input_offsets(info.height, info.width)                        # [10], same for every frame
    accumulator = TrackAccumulator()
    stream = model.new_stream()
    images = np.empty((clip_length, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)  # [8,512,512,3] reused buffer
    indices = np.empty(clip_length, np.int64)
    times = np.empty(clip_length, np.float64)
    filled = processed = clips = 0
    first_frame = last_frame = None
    shot_cuts: list[int] = []
    id_offset = max_id = 0          # track ids of later shots start above every earlier id
    started = time.monotonic()
    if reporter:
        reporter.begin_stage("inference", total_frames)

    def flush() -> None:
        nonlocal filled, processed, clips, max_id
        clip = ClipFrames(indices[:filled].copy(), times[:filled].copy())
        output = model.run_clip(images[:filled], stream, tracking_settings)
        if output is not None and len(_numpy(output.track_ids)) > 0:
            rows = decode_clip_rows(output, clip, offsets, lens, decode_params)
            rows["track_id"] = rows["track_id"] + id_offset
            max_id = max(max_id, int(rows["track_id"].max()))
            accumulator.add(rows)
        processed += filled
        clips += 1
        filled = 0
        if reporter:
            reporter.update(processed)

    read_error = None
    try:
        for frame in frames:
            if frame.rgb.shape[:2] != (info.height, info.width):
                raise FrameReadError(
                    f"frame {frame.index} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, not "
                    f"{info.width}x{info.height} like the rest of the video; stopped after frame {last_frame}",
                    frame_index=frame.index, last_good_frame=last_frame)
            if shot_detector is not None and shot_detector.push(frame.index, frame.rgb):
                if filled:
                    flush()
                stream = model.new_stream()
                id_offset = max_id
                shot_cuts.append(frame.index)
            images[filled] = preprocess_frame(frame.rgb)
            indices[filled] = frame.index
            times[filled] = frame.timestamp_s
            first_frame = frame.index if first_frame is None else first_frame
            last_frame = frame.index
            filled += 1
            if filled == clip_length:
                flush()
    except FrameReadError as error:
        read_error = error
    if filled:
        flush()
    if reporter:
        reporter.end_stage()
    return InferenceOutcome(accumulator, processed, clips, time.monotonic() - started, read_error,
                            first_frame, last_frame, shot_cuts)
