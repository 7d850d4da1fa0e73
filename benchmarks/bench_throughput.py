#!/usr/bin/env python
"""A/B throughput of the network's inference rewrites, at checked outputs (prints, never asserts).

    python benchmarks/bench_throughput.py                            # CPU, float32, 1 thread, 2 frames, 2 rounds
    python benchmarks/bench_throughput.py --frames 8 --rounds 3 --threads 2
    python benchmarks/bench_throughput.py --variants unfolded folded

Each variant is the same network loaded from the same weights with a different set of inference
rewrites (see VARIANTS). Every round runs one clip (``TraceModel.run_clip``, fresh stream) per variant,
in alternating order (A B, then B A, ...) so that a load change on a shared machine hits all variants
alike. Printed per variant and stage (image backbone, RAFT, head maps, parsing/tracking/regression):
wall seconds (best and median of the rounds, frames/s from the best), process CPU seconds of the
backbones (forward hooks) and of the rest (less sensitive to other jobs than wall time), and the peak
memory of the run above the memory held before it (Linux VmHWM, reset between runs). Outputs of every variant are compared with the first
one (the reference): max |a - b| / max |b| per captured tensor and final field, and whether the tracked
rows (track ids, frames) are identical.

Weights: --weights DIR, default the seed-0 weights in tests/.generated (or generated with the reference
make_weights.py into a temporary folder). Frames: the reference clip (input512_seed0.npz).
Timings on a machine shared with other jobs vary by tens of percent: quote the load with the numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_network import generated_weights, load_frames  # noqa: E402
from core.nn import TraceModel  # noqa: E402
from core.nn.trace_model import RaftSchedule  # noqa: E402
from core.tracking import TrackingSettings  # noqa: E402



def _backbones_channels_last(model: TraceModel) -> None:
    model.image_backbone.to(memory_format=torch.channels_last)
    model.motion_backbone.to(memory_format=torch.channels_last)


# name -> (TraceModel.from_weights keyword arguments, rewrite applied after loading or None);
# the first variant given is the reference of the pairwise comparison
VARIANTS: dict[str, tuple[dict, Any]] = {
    "unfolded": ({"fold_batchnorm": False}, None),   # the official layout: a BatchNorm after every backbone conv
    "folded": ({"fold_batchnorm": True}, None),      # the default in float32 (core.nn.fuse)
    "folded_cl": ({"fold_batchnorm": True}, _backbones_channels_last),   # + channels_last backbone weights
    # RAFT schedules of the fast mode (differ from the official program: the comparison shows by how much)
    **{f"raft{n}": ({"raft": RaftSchedule(iterations=n)}, None) for n in (6, 10, 14)},
    **{f"raft{n}_warm": ({"raft": RaftSchedule(iterations=n, warm_start=True)}, None) for n in (6, 10, 14, 20)},
}
STAGES = (("image_backbone", "image backbone (HRNet-W32)"), ("motion_backbone", "motion backbone (RAFT)"),
          ("head_maps", "head maps"), ("head_tracking", "parsing/tracking/regression"),
          ("total", "end to end (one clip)"), ("cpu_image_backbone", "CPU s: image backbone"),
          ("cpu_motion_backbone", "CPU s: RAFT"), ("cpu_rest", "CPU s: head, tracking, rest"),
          ("cpu_total", "CPU s: end to end"))
COMPARED_CAPTURES = ("img_feat", "flows_128", "flow_lowres_64", "temporal_out", "center_maps_3d", "cam_maps_3d",
                     "motion_map_3d", "mesh_feature_maps", "cam_motion_maps", "cam_rot_motion_maps")
COMPARED_FIELDS = ("params_pred", "world_cams", "world_global_rots")
DEFAULT_WEIGHTS = REPO / "tests" / ".generated" / "weights_seed0"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference| (core.verify maps' measure); inf when the shapes differ."""
    a, b = ours.double(), reference.double()
    if a.shape != b.shape:
        return float("inf")
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / max(scale, 1e-12) if b.numel() else 0.0


