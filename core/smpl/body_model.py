"""SMPL body model in torch, built on `smplx.lbs`: joints and vertices for batches of poses.

Uses smplx's linear blend skinning functions directly (not `smplx.SMPL`), so any vertex count works
(the synthetic test model has a few hundred vertices) and nothing depends on smplx's extra
vertex-joint selector. Long sequences are processed in chunks to bound memory.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues, lbs

from trace_format.smpl_file import NUM_SMPL_BETAS, NUM_SMPL_JOINTS, SmplModelData

__all__ = ["BodyModel", "place_at_hip_center", "hips_minus_anchor", "LEFT_HIP", "RIGHT_HIP"]

LEFT_HIP, RIGHT_HIP = 1, 2  # SMPL joints whose midpoint is the body's placement point
# Skinning builds a [chunk, V, 16] transform tensor: keep it near 2**25 elements (128 MB in float32).
_SKINNING_CHUNK_ELEMENTS = 1 << 25
_JOINTS_CHUNK_FRAMES = 8192

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


class BodyModel(torch.nn.Module):
    """Posed SMPL joints/vertices in the model frame (canonical SMPL axes, no translation).

    The root joint stays where the shaped rest skeleton puts it (as in smplx with transl=0); use
    `place_at_hip_center` to put bodies where a result file says they are.
    """

    def __init__(self, model_data: SmplModelData, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype

        def buffer(array: np.ndarray, buffer_dtype: torch.dtype = dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=buffer_dtype, device=device)

        self.register_buffer("v_template", buffer(model_data.v_template))  # [V,3]
        self.register_buffer("shapedirs", buffer(model_data.shapedirs[:, :, :NUM_SMPL_BETAS]))  # [V,3,10]
        self.register_buffer("posedirs", buffer(model_data.posedirs))  # [207,V*3]
        self.register_buffer("j_regressor", buffer(model_data.j_regressor))  # [24,V]
        self.register_buffer("lbs_weights", buffer(model_data.weights))  # [V,24]
        self.register_buffer("parents", buffer(model_data.parents, torch.long))  # [24]
        self.register_buffer("faces", buffer(model_data.faces, torch.long))  # [F,3]
        # Joints depend on the shape only through J_regressor @ (v_template + shapedirs·betas), which
        # is linear: precomputed in float64 so joints-only queries skip the per-vertex work.
        j_template = model_data.j_regressor @ model_data.v_template  # [24,3]
        j_shapedirs = np.einsum("jv,vkb->jkb", model_data.j_regressor,
                                model_data.shapedirs[:, :, :NUM_SMPL_BETAS])  # [24,3,10]
        self.register_buffer("j_template", buffer(j_template))
        self.register_buffer("j_shapedirs", buffer(j_shapedirs))

    @property
    def device(self) -> torch.device:
        return self.v_template.device

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def _as_inputs(self, poses: torch.Tensor | np.ndarray,
                   betas: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        poses = torch.as_tensor(poses, dtype=self.dtype, device=self.device)
        betas = torch.as_tensor(betas, dtype=self.dtype, device=self.device)
        if poses.ndim == 2 and poses.shape[1] == NUM_SMPL_JOINTS * 3:
            poses = poses.reshape(-1, NUM_SMPL_JOINTS, 3)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_SMPL_JOINTS, 3):
            raise ValueError(f"poses must be [N,24,3] axis-angle (or [N,72]), got {tuple(poses.shape)}")
        count = poses.shape[0]
        if betas.ndim == 1:
            betas = betas[None]
        if betas.ndim != 2 or betas.shape[1] != NUM_SMPL_BETAS or betas.shape[0] not in (1, count):
            raise ValueError(f"betas must be [N,10] or [10] for N={count} poses, got {tuple(betas.shape)}")
        return poses, betas.expand(count, -1)

    def forward(self, poses: torch.Tensor | np.ndarray, betas: torch.Tensor | np.ndarray,
                with_vertices: bool = True, chunk_size: int | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """poses[N,24,3] axis-angle (joint 0 = global orientation), betas[N,10] or [10]
        -> (joints[N,24,3], vertices[N,V,3] or None) in the model frame.

        `with_vertices=False` skips skinning (joints only, much cheaper for long sequences).
        `chunk_size` frames are processed at a time (default: sized to ~128 MB of temporaries).
        """
        poses, betas = self._as_inputs(poses, betas)
        count = poses.shape[0]
        if chunk_size is None:
            chunk_size = (max(1, _SKINNING_CHUNK_ELEMENTS // (self.num_vertices * 16)) if with_vertices
                          else _JOINTS_CHUNK_FRAMES)
        joints = poses.new_empty((count, NUM_SMPL_JOINTS, 3))
        vertices = poses.new_empty((count, self.num_vertices, 3)) if with_vertices else None
        for start in range(0, count, chunk_size):
            stop = min(count, start + chunk_size)
            if with_vertices:
                chunk_vertices, chunk_joints = lbs(
                    betas[start:stop], poses[start:stop].reshape(stop - start, -1), self.v_template,
                    self.shapedirs, self.posedirs, self.j_regressor, self.parents, self.lbs_weights,
                    pose2rot=True)
                vertices[start:stop] = chunk_vertices
            else:
                chunk_joints = self._posed_joints(poses[start:stop], betas[start:stop])
            joints[start:stop] = chunk_joints
        return joints, vertices

    def _posed_joints(self, poses: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """Forward kinematics only: same joints as `lbs` without touching the vertices."""
        rest_joints = self.j_template + torch.einsum("bl,jkl->bjk", betas, self.j_shapedirs)  # [n,24,3]
        rotations = batch_rodrigues(poses.reshape(-1, 3)).reshape(poses.shape[0], NUM_SMPL_JOINTS, 3, 3)
        posed, _ = batch_rigid_transform(rotations, rest_joints, self.parents, dtype=self.dtype)
        return posed

    def joints(self, poses: torch.Tensor | np.ndarray, betas: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Joints only: poses[N,24,3], betas[N,10] or [10] -> [N,24,3] in the model frame."""
        return self.forward(poses, betas, with_vertices=False)[0]

    def regressed_points(self, poses: torch.Tensor | np.ndarray, betas: torch.Tensor | np.ndarray,
                         indices: np.ndarray, weights: np.ndarray) -> torch.Tensor:
        """sum_i weights[i] * posed_vertex[indices[i]] -> [N,3] in the model frame (like `forward`'s vertices).

        Skins only the vertices the regressor uses (shape and pose blend shapes, then the joint
        transforms), so a placement point costs a few dozen vertices per frame, not the whole mesh.
        """
        poses, betas = self._as_inputs(poses, betas)
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.device)
        weight = torch.as_tensor(np.asarray(weights), dtype=self.dtype, device=self.device)       # [S]
        count = poses.shape[0]
        v_shaped = self.v_template[index] + torch.einsum("bl,skl->bsk", betas, self.shapedirs[index])  # [n,S,3]
        rotations = batch_rodrigues(poses.reshape(-1, 3)).reshape(count, NUM_SMPL_JOINTS, 3, 3)
        identity = torch.eye(3, dtype=self.dtype, device=self.device)
        pose_feature = (rotations[:, 1:] - identity).reshape(count, -1)                          # [n,207]
        posedirs = self.posedirs.reshape(self.posedirs.shape[0], -1, 3)[:, index]                # [207,S,3]
        v_posed = v_shaped + torch.einsum("bp,psk->bsk", pose_feature, posedirs)
        rest_joints = self.rest_joints(betas)                                                    # [n,24,3]
        _, transforms = batch_rigid_transform(rotations, rest_joints, self.parents, dtype=self.dtype)  # [n,24,4,4]
        per_vertex = torch.einsum("sj,bjxy->bsxy", self.lbs_weights[index], transforms)          # [n,S,4,4]
        posed = torch.einsum("bsxy,bsy->bsx", per_vertex[..., :3, :3], v_posed) + per_vertex[..., :3, 3]
        return torch.einsum("s,bsk->bk", weight, posed)

    def rest_joints(self, betas: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Unposed joints of body shapes: betas[N,10] or [10] -> [N,24,3]."""
        betas = torch.as_tensor(betas, dtype=self.dtype, device=self.device)
        betas = betas[None] if betas.ndim == 1 else betas
        return self.j_template + torch.einsum("bl,jkl->bjk", betas, self.j_shapedirs)


def hips_minus_anchor(joints: ArrayOrTensor, anchor: ArrayOrTensor) -> ArrayOrTensor:
    """[N,3] offset from a placement point (e.g. the official joints 35/36 midpoint) to the SMPL hip centre.

    joints [N,24,3] and anchor [N,3] of the same posed bodies. Adding it to the network's translation
    gives the hip centre of a body placed the official way.
    """
    return 0.5 * (joints[:, LEFT_HIP] + joints[:, RIGHT_HIP]) - anchor


def place_at_hip_center(joints: ArrayOrTensor, vertices: ArrayOrTensor | None,
                        hip_center: ArrayOrTensor) -> tuple[ArrayOrTensor, ArrayOrTensor | None]:
    """Translate bodies so that the midpoint of joints 1 and 2 (the hips) lands on `hip_center`.

    joints[N,24,3], vertices[N,V,3] or None, hip_center[N,3] (same frame as the bodies, e.g. the
    camera frame when the poses hold the camera-frame orientation) -> translated copies.
    Works on numpy arrays and torch tensors alike.
    """
    offset = hip_center - 0.5 * (joints[:, LEFT_HIP] + joints[:, RIGHT_HIP])  # [N,3]
    placed_joints = joints + offset[:, None, :]
    placed_vertices = None if vertices is None else vertices + offset[:, None, :]
    return placed_joints, placed_vertices
