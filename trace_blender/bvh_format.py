"""BVH motion files, Y up (pure numpy: no bpy).

Blender's own BVH exporter writes Blender's axes (Z up), which most BVH consumers read lying on
their back; this writer takes joint data already converted to the usual BVH frame (Y up, the body
facing +Z) so the file opens upright in MotionBuilder, Unity / Unreal retargeting tools and
Blender's importer with its default axes. Rotation channels are Z X Y (R = Rz Rx Ry), angles in
degrees, continuous over time (of the two equivalent angle sets and their whole turns, each frame
takes the one nearest the previous frame), so no channel jumps.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from trace_format import atomic

from .export_rig import continuous_euler

# Blender world (z up, facing -y) -> BVH world (y up, facing +z): (x, z, -y).
BLENDER_TO_Y_UP = np.array([[1.0, 0.0, 0.0],
                            [0.0, 0.0, 1.0],
                            [0.0, -1.0, 0.0]])


def matrix_to_euler_zxy(matrices: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotations -> [..., 3] angles (z, x, y) in radians with R = Rz(z) Rx(x) Ry(y)."""
    m = np.asarray(matrices, np.float64)
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    gimbal = np.abs(m[..., 2, 1]) > 1.0 - 1e-12
    z = np.where(gimbal, np.arctan2(m[..., 1, 0], m[..., 0, 0]), np.arctan2(-m[..., 0, 1], m[..., 1, 1]))
    y = np.where(gimbal, 0.0, np.arctan2(-m[..., 2, 0], m[..., 2, 2]))
    return np.stack([z, x, y], axis=-1)


def euler_zxy_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Inverse of matrix_to_euler_zxy: [..., 3] (z, x, y) radians -> [..., 3, 3]."""
    a = np.asarray(angles, np.float64)
    cz, sz = np.cos(a[..., 0]), np.sin(a[..., 0])
    cx, sx = np.cos(a[..., 1]), np.sin(a[..., 1])
    cy, sy = np.cos(a[..., 2]), np.sin(a[..., 2])
    zero, one = np.zeros_like(cz), np.ones_like(cz)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(a.shape[:-1] + (3, 3))
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(a.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(a.shape[:-1] + (3, 3))
    return rz @ rx @ ry


def depth_first_order(parents: Sequence[int]) -> list[int]:
    """Joint indices in the order BVH lists them (each joint followed by its subtree)."""
    children: list[list[int]] = [[] for _ in parents]
    roots = []
    for joint, parent in enumerate(parents):
        (children[parent] if parent >= 0 else roots).append(joint)
    order: list[int] = []
    stack = list(reversed(roots))
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(children[joint]))
    return order


def format_bvh(joint_names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, end_offsets: np.ndarray,
               root_positions: np.ndarray, local_rotations: np.ndarray, frame_time: float) -> str:
    """BVH text for one skeleton.

    offsets [J, 3]: each joint relative to its parent at rest (root: zero);
    end_offsets [J, 3]: End Site offset of leaf joints; root_positions [T, 3];
    local_rotations [T, J, 3, 3]: each joint relative to its parent (root: to the world), all in
    the Y-up frame, identity = rest pose. frame_time: seconds per frame.
    """
    count = root_positions.shape[0]
    parents = list(parents)
    children: list[list[int]] = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    lines = ["HIERARCHY"]

    def emit(joint: int, depth: int) -> None:
        pad = "\t" * depth
        is_root = parents[joint] < 0
        lines.append(f"{pad}{'ROOT' if is_root else 'JOINT'} {joint_names[joint]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {offsets[joint, 0]:.6f} {offsets[joint, 1]:.6f} {offsets[joint, 2]:.6f}")
        if is_root:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation")
        for child in children[joint]:
            emit(child, depth + 1)
        if not children[joint]:
            end = end_offsets[joint]
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    for root in (j for j, p in enumerate(parents) if p < 0):
        emit(root, 0)
    order = depth_first_order(parents)
    first = matrix_to_euler_zxy(local_rotations[:, order])                  # [T, J, 3] (z, x, y)
    second = np.stack([first[..., 0] + np.pi, np.pi - first[..., 1], first[..., 2] + np.pi], axis=-1)
    angles = np.degrees(continuous_euler(first, second, np.zeros(first.shape[1:])))   # from the rest, no jumps
    motion = np.concatenate([root_positions, angles.reshape(count, -1)], axis=1)  # [T, 3 + 3J]
    lines += ["MOTION", f"Frames: {count}", f"Frame Time: {frame_time:.8f}"]
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in motion)
    return "\n".join(lines) + "\n" + body + "\n"


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    target = Path(path)
    with atomic.atomic_open(target, "w", newline="\n") as stream:
        stream.write(text)
    return target


def skeleton_motion_to_bvh_frame(rest_heads: np.ndarray, rest_tails: np.ndarray, parents: Sequence[int],
                                 world_rotations: np.ndarray, root_heads: np.ndarray
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blender-side joint data -> BVH arrays (offsets, end offsets, root positions, local rotations).

    rest_heads / rest_tails [J, 3]: rest bone heads / tails in Blender world; world_rotations
    [T, J, 3, 3]: world-aligned rotations W_i (posed = W_i applied to rest vectors); root_heads [T, 3].
    """
    q = BLENDER_TO_Y_UP
    parent_index = np.array([max(p, 0) for p in parents])
    is_root = np.array([p < 0 for p in parents])
    # Root OFFSET 0: readers differ on whether root position channels add to the OFFSET or replace it.
    offsets = np.where(is_root[:, None], 0.0, rest_heads - rest_heads[parent_index]) @ q.T
    end_offsets = (rest_tails - rest_heads) @ q.T
    world_y_up = q @ world_rotations @ q.T  # [T, J, 3, 3]
    parent_world = np.where(is_root[None, :, None, None], np.eye(3), world_y_up[:, parent_index])
    local = np.swapaxes(parent_world, -1, -2) @ world_y_up
    return offsets, end_offsets, root_heads @ q.T, local
