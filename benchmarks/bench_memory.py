"""Peak memory of the streaming pipeline for a short and a long video: it must not grow with length.

Each measurement runs in a fresh Python process (peak RSS from getrusage) on a generated video:
decode (cv2 stream) -> preprocess -> clips of 8 -> network -> per-row decoding -> per-track
accumulation -> world stage -> result file, i.e. core.pipeline run_inference, build_run_result, process_world
and trace_format.npz.write_result.

--network synthetic (default) replaces TraceModel.run_clip by a cheap deterministic stand-in that
returns ClipOutputs of the real shapes (P people tracked in every frame; tests/helpers/stand_in_network.py).
It measures the memory of streaming, preprocessing, decoding, accumulation and the world stage, NOT of
the network. --network real runs the true network (seconds per frame on a CPU: use short counts,
e.g. --frames 16 48).

    python benchmarks/bench_memory.py                                   # synthetic, 300 vs 1200 frames
    python benchmarks/bench_memory.py --network real --frames 16 48 --weights tests/.generated/weights_seed0
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))   # helpers.stand_in_network: the synthetic network


def make_video(path: Path, frames: int, width: int = 320, height: int = 240, fps: float = 30.0) -> Path:
    """A moving-shapes MJPG video (cheap to write, decodes like any camera file), streamed frame by frame."""
    from helpers.factories import write_video

    def images():
        for i in range(frames):
            image = np.full((height, width, 3), 200, np.uint8)
            x = int((i * 3) % (width - 40))
            image[60:200, x:x + 40] = (160, 80, 40)        # RGB
            image[20:60, x + 8:x + 32] = (230, 180, 150)
            yield image
    return write_video(path, images(), fps=fps, codec="MJPG")


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def child(args: argparse.Namespace) -> None:
    """One measurement; prints a JSON line."""
    import torch

    from core.camera import official_lens
    from core.nn import decode_params
    from core.pipeline import WorldOptions, build_run_result, process_world, run_inference
    from core.tracking import TrackingSettings
    from core.video import FrameRange, open_frame_source
    from trace_format.npz import write_result

    torch.set_num_threads(args.threads)
    if args.network == "real":
        from core.nn import TraceModel
        from core.pipeline import disable_tf32

        if args.device == "cuda":
            disable_tf32()

        model = TraceModel.from_weights(args.weights, device=args.device)
    else:
        from helpers.stand_in_network import StandInNetwork

        model = StandInNetwork(args.people)
    rss_ready = current_rss_mb()
    peak_ready = peak_rss_mb()
    started = time.monotonic()
    with open_frame_source(args.video) as source:
        info = source.info
        outcome = run_inference(model, source.frames(FrameRange()), info, TrackingSettings.product_default(info.fps),
                                official_lens(info.width, info.height), decode_params)
    tracks = outcome.accumulator.finalize()
    accumulated_mb = sum(a.nbytes for t in tracks.values() for a in t.values()) / 2**20
    if tracks:
        with tempfile.TemporaryDirectory() as folder:
            raw = build_run_result(tracks, info, official_lens(info.width, info.height), {"benchmark": True}, {}, None,
                                   [], outcome)
            write_result(Path(folder) / "bench.trace.npz", process_world(raw, outcome.shot_cuts, WorldOptions())[0])
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({
        "cuda_peak_mb": None if cuda_peak is None else round(cuda_peak, 1),
        "frames": outcome.frames_processed, "network": args.network, "tracks": len(tracks),
        "rows": int(sum(len(t["frames"]) for t in tracks.values())), "seconds": round(time.monotonic() - started, 2),
        "rss_after_setup_mb": round(rss_ready, 1), "peak_before_loop_mb": round(peak_ready, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), "accumulated_arrays_mb": round(accumulated_mb, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("synthetic", "real"), default="synthetic")
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help="frame counts to compare (default: 300 1200 synthetic, 16 48 real)")
    parser.add_argument("--people", type=int, default=3, help="synthetic: people tracked in every frame")
    parser.add_argument("--weights", type=Path, default=REPO_ROOT / "tests" / ".generated" / "weights_seed0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    counts = args.frames or ([300, 1200] if args.network == "synthetic" else [16, 48])
    print(f"bench_memory: network={args.network} (synthetic = streaming/decoding/accumulation only, "
          f"not the network), frame counts {counts}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            video = make_video(Path(folder) / f"bench_{count}.avi", count)
            command = [sys.executable, __file__, "--child", "--video", str(video), "--network", args.network,
                       "--people", str(args.people), "--weights", str(args.weights), "--device", args.device,
                       "--threads", str(args.threads)]
            run = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
            if run.returncode != 0:
                raise SystemExit(f"measurement for {count} frames failed:\n{run.stderr[-3000:]}")
            rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"{'frames':>7} {'tracks':>6} {'rows':>6} {'seconds':>8} {'RSS ready MB':>13} {'peak RSS MB':>12} "
          f"{'loop growth MB':>15} {'arrays MB':>10}")
    for r in rows:
        growth = r["peak_rss_mb"] - r["peak_before_loop_mb"]
        cuda = "" if r["cuda_peak_mb"] is None else f"  (GPU peak {r['cuda_peak_mb']:.0f} MB)"
        print(f"{r['frames']:>7} {r['tracks']:>6} {r['rows']:>6} {r['seconds']:>8.1f} {r['rss_after_setup_mb']:>13.1f} "
              f"{r['peak_rss_mb']:>12.1f} {growth:>15.1f} {r['accumulated_arrays_mb']:>10.2f}{cuda}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = last["frames"] / max(first["frames"], 1)
        print(f"peak RSS: {last['peak_rss_mb'] - first['peak_rss_mb']:+.1f} MB for {ratio:.0f}x the frames "
              f"({first['frames']} -> {last['frames']})")


if __name__ == "__main__":
    main()
