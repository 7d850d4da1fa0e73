"""A synthetic result of people walking across a video, and a matching video, for preview tests and benchmarks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trace_format.schema import CameraInfo, FramesProcessed, TraceResult, TrackResult, VideoInfo

from .factories import write_video


def walking_result(width: int = 1280, height: int = 720, frames: int = 60, people: int = 3, fps: float = 30.0,
                   video_path: str = "walk.mp4") -> TraceResult:
    """`people` upright bodies walking left to right at 4-7 m, one of them absent for a few frames."""
    tracks = []
    for person in range(people):
        present = np.arange(frames)
        if person == 1:
            present = present[(present < frames // 3) | (present > frames // 3 + 5)]   # a gap
        count = len(present)
        t = present / fps
        depth = 4.0 + 1.5 * person
        hips = np.stack([-1.5 + 0.8 * t + 0.5 * person, np.full(count, 0.2), np.full(count, depth)], 1)
        poses = np.zeros((count, 24, 3))
        poses[:, 0] = [np.pi, 0.0, 0.0]                       # canonical y-up body -> camera frame (y down)
        poses[:, 1, 0] = 0.4 * np.sin(2 * np.pi * t)          # swinging legs
        poses[:, 2, 0] = -0.4 * np.sin(2 * np.pi * t)
        observed = np.ones(count, bool)
        observed[::7] = False
        tracks.append(TrackResult(
            track_id=person + 1, frames=present.astype(np.int64), times=t, poses=poses,
            global_orient_world=poses[:, 0].copy(), betas=np.zeros((count, 10)), hip_center_cam=hips,
            hip_center_world=hips.copy(), confidence=np.full(count, 0.9), observed=observed,
            center_2d=np.zeros((count, 2))))
    return TraceResult(
        tracks=tracks, video=VideoInfo(path=video_path, fps=fps, width=width, height=height, frame_count=frames),
        camera=CameraInfo(fov_deg=50.0, focal_px=(max(width, height) / 2) / np.tan(np.radians(25.0)),
                          focal_source="official"),
        settings={"frame_range": {"start": 0, "end": None, "stride": 1}},
        frames_processed=FramesProcessed(first=0, last=frames - 1))


def write_plain_video(path: Path, width: int, height: int, frames: int, fps: float = 30.0) -> Path:
    """A moving gradient (mp4v), enough to decode like real footage."""
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    images = [np.broadcast_to((base + 3 * index) % 256, (height, width, 3)).astype(np.uint8) for index in range(frames)]
    return write_video(path, images, fps=fps, codec="mp4v", size=(width, height))
