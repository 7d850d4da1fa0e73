"""Frame sources: a video file decoded as a stream, or a folder of images.

Frames are yielded one at a time as `Frame(index, timestamp_s, rgb)` so a 10-minute video never
sits in memory or on disk. Video files are decoded with `cv2.VideoCapture`; per-frame timestamps
come from the container (CAP_PROP_POS_MSEC, variable-frame-rate aware) and rotation metadata is
applied exactly once by this module (OpenCV's own auto-rotation is switched off when possible).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from trace_format.atomic import special_file_kind

from .errors import FrameReadError, InputNotFoundError, NoFramesError, NotAVideoError, UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_IMAGE_FOLDER_FPS = 30.0
# A timestamp further than this fraction of a frame period from the constant-rate grid marks VFR.
VFR_TOLERANCE_PERIODS = 0.5

_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class Frame:
    index: int            # frame number in the source (0-based, before start/stride selection)
    timestamp_s: float    # presentation time in seconds
    rgb: np.ndarray       # [H,W,3] uint8, upright


@dataclass
class SourceInfo:
    """What is known about a source before decoding it (frame_count may be a container estimate)."""

    path: str
    kind: str                   # "video" | "images"
    width: int                  # upright (after rotation)
    height: int
    fps: float
    frame_count: int
    rotation_deg: int = 0       # clockwise rotation applied to decoded frames to make them upright
    codec: str = ""
    variable_frame_rate: bool = False   # set while streaming when timestamps leave the constant grid
    timestamps_repaired: int = 0        # frames whose container time did not increase (set while streaming)


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to process: indices start, start+stride, ... below end (None = to the end)."""

    start: int = 0
    end: int | None = None
    stride: int = 1

    def __post_init__(self) -> None:
        if self.start < 0:
            raise UsageError(f"--start must be >= 0 (got {self.start})")
        if self.stride < 1:
            raise UsageError(f"--stride must be >= 1 (got {self.stride})")
        if self.end is not None and self.end <= self.start:
            raise UsageError(f"--end ({self.end}) must be after --start ({self.start})")

    def selected_count(self, frame_count: int) -> int:
        """How many frames this range keeps out of `frame_count` source frames."""
        stop = frame_count if self.end is None else min(self.end, frame_count)
        if stop <= self.start:
            return 0
        return (stop - self.start + self.stride - 1) // self.stride

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "stride": self.stride}


_TIME_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$", re.IGNORECASE)


def parse_frame_position(text: str | None, fps: float, option: str) -> int | None:
    """'120' -> frame 120; '4.5s' -> the first frame at or after 4.5 s (round(4.5*fps))."""
    if text is None:
        return None
    text = str(text).strip()
    match = _TIME_PATTERN.match(text)
    if match:
        seconds = float(match.group(1))
        return int(round(seconds * fps))
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise UsageError(f"{option} expects a frame number (e.g. 120) or seconds with an 's' suffix "
                     f"(e.g. 4.5s); got {text!r}")


def natural_sort_key(name: str) -> list:
    """Sort 'frame2.png' before 'frame10.png' (digits compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def rotate_upright(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Rotate a decoded frame clockwise by the container's display rotation (0/90/180/270)."""
    rotation_deg = rotation_deg % 360
    if rotation_deg == 0:
        return image
    if rotation_deg not in _ROTATE_CODES:
        raise ValueError(f"unsupported rotation {rotation_deg} (expected a multiple of 90)")
    return cv2.rotate(image, _ROTATE_CODES[rotation_deg])


def is_variable_frame_rate(timestamps_s: np.ndarray, indices: np.ndarray, fps: float,
                           tolerance_periods: float = VFR_TOLERANCE_PERIODS) -> bool:
    """True when timestamps[N] deviate from first + (index - first_index)/fps by over `tolerance` periods."""
    if len(timestamps_s) < 2 or fps <= 0:
        return False
    expected = timestamps_s[0] + (indices - indices[0]) / fps  # [N]
    return bool(np.max(np.abs(timestamps_s - expected)) > tolerance_periods / fps)


