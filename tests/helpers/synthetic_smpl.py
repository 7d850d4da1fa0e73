"""A small made-up SMPL model file in the official pickle layout, for tests.

The real SMPL_NEUTRAL.pkl is licensed and cannot live in the repository or CI, so tests use a
synthetic model with the same keys, types and conventions: a Python-2-style pickle (latin-1
compatible, protocol 2 by default) whose `v_template`, `shapedirs` and `posedirs` are
`chumpy.ch.Ch` objects and whose `J_regressor` is a `scipy.sparse.csc.csc_matrix`, referenced by
module and class name only, so neither chumpy nor scipy is needed to write (or, with
`trace_format.safe_pickle`, to read) the file.

The body is a made-up, human-like mesh: for each of the 24 joints of the real SMPL kinematic tree,
a tube of vertex rings runs from the joint towards its children. The first ring of each tube is
centred on the joint, so the joint regressor (the mean of that ring) lands on the skeleton.
Skinning weights fall off with the distance to each joint's tube axis. Shape and pose blend shapes
are small but non-zero.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from trace_format.atomic import atomic_open

# The SMPL kinematic tree (parent of each joint, root -1) and the root marker the files use.
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
                        dtype=np.int64)
FILE_ROOT_MARKER = 4294967295  # kintree_table[0, 0] in the official pickles (uint32 -1)
NUM_JOINTS = 24
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)  # 207

# Made-up rest joints (metres; canonical SMPL frame: y up, facing +z, the body's left on +x).
SYNTHETIC_REST_JOINTS = np.array([
    [0.000, -0.220, 0.020],   # 0 pelvis
    [0.070, -0.310, 0.015],   # 1 left_hip
    [-0.070, -0.310, 0.015],  # 2 right_hip
    [0.000, -0.110, -0.010],  # 3 spine1
    [0.100, -0.700, 0.010],   # 4 left_knee
    [-0.100, -0.700, 0.010],  # 5 right_knee
    [0.000, 0.020, 0.000],    # 6 spine2
    [0.090, -1.100, -0.030],  # 7 left_ankle
    [-0.090, -1.100, -0.030],  # 8 right_ankle
    [0.000, 0.075, 0.020],    # 9 spine3
    [0.115, -1.160, 0.090],   # 10 left_foot
    [-0.115, -1.160, 0.090],  # 11 right_foot
    [0.000, 0.290, -0.010],   # 12 neck
    [0.080, 0.200, -0.005],   # 13 left_collar
    [-0.080, 0.200, -0.005],  # 14 right_collar
    [0.000, 0.360, 0.040],    # 15 head
    [0.180, 0.230, -0.010],   # 16 left_shoulder
    [-0.180, 0.230, -0.010],  # 17 right_shoulder
    [0.430, 0.210, -0.030],   # 18 left_elbow
    [-0.430, 0.210, -0.030],  # 19 right_elbow
    [0.680, 0.220, -0.030],   # 20 left_wrist
    [-0.680, 0.220, -0.030],  # 21 right_wrist
    [0.760, 0.210, -0.040],   # 22 left_hand
    [-0.760, 0.210, -0.040],  # 23 right_hand
], dtype=np.float64)

# Tube radius around each joint's segment (metres).
_TUBE_RADIUS = np.array([0.11, 0.08, 0.08, 0.11, 0.055, 0.055, 0.12, 0.045, 0.045, 0.12, 0.035, 0.035,
                         0.05, 0.05, 0.05, 0.09, 0.045, 0.045, 0.04, 0.04, 0.035, 0.035, 0.03, 0.03])
# Where a leaf joint's tube ends, relative to the joint (head up, toes forward, hands outward).
_LEAF_EXTENSION = {10: (0.0, 0.0, 0.07), 11: (0.0, 0.0, 0.07), 15: (0.0, 0.16, 0.0),
                   22: (0.09, 0.0, 0.0), 23: (-0.09, 0.0, 0.0)}
_RING_SIZE = 6
_MIRROR_JOINT = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22])


def _segment_ends(joints: np.ndarray) -> np.ndarray:
    """[24,3] end point of each joint's tube: the mean of its children, or a fixed leaf extension."""
    ends = np.empty_like(joints)
    for joint in range(NUM_JOINTS):
        children = np.flatnonzero(SMPL_PARENTS == joint)
        if children.size:
            ends[joint] = joints[children].mean(axis=0)
        else:
            ends[joint] = joints[joint] + np.asarray(_LEAF_EXTENSION[joint])
    return ends


