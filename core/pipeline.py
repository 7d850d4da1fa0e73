"""From a video to tracked, world-grounded SMPL sequences: the temporal loop and the result.

    frames (stream) -> preprocess -> clips of 8 -> TraceModel.run_clip (state carried in StreamState)
        -> per-row decoding (SMPL axis-angle, lens, world trajectory, 2D centre)
        -> compact per-track numpy accumulation -> optional SMPL joints/vertices
        -> world post-processing (core.world.postprocess: shots, one camera, floor, foot contacts)
        -> result file (version 2)

Memory stays constant in the video length: one clip of preprocessed frames (8 x 512x512x3 uint8) is
alive at a time, and each tracked (person, frame) pair costs under a kilobyte of numpy arrays
(benchmarks/bench_memory.py measures it).
"""
from __future__ import annotations

import platform
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

from trace_format.schema import TraceResult

from . import __version__
from .camera import (Lens, cams_to_translation, lens_from_focal_px, lens_from_horizontal_fov, normalized_focal_to_fov,
                     official_lens)
from .errors import (FrameReadError, InputError, NoFramesError, NoPersonFoundError, SmplModelFileError, UsageError)
from .nn.trace_model import RAFT_ITERATIONS, RaftSchedule, resolve_device
from .preprocess import INPUT_SIZE, input_offsets, map_yx_to_source_xy, preprocess_frame
from .output import OutputFolder, WriteOutcome, estimated_result_bytes
from .progress import ProgressReporter
from .smpl.extra_regressor import PLACEMENT_OFFICIAL, PLACEMENT_SMPL_HIPS
from .video import FrameRange, SourceInfo, open_frame_source, parse_frame_position
from .world.postprocess import WorldProcessingError, WorldSummary, apply_world_processing, smpl_rest_body