class MonotonicClock:
    """Makes container timestamps strictly increasing, keeping their spacing.

    Concatenated recordings (joined MPEG-TS files, some screen recorders) restart or repeat their
    presentation times; such a time is moved to one frame period after the previous one, and every
    later time is shifted by the same amount, so each piece keeps its own timing. `repaired` counts
    the frames that were moved.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 1.0 / DEFAULT_IMAGE_FOLDER_FPS
        self.offset = 0.0
        self.last: float | None = None
        self.repaired = 0

    def repair(self, timestamp_s: float) -> float:
        value = timestamp_s + self.offset
        if self.last is not None and not value > self.last:
            self.offset += self.last + self.period - value
            value = self.last + self.period
            self.repaired += 1
        self.last = value
        return value


class FrameSource:
    """Common interface: `info` and `frames(frame_range)`; also a context manager."""

    info: SourceInfo

    def frames(self, frame_range: FrameRange = FrameRange()) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fourcc_text(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars if chars.isprintable() else ""


class VideoFileSource(FrameSource):
    """Streams a video file with cv2.VideoCapture (FFmpeg backend)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY)
        if not capture.isOpened():
            capture.release()
            raise NotAVideoError(
                f"cannot open {self.path} as a video: it is not a video file, its codec is not "
                f"supported by OpenCV/FFmpeg, or the file is damaged or truncated. Re-encode it "
                f"(e.g. to H.264 .mp4) or pass a folder of images instead.")
        rotation = int(round(capture.get(cv2.CAP_PROP_ORIENTATION_META) or 0)) % 360
        # Rotate ourselves so the result does not depend on the OpenCV version's default.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        self._backend_rotates = bool(capture.get(cv2.CAP_PROP_ORIENTATION_AUTO)) and rotation != 0
        raw_w = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        raw_h = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        # With auto-rotation off, OpenCV reports the stored (unrotated) size.
        stored_w, stored_h = (raw_h, raw_w) if self._backend_rotates and rotation in (90, 270) else (raw_w, raw_h)
        width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 0.0
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._capture = capture
        self._started = False
        self.info = SourceInfo(path=str(self.path), kind="video", width=width, height=height, fps=fps,
                               frame_count=max(frame_count, 0), rotation_deg=rotation,
                               codec=_fourcc_text(capture.get(cv2.CAP_PROP_FOURCC)))
        if self.info.frame_count == 0 or width <= 0 or height <= 0:
            self._check_has_frames()

    def _check_has_frames(self) -> None:
        """Containers without a frame count: decode one frame to tell 'empty' from 'unknown'."""
        ok = self._capture.grab()
        if not ok:
            self.close()
            raise NoFramesError(f"{self.path} contains no video frames (empty or unfinished recording).")
        self._reopen()

    def _reopen(self) -> None:
        """Reopen from the start: seeking back is unreliable on some codecs, a fresh capture is not."""
        self._capture.release()
        self._capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY)
        self._capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)

    def close(self) -> None:
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None

    def _timestamp_s(self, index: int) -> float:
        msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if msec is not None and math.isfinite(msec) and (msec > 0 or index == 0):
            return msec / 1000.0
        return index / self.info.fps if self.info.fps > 0 else float(index)

    def frames(self, frame_range: FrameRange = FrameRange()) -> Iterator[Frame]:
        """Yield the selected frames in order; skipped frames are only grabbed (not converted).

        Raises FrameReadError when decoding stops clearly before the container's frame count (a
        damaged or truncated file); frames before it have already been yielded.
        """
        if self._capture is None:
            raise RuntimeError("video source is closed")
        if self._started:
            self._reopen()
        self._started = True
        capture = self._capture
        rotation = 0 if self._backend_rotates else self.info.rotation_deg
        expected = self.info.frame_count
        stop = frame_range.end if frame_range.end is not None else None
        previous: tuple[float, int] | None = None   # (timestamp_s, index) of the last yielded frame
        last_good: int | None = None
        clock = MonotonicClock(self.info.fps)
        index = 0
        while stop is None or index < stop:
            if not capture.grab():
                shortfall = expected - index
                tolerance = max(1, int(round(0.002 * expected)))
                wanted_more = stop is None or index < stop
                if wanted_more and expected > 0 and shortfall > tolerance:
                    raise FrameReadError(
                        f"could not decode frame {index} of {self.path} (the container announces "
                        f"{expected} frames; the file is damaged or truncated); stopped after frame "
                        f"{last_good if last_good is not None else 'none'}",
                        frame_index=index, last_good_frame=last_good)
                return
            timestamp = clock.repair(self._timestamp_s(index))
            if clock.repaired:
                self.info.timestamps_repaired = clock.repaired
                self.info.variable_frame_rate = True
            selected = index >= frame_range.start and (index - frame_range.start) % frame_range.stride == 0
            if selected:
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    raise FrameReadError(
                        f"could not decode frame {index} of {self.path}; stopped after frame "
                        f"{last_good if last_good is not None else 'none'}",
                        frame_index=index, last_good_frame=last_good)
                rgb = cv2.cvtColor(rotate_upright(bgr, rotation), cv2.COLOR_BGR2RGB)
                if (previous is not None and not self.info.variable_frame_rate and self.info.fps > 0
                        and is_variable_frame_rate(np.array([previous[0], timestamp]),
                                                   np.array([previous[1], index]), self.info.fps)):
                    self.info.variable_frame_rate = True
                previous = (timestamp, index)
                last_good = index
                yield Frame(index=index, timestamp_s=timestamp, rgb=rgb)
            index += 1


