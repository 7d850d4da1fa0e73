"""Coordinate frames between TRACE, canonical SMPL and Blender, and pose-bone channels.

numpy only. Conventions (docs/architecture.md, docs/blender.md):
* TRACE world (first camera: x right, y down, z forward) -> Blender world = (x, z, -y).
* Canonical SMPL rest (y up, facing +z) -> Blender rest armature = (x, -z, y): upright, facing -Y.
* The armature object keeps an identity transform; root motion lives on the pelvis bone.

A posed SMPL joint rotation G_i (TRACE world, acting on canonical vectors) becomes the Blender
world-aligned rotation W_i = A G_i C^T (A: TRACE->Blender, C: canonical->rest), which acts on
vectors of the rest armature. Blender composes pose bones as P_i = P_parent (Rest_parent^-1 Rest_i)
Basis_i, so the pose-bone quaternion is Basis_i = B_i^T (W_parent^T W_i) B_i with B_i the bone's
rest rotation (bone.matrix_local), and the root's pose location is B_0^T (head - rest_head).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trace_format.fk import forward_kinematics, place_by_hip_center
from trace_format.rotations import make_quaternions_continuous, matrix_to_quaternion
from trace_format.schema import TraceResult
from trace_format.skeleton import SMPL_PARENTS

# TRACE world (x right, y down, z forward) -> Blender world (x right, y forward, z up): (x, z, -y).
TRACE_TO_BLENDER = np.array([[1.0, 0.0, 0.0],
                             [0.0, 0.0, 1.0],
                             [0.0, -1.0, 0.0]])
# Canonical SMPL (y up, facing +z) -> Blender rest armature (z up, facing -y): (x, -z, y).
CANONICAL_TO_BLENDER_REST = np.array([[1.0, 0.0, 0.0],
                                      [0.0, 0.0, -1.0],
                                      [0.0, 1.0, 0.0]])
# Blender cameras look along their local -Z with +Y up; OpenCV cameras along +Z with +Y down.
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


class FrameError(ValueError):
    """A transform given for the world mapping is not a rigid motion."""


def trace_to_blender_transform(alignment: np.ndarray | None = None) -> np.ndarray:
    """The one place that decides how TRACE world maps into Blender world: a rigid 4x4.

    alignment: optional rigid 4x4 that maps TRACE-world points straight to Blender-world points
    (e.g. a ground alignment stored in a result); None gives the fixed axis swap (x, z, -y).
    """
    if alignment is None:
        transform = np.eye(4)
        transform[:3, :3] = TRACE_TO_BLENDER
        return transform
    transform = np.asarray(alignment, np.float64)
    if transform.shape != (4, 4):
        raise FrameError(f"a world alignment must be a 4x4 matrix, got shape {transform.shape}")
    rotation = transform[:3, :3]
    if (not np.allclose(transform[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9)
            or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
            or np.linalg.det(rotation) <= 0):
        raise FrameError("a world alignment must be a rigid motion (orthonormal rotation with det +1, "
                         "last row 0 0 0 1); scaling or mirroring would distort the bodies")
    return transform.copy()


def map_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points [..., 3] -> [..., 3]."""
    points = np.asarray(points, np.float64)
    return points @ transform[:3, :3].T + transform[:3, 3]


def canonical_to_blender_rest(points: np.ndarray) -> np.ndarray:
    """Canonical SMPL points [..., 3] -> Blender rest-armature points [..., 3]."""
    return np.asarray(points, np.float64) @ CANONICAL_TO_BLENDER_REST.T


