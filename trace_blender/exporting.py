"""Export imported people as FBX (Unity / Unreal presets), glTF binary (.glb) or BVH.

Every file is written to a temporary name in the target folder and moved into place when complete
(os.replace), so a failed export never leaves a half-written file under the requested name. The
scene's selection, active object and names are restored afterwards.
"""
from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import bpy
import numpy as np

from . import bvh_format
from trace_format import atomic

from .build import keys
from .build.armature import JOINT_NAMES, PARENTS
from .build.tags import PROP_PERSON, bodies_of
from .errors import ExportError, OutputError, UsageError

EXPORT_FORMATS = ("unity", "unreal", "gltf", "bvh")
FORMAT_LABELS = {"unity": "FBX for Unity", "unreal": "FBX for Unreal", "gltf": "glTF binary (.glb)", "bvh": "BVH"}
EXTENSIONS = {"unity": ".fbx", "unreal": ".fbx", "gltf": ".glb", "bvh": ".bvh"}

# Settings shared by both FBX presets (see docs/blender.md for why each one is set).
FBX_COMMON: dict[str, Any] = dict(
    check_existing=False, use_selection=True, object_types={"ARMATURE", "MESH"},
    global_scale=1.0, apply_unit_scale=True, bake_space_transform=False,
    use_mesh_modifiers=False, mesh_smooth_type="FACE", use_custom_props=False,
    add_leaf_bones=False, use_armature_deform_only=True, armature_nodetype="NULL",
    primary_bone_axis="Y", secondary_bone_axis="X",
    bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
    bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
    bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
)
FBX_PRESETS: dict[str, dict[str, Any]] = {
    # Unity: Y up, -Z forward, unit scale written so 1 Blender metre = 1 Unity unit.
    "unity": dict(axis_forward="-Z", axis_up="Y", apply_scale_options="FBX_SCALE_UNITS"),
    # Unreal (the send2ue defaults): Z up, Y forward, no scale baking; the armature object must be
    # named "Armature" or Unreal adds it to the skeleton as an extra root bone.
    "unreal": dict(axis_forward="Y", axis_up="Z", apply_scale_options="FBX_SCALE_NONE"),
}
GLTF_SETTINGS: dict[str, Any] = dict(
    export_format="GLB", use_selection=True, export_yup=True, export_apply=False,
    export_animations=True, export_animation_mode="ACTIVE_ACTIONS", export_frame_range=True,
    export_force_sampling=True, export_frame_step=1, export_optimize_animation_size=False,
    export_anim_slide_to_zero=False, export_def_bones=True, export_skins=True,
    export_rest_position_armature=True, export_leaf_bone=False, export_bake_animation=False,
)
UNREAL_ARMATURE_NAME = "Armature"


def output_paths(path: str | os.PathLike, armatures: Sequence[Any], export_format: str, per_person: bool
                 ) -> list[tuple[Path, list[Any]]]:
    """[(file, armatures in it)]: one file, or `<stem>_<person><ext>` per person beside `path`."""
    if export_format not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if not armatures:
        raise UsageError("no people to export: import a TRACE result first (or select imported people)")
    target = Path(path)
    extension = EXTENSIONS[export_format]
    if target.suffix.lower() != extension:
        target = target.with_suffix(extension) if target.suffix else target.with_name(target.name + extension)
    if not per_person:
        if len(armatures) > 1 and export_format == "bvh":
            raise UsageError("a BVH file holds one skeleton: export one file per person")
        if len(armatures) > 1 and export_format == "unreal":
            raise UsageError("Unreal imports one skeleton per FBX file: export one file per person")
        return [(target, list(armatures))]
    plans = []
    used: set[str] = set()
    for armature in armatures:
        person = str(armature.get(PROP_PERSON, armature.name))
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in person)
        name = f"{target.stem}_{safe}"
        while name in used:
            name += "_"
        used.add(name)
        plans.append((target.with_name(name + extension), [armature]))
    return plans


def export_people(context: Any, armatures: Sequence[Any], path: str | os.PathLike, export_format: str,
                  per_person: bool = False) -> list[Path]:
    """Write the people's armatures (and their bodies) to one file or one file per person."""
    plans = output_paths(path, armatures, export_format, per_person)
    written = []
    for target, group in plans:
        if not target.parent.is_dir():
            raise ExportError(f"the folder {target.parent} does not exist")
        _export_one(context, group, target, export_format)
        written.append(target)
    return written


def _export_one(context: Any, armatures: list[Any], target: Path, export_format: str) -> None:
    objects = list(armatures) + [body for armature in armatures for body in bodies_of(armature)]
    with atomic.atomic_path(target, suffix=f".tmp{target.suffix}") as temporary:
        with _exclusive_selection(context, objects, armatures[0]):
            if export_format in FBX_PRESETS:
                settings = dict(FBX_COMMON, **FBX_PRESETS[export_format])
                with _unreal_armature_name(armatures[0] if export_format == "unreal" else None):
                    _run_operator(bpy.ops.export_scene.fbx, filepath=str(temporary), **settings)
            elif export_format == "gltf":
                _run_operator(bpy.ops.export_scene.gltf, filepath=str(temporary), **GLTF_SETTINGS)
            else:
                write_bvh(context, armatures[0], temporary)
        if not temporary.is_file():
            raise ExportError(f"the {FORMAT_LABELS[export_format]} exporter wrote no file for {target.name}")


