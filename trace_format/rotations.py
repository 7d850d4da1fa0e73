"""Batched rotation conversions: axis-angle <-> matrix <-> quaternion (w, x, y, z).

numpy only (shared with the Blender extension). Every function accepts any leading batch
shape `[...]` and is robust at angle 0 (series expansions instead of 0/0) and near pi (quaternions
are extracted with the largest-pivot rule, axis-angle through atan2, never through arccos).
"""
from __future__ import annotations

import numpy as np

# Below this angle (radians) the sinc-like factors switch to their Taylor series.
_SMALL_ANGLE = 1e-6


def _as_float(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: [..., 3] rotation vectors -> [..., 3, 3] rotation matrices."""
    rotvec = _as_float(axis_angle)
    angle_sq = np.sum(rotvec * rotvec, axis=-1)  # [...]
    angle = np.sqrt(angle_sq)
    small = angle < _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    # sin(a)/a and (1 - cos a)/a^2 with their series near 0.
    sin_over_angle = np.where(small, 1.0 - angle_sq / 6.0, np.sin(safe) / safe)
    one_minus_cos_over_sq = np.where(small, 0.5 - angle_sq / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    zeros = np.zeros_like(x)
    skew = np.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], axis=-1).reshape(rotvec.shape[:-1] + (3, 3))
    outer = rotvec[..., :, None] * rotvec[..., None, :]  # [..., 3, 3]
    # R = I + s K + c K^2 with K^2 = r r^T - |r|^2 I
    identity = np.broadcast_to(np.eye(3, dtype=rotvec.dtype), skew.shape)
    k_squared = outer - angle_sq[..., None, None] * identity
    return identity + sin_over_angle[..., None, None] * skew + one_minus_cos_over_sq[..., None, None] * k_squared


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """[..., 4] quaternions (w, x, y, z), normalised here -> [..., 3, 3] rotation matrices."""
    q = _as_float(quaternions)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return np.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions (w, x, y, z) with w >= 0.

    Why four candidates: each formula divides by one of 4w^2, 4x^2, 4y^2, 4z^2; picking the largest
    keeps full precision at every angle, including 180-degree turns where w is 0.
    """
    m = _as_float(matrices)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    four_sq = np.stack([
        1.0 + m00 + m11 + m22,  # 4 w^2
        1.0 + m00 - m11 - m22,  # 4 x^2
        1.0 - m00 + m11 - m22,  # 4 y^2
        1.0 - m00 - m11 + m22,  # 4 z^2
    ], axis=-1)  # [..., 4]
    candidates = np.stack([
        np.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
        np.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], axis=-1),
        np.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], axis=-1),
        np.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], axis=-1),
    ], axis=-2)  # [..., 4 candidates, 4 components]; candidate k equals 4 q_k * q
    best = np.argmax(four_sq, axis=-1)  # [...]
    chosen = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]  # [..., 4]
    q = chosen / np.linalg.norm(chosen, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """[..., 3] rotation vectors -> [..., 4] unit quaternions (w, x, y, z)."""
    rotvec = _as_float(axis_angle)
    angle_sq = np.sum(rotvec * rotvec, axis=-1)
    angle = np.sqrt(angle_sq)
    small = angle < _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    half_sin_over_angle = np.where(small, 0.5 - angle_sq / 48.0, np.sin(0.5 * safe) / safe)
    return np.concatenate([np.cos(0.5 * angle)[..., None], rotvec * half_sin_over_angle[..., None]], axis=-1)


def quaternion_to_axis_angle(quaternions: np.ndarray) -> np.ndarray:
    """[..., 4] quaternions (w, x, y, z) -> [..., 3] rotation vectors with angle in [0, pi]."""
    q = _as_float(quaternions)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)  # shortest rotation: angle <= pi
    vector = q[..., 1:]
    sin_half = np.linalg.norm(vector, axis=-1)  # [...]
    angle = 2.0 * np.arctan2(sin_half, q[..., 0])
    small = sin_half < _SMALL_ANGLE
    # angle / sin(angle/2); near 0 this tends to 2 / w (w ~ 1).
    factor = np.where(small, 2.0 / np.maximum(q[..., 0], 1e-12), angle / np.where(small, 1.0, sin_half))
    return vector * factor[..., None]


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices -> [..., 3] rotation vectors (angle in [0, pi])."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrices))


def make_quaternions_continuous(quaternions: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so consecutive quaternions have a non-negative dot product.

    Why: q and -q are the same rotation, but Blender and game engines interpolate keys component by
    component, so a sign jump between two keys makes the bone spin the long way round.
    Input and output [..., T, ..., 4] (T on `axis`); vectorised: the flip of key t is the product
    of the signs of all consecutive dot products up to t.
    """
    q = _as_float(quaternions)
    q_time_first = np.moveaxis(q, axis, 0)  # [T, ..., 4]
    if q_time_first.shape[0] < 2:
        return q.copy()
    dots = np.sum(q_time_first[1:] * q_time_first[:-1], axis=-1)  # [T-1, ...]
    step_signs = np.where(dots < 0, -1.0, 1.0)
    signs = np.concatenate([np.ones_like(step_signs[:1]), np.cumprod(step_signs, axis=0)], axis=0)  # [T, ...]
    return np.moveaxis(q_time_first * signs[..., None], 0, axis)
