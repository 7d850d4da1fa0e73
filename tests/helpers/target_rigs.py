"""Target rigs for the retarget tests, built from a description (no downloaded characters).

A `RigSpec` lists bones (name, parent, head, tail, roll, connected) in armature space plus the
object's world matrix. Builders make Mixamo-like, UE-like, Rigify-metarig-like and VRM-like
humanoids from this project's default skeleton with other proportions, an A-pose, extra bones
(spine, twist, fingers, end bones, a UE root at the floor), other bone axes (tails that do not
point at the child, random rolls), other facing, a Y-up content under a rotated object, and
centimetre units. `spec_to_rig` gives the numpy `Rig` (bone matrices as Blender computes them from
head, tail and roll); `build_armature` creates the armature in Blender.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trace_blender import frames
from trace_format import rotations, skeleton
from trace_blender.retarget.solve import Rig

SMPL = skeleton.SMPL_JOINT_NAMES
SMPL_PARENT = dict(zip(SMPL, [SMPL[p] if p >= 0 else None for p in skeleton.SMPL_PARENTS]))

MIXAMO_NAMES = {
    "pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head",
    **{f"{s}_{p}": f"{S}{n}" for s, S in (("left", "Left"), ("right", "Right")) for p, n in (
        ("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"), ("foot", "ToeBase"), ("collar", "Shoulder"),
        ("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"))},
}
UE_NAMES = {
    "pelvis": "pelvis", "spine1": "spine_01", "spine2": "spine_03", "spine3": "spine_05", "neck": "neck_01",
    "head": "head",
    **{f"{s}_{p}": f"{n}_{s[0]}" for s in ("left", "right") for p, n in (
        ("hip", "thigh"), ("knee", "calf"), ("ankle", "foot"), ("foot", "ball"), ("collar", "clavicle"),
        ("shoulder", "upperarm"), ("elbow", "lowerarm"), ("wrist", "hand"))},
}
RIGIFY_NAMES = {
    "pelvis": "spine", "spine1": "spine.001", "spine2": "spine.002", "spine3": "spine.003", "neck": "spine.004",
    "head": "spine.006",
    **{f"{s}_{p}": f"{n}.{s[0].upper()}" for s in ("left", "right") for p, n in (
        ("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"), ("foot", "toe"), ("collar", "shoulder"),
        ("shoulder", "upper_arm"), ("elbow", "forearm"), ("wrist", "hand"))},
}
VRM_NAMES = {
    "pelvis": "J_Bip_C_Hips", "spine1": "J_Bip_C_Spine", "spine2": "J_Bip_C_Chest", "spine3": "J_Bip_C_UpperChest",
    "neck": "J_Bip_C_Neck", "head": "J_Bip_C_Head",
    **{f"{s}_{p}": f"J_Bip_{s[0].upper()}_{n}" for s in ("left", "right") for p, n in (
        ("hip", "UpperLeg"), ("knee", "LowerLeg"), ("ankle", "Foot"), ("foot", "ToeBase"), ("collar", "Shoulder"),
        ("shoulder", "UpperArm"), ("elbow", "LowerArm"), ("wrist", "Hand"))},
}


@dataclass
class BoneSpec:
    name: str
    parent: str | None
    head: np.ndarray
    tail: np.ndarray
    roll: float = 0.0
    connected: bool = False


@dataclass
class RigSpec:
    name: str
    bones: list[BoneSpec]
    object_matrix: np.ndarray = field(default_factory=lambda: np.eye(4))
    smpl_to_bone: dict[str, str] = field(default_factory=dict)   # the truth the maps should find


def humanoid_points(scale: float = 1.0, leg_scale: float = 1.0, shin_scale: float = 1.0, arm_scale: float = 1.0,
                    a_pose_deg: float = 0.0) -> dict[str, np.ndarray]:
    """SMPL joint positions (Blender frame: +Z up, facing -Y, soles on z = 0) of a varied humanoid."""
    base = frames.canonical_to_blender_rest(skeleton.load_default_skeleton())
    segment_scale = {name: scale for name in SMPL}
    for side in ("left", "right"):
        segment_scale[f"{side}_knee"] *= leg_scale
        segment_scale[f"{side}_ankle"] *= leg_scale * shin_scale
        for part in ("elbow", "wrist", "hand"):
            segment_scale[f"{side}_{part}"] *= arm_scale
    points = {"pelvis": base[0] * scale}
    for index, name in enumerate(SMPL[1:], start=1):
        parent = SMPL_PARENT[name]
        points[name] = points[parent] + (base[index] - base[SMPL.index(parent)]) * segment_scale[name]
    if a_pose_deg:
        for side, sign in (("left", 1.0), ("right", -1.0)):
            pivot = points[f"{side}_shoulder"]
            turn = _rotation_about_y(-sign * np.radians(a_pose_deg))
            for part in ("elbow", "wrist", "hand"):
                name = f"{side}_{part}"
                points[name] = pivot + turn @ (points[name] - pivot)
    # Stand on the floor: the toe joints keep the default skeleton's height above the soles.
    lift = base[SMPL.index("left_foot")][2] * scale - points["left_foot"][2]
    return {name: point + np.array([0.0, 0.0, lift]) for name, point in points.items()}


def _rotation_about_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_spec(name: str, names: dict[str, str], points: dict[str, np.ndarray], *, extras: str = "",
              yaw_deg: float = 0.0, y_up_centimetres: bool = False, random_axes: bool = False,
              connect_chains: bool = False, seed: int = 0) -> RigSpec:
    """A humanoid RigSpec with the given bone names.

    extras: letters for extra bones: 'r' a root bone at the floor above the pelvis (UE), 's' extra
    spine bones between the mapped ones (UE spine_02/04), 't' twist bones, 'f' fingers, 'e' end bones.
    yaw_deg: the rest pose faces -Y turned by this angle about Z. y_up_centimetres: the armature's
    content is Y-up in centimetres under an object rotated +90° about X with scale 0.01 (an FBX
    import). random_axes: tails in random directions (not at the children) and random rolls.
    """
    rng = np.random.default_rng(seed)
    turn = _rotation_about_z(np.radians(yaw_deg))
    heads = {joint: turn @ p for joint, p in points.items()}
    parent_of = {joint: SMPL_PARENT[joint] for joint in heads}
    bones: list[tuple[str, str | None, np.ndarray]] = []  # (bone, parent bone, head)
    bone_of = dict(names)
    if "s" in extras:  # UE: spine_01 -> spine_02 -> spine_03 -> spine_04 -> spine_05
        mids = {"spine2": "spine_02", "spine3": "spine_04"}
        for joint, mid in mids.items():
            parent = SMPL_PARENT[joint]
            heads[mid] = 0.5 * (heads[parent] + heads[joint])
            parent_of[mid] = parent
            parent_of[joint] = mid
            bone_of[mid] = mid
    for joint in list(heads):
        if joint in SMPL and joint not in names:
            continue  # not in this rig (e.g. hands)
        parent = parent_of.get(joint)
        while parent is not None and parent not in bone_of:
            parent = parent_of.get(parent)
        bones.append((bone_of[joint], bone_of[parent] if parent else None, heads[joint]))
    if "r" in extras:
        bones = [(b, p if p else "root", h) for b, p, h in bones]
        bones.insert(0, ("root", None, np.zeros(3)))
    children: dict[str, list[str]] = {}
    for bone, parent, _ in bones:
        children.setdefault(parent, []).append(bone)
    head_of = {bone: head for bone, _, head in bones}
    extra: list[tuple[str, str, np.ndarray, np.ndarray]] = []  # (bone, parent, head, tail)
    for side in ("left", "right"):
        tag = "l" if side == "left" else "r"
        upper, lower, hand = (names[f"{side}_shoulder"], names[f"{side}_elbow"], names[f"{side}_wrist"])
        if "t" in extras:
            extra.append((f"upperarm_twist_01_{tag}", upper, 0.5 * (head_of[upper] + head_of[lower]), head_of[lower]))
            extra.append((f"lowerarm_twist_01_{tag}", lower, 0.5 * (head_of[lower] + head_of[hand]), head_of[hand]))
        if "f" in extras:
            forearm = head_of[hand] - head_of[lower]
            base = head_of[hand] + 0.35 * forearm
            for finger, offset in (("index", 0.02), ("middle", 0.0), ("ring", -0.02)):
                knuckle = base + turn @ np.array([0.0, offset, 0.0])
                extra.append((f"{finger}_01_{tag}", hand, knuckle, knuckle + 0.25 * forearm))
    if "e" in extras:
        head_bone = names["head"]
        extra.append((f"{head_bone}Top_End", head_bone, head_of[head_bone] + np.array([0, 0, 0.18]),
                      head_of[head_bone] + np.array([0, 0, 0.2])))
    specs = []
    for bone, parent, head in bones:
        kids = [k for k in children.get(bone, []) if k in head_of]
        chain_child = _chain_child(bone, kids, names)
        if random_axes:
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            tail = head + 0.08 * direction
        elif chain_child is not None:
            tail = head_of[chain_child]
        elif parent is not None and np.linalg.norm(head - head_of[parent]) > 1e-6:
            tail = head + 0.5 * (head - head_of[parent])
        else:
            tail = head + np.array([0.0, 0.0, 0.1])
        roll = float(rng.uniform(-np.pi, np.pi)) if random_axes else 0.0
        specs.append(BoneSpec(bone, parent, head, tail, roll))
    for bone, parent, head, tail in extra:
        roll = float(rng.uniform(-np.pi, np.pi)) if random_axes else 0.0
        specs.append(BoneSpec(bone, parent, head, tail, roll))
    by_name = {b.name: b for b in specs}
    if connect_chains:
        for b in specs:
            if b.parent and np.linalg.norm(by_name[b.parent].tail - b.head) < 1e-9:
                b.connected = True
    object_matrix = np.eye(4)
    if y_up_centimetres:
        to_y_up = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # world (x, y, z) -> content (x, z, -y)
        for b in specs:
            b.head, b.tail = 100.0 * to_y_up @ b.head, 100.0 * to_y_up @ b.tail
        object_matrix[:3, :3] = 0.01 * to_y_up.T   # rotate +90° about X, scale 0.01
    return RigSpec(name, specs, object_matrix, {j: n for j, n in names.items()})


def _chain_child(bone: str, kids: list[str], names: dict[str, str]) -> str | None:
    """The child a bone points at: the next bone of its body chain (spine -> spine, not -> arm)."""
    if not kids:
        return None
    joint_of = {v: k for k, v in names.items()}
    joint = joint_of.get(bone)
    preferred = {"pelvis": "spine1", "spine3": "neck"}.get(joint or "")
    for kid in kids:
        if preferred and joint_of.get(kid) == preferred:
            return kid
    for kid in kids:  # spine_02 etc. (extras) continue the chain
        if kid not in joint_of or joint_of[kid] in ("spine2", "spine3", "neck"):
            if not kid.startswith(("upperarm_twist", "lowerarm_twist")) and "_01_" not in kid and "End" not in kid:
                return kid
    if len(kids) == 1 and not kids[0].endswith("End"):
        return kids[0]
    return next((k for k in kids if joint_of.get(k, "").endswith(("knee", "ankle", "foot", "elbow", "wrist",
                                                                     "shoulder", "head"))), None)


# ------------------------------------------------------------------------------------------------ families
def mixamo_like(**kwargs: Any) -> RigSpec:
    """Mixamo names, A-pose 40°, taller with longer legs, end bones and fingers, Y-up cm under a rotated object."""
    points = humanoid_points(scale=kwargs.pop("scale", 1.08), leg_scale=1.06, shin_scale=0.95, arm_scale=1.1,
                             a_pose_deg=kwargs.pop("a_pose_deg", 40.0))
    names = {j: f"mixamorig:{n}" for j, n in MIXAMO_NAMES.items()}
    return make_spec("MixamoLike", names, points, extras=kwargs.pop("extras", "fe"),
                     y_up_centimetres=kwargs.pop("y_up_centimetres", True), **kwargs)


def ue_like(**kwargs: Any) -> RigSpec:
    """UE5 mannequin names, root at the floor, five spine bones, twist bones, facing +Y, random bone axes."""
    points = humanoid_points(scale=kwargs.pop("scale", 0.95), leg_scale=0.97, shin_scale=1.08, arm_scale=0.95,
                             a_pose_deg=kwargs.pop("a_pose_deg", 20.0))
    return make_spec("UELike", dict(UE_NAMES), points, extras=kwargs.pop("extras", "rstf"),
                     yaw_deg=kwargs.pop("yaw_deg", 180.0), random_axes=kwargs.pop("random_axes", True), **kwargs)


def rigify_metarig_like(**kwargs: Any) -> RigSpec:
    """Rigify metarig names (spine, spine.001, thigh.L ...), connected chains, T-pose, shorter."""
    points = humanoid_points(scale=kwargs.pop("scale", 0.9), leg_scale=1.0, shin_scale=1.0, arm_scale=1.0,
                             a_pose_deg=kwargs.pop("a_pose_deg", 0.0))
    names = dict(RIGIFY_NAMES)
    names["neck"] = "spine.004"
    return make_spec("MetarigLike", names, points, connect_chains=True, **kwargs)


def vrm_like(**kwargs: Any) -> RigSpec:
    """VRoid names (J_Bip_*), A-pose 30°, small (a 1.4 m character)."""
    points = humanoid_points(scale=kwargs.pop("scale", 0.8), leg_scale=0.95, shin_scale=1.0, arm_scale=1.0,
                             a_pose_deg=kwargs.pop("a_pose_deg", 30.0))
    return make_spec("VRMLike", dict(VRM_NAMES), points, **kwargs)


def not_humanoid() -> RigSpec:
    """A four-bone tail / tentacle chain."""
    bones = [BoneSpec(f"Tentacle_{i}", f"Tentacle_{i - 1}" if i else None, np.array([0.0, 0.0, 0.3 * i]),
                      np.array([0.0, 0.0, 0.3 * (i + 1)]), connected=bool(i)) for i in range(4)]
    return RigSpec("Tentacle", bones)


# ------------------------------------------------------------------------------------------------ matrices
def bone_rest_matrix(head: np.ndarray, tail: np.ndarray, roll: float) -> np.ndarray:
    """[4, 4] bone.matrix_local for a bone with this head, tail and roll (Blender's vec_roll_to_mat3)."""
    vector = np.asarray(tail, np.float64) - np.asarray(head, np.float64)
    x, y, z = vector / np.linalg.norm(vector)
    theta, theta_alt = 1.0 + y, x * x + z * z
    if theta > 6.1e-3 or theta_alt > (2.5e-4) ** 2:
        if theta <= 6.1e-3:
            theta = theta_alt * 0.5 + theta_alt * theta_alt * 0.125
        bone = np.array([[1 - x * x / theta, x, -x * z / theta],
                         [-x, y, -z],
                         [-x * z / theta, z, 1 - z * z / theta]])
    else:
        bone = np.diag([-1.0, -1.0, 1.0])
    axis = np.array([x, y, z])
    c, s = np.cos(roll), np.sin(roll)
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    roll_matrix = np.eye(3) * c + s * skew + (1 - c) * np.outer(axis, axis)
    out = np.eye(4)
    out[:3, :3] = roll_matrix @ bone
    out[:3, 3] = head
    return out


def spec_to_rig(spec: RigSpec) -> Rig:
    names = tuple(b.name for b in spec.bones)
    index = {n: i for i, n in enumerate(names)}
    return Rig(names=names, parents=tuple(index[b.parent] if b.parent else -1 for b in spec.bones),
               rest=np.array([bone_rest_matrix(b.head, b.tail, b.roll) for b in spec.bones]),
               tails=np.array([b.tail for b in spec.bones]), object_matrix=spec.object_matrix,
               connected=tuple(b.connected for b in spec.bones), name=spec.name)


def build_armature(bpy: Any, spec: RigSpec, collection: Any = None) -> Any:
    """The spec as a Blender armature object (edit mode is fine in a test)."""
    data = bpy.data.armatures.new(spec.name)
    armature = bpy.data.objects.new(spec.name, data)
    (collection or bpy.context.scene.collection).objects.link(armature)
    from mathutils import Matrix

    armature.matrix_world = Matrix(spec.object_matrix.tolist())   # rows (a plain sequence would be columns)
    view_layer = bpy.context.view_layer
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        made = {}
        for b in spec.bones:
            bone = data.edit_bones.new(b.name)
            bone.head, bone.tail, bone.roll = b.head.tolist(), b.tail.tolist(), b.roll
            made[b.name] = bone
        for b in spec.bones:
            if b.parent:
                made[b.name].parent = made[b.parent]
                made[b.name].use_connect = b.connected
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return armature


# ------------------------------------------------------------------------------------------------ source
def person_rig() -> Rig:
    """The imported person's armature as the importer builds it (default skeleton, roll 0, identity object)."""
    rest = skeleton.load_default_skeleton()
    heads = frames.canonical_to_blender_rest(rest)
    tails = frames.canonical_to_blender_rest(skeleton.bone_tails(rest))
    return Rig(SMPL, skeleton.SMPL_PARENTS, np.array([bone_rest_matrix(h, t, 0.0) for h, t in zip(heads, tails)]),
               tails, name="person")


def person_pose(poses: np.ndarray, hips: np.ndarray, to_blender: np.ndarray | None = None) -> np.ndarray:
    """Armature-space pose matrices [T, 24, 4, 4] of the person for SMPL poses [T, 24, 3] (joint 0 =
    orientation) and hip centres [T, 3], through the importer's own channel math."""
    from trace_blender.retarget.solve import basis_from_channels, pose_from_basis

    rig = person_rig()
    animation = frames.armature_animation(skeleton.load_default_skeleton(), poses, hips, rig.rest[:, :3, :3],
                                   np.eye(4) if to_blender is None else to_blender)
    locations = np.zeros(poses.shape[:2] + (3,))
    locations[:, 0] = animation.root_location
    return pose_from_basis(rig, basis_from_channels(rotations.quaternion_to_matrix(animation.quaternions), locations))


def walking_motion(count: int = 90, speed: float = 1.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skate-free walk on z = 0 in Blender world (tests/helpers/blender.py): (poses, hips, stance [T, 2])."""
    from core.world.ground import foot_joint_heights
    from helpers.blender import _walk

    rest = skeleton.load_default_skeleton()
    return _walk(rest, count, (0.0, 0.0), np.array([0.3, -1.0, 0.0]), speed, 0.4, foot_joint_heights(rest))
