"""Rotation conversions in torch with the exact semantics of the official TRACE code.

Two 6D conventions coexist in the official code and both are needed:

* :func:`rot6d_to_rotmat` -- used for every network output (poses, global orientations): the six
  numbers are read as a 3x2 matrix (row-major), its two **columns** are Gram-Schmidt
  orthonormalised (eps 1e-6) and become the first two columns of the rotation matrix.
* :func:`rotation_6d_to_matrix_rows` -- used only by the jitter check in the pose smoothing
  (``angle_between``): the first three numbers and the last three are the two **rows**.

Matrix -> axis-angle goes through a quaternion with the eps-guarded branches of the official
(kornia-derived) routine; NaNs are replaced by 0 as the official code does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "rot6d_to_rotmat", "rotation_6d_to_matrix_rows", "rotmat_to_quaternion", "quaternion_to_axis_angle",
    "rotmat_to_axis_angle", "rot6d_to_axis_angle", "angle_between_6d_degrees",
]


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """[..., 6] (or any shape with a multiple of 6 elements) -> [M, 3, 3], columns convention."""
    pairs = x.reshape(-1, 3, 2)
    b1 = F.normalize(pairs[:, :, 0], dim=1, eps=1e-6)
    dot = torch.sum(b1 * pairs[:, :, 1], dim=1, keepdim=True)
    b2 = F.normalize(pairs[:, :, 1] - dot * b1, dim=-1, eps=1e-6)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotation_6d_to_matrix_rows(d6: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> [..., 3, 3], rows convention (Zhou et al. as in PyTorch3D)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def _guarded_divide(numerator: torch.Tensor, denominator: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    denominator = torch.where(denominator.abs() < eps, denominator + eps, denominator)
    return numerator / denominator


def rotmat_to_quaternion(rotmat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """[..., 3, 3] -> [..., 4] quaternion (w, x, y, z), branch on trace / largest diagonal element."""
    if rotmat.shape[-2:] != (3, 3):
        raise ValueError(f"expected [..., 3, 3] rotation matrices, got {tuple(rotmat.shape)}")
    m = rotmat.reshape(*rotmat.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = torch.chunk(m, 9, dim=-1)
    trace = m00 + m11 + m22

    s = torch.sqrt((trace + 1.0).clamp_min(eps)) * 2.0
    q_trace = torch.cat((0.25 * s, _guarded_divide(m21 - m12, s), _guarded_divide(m02 - m20, s),
                         _guarded_divide(m10 - m01, s)), dim=-1)
    s = torch.sqrt((1.0 + m00 - m11 - m22).clamp_min(eps)) * 2.0
    q_x = torch.cat((_guarded_divide(m21 - m12, s), 0.25 * s, _guarded_divide(m01 + m10, s),
                     _guarded_divide(m02 + m20, s)), dim=-1)
    s = torch.sqrt((1.0 + m11 - m00 - m22).clamp_min(eps)) * 2.0
    q_y = torch.cat((_guarded_divide(m02 - m20, s), _guarded_divide(m01 + m10, s), 0.25 * s,
                     _guarded_divide(m12 + m21, s)), dim=-1)
    s = torch.sqrt((1.0 + m22 - m00 - m11).clamp_min(eps)) * 2.0
    q_z = torch.cat((_guarded_divide(m10 - m01, s), _guarded_divide(m02 + m20, s),
                     _guarded_divide(m12 + m21, s), 0.25 * s), dim=-1)

    q_yz = torch.where(m11 > m22, q_y, q_z)
    q_xyz = torch.where((m00 > m11) & (m00 > m22), q_x, q_yz)
    return torch.where(trace > 0.0, q_trace, q_xyz)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """[..., 4] (w, x, y, z) -> [..., 3] axis-angle, angle in [0, pi] via the sign of w."""
    qv = quaternion[..., 1:]
    sin_sq = (qv * qv).sum(-1)
    sin_theta = torch.sqrt(sin_sq)
    cos_theta = quaternion[..., 0]
    two_theta = 2.0 * torch.where(cos_theta < 0.0, torch.atan2(-sin_theta, -cos_theta),
                                  torch.atan2(sin_theta, cos_theta))
    k = torch.where(sin_sq > 0.0, two_theta / sin_theta, 2.0 * torch.ones_like(sin_theta))
    return qv * k[..., None]


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 3]; NaNs (degenerate input) become 0 like the official routine."""
    aa = quaternion_to_axis_angle(rotmat_to_quaternion(rotmat))
    return torch.nan_to_num(aa, nan=0.0, posinf=float("inf"), neginf=float("-inf"))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """[N, J*6] -> [N, J*3] (official ``rot6D_to_angular``)."""
    n = rot6d.shape[0]
    return rotmat_to_axis_angle(rot6d_to_rotmat(rot6d)).reshape(n, -1)


def angle_between_6d_degrees(rot_a: torch.Tensor, rot_b: torch.Tensor) -> float:
    """Angle in degrees of R_a^T R_b for two 6D rotations (rows convention, as the official check)."""
    ra = rotation_6d_to_matrix_rows(rot_a.reshape(1, 6))
    rb = rotation_6d_to_matrix_rows(rot_b.reshape(1, 6))
    relative = ra.transpose(1, 2).bmm(rb)
    return float(rotmat_to_axis_angle(relative).norm(dim=1)[0]) * 180 / math.pi
