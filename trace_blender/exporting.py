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

from trace_format import atomic

from . import bvh_format, export_rig, fbx_export, gltf_format, smpl_motion
from . import frames as frames_module
from .build import keys
from .build.armature import JOINT_NAMES, PARENTS
from .build.tags import PROP_PERSON, PROP_REST_BETAS, PROP_TRACK_ID, bodies_of
from .errors import ExportError, OutputError, UsageError

EXPORT_FORMATS = ("unity", "unreal", "gltf", "bvh", "smpl", "amass")
FORMAT_LABELS = {"unity": "FBX for Unity", "unreal": "FBX for Unreal", "gltf": "glTF binary (.glb)", "bvh": "BVH",
                 "smpl": "SMPL motion (.smpl)", "amass": "AMASS motion (.npz)"}
EXTENSIONS = {"unity": ".fbx", "unreal": ".fbx", "gltf": ".glb", "bvh": ".bvh", "smpl": ".smpl", "amass": ".npz"}
ONE_PERSON_FORMATS = ("bvh", "smpl", "amass")  # files that hold one skeleton / body
PRESET_OF_FORMAT = {"unity": "unity", "unreal": "unreal", "gltf": "godot", "bvh": "bvh"}  # export_rig presets

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
        if len(armatures) > 1 and export_format in ONE_PERSON_FORMATS:
            raise UsageError(f"a {FORMAT_LABELS[export_format]} file holds one person: export one file per person")
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
    """Write the people's armatures (and their bodies) to one file or one file per person.

    TRACE people go through the engine presets (export_rig; own GLB writer, FBX through export rigs,
    Y-up BVH) over the scene's frame range, scene frame_start at t = 0. Any other armature (a
    retargeted character) goes through Blender's FBX / glTF exporters as it is.
    """
    plans = output_paths(path, armatures, export_format, per_person)
    written = []
    for target, group in plans:
        if not target.parent.is_dir():
            raise ExportError(f"the folder {target.parent} does not exist")
        people = [is_trace_person(armature) for armature in group]
        if all(people):
            _export_trace_people(context, group, target, export_format)
        elif any(people):
            raise UsageError("export TRACE people and other characters to separate files")
        elif export_format in ONE_PERSON_FORMATS:
            raise UsageError(f"{group[0].name} is not a TRACE person: {FORMAT_LABELS[export_format]} export "
                             "knows only the TRACE skeleton")
        else:
            _export_one(context, group, target, export_format)
        written.append(target)
    return written


def is_trace_person(armature: Any) -> bool:
    """An armature imported by TRACE (tagged, with every SMPL joint as a bone)."""
    return (getattr(armature, "type", None) == "ARMATURE" and PROP_TRACK_ID in armature.keys()
            and all(name in armature.data.bones for name in JOINT_NAMES))


def export_frames(scene: Any) -> np.ndarray:
    """The scene frames every export samples: frame_start .. frame_end (frame_start at t = 0)."""
    if scene.frame_end < scene.frame_start:
        raise ExportError(f"the scene's frame range {scene.frame_start}-{scene.frame_end} is empty")
    return np.arange(scene.frame_start, scene.frame_end + 1)


def scene_fps(scene: Any) -> float:
    return scene.render.fps / scene.render.fps_base


def _export_trace_people(context: Any, armatures: list[Any], target: Path, export_format: str) -> None:
    scene = context.scene
    frames = export_frames(scene)
    fps = scene_fps(scene)
    if export_format == "bvh":
        write_bvh(context, armatures[0], target)
        return
    if export_format in ("smpl", "amass"):
        parameters = smpl_parameters_of(context, armatures[0], frames, fps)
        writer = smpl_motion.write_smpl_file if export_format == "smpl" else smpl_motion.write_amass_npz
        writer(target, parameters)
        return
    preset = PRESET_OF_FORMAT[export_format]
    motions = [sample_motion(context, armature, frames) for armature in armatures]
    used: set[str] = set()
    for motion in motions:        # names every engine accepts, unique in the file
        name = export_rig.ascii_identifier(motion.name)
        while name in used:
            name += "_"
        used.add(name)
        motion.name = name
        if motion.body is not None:
            motion.body.name = f"{name}_body"
    prefixes = [m.name + "_" if len(motions) > 1 else "" for m in motions]
    skeletons = [export_rig.engine_skeleton(m, preset, prefix=p) for m, p in zip(motions, prefixes)]
    take = export_rig.ascii_identifier(target.stem)
    if export_format == "gltf":
        gltf_format.write_glb(target, skeletons, fps, take)
    else:
        fbx_export.write_fbx(context, skeletons, fps, target, preset, take)


