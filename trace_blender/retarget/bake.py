"""Blender side of the retarget: read two armatures into `solve.Rig`, bake the solved motion into a
new action on the target with bulk keys. Thin on purpose: all the math is in `solve`.

The source motion is read from the source armature's action (its F-curves evaluated at every
scene frame between its first and last key), so constraints and NLA strips on the source are not
part of it; a TRACE import has neither. The target's existing action is never changed: the bake
goes into a new action, and the previous one gets a fake user so it is kept when the file is saved.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import bpy
import numpy as np
from trace_format import rotations as rotation_math

from ..build.keys import action_fcurves, assign_action, fill_curve
from ..build.rollback import unique_name
from ..build.tags import PROP_TRACK_ID
from ..errors import RetargetError
from . import bone_maps, solve

# Custom properties on the baked action and the target object (what a bake came from).
PROP_RETARGET_SOURCE = "trace_retarget_source"
PROP_RETARGET_MAP = "trace_retarget_map"
ROTATION_PATHS = {"QUATERNION": ("rotation_quaternion", 4), "AXIS_ANGLE": ("rotation_axis_angle", 4)}


@dataclass
class BakeReport:
    """What a bake did, for the operator's and the CLI's report."""

    target: str
    action: str
    frames: tuple[int, int]
    keyed_bones: int
    scale: float
    previous_action: str | None = None
    warnings: list[str] = field(default_factory=list)


def _matrices(collection: Any, attribute: str, count: int) -> np.ndarray:
    values = np.empty(count * 16, np.float32)
    collection.foreach_get(attribute, values)
    # foreach_get flattens Blender matrices column by column.
    return values.reshape(count, 4, 4).transpose(0, 2, 1).astype(np.float64)


def rig_from_armature(armature: Any) -> solve.Rig:
    """An armature object as the math sees it (rest matrices, tails, parents, object matrix, modes)."""
    if armature is None or armature.type != "ARMATURE":
        raise RetargetError(f"'{getattr(armature, 'name', armature)}' is not an armature: pick an armature object")
    bones = armature.data.bones
    count = len(bones)
    if count == 0:
        raise RetargetError(f"the armature '{armature.name}' has no bones")
    names = tuple(bone.name for bone in bones)
    index = {name: i for i, name in enumerate(names)}
    parents = tuple(index[bone.parent.name] if bone.parent else -1 for bone in bones)
    tails = np.empty(count * 3, np.float32)
    bones.foreach_get("tail_local", tails)
    pose_bones = armature.pose.bones
    modes = tuple(pose_bones[name].rotation_mode for name in names)
    return solve.Rig(names=names, parents=parents, rest=_matrices(bones, "matrix_local", count),
                     tails=tails.reshape(count, 3), object_matrix=np.array(armature.matrix_world, np.float64),
                     connected=tuple(bool(bone.use_connect) for bone in bones), rotation_modes=modes,
                     name=armature.name)


def keyed_frame_range(id_object: Any) -> tuple[int, int]:
    """(first, last) whole scene frames covered by the object's pose-bone keys."""
    first, last = np.inf, -np.inf
    for curve in action_fcurves(id_object):
        if curve.data_path.startswith("pose.bones[") and len(curve.keyframe_points):
            start, end = curve.range()
            first, last = min(first, start), max(last, end)
    if not np.isfinite(first):
        raise RetargetError(f"'{id_object.name}' has no animation to retarget: import a TRACE result first")
    return int(np.ceil(first - 1e-4)), int(np.floor(last + 1e-4))


