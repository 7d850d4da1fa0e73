"""The one place tests build synthetic data: a tracked person, a result, a video file.

`make_track`: smooth synthetic motion (sums of sines with per-joint frequencies, a root that turns
and walks along a curve, a per-person shape), evaluated at the given video frames, so gaps in the
frame numbers are gaps in time. By default the camera is static (camera frame = TRACE world);
`moving_camera=True` puts the world in another rigid frame so camera and world arrays differ.
`make_result`: a TraceResult around such tracks (or several people made here).
`write_video`: RGB frames to a video file with OpenCV (lossless FFV1 unless a codec is asked for).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from trace_format import rotations
from trace_format.schema import CameraInfo, TraceResult, TrackResult, VideoInfo

# The rigid TRACE-world frame of `moving_camera=True` tracks, seen from the camera.
_WORLD_ROTATION = rotations.axis_angle_to_matrix(np.array([0.3, -0.2, 0.1]))
_WORLD_OFFSET = np.array([0.5, -0.2, 1.0])


def make_track(track_id: int, frames: Sequence[int] | np.ndarray, seed: int = 0, *, fps: float = 30.0,
               moving_camera: bool = False, infilled: Iterable[int] = (), joints: bool = False, vertices: int = 0,
               world: bool = False, shot: int = 0, registration: np.ndarray | None = None) -> TrackResult:
    """One person seen at `frames` (increasing video frame numbers).

    infilled: row positions reported from memory (observed False, no 2D centre: NaN).
    joints / vertices: random joints_cam/_world [T,24,3] / vertices_cam/_world [T,vertices,3].
    world: the version-2 per-frame fields (contacts, clean_* motion), random.
    """
    rng = np.random.default_rng(seed)
    video_frames = np.asarray(frames, dtype=np.int64)
    count = len(video_frames)
    t = (video_frames - (video_frames[0] if count else 0)).astype(np.float64)[:, None]   # [T,1]
    amplitude = rng.uniform(0.1, 0.7, size=(1, 24 * 3))
    frequency = rng.uniform(0.01, 0.15, size=(1, 24 * 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 24 * 3))
    poses = (amplitude * np.sin(frequency * t + phase)).reshape(count, 24, 3)
    # Root: upright (pi about x) plus a slow turn about the vertical and some sway.
    heading = 0.02 * t[:, 0] * (1 + track_id % 3) + rng.uniform(0, 2 * np.pi)
    upright = rotations.axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
    turn = rotations.axis_angle_to_matrix(np.stack([np.zeros(count), heading, np.zeros(count)], 1))
    sway = rotations.axis_angle_to_matrix(0.15 * np.sin(0.05 * t + phase[:, :3]))
    orient_cam = turn @ upright @ sway                                                     # [T,3,3]
    radius = 1.5 + track_id
    hips_cam = np.stack([radius * np.cos(0.01 * t[:, 0]) - radius, -0.9 + 0.05 * np.sin(0.3 * t[:, 0]),
                         5.0 + radius * np.sin(0.01 * t[:, 0])], axis=1)                  # [T,3]
    betas = np.tile(rng.normal(scale=0.8, size=(1, 10)), (count, 1)) + rng.normal(scale=0.05, size=(count, 10))
    poses[:, 0] = rotations.matrix_to_axis_angle(orient_cam)
    if moving_camera:
        orient_world = rotations.matrix_to_axis_angle(_WORLD_ROTATION @ orient_cam)
        hips_world = hips_cam @ _WORLD_ROTATION.T + _WORLD_OFFSET
    else:
        orient_world, hips_world = poses[:, 0].copy(), hips_cam.copy()
    observed = np.ones(count, bool)
    center_2d = np.full((count, 2), 100.0)
    infilled = list(infilled)
    observed[infilled] = False
    center_2d[infilled] = np.nan
    extra: dict[str, Any] = {}
    if joints:
        extra.update(joints_cam=rng.normal(size=(count, 24, 3)), joints_world=rng.normal(size=(count, 24, 3)))
    if vertices:
        extra.update(vertices_cam=rng.normal(size=(count, vertices, 3)),
                     vertices_world=rng.normal(size=(count, vertices, 3)))
    if world:
        extra.update(contacts=rng.uniform(size=(count, 2)) < 0.5,
                     clean_body_pose=rng.normal(scale=0.3, size=(count, 23, 3)),
                     clean_hip_center_world=rng.normal(size=(count, 3)),
                     clean_global_orient_world=rng.normal(size=(count, 3)))
    return TrackResult(
        track_id=track_id, frames=video_frames, times=video_frames / fps, poses=poses,
        global_orient_world=orient_world, betas=betas, hip_center_cam=hips_cam, hip_center_world=hips_world,
        confidence=np.full(count, 0.9), observed=observed, center_2d=center_2d, shot=shot,
        registration=registration, **extra)


def make_result(tracks: list[TrackResult] | None = None, *, people: int = 2, frames: int = 300, seed: int = 0,
                offsets: Sequence[int] | None = None, fps: float = 30.0, width: int = 640, height: int = 480,
                frame_count: int | None = None, video_path: str = "synthetic.mp4", video: VideoInfo | None = None,
                camera: CameraInfo | None = None, **fields: Any) -> TraceResult:
    """A TraceResult of `tracks`, or of `people` moving people (person k from video frame offsets[k]).

    video: the whole VideoInfo (then fps, width, height, frame_count and video_path are not used).
    fields: any other TraceResult field (settings, notes, shots, scene_camera, ...), passed through.
    """
    if tracks is None:
        offsets = tuple(offsets or (3 * k for k in range(people)))
        tracks = [make_track(k + 1, np.arange(offsets[k], offsets[k] + frames), seed + 17 * k, fps=fps)
                  for k in range(people)]
    if frame_count is None:
        frame_count = max((int(track.frames[-1]) for track in tracks if track.num_frames), default=-1) + 3
    fields.setdefault("notes", [])
    video = video or VideoInfo(path=video_path, fps=fps, width=width, height=height, frame_count=frame_count)
    return TraceResult(tracks=tracks, video=video, camera=camera or CameraInfo(fov_deg=50.0), **fields)


def write_video(path: str | Path, frames_rgb: Iterable[np.ndarray], fps: float = 30.0, codec: str | None = None,
                size: tuple[int, int] | None = None) -> Path:
    """Write RGB uint8 frames [H,W,3] as a video file.

    codec None: FFV1 (lossless), falling back to MJPG at top quality; else that fourcc ("mp4v" for .mp4).
    size (width, height): only needed for a video without frames.
    """
    frames_rgb = [np.asarray(frame) for frame in frames_rgb]
    if size is None and not frames_rgb:
        raise ValueError("write_video without frames needs size=(width, height)")
    width, height = size or (frames_rgb[0].shape[1], frames_rgb[0].shape[0])
    for fourcc in ((codec,) if codec else ("FFV1", "MJPG")):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if writer.isOpened():
            if fourcc == "MJPG":
                writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
            for frame in frames_rgb:
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
            writer.release()
            return Path(path)
    raise RuntimeError(f"OpenCV cannot write {path} with {codec or 'FFV1 or MJPG'}")