class CpuTimer:
    """Process CPU seconds spent inside the forward of each watched module (forward hooks).

    CPU time of this process is far less sensitive than wall time to other jobs on a shared machine
    (it still includes their cache and memory-bandwidth contention)."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.seconds = {name: 0.0 for name in modules}
        self._started: dict[str, float] = {}
        for name, module in modules.items():
            module.register_forward_pre_hook(lambda *_, name=name: self._started.__setitem__(name, time.process_time()))
            module.register_forward_hook(lambda *_, name=name: self._stop(name))

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.process_time() - self._started.pop(name)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)


def run_once(model: TraceModel, frames: np.ndarray, settings: TrackingSettings, timer: CpuTimer | None = None) -> dict:
    """One clip on a fresh stream: stage seconds, peak memory above the start, captured tensors, output."""
    capture: dict = {}
    start_kib = _status_kib("VmRSS")
    measured_peak = reset_peak_rss() and start_kib is not None
    if timer is not None:
        timer.reset()
    tic, cpu_tic = time.perf_counter(), time.process_time()
    output = model.run_clip(frames, model.new_stream(), settings, capture=capture)
    total, cpu_total = time.perf_counter() - tic, time.process_time() - cpu_tic
    peak_kib = _status_kib("VmHWM") if measured_peak else None
    cpu = {}
    if timer is not None:
        cpu = {f"cpu_{name}": value for name, value in timer.seconds.items()}
        cpu["cpu_rest"] = cpu_total - sum(cpu.values())
    return {"seconds": {**capture.pop("seconds"), "total": total, **cpu, "cpu_total": cpu_total},
            "peak_mib": (peak_kib - start_kib) / 1024 if peak_kib is not None else None,
            "tensors": {k: capture[k] for k in COMPARED_CAPTURES}, "output": output}


def compare(run: dict, reference: dict) -> tuple[list[tuple[str, float]], str]:
    rows = [(k, relative_difference(run["tensors"][k], reference["tensors"][k])) for k in COMPARED_CAPTURES]
    ours, ref = run["output"], reference["output"]
    if ours is None or ref is None:
        return rows, "identical (nothing tracked)" if ours is ref else "DIFFERENT (one tracked nothing)"
    rows += [(k, relative_difference(getattr(ours, k), getattr(ref, k))) for k in COMPARED_FIELDS]
    same = (torch.equal(ours.track_ids, ref.track_ids) and torch.equal(ours.pred_batch_ids, ref.pred_batch_ids)
            and torch.equal(ours.pred_czyxs, ref.pred_czyxs))
    counts = f"{len(ref.track_ids)} rows" if len(ours.track_ids) == len(ref.track_ids) else \
        f"{len(ours.track_ids)} vs {len(ref.track_ids)} rows: final fields not comparable (inf)"
    return rows, f"{'identical' if same else 'DIFFERENT'} ({counts})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help=f"default {DEFAULT_WEIGHTS.relative_to(REPO)}")
    parser.add_argument("--frames", type=int, default=1, help="frames in the clip (1-8; default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per variant (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["unfolded", "folded"],
                        help="the first is the reference for the output comparison")
    parser.add_argument("--float64-reference", action="store_true",
                        help="also run the unfolded float64 network once (untimed; slow, ~2x the memory) and "
                             "compare every variant with it: the float32 error each variant has")
    args = parser.parse_args()
    if not 1 <= args.frames <= 8:
        parser.error("--frames must be 1..8 (one clip)")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_dir() else generated_weights(Path(tmp)))
        models = {}
        for name in args.variants:
            options, rewrite = VARIANTS[name]
            models[name] = TraceModel.from_weights(weights, device=args.device, dtype=torch.float32, **options)
            if rewrite is not None:
                rewrite(models[name])
        exact = (TraceModel.from_weights(weights, device=args.device, dtype=torch.float64)
                 if args.float64_reference else None)
    timers = {name: CpuTimer({"image_backbone": m.image_backbone, "motion_backbone": m.motion_backbone})
              for name, m in models.items()}
    frames = load_frames(args.frames)
    settings = TrackingSettings.official()
    device = next(iter(models.values())).device
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"device {device}, {args.threads} thread(s), float32, clip of {args.frames} frame(s), {args.rounds} "
          f"round(s), torch {torch.__version__}, {os.cpu_count()} CPUs, load average at start {load}")

    exact_run = None
    if exact is not None:   # first, so that a failure shows early and its memory is freed before the timing
        print("running the float64 reference (untimed) ...", flush=True)
        exact_run = run_once(exact, frames, settings)
        del exact
    runs: dict[str, list[dict]] = {name: [] for name in args.variants}
    for round_index in range(args.rounds):
        order = args.variants if round_index % 2 == 0 else args.variants[::-1]
        for name in order:
            runs[name].append(run_once(models[name], frames, settings, timers[name]))
            seconds = runs[name][-1]["seconds"]
            print(f"  round {round_index + 1} {name:10s} " + " ".join(f"{k} {v:.2f}s" for k, v in seconds.items()),
                  flush=True)
            if round_index + 1 < args.rounds:   # keep tensors of the last round only
                runs[name][-1]["tensors"] = runs[name][-1]["output"] = None

    print(f"\n{'stage':30s} " + " ".join(f"{name + ' s (best)':>18s} {'fr/s':>7s}" for name in args.variants))
    for key, label in STAGES:
        cells = []
        for name in args.variants:
            values = [r["seconds"][key] for r in runs[name]]
            best = min(values)
            cells.append(f"{best:9.2f} (med {statistics.median(values):6.2f}) {args.frames / max(best, 1e-9):7.3f}")
        print(f"{label:30s} " + " ".join(cells))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"load average at the end {load}")
    peaks = {name: [r["peak_mib"] for r in runs[name] if r["peak_mib"] is not None] for name in args.variants}
    print("peak memory above the loaded model: " + ", ".join(
        f"{name} {max(v):.0f} MiB" if v else f"{name} n/a" for name, v in peaks.items()))
    comparisons = [(name, args.variants[0], runs[args.variants[0]][-1]) for name in args.variants[1:]]
    if exact_run is not None:
        comparisons += [(name, "float64 (unfolded)", exact_run) for name in args.variants]
    for name, reference_name, reference in comparisons:
        rows, tracking = compare(runs[name][-1], reference)
        print(f"\n{name} vs {reference_name}: tracked rows {tracking}; max relative difference per output:")
        for key, value in rows:
            print(f"  {key:22s} {value:.2e}")
        print(f"  {'worst':22s} {max(v for _, v in rows):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
