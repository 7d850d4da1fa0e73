"""Bring a user's character rig into the scene from a file (.blend, .fbx, .glb/.gltf) for a headless retarget.

Only the chosen armature and the objects that belong to it (its children, meshes deformed by it) are
kept; everything else the file brings along is removed again, so the scene holds the TRACE people and
the character.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from ..errors import UsageError

RIG_FILE_TYPES = (".blend", ".fbx", ".glb", ".gltf")


def _belongs_to(ob: Any, armature: Any) -> bool:
    parent = ob.parent
    while parent is not None:
        if parent == armature:
            return True
        parent = parent.parent
    return any(m.type == "ARMATURE" and m.object == armature for m in getattr(ob, "modifiers", ()))


def _new_objects(before: set[str]) -> list[Any]:
    return [ob for ob in bpy.data.objects if ob.name not in before]


def load_rig_file(path: str | Path, armature_name: str | None = None) -> Any:
    """Load the file's objects, keep one armature (the only one, or `armature_name`) and what belongs to
    it in the current scene, and return that armature object."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RIG_FILE_TYPES:
        raise UsageError(f"--target: {path.name} is not a rig file Blender can read here; use one of "
                         f"{', '.join(RIG_FILE_TYPES)}")
    if not path.is_file():
        raise UsageError(f"--target: no file at {path}")
    before = {ob.name for ob in bpy.data.objects}
    scene = bpy.context.scene
    if suffix == ".blend":
        with bpy.data.libraries.load(str(path), link=False) as (source, loaded):
            loaded.objects = list(source.objects)
        for ob in loaded.objects:
            if ob is not None and ob.name not in scene.objects:
                scene.collection.objects.link(ob)
    elif suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    added = _new_objects(before)
    armatures = [ob for ob in added if ob.type == "ARMATURE"]
    if armature_name is not None:
        chosen = [ob for ob in armatures if ob.name == armature_name or ob.name.split(".")[0] == armature_name]
    else:
        chosen = armatures
    if len(chosen) != 1:
        names = ", ".join(sorted(ob.name for ob in armatures)) or "none"
        for ob in added:
            bpy.data.objects.remove(ob)   # the scene stays as it was
        if not armatures:
            raise UsageError(f"--target: {path.name} holds no armature (rig); export your character with its rig")
        if armature_name is not None:
            raise UsageError(f"--target: {path.name} has no armature named {armature_name!r} (it has: {names})")
        raise UsageError(f"--target: {path.name} holds several armatures ({names}); pick one with --armature NAME")
    armature = chosen[0]
    keep = {armature.name}
    parent = armature.parent
    while parent is not None:          # an FBX root empty carries the character's transform: keep it
        keep.add(parent.name)
        parent = parent.parent
    keep.update(ob.name for ob in added if _belongs_to(ob, armature))
    for ob in [ob for ob in added if ob.name not in keep]:
        bpy.data.objects.remove(ob)
    bpy.context.view_layer.update()    # appended objects get their matrix_world on the next evaluation
    return armature
