"""The official TRACE placement point: joints 35/36 of its 44-joint set, from `J_regressor_extra.npy`.

The official SMPL wrapper (simple_romp `trace2/models/smpl.py`) builds 44 joints per body: the 24
SMPL joints, 11 vertices picked from the mesh, and 9 joints regressed from the posed vertices by
`J_regressor_extra9` (ROMP's `smpl_model_data/J_regressor_extra.npy`, 9 x 6890, packed by
`pack_smpl_info.py`). With `root_align` it moves each body so that the midpoint of joints 35 and 36
(rows 0 and 1 of that regressor: the right and left hip of the LSP convention) sits at the origin;
the network's `cam_trans` / `world_trans` is then where that point is. Without the file we place the
midpoint of SMPL joints 1/2 (the hips of the SMPL regressor) there: a few centimetres off, turning
with the body.

The file is read with `numpy.load(..., allow_pickle=False)`: an object array (a pickle) is refused,
never unpickled.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ExtraRegressorError", "PlacementRegressor", "load_extra_regressor", "PLACEMENT_SMPL_HIPS",
           "PLACEMENT_OFFICIAL", "OFFICIAL_ANCHOR_ROWS"]

#: Names recorded in results (`settings.placement`).
PLACEMENT_SMPL_HIPS = "smpl_hips"                    # midpoint of SMPL joints 1 and 2
PLACEMENT_OFFICIAL = "official_joints35_36"          # midpoint of the official joints 35 and 36
#: Rows of J_regressor_extra that are joints 35 and 36 of the official 44-joint set (24 + 11 = 35).
OFFICIAL_ANCHOR_ROWS = (0, 1)
_ROW_SUM_TOLERANCE = 1e-3


class ExtraRegressorError(Exception):
    """The regressor file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PlacementRegressor:
    """The official placement point as a sparse vertex regressor: point = sum_i weights[i] * v[indices[i]]."""

    path: Path
    indices: np.ndarray          # [S] int64 vertex indices with non-zero weight
    weights: np.ndarray          # [S] float64 (sum 1)
    num_vertices: int
    sha256: str

    def check_vertices(self, num_vertices: int) -> None:
        if num_vertices != self.num_vertices:
            raise ExtraRegressorError(
                f"{self.path}: regresses joints from {self.num_vertices} vertices but the SMPL model has "
                f"{num_vertices}; use the J_regressor_extra.npy made for that model (SMPL: 6890 vertices)")

    def point(self, vertices: np.ndarray) -> np.ndarray:
        """vertices [N, V, 3] -> [N, 3] placement points."""
        return np.einsum("s,nsk->nk", self.weights, np.asarray(vertices)[:, self.indices])


def load_extra_regressor(path: str | os.PathLike) -> PlacementRegressor:
    """Read and check ROMP's `J_regressor_extra.npy` ([9, V] float; rows 0 and 1 are joints 35 and 36)."""
    from ..checkpoints import sha256_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise ExtraRegressorError(f"--smpl-extra-regressor: file not found: {path} (ROMP's "
                                  f"smpl_model_data/J_regressor_extra.npy)")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"PK"):
        raise ExtraRegressorError(f"{path}: an .npz/zip archive, not the .npy array J_regressor_extra.npy")
    if magic[:1] == b"\x80":
        raise ExtraRegressorError(f"{path}: a Python pickle, refused without loading it (J_regressor_extra.npy "
                                  f"is a plain float .npy array)")
    if magic != b"\x93NUMPY":
        raise ExtraRegressorError(f"{path}: not a readable .npy array (it starts with {magic!r})")
    from trace_format.safe_pickle import ArchiveError, check_npy_file

    try:
        check_npy_file(path)      # a header declaring more than the file holds is refused before allocating
    except ArchiveError as error:
        raise ExtraRegressorError(f"{path}: not a readable .npy array ({error})") from None
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickle" in str(error).lower():
            raise ExtraRegressorError(
                f"{path}: holds pickled Python objects; refused without loading them (J_regressor_extra.npy is "
                f"a plain float array)") from None
        raise ExtraRegressorError(f"{path}: not a readable .npy array ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ExtraRegressorError(f"{path}: not a readable .npy array ({error})") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ExtraRegressorError(f"{path}: dtype {array.dtype}, expected a float array")
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 3:
        raise ExtraRegressorError(
            f"{path}: shape {array.shape}, expected [9, 6890] (joints x vertices; ROMP's J_regressor_extra.npy)")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ExtraRegressorError(f"{path}: contains NaN or infinite weights")
    anchor = 0.5 * (array[OFFICIAL_ANCHOR_ROWS[0]] + array[OFFICIAL_ANCHOR_ROWS[1]])     # [V]
    for row in OFFICIAL_ANCHOR_ROWS:
        total = float(array[row].sum())
        if abs(total - 1.0) > _ROW_SUM_TOLERANCE:
            raise ExtraRegressorError(
                f"{path}: row {row} sums to {total:.4f}, not 1; not a joint regressor (expected ROMP's "
                f"J_regressor_extra.npy)")
    indices = np.flatnonzero(anchor)
    return PlacementRegressor(path=path, indices=indices.astype(np.int64), weights=anchor[indices],
                              num_vertices=int(array.shape[1]), sha256=sha256_file(path))
