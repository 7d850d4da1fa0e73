"""Read an SMPL body model file (.pkl as distributed, or a pickle-free .npz) into numpy arrays.

The official SMPL_NEUTRAL.pkl is a Python 2 pickle holding chumpy and scipy.sparse objects; it is
read with `trace_format.safe_pickle` (no code runs, neither package is needed). The result uses the array
layouts smplx works with, so `core.smpl.body_model` can hand them to `smplx.lbs` unchanged.

Standard library + numpy only (shared with the Blender extension, which skins meshes with it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .safe_pickle import (SMPL_LIMITS, ArchiveError, ArchiveLimitError, NpzArchive, UnsafePickleError,
                          UnsupportedPickleContentError, load_pickle_file)

__all__ = ["SmplModelError", "SmplModelData", "load_smpl_model_file", "file_sha256",
           "NUM_SMPL_JOINTS", "NUM_SMPL_BETAS", "SMPL_DOWNLOAD_HINT"]

NUM_SMPL_JOINTS = 24
NUM_SMPL_BETAS = 10  # TRACE predicts 10 shape coefficients
NUM_POSE_BASIS = 9 * (NUM_SMPL_JOINTS - 1)  # 207 pose-corrective blend shapes
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "kintree_table")
SMPL_DOWNLOAD_HINT = (
    "Download 'SMPL for Python' v1.1.0 from https://smpl.is.tue.mpg.de (free registration) and choose "
    "its neutral model, basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl (TRACE calls it SMPL_NEUTRAL.pkl)."
)
# Joint counts of other body models in the same file family, to name the mistake precisely.
_OTHER_MODELS_BY_JOINTS = {55: "SMPL-X", 52: "SMPL+H", 16: "MANO (hand)", 5: "FLAME (head)"}


class SmplModelError(Exception):
    """The file is not a usable SMPL (24-joint) model; the message says what to do."""


@dataclass(frozen=True, eq=False)
class SmplModelData:
    """Arrays of an SMPL model (float64 unless noted), in the layouts smplx uses.

    v_template[V,3] rest mesh (canonical frame: y up, facing +z), shapedirs[V,3,10] shape blend
    shapes, posedirs[207,V*3] pose blend shapes, j_regressor[24,V] dense, weights[V,24] skinning,
    faces[F,3] int64, parents[24] int64 with -1 for the root.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    parents: np.ndarray
    source_path: str | None = None
    sha256: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def _check_betas(self, betas: Any) -> np.ndarray:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.shape[-1:] != (self.num_betas,):
            raise ValueError(f"betas must have {self.num_betas} values in the last axis, got shape {betas.shape}")
        return betas

    def vertices_for_betas(self, betas: Any) -> np.ndarray:
        """Rest-pose mesh of a body shape: betas[...,10] -> [...,V,3] (v_template + shapedirs·betas)."""
        betas = self._check_betas(betas)
        return self.v_template + np.einsum("vkb,...b->...vk", self.shapedirs, betas)

    def joints_for_betas(self, betas: Any) -> np.ndarray:
        """Rest-pose joints of a body shape: betas[...,10] -> [...,24,3] (J_regressor @ shaped mesh)."""
        return np.einsum("jv,...vk->...jk", self.j_regressor, self.vertices_for_betas(betas))


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (model files are up to a few hundred MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_smpl_model_file(path: str | os.PathLike, *, compute_sha256: bool = True) -> SmplModelData:
    """Load and validate an SMPL model file (`.pkl` as downloaded, or an `.npz` with the same keys).

    Raises SmplModelError with an actionable message for missing/unreadable files, unsafe
    pickles, other body models (SMPL-X, SMPL+H, ...) and inconsistent arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise SmplModelError(f"SMPL model file not found: {path}. {SMPL_DOWNLOAD_HINT}")
    content = _read_model_content(path)
    data = _validated_model(content, path)
    if compute_sha256:
        data = dataclasses.replace(data, sha256=file_sha256(path))
    return data


def _read_model_content(path: Path) -> dict[str, Any]:
    """The raw key -> value mapping of a .pkl or .npz model file."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        return _read_npz(path)
    try:
        content = load_pickle_file(path)
    except UnsafePickleError as exc:
        raise SmplModelError(
            f"{path.name} was not loaded because it is unsafe: {exc}. Real SMPL model files only hold "
            f"arrays. {SMPL_DOWNLOAD_HINT}"
        ) from exc
    except UnsupportedPickleContentError as exc:
        raise SmplModelError(
            f"{path.name} is not an SMPL model file, or it is damaged (reading it as a pickle failed: {exc}). "
            f"{SMPL_DOWNLOAD_HINT}"
        ) from exc
    except MemoryError as exc:
        raise SmplModelError(f"{path.name}: not enough memory to read it; is it really an SMPL model file?") from exc
    if not isinstance(content, dict):
        raise SmplModelError(
            f"{path.name} is not an SMPL model file: it holds a {type(content).__name__}, not a dictionary "
            f"of model arrays. {SMPL_DOWNLOAD_HINT}"
        )
    return content


def _read_npz(path: Path) -> dict[str, Any]:
    """The arrays of an .npz model file; sizes checked from the headers first (SMPL_LIMITS)."""
    try:
        with NpzArchive(path, SMPL_LIMITS) as archive:
            objects = [name for name, entry in archive.members.items() if entry.dtype.hasobject]
            if objects:
                raise SmplModelError(
                    f"{path.name}: this .npz stores pickled objects ({', '.join(objects[:5])}), which are not loaded "
                    f"(they could run code). Save every array as a plain numeric array (dense J_regressor), or use "
                    f"the .pkl file.")
            return {name: archive.read(name) for name in archive.names}
    except ArchiveLimitError as exc:
        raise SmplModelError(f"{path.name} was refused before reading it: {exc}; SMPL model files are far "
                             f"smaller. {SMPL_DOWNLOAD_HINT}") from exc
    except ArchiveError as exc:
        raise SmplModelError(f"{exc}. {SMPL_DOWNLOAD_HINT}") from exc
    except OSError as exc:
        raise SmplModelError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _validated_model(content: dict[str, Any], path: Path) -> SmplModelData:
    name = path.name
    keys = set(str(k) for k in content.keys())
    missing = [key for key in REQUIRED_KEYS if key not in keys]
    if missing:
        raise SmplModelError(
            f"{name} is not an SMPL model file: missing keys {', '.join(missing)} (found: "
            f"{', '.join(sorted(keys)[:12]) or 'nothing'}). {SMPL_DOWNLOAD_HINT}"
        )

    def numeric(key: str, dtype: Any = np.float64) -> np.ndarray:
        try:
            array = np.asarray(content[key], dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise SmplModelError(f"{name}: '{key}' is not a numeric array ({type(content[key]).__name__})") from exc
        return array

    kintree = numeric("kintree_table", np.float64)
    j_regressor = numeric("J_regressor")
    num_joints = kintree.shape[1] if kintree.ndim == 2 else -1
    if num_joints != NUM_SMPL_JOINTS or j_regressor.ndim != 2 or j_regressor.shape[0] != NUM_SMPL_JOINTS:
        joints = num_joints if num_joints > 0 else (j_regressor.shape[0] if j_regressor.ndim == 2 else -1)
        other = _OTHER_MODELS_BY_JOINTS.get(joints)
        found = f"the {other} model ({joints} joints)" if other else f"a model with {joints} joints"
        raise SmplModelError(
            f"{name} holds {found}; TRACE needs the SMPL body model (24 joints). {SMPL_DOWNLOAD_HINT}"
        )

    v_template = numeric("v_template")
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 1:
        raise SmplModelError(f"{name}: v_template must be [V,3], got {v_template.shape}")
    num_vertices = v_template.shape[0]

    shapedirs = numeric("shapedirs")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_vertices, 3) or shapedirs.shape[2] < NUM_SMPL_BETAS:
        raise SmplModelError(
            f"{name}: shapedirs must be [V,3,B] with V={num_vertices} and B>={NUM_SMPL_BETAS}, got {shapedirs.shape}"
        )
    notes = []
    if shapedirs.shape[2] > NUM_SMPL_BETAS:
        notes.append(f"shapedirs has {shapedirs.shape[2]} components; the first {NUM_SMPL_BETAS} are used")
    shapedirs = np.ascontiguousarray(shapedirs[:, :, :NUM_SMPL_BETAS])

    posedirs = numeric("posedirs")
    if posedirs.shape == (num_vertices, 3, NUM_POSE_BASIS):
        posedirs = np.ascontiguousarray(posedirs.reshape(num_vertices * 3, NUM_POSE_BASIS).T)  # [207,V*3]
    elif posedirs.shape != (NUM_POSE_BASIS, num_vertices * 3):
        raise SmplModelError(
            f"{name}: posedirs must be [V,3,{NUM_POSE_BASIS}] (file layout) or [{NUM_POSE_BASIS},V*3], "
            f"got {posedirs.shape} for V={num_vertices}"
        )

    if j_regressor.shape != (NUM_SMPL_JOINTS, num_vertices):
        raise SmplModelError(f"{name}: J_regressor must be [24,{num_vertices}], got {j_regressor.shape}")
    weights = numeric("weights")
    if weights.shape != (num_vertices, NUM_SMPL_JOINTS):
        raise SmplModelError(f"{name}: weights must be [{num_vertices},24], got {weights.shape}")

    faces_raw = numeric("f", np.float64)
    if faces_raw.ndim != 2 or faces_raw.shape[1] != 3 or faces_raw.shape[0] < 1:
        raise SmplModelError(f"{name}: f (faces) must be [F,3], got {faces_raw.shape}")
    if not np.all(np.isfinite(faces_raw)) or np.any(faces_raw != np.round(faces_raw)) \
            or faces_raw.min() < 0 or faces_raw.max() >= num_vertices:
        raise SmplModelError(f"{name}: f (faces) must hold vertex indices in 0..{num_vertices - 1}")
    faces = faces_raw.astype(np.int64)

    parents = _parents_from_kintree(kintree, name)

    for key, array in (("v_template", v_template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                       ("J_regressor", j_regressor), ("weights", weights)):
        if not np.all(np.isfinite(array)):
            raise SmplModelError(f"{name}: '{key}' contains NaN or infinite values; the file is damaged")
    weight_sums = weights.sum(axis=1)
    if np.max(np.abs(weight_sums - 1.0)) > 1e-3:
        raise SmplModelError(f"{name}: skinning weights do not sum to 1 per vertex (max error "
                             f"{np.max(np.abs(weight_sums - 1.0)):.3g}); the file is damaged")

    return SmplModelData(
        v_template=np.ascontiguousarray(v_template), shapedirs=shapedirs, posedirs=posedirs,
        j_regressor=np.ascontiguousarray(j_regressor), weights=np.ascontiguousarray(weights),
        faces=np.ascontiguousarray(faces), parents=parents, source_path=str(path), notes=tuple(notes),
    )


def _parents_from_kintree(kintree: np.ndarray, name: str) -> np.ndarray:
    """kintree_table[2,24] (row 0 parents, root marked 4294967295 or -1) -> parents[24] int64, root -1."""
    if kintree.shape != (2, NUM_SMPL_JOINTS) or not np.all(np.isfinite(kintree)):
        raise SmplModelError(f"{name}: kintree_table must be [2,24], got {kintree.shape}")
    if not np.array_equal(kintree[1], np.arange(NUM_SMPL_JOINTS)):
        raise SmplModelError(f"{name}: kintree_table row 1 must list the joints 0..23 in order")
    parents = kintree[0].astype(np.int64)
    root_value = parents[0]
    if root_value not in (-1, 4294967295):
        raise SmplModelError(f"{name}: kintree_table does not mark joint 0 as the root (found parent {root_value})")
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, NUM_SMPL_JOINTS)):
        raise SmplModelError(f"{name}: kintree_table parents must precede their children")
    return parents
