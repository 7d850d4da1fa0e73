"""Every convention between TRACE's numbers and Blender's scene, in one place (numpy only, no bpy).

* TRACE world (first camera of a shot: x right, y down, z forward, metres) -> Blender world
  (x right, y forward, z up): the shot's stored ground alignment, or the fixed swap (x, z, -y).
* Canonical SMPL rest (y up, facing +z) -> Blender rest armature (z up, facing -y): (x, -z, y).
* Cameras: stored with OpenCV axes (+z forward, +y down); a Blender camera looks along local -z, +y up.
* Lens: TRACE's field of view spans the longer side of the (square-padded) image; a 36 mm sensor is
  fitted to that side.
* Time: video frame i -> scene frame frame_start + i; 29.97 fps -> fps 30, fps_base 1.001.
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
from trace_format.schema import DEFAULT_ALIGNMENT_MATRIX
from trace_format.skeleton import SMPL_PARENTS

# TRACE world (x right, y down, z forward) -> Blender world (x right, y forward, z up): (x, z, -y).
# The result format stores it as the alignment of a shot without a floor fit.
TRACE_TO_BLENDER: np.ndarray = np.array(DEFAULT_ALIGNMENT_MATRIX[:3, :3])
# Canonical SMPL (y up, facing +z) -> Blender rest armature (z up, facing -y): (x, -z, y).
CANONICAL_TO_BLENDER_REST: np.ndarray = np.array([[1.0, 0.0, 0.0],
                                                  [0.0, 0.0, -1.0],
                                                  [0.0, 1.0, 0.0]])
# Stored camera axes are OpenCV's (+z forward, +y down); Blender cameras look along local -z with +y up.
OPENCV_TO_BLENDER_CAMERA: np.ndarray = np.diag([1.0, -1.0, -1.0])
# TRACE's field of view spans the longer side of the padded square input: a 36 mm sensor on that side.
SENSOR_MM = 36.0
# The lens TRACE assumes when the result names none (the official 50 degrees over the padded square).
DEFAULT_FOV_DEG = 50.0


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


# ------------------------------------------------------------------------------------------------ camera
def camera_object_matrices(rotations: np.ndarray, positions: np.ndarray, base: np.ndarray) -> np.ndarray:
    """World matrices [F,4,4] of a Blender camera object (local -Z forward, +Y up).

    rotations [F,3,3]: camera (OpenCV axes) -> shared TRACE world; positions [F,3]: camera centre there;
    base [4,4]: shared TRACE world -> Blender world.
    """
    rotations = np.asarray(rotations, np.float64)
    positions = np.asarray(positions, np.float64)
    matrices = np.broadcast_to(np.eye(4), (rotations.shape[0], 4, 4)).copy()
    matrices[:, :3, :3] = base[:3, :3] @ rotations @ OPENCV_TO_BLENDER_CAMERA
    matrices[:, :3, 3] = positions @ base[:3, :3].T + base[:3, 3]
    return matrices


def camera_keys(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(location [F,3], rotation_quaternion [F,4] wxyz, sign-continuous) of camera object matrices [F,4,4]."""
    rotations = np.asarray(matrices, np.float64)[:, :3, :3]
    quaternions = make_quaternions_continuous(matrix_to_quaternion(rotations), axis=0)
    return np.asarray(matrices, np.float64)[:, :3, 3].copy(), quaternions


@dataclass(frozen=True)
class LensSettings:
    """Blender camera data for the footage's pinhole camera."""

    lens_mm: float
    sensor_fit: str        # "HORIZONTAL" (landscape or square) | "VERTICAL" (portrait) | "AUTO" (size unknown)
    sensor_mm: float       # applied to the side named by sensor_fit (the longer side)
    fov_deg: float         # field of view across the longer image side


def lens_settings(fov_deg: float | None, focal_px: float | None, width: int, height: int) -> LensSettings:
    """Blender lens for the camera TRACE assumed.

    fov_deg (and focal_px) refer to the longer side of the image (TRACE pads frames to a square of
    that side), so the sensor is fitted to the longer side: HORIZONTAL for landscape, VERTICAL for
    portrait; AUTO (Blender's longer side of the render size) when the video size is unknown.
    lens / sensor = focal / longer side = 1 / (2 tan(fov / 2)); focal_px wins when the size is known.
    """
    longer = max(int(width or 0), int(height or 0))
    if focal_px is not None and np.isfinite(focal_px) and focal_px > 0 and longer > 0:
        lens = float(focal_px) * SENSOR_MM / longer
        fov = math.degrees(2.0 * math.atan(0.5 * longer / float(focal_px)))
    else:
        fov = DEFAULT_FOV_DEG if fov_deg is None or not np.isfinite(fov_deg) else float(fov_deg)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"the field of view must be between 0 and 180 degrees, got {fov}")
        lens = 0.5 * SENSOR_MM / math.tan(math.radians(fov) / 2.0)
    if longer <= 0:
        fit = "AUTO"
    else:
        fit = "HORIZONTAL" if int(width) >= int(height) else "VERTICAL"
    return LensSettings(lens_mm=lens, sensor_fit=fit, sensor_mm=SENSOR_MM, fov_deg=fov)