def _run_operator(operator: Any, **settings: Any) -> None:
    try:
        outcome = operator(**settings)
    except RuntimeError as exc:  # Blender reports operator errors as RuntimeError (with a whole traceback)
        raise operator_failure(exc, Path(settings.get("filepath", ".")).parent) from exc
    if "FINISHED" not in outcome:
        raise ExportError(f"export failed: the exporter returned {sorted(outcome)}")


def operator_failure(error: RuntimeError, folder: Path) -> ExportError:
    """One line from a failed exporter's RuntimeError: a file-system error (its `[Errno N]`) says which
    folder and why (OutputError, exit 7); anything else the last line of Blender's report."""
    text = str(error)
    found = re.search(r"\[Errno (\d+)\]", text)
    if found:
        return OutputError(atomic.folder_problem(OSError(int(found.group(1)), os.strerror(int(found.group(1)))), folder))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ExportError(f"export failed: {lines[-1] if lines else 'the exporter reported an error'}")


@contextmanager
def _exclusive_selection(context: Any, objects: list[Any], active: Any) -> Iterator[None]:
    """Select exactly `objects` (visible), make `active` active; restore everything afterwards."""
    view_layer = context.view_layer
    if context.mode != "OBJECT" and context.object is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
    previous_selection = [ob for ob in view_layer.objects if ob.select_get()]
    previous_active = view_layer.objects.active
    previous_hidden = [(ob, ob.hide_get(), ob.hide_viewport) for ob in objects]
    # Driven visibility (people shown only during their frames) would disable objects while the exporter
    # steps through the frames: muted for the export, so every frame of every person is written.
    visibility = [(curve, curve.mute) for ob in objects for curve in keys.visibility_drivers(ob)]
    try:
        for curve, _ in visibility:
            curve.mute = True
        for ob in previous_selection:
            ob.select_set(False)
        for ob in objects:
            ob.hide_viewport = False
            ob.hide_set(False)
            ob.select_set(True)
        view_layer.objects.active = active
        yield
    finally:
        for ob in view_layer.objects:
            ob.select_set(False)
        for ob, hidden, hidden_viewport in previous_hidden:
            ob.hide_set(hidden)
            ob.hide_viewport = hidden_viewport
        for ob in previous_selection:
            ob.select_set(True)
        view_layer.objects.active = previous_active
        for curve, muted in visibility:   # last: the selection is restored while everything is shown
            curve.mute = muted


@contextmanager
def _unreal_armature_name(armature: Any | None) -> Iterator[None]:
    """Temporarily call the armature object 'Armature' (Unreal then drops it instead of adding a root bone)."""
    if armature is None or armature.name == UNREAL_ARMATURE_NAME:
        yield
        return
    original = armature.name
    holder = bpy.data.objects.get(UNREAL_ARMATURE_NAME)
    holder_name = None
    if holder is not None:
        holder_name = holder.name
        holder.name = f"{UNREAL_ARMATURE_NAME}_{uuid.uuid4().hex[:8]}"
    armature.name = UNREAL_ARMATURE_NAME
    try:
        yield
    finally:
        armature.name = original
        if holder is not None:
            holder.name = holder_name


def sample_world_rotations(context: Any, armature: Any, frames: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Evaluated pose per scene frame: world-aligned rotations [T, 24, 3, 3] and bone heads [T, 24, 3]."""
    scene = context.scene
    current = scene.frame_current
    bones = armature.data.bones
    rest_rotations = np.array([np.array(bones[n].matrix_local)[:3, :3] for n in JOINT_NAMES])  # [24, 3, 3]
    rotations = np.empty((len(frames), len(JOINT_NAMES), 3, 3))
    heads = np.empty((len(frames), len(JOINT_NAMES), 3))
    try:
        for index, frame in enumerate(frames):
            scene.frame_set(int(frame))
            evaluated = armature.evaluated_get(context.evaluated_depsgraph_get())
            world = np.array(evaluated.matrix_world)
            pose = np.array([np.array(evaluated.pose.bones[n].matrix) for n in JOINT_NAMES])  # [24, 4, 4]
            posed_world = world[None] @ pose
            # Rotation acting on world-space rest vectors: M P B^T M^T (M: the object's rotation, identity
            # for our imports; uniform scale divided out).
            object_rotation = world[:3, :3] / np.cbrt(np.linalg.det(world[:3, :3]))
            rotations[index] = object_rotation @ pose[:, :3, :3] @ np.swapaxes(rest_rotations, -1, -2) @ object_rotation.T
            heads[index] = posed_world[:, :3, 3]
    finally:
        scene.frame_set(current)
    return rotations, heads


def write_bvh(context: Any, armature: Any, path: str | os.PathLike) -> Path:
    """One person's animation over the scene frame range as a Y-up BVH (see bvh_format)."""
    scene = context.scene
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    rotations, heads = sample_world_rotations(context, armature, frames)
    world = np.array(armature.matrix_world)
    bones = armature.data.bones
    rest_heads = np.array([(world @ np.append(np.array(bones[n].head_local), 1.0))[:3] for n in JOINT_NAMES])
    rest_tails = np.array([(world @ np.append(np.array(bones[n].tail_local), 1.0))[:3] for n in JOINT_NAMES])
    offsets, end_offsets, root_positions, local = bvh_format.skeleton_motion_to_bvh_frame(
        rest_heads, rest_tails, PARENTS, rotations, heads[:, 0])
    frame_time = scene.render.fps_base / scene.render.fps
    text = bvh_format.format_bvh(JOINT_NAMES, PARENTS, offsets, end_offsets, root_positions, local, frame_time)
    return bvh_format.write_text_atomic(path, text)
