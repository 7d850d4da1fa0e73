"""One run, composed: plan -> SMPL file -> network -> loop -> SMPL geometry -> world stage -> result file.

`run_video` reads as the list of steps; each step is a function here or in core.pipeline.plan /
core.pipeline.loop. The raw result (TRACE's arrays as decoded, one sequence) goes through the world
stage (core.world.postprocess: shots, one camera, floor, foot contacts) and is written once, atomically.
"""
from __future__ import annotations

import platform
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch

from trace_format.npz import write_result
from trace_format.schema import CameraInfo, FramesProcessed, TraceResult, TrackResult, VideoInfo
from trace_format.skeleton import load_default_skeleton
from trace_format.smpl_file import SmplModelData, SmplModelError, load_smpl_model_file

from .. import __version__
from ..camera import Lens, normalized_focal_to_fov
from ..checkpoints import sha256_file
from ..errors import FrameReadError, InputError, NoFramesError, NoPersonFoundError, SmplModelFileError
from ..keypoints import boxes_from_keypoints, project_keypoints, skeleton_joints_cam
from ..nn import TraceModel, decode_params
from ..nn.trace_model import RaftSchedule
from ..output import OutputFolder, WriteOutcome, estimated_result_bytes
from ..progress import ProgressReporter
from ..shots import ShotCutDetector
from ..smpl.body_model import BodyModel, hips_minus_anchor, place_at_hip_center
from ..smpl.extra_regressor import (PLACEMENT_OFFICIAL, PLACEMENT_SMPL_HIPS, ExtraRegressorError, PlacementRegressor,
                                    load_extra_regressor)
from ..video import SourceInfo, open_frame_source
from ..weights import ensure_weight_files, resolve_weights_location
from ..world.ground import GroundFitError, foot_joint_heights
from ..world.postprocess import WorldProcessingError, WorldSummary, apply_world_processing, smpl_rest_body
from .loop import (CLIP_LENGTH, NUM_BETAS, ClipModel, InferenceOutcome, infill_non_finite_rows, run_inference,
                   trim_unobserved_ends)
from .plan import RunOptions, RunPlan, plan_run

SMPL_BATCH = 256           # (track, frame) rows per SMPL forward pass
SMPL_VERTICES = 6890       # for the size estimate before the model file is read


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


@dataclass(frozen=True)
class Body:
    """The --smpl-model file loaded for this run (and the official placement regressor, if given)."""

    model: BodyModel
    data: SmplModelData
    placement: PlacementRegressor | None
    path: Path


def disable_tf32() -> None:
    """Full float32 on CUDA. PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default;
    on the H100 that changed which person the official tracker picked on the reference clip, while
    with TF32 off CUDA float32 matched the official float64 output to 1.3e-5 (relative)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def load_body_model(path: Path, device: str, dtype: torch.dtype = torch.float32):
    """Load --smpl-model; any problem with the file becomes exit code 5 with the loader's message."""
    path = Path(path)
    try:
        model_data = load_smpl_model_file(path)
    except SmplModelError as error:
        raise SmplModelFileError(f"cannot use the SMPL model file {path}: {error}") from None
    check_rest_body(model_data, path)
    return BodyModel(model_data, device=device, dtype=dtype), model_data


def check_rest_body(model_data: Any, path: Path) -> None:
    """The world stage stands each body on its soles (lowest rest vertex): check that this model
    allows it before the network runs, so a bad file fails in seconds, not after the inference."""
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


def load_network(weights_dir: Path | None, offline: bool, device: str, dtype: torch.dtype,
                 reporter: ProgressReporter, autocast_dtype: torch.dtype | None = None,
                 raft: RaftSchedule | None = None) -> LoadedNetwork:
    """Find (download if allowed), check and load the three checkpoints.

    The one place run_video gets its network from: tests replace this function to run the whole
    command with a cheap stand-in network (tests/helpers/stand_in_network.py).
    """
    location = resolve_weights_location(weights_dir)
    weights_dir = location.folder
    reporter.info(f"weights folder: {location.describe()}")
    paths = ensure_weight_files(weights_dir, offline=offline, on_progress=_download_progress(reporter),
                                on_message=reporter.info)
    reporter.begin_stage("load_weights", 1, unit="steps")
    model = TraceModel.from_weights(weights_dir, device=device, dtype=dtype, autocast_dtype=autocast_dtype, raft=raft)
    for line in model.load_info:           # ignored extra keys, rebuilt buffers, converted dtypes
        reporter.info(line)
    weights_sha256 = {name: sha256_file(path) for name, path in paths.items()}
    reporter.update(1)
    reporter.end_stage()
    return LoadedNetwork(model, decode_params, weights_sha256)