class ImageFolderSource(FrameSource):
    """A folder of images in natural sort order, at a user-given frame rate."""

    def __init__(self, folder: str | os.PathLike, fps: float = DEFAULT_IMAGE_FOLDER_FPS) -> None:
        self.path = Path(folder)
        files = sorted((p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda p: natural_sort_key(p.name))
        if not files:
            raise NoFramesError(f"the folder {self.path} contains no images "
                                f"({', '.join(IMAGE_EXTENSIONS)}).")
        if fps <= 0:
            raise UsageError(f"--fps must be > 0 (got {fps})")
        self.files = files
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise NotAVideoError(f"cannot read the first image {files[0]} (not an image or damaged).")
        height, width = first.shape[:2]
        self.info = SourceInfo(path=str(self.path), kind="images", width=width, height=height, fps=float(fps),
                               frame_count=len(files), codec="images")

    def frames(self, frame_range: FrameRange = FrameRange()) -> Iterator[Frame]:
        stop = len(self.files) if frame_range.end is None else min(frame_range.end, len(self.files))
        last_good: int | None = None
        for index in range(frame_range.start, stop, frame_range.stride):
            path = self.files[index]
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.info.height, self.info.width):
                problem = ("cannot be decoded (damaged or not an image)" if bgr is None else
                           f"is {bgr.shape[1]}x{bgr.shape[0]}, not {self.info.width}x{self.info.height} like the first image")
                raise FrameReadError(
                    f"image {path.name} (frame {index}) {problem}; stopped after frame "
                    f"{last_good if last_good is not None else 'none'}",
                    frame_index=index, last_good_frame=last_good)
            last_good = index
            yield Frame(index=index, timestamp_s=index / self.info.fps,
                        rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def open_frame_source(path: str | os.PathLike, image_fps: float = DEFAULT_IMAGE_FOLDER_FPS) -> FrameSource:
    """Open a video file or an image folder; raises InputError subclasses with actionable messages."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path} (check the path; give a video file or a folder of images).")
    if path.is_dir():
        return ImageFolderSource(path, fps=image_fps)
    kind = special_file_kind(path)
    if kind is not None:
        raise NotAVideoError(f"{path} is {kind}, not a video file: TRACE needs a video saved as a file (it reads "
                             f"it from the start more than once). Record or copy the stream to a file first.")
    if path.stat().st_size == 0:
        raise NoFramesError(f"{path} is an empty file (0 bytes): no video frames to read.")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise NotAVideoError(f"{path} is a single image; put the frames in a folder and pass the folder.")
    source = VideoFileSource(path)
    if source.info.fps <= 0:
        source.info.fps = DEFAULT_IMAGE_FOLDER_FPS
        source.info.variable_frame_rate = True
    return source