def world_aligned_rotations(rotations_trace: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Posed global rotations [..., 3, 3] (TRACE world, on canonical vectors) -> W = A G C^T [..., 3, 3]."""
    return transform[:3, :3] @ np.asarray(rotations_trace, np.float64) @ CANONICAL_TO_BLENDER_REST.T


def pose_bone_quaternions(world_rotations: np.ndarray, bone_rest_rotations: np.ndarray,
                          parents: tuple[int, ...] | list[int] = SMPL_PARENTS) -> np.ndarray:
    """Blender pose-bone quaternions (w, x, y, z) [T, J, 4], sign-continuous over T.

    world_rotations [T, J, 3, 3]: world-aligned rotations W_i (rest armature -> world);
    bone_rest_rotations [J, 3, 3]: each bone's rest rotation B_i (bone.matrix_local.to_3x3()).
    """
    world = np.asarray(world_rotations, np.float64)
    rest = np.asarray(bone_rest_rotations, np.float64)
    parent_index = np.asarray([max(p, 0) for p in parents])
    is_root = np.asarray([p < 0 for p in parents])
    parent_world = world[:, parent_index]  # [T, J, 3, 3]
    identity = np.broadcast_to(np.eye(3), parent_world.shape)
    parent_world = np.where(is_root[None, :, None, None], identity, parent_world)
    local_world_aligned = np.swapaxes(parent_world, -1, -2) @ world  # W_p^T W_i
    basis = np.swapaxes(rest, -1, -2)[None] @ local_world_aligned @ rest[None]  # B^T L B
    return make_quaternions_continuous(matrix_to_quaternion(basis), axis=0)


def root_bone_location(head_positions: np.ndarray, rest_head: np.ndarray, rest_rotation: np.ndarray) -> np.ndarray:
    """Pose location [T, 3] of a parentless bone that moves its head to head_positions [T, 3]."""
    offset = np.asarray(head_positions, np.float64) - np.asarray(rest_head, np.float64)
    return offset @ np.asarray(rest_rotation, np.float64)  # row form of B^T (head - rest)


@dataclass
class ArmatureAnimation:
    """Everything the Blender side keys for one person, in the Blender frame."""

    quaternions: np.ndarray     # [T, J, 4] pose-bone rotations (w, x, y, z), sign-continuous
    root_location: np.ndarray   # [T, 3] pose location of the root bone (its rest frame)
    joints: np.ndarray          # [T, J, 3] posed joint positions in Blender world (what Blender should show)


def armature_animation(rest_joints: np.ndarray, poses: np.ndarray, hip_center_world: np.ndarray,
                       bone_rest_rotations: np.ndarray, transform: np.ndarray | None = None,
                       parents: tuple[int, ...] | list[int] = SMPL_PARENTS) -> ArmatureAnimation:
    """Pose-bone channels that make a Blender armature reproduce SMPL forward kinematics.

    rest_joints [J, 3] canonical rest joints (the armature was built from canonical_to_blender_rest of
    them); poses [T, J, 3] axis-angle with joint 0 = orientation in TRACE world; hip_center_world
    [T, 3] where the mean of the hip joints goes (TRACE world); bone_rest_rotations [J, 3, 3];
    transform: TRACE->Blender 4x4 (default trace_to_blender_transform()).
    """
    transform = trace_to_blender_transform() if transform is None else transform
    rotations, joints = forward_kinematics(rest_joints, poses, parents=parents)  # canonical-origin, TRACE axes
    joints_world = map_points(transform, place_by_hip_center(joints, hip_center_world))  # [T, J, 3] Blender
    world_rotations = world_aligned_rotations(rotations, transform)
    quaternions = pose_bone_quaternions(world_rotations, bone_rest_rotations, parents)
    rest_heads = canonical_to_blender_rest(rest_joints)
    root = [j for j, p in enumerate(parents) if p < 0]
    if len(root) != 1:
        raise ValueError("the skeleton must have exactly one root joint")
    root_location = root_bone_location(joints_world[:, root[0]], rest_heads[root[0]], bone_rest_rotations[root[0]])
    return ArmatureAnimation(quaternions=quaternions, root_location=root_location, joints=joints_world)


def blender_frame_rate(fps: float) -> tuple[int, float]:
    """(scene.render.fps, scene.render.fps_base) for a frame rate; fps / fps_base == the rate.

    Non-integer rates such as 29.97 (30000/1001) become fps=30, fps_base=1.001.
    """
    rate = float(fps)
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"frame rate must be a positive number, got {fps!r}")
    whole = max(1, int(round(rate)))
    return whole, whole / rate


def lens_mm_from_fov(fov_deg: float = 50.0, sensor_width_mm: float = 36.0) -> float:
    """Blender lens (mm) for a field of view spanning the image's longer side.

    TRACE's FOV (50 deg) spans the padded square, i.e. the longer side of the original image; a Blender
    camera with sensor_fit 'AUTO' applies sensor_width to the longer side too.
    """
    if not 0.0 < fov_deg < 180.0:
        raise FrameError(f"fov_deg must be in (0, 180), got {fov_deg}")
    return 0.5 * sensor_width_mm / math.tan(math.radians(fov_deg) / 2.0)


def lens_mm_from_focal_px(focal_px: float, image_width: int, image_height: int, sensor_width_mm: float = 36.0) -> float:
    """Blender lens (mm) for a focal length in pixels, sensor_fit 'AUTO' (sensor spans the longer side)."""
    if focal_px <= 0 or image_width <= 0 or image_height <= 0:
        raise FrameError("focal length and image size must be positive")
    return focal_px * sensor_width_mm / max(image_width, image_height)


def result_camera_blender_matrices(result: TraceResult, shot_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames [F], world matrices [F,4,4]) of a Blender camera object following a result's scene
    camera in one shot (local axes: looks along -Z, +Y up). Raises KeyError without a camera."""
    shots = result.effective_shots()
    if not 0 <= int(shot_index) < len(shots):
        raise KeyError(f"no shot {shot_index} in this result ({len(shots)} shot(s))")
    path = None if result.scene_camera is None else result.scene_camera.for_shot(shot_index)
    if path is None or path.num_frames == 0:
        raise KeyError(f"no scene camera stored for shot {shot_index}: run the world post-processing "
                       "(core.world.postprocess.apply_world_processing) on a result with tracked people")
    alignment = shots[int(shot_index)].alignment_matrix
    rotations = path.rotations.astype(np.float64)   # [F,3,3]
    matrices = np.broadcast_to(np.eye(4), (path.num_frames, 4, 4)).copy()
    matrices[:, :3, :3] = alignment[:3, :3] @ rotations @ OPENCV_TO_BLENDER_CAMERA
    matrices[:, :3, 3] = path.positions.astype(np.float64) @ alignment[:3, :3].T + alignment[:3, 3]
    return path.frames, matrices
