"""TRACE world -> Blender conventions (axis swaps, pose-bone quaternions, frame rates, camera axes, lens).

The rig math itself (rotations, SMPL skeleton, FK) lives in `trace_format`; it is re-exported here so
that `core.rig` still offers one namespace to the add-on until the add-on holds these conventions
itself (trace_blender/frames.py).
"""
from trace_format.fk import forward_kinematics, hip_centers, place_by_hip_center
from trace_format.rotations import (axis_angle_to_matrix, axis_angle_to_quaternion, make_quaternions_continuous,
                                    matrix_to_axis_angle, matrix_to_quaternion, quaternion_to_axis_angle,
                                    quaternion_to_matrix)
from trace_format.skeleton import (DEFAULT_SKELETON_PATH, SMPL_JOINT_NAMES, SMPL_PARENTS, SkeletonError,
                                   anthropometric_rest_joints, bone_tails, load_default_skeleton)

from .frames import (CANONICAL_TO_BLENDER_REST, OPENCV_TO_BLENDER_CAMERA, TRACE_TO_BLENDER, ArmatureAnimation,
                     FrameError, armature_animation, blender_frame_rate, canonical_to_blender_rest,
                     lens_mm_from_focal_px, lens_mm_from_fov, map_points, pose_bone_quaternions,
                     result_camera_blender_matrices, root_bone_location, trace_to_blender_transform,
                     world_aligned_rotations)

__all__ = [
    "forward_kinematics", "hip_centers", "place_by_hip_center",
    "CANONICAL_TO_BLENDER_REST", "OPENCV_TO_BLENDER_CAMERA", "TRACE_TO_BLENDER", "ArmatureAnimation", "FrameError",
    "armature_animation", "blender_frame_rate", "canonical_to_blender_rest", "lens_mm_from_focal_px",
    "lens_mm_from_fov", "map_points", "pose_bone_quaternions", "result_camera_blender_matrices",
    "root_bone_location", "trace_to_blender_transform", "world_aligned_rotations",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "make_quaternions_continuous", "matrix_to_axis_angle",
    "matrix_to_quaternion", "quaternion_to_axis_angle", "quaternion_to_matrix",
    "DEFAULT_SKELETON_PATH", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "SkeletonError", "anthropometric_rest_joints",
    "bone_tails", "load_default_skeleton",
]
