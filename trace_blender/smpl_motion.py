"""SMPL parameters of a person's motion: `.smpl` files (the smplcodec format of Meshcapade's tools)
and AMASS-style `.npz` (numpy only, no bpy).

Both hold, per frame, the 24 SMPL joint rotations (axis-angle; joint 0 = the body's orientation in
the world) and a translation, plus the body shape, in Blender's world: +Z up, metres. SMPL poses
rotate about the rest pelvis J0, so `trans = pelvis_world - J0` puts the model's pelvis where the
scene shows it. J0 is the imported rest skeleton's pelvis: exact for imports with the SMPL model
file (the rest skeleton is J(betas)), approximate for the built-in skeleton.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trace_format import atomic
from trace_format.rotations import matrix_to_axis_angle
from trace_format.skeleton import SMPL_PARENTS

from .export_rig import PersonMotion

SMPL_CODEC_VERSION = 2     # smplcodec's major version of the file layout
SMPL_VERSION_SMPL = 0      # smplcodec SMPLVersion.SMPL: body pose [T, 24, 3]
GENDER_NEUTRAL = 0         # smplcodec SMPLGender.NEUTRAL (TRACE uses the neutral model)


@dataclass
class SmplParameters:
    """poses [T, 24, 3] axis-angle, trans [T, 3] metres, betas [B], fps."""

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    fps: float


def smpl_parameters(motion: PersonMotion, rest_canonical: np.ndarray, canonical_to_world_rest: np.ndarray,
                    betas: np.ndarray, fps: float) -> SmplParameters:
    """SMPL parameters that reproduce `motion` in its world.

    rest_canonical [24, 3]: the rest skeleton in SMPL's canonical frame; canonical_to_world_rest
    [3, 3]: C, canonical vectors -> the world-aligned rest armature (so a joint's canonical-frame
    rotation is W_i C and its local one G_parent^T G_i).
    """
    canonical = np.asarray(canonical_to_world_rest, np.float64)
    world = np.asarray(motion.world_rotations, np.float64) @ canonical      # [T, J, 3, 3] G_i
    parents = np.array([max(p, 0) for p in SMPL_PARENTS])
    local = np.swapaxes(world[:, parents], -1, -2) @ world
    local[:, 0] = world[:, 0]
    poses = matrix_to_axis_angle(local)
    trans = np.asarray(motion.heads, np.float64)[:, 0] - np.asarray(rest_canonical, np.float64)[0]
    return SmplParameters(poses, trans, np.asarray(betas, np.float64).reshape(-1), float(fps))


def write_smpl_file(path: str | os.PathLike, parameters: SmplParameters) -> Path:
    """A `.smpl` file (smplcodec layout: compressed npz, camelCase keys, float32 data), atomically."""
    count = parameters.poses.shape[0]
    fields = {
        "codecVersion": np.array(SMPL_CODEC_VERSION, np.int32),
        "smplVersion": np.array(SMPL_VERSION_SMPL, np.int32),
        "gender": np.array(GENDER_NEUTRAL, np.int32),
        "shapeParameters": parameters.betas.astype(np.float32),
        "frameCount": np.array(count, np.int32),
        "frameRate": np.array(parameters.fps, np.float32),
        "bodyTranslation": parameters.trans.astype(np.float32),
        "bodyPose": parameters.poses.astype(np.float32),
    }
    return _write_npz(path, fields)


def write_amass_npz(path: str | os.PathLike, parameters: SmplParameters) -> Path:
    """An AMASS-style `.npz`: poses [T, 72], trans [T, 3], betas, mocap_framerate, gender, plus
    surface_model_type "smpl" (readers such as smplcodec take the pose layout from it)."""
    fields = {
        "poses": parameters.poses.reshape(parameters.poses.shape[0], -1),
        "trans": parameters.trans,
        "betas": parameters.betas,
        "mocap_framerate": np.array(parameters.fps),
        "gender": np.array("neutral"),
        "surface_model_type": np.array("smpl"),
    }
    return _write_npz(path, fields)


def _write_npz(path: str | os.PathLike, fields: dict[str, np.ndarray]) -> Path:
    target = Path(path)
    with atomic.atomic_open(target, "wb") as stream:
        np.savez_compressed(stream, **fields)
    return target
