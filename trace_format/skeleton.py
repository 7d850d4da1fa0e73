"""The SMPL 24-joint hierarchy and this project's own default rest skeleton.

numpy + standard library only. The default skeleton is NOT taken from any SMPL file: it is built
from simple anthropometric ratios of body height (segment lengths as fractions of stature, after the
Drillis & Contini tables popularised by D. A. Winter, "Biomechanics and Motor Control of Human
Movement") for a 1.75 m adult, in the canonical SMPL frame (y up, body facing +z, the body's left
on +x, soles on y = 0). `trace_format/default_skeleton.json` is the output of
`python -c "from trace_format.skeleton import write_default_skeleton; write_default_skeleton()"`
and a test checks that the file still matches.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_open

# Joint order and names exactly as smplx lists them (smplx.joint_names.JOINT_NAMES[:24]).
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
NUM_JOINTS = 24
# Parent of each joint (-1 for the root), the SMPL kinematic tree.
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
LEFT_HIP, RIGHT_HIP = 1, 2

# Package data next to this module (pyproject package-data; inside the wheel the extension bundles).
DEFAULT_SKELETON_PATH = Path(__file__).resolve().parent / "default_skeleton.json"
DEFAULT_HEIGHT_M = 1.75

# Joint positions as fractions of stature H: (x = lateral, y = height above the soles, z = forward).
# Heights: hip joint ~ greater trochanter 0.530 H, knee 0.285 H, ankle 0.039 H, shoulder 0.818 H,
# chin 0.870 H (head joint just above it); the spine joints split pelvis-to-neck in even steps.
# Widths: hip joint centres +-0.048 H, shoulder joint centres +-0.100 H (inside the biacromial
# breadth 0.259 H). T-pose arm: upper arm 0.186 H, forearm 0.146 H, wrist to knuckles 0.054 H
# (half the hand length 0.108 H). Foot: the toe joint sits 0.076 H in front of the ankle (half the
# foot length 0.152 H).
_RIGHT_LEFT_SYMMETRIC = {
    # name (left side; the right side mirrors x): (x, y, z) in units of H
    "hip": (0.048, 0.530, 0.000),
    "knee": (0.052, 0.285, 0.006),
    "ankle": (0.054, 0.039, -0.012),
    "foot": (0.060, 0.012, 0.064),
    "collar": (0.040, 0.800, -0.008),
    "shoulder": (0.100, 0.818, -0.012),
    "elbow": (0.100 + 0.186, 0.818, -0.016),
    "wrist": (0.100 + 0.186 + 0.146, 0.818, -0.012),
    "hand": (0.100 + 0.186 + 0.146 + 0.054, 0.818, -0.012),
}
_MIDLINE = {
    "pelvis": (0.0, 0.575, -0.004),
    "spine1": (0.0, 0.633, -0.012),
    "spine2": (0.0, 0.697, -0.008),
    "spine3": (0.0, 0.733, -0.004),
    "neck": (0.0, 0.845, -0.014),
    "head": (0.0, 0.890, 0.004),
}


class SkeletonError(Exception):
    """The default skeleton file is missing or malformed (reinstall the add-on or re-run the writer)."""


def anthropometric_rest_joints(height_m: float = DEFAULT_HEIGHT_M) -> np.ndarray:
    """Canonical T-pose rest joints [24, 3] (metres) of an adult of the given stature."""
    if not (0.3 <= height_m <= 3.0):
        raise ValueError(f"height_m={height_m} is not a human stature in metres (0.3 .. 3.0)")
    joints = np.zeros((NUM_JOINTS, 3), np.float64)
    for index, name in enumerate(SMPL_JOINT_NAMES):
        if name in _MIDLINE:
            joints[index] = _MIDLINE[name]
            continue
        side, _, part = name.partition("_")
        x, y, z = _RIGHT_LEFT_SYMMETRIC[part]
        joints[index] = (x if side == "left" else -x, y, z)
    return joints * height_m


def load_default_skeleton(path: str | os.PathLike | None = None) -> np.ndarray:
    """Rest joints [24, 3] of the default skeleton (canonical SMPL frame, metres) from its JSON file."""
    file_path = Path(path) if path is not None else DEFAULT_SKELETON_PATH
    try:
        payload = json.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SkeletonError(
            f"default skeleton file not found: {file_path}. It ships with the repository and the add-on "
            "(trace_format/default_skeleton.json); regenerate it with `python -c \"from trace_format.skeleton import write_default_skeleton; write_default_skeleton()\"`."
        ) from exc
    except (OSError, ValueError) as exc:
        raise SkeletonError(f"cannot read the default skeleton {file_path}: {exc}") from exc
    try:
        names = [str(n) for n in payload["joint_names"]]
        joints = np.asarray(payload["rest_joints"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise SkeletonError(f"{file_path} lacks 'joint_names' / 'rest_joints': {exc}") from exc
    if tuple(names) != SMPL_JOINT_NAMES or joints.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(joints)):
        raise SkeletonError(f"{file_path} does not describe the 24 SMPL joints in smplx order with finite positions")
    return joints


def write_default_skeleton(path: str | os.PathLike = DEFAULT_SKELETON_PATH,
                           height_m: float = DEFAULT_HEIGHT_M) -> Path:
    """Write the anthropometric skeleton as JSON atomically (temp file + os.replace)."""
    target = Path(path)
    joints = anthropometric_rest_joints(height_m)
    payload = {
        "description": ("Default rest skeleton of TRACE for Blender: SMPL joint hierarchy with joint positions "
                        "from anthropometric ratios of stature (no SMPL model data). Canonical frame: y up, "
                        "facing +z, body's left on +x, soles at y=0, metres, T-pose."),
        "generator": "write_default_skeleton() in trace_format/skeleton.py",
        "height_m": height_m,
        "joint_names": list(SMPL_JOINT_NAMES),
        "parents": list(SMPL_PARENTS),
        "rest_joints": [[round(float(v), 6) for v in row] for row in joints],
    }
    with atomic_open(target, "w") as stream:
        json.dump(payload, stream, indent=1)
        stream.write("\n")
    return target


def children_of(parents: tuple[int, ...] | list[int] = SMPL_PARENTS) -> list[list[int]]:
    """Child joint indices of every joint."""
    children: list[list[int]] = [[] for _ in parents]
    for index, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(index)
    return children


# Which child a joint's bone points at when it has several (pelvis -> spine1, spine3 -> neck).
_PREFERRED_CHILD = {0: 3, 9: 12}


def bone_tails(rest_joints: np.ndarray, parents: tuple[int, ...] | list[int] = SMPL_PARENTS,
               min_length: float = 0.02) -> np.ndarray:
    """Tail position [24, 3] of each joint's bone, for drawing and engine export.

    A bone points from its joint to its (preferred) child; leaf bones (head, hands, feet) continue
    the parent bone's direction at half its length. Bones are at least `min_length` long because
    Blender deletes zero-length bones. The tails do not change the animation: pose rotations are
    converted with each bone's actual rest matrix.
    """
    joints = np.asarray(rest_joints, np.float64)
    children = children_of(parents)
    tails = np.zeros_like(joints)
    directions = np.zeros_like(joints)
    lengths = np.zeros(len(joints))
    order = sorted(range(len(joints)), key=lambda j: _depth(j, parents))
    for joint in order:
        kids = children[joint]
        if kids:
            child = _PREFERRED_CHILD.get(joint, kids[0]) if len(kids) > 1 else kids[0]
            offset = joints[child] - joints[joint]
            length = float(np.linalg.norm(offset))
            direction = offset / length if length > 1e-9 else _fallback_direction(joint, parents, directions)
        else:
            direction = _fallback_direction(joint, parents, directions)
            length = 0.5 * lengths[parents[joint]] if parents[joint] >= 0 else min_length
        length = max(length, min_length)
        directions[joint] = direction
        lengths[joint] = length
        tails[joint] = joints[joint] + direction * length
    return tails


def _depth(joint: int, parents) -> int:
    depth = 0
    while parents[joint] >= 0:
        joint = parents[joint]
        depth += 1
    return depth


def _fallback_direction(joint: int, parents, directions: np.ndarray) -> np.ndarray:
    parent = parents[joint]
    if parent >= 0 and np.linalg.norm(directions[parent]) > 0:
        return directions[parent]
    return np.array([0.0, 1.0, 0.0])  # canonical up

