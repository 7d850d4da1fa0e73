"""2D keypoints and boxes per track and frame, in source-video pixels.

The joints of a posed body in the camera frame are projected through the lens the run used
(`core.camera.project_to_source_pixels`): the official `pj2d_org` convention (pixel coordinates of
the upright source frame, origin at its top-left corner, principal point at the centre of the
padded square). Two documented differences from the official numbers: the official projection
uses a fixed focal length of 548 px on the 512 input (f_n = 2.1406) while its depth comes from
f_n = 1/tan(25 deg) = 2.1445, and it adds 1e-4 to the depth; we project with the one lens that also
gave the 3D positions, so keypoints and 3D joints agree (the official points sit up to 0.2 % closer
to the image centre). The joints are the 24 SMPL joints (official: 44; the first 24 are the same).

Without an SMPL model the joints come from the default skeleton (`trace_format/default_skeleton.json`,
the one the Blender importer uses then) posed by forward kinematics and placed by the hip centre.
numpy only.
"""
from __future__ import annotations

import numpy as np

from .camera import Lens, project_to_source_pixels
from trace_format.fk import forward_kinematics, place_by_hip_center

__all__ = ["KEYPOINTS_FROM_SMPL", "KEYPOINTS_FROM_DEFAULT_SKELETON", "skeleton_joints_cam", "project_keypoints",
           "boxes_from_keypoints"]

KEYPOINTS_FROM_SMPL = "smpl_model"                     # the run's SMPL joints (joints_cam)
KEYPOINTS_FROM_DEFAULT_SKELETON = "default_skeleton"   # FK of the default skeleton
_MIN_DEPTH_M = 1e-3


def skeleton_joints_cam(poses: np.ndarray, hip_center_cam: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Camera-frame joints [T,24,3] of `rest_joints` [24,3] posed by `poses` [T,24,3], hips at `hip_center_cam`."""
    _, joints = forward_kinematics(rest_joints, poses)
    return place_by_hip_center(joints, hip_center_cam)


def project_keypoints(joints_cam: np.ndarray, lens: Lens) -> np.ndarray:
    """Camera-frame joints [T,J,3] -> keypoints [T,J,2] float32 (x, y) in source pixels.

    Points at or behind the camera (depth < 1 mm) become NaN rather than wrapping around.
    """
    joints_cam = np.asarray(joints_cam, np.float64)
    pixels = project_to_source_pixels(joints_cam, lens)
    pixels[joints_cam[..., 2] < _MIN_DEPTH_M] = np.nan
    return pixels.astype(np.float32)


def boxes_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints [T,J,2] -> tight boxes [T,4] float32 (x_min, y_min, x_max, y_max) over the finite points.

    The official evaluation (`pj2ds_to_bbox`) enlarges this box about its centre by 1.1 (width) and
    1.18 (height) and writes (left, top, width, height).
    """
    keypoints = np.asarray(keypoints, np.float64)
    finite = np.isfinite(keypoints).all(axis=2, keepdims=True)                 # [T,J,1]
    low = np.where(finite, keypoints, np.inf).min(axis=1, initial=np.inf)     # [T,2]
    high = np.where(finite, keypoints, -np.inf).max(axis=1, initial=-np.inf)
    boxes = np.concatenate([low, high], axis=1)
    boxes[~finite.any(axis=(1, 2))] = np.nan                                   # no visible joint
    return boxes.astype(np.float32)