# ------------------------------------------------------------------------------------- sampling
def _action_curves(armature: Any) -> dict[tuple[str, int], Any]:
    """(data_path, index) -> F-curve of the armature's assigned action (layered or legacy)."""
    return {(curve.data_path, curve.array_index): curve for curve in keys.action_fcurves(armature)}


def _needs_scene_evaluation(armature: Any) -> bool:
    """True when more than the action's F-curves move the bones (constraints, drivers, NLA, parents)."""
    animation_data = armature.animation_data
    if armature.parent is not None or any(bone.constraints for bone in armature.pose.bones):
        return True
    bone_drivers = [d for d in animation_data.drivers if d.data_path.startswith("pose.")] if animation_data else []
    if animation_data is not None and (bone_drivers or any(not track.mute for track in animation_data.nla_tracks)):
        return True
    return any(armature.pose.bones[name].rotation_mode != "QUATERNION" for name in JOINT_NAMES)


def _curve_values(curve: Any, frames: np.ndarray) -> np.ndarray:
    """A curve's values at the frames: np.interp for linear keys (what the importer writes), else evaluate."""
    count = len(curve.keyframe_points)
    modes = np.empty(count, np.int32)
    curve.keyframe_points.foreach_get("interpolation", modes)
    if count and not len(curve.modifiers) and np.all(modes == keys.INTERPOLATION_CODES["LINEAR"]):
        points = np.empty(2 * count, np.float32)
        curve.keyframe_points.foreach_get("co", points)
        return np.interp(frames, points[0::2], points[1::2])
    return np.array([curve.evaluate(float(frame)) for frame in frames])


def sample_motion(context: Any, armature: Any, frames: np.ndarray) -> export_rig.PersonMotion:
    """One TRACE person's motion in Blender world on `frames` (what the viewport shows), with its body."""
    bones = armature.data.bones
    rest = np.array([np.array(bones[name].matrix_local) for name in JOINT_NAMES])        # [24, 4, 4]
    name = str(armature.get(PROP_PERSON, armature.name))
    if _needs_scene_evaluation(armature):
        rotations, heads = sample_world_rotations(context, armature, list(frames))
        world = np.array(armature.matrix_world)
        rest_heads = rest[:, :3, 3] @ world[:3, :3].T + world[:3, 3]
    else:
        curves = _action_curves(armature)
        count = len(frames)
        locations = np.empty((count, len(JOINT_NAMES), 3))
        quaternions = np.empty((count, len(JOINT_NAMES), 4))
        for joint, bone in enumerate(JOINT_NAMES):
            pose_bone = armature.pose.bones[bone]
            for channel, out, current in (("location", locations, pose_bone.location),
                                          ("rotation_quaternion", quaternions, pose_bone.rotation_quaternion)):
                for axis in range(out.shape[-1]):
                    curve = curves.get((f'pose.bones["{bone}"].{channel}', axis))
                    out[:, joint, axis] = current[axis] if curve is None else _curve_values(curve, frames)
        rest_heads, rotations, heads = export_rig.pose_from_basis(rest, PARENTS, locations, quaternions,
                                                                  np.array(armature.matrix_world))
    return export_rig.PersonMotion(name, rest_heads, rotations, heads, _body_mesh(armature))


def smpl_parameters_of(context: Any, armature: Any, frames: np.ndarray, fps: float) -> smpl_motion.SmplParameters:
    """A TRACE person's SMPL parameters in Blender's world (see smpl_motion)."""
    world = np.array(armature.matrix_world)
    scale = np.cbrt(np.linalg.det(world[:3, :3]))
    if abs(scale - 1.0) > 1e-6:
        raise ExportError(f"{armature.name} is scaled ({scale:.3g}): SMPL motion files hold real-size bodies; "
                          "apply or reset the armature's scale first")
    if PROP_REST_BETAS not in armature.keys():
        raise ExportError(f"{armature.name} has no body shape ({PROP_REST_BETAS}): re-import the result")
    motion = sample_motion(context, armature, frames)
    bones = armature.data.bones
    rest_local = np.array([np.array(bones[name].head_local) for name in JOINT_NAMES])
    rest_canonical = rest_local @ frames_module.CANONICAL_TO_BLENDER_REST     # C^T applied to rows
    canonical_to_world = world[:3, :3] @ frames_module.CANONICAL_TO_BLENDER_REST
    return smpl_motion.smpl_parameters(motion, rest_canonical, canonical_to_world,
                                       np.array(armature[PROP_REST_BETAS], np.float64), fps)


