"""Generate assets/sample.mp4: a tiny synthetic clip for the README's first command.

2 seconds of 320x240 at 15 fps (30 frames), MPEG-4 Part 2 ('mp4v', always available in OpenCV's
FFmpeg build): a simple stick figure walking across a floor with a moving ball. It only exists so a
fresh checkout can run `python -m core run assets/sample.mp4 -o results/` end to end; it is not a
test of accuracy (real footage of people is needed for that).

Deterministic: drawing uses integer geometry only; run `python assets/make_sample_video.py` to rebuild.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 15, 2


def draw_frame(index: int, total: int) -> np.ndarray:
    """One BGR frame [H,W,3] uint8: sky, floor, a walking stick figure and a bouncing ball."""
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[:150] = (235, 206, 170)          # sky (BGR)
    frame[150:] = (90, 120, 90)            # floor
    phase = index / total
    hip = (int(60 + 200 * phase), 135)
    swing = math.sin(2.0 * math.pi * 2.0 * phase)
    head = (hip[0], hip[1] - 62)
    neck = (hip[0], hip[1] - 48)
    skin, cloth, trousers = (150, 180, 230), (40, 60, 200), (120, 60, 30)
    cv2.line(frame, hip, neck, cloth, 9)
    for sign in (1, -1):
        knee = (hip[0] + int(sign * 10 * swing), hip[1] + 22)
        foot = (hip[0] + int(sign * 16 * swing), hip[1] + 44)
        cv2.line(frame, hip, knee, trousers, 7)
        cv2.line(frame, knee, foot, trousers, 6)
        elbow = (neck[0] - int(sign * 10 * swing), neck[1] + 18)
        hand = (neck[0] - int(sign * 14 * swing), neck[1] + 36)
        cv2.line(frame, neck, elbow, cloth, 5)
        cv2.line(frame, elbow, hand, skin, 4)
    cv2.circle(frame, head, 10, skin, -1)
    ball = (int(280 - 120 * phase), int(200 - 40 * abs(math.sin(3.0 * math.pi * phase))))
    cv2.circle(frame, ball, 8, (0, 200, 255), -1)
    return frame


def make_sample_video(path: Path) -> Path:
    """Write the clip to `path` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=path.stem + ".", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(temp_name, cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write mp4v video here (FFmpeg backend missing?)")
        total = FPS * SECONDS
        for index in range(total):
            writer.write(draw_frame(index, total))
        writer.release()
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("sample.mp4"))
    args = parser.parse_args()
    out = make_sample_video(args.output)
    print(f"wrote {out} ({out.stat().st_size} bytes, {FPS * SECONDS} frames, {WIDTH}x{HEIGHT} @ {FPS} fps)")


if __name__ == "__main__":
    main()