CLIP_LENGTH = 8            # official temp_clip_length_eval: the ConvGRU state is trained for it
SMPL_BATCH = 256           # (track, frame) rows per SMPL forward pass
NUM_JOINTS = 24
NUM_BETAS = 10
SMPL_VERTICES = 6890       # for the size estimate before the model file is read


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

    Returns arrays: track_id[N], frame[N], time[N], poses[N,24,3] (joint 0 = camera-frame
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
        "frame": clip.frame_indices[batch_ids],
        "time": clip.timestamps_s[batch_ids],
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


ROW_FIELDS = ("frame", "time", "poses", "global_orient_world", "betas", "hip_center_cam", "hip_center_world",
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
            frames = arrays["frame"]
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
                  shot_detector: Any = None) -> InferenceOutcome:
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


# --------------------------------------------------------------------------------------------------
# SMPL joints / vertices
# --------------------------------------------------------------------------------------------------
def add_smpl_geometry(track: dict[str, np.ndarray], body_model: Any, save_vertices: bool,
                      batch: int = SMPL_BATCH, placement: Any = None) -> None:
    """Fill joints_cam / joints_world [T,24,3] (and vertices_cam / vertices_world [T,V,3]) in place.

    Camera frame: poses as decoded (joint 0 = camera-frame orientation), placed by the hip centre
    at hip_center_cam. World frame: joint 0 replaced by global_orient_world, placed at
    hip_center_world (docs/architecture.md, "Body placement").

    With `placement` (core.smpl.extra_regressor.PlacementRegressor, the official joints 35/36) the
    network's translation is where that point is, as in the official code: hip_center_cam / _world
    are moved by the body's hips-minus-anchor offset first, so everything that places by the hips
    (joints here, the world stage, the Blender importer) puts the body exactly where the official does.
    """
    from .smpl.body_model import hips_minus_anchor, place_at_hip_center

    count = len(track["frame"])
    outputs: dict[str, list[np.ndarray]] = {"joints_cam": [], "joints_world": []}
    if save_vertices:
        outputs.update({"vertices_cam": [], "vertices_world": []})
    for begin in range(0, count, batch):
        part = slice(begin, min(begin + batch, count))
        poses_cam = track["poses"][part]                                       # [B,24,3]
        poses_world = poses_cam.copy()
        poses_world[:, 0] = track["global_orient_world"][part]
        betas = track["betas"][part]                                           # [B,10]
        for frame_name, poses, hip_key in (("cam", poses_cam, "hip_center_cam"),
                                           ("world", poses_world, "hip_center_world")):
            joints, vertices = body_model(poses, betas, with_vertices=save_vertices)  # [B,24,3], [B,V,3]
            joints = joints.double().cpu().numpy()
            vertices = None if vertices is None else vertices.double().cpu().numpy()
            if placement is not None:
                anchor = body_model.regressed_points(poses, betas, placement.indices, placement.weights)
                track[hip_key][part] = track[hip_key][part] + hips_minus_anchor(joints, anchor.double().cpu().numpy())
            joints, vertices = place_at_hip_center(joints, vertices, track[hip_key][part])
            outputs[f"joints_{frame_name}"].append(joints)
            if save_vertices:
                outputs[f"vertices_{frame_name}"].append(vertices.astype(np.float32))
    for name, parts in outputs.items():
        track[name] = np.concatenate(parts)


# --------------------------------------------------------------------------------------------------
# One run: input checks -> weights -> inference -> SMPL -> result file
# --------------------------------------------------------------------------------------------------
@dataclass
class RunOptions:
    """Everything `python -m core run` accepts (see docs/cli.md)."""

    input_path: Path
    output_dir: Path
    weights_dir: Path | None = None
    device: str = "auto"                # auto | cpu | cuda
    dtype: str = "float32"              # float32 | float64
    autocast: str = "none"              # none | bf16 | fp16: mixed precision for backbones and head maps
    subjects: str | int | None = None   # None: 'all' (product) / 1 (official)
    official_tracking: bool = False
    tracking_preset: str | None = None  # official evaluation settings (TrackingSettings.preset); implies official
    fov_deg: float | None = None
    focal_px: float | None = None
    start: str | None = None            # frame number or seconds ('4.5s')
    end: str | None = None
    stride: int = 1
    image_fps: float | None = None      # image folders only
    smpl_model: Path | None = None
    smpl_extra_regressor: Path | None = None   # J_regressor_extra.npy: official placement (needs smpl_model)
    save_vertices: bool = False
    offline: bool = False
    threads: int | None = None
    tracking_overrides: dict[str, Any] = field(default_factory=dict)   # TrackingSettings field -> value
    shot_detection: bool | None = None  # restart tracking at hard cuts; None: on, off with official tracking
    align: bool = True                  # fit the floor: z = 0, +Z up (else the fixed (x, z, -y) mapping)
    foot_cleanup: bool = True           # remove foot skate (contacts are detected whenever align is on)
    denoise: bool = True                # temporal denoising of every track (core.world.denoise)
    raft_iterations: int | None = None  # None: the official 20 (core.nn.RaftSchedule)
    raft_warm_start: bool = False       # RAFT started from the previous pair's flow (off the official program)


@dataclass
class RunSummary:
    result_path: Path
    tracks: int
    frames: int
    seconds: float
    partial_error: FrameReadError | None = None
    notes: list[str] = field(default_factory=list)
    world: WorldSummary | None = None   # what the world stage did (floor fits, foot sliding)
    write: WriteOutcome | None = None   # where the result went (a fallback folder when OUT_DIR failed)


@dataclass(frozen=True)
class WorldOptions:
    """What the world stage does after inference (`python -m core run` flags, docs/cli.md)."""

    align: bool = True
    foot_cleanup: bool = True
    denoise: bool = True
    rest_body: Callable[[Any], Any] | None = None   # core.world.smpl_rest_body(model); None: default skeleton


@dataclass
class LoadedNetwork:
    """The network the loop runs and where its weights came from."""

    model: ClipModel
    decode_params: Callable[[Any], dict]
    weights_sha256: dict[str, str]


def disable_tf32() -> None:
    """Full float32 on CUDA. PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default;
    on the H100 that changed which person the official tracker picked on the reference clip, while
    with TF32 off CUDA float32 matched the official float64 output to 1.3e-5 (relative)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def resolve_dtype(name: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise UsageError(f"--dtype must be float32 or float64 (got {name!r})")
    return dtypes[name]


def build_tracking_settings(official: bool, subjects: str | int | None, fps: float,
                            overrides: dict[str, Any] | None = None, preset: str | None = None):
    """--official-tracking: TrackingSettings.official() (subject_num 1 unless --subjects N);
    --tracking-preset NAME: TrackingSettings.preset(NAME) (official semantics; --subjects N overrides its
    subject count); otherwise the product defaults for this frame rate with `subjects` ('all' by default).
    `overrides` (--tracking KEY=VALUE) are applied last."""
    import dataclasses

    from .tracking.settings import TrackingSettings, TrackingSettingsError, parse_subjects

    parsed = parse_subjects(str(subjects)) if subjects is not None else None
    if preset:
        settings = TrackingSettings.preset(preset)
        settings = settings.with_subjects(parsed) if parsed is not None else settings
    elif official:
        settings = TrackingSettings.official()
        settings = settings.with_subjects(parsed) if parsed is not None else settings
    else:
        settings = TrackingSettings.product_default(fps, subjects=parsed if parsed is not None else "all")
    if overrides:
        known = {f.name for f in dataclasses.fields(TrackingSettings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TrackingSettingsError(f"--tracking: unknown setting(s) {unknown}; known: {sorted(known)}")
        try:
            settings = dataclasses.replace(settings, **overrides)
        except (TypeError, ValueError, TrackingSettingsError) as error:
            raise TrackingSettingsError(f"--tracking: {error}") from None
    return settings


def build_lens(info: SourceInfo, fov_deg: float | None, focal_px: float | None) -> Lens:
    if fov_deg is not None and focal_px is not None:
        raise UsageError("give either --fov or --focal, not both")
    option = "--fov" if fov_deg is not None else "--focal"
    try:
        if fov_deg is not None:
            return lens_from_horizontal_fov(fov_deg, info.width, info.height)
        if focal_px is not None:
            return lens_from_focal_px(focal_px, info.width, info.height)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None
    return official_lens(info.width, info.height)


def load_body_model(path: Path, device: str, dtype: torch.dtype = torch.float32):
    """Load --smpl-model; any problem with the file becomes exit code 5 with the loader's message."""
    from trace_format.smpl_file import SmplModelError, load_smpl_model_file

    path = Path(path)
    try:
        model_data = load_smpl_model_file(path)
    except SmplModelError as error:
        raise SmplModelFileError(f"cannot use the SMPL model file {path}: {error}") from None
    check_rest_body(model_data, path)
    from .smpl.body_model import BodyModel

    return BodyModel(model_data, device=device, dtype=dtype), model_data


def check_rest_body(model_data: Any, path: Path) -> None:
    """The world stage stands each body on its soles (lowest rest vertex): check that this model
    allows it before the network runs, so a bad file fails in seconds, not after the inference."""
    from .world.ground import GroundFitError, foot_joint_heights

    betas = np.zeros(NUM_BETAS)
    try:
        foot_joint_heights(np.asarray(model_data.joints_for_betas(betas), np.float64),
                           np.asarray(model_data.vertices_for_betas(betas), np.float64))
    except GroundFitError as error:
        raise SmplModelFileError(f"cannot use the SMPL model file {path} to place feet on the floor: {error}. "
                                 "Use the official SMPL_NEUTRAL.pkl or run without --smpl-model") from None


def _download_progress(reporter: ProgressReporter) -> Callable[[str, int, int], None]:
    def on_progress(name: str, done: int, total: int) -> None:
        if done == 0:
            reporter.begin_stage("load_weights", total, unit="bytes")
        else:
            reporter.update(done)
            if total and done >= total:
                reporter.end_stage()
    return on_progress


AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_autocast(name: str, device: str, dtype: torch.dtype) -> torch.dtype | None:
    """--autocast: bf16/fp16 mixed precision for the backbones and head maps (tracking stays in dtype)."""
    if name not in AUTOCAST_DTYPES:
        raise UsageError(f"--autocast must be none, bf16 or fp16 (got {name!r})")
    if name != "none" and dtype != torch.float32:
        raise UsageError("--autocast needs --dtype float32 (mixed precision runs below float32)")
    if name == "fp16" and device != "cuda":
        raise UsageError("--autocast fp16 needs a CUDA device; use bf16 on the CPU (or none)")
    return AUTOCAST_DTYPES[name]


def resolve_raft_schedule(iterations: int | None, warm_start: bool) -> RaftSchedule:
    """--raft-iterations / --raft-warm-start -> core.nn.RaftSchedule (default: the official schedule)."""
    if iterations is not None and (not isinstance(iterations, int) or iterations < 1):
        raise UsageError(f"--raft-iterations must be a whole number >= 1 (got {iterations!r})")
    return RaftSchedule(iterations=RAFT_ITERATIONS if iterations is None else iterations,
                        warm_start=bool(warm_start))


def load_network(weights_dir: Path | None, offline: bool, device: str, dtype: torch.dtype,
                 reporter: ProgressReporter, autocast_dtype: torch.dtype | None = None,
                 raft: RaftSchedule | None = None) -> LoadedNetwork:
    """Find (download if allowed), check and load the three checkpoints.

    The one place run_video gets its network from: tests replace this function to run the whole
    command with a cheap stand-in network (tests/helpers/stand_in_network.py).
    """
    from .checkpoints import sha256_file
    from .weights import ensure_weight_files, resolve_weights_location

    location = resolve_weights_location(weights_dir)
    weights_dir = location.folder
    reporter.info(f"weights folder: {location.describe()}")
    paths = ensure_weight_files(weights_dir, offline=offline, on_progress=_download_progress(reporter),
                                on_message=reporter.info)
    reporter.begin_stage("load_weights", 1, unit="steps")
    from .nn import TraceModel, decode_params

    model = TraceModel.from_weights(weights_dir, device=device, dtype=dtype, autocast_dtype=autocast_dtype, raft=raft)
    for line in model.load_info:           # ignored extra keys, rebuilt buffers, converted dtypes
        reporter.info(line)
    weights_sha256 = {name: sha256_file(path) for name, path in paths.items()}
    reporter.update(1)
    reporter.end_stage()
    return LoadedNetwork(model, decode_params, weights_sha256)


def run_video(options: RunOptions, reporter: ProgressReporter) -> RunSummary:
    """Run TRACE on one input and write its result file; raises TraceError subclasses on failure.

    Cheap checks come first (input, options, SMPL file, weights files) so mistakes fail in seconds,
    before the network is loaded.
    """
    from .checkpoints import sha256_file

    run_started = time.monotonic()
    notes: list[str] = []
    with ExitStack() as resources:   # the output folder's lock is held until the result is written
        source = open_frame_source(options.input_path, image_fps=options.image_fps or 30.0)
        try:
            info = source.info
            if info.kind == "video" and options.image_fps is not None:
                reporter.warning("--fps only applies to image folders; using the video's own frame rate "
                                 f"({info.fps:.3f} fps)")
            frame_range = FrameRange(start=parse_frame_position(options.start, info.fps, "--start") or 0,
                                     end=parse_frame_position(options.end, info.fps, "--end"), stride=options.stride)
            total = frame_range.selected_count(info.frame_count) if info.frame_count else 0
            if info.frame_count and total == 0:
                raise NoFramesError(f"no frames selected: --start {frame_range.start} is at or beyond the "
                                    f"{info.frame_count} frames of {options.input_path}")
            lens = build_lens(info, options.fov_deg, options.focal_px)
            tracking = build_tracking_settings(options.official_tracking, options.subjects, info.fps,
                                               options.tracking_overrides, options.tracking_preset)
            if options.smpl_extra_regressor is not None and options.smpl_model is None:
                raise UsageError("--smpl-extra-regressor needs --smpl-model FILE (the official placement point is "
                                 "regressed from the SMPL mesh)")
            device = resolve_device(options.device)
            dtype = resolve_dtype(options.dtype)
            autocast_dtype = resolve_autocast(options.autocast, device, dtype)
            raft = resolve_raft_schedule(options.raft_iterations, options.raft_warm_start)
            if device == "cuda":
                disable_tf32()
            if options.threads:
                torch.set_num_threads(options.threads)
                import cv2
                cv2.setNumThreads(options.threads)
            output = resources.enter_context(OutputFolder.prepare(
                options.input_path, options.output_dir,
                estimated_result_bytes(total or info.frame_count, smpl_joints=options.smpl_model is not None,
                                       vertices=SMPL_VERTICES if options.save_vertices else 0)))
            if output.removed_temporaries:
                reporter.info(f"removed {len(output.removed_temporaries)} unfinished temporary file(s) of an earlier "
                              f"run that was killed while writing")
            reporter.start(total, info.fps, str(options.input_path))
            if info.rotation_deg:
                notes.append(f"frames rotated {info.rotation_deg} degrees clockwise (container rotation metadata)")
                reporter.info(notes[-1])

            body_model = smpl_data = placement = None
            if options.smpl_model is not None:
                body_model, smpl_data = load_body_model(options.smpl_model, device, dtype)
            if options.smpl_extra_regressor is not None:
                from .smpl.extra_regressor import ExtraRegressorError, load_extra_regressor
                try:
                    placement = load_extra_regressor(options.smpl_extra_regressor)
                    placement.check_vertices(body_model.num_vertices)
                except ExtraRegressorError as error:
                    raise SmplModelFileError(f"cannot use --smpl-extra-regressor: {error}") from None

            network = load_network(options.weights_dir, options.offline, device, dtype, reporter,
                                   autocast_dtype=autocast_dtype, raft=raft)
            if not raft.official:
                notes.append(f"RAFT schedule off the official program: {raft.iterations} iterations"
                             f"{', warm-started from the previous frame pair' if raft.warm_start else ''}")
                reporter.info(notes[-1])

            detect_cuts = (not options.official_tracking) if options.shot_detection is None else options.shot_detection
            shot_detector = None
            if detect_cuts:
                from .shots import ShotCutDetector

                shot_detector = ShotCutDetector()
            with torch.inference_mode():
                outcome = run_inference(network.model, source.frames(frame_range), info, tracking, lens,
                                        network.decode_params, reporter=reporter, total_frames=total,
                                        shot_detector=shot_detector)
        finally:
            source.close()
        weights_sha256 = network.weights_sha256
        del network
        if info.timestamps_repaired:
            notes.append(f"the video's clock went backwards or stood still at {info.timestamps_repaired} frame(s) "
                         f"(joined recordings?): those times were moved forward to keep time increasing")
            reporter.warning(notes[-1])
        if info.variable_frame_rate:
            notes.append("variable frame rate: per-frame times are the container's timestamps")
            reporter.warning(notes[-1])
        if outcome.frames_processed == 0:
            if outcome.read_error is not None:
                raise InputError(f"could not read any frame of {options.input_path}: {outcome.read_error.message}")
            raise NoFramesError(f"no frames could be read from {options.input_path} in the selected range")
        if outcome.read_error is not None:
            notes.append(f"stopped early: {outcome.read_error.message}")
        if outcome.shot_cuts:
            notes.append(f"{len(outcome.shot_cuts)} hard cut(s) at frames {outcome.shot_cuts}: tracking restarted "
                         f"there, so each shot has its own tracks, world frame, floor and camera")
            reporter.info(notes[-1])
        tracks = outcome.accumulator.finalize()
        non_finite = sum(int(track["non_finite"].sum()) for track in tracks.values())
        if non_finite:
            filled = {track_id: infill_non_finite_rows(track) for track_id, track in tracks.items()}
            lost = [track_id for track_id, track in filled.items() if track is None]
            tracks = {track_id: track for track_id, track in filled.items() if track is not None}
            notes.append(f"{non_finite} row(s) of the network's output held NaN or infinite values: marked unobserved "
                         f"(confidence 0) and filled from the nearest good frame of the same person"
                         + (f"; {len(lost)} track(s) without a single good row dropped" if lost else ""))
            reporter.warning(notes[-1])
        if not options.official_tracking:
            tracks, dropped, trimmed = trim_unobserved_ends(tracks)
            if trimmed:
                notes.append(f"{trimmed} infilled row(s) before a track's first or after its last detection removed"
                             f" ({dropped} track(s) never detected in their own frames dropped)")
                reporter.info(notes[-1])
        if not tracks:
            stopped = f" (reading stopped early: {outcome.read_error.message})" if outcome.read_error else ""
            raise NoPersonFoundError(
                f"no person was tracked in the {outcome.frames_processed} processed frames of {options.input_path}"
                f"{stopped}; nothing was written. Make sure people are visible and not tiny in the frame"
                + ("" if not options.official_tracking else ", or try without --official-tracking") + ".")

        smpl_info = None
        if body_model is not None:
            rows = sum(len(t["frame"]) for t in tracks.values())
            reporter.begin_stage("smpl", rows, unit="person-frames")
            done = 0
            with torch.inference_mode():
                for track in tracks.values():
                    add_smpl_geometry(track, body_model, options.save_vertices, placement=placement)
                    done += len(track["frame"])
                    reporter.update(done)
            reporter.end_stage()
            smpl_info = {"path": str(Path(options.smpl_model).resolve()),
                         "sha256": smpl_data.sha256 or sha256_file(options.smpl_model)}

        world = WorldOptions(align=options.align, foot_cleanup=options.foot_cleanup, denoise=options.denoise,
                             rest_body=None if smpl_data is None else smpl_rest_body(smpl_data))
        settings = {
            "tracking": tracking.to_dict(),
            "tracking_mode": "official" if options.official_tracking else "product",
            "tracking_preset": options.tracking_preset,
            "keypoints_2d": "smpl_model" if options.smpl_model is not None else "default_skeleton",
            "placement": PLACEMENT_OFFICIAL if placement is not None else PLACEMENT_SMPL_HIPS,
            "smpl_extra_regressor": None if placement is None else {"path": str(placement.path.resolve()),
                                                                    "sha256": placement.sha256},
            "subjects": tracking.subjects,
            "lens": lens.as_dict(),
            "device": device,
            "dtype": options.dtype,
            "autocast": options.autocast,
            "raft": raft.as_dict(),
            "cuda_tf32": False if device == "cuda" else None,
            "frame_range": frame_range.as_dict(),
            "clip_length": CLIP_LENGTH,
            "threads": torch.get_num_threads(),
            "smpl_model": str(options.smpl_model) if options.smpl_model else None,
            "save_vertices": bool(options.save_vertices),
            "shot_cut_detection": bool(detect_cuts),
            "shot_cuts": list(outcome.shot_cuts),
            "world": {"align": world.align, "foot_cleanup": world.foot_cleanup, "denoise": world.denoise,
                      "shot_detection": bool(detect_cuts),
                      "rest_body": "default skeleton" if world.rest_body is None else "SMPL model (mean shape per track)"},
            "input": str(options.input_path),
        }
        raw = build_run_result(tracks, info, lens, settings, weights_sha256, smpl_info, notes, outcome)
        del tracks
        try:
            processed, world_summary = process_world(raw, outcome.shot_cuts, world, reporter)
        except WorldProcessingError as error:
            if options.smpl_model is None:
                raise
            raise SmplModelFileError(f"cannot use the SMPL model file {options.smpl_model} for the floor and foot "
                                     f"contacts: {error}") from None
        del raw
        reporter.begin_stage("write", 1, unit="files")
        from trace_format.npz import write_result

        written = output.write(lambda path: write_result(path, processed), partial=outcome.read_error is not None)
        reporter.update(1)
        reporter.end_stage()
        return RunSummary(result_path=written.path, tracks=len(processed.tracks), frames=outcome.frames_processed,
                          seconds=time.monotonic() - run_started, partial_error=outcome.read_error,
                          notes=list(processed.notes), world=world_summary, write=written)


def process_world(raw: TraceResult, cut_frames: Sequence[int], world: WorldOptions,
                  reporter: ProgressReporter | None = None) -> tuple[TraceResult, WorldSummary]:
    """The "world" stage: core.world.postprocess.apply_world_processing on the raw result.

    raw: the TraceResult as the network produced it (one sequence, no shots); cut_frames: the hard
    cuts found while streaming. They are the only source of shots: the stream was restarted there
    (no track crosses one), and apply_world_processing turns them into the result's shots, one
    camera, floor and registration set per shot. TRACE's raw arrays are copied unchanged.
    Returns (processed TraceResult (current format version), WorldSummary).
    """
    def on_progress(done: int, total: int) -> None:
        reporter.update(done)

    if reporter is not None:
        reporter.begin_stage("world", sum(track.num_frames for track in raw.tracks), unit="person-frames")
    processed = apply_world_processing(raw, align=world.align, foot_cleanup=world.foot_cleanup, denoise=world.denoise,
                                       cut_frames=cut_frames,
                                       rest_joints_for_track=world.rest_body,
                                       on_progress=on_progress if reporter is not None else None)
    if reporter is not None:
        reporter.end_stage()
    return processed, WorldSummary.from_result(processed)


def software_info() -> dict[str, str]:
    import cv2

    return {"name": "trace-blender", "version": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def build_run_result(tracks: dict[int, dict[str, np.ndarray]], info: SourceInfo, lens: Lens, settings: dict,
                     weights_sha256: dict[str, str], smpl_model: dict | None, notes: list[str],
                     outcome: InferenceOutcome) -> TraceResult:
    """The raw TraceResult (trace_format.schema) of a run: TRACE's arrays as decoded, one sequence.

    No shots yet: the cuts (outcome.shot_cuts) become shots in the world stage (`process_world`),
    the single place shots are made.
    """
    from trace_format.schema import CameraInfo, FramesProcessed, TrackResult, VideoInfo

    from .keypoints import boxes_from_keypoints, project_keypoints, skeleton_joints_cam

    optional = ("joints_cam", "joints_world", "vertices_cam", "vertices_world")
    track_results = []
    rest_joints = None
    for track_id, arrays in tracks.items():
        extra = {name: arrays[name].astype(np.float32) for name in optional if name in arrays}
        joints = arrays.get("joints_cam")
        if joints is None:      # no SMPL model: the default skeleton posed by the rotations (what Blender builds)
            if rest_joints is None:
                from trace_format.skeleton import load_default_skeleton
                rest_joints = load_default_skeleton()
            joints = skeleton_joints_cam(arrays["poses"], arrays["hip_center_cam"], rest_joints)
        extra["keypoints_2d"] = project_keypoints(joints, lens)
        extra["box_2d"] = boxes_from_keypoints(extra["keypoints_2d"])
        track_results.append(TrackResult(
            track_id=int(track_id),
            frames=arrays["frame"].astype(np.int64),
            times=arrays["time"].astype(np.float64),
            poses=arrays["poses"].astype(np.float32),
            global_orient_world=arrays["global_orient_world"].astype(np.float32),
            betas=arrays["betas"].astype(np.float32),
            hip_center_cam=arrays["hip_center_cam"].astype(np.float32),
            hip_center_world=arrays["hip_center_world"].astype(np.float32),
            confidence=arrays["confidence"].astype(np.float32),
            observed=arrays["observed"].astype(bool),
            center_2d=arrays["center_2d"].astype(np.float32),
            **extra))
    read_error = outcome.read_error
    return TraceResult(
        tracks=track_results,
        video=VideoInfo(path=str(info.path), fps=float(info.fps), width=int(info.width), height=int(info.height),
                        frame_count=int(info.frame_count), rotation_deg=int(info.rotation_deg),
                        variable_frame_rate=bool(info.variable_frame_rate)),
        camera=CameraInfo(fov_deg=normalized_focal_to_fov(lens.normalized_focal),
                          focal_px=float(lens.focal_px), focal_source=lens.source),
        settings=settings,
        software=software_info(),
        weights_sha256=dict(weights_sha256),
        smpl_model=smpl_model,
        notes=list(notes),
        frames_processed=FramesProcessed(
            first=int(outcome.first_frame), last=int(outcome.last_frame), stopped_early=read_error is not None,
            stop_reason=None if read_error is None else read_error.message),
    )


def write_run_result(path: Path, tracks: dict[int, dict[str, np.ndarray]], info: SourceInfo, lens: Lens,
                     settings: dict, weights_sha256: dict[str, str], smpl_model: dict | None, notes: list[str],
                     outcome: InferenceOutcome, world: WorldOptions | None = None,
                     reporter: ProgressReporter | None = None) -> Path:
    """Raw result -> world stage (default WorldOptions()) -> atomic write; what run_video does after inference."""
    from trace_format.npz import write_result

    raw = build_run_result(tracks, info, lens, settings, weights_sha256, smpl_model, notes, outcome)
    processed, _ = process_world(raw, outcome.shot_cuts, world or WorldOptions(), reporter)
    return write_result(path, processed)
