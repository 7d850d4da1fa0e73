"""Re-importing shots of a result replaces what an earlier import of that result made for those shots.

Safe order: the earlier objects are renamed aside, the new ones are built under the clean names, and
only then are the earlier ones deleted; if the build fails they get their names back and nothing is lost.
"""
from __future__ import annotations

from typing import Any, Iterable

import bpy

from . import tags
from .rollback import _REMOVAL_ORDER

ASIDE_SUFFIX = " (replaced)"


def earlier_import(scene: Any, result_path: str, shots: Iterable[int]) -> list[tuple[str, Any]]:
    """(bpy.data kind, datablock) of what an import of `result_path` made in this scene for `shots`:
    people (armature, body, their data, actions, materials, person collection) and shot cameras."""
    wanted = set(shots)
    found: list[tuple[str, Any]] = []

    def add(kind: str, datablock: Any) -> None:
        if datablock is not None and all(datablock is not other for _, other in found):
            found.append((kind, datablock))

    for ob in list(scene.objects):
        if ob.get(tags.PROP_RESULT) != result_path or int(ob.get(tags.PROP_SHOT, -1)) not in wanted:
            continue
        role = ob.get(tags.PROP_ROLE)
        if role not in ("armature", "camera"):
            continue
        owned = [ob] + (tags.bodies_of(ob) if role == "armature" else [])
        for item in owned:
            add("objects", item)
            add({"ARMATURE": "armatures", "MESH": "meshes", "CAMERA": "cameras"}[item.type], item.data)
            if item.animation_data is not None and item.animation_data.action is not None:
                add("actions", item.animation_data.action)
            if item.type == "MESH":
                for material in item.data.materials:
                    add("materials", material)
        if role == "armature":
            for collection in ob.users_collection:
                if all(child in owned for child in collection.objects) and not collection.children:
                    add("collections", collection)
    return found


def set_aside(items: list[tuple[str, Any]]) -> list[tuple[Any, str]]:
    """Rename the earlier datablocks out of the way; returns (datablock, old name) to restore or finish."""
    renamed = []
    for _, datablock in items:
        renamed.append((datablock, datablock.name))
        datablock.name = datablock.name + ASIDE_SUFFIX
    return renamed


def restore_names(renamed: list[tuple[Any, str]]) -> None:
    for datablock, name in renamed:
        datablock.name = name


def remove_earlier(scene: Any, items: list[tuple[str, Any]]) -> set[int]:
    """Delete the earlier datablocks (and the shot markers bound to their cameras) and then the
    collections that were left empty by it; returns the shots whose camera marker was removed."""
    cameras = [datablock for kind, datablock in items if kind == "objects" and datablock.type == "CAMERA"]
    marked_shots = set()
    for marker in list(scene.timeline_markers):
        if marker.camera is not None and any(marker.camera == camera for camera in cameras):
            marked_shots.add(int(marker.camera.get(tags.PROP_SHOT, -1)))
            scene.timeline_markers.remove(marker)
    parents = {collection for kind, datablock in items if kind == "collections"
               for collection in bpy.data.collections if datablock.name in collection.children}
    for kind in _REMOVAL_ORDER:
        store = getattr(bpy.data, kind)
        for item_kind, datablock in items:
            if item_kind == kind and (kind not in ("materials", "actions") or datablock.users <= 1):
                store.remove(datablock)
    # A shot collection (or the result's top collection) that held only what was replaced goes too.
    for collection in list(parents):
        _remove_if_empty(collection)
    return marked_shots


def _remove_if_empty(collection: Any) -> None:
    if collection.objects or collection.children:
        return
    holders = [c for c in bpy.data.collections if collection.name in c.children]
    bpy.data.collections.remove(collection)
    for holder in holders:
        _remove_if_empty(holder)


def result_collection(scene: Any, items: list[tuple[str, Any]]) -> Any | None:
    """The top collection (directly under the scene's) that holds the earlier people, or None."""
    for kind, datablock in items:
        if kind != "collections":
            continue
        current = datablock
        while True:
            if current.name in scene.collection.children:
                return current
            holder = next((c for c in bpy.data.collections if current.name in c.children), None)
            if holder is None:
                break
            current = holder
    return None


def still_exists(datablock: Any) -> bool:
    try:
        datablock.name
    except ReferenceError:
        return False
    return True
