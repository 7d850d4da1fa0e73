"""The official TRACE input preprocessing, and its inverse for 2D positions.

Exactly what the official loader does (see the reference README, "Official preprocessing"): pad the
RGB frame to a square with white (top/left get the floor of the split, bottom/right the ceil),
then `cv2.resize` to 512x512 with INTER_CUBIC on uint8. The network was trained on that, so any
other resize or padding colour changes its outputs.
"""
from __future__ import annotations

import cv2
import numpy as np

INPUT_SIZE = 512
MAP_SIZE = 128          # the network's output maps are 128x128 over the 512x512 input
PAD_VALUE = 255


def square_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, right, bottom, left) white padding that makes an HxW frame square (imgaug's split)."""
    if height < width:
        diff = width - height
        return diff // 2, 0, diff - diff // 2, 0
    if width < height:
        diff = height - width
        return 0, diff - diff // 2, 0, diff // 2
    return 0, 0, 0, 0


def input_offsets(height: int, width: int) -> np.ndarray:
    """The official per-frame `offsets` [10]: padded H, padded W, 4 crop zeros, top, right, bottom, left."""
    top, right, bottom, left = square_padding(height, width)
    return np.array([height + top + bottom, width + left + right, 0, 0, 0, 0, top, right, bottom, left],
                    dtype=np.float32)


def preprocess_frame(rgb: np.ndarray, input_size: int = INPUT_SIZE) -> np.ndarray:
    """[H,W,3] uint8 RGB frame -> [input_size,input_size,3] uint8, padded white and bicubic-resized."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H,W,3] uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    top, right, bottom, left = square_padding(*rgb.shape[:2])
    padded = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))  # [S,S,3]
    return cv2.resize(padded, (input_size, input_size), interpolation=cv2.INTER_CUBIC)


def map_yx_to_source_xy(map_yx: np.ndarray, offsets: np.ndarray, map_size: int = MAP_SIZE,
                        input_size: int = INPUT_SIZE) -> np.ndarray:
    """Centres on the network map (y, x) [N,2] -> source-video pixel positions (x, y) [N,2].

    Same convention as the official code: map cell * (512/128) is the position in the 512 input
    (no half-cell shift), scaled to the padded square and shifted by the left/top padding.
    `offsets` is one [10] vector or per-row [N,10].
    """
    map_yx = np.asarray(map_yx, dtype=np.float64).reshape(-1, 2)
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (len(map_yx), 10))
    yx_input = map_yx * (input_size / map_size)                          # [N,2] in the 512 input
    padded_hw = offsets[:, 0:2]                                           # [N,2] (H, W)
    top, left = offsets[:, 6], offsets[:, 9]
    y = yx_input[:, 0] * padded_hw[:, 0] / input_size - top
    x = yx_input[:, 1] * padded_hw[:, 1] / input_size - left
    return np.stack([x, y], axis=1)