def source_pose(armature: Any, rig: solve.Rig, frames: np.ndarray) -> np.ndarray:
    """Armature-space pose matrices [T, J, 4, 4] of the armature's action at the given scene frames."""
    curves = {(curve.data_path, curve.array_index): curve for curve in action_fcurves(armature)}
    count = len(rig.names)
    rotations = np.empty((frames.shape[0], count, 3, 3))
    locations = np.empty((frames.shape[0], count, 3))
    for bone_index, name in enumerate(rig.names):
        pose_bone = armature.pose.bones[name]
        prefix = f'pose.bones["{bpy.utils.escape_identifier(name)}"].'

        def channel(path: str, size: int, current: Any) -> np.ndarray:
            values = np.empty((frames.shape[0], size))
            for component in range(size):
                curve = curves.get((prefix + path, component))
                values[:, component] = (current[component] if curve is None
                                        else [curve.evaluate(float(frame)) for frame in frames])
            return values

        mode = pose_bone.rotation_mode
        if mode == "QUATERNION":
            quaternion = channel("rotation_quaternion", 4, pose_bone.rotation_quaternion)
            quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
            rotations[:, bone_index] = rotation_math.quaternion_to_matrix(quaternion)
        elif mode == "AXIS_ANGLE":
            angle_axis = channel("rotation_axis_angle", 4, pose_bone.rotation_axis_angle)
            axis = angle_axis[:, 1:] / np.maximum(np.linalg.norm(angle_axis[:, 1:], axis=-1, keepdims=True), 1e-12)
            rotations[:, bone_index] = rotation_math.axis_angle_to_matrix(axis * angle_axis[:, :1])
        else:
            rotations[:, bone_index] = solve.euler_to_matrix(channel("rotation_euler", 3, pose_bone.rotation_euler),
                                                             mode)
        locations[:, bone_index] = channel("location", 3, pose_bone.location)
    return solve.pose_from_basis(rig, solve.basis_from_channels(rotations, locations))


def person_joints(armature: Any) -> dict[str, str]:
    """{SMPL joint: bone} of an imported TRACE person (its bones carry the SMPL joint names)."""
    names = set(armature.data.bones.keys())
    return {joint: joint for joint in bone_maps.SMPL_JOINTS if joint in names}


def check_target(source: Any, target: Any) -> None:
    """Refuse targets a bake would silently break (checked before anything is created)."""
    if target is None or target.type != "ARMATURE":
        raise RetargetError("Retarget: pick a target armature (your character's rig) in the TRACE panel")
    if source is None or PROP_TRACK_ID not in source.keys():
        raise RetargetError("Retarget: pick an imported TRACE person as the source")
    if target == source:
        raise RetargetError("Retarget: the target is the TRACE person itself; pick your character's armature")
    if PROP_TRACK_ID in target.keys():
        raise RetargetError(f"Retarget: '{target.name}' is an imported TRACE person; pick your character's armature")
    if target.library is not None:
        raise RetargetError(f"Retarget: '{target.name}' is linked from {target.library.filepath} and cannot be "
                            "animated here; make it a library override first (Object › Library Override › Make)")
    if target.mode == "EDIT" or source.mode == "EDIT":
        raise RetargetError("Retarget: leave Edit Mode first (the bones being edited are not saved yet)")


def bake(source: Any, target: Any, bone_map: Mapping[str, str], *, floor_contact: bool = True,
         action_name: str | None = None) -> BakeReport:
    """Retarget the source person's action onto the target armature into a new action with bulk keys."""
    check_target(source, target)
    source_rig, target_rig = rig_from_armature(source), rig_from_armature(target)
    plan = solve.plan_retarget(source_rig, person_joints(source), target_rig, dict(bone_map))
    first, last = keyed_frame_range(source)
    frames = np.arange(first, last + 1)
    motion = solve.retarget_motion(plan, source_pose(source, source_rig, frames), floor_contact=floor_contact)
    channels = solve.bone_channels(plan, motion)

    previous = target.animation_data.action if target.animation_data is not None else None
    if previous is not None:
        previous.use_fake_user = True   # never lost, whatever the new assignment does to its users
    action = bpy.data.actions.new(unique_name(bpy.data.actions, action_name or f"{target.name}_{source.name}"))
    try:
        new_curve = assign_action(target, action)
        key_frames = frames.astype(np.float32)
        for bone in channels:
            escaped = bpy.utils.escape_identifier(bone.name)
            path, _ = ROTATION_PATHS.get(bone.rotation_mode, ("rotation_euler", 3))
            for component in range(bone.rotation.shape[1]):
                fill_curve(new_curve(f'pose.bones["{escaped}"].{path}', component, bone.name), key_frames,
                           bone.rotation[:, component])
            if bone.location is not None:
                for axis in range(3):
                    fill_curve(new_curve(f'pose.bones["{escaped}"].location', axis, bone.name), key_frames,
                               bone.location[:, axis])
    except Exception:
        if target.animation_data is not None:
            target.animation_data.action = previous
        bpy.data.actions.remove(action)
        raise
    action[PROP_RETARGET_SOURCE] = source.name
    action[PROP_RETARGET_MAP] = json.dumps(bone_maps.preset_payload(bone_map))
    target[PROP_RETARGET_SOURCE] = source.name
    return BakeReport(target.name, action.name, (first, last), len(channels), plan.scale,
                      previous.name if previous is not None else None, list(plan.warnings))
