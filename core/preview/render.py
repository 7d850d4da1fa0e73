"""Rendering of the overlay video (OpenCV drawing, numpy; no torch)."""
from __future__ import annotations

import colorsys
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from trace_format.atomic import atomic_path
from ..camera import Lens, lens_from_focal_px, official_lens
from ..errors import InputError
from ..keypoints import project_keypoints, skeleton_joints_cam
from trace_format.skeleton import SMPL_PARENTS

__all__ = ["PreviewError", "PreviewOptions", "PreviewSummary", "render_preview", "track_color", "TrackOverlay",
           "prepare_tracks", "draw_frame", "WorldInset"]

_CANVAS_GREY = (48, 48, 48)
_HEAD = 15
_GOLDEN = 0.618033988749895


class PreviewError(InputError):
    """The result or the video cannot be used for a preview (exit code 3)."""

    code = "preview"


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per track id (golden-ratio hues, full saturation)."""
    hue = (0.11 + _GOLDEN * int(track_id)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


@dataclass
class TrackOverlay:
    """What one track draws: per-row keypoints and the top-down positions, looked up by frame."""

    track_id: int
    color: tuple[int, int, int]
    shot: int
    frames: np.ndarray          # [T] int64, increasing
    keypoints: np.ndarray       # [T,24,2] float32 source pixels (NaN: not visible)
    observed: np.ndarray        # [T] bool
    ground_xy: np.ndarray       # [T,2] float64 top-down position in the shot's world (metres)
    cursor: int = 0

    def row_at(self, frame: int) -> int | None:
        """Row of `frame` (frames must be asked in increasing order), or None."""
        frames = self.frames
        while self.cursor < len(frames) and frames[self.cursor] < frame:
            self.cursor += 1
        if self.cursor < len(frames) and frames[self.cursor] == frame:
            return self.cursor
        return None


def _lens_of(result) -> Lens:
    width, height = int(result.video.width), int(result.video.height)
    focal = getattr(result.camera, "focal_px", None)
    return lens_from_focal_px(float(focal), width, height) if focal else official_lens(width, height)


def prepare_tracks(result, rest_joints: np.ndarray | None = None) -> list[TrackOverlay]:
    """Keypoints (stored, else projected from joints_cam, else from the default skeleton) and ground tracks."""
    lens = _lens_of(result)
    overlays = []
    for track in result.tracks:
        keypoints = getattr(track, "keypoints_2d", None)
        if keypoints is None:
            joints = track.joints_cam
            if joints is None:
                if rest_joints is None:
                    from trace_format.skeleton import load_default_skeleton
                    rest_joints = load_default_skeleton()
                joints = skeleton_joints_cam(track.poses, track.hip_center_cam, rest_joints)
            keypoints = project_keypoints(joints, lens)
        transform = result.blender_transform(track)                                  # [4,4] -> Z-up world
        hips = np.asarray(track.world_hip_centers(), np.float64)
        ground = hips @ transform[:3, :3].T + transform[:3, 3]
        overlays.append(TrackOverlay(int(track.track_id), track_color(track.track_id), int(track.shot),
                                     np.asarray(track.frames, np.int64), np.asarray(keypoints, np.float32),
                                     np.asarray(track.observed, bool), ground[:, :2]))
    return overlays


@dataclass
class WorldInset:
    """The small top-down view of one shot: a pre-drawn background of every trajectory, and the mapping."""

    image: np.ndarray            # [S,S,3] uint8 BGR
    center: np.ndarray           # [2] world metres at the inset centre
    pixels_per_m: float

    @classmethod
    def build(cls, overlays: list[TrackOverlay], size: int) -> "WorldInset":
        points = [o.ground_xy[np.isfinite(o.ground_xy).all(1)] for o in overlays]
        points = [p for p in points if len(p)]
        image = np.full((size, size, 3), 24, np.uint8)
        if points:
            stacked = np.concatenate(points)
            low, high = stacked.min(0), stacked.max(0)
            center = (low + high) / 2
            extent = max(float((high - low).max()), 2.0) * 1.15          # at least 2 m across, with a margin
        else:
            center, extent = np.zeros(2), 2.0
        inset = cls(image, center, (size - 8) / extent)
        step = 10 ** math.floor(math.log10(max(extent / 4, 1e-3)))       # grid lines every 1, 10, ... m
        for value in np.arange(math.floor((center[0] - extent) / step) * step, center[0] + extent, step):
            x = inset.to_pixels(np.array([[value, center[1]]]))[0, 0]
            cv2.line(image, (int(x), 0), (int(x), size - 1), (44, 44, 44), 1)
        for value in np.arange(math.floor((center[1] - extent) / step) * step, center[1] + extent, step):
            y = inset.to_pixels(np.array([[center[0], value]]))[0, 1]
            cv2.line(image, (0, int(y)), (size - 1, int(y)), (44, 44, 44), 1)
        for overlay in overlays:
            finite = overlay.ground_xy[np.isfinite(overlay.ground_xy).all(1)]
            if len(finite) > 1:
                dim = tuple(int(c * 0.55) for c in overlay.color)
                cv2.polylines(image, [inset.to_pixels(finite).astype(np.int32)], False, dim, 1, cv2.LINE_AA)
        cv2.rectangle(image, (0, 0), (size - 1, size - 1), (110, 110, 110), 1)
        cv2.putText(image, "top view", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (170, 170, 170), 1, cv2.LINE_AA)
        return inset

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        size = self.image.shape[0]
        out = np.empty_like(np.asarray(xy, np.float64))
        out[:, 0] = (xy[:, 0] - self.center[0]) * self.pixels_per_m + size / 2
        out[:, 1] = size / 2 - (xy[:, 1] - self.center[1]) * self.pixels_per_m      # +y (forward) is up
        return out


_SEGMENTS = [(joint, parent) for joint, parent in enumerate(SMPL_PARENTS) if parent >= 0]


def draw_frame(image: np.ndarray, frame: int, shot: int, overlays: list[TrackOverlay],
               inset: WorldInset | None, line_width: int) -> int:
    """Draw every track present at `frame` onto `image` (BGR, in place); returns how many were drawn."""
    drawn = 0
    dots: list[tuple[np.ndarray, tuple[int, int, int]]] = []
    for overlay in overlays:
        row = overlay.row_at(frame)
        if row is None:
            continue
        points = overlay.keypoints[row]
        visible = np.isfinite(points).all(1)
        if not visible.any():
            continue
        drawn += 1
        thickness = line_width if overlay.observed[row] else max(1, line_width // 2)
        pixels = np.round(np.where(visible[:, None], points, 0)).astype(np.int32)
        lines = [np.stack([pixels[a], pixels[b]]) for a, b in _SEGMENTS if visible[a] and visible[b]]
        cv2.polylines(image, lines, False, overlay.color, thickness, cv2.LINE_AA)
        for x, y in pixels[visible]:
            cv2.circle(image, (int(x), int(y)), thickness + 1, overlay.color, -1, cv2.LINE_AA)
        top = int(pixels[visible, 1].min()) - 8
        anchor = pixels[_HEAD] if visible[_HEAD] else pixels[visible][0]
        label = f"{overlay.track_id}" if overlay.observed[row] else f"{overlay.track_id}?"
        cv2.putText(image, label, (int(anchor[0]) - 6, max(top, 14)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, overlay.color, 2, cv2.LINE_AA)
        if inset is not None and overlay.shot == shot and np.isfinite(overlay.ground_xy[row]).all():
            dots.append((overlay.ground_xy[row], overlay.color))
    if inset is not None:
        size = inset.image.shape[0]
        height, width = image.shape[:2]
        if size + 8 <= min(height, width):
            y0, x0 = height - size - 8, width - size - 8
            region = image[y0:y0 + size, x0:x0 + size]
            region[:] = inset.image
            for xy, color in dots:
                px = inset.to_pixels(xy[None])[0]
                if 0 <= px[0] < size and 0 <= px[1] < size:
                    cv2.circle(region, (int(px[0]), int(px[1])), 4, color, -1, cv2.LINE_AA)
    text = f"shot {shot}  frame {frame}"
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    cv2.rectangle(image, (6, 6), (14 + text_width, 30), (0, 0, 0), -1)
    cv2.putText(image, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return drawn


@dataclass
class PreviewOptions:
    result_path: Path
    output_path: Path
    video_path: Path | None = None      # None: the video recorded in the result, if it exists; else a grey canvas
    world_view: bool = True
    blank: bool = False                 # ignore any video: grey canvas


@dataclass
class PreviewSummary:
    output_path: Path
    frames: int
    seconds: float
    background: str                      # the video file used, or "grey canvas"
    people_drawn: int = 0                # (person, frame) pairs drawn
    tracks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _shot_lookup(result) -> Callable[[int], int]:
    shots = result.effective_shots()
    starts = np.array([s.start for s in shots], np.int64)

    def shot_of_frame(frame: int) -> int:
        index = int(np.searchsorted(starts, frame, side="right")) - 1
        return shots[max(index, 0)].index
    return shot_of_frame


def _processed_frames(result) -> tuple[int, int, int]:
    """(first, stop, stride) of the frames the run processed."""
    frame_range = (result.settings or {}).get("frame_range") or {}
    stride = max(1, int(frame_range.get("stride", 1) or 1))
    processed = result.frames_processed
    if processed is not None:
        return int(processed.first), int(processed.last) + 1, stride
    start, stop = result.processed_range()
    return start, stop, stride


def _grey_frames(width: int, height: int, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    canvas = np.empty((height, width, 3), np.uint8)
    for frame in frames:
        canvas[:] = _CANVAS_GREY
        yield frame, canvas


def _video_frames(path: Path, first: int, stop: int, stride: int, width: int, height: int
                  ) -> Iterator[tuple[int, np.ndarray]]:
    from ..video import FrameRange, open_frame_source

    try:
        source = open_frame_source(path)
    except Exception as error:   # core.video raises InputError subclasses with the reason
        raise PreviewError(f"cannot open the video {path} for the preview: {error}") from None
    with source:
        info = source.info
        if (info.width, info.height) != (width, height):
            raise PreviewError(
                f"the video {path} is {info.width}x{info.height} but the result was made from a "
                f"{width}x{height} video; pass the video the result was made from (--video), or none")
        for item in source.frames(FrameRange(start=first, end=stop, stride=stride)):
            yield item.index, cv2.cvtColor(item.rgb, cv2.COLOR_RGB2BGR)


def render_preview(options: PreviewOptions, on_progress: Callable[[int, int], None] | None = None
                   ) -> PreviewSummary:
    """Write the overlay video atomically; raises PreviewError for unusable inputs (before writing)."""
    from trace_format.npz import read_result
    from trace_format.schema import ResultFormatError

    try:
        result = read_result(options.result_path)
    except FileNotFoundError:
        raise PreviewError(f"result file not found: {options.result_path}") from None
    except ResultFormatError as error:
        raise PreviewError(f"cannot read the result {options.result_path}: {error}") from None
    width, height = int(result.video.width), int(result.video.height)
    if width <= 0 or height <= 0:
        raise PreviewError(f"{options.result_path}: the result does not record the video size ({width}x{height})")
    notes: list[str] = []
    video = options.video_path
    if video is None and not options.blank and result.video.path and Path(result.video.path).is_file():
        video = Path(result.video.path)
    elif video is None and not options.blank:
        notes.append(f"the video of the result ({result.video.path}) was not found: drawing on a grey canvas "
                     f"(pass --video VIDEO)")
    if video is not None and not Path(video).exists():
        raise PreviewError(f"video not found: {video}")
    first, stop, stride = _processed_frames(result)
    fps = float(result.video.fps) / stride if result.video.fps and result.video.fps > 0 else 30.0
    overlays = prepare_tracks(result)
    shot_of_frame = _shot_lookup(result)
    inset_size = max(96, min(height, width) // 4)
    insets: dict[int, WorldInset] = {}
    line_width = max(2, round(min(width, height) / 360))
    frames = (_video_frames(Path(video), first, stop, stride, width, height) if video is not None
              else _grey_frames(width, height, range(first, stop, stride)))
    total = len(range(first, stop, stride))
    count = people = 0
    started = time.perf_counter()
    output = Path(options.output_path)
    with atomic_path(output, suffix=output.suffix or ".mp4") as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise PreviewError(f"cannot write a video to {output} (OpenCV has no MPEG-4 encoder here?)")
        try:
            for frame, image in frames:
                shot = shot_of_frame(frame)
                inset = None
                if options.world_view:
                    if shot not in insets:
                        insets.clear()                           # one shot's background at a time
                        insets[shot] = WorldInset.build([o for o in overlays if o.shot == shot], inset_size)
                    inset = insets[shot]
                people += draw_frame(image, frame, shot, overlays, inset, line_width)
                writer.write(image)
                count += 1
                if on_progress is not None:
                    on_progress(count, total)
        finally:
            writer.release()
        if count == 0:
            raise PreviewError(f"no frames to draw: the result covers frames {first}-{stop - 1} but the video "
                               f"{video} yielded none of them")
    return PreviewSummary(output, count, time.perf_counter() - started,
                          str(video) if video is not None else "grey canvas", people, len(overlays), notes)
