"""SMPL forward kinematics in numpy (no blend shapes: joints only).

G_root = [R_root | J_root],  G_i = G_parent(i) * [R_i | J_i - J_parent(i)];
the posed joint i is the translation of G_i. Vectorised over frames; the only Python loop runs over
the 24 joints of the tree.
"""
from __future__ import annotations

import numpy as np

from .rotations import axis_angle_to_matrix
from .skeleton import LEFT_HIP, RIGHT_HIP, SMPL_PARENTS


def forward_kinematics(rest_joints: np.ndarray, poses: np.ndarray, root_positions: np.ndarray | None = None,
                       parents: tuple[int, ...] | list[int] = SMPL_PARENTS) -> tuple[np.ndarray, np.ndarray]:
    """Global joint rotations and positions of posed frames.

    rest_joints [J, 3] rest joint positions; poses [T, J, 3] axis-angle per joint (joint 0 = global
    orientation); root_positions [T, 3] optional: where joint 0 goes (default: it stays at its rest
    position, as in SMPL without translation).
    Returns (rotations [T, J, 3, 3], joints [T, J, 3]), both in the frame of the rest joints.
    """
    rest = np.asarray(rest_joints, np.float64)
    pose = np.asarray(poses, np.float64)
    if pose.ndim != 3 or pose.shape[1:] != rest.shape or rest.shape[1] != 3:
        raise ValueError(f"poses must be [T, {rest.shape[0]}, 3] to match rest_joints {rest.shape}; got {pose.shape}")
    if len(parents) != rest.shape[0]:
        raise ValueError(f"parents has {len(parents)} entries for {rest.shape[0]} joints")
    local_rotations = axis_angle_to_matrix(pose)  # [T, J, 3, 3]
    frames, joint_count = pose.shape[:2]
    rotations = np.empty((frames, joint_count, 3, 3))
    positions = np.empty((frames, joint_count, 3))
    for joint, parent in enumerate(parents):
        if parent < 0:
            rotations[:, joint] = local_rotations[:, joint]
            positions[:, joint] = rest[joint]
        else:
            if parent >= joint:
                raise ValueError("parents must list every parent before its children")
            rotations[:, joint] = rotations[:, parent] @ local_rotations[:, joint]
            positions[:, joint] = positions[:, parent] + rotations[:, parent] @ (rest[joint] - rest[parent])
    if root_positions is not None:
        root = np.asarray(root_positions, np.float64).reshape(frames, 1, 3)
        positions = positions - positions[:, :1] + root
    return rotations, positions


def hip_centers(joints: np.ndarray) -> np.ndarray:
    """Mean of the left and right hip joints: [..., 24, 3] -> [..., 3] (the body's placement point)."""
    joints = np.asarray(joints)
    return 0.5 * (joints[..., LEFT_HIP, :] + joints[..., RIGHT_HIP, :])


def place_by_hip_center(joints: np.ndarray, hip_center: np.ndarray) -> np.ndarray:
    """Translate posed joints [T, J, 3] so that their hip centre equals hip_center [T, 3]."""
    joints = np.asarray(joints, np.float64)
    return joints - hip_centers(joints)[:, None, :] + np.asarray(hip_center, np.float64)[:, None, :]