def _body_mesh(armature: Any) -> export_rig.BodyMesh | None:
    """The person's body meshes (merged) at rest in Blender world, weights per SMPL joint."""
    parts = []
    for body in bodies_of(armature):
        mesh = body.data
        count = len(mesh.vertices)
        coordinates = np.empty(3 * count, np.float32)
        mesh.vertices.foreach_get("co", coordinates)
        world = np.array(body.matrix_world)
        vertices = coordinates.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]
        mesh.calc_loop_triangles()
        triangles = np.empty(3 * len(mesh.loop_triangles), np.int32)
        mesh.loop_triangles.foreach_get("vertices", triangles)
        column_of = {group.index: JOINT_NAMES.index(group.name) for group in body.vertex_groups
                     if group.name in JOINT_NAMES}
        weights = np.zeros((count, len(JOINT_NAMES)))
        for vertex in mesh.vertices:
            for element in vertex.groups:
                column = column_of.get(element.group)
                if column is not None:
                    weights[vertex.index, column] = element.weight
        parts.append((vertices, triangles.reshape(-1, 3), weights, body.name))
    if not parts:
        return None
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    return export_rig.BodyMesh(np.concatenate([p[0] for p in parts]),
                               np.concatenate([p[1] + o for p, o in zip(parts, offsets)]),
                               np.concatenate([p[2] for p in parts]), parts[0][3])


def _export_one(context: Any, armatures: list[Any], target: Path, export_format: str) -> None:
    """Any other armature (a retargeted character) through Blender's own FBX / glTF exporter."""
    objects = list(armatures) + [body for armature in armatures for body in bodies_of(armature)]
    with atomic.atomic_path(target, suffix=f".tmp{target.suffix}") as temporary:
        with _exclusive_selection(context, objects, armatures[0]):
            if export_format in FBX_PRESETS:
                settings = dict(FBX_COMMON, **FBX_PRESETS[export_format])
                with _unreal_armature_name(armatures[0] if export_format == "unreal" else None):
                    _run_operator(bpy.ops.export_scene.fbx, filepath=str(temporary), **settings)
            else:
                _run_operator(bpy.ops.export_scene.gltf, filepath=str(temporary), **GLTF_SETTINGS)
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
    # A person hidden outside its own frames (driven visibility) is not evaluated there: shown for this.
    visibility = [(curve, curve.mute) for curve in keys.visibility_drivers(armature)]
    hidden = armature.hide_viewport
    try:
        for curve, _ in visibility:
            curve.mute = True
        armature.hide_viewport = False
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
        armature.hide_viewport = hidden
        for curve, muted in visibility:
            curve.mute = muted
        scene.frame_set(current)
    return rotations, heads


def write_bvh(context: Any, armature: Any, path: str | os.PathLike) -> Path:
    """One person's animation over the scene frame range as a Y-up BVH (see bvh_format)."""
    scene = context.scene
    motion = sample_motion(context, armature, export_frames(scene))
    rotations, heads = motion.world_rotations, motion.heads
    world = np.array(armature.matrix_world)
    bones = armature.data.bones
    rest_heads = np.array([(world @ np.append(np.array(bones[n].head_local), 1.0))[:3] for n in JOINT_NAMES])
    rest_tails = np.array([(world @ np.append(np.array(bones[n].tail_local), 1.0))[:3] for n in JOINT_NAMES])
    offsets, end_offsets, root_positions, local = bvh_format.skeleton_motion_to_bvh_frame(
        rest_heads, rest_tails, PARENTS, rotations, heads[:, 0])
    frame_time = 1.0 / scene_fps(scene)
    text = bvh_format.format_bvh(JOINT_NAMES, PARENTS, offsets, end_offsets, root_positions, local, frame_time)
    return bvh_format.write_text_atomic(path, text)
