"""The single place the add-on imports TRACE's torch-free core from.

Inside the extension zip, build.py vendors `core` as a sub-package of the add-on (`<addon>.core`);
from a repository checkout or a pip install the top-level `core` package is used. Only these
modules are reached through here: result_file, smpl.model_file, rig, atomic, world.scene_camera.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import CoreUnavailableError


def _locate_core() -> ModuleType:
    vendored_name = f"{__package__}.core"
    try:
        return importlib.import_module(".core", __package__)
    except ModuleNotFoundError as exc:
        if exc.name != vendored_name:  # the vendored copy exists but one of its imports is broken
            raise
    try:
        return importlib.import_module("core")
    except ModuleNotFoundError as exc:
        if exc.name != "core":
            raise
        raise CoreUnavailableError(
            "the TRACE core package is not available: install the extension zip built by `python build.py` "
            "(it carries the torch-free core), or `pip install -e <repo>` into this Python"
        ) from exc


core_package: ModuleType = _locate_core()
IS_VENDORED: bool = core_package.__name__ != "core"


def _sub(name: str) -> ModuleType:
    return importlib.import_module(f"{core_package.__name__}.{name}")


rig = _sub("rig")
atomic = _sub("atomic")   # atomic_open / atomic_path: every file the add-on writes


def result_file() -> ModuleType:
    """core.result_file (imported on first use: it is written by another part of the project)."""
    return _sub("result_file")


def scene_camera() -> ModuleType:
    """core.world.scene_camera: camera axes and lens helpers (numpy only)."""
    return _sub("world.scene_camera")


def smpl_model_file() -> ModuleType:
    """core.smpl.model_file: numpy-only SMPL .pkl/.npz reader."""
    return _sub("smpl.model_file")
