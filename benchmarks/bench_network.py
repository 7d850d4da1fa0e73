#!/usr/bin/env python
"""Speed, memory and compute of the TRACE network per component (prints, never asserts).

    python benchmarks/bench_network.py                      # CPU, float32, 2 threads, 9 frames
    python benchmarks/bench_network.py --device cuda --autocast bf16 --frames 64

Components: image backbone (HRNet-W32), motion backbone (RAFT, 20 iterations, one pair per frame),
head incl. tracking (temporal propagation, maps, parsing, tracker, regressors). Frames run in clips of
8 like the product (9 frames = one clip + one). GMAC per component are measured once with
torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2; the deformable conv's gathers and RAFT's
grid_sample lookups are not counted, their matmuls are). Weights: --weights DIR, or seed-0 synthetic
weights generated with the reference make_weights.py into a temporary folder (timings do not depend on
the weight values).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.nn import TraceModel  # noqa: E402
from core.tracking import TrackingSettings  # noqa: E402

CLIP = 8
MANIFESTS = {"trace_image_backbone.pkl": "manifest_image_backbone.json",
             "trace_motion_backbone.pth": "manifest_motion_backbone.json",
             "trace_head.pkl": "manifest_head.json"}


def reference_dir() -> Path | None:
    for candidate in (os.environ.get("TRACE_REFERENCE_DIR"), REPO.parent / "shared" / "trace_reference",
                      REPO / "shared" / "trace_reference"):
        if candidate and (Path(candidate) / "make_weights.py").is_file():
            return Path(candidate)
    return None


def generated_weights(out_dir: Path) -> Path:
    ref = reference_dir()
    if ref is None:
        raise SystemExit("no --weights given and the reference folder (make_weights.py) was not found; "
                         "set TRACE_REFERENCE_DIR or pass --weights DIR")
    for filename, manifest in MANIFESTS.items():
        subprocess.run([sys.executable, str(ref / "make_weights.py"), "--manifest", str(ref / manifest),
                        "--seed", "0", "--out", str(out_dir / filename)], check=True, stdout=subprocess.DEVNULL)
    return out_dir


def load_frames(count: int) -> np.ndarray:
    """[count,512,512,3] uint8: the reference clip (repeated as needed) or a smooth synthetic video."""
    ref = reference_dir()
    if ref is not None and (ref / "input512_seed0.npz").is_file():
        clip = np.load(ref / "input512_seed0.npz")["input512"]
        return np.stack([clip[i % len(clip)] for i in range(count)])
    ys, xs = np.mgrid[0:512, 0:512]
    return np.stack([((np.sin((xs + 6 * i) / 37.0) + np.cos(ys / 23.0)) * 60 + 128).astype(np.uint8)[..., None]
                     .repeat(3, -1) for i in range(count)])


def gmacs(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2 / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--autocast", choices=("none", "bf16", "fp16"), default="none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-flops", action="store_true", help="skip the FlopCounterMode pass")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="CUDA: TF32 tensor-core convolutions / matmuls (faster, ~1e-3 relative per layer)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    autocast = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.autocast]
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or generated_weights(Path(tmp))
        tic = time.perf_counter()
        model = TraceModel.from_weights(weights, device=args.device, dtype=dtype, autocast_dtype=autocast)
        load_s = time.perf_counter() - tic
    device = model.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    frames = load_frames(args.frames)
    settings = TrackingSettings.official()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{args.threads} threads'}), "
          f"dtype {args.dtype}, autocast {args.autocast}, tf32 {'on' if args.allow_tf32 else 'off'}, "
          f"frames {args.frames} (clips of {CLIP}), "
          f"torch {torch.__version__}; weights loaded in {load_s:.1f} s")

    totals = {"image_backbone": 0.0, "motion_backbone": 0.0, "head_maps": 0.0, "head_tracking": 0.0}
    stream = model.new_stream()
    tic = time.perf_counter()
    tracked_rows = 0
    for start in range(0, args.frames, CLIP):
        capture: dict = {}
        output = model.run_clip(frames[start:start + CLIP], stream, settings, capture=capture)
        for name, seconds in capture["seconds"].items():
            totals[name] += seconds
        tracked_rows += 0 if output is None else len(output.track_ids)
        del capture
    end_to_end = time.perf_counter() - tic
    head_total = totals["head_maps"] + totals["head_tracking"]
    n = args.frames
    print(f"{'component':34s} {'seconds':>9s} {'frames/s':>9s}")
    for label, seconds in (("image backbone (HRNet-W32)", totals["image_backbone"]),
                           ("motion backbone (RAFT, 20 iters)", totals["motion_backbone"]),
                           ("head incl. tracking", head_total),
                           ("  of which maps", totals["head_maps"]),
                           ("  of which parsing/tracking/regress", totals["head_tracking"]),
                           ("end to end", end_to_end)):
        print(f"{label:34s} {seconds:9.2f} {n / seconds if seconds else float('inf'):9.3f}")
    print(f"tracked (track, frame) rows: {tracked_rows}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.0f} MiB" + (f", peak CUDA allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
                                          if device.type == "cuda" else ""))

    if not args.no_flops:
        images = torch.from_numpy(frames[:1]).to(device)
        pair = images.permute(0, 3, 1, 2)
        with torch.inference_mode():
            image_gmac = gmacs(lambda: model.image_features(images))
            raft_gmac = gmacs(lambda: model.motion_backbone(pair, pair, iters=20))
            clip_frames = torch.from_numpy(frames[:min(CLIP, n)]).to(device)
            feats = model.image_features(clip_frames)
            flows = torch.zeros(len(feats), 2, 128, 128, device=device, dtype=dtype)

            def head_pass():
                temporal = model.head.temporal_features(torch.cat([feats[:1], feats]), None)
                model.head.maps(temporal.features, flows)

            head_gmac = gmacs(head_pass) / len(feats)
        print(f"GMAC per frame: image backbone {image_gmac:.1f}, RAFT {raft_gmac:.1f} (one pair, 20 iterations), "
              f"head {head_gmac:.1f} (maps; deformable-conv gathers not counted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
