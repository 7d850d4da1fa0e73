"""Rig math shared by the pipeline and the Blender extension: rotations, SMPL skeleton, FK, frames.

numpy only and relative imports only: the extension zip vendors this package without torch.
"""
from .fk import forward_kinematics, hip_centers, place_by_hip_center
from .frames import (CANONICAL_TO_BLENDER_REST, TRACE_TO_BLENDER, ArmatureAnimation, FrameError,
                     armature_animation, blender_frame_rate, canonical_to_blender_rest, map_points,
                     pose_bone_quaternions, root_bone_location, trace_to_blender_transform,
                     world_aligned_rotations)
from .rotations import (axis_angle_to_matrix, axis_angle_to_quaternion, make_quaternions_continuous,
                        matrix_to_axis_angle, matrix_to_quaternion, quaternion_to_axis_angle,
                        quaternion_to_matrix)
from .skeleton import (DEFAULT_SKELETON_PATH, SMPL_JOINT_NAMES, SMPL_PARENTS, SkeletonError,
                       anthropometric_rest_joints, bone_tails, load_default_skeleton)

__all__ = [
    "forward_kinematics", "hip_centers", "place_by_hip_center",
    "CANONICAL_TO_BLENDER_REST", "TRACE_TO_BLENDER", "ArmatureAnimation", "FrameError", "armature_animation",
    "blender_frame_rate", "canonical_to_blender_rest", "map_points", "pose_bone_quaternions",
    "root_bone_location", "trace_to_blender_transform", "world_aligned_rotations",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "make_quaternions_continuous", "matrix_to_axis_angle",
    "matrix_to_quaternion", "quaternion_to_axis_angle", "quaternion_to_matrix",
    "DEFAULT_SKELETON_PATH", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "SkeletonError", "anthropometric_rest_joints",
    "bone_tails", "load_default_skeleton",
]