def run_video(options: RunOptions, reporter: ProgressReporter) -> RunSummary:
    """Run TRACE on one input and write its result file; raises TraceError subclasses on failure.

    Cheap checks come first (plan_run, the SMPL file, the weights files) so mistakes fail in seconds,
    before the network is loaded.
    """
    started = time.monotonic()
    with ExitStack() as resources:   # the output folder's lock is held until the result is written
        with open_frame_source(options.input_path, image_fps=options.image_fps or 30.0) as source:
            plan = plan_run(options, source.info, reporter)
            configure_torch(plan)
            output = open_output(plan, resources, reporter)
            reporter.start(plan.total_frames, plan.info.fps, str(options.input_path))
            notes = list(plan.notes)
            for note in notes:
                reporter.info(note)
            body = load_body(plan)
            network = load_network(options.weights_dir, options.offline, plan.device, plan.dtype, reporter,
                                   autocast_dtype=plan.autocast, raft=plan.raft)
            with torch.inference_mode():
                outcome = run_inference(network.model, source.frames(plan.frame_range), plan.info, plan.tracking,
                                        plan.lens, network.decode_params, reporter=reporter,
                                        total_frames=plan.total_frames,
                                        shot_detector=ShotCutDetector() if plan.shot_detection else None)
        weights_sha256 = network.weights_sha256
        del network
        tracks = finished_tracks(plan, outcome, notes, reporter)
        if body is not None:
            add_body_geometry(tracks, body, options.save_vertices, reporter)
        world = world_options(plan, body)
        raw = build_run_result(tracks, plan.info, plan.lens, result_settings(plan, body, world, outcome),
                               weights_sha256, smpl_model_info(body), notes, outcome)
        del tracks
        processed, world_summary = world_stage(raw, outcome.shot_cuts, world, body, reporter)
        del raw
        written = write_result_file(output, processed, outcome, reporter)
        return RunSummary(result_path=written.path, tracks=len(processed.tracks), frames=outcome.frames_processed,
                          seconds=time.monotonic() - started, partial_error=outcome.read_error,
                          notes=list(processed.notes), world=world_summary, write=written)


def configure_torch(plan: RunPlan) -> None:
    """Full float32 on CUDA; --threads for torch and OpenCV."""
    if plan.device == "cuda":
        disable_tf32()
    if plan.options.threads:
        torch.set_num_threads(plan.options.threads)
        cv2.setNumThreads(plan.options.threads)


def open_output(plan: RunPlan, resources: ExitStack, reporter: ProgressReporter) -> OutputFolder:
    """Create, lock (held by `resources`) and probe OUT_DIR before anything heavy runs (core.output)."""
    options = plan.options
    output = resources.enter_context(OutputFolder.prepare(
        options.input_path, options.output_dir,
        estimated_result_bytes(plan.total_frames or plan.info.frame_count, smpl_joints=options.smpl_model is not None,
                               vertices=SMPL_VERTICES if options.save_vertices else 0)))
    if output.removed_temporaries:
        reporter.info(f"removed {len(output.removed_temporaries)} unfinished temporary file(s) of an earlier "
                      f"run that was killed while writing")
    return output


def load_body(plan: RunPlan) -> Body | None:
    """--smpl-model (and --smpl-extra-regressor), checked before the network loads; None without one."""
    options = plan.options
    if options.smpl_model is None:
        return None
    model, data = load_body_model(options.smpl_model, plan.device, plan.dtype)
    placement = None
    if options.smpl_extra_regressor is not None:
        try:
            placement = load_extra_regressor(options.smpl_extra_regressor)
            placement.check_vertices(model.num_vertices)
        except ExtraRegressorError as error:
            raise SmplModelFileError(f"cannot use --smpl-extra-regressor: {error}") from None
    return Body(model, data, placement, Path(options.smpl_model))


def finished_tracks(plan: RunPlan, outcome: InferenceOutcome, notes: list[str],
                    reporter: ProgressReporter) -> dict[int, dict[str, np.ndarray]]:
    """The loop's tracks, checked and (product mode) trimmed; the facts users should know go to `notes`."""
    options = plan.options
    if plan.info.timestamps_repaired:
        notes.append(f"the video's clock went backwards or stood still at {plan.info.timestamps_repaired} frame(s) "
                     f"(joined recordings?): those times were moved forward to keep time increasing")
        reporter.warning(notes[-1])
    if plan.info.variable_frame_rate:
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
    return tracks


def add_body_geometry(tracks: dict[int, dict[str, np.ndarray]], body: Body, save_vertices: bool,
                      reporter: ProgressReporter) -> None:
    """The "smpl" stage: SMPL joints (and vertices) of every track, in place."""
    reporter.begin_stage("smpl", sum(len(t["frames"]) for t in tracks.values()), unit="person-frames")
    done = 0
    with torch.inference_mode():
        for track in tracks.values():
            add_smpl_geometry(track, body.model, save_vertices, placement=body.placement)
            done += len(track["frames"])
            reporter.update(done)
    reporter.end_stage()


