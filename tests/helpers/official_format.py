"""Files in the official trace2 result layout, for tests of `trace_format.trace2`.

The official `save_results` calls `np.savez(path, outputs=<dict of numpy arrays>, imgpaths=<list>)`:
`outputs` becomes a 0-d object array (a pickled dict), `imgpaths` a unicode array. Rows are tracked
person-frames; `reorganize_idx` is the 0-based frame index, `track_ids` the tracker id.

`make_official_outputs` builds such rows from the synthetic SMPL model with the official body
conventions (bodies root-aligned on a point rigidly attached to the pelvis, like the official
midpoint of joints 35/36, then moved by cam_trans / world_trans), together with the values the
reader should recover.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from trace_format.atomic import atomic_open

from .synthetic_smpl import reference_lbs, reference_rodrigues

# Where the official alignment point sits relative to the SMPL hip centre in the rest pose
# (metres, canonical frame): the 44-joint hips are a little lower and further back.
ALIGNMENT_OFFSET_REST = np.array([0.0, -0.035, -0.012])


def write_official_result(path: str | os.PathLike, outputs: dict[str, Any], imgpaths: list[str]) -> Path:
    """np.savez(outputs=dict, imgpaths=list) exactly as the official code calls it; returns the path."""
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, outputs=outputs, imgpaths=imgpaths)
    return path


def _alignment_points(model: Any, poses: np.ndarray, betas: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """[N,3] posed position of a point fixed to the pelvis: hip centre at rest + ALIGNMENT_OFFSET_REST."""
    rest_joints, _ = reference_lbs(model, np.zeros_like(poses), betas)
    rest_point = 0.5 * (rest_joints[:, 1] + rest_joints[:, 2]) + ALIGNMENT_OFFSET_REST  # [N,3]
    root_rotation = reference_rodrigues(poses[:, 0])  # [N,3,3]
    return joints[:, 0] + np.einsum("nij,nj->ni", root_rotation, rest_point - rest_joints[:, 0])


def make_official_outputs(model: Any, seed: int = 0) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    """Official-style rows for two tracks on 12 frames -> (outputs, imgpaths, expected).

    Track 2: frames 0..9. Track 5: frames 3..11 except 7, plus a second, less confident row at
    frame 4 (a duplicate the reader must drop). Rows are shuffled. `expected[track_id]` holds the
    frames and the float64 values the reader should produce (joints/hip centres in both frames).
    """
    rng = np.random.default_rng(seed)
    layout = {2: list(range(0, 10)), 5: [3, 4, 5, 6, 8, 9, 10, 11]}
    track_ids = np.array([tid for tid, frames in layout.items() for _ in frames] + [5], dtype=np.int64)
    frames = np.array([f for frames in layout.values() for f in frames] + [4], dtype=np.int64)
    rows = track_ids.size
    poses = rng.normal(scale=0.3, size=(rows, 24, 3))
    poses[:, 0] = rng.normal(scale=1.0, size=(rows, 3))
    poses[:, 22:] = 0.0  # the official decoder leaves the hand joints at zero
    betas = rng.normal(scale=0.8, size=(rows, 10))
    world_rots = rng.normal(scale=1.0, size=(rows, 3))
    cam_trans = np.column_stack([rng.uniform(-1, 1, rows), rng.uniform(-0.5, 0.5, rows), rng.uniform(3, 8, rows)])
    world_trans = cam_trans + rng.normal(scale=0.5, size=(rows, 3))
    confidence = rng.uniform(0.3, 0.95, rows)
    confidence[-1] = confidence[np.flatnonzero((track_ids == 5) & (frames == 4))[0]] - 0.1  # the duplicate

    joints_cam_model, _ = reference_lbs(model, poses, betas)
    world_poses = poses.copy()
    world_poses[:, 0] = world_rots
    joints_world_model, _ = reference_lbs(model, world_poses, betas)
    align_cam = _alignment_points(model, poses, betas, joints_cam_model)
    align_world = _alignment_points(model, world_poses, betas, joints_world_model)
    j3d = np.concatenate([joints_cam_model - align_cam[:, None], rng.normal(size=(rows, 20, 3))], axis=1)

    order = rng.permutation(rows)
    f32 = np.float32
    outputs = {
        "reorganize_idx": frames[order],
        "j3d": j3d[order].astype(f32),
        "world_cams": rng.normal(size=(rows, 3)).astype(f32)[order],
        "world_trans": world_trans[order].astype(f32),
        "world_global_rots": world_rots[order].astype(f32),
        "pj2d_org": rng.uniform(0, 320, size=(rows, 44, 2)).astype(f32)[order],
        "pj2d": rng.uniform(-1, 1, size=(rows, 44, 2)).astype(f32)[order],
        "cam_trans": cam_trans[order].astype(f32),
        "pj2d_org_h36m17": rng.uniform(0, 320, size=(rows, 17, 2)).astype(f32)[order],
        "joints_h36m17": rng.normal(size=(rows, 17, 3)).astype(f32)[order],
        "center_confs": confidence[order, None].astype(f32),
        "track_ids": track_ids[order],
        "smpl_thetas": poses.reshape(rows, 72)[order].astype(f32),
        "smpl_betas": betas[order].astype(f32),
    }
    imgpaths = [f"/videos/clip_frames/{index:06d}.jpg" for index in range(12)]

    # What the reader must recover, per track (float32 inputs -> compare with ~1e-5 tolerances).
    keep = np.ones(rows, dtype=bool)
    keep[-1] = False  # the less confident duplicate
    joints_cam = joints_cam_model - align_cam[:, None] + cam_trans[:, None]
    joints_world = joints_world_model - align_world[:, None] + world_trans[:, None]
    expected: dict[str, Any] = {}
    for tid in layout:
        rows_of_track = np.flatnonzero((track_ids == tid) & keep)
        rows_of_track = rows_of_track[np.argsort(frames[rows_of_track])]
        expected[tid] = {
            "frames": frames[rows_of_track],
            "poses": poses[rows_of_track],
            "betas": betas[rows_of_track],
            "global_orient_world": world_rots[rows_of_track],
            "confidence": confidence[rows_of_track],
            "joints_cam": joints_cam[rows_of_track],
            "joints_world": joints_world[rows_of_track],
            "hip_center_cam": 0.5 * (joints_cam[rows_of_track, 1] + joints_cam[rows_of_track, 2]),
            "hip_center_world": 0.5 * (joints_world[rows_of_track, 1] + joints_world[rows_of_track, 2]),
            "cam_trans": cam_trans[rows_of_track],
            "world_trans": world_trans[rows_of_track],
        }
    return outputs, imgpaths, expected
