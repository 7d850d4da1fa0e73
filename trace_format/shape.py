"""The one body shape (rest betas) of a track: what the world stage plants the feet of and what
Blender builds the skeleton and mesh from, so both use the same skeleton. numpy only."""
from __future__ import annotations

import numpy as np

from .schema import TrackResult

__all__ = ["rest_betas"]


def rest_betas(track: TrackResult) -> np.ndarray:
    """[B] float64: the track's betas averaged with the confidence of its detected (observed) frames;
    the plain mean over all frames when none was detected (or every weight is 0)."""
    weights = track.confidence.astype(np.float64) * track.observed                     # [T]
    if weights.sum() <= 0:
        weights = np.ones(track.num_frames)
    return weights @ track.betas.astype(np.float64) / weights.sum()
