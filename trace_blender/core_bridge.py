"""The single place the add-on imports TRACE's torch-free code from.

The file formats and rig math come from `trace_format` (a bundled wheel inside the extension zip, the
top-level package in a repository checkout or pip install). The TRACE -> Blender conventions still
come from `core.rig` (vendored by build.py as `<addon>.core` inside the zip, the top-level `core`
package otherwise) until the add-on holds them itself.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import CoreUnavailableError

try:
    from trace_format import atomic, npz, smpl_file
except ModuleNotFoundError as exc:
    if exc.name != "trace_format":
        raise
    raise CoreUnavailableError(
        "the trace_format package is not available: install the extension zip built by `python build.py` "
        "(it bundles the trace_format wheel), or `pip install -e <repo>` into this Python"
    ) from exc


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

# core.rig: trace_format's rig math plus the TRACE -> Blender frames, camera axes and lens helpers.
rig = importlib.import_module(f"{core_package.__name__}.rig")


def result_file() -> ModuleType:
    """trace_format.npz: read_result / write_result."""
    return npz


def scene_camera() -> ModuleType:
    """Camera axes and lens helpers (OPENCV_TO_BLENDER_CAMERA, lens_mm_from_*), numpy only."""
    return rig


def smpl_model_file() -> ModuleType:
    """trace_format.smpl_file: numpy-only SMPL .pkl/.npz reader."""
    return smpl_file
