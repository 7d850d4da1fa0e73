"""Undo for a failed import: everything an import creates is recorded and removed again on failure.

A failed import must leave the user's file exactly as it was (datablocks, markers, scene settings).
"""
from __future__ import annotations

from typing import Any

import bpy

# Removal order: users before what they use (objects before their data, actions and clips last).
_REMOVAL_ORDER = ("objects", "meshes", "armatures", "cameras", "materials", "actions", "movieclips", "collections")


class CreatedDatablocks:
    """Datablocks (and timeline markers) made by one import, removed in reverse order if it fails."""

    def __init__(self, scene: Any = None) -> None:
        self.items: list[tuple[str, Any]] = []
        self.scene = scene

    def add(self, kind: str, datablock: Any) -> Any:
        """Record `datablock` (kind: a bpy.data collection name, or "markers") and return it."""
        self.items.append((kind, datablock))
        return datablock

    def remove_all(self) -> None:
        if bpy.context.mode != "OBJECT" and bpy.context.object is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        for kind, marker in reversed(self.items):
            if kind == "markers" and self.scene is not None:
                try:
                    self.scene.timeline_markers.remove(marker)
                except (ReferenceError, RuntimeError):
                    pass
        for kind in _REMOVAL_ORDER:
            store = getattr(bpy.data, kind)
            for item_kind, datablock in reversed(self.items):
                if item_kind != kind:
                    continue
                try:
                    store.remove(datablock)
                except ReferenceError:  # already freed together with its owner
                    pass
        self.items.clear()


class SavedSceneSettings:
    """The scene settings an import may change (timing, render size, active camera), to restore on failure."""

    NAMES = ("render.fps", "render.fps_base", "frame_start", "frame_end", "render.resolution_x",
             "render.resolution_y", "render.resolution_percentage", "render.pixel_aspect_x",
             "render.pixel_aspect_y", "camera")

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.values = [getattr(*self._owner(name)) for name in self.NAMES]

    def _owner(self, name: str) -> tuple[Any, str]:
        """(object holding the setting, attribute name) for a dotted name such as 'render.fps'."""
        owner = self.scene
        *path, attribute = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        return owner, attribute

    def restore(self) -> None:
        for name, value in zip(self.NAMES, self.values):
            owner, attribute = self._owner(name)
            setattr(owner, attribute, value)


def unique_name(store: Any, base: str) -> str:
    """`base`, or `base_2`, `base_3`, ... so that an import never takes over an existing datablock."""
    if store.get(base) is None:
        return base
    index = 2
    while store.get(f"{base}_{index}") is not None:
        index += 1
    return f"{base}_{index}"
