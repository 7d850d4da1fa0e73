#!/usr/bin/env python
"""A/B throughput of the network's inference rewrites, at checked outputs (prints, never asserts).

    python benchmarks/bench_throughput.py                            # CPU, float32, 1 thread, 2 frames, 2 rounds
    python benchmarks/bench_throughput.py --frames 8 --rounds 3 --threads 2
    python benchmarks/bench_throughput.py --variants unfolded folded

Each variant is the same network loaded from the same weights with a different set of inference
rewrites (see VARIANTS). Every round runs one clip (``TraceModel.run_clip``, fresh stream) per variant,
in alternating order (A B, then B A, ...) so that a load change on a shared machine hits all variants
alike. Printed per variant and stage (image backbone, RAFT, head maps, parsing/tracking/regression):
seconds per round, frames/s from the fastest round, and the peak memory of the run above the memory
held before it (Linux VmHWM, reset between runs). Outputs of every variant are compared with the first
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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_network import generated_weights, load_frames  # noqa: E402
from core.nn import TraceModel  # noqa: E402
from core.tracking import TrackingSettings  # noqa: E402

# name -> TraceModel.from_weights keyword arguments; the first variant given is the reference
VARIANTS: dict[str, dict] = {
    "unfolded": {"fold_batchnorm": False},   # the official layout: a BatchNorm after every backbone conv
    "folded": {"fold_batchnorm": True},      # the default in float32 (core.nn.fuse)
}
STAGES = (("image_backbone", "image backbone (HRNet-W32)"), ("motion_backbone", "motion backbone (RAFT)"),
          ("head_maps", "head maps"), ("head_tracking", "parsing/tracking/regression"))
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
    """max |ours - reference| / max |reference| (core.verify maps' measure)."""
    a, b = ours.double(), reference.double()
    if a.shape != b.shape:
        return float("inf")
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / max(scale, 1e-12) if b.numel() else 0.0


def run_once(model: TraceModel, frames: np.ndarray, settings: TrackingSettings) -> dict:
    """One clip on a fresh stream: stage seconds, peak memory above the start, captured tensors, output."""
    capture: dict = {}
    start_kib = _status_kib("VmRSS")
    measured_peak = reset_peak_rss() and start_kib is not None
    tic = time.perf_counter()
    output = model.run_clip(frames, model.new_stream(), settings, capture=capture)
    total = time.perf_counter() - tic
    peak_kib = _status_kib("VmHWM") if measured_peak else None
    return {"seconds": {**capture.pop("seconds"), "total": total},
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
    return rows, f"{'identical' if same else 'DIFFERENT'} ({len(ref.track_ids)} rows)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help=f"default {DEFAULT_WEIGHTS.relative_to(REPO)}")
    parser.add_argument("--frames", type=int, default=2, help="frames in the clip (1-8; default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per variant (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS),
                        help="the first is the reference for the output comparison")
    args = parser.parse_args()
    if not 1 <= args.frames <= 8:
        parser.error("--frames must be 1..8 (one clip)")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_dir() else generated_weights(Path(tmp)))
        models = {name: TraceModel.from_weights(weights, device=args.device, dtype=torch.float32, **VARIANTS[name])
                  for name in args.variants}
    frames = load_frames(args.frames)
    settings = TrackingSettings.official()
    device = next(iter(models.values())).device
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"device {device}, {args.threads} thread(s), float32, clip of {args.frames} frame(s), {args.rounds} "
          f"round(s), torch {torch.__version__}, {os.cpu_count()} CPUs, load average at start {load}")

    runs: dict[str, list[dict]] = {name: [] for name in args.variants}
    for round_index in range(args.rounds):
        order = args.variants if round_index % 2 == 0 else args.variants[::-1]
        for name in order:
            runs[name].append(run_once(models[name], frames, settings))
            seconds = runs[name][-1]["seconds"]
            print(f"  round {round_index + 1} {name:10s} " + " ".join(f"{k} {v:.2f}s" for k, v in seconds.items()),
                  flush=True)
            if round_index + 1 < args.rounds:   # keep tensors of the last round only
                runs[name][-1]["tensors"] = runs[name][-1]["output"] = None

    print(f"\n{'stage':30s} " + " ".join(f"{name + ' s (best)':>18s} {'fr/s':>7s}" for name in args.variants))
    for key, label in STAGES + (("total", "end to end (one clip)"),):
        cells = []
        for name in args.variants:
            values = [r["seconds"][key] for r in runs[name]]
            best = min(values)
            cells.append(f"{best:9.2f} (med {statistics.median(values):5.2f}) {args.frames / best:7.3f}")
        print(f"{label:30s} " + " ".join(cells))
    peaks = {name: [r["peak_mib"] for r in runs[name] if r["peak_mib"] is not None] for name in args.variants}
    print("peak memory above the loaded model: " + ", ".join(
        f"{name} {max(v):.0f} MiB" if v else f"{name} n/a" for name, v in peaks.items()))
    if len(args.variants) > 1:
        reference_name = args.variants[0]
        reference = runs[reference_name][-1]
        for name in args.variants[1:]:
            rows, tracking = compare(runs[name][-1], reference)
            print(f"\n{name} vs {reference_name}: tracked rows {tracking}; max relative difference per output:")
            for key, value in rows:
                print(f"  {key:22s} {value:.2e}")
            print(f"  {'worst':22s} {max(v for _, v in rows):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
