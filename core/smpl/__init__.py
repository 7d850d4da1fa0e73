"""SMPL body model: the numpy file reader (here) and the torch body model (`core.smpl.body_model`).

This package root stays torch-free because the Blender extension vendors it; import
`core.smpl.body_model` explicitly where torch is available.
"""
from .model_file import (
    NUM_SMPL_BETAS,
    NUM_SMPL_JOINTS,
    SMPL_DOWNLOAD_HINT,
    SmplModelData,
    SmplModelError,
    file_sha256,
    load_smpl_model_file,
)

__all__ = [
    "NUM_SMPL_BETAS",
    "NUM_SMPL_JOINTS",
    "SMPL_DOWNLOAD_HINT",
    "SmplModelData",
    "SmplModelError",
    "file_sha256",
    "load_smpl_model_file",
]