def smpl_model_info(body: Body | None) -> dict | None:
    """result.smpl_model: which SMPL file the joints/vertices came from."""
    if body is None:
        return None
    return {"path": str(body.path.resolve()), "sha256": body.data.sha256 or sha256_file(body.path)}


def world_options(plan: RunPlan, body: Body | None) -> WorldOptions:
    """What the world stage does: the --no-align / --no-foot-cleanup / --no-denoise flags and the body shape."""
    options = plan.options
    return WorldOptions(align=options.align, foot_cleanup=options.foot_cleanup, denoise=options.denoise,
                        rest_body=None if body is None else smpl_rest_body(body.data))


def result_settings(plan: RunPlan, body: Body | None, world: WorldOptions, outcome: InferenceOutcome) -> dict[str, Any]:
    """result.settings: every choice that shaped the result (docs/result_format.md)."""
    options, placement = plan.options, None if body is None else body.placement
    return {
        "tracking": plan.tracking.to_dict(),
        "tracking_mode": "official" if options.official_tracking else "product",
        "tracking_preset": options.tracking_preset,
        "keypoints_2d": "smpl_model" if options.smpl_model is not None else "default_skeleton",
        "placement": PLACEMENT_OFFICIAL if placement is not None else PLACEMENT_SMPL_HIPS,
        "smpl_extra_regressor": None if placement is None else {"path": str(placement.path.resolve()),
                                                                "sha256": placement.sha256},
        "subjects": plan.tracking.subjects,
        "lens": plan.lens.as_dict(),
        "device": plan.device,
        "dtype": options.dtype,
        "autocast": options.autocast,
        "raft": plan.raft.as_dict(),
        "cuda_tf32": False if plan.device == "cuda" else None,
        "frame_range": plan.frame_range.as_dict(),
        "clip_length": CLIP_LENGTH,
        "threads": torch.get_num_threads(),
        "smpl_model": str(options.smpl_model) if options.smpl_model else None,
        "save_vertices": bool(options.save_vertices),
        "shot_cuts": list(outcome.shot_cuts),
        "world": {"align": world.align, "foot_cleanup": world.foot_cleanup, "denoise": world.denoise,
                  "shot_detection": plan.shot_detection,
                  "rest_body": "default skeleton" if world.rest_body is None else "SMPL model (mean shape per track)"},
        "input": str(options.input_path),
    }


def world_stage(raw: TraceResult, cut_frames: Sequence[int], world: WorldOptions, body: Body | None,
                reporter: ProgressReporter) -> tuple[TraceResult, WorldSummary]:
    """process_world; a model the world stage cannot use is the SMPL file's fault (exit code 5)."""
    try:
        return process_world(raw, cut_frames, world, reporter)
    except WorldProcessingError as error:
        if body is None:
            raise
        raise SmplModelFileError(f"cannot use the SMPL model file {body.path} for the floor and foot "
                                 f"contacts: {error}") from None


def write_result_file(output: OutputFolder, result: TraceResult, outcome: InferenceOutcome,
                      reporter: ProgressReporter) -> WriteOutcome:
    """The "write" stage: the one place a run writes its result (atomically; fallback folders in core.output)."""
    reporter.begin_stage("write", 1, unit="files")
    written = output.write(lambda path: write_result(path, result), partial=outcome.read_error is not None)
    reporter.update(1)
    reporter.end_stage()
    return written


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
    count = len(track["frames"])
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
    return {"name": "trace-blender", "version": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def build_run_result(tracks: dict[int, dict[str, np.ndarray]], info: SourceInfo, lens: Lens, settings: dict,
                     weights_sha256: dict[str, str], smpl_model: dict | None, notes: list[str],
                     outcome: InferenceOutcome) -> TraceResult:
    """The raw TraceResult (trace_format.schema) of a run: TRACE's arrays as decoded, one sequence.

    No shots yet: the cuts (outcome.shot_cuts) become shots in the world stage (`process_world`),
    the single place shots are made.
    """
    optional = ("joints_cam", "joints_world", "vertices_cam", "vertices_world")
    track_results = []
    rest_joints = None
    for track_id, arrays in tracks.items():
        extra = {name: arrays[name].astype(np.float32) for name in optional if name in arrays}
        joints = arrays.get("joints_cam")
        if joints is None:      # no SMPL model: the default skeleton posed by the rotations (what Blender builds)
            if rest_joints is None:
                rest_joints = load_default_skeleton()
            joints = skeleton_joints_cam(arrays["poses"], arrays["hip_center_cam"], rest_joints)
        extra["keypoints_2d"] = project_keypoints(joints, lens)
        extra["box_2d"] = boxes_from_keypoints(extra["keypoints_2d"])
        track_results.append(TrackResult(
            track_id=int(track_id),
            frames=arrays["frames"].astype(np.int64),
            times=arrays["times"].astype(np.float64),
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
