"""Frames per second of the overlay video (`python -m core preview`) on one CPU core.

Generates a video (default 1280x720, 300 frames, mp4v) and a result with P people walking in it
(tests/helpers/preview_scene.py), then renders the preview with OpenCV limited to one thread and
prints frames/s for the whole job (decode + draw + encode) and for drawing alone, plus peak RSS
before and after (the preview streams: memory must not grow with the video length).

    python benchmarks/bench_preview.py [--width 1280 --height 720 --frames 300 --people 5]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--people", type=int, default=5)
    args = parser.parse_args()

    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    from core.preview import PreviewOptions, render_preview
    from core.preview.render import WorldInset, draw_frame, prepare_tracks
    from trace_format.npz import read_result, write_result
    from helpers.preview_scene import walking_result, write_plain_video

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        video = write_plain_video(folder / "walk.mp4", args.width, args.height, args.frames)
        result_path = folder / "walk.trace.npz"
        write_result(result_path, walking_result(args.width, args.height, args.frames, args.people,
                                                 video_path=str(video)))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        summary = render_preview(PreviewOptions(result_path, folder / "preview.mp4"))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        overlays = prepare_tracks(read_result(result_path))
        inset = WorldInset.build(overlays, min(args.width, args.height) // 4)
        canvas = np.zeros((args.height, args.width, 3), np.uint8)
        started = time.perf_counter()
        for frame in range(args.frames):
            draw_frame(canvas, frame, 0, overlays, inset, 2)
        draw_seconds = time.perf_counter() - started

        capture = cv2.VideoCapture(str(video))
        started = time.perf_counter()
        while capture.read()[0]:
            pass
        decode_seconds = time.perf_counter() - started
    print(f"preview {args.width}x{args.height}, {args.frames} frames, {args.people} people, 1 OpenCV thread "
          f"(background: {summary.background.split('/')[-1]})")
    print(f"  whole job (decode + draw + encode): {summary.frames_per_second:.1f} frames/s")
    print(f"  drawing only: {args.frames / draw_seconds:.1f} frames/s; decoding only: "
          f"{args.frames / decode_seconds:.1f} frames/s")
    print(f"  peak RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after the preview")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