def _perpendicular_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    direction = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    first = np.cross(direction, helper)
    first /= np.linalg.norm(first)
    return first, np.cross(direction, first)


def _distance_to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """[V,J] distance of each point to each segment start->end."""
    axis = ends - starts  # [J,3]
    rel = points[:, None, :] - starts[None]  # [V,J,3]
    t = np.clip(np.einsum("vjk,jk->vj", rel, axis) / np.maximum(np.sum(axis * axis, axis=1), 1e-12), 0.0, 1.0)
    closest = starts[None] + t[..., None] * axis[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1)


def make_synthetic_smpl_arrays(seed: int = 0, n_vertices: int = 400, num_betas: int = 10) -> dict[str, Any]:
    """The content of a synthetic SMPL file as plain numpy arrays (keys as in the official pickle).

    The vertex count is `n_vertices` rounded to whole rings (24 joints x rings x 6 vertices, at
    least 2 rings per joint): 400 -> 432.
    """
    rng = np.random.default_rng(seed)
    rings = max(2, int(round(n_vertices / (NUM_JOINTS * _RING_SIZE))))
    joints = SYNTHETIC_REST_JOINTS + rng.normal(scale=0.003, size=SYNTHETIC_REST_JOINTS.shape)
    ends = _segment_ends(joints)

    vertices, faces, regressor_rows = [], [], []
    radius_scale = 1.0 + 0.1 * rng.uniform(-1.0, 1.0, size=NUM_JOINTS)
    for joint in range(NUM_JOINTS):
        first, second = _perpendicular_basis(ends[joint] - joints[joint])
        base = len(vertices)
        phase = rng.uniform(0.0, 2.0 * np.pi)
        for ring in range(rings):
            t = ring / (rings - 1)
            centre = (1.0 - t) * joints[joint] + t * ends[joint]
            radius = _TUBE_RADIUS[joint] * radius_scale[joint] * (1.0 - 0.25 * t)
            angles = phase + 2.0 * np.pi * np.arange(_RING_SIZE) / _RING_SIZE
            for angle in angles:
                vertices.append(centre + radius * (np.cos(angle) * first + np.sin(angle) * second))
        regressor_rows.append(np.arange(base, base + _RING_SIZE))  # first ring: centred on the joint
        for ring in range(rings - 1):
            for k in range(_RING_SIZE):
                a = base + ring * _RING_SIZE + k
                b = base + ring * _RING_SIZE + (k + 1) % _RING_SIZE
                c, d = a + _RING_SIZE, b + _RING_SIZE
                faces.extend([(a, b, d), (a, d, c)])
    v_template = np.asarray(vertices) + rng.normal(scale=0.001, size=(len(vertices), 3))  # [V,3]
    n_verts = v_template.shape[0]

    j_regressor = np.zeros((NUM_JOINTS, n_verts))  # [24,V]
    for joint, rows in enumerate(regressor_rows):
        j_regressor[joint, rows] = 1.0 / _RING_SIZE

    distance = _distance_to_segments(v_template, joints, ends)  # [V,24]
    weights = np.exp(-((distance / 0.04) ** 2))
    weights[weights < 1e-3 * weights.max(axis=1, keepdims=True)] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)  # [V,24]

    centre = v_template.mean(axis=0)
    shapedirs = np.zeros((n_verts, 3, num_betas))  # [V,3,B]
    shapedirs[:, 1, 0] = 0.04 * (v_template[:, 1] - centre[1])  # stature
    owner = np.repeat(np.arange(NUM_JOINTS), rings * _RING_SIZE)  # the tube each vertex belongs to
    segment = ends[owner] - joints[owner]  # [V,3]
    relative = v_template - joints[owner]
    along = np.sum(relative * segment, axis=1, keepdims=True) / np.sum(segment * segment, axis=1, keepdims=True)
    shapedirs[:, :, 1] = 0.3 * (relative - along * segment)  # girth: away from the tube axis
    for component in range(2, num_betas):
        linear = rng.normal(scale=0.004, size=(3, 3))
        shapedirs[:, :, component] = (v_template - centre) @ linear + rng.normal(scale=0.0005, size=(n_verts, 3))
    posedirs = rng.normal(scale=2e-3, size=(n_verts, 3, NUM_POSE_BASIS))  # [V,3,207]

    mirrored = v_template * np.array([-1.0, 1.0, 1.0])
    vert_sym_idxs = np.argmin(np.linalg.norm(v_template[None] - mirrored[:, None], axis=-1), axis=1)

    kintree_table = np.stack([SMPL_PARENTS, np.arange(NUM_JOINTS)]).astype(np.int64)  # [2,24]
    kintree_table[0, 0] = FILE_ROOT_MARKER
    return {
        "J_regressor_prior": j_regressor.copy(),
        "f": np.asarray(faces, dtype=np.uint32),  # [F,3]
        "J_regressor": j_regressor,
        "kintree_table": kintree_table,
        "J": j_regressor @ v_template,  # [24,3]
        "weights_prior": weights.copy(),
        "weights": weights,
        "vert_sym_idxs": vert_sym_idxs.astype(np.int64),
        "posedirs": posedirs,
        "pose_training_info": {"source": "synthetic test model", "seed": int(seed)},
        "bs_style": "lbs",
        "v_template": v_template,
        "shapedirs": shapedirs,
        "bs_type": "lrotmin",
    }


