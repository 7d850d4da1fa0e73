"""Every decision of one run, made from the options and the input's header before anything heavy loads.

`plan_run` checks what can be checked in milliseconds (frame range, lens, tracking settings, device,
dtype, mixed precision, option combinations) and returns a frozen `RunPlan`; the run
(core.pipeline.run) only carries it out, so a mistake fails before the weights or the network load.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..camera import Lens, lens_from_focal_px, lens_from_horizontal_fov, official_lens
from ..errors import NoFramesError, UsageError
from ..nn.trace_model import RAFT_ITERATIONS, RaftSchedule, resolve_device
from ..progress import ProgressReporter
from ..tracking.settings import TrackingSettings, TrackingSettingsError, parse_subjects
from ..video import FrameRange, SourceInfo, parse_frame_position

AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


@dataclass(frozen=True)
class RunPlan:
    """What one run will do; built by `plan_run`, read-only afterwards."""

    options: RunOptions
    info: SourceInfo
    frame_range: FrameRange
    total_frames: int                   # frames the range selects; 0 when the container does not say
    lens: Lens
    tracking: TrackingSettings
    device: str                         # "cpu" | "cuda" | "cuda:N"
    dtype: torch.dtype
    autocast: torch.dtype | None
    raft: RaftSchedule
    shot_detection: bool
    notes: tuple[str, ...] = ()         # what the result's notes start with (rotated frames, RAFT schedule)


def plan_run(options: RunOptions, info: SourceInfo, reporter: ProgressReporter) -> RunPlan:
    """Check the options against the input's header and decide everything; raises UsageError /
    NoFramesError / TrackingSettingsError with the option's name."""
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
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype)
    autocast = resolve_autocast(options.autocast, device, dtype)
    raft = resolve_raft_schedule(options.raft_iterations, options.raft_warm_start)
    if options.smpl_extra_regressor is not None and options.smpl_model is None:
        raise UsageError("--smpl-extra-regressor needs --smpl-model FILE (the official placement point is "
                         "regressed from the SMPL mesh)")
    shot_detection = (not options.official_tracking) if options.shot_detection is None else options.shot_detection
    notes = []
    if info.rotation_deg:
        notes.append(f"frames rotated {info.rotation_deg} degrees clockwise (container rotation metadata)")
    if not raft.official:
        notes.append(f"RAFT schedule off the official program: {raft.iterations} iterations"
                     f"{', warm-started from the previous frame pair' if raft.warm_start else ''}")
    return RunPlan(options=options, info=info, frame_range=frame_range, total_frames=total, lens=lens,
                   tracking=tracking, device=device, dtype=dtype, autocast=autocast, raft=raft,
                   shot_detection=bool(shot_detection), notes=tuple(notes))


def resolve_dtype(name: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise UsageError(f"--dtype must be float32 or float64 (got {name!r})")
    return dtypes[name]


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


def build_tracking_settings(official: bool, subjects: str | int | None, fps: float,
                            overrides: dict[str, Any] | None = None, preset: str | None = None) -> TrackingSettings:
    """--official-tracking: TrackingSettings.official() (subject_num 1 unless --subjects N);
    --tracking-preset NAME: TrackingSettings.preset(NAME) (official semantics; --subjects N overrides its
    subject count); otherwise the product defaults for this frame rate with `subjects` ('all' by default).
    `overrides` (--tracking KEY=VALUE) are applied last."""
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
    """--fov (horizontal, degrees) or --focal (source pixels); neither: the official 50 degree lens."""
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
