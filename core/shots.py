"""Hard shot-cut detection on streamed frames, and where a track crosses the cuts.

TRACE's tracker, memory unit and world trajectories assume one continuous camera. Across a hard cut
the "world" jumps and a person tracked on both sides would be dragged through the scene, so the
pipeline restarts its stream at every cut and no track may span one.

`ShotCutDetector` sees one frame at a time (no whole-video memory: it keeps a tiny thumbnail of the
previous frame and a short history of scores). Per frame it measures, against the previous frame:

* `colour_distance`: half the L1 distance between hue/saturation histograms of a thumbnail
  (grey pixels are binned by value instead of hue), in [0, 1]. Brightness flicker and camera motion
  barely change it; a cut to a different scene does.
* `structure_distance`: mean absolute difference of the contrast-normalised luma thumbnails,
  minimised over small shifts (a pan moves content by a few thumbnail pixels; a cut changes it at
  every shift). Normalising by the frame's own mean and contrast removes flicker and fades.

Flat frames (black, or nearly uniform) are not judged: the next frame with content is compared with
the last frame that had content. A fade out and back into the same scene is therefore no cut, while
a fade through black into another scene is one cut, at the first frame of the new scene that shows
content.

A cut is declared when a distance is both large in absolute terms and large relative to the running
median of the recent distances of the same shot (adaptive to noisy or busy footage), and at least
`min_shot_frames` after the previous cut. Gradual transitions (cross-fades, fades through black)
are deliberately not cut: each of their frames changes little (see docs/world.md for the limits).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "ShotCutError",
    "ShotCutSettings",
    "FrameChange",
    "ShotCutDetector",
    "shot_segments",
]


class ShotCutError(ValueError):
    """Frames pushed in a way the detector cannot use (wrong dtype/shape, indices going back)."""


@dataclass(frozen=True)
class ShotCutSettings:
    """Parameters of the cut decision (defaults tuned on synthetic footage, see docs/world.md)."""

    thumbnail_width: int = 64            # thumbnail size the frame is area-averaged to (pixels)
    hue_bins: int = 16
    saturation_bins: int = 3
    grey_value_bins: int = 4             # pixels with saturation < grey_saturation: binned by value
    grey_saturation: float = 0.15
    max_shift_px: int = 3                # structure distance: best over shifts up to this (thumbnail px)
    contrast_floor: float = 0.02         # luma std (0..1 units) below this: a flat/black frame, not judged
    history_frames: int = 30             # running median over this many past distances (same shot)
    min_history_frames: int = 3          # with fewer, only the absolute thresholds apply
    colour_min: float = 0.30             # colour path: absolute floor ...
    colour_ratio: float = 3.0            # ... and ratio to the running median (+ margin)
    colour_margin: float = 0.05
    colour_structure_min: float = 0.25   # colour path also needs this much structural change
    structure_min: float = 0.70          # structure-only path (similar colours): absolute floor ...
    structure_ratio: float = 4.0         # ... and ratio to the running median
    min_shot_frames: int = 8             # no cut within this many frames of the previous cut


@dataclass(frozen=True)
class FrameChange:
    """Distances of one frame to the previous one and the decision taken."""

    frame_index: int
    colour_distance: float
    structure_distance: float
    is_cut: bool


def _thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    """Area-average an RGB frame down to a small float image.

    rgb: [H,W,3] uint8 -> [h,w,3] float32 in [0, 1], w = min(width, W), aspect kept.
    """
    height_px, width_px = rgb.shape[:2]
    thumb_w = max(1, min(width, width_px))
    thumb_h = max(1, min(height_px, int(round(thumb_w * height_px / width_px))))
    # Pre-stride very large frames: 4+ samples per thumbnail cell are plenty for an average.
    stride = max(1, min(height_px // (thumb_h * 4), width_px // (thumb_w * 4)))
    image = rgb[::stride, ::stride].astype(np.float32)
    rows = np.linspace(0, image.shape[0], thumb_h + 1).astype(np.int64)[:-1]
    cols = np.linspace(0, image.shape[1], thumb_w + 1).astype(np.int64)[:-1]
    summed = np.add.reduceat(np.add.reduceat(image, rows, axis=0), cols, axis=1)
    counts = np.diff(np.append(rows, image.shape[0]))[:, None] * np.diff(np.append(cols, image.shape[1]))[None, :]
    return summed / (counts[:, :, None] * 255.0)


def _hsv(rgb01: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB in [0,1] [...,3] -> hue in [0,1), saturation, value (each [...])."""
    maximum = rgb01.max(axis=-1)
    minimum = rgb01.min(axis=-1)
    chroma = maximum - minimum
    saturation = np.where(maximum > 1e-6, chroma / np.maximum(maximum, 1e-6), 0.0)
    red, green, blue = rgb01[..., 0], rgb01[..., 1], rgb01[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        maximum == red, ((green - blue) / safe) % 6.0,
        np.where(maximum == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0),
    ) / 6.0
    return np.where(chroma > 1e-6, hue, 0.0), saturation, maximum


