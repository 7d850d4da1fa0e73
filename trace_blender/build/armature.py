"""One person: a collection with an armature in the Blender rest frame, keyed from its PersonPlan."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from trace_format.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS, bone_tails

from .. import frames
from ..plan import PersonPlan
from . import keys, tags
from .rollback import CreatedDatablocks, unique_name

JOINT_NAMES: tuple[str, ...] = tuple(SMPL_JOINT_NAMES)
PARENTS: tuple[int, ...] = tuple(SMPL_PARENTS)
CONTACT_GROUP = "Foot contacts"


@dataclass(frozen=True)
class PersonColour:
    """How one person is told apart: viewport colour, collection colour tag, bone colour palette."""

    rgba: tuple[float, float, float, float]
    collection_tag: str
    bone_palette: str


# One colour per person, cycling.
PERSON_COLOURS: tuple[PersonColour, ...] = (
    PersonColour((0.90, 0.30, 0.25, 1.0), "COLOR_01", "THEME01"),
    PersonColour((0.95, 0.60, 0.15, 1.0), "COLOR_02", "THEME09"),
    PersonColour((0.90, 0.85, 0.20, 1.0), "COLOR_03", "THEME13"),
    PersonColour((0.30, 0.75, 0.35, 1.0), "COLOR_04", "THEME03"),
    PersonColour((0.25, 0.50, 0.90, 1.0), "COLOR_05", "THEME04"),
    PersonColour((0.65, 0.35, 0.85, 1.0), "COLOR_06", "THEME06"),
    PersonColour((0.70, 0.45, 0.30, 1.0), "COLOR_07", "THEME08"),
    PersonColour((0.55, 0.55, 0.60, 1.0), "COLOR_08", "THEME10"),
)


@dataclass
class ImportedPerson:
    track_id: int
    name: str
    armature: Any                       # bpy.types.Object (ARMATURE)
    body: Any | None                    # bpy.types.Object (MESH) or None
    collection: Any                     # bpy.types.Collection
    first_frame: int                    # scene frames with keys
    last_frame: int
    shot: int = 0


def build_person(context: Any, person: PersonPlan, parent_collection: Any, colour: PersonColour,
                 frame_start: int, source_name: str, created: CreatedDatablocks,
                 source_path: str | None) -> tuple[Any, Any, str]:
    """(armature object, collection, base name) of one person, keyed; the body is added by the caller."""
    (built,) = build_people(context, [(person, parent_collection, colour)], frame_start, source_name, created,
                            source_path)
    return built


def build_people(context: Any, people: list[tuple[PersonPlan, Any, PersonColour]], frame_start: int,
                 source_name: str, created: CreatedDatablocks, source_path: str | None) -> list[tuple[Any, Any, str]]:
    """[(armature object, collection, base name)] for (person, parent collection, colour), keyed.

    The bones of all people are made in one Edit Mode session (multi-object editing): Blender has no
    other way to add bones, and one session means one mode switch per import in the Info editor, not two
    per person."""
    made = []
    for person, parent_collection, colour in people:
        base = f"{source_name}_person{person.track_id}"
        collection = created.add("collections", bpy.data.collections.new(unique_name(bpy.data.collections, base)))
        collection.color_tag = colour.collection_tag
        parent_collection.children.link(collection)
        armature_name = unique_name(bpy.data.objects, base)
        armature_data = created.add("armatures",
                                    bpy.data.armatures.new(unique_name(bpy.data.armatures, armature_name)))
        armature = created.add("objects", bpy.data.objects.new(armature_name, armature_data))
        collection.objects.link(armature)
        armature.color = colour.rgba
        armature.show_in_front = True
        armature[tags.PROP_TRACK_ID] = person.track_id
        armature[tags.PROP_PERSON] = base
        armature[tags.PROP_ROLE] = "armature"
        armature[tags.PROP_SHOT] = person.shot
        if source_path:
            armature[tags.PROP_RESULT] = str(source_path)
        armature[tags.PROP_REST_BETAS] = [float(b) for b in person.rest_betas]
        made.append((armature, collection, base))
    rests = build_bones_of(context, [(armature, person.rest_joints, colour.bone_palette)
                                     for (armature, _, _), (person, _, colour) in zip(made, people)])
    for (armature, _, _), (person, _, _), bone_rest in zip(made, people, rests):
        animation = frames.armature_animation(person.rest_joints, person.poses_world, person.hip_center_world,
                                              bone_rest, person.transform, PARENTS)
        scene_frames = (person.video_frames + frame_start).astype(np.float64)
        key_armature(armature, animation.quaternions, animation.root_location, scene_frames, created,
                     contacts=person.contacts, action_name=f"{armature.name}_shot{person.shot}_motion")
        keys.hide_outside(armature, scene_frames[0], scene_frames[-1])   # only during its own frames
    return made


def build_bones(context: Any, armature: Any, rest_joints: np.ndarray, bone_palette: str) -> np.ndarray:
    """Edit-mode bones at the rest joints (Blender rest frame); returns their rest rotations [24, 3, 3]."""
    return build_bones_of(context, [(armature, rest_joints, bone_palette)])[0]


def build_bones_of(context: Any, armatures: list[tuple[Any, np.ndarray, str]]) -> list[np.ndarray]:
    """Bones for several (armature object, rest joints [24, 3], palette) in one Edit Mode session;
    returns each armature's rest rotations [24, 3, 3]."""
    if not armatures:
        return []
    view_layer = context.view_layer
    for item in view_layer.objects.selected:
        item.select_set(False)
    for armature, _, _ in armatures:
        armature.select_set(True)
    view_layer.objects.active = armatures[0][0]
    bpy.ops.object.mode_set(mode="EDIT")     # every selected armature enters Edit Mode together
    try:
        for armature, rest_joints, _ in armatures:
            heads = frames.canonical_to_blender_rest(rest_joints)
            tails = frames.canonical_to_blender_rest(bone_tails(rest_joints, PARENTS))
            edit_bones = armature.data.edit_bones
            made = []
            for index, name in enumerate(JOINT_NAMES):
                bone = edit_bones.new(name)
                bone.head = heads[index].tolist()
                bone.tail = tails[index].tolist()
                bone.roll = 0.0
                bone.use_deform = True
                bone.use_connect = False
                made.append(bone)
            for index, parent in enumerate(PARENTS):
                if parent >= 0:
                    made[index].parent = made[parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    rests = []
    for armature, _, bone_palette in armatures:
        bones = armature.data.bones
        for name in JOINT_NAMES:
            bones[name].color.palette = bone_palette
            armature.pose.bones[name].rotation_mode = "QUATERNION"
        rests.append(np.array([np.array(bones[name].matrix_local)[:3, :3] for name in JOINT_NAMES]))
    return rests


def key_armature(armature: Any, quaternions: np.ndarray, root_location: np.ndarray, scene_frames: np.ndarray,
                 created: CreatedDatablocks | None = None, contacts: np.ndarray | None = None,
                 action_name: str | None = None, action: Any = None) -> Any:
    """Key rotations [T, 24, 4] (w, x, y, z) on every bone and root_location [T, 3] on the pelvis, in bulk.

    One action for this armature (a slot of a layered action on 4.4+); each F-curve gets all its keys
    at once, linear interpolation. contacts [T, 2] (0/1, left/right foot) become the animated custom
    properties trace_contact_left / trace_contact_right of the armature object (constant interpolation).
    action: an existing (empty) action to fill instead of a new one.
    """
    new_curve = keys.new_action(armature, action_name or f"{armature.name}_motion", created, action)
    scene_frames = np.asarray(scene_frames, np.float32)  # [T]
    root_name = JOINT_NAMES[0]
    for axis in range(3):
        keys.fill_curve(new_curve(f'pose.bones["{root_name}"].location', axis, root_name), scene_frames,
                        root_location[:, axis])
    for joint, name in enumerate(JOINT_NAMES):
        for component in range(4):
            keys.fill_curve(new_curve(f'pose.bones["{name}"].rotation_quaternion', component, name), scene_frames,
                            quaternions[:, joint, component])
    if contacts is not None:
        for side, prop in enumerate((tags.PROP_CONTACT_LEFT, tags.PROP_CONTACT_RIGHT)):
            foot = "left" if side == 0 else "right"
            keys.add_flag_property(armature, prop, f"1 where the {foot} foot touches the floor (TRACE foot contacts)")
            keys.fill_curve(new_curve(f'["{prop}"]', 0, CONTACT_GROUP), scene_frames, contacts[:, side], "CONSTANT")
    return armature.animation_data.action
