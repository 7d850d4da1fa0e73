"""Add-on preferences and the settings object the operators read.

When the add-on is registered without Blender's add-on manager (tests, `python -m trace_blender`),
there is no preferences entry; `addon_settings()` then returns the documented defaults.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import runner
from .exporting import EXPORT_FORMATS, FORMAT_LABELS

ADDON_ID = __package__
DEVICE_ITEMS = (
    ("auto", "Auto", "CUDA when the core's torch sees a GPU, else CPU"),
    ("cpu", "CPU", "Always run on the CPU"),
    ("cuda", "CUDA", "Run on the GPU (needs a CUDA build of torch in the core's Python)"),
)
EXPORT_ITEMS = tuple((key, FORMAT_LABELS[key], f"Export {FORMAT_LABELS[key]}") for key in EXPORT_FORMATS)


@dataclass
class AddonSettings:
    python: str
    weights_dir: str | None
    smpl_model_path: str | None
    device: str
    export_preset: str
    frame_start: int
    smpl_extra_regressor_path: str | None = None


def _abspath(value: str) -> str | None:
    return bpy.path.abspath(value) if value else None


def addon_settings(context: Any = None) -> AddonSettings:
    """The effective settings: preferences when the add-on is enabled, else the defaults."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None or addon.preferences is None:
        return AddonSettings(runner.default_python(), None, None, "auto", "unity", 1)
    prefs = addon.preferences
    return AddonSettings(
        python=_abspath(prefs.python_path) or runner.default_python(),
        weights_dir=_abspath(prefs.weights_dir), smpl_model_path=_abspath(prefs.smpl_model_path),
        device=prefs.device, export_preset=prefs.export_preset, frame_start=prefs.frame_start,
        smpl_extra_regressor_path=_abspath(prefs.smpl_extra_regressor_path))


def user_data_dir(subfolder: str) -> Path:
    """Writable per-user folder: the extension's user directory, or a temp folder outside an extension."""
    if ADDON_ID.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON_ID, path=subfolder, create=True))
    path = Path(tempfile.gettempdir()) / "trace_blender" / subfolder
    path.mkdir(parents=True, exist_ok=True)
    return path


class TRACE_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: StringProperty(
        name="Python interpreter", subtype="FILE_PATH", default="",
        description="A Python 3.11 executable with the TRACE core and torch installed (empty: Blender's own Python)")
    weights_dir: StringProperty(
        name="Weights folder", subtype="DIR_PATH", default="",
        description="Folder with the three TRACE checkpoints (empty: the core's per-user default folder)")
    smpl_model_path: StringProperty(
        name="SMPL model file", subtype="FILE_PATH", default="",
        description="Optional SMPL_NEUTRAL.pkl: body shapes and a skinned mesh (empty: default skeleton only)")
    smpl_extra_regressor_path: StringProperty(
        name="Official placement regressor", subtype="FILE_PATH", default="",
        description="Optional J_regressor_extra.npy from ROMP's smpl_model_data: place bodies exactly as the "
                    "official TRACE code (needs the SMPL model file; empty: placed by the SMPL hips)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    export_preset: EnumProperty(name="Default export", items=EXPORT_ITEMS, default="unity")
    frame_start: IntProperty(name="Frame start", default=1, min=-1048574, max=1048574,
                             description="Scene frame of the video's first frame")

    def draw(self, context: Any) -> None:
        layout = self.layout
        python = _abspath(self.python_path) or runner.default_python()
        column = layout.column()
        column.prop(self, "python_path")
        if not self.python_path:
            column.label(text=f"Empty: Blender's own Python ({python})")
        row = column.row()
        problem = runner.last_interpreter_check(python)
        if problem is None:
            row.label(text="OK: runs the TRACE core", icon="CHECKMARK")
        elif problem == runner.NOT_CHECKED:
            row.label(text="Not checked yet", icon="QUESTION")
        else:
            row.alert = True
            row.label(text="Cannot run the TRACE core", icon="ERROR")
            for paragraph in problem.splitlines():   # what to do, for this interpreter (trace_blender.advice)
                for line in _wrap(paragraph, 90):
                    column.label(text=line)
        row.operator("trace.check_core", text="Check", icon="FILE_REFRESH")
        column.prop(self, "weights_dir")
        column.prop(self, "smpl_model_path")
        column.prop(self, "smpl_extra_regressor_path")
        column.prop(self, "device")
        column.prop(self, "export_preset")
        column.prop(self, "frame_start")


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + ([current] if current else [])