# ------------------------------------------------------------------------------------------
# Writing pickles that name chumpy / scipy classes without importing them
# ------------------------------------------------------------------------------------------


class ForeignObject:
    """An object that pickles as an instance of `module.name` with `__dict__` as its state."""

    pickle_module = ""
    pickle_name = ""

    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)


class FakeChumpyCh(ForeignObject):
    pickle_module, pickle_name = "chumpy.ch", "Ch"


class FakeChumpyReshape(ForeignObject):
    pickle_module, pickle_name = "chumpy.reordering", "Reshape"


class FakeChumpySelect(ForeignObject):
    pickle_module, pickle_name = "chumpy.reordering", "Select"


class FakeChumpyTranspose(ForeignObject):
    pickle_module, pickle_name = "chumpy.reordering", "transpose"


class FakeChumpyAdd(ForeignObject):
    pickle_module, pickle_name = "chumpy.ch_ops", "add"


class FakeChumpyMultiply(ForeignObject):
    pickle_module, pickle_name = "chumpy.ch_ops", "multiply"


class FakeChumpyUnknownOp(ForeignObject):
    pickle_module, pickle_name = "chumpy.linalg", "Inv"


class FakeScipyCsc(ForeignObject):
    pickle_module, pickle_name = "scipy.sparse.csc", "csc_matrix"


class FakeScipyCsr(ForeignObject):
    pickle_module, pickle_name = "scipy.sparse.csr", "csr_matrix"


def chumpy_ch(value: np.ndarray) -> FakeChumpyCh:
    """A `chumpy.ch.Ch` as chumpy pickles it: the array under 'x' plus chumpy's bookkeeping."""
    return FakeChumpyCh(x=np.asarray(value, dtype=np.float64), _dirty_vars=set(), _itr=None,
                        _depends_on_deps={}, _make_dense=False, _make_sparse=False)


def scipy_csc(dense: np.ndarray) -> FakeScipyCsc:
    """A `scipy.sparse.csc.csc_matrix` state built from a dense matrix (old-scipy attribute names)."""
    dense = np.asarray(dense, dtype=np.float64)
    mask_t = dense.T != 0  # column-major walk
    col_counts = mask_t.sum(axis=1)
    rows_in_columns = np.nonzero(mask_t)[1]
    data = dense.T[mask_t]
    return FakeScipyCsc(_shape=tuple(int(s) for s in dense.shape), maxprint=50, format="csc",
                        data=data, indices=rows_in_columns.astype(np.int32),
                        indptr=np.concatenate([[0], np.cumsum(col_counts)]).astype(np.int32))


def scipy_csr(dense: np.ndarray) -> FakeScipyCsr:
    """A `scipy.sparse.csr.csr_matrix` state (new-scipy style, '_shape' plus flags)."""
    dense = np.asarray(dense, dtype=np.float64)
    mask = dense != 0
    return FakeScipyCsr(_shape=tuple(int(s) for s in dense.shape), maxprint=50, data=dense[mask],
                        indices=np.nonzero(mask)[1].astype(np.int32),
                        indptr=np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32),
                        _has_sorted_indices=True)