def _colour_histogram(thumb: np.ndarray, settings: ShotCutSettings) -> np.ndarray:
    """Hue x saturation histogram with grey pixels binned by value. thumb [h,w,3] -> [bins] summing to 1."""
    hue, saturation, value = _hsv(thumb)
    is_grey = saturation < settings.grey_saturation
    sat_span = max(1e-6, 1.0 - settings.grey_saturation)
    hue_bin = np.minimum((hue * settings.hue_bins).astype(np.int64), settings.hue_bins - 1)
    sat_bin = np.clip(((saturation - settings.grey_saturation) / sat_span * settings.saturation_bins).astype(np.int64),
                      0, settings.saturation_bins - 1)
    grey_bin = np.minimum((value * settings.grey_value_bins).astype(np.int64), settings.grey_value_bins - 1)
    colour_bins = settings.hue_bins * settings.saturation_bins
    bins = np.where(is_grey, colour_bins + grey_bin, hue_bin * settings.saturation_bins + sat_bin)
    histogram = np.bincount(bins.ravel(), minlength=colour_bins + settings.grey_value_bins).astype(np.float64)
    return histogram / max(1.0, histogram.sum())


def _normalised_luma(thumb: np.ndarray) -> tuple[np.ndarray, float]:
    """Zero-mean, unit-contrast luma (Rec. 601) and the contrast (std) it was divided by.

    thumb [h,w,3] -> ([h,w] float64, std in [0, 0.5]); a flat frame returns zeros and std ~ 0.
    """
    luma = thumb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    centred = luma - luma.mean()
    contrast = float(centred.std())
    return centred / max(contrast, 1e-6), contrast


def _shifted_mean_abs_difference(previous: np.ndarray, current: np.ndarray, max_shift: int) -> float:
    """Smallest mean |previous - current| over integer shifts up to max_shift on the overlap. [h,w] each."""
    height, width = current.shape
    best = np.inf
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            if height - abs(dy) < 2 or width - abs(dx) < 2:
                continue
            a = previous[max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)]
            b = current[max(0, -dy):height + min(0, -dy), max(0, -dx):width + min(0, -dx)]
            best = min(best, float(np.abs(a - b).mean()))
    return best


