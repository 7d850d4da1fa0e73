"""Register / unregister every class of the add-on, in order (reverse order on the way out)."""
from __future__ import annotations

import bpy
from bpy.props import PointerProperty

from . import operators, preferences, ui
from .retarget import panel as retarget_panel

CLASSES = (preferences.TRACE_AddonPreferences,) + operators.CLASSES + ui.CLASSES + retarget_panel.CLASSES


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.trace_blender = PointerProperty(type=ui.TRACE_SessionState)
    retarget_panel.register_properties()
    bpy.types.TOPBAR_MT_file_import.append(operators.menu_import)
    bpy.types.TOPBAR_MT_file_export.append(operators.menu_export)


def unregister() -> None:
    operators.cancel_active_job()
    bpy.types.TOPBAR_MT_file_export.remove(operators.menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(operators.menu_import)
    retarget_panel.unregister_properties()
    if hasattr(bpy.types.WindowManager, "trace_blender"):
        del bpy.types.WindowManager.trace_blender
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