class _ForeignNamePickler(pickle._Pickler):  # the pure-Python pickler lets us override save_global
    """Writes `ForeignObject` subclasses under their foreign module/name (protocols 0-3)."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, type) and issubclass(obj, ForeignObject) and obj is not ForeignObject:
            if self.proto >= 4:
                raise ValueError("synthetic foreign pickles support protocols 0-3 only")
            self.write(pickle.GLOBAL + f"{obj.pickle_module}\n{obj.pickle_name}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_foreign(obj: Any, protocol: int = 2) -> bytes:
    """Pickle `obj`, writing fake chumpy / scipy objects under their real class names."""
    buffer = io.BytesIO()
    _ForeignNamePickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def to_official_pickle_dict(arrays: dict[str, Any]) -> dict[str, Any]:
    """Wrap arrays as the official file stores them: chumpy Ch for the blend shapes and template,
    scipy csc for the regressors."""
    content = dict(arrays)
    for key in ("v_template", "shapedirs", "posedirs"):
        if key in content:
            content[key] = chumpy_ch(content[key])
    for key in ("J_regressor", "J_regressor_prior"):
        if key in content:
            content[key] = scipy_csc(content[key])
    return content


def write_smpl_like_pickle(path: str | os.PathLike, arrays: dict[str, Any], protocol: int = 2) -> Path:
    """Write `arrays` in the official pickle layout (see `to_official_pickle_dict`)."""
    path = Path(path)
    _write_atomic(path, dumps_foreign(to_official_pickle_dict(arrays), protocol=protocol))
    return path


def write_synthetic_smpl_pkl(path: str | os.PathLike, seed: int = 0, n_vertices: int = 400,
                             protocol: int = 2, num_betas: int = 10) -> Path:
    """Write a synthetic SMPL model in the official `.pkl` layout; returns the path."""
    return write_smpl_like_pickle(path, make_synthetic_smpl_arrays(seed, n_vertices, num_betas), protocol)


def write_synthetic_smpl_npz(path: str | os.PathLike, seed: int = 0, n_vertices: int = 400,
                             num_betas: int = 10) -> Path:
    """Write the same synthetic model as a pickle-free `.npz` (dense J_regressor); returns the path."""
    path = Path(path)
    arrays = make_synthetic_smpl_arrays(seed, n_vertices, num_betas)
    arrays = {k: np.asarray(v) for k, v in arrays.items() if k != "pose_training_info"}
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


# ------------------------------------------------------------------------------------------
# Reference skinning in plain numpy (independent of smplx), for checking the body model
# ------------------------------------------------------------------------------------------


def reference_rodrigues(rotvecs: np.ndarray) -> np.ndarray:
    """[...,3] axis-angle -> [...,3,3] rotation matrices (textbook Rodrigues formula)."""
    rotvecs = np.asarray(rotvecs, dtype=np.float64)
    angle = np.linalg.norm(rotvecs, axis=-1, keepdims=True)[..., None]  # [...,1,1]
    axis = rotvecs / np.where(angle[..., 0] > 0, angle[..., 0], 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis.shape[:-1] + (3, 3))
    eye = np.broadcast_to(np.eye(3), cross.shape)
    return eye + np.sin(angle) * cross + (1.0 - np.cos(angle)) * (cross @ cross)


def reference_lbs(model: Any, poses: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL forward pass written out step by step: poses[N,24,3], betas[N,10] ->
    (joints[N,24,3], vertices[N,V,3]) in the model frame. `model` is an SmplModelData."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    betas = np.asarray(betas, dtype=np.float64).reshape(poses.shape[0], -1)
    count = poses.shape[0]
    shaped = model.v_template[None] + np.einsum("vkb,nb->nvk", model.shapedirs[:, :, :betas.shape[1]], betas)
    rest_joints = np.einsum("jv,nvk->njk", model.j_regressor, shaped)  # [N,24,3]
    rotations = reference_rodrigues(poses)  # [N,24,3,3]
    pose_feature = (rotations[:, 1:] - np.eye(3)).reshape(count, -1)  # [N,207]
    posed_rest = shaped + (pose_feature @ model.posedirs).reshape(count, -1, 3)
    world_rot = np.zeros((count, NUM_JOINTS, 3, 3))
    world_pos = np.zeros((count, NUM_JOINTS, 3))
    for joint in range(NUM_JOINTS):
        parent = int(model.parents[joint])
        if parent < 0:
            world_rot[:, joint] = rotations[:, joint]
            world_pos[:, joint] = rest_joints[:, joint]
        else:
            offset = rest_joints[:, joint] - rest_joints[:, parent]
            world_rot[:, joint] = world_rot[:, parent] @ rotations[:, joint]
            world_pos[:, joint] = world_pos[:, parent] + np.einsum("nij,nj->ni", world_rot[:, parent], offset)
    # Skinning: vertex = sum_j w_j (R_j (v - J_rest_j) + J_posed_j)
    per_joint = np.einsum("njik,njvk->njvi", world_rot, posed_rest[:, None] - rest_joints[:, :, None]) \
        + world_pos[:, :, None, :]  # [N,24,V,3]
    vertices = np.einsum("vj,njvi->nvi", model.weights, per_joint)
    return world_pos, vertices