class ShotCutDetector:
    """Streaming hard-cut detector: push frames in order, read shots at any time.

    Memory is O(thumbnail + history), independent of video length.
    """

    def __init__(self, settings: ShotCutSettings | None = None) -> None:
        self.settings = settings or ShotCutSettings()
        self._previous_hist: np.ndarray | None = None
        self._previous_luma: np.ndarray | None = None
        self._previous_index: int | None = None
        self._colour_history: deque[float] = deque(maxlen=self.settings.history_frames)
        self._structure_history: deque[float] = deque(maxlen=self.settings.history_frames)
        self._first_index: int | None = None
        self._cut_indices: list[int] = []
        self._frames_since_cut = 0
        self.last_change: FrameChange | None = None

    def push(self, frame_index: int, rgb_uint8: np.ndarray) -> bool:
        """Feed the next frame (RGB uint8 [H,W,3]); True if a hard cut lies just before it."""
        frame = np.asarray(rgb_uint8)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ShotCutError(f"expected an RGB uint8 frame [H,W,3], got dtype {frame.dtype} shape {frame.shape}")
        if self._previous_index is not None and frame_index <= self._previous_index:
            raise ShotCutError(
                f"frame indices must increase: got {frame_index} after {self._previous_index}; "
                "use a new ShotCutDetector for another video")
        s = self.settings
        thumb = _thumbnail(frame, s.thumbnail_width)
        histogram = _colour_histogram(thumb, s)
        luma, contrast = _normalised_luma(thumb)
        if self._first_index is None:
            self._first_index = frame_index
        self._previous_index = frame_index
        if contrast < s.contrast_floor:
            # Black or flat frame (fade through black, title card): nothing to compare; the next frame is
            # compared with the last frame that had content, so a fade out and back in is not a cut.
            self._frames_since_cut += 1
            self.last_change = FrameChange(frame_index, 0.0, 0.0, False)
            return False
        has_previous = self._previous_luma is not None and self._previous_luma.shape == luma.shape
        if not has_previous:
            is_cut = False  # first frame with content (or a resolution change, which is not judged)
            colour = structure = 0.0
        else:
            colour = 0.5 * float(np.abs(histogram - self._previous_hist).sum())
            structure = _shifted_mean_abs_difference(self._previous_luma, luma, s.max_shift_px)
            is_cut = self._decide(colour, structure)
        self._previous_hist, self._previous_luma = histogram, luma
        self.last_change = FrameChange(frame_index, colour, structure, is_cut)
        if is_cut:
            self._cut_indices.append(frame_index)
            self._colour_history.clear()
            self._structure_history.clear()
            self._frames_since_cut = 1
        else:
            if has_previous:
                self._colour_history.append(colour)
                self._structure_history.append(structure)
            self._frames_since_cut += 1
        return is_cut

    def _decide(self, colour: float, structure: float) -> bool:
        """Cut decision from the two distances and the running medians of this shot."""
        s = self.settings
        if self._frames_since_cut < s.min_shot_frames:
            return False
        enough = len(self._colour_history) >= s.min_history_frames
        colour_median = float(np.median(self._colour_history)) if enough else 0.0
        structure_median = float(np.median(self._structure_history)) if enough else 0.0
        colour_cut = (colour >= s.colour_min and colour >= s.colour_ratio * colour_median + s.colour_margin
                      and structure >= s.colour_structure_min)
        structure_cut = structure >= s.structure_min and structure >= s.structure_ratio * structure_median
        return bool(colour_cut or structure_cut)

    @property
    def cut_frames(self) -> list[int]:
        """Frame indices that start a new shot (the first frame of each shot after the first)."""
        return list(self._cut_indices)

    def shots(self) -> list[tuple[int, int]]:
        """Shots so far as half-open (start_frame, stop_frame) ranges; stop = last pushed index + 1."""
        if self._first_index is None or self._previous_index is None:
            return []
        starts = [self._first_index, *self._cut_indices]
        stops = [*self._cut_indices, self._previous_index + 1]
        return list(zip(starts, stops))


def shot_segments(frames: np.ndarray, cut_frames: Sequence[int]) -> list[np.ndarray]:
    """Split one track at the cuts.

    frames: [T] increasing frame indices of the track; cut_frames: first frames of new shots.
    Returns index arrays into the track (each non-empty, increasing), one per shot it appears in.
    """
    frames = np.asarray(frames)
    if frames.ndim != 1:
        raise ShotCutError(f"frames must be 1-D, got shape {frames.shape}")
    if frames.size > 1 and np.any(np.diff(frames) <= 0):
        raise ShotCutError("track frames must be strictly increasing")
    shot_id = np.searchsorted(np.sort(np.asarray(cut_frames, dtype=np.int64)), frames, side="right")  # [T]
    boundaries = np.flatnonzero(np.diff(shot_id)) + 1
    return [piece for piece in np.split(np.arange(frames.size), boundaries) if piece.size]
