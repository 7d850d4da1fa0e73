"""The official One-Euro filter (Casiez et al. 2012) as TRACE uses it, for torch tensors and numpy arrays.

Values can be python floats, numpy arrays or torch tensors (any shape); the arithmetic is the
official one operation for operation (`utils/utils.py`: LowPassFilter, OneEuroFilter), so results
match it bit for bit in the input's dtype.

Official quirk, `feed_back_output=True`: TRACE calls `x[i] = f.process(x[i])` on a view of the array
it filters, so the raw value the filter remembers is overwritten in place by the filtered output.
The next derivative is then taken against the previous *filtered* value. Pass
`feed_back_output=True` to reproduce those numbers (the official smooth_grots / smooth_world_grots /
cam smoothing all behave like that); the default is the textbook filter.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["LowPassFilter", "OneEuroFilter"]


def _copy(value: Any) -> Any:
    """Detach a remembered value from the caller's storage (tensor / array / scalar)."""
    if hasattr(value, "clone"):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


class LowPassFilter:
    """Exponential smoothing s = alpha * x + (1 - alpha) * s_prev; the first value passes through."""

    def __init__(self) -> None:
        self.prev_raw_value: Any = None
        self.prev_filtered_value: Any = None

    def process(self, value: Any, alpha: Any) -> Any:
        if self.prev_raw_value is None:
            smoothed = value
        else:
            smoothed = alpha * value + (1.0 - alpha) * self.prev_filtered_value
        self.prev_raw_value = _copy(value)
        self.prev_filtered_value = _copy(smoothed)
        return smoothed


class OneEuroFilter:
    """Speed-adaptive low-pass filter: smooth when slow (min_cutoff), responsive when fast (beta).

    Official signature `OneEuroFilter(mincutoff, beta, dcutoff=1.0, freq=30)`; TRACE builds it as
    `OneEuroFilter(pose_smooth_coef, 0.7)`.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, freq: float = 30.0,
                 feed_back_output: bool = False) -> None:
        if not (min_cutoff > 0 and d_cutoff > 0 and freq > 0):
            raise ValueError(f"One-Euro cutoffs and frequency must be positive (min_cutoff={min_cutoff}, "
                             f"d_cutoff={d_cutoff}, freq={freq})")
        self.freq = freq
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.feed_back_output = feed_back_output
        self.x_filter = LowPassFilter()
        self.dx_filter = LowPassFilter()

    @property
    def last_value(self) -> Any:
        """The remembered raw value (official `x_filter.prev_raw_value`); None before the first call."""
        return self.x_filter.prev_raw_value

    def compute_alpha(self, cutoff: Any) -> Any:
        te = 1.0 / self.freq
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def process(self, x: Any) -> Any:
        """Filter one sample (same shape every call); returns the smoothed sample."""
        prev_x = self.x_filter.prev_raw_value
        dx = 0.0 if prev_x is None else (x - prev_x) * self.freq
        edx = self.dx_filter.process(dx, self.compute_alpha(self.d_cutoff))
        cutoff = self.min_cutoff + self.beta * _absolute(edx)
        smoothed = self.x_filter.process(x, self.compute_alpha(cutoff))
        if self.feed_back_output:
            self.x_filter.prev_raw_value = _copy(smoothed)
        return smoothed


def _absolute(value: Any) -> Any:
    if hasattr(value, "abs") and not isinstance(value, np.ndarray):
        return value.abs()
    return np.abs(value)
