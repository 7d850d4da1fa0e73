"""Retarget math: a source person's motion onto a target humanoid with another rest pose and proportions.

numpy only. Both armatures are described by `Rig` (bone names, parents, rest matrices
`bone.matrix_local`, tails, the object's world matrix); motion is armature-space pose matrices
`pose_bone.matrix` [T, J, 4, 4], which `pose_from_basis` / `basis_from_pose` convert to and from
the keyed channels (`matrix_basis`), following Blender's rule
`P_i = P_parent · (Rest_parent⁻¹ Rest_i) · Basis_i`.

The method (docs/blender.md, "Retarget"):
* Rest alignment. Each rig's character frame (left = hips and shoulders left minus right, up =
  shoulders minus hips) gives G, the rotation from the target's rest frame to the source's. For a
  mapped joint, its rest direction towards the next mapped joint of its chain is d_s (source) and
  d_t (target); A = swing(G d_t → d_s) · G. The last mapped joint of a chain (head, toes, a hand
  without fingers mapped) takes its parent's A: it keeps its rest angle to its parent, whatever
  its bone axis. A-pose vs
  T-pose, other bone rolls and axes, a rig lying along +Y or scaled by 0.01 all end up in A and in
  the object matrix.
* Pose. With D(t) = the source bone's world rotation times its rest rotation transposed, the target
  bone's world rotation is D(t) · A · R_target_rest: world limb directions equal the source's.
  Unmapped bones keep their rest pose relative to their parents (twist, fingers, extra spine bones).
* Root motion. The mapped pelvis bone moves by the source pelvis displacement from its rest times
  s = target leg length / source leg length (hip-knee + knee-ankle + ankle height, in world units),
  from the target's own rest position, so strides fit the target's legs.
* Floor contact. Each foot point (mapped ankle and toe joints) has a clearance, its height above its
  rest height; the whole target is shifted vertically per frame so that its lowest clearance is s
  times the source's lowest: a planted source foot is a planted target foot, whatever the ankle
  heights and leg proportions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from trace_format import rotations as _rotations
from ..errors import RetargetError
from .bone_maps import SMPL_JOINTS, SMPL_PARENT_NAMES, BoneMapError, check_map, describe_check

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
ROTATION_MODES = ("QUATERNION", "AXIS_ANGLE") + EULER_ORDERS
# The chain each joint's direction follows (the next joint towards the chain's end).
DIRECTION_CHILD: dict[str, str | None] = {
    "pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head", "head": None,
    **{f"{side}_{a}": (f"{side}_{b}" if b else None) for side in ("left", "right") for a, b in (
        ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("foot", None),
        ("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "hand"), ("hand", None))},
}
FOOT_POINTS = {"left": ("left_ankle", "left_foot"), "right": ("right_ankle", "right_foot")}
LEG_CHAIN = {side: (f"{side}_hip", f"{side}_knee", f"{side}_ankle") for side in ("left", "right")}
# Leg-length ratios outside this range mean other units (cm rigs) or a wrong map: said in a warning.
PLAUSIBLE_SCALE = (0.25, 4.0)


@dataclass(frozen=True)
class Rig:
    """An armature as the math sees it (all armature space except object_matrix)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]              # parent index, -1 for roots
    rest: np.ndarray                      # [J, 4, 4] bone.matrix_local
    tails: np.ndarray                     # [J, 3] bone.tail_local
    object_matrix: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4, 4] matrix_world
    connected: tuple[bool, ...] = ()      # bone.use_connect (location channels ignored by Blender)
    rotation_modes: tuple[str, ...] = ()  # pose_bone.rotation_mode
    name: str = "rig"

    def __post_init__(self) -> None:
        count = len(self.names)
        rest = np.array(self.rest, np.float64).reshape(count, 4, 4)
        # Blender's bone matrices are float32 and only nearly orthonormal: project them (SVD) so rigid
        # inverses are exact.
        u, _, vt = np.linalg.svd(rest[:, :3, :3])
        rest[:, :3, :3] = u @ vt
        object.__setattr__(self, "rest", rest)
        object.__setattr__(self, "tails", np.asarray(self.tails, np.float64).reshape(count, 3))
        object.__setattr__(self, "object_matrix", np.asarray(self.object_matrix, np.float64).reshape(4, 4))
        if not self.connected:
            object.__setattr__(self, "connected", (False,) * count)
        if not self.rotation_modes:
            object.__setattr__(self, "rotation_modes", ("QUATERNION",) * count)
        if len(self.parents) != count or any(p >= count for p in self.parents):
            raise RetargetError(f"{self.name}: bone parents do not match the bones")

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def order(self) -> list[int]:
        """Bone indices with every parent before its children."""
        depth = []
        for index in range(len(self.names)):
            d, p = 0, self.parents[index]
            while p >= 0:
                d, p = d + 1, self.parents[p]
                if d > len(self.names):
                    raise RetargetError(f"{self.name}: the bone hierarchy has a cycle")
            depth.append(d)
        return sorted(range(len(self.names)), key=lambda i: (depth[i], i))

    def object_rotation_scale(self) -> tuple[np.ndarray, float]:
        """(rotation Q, uniform scale) of the object matrix; other scales and mirrors are refused."""
        linear = self.object_matrix[:3, :3]
        scales = np.linalg.norm(linear, axis=0)
        if np.any(scales < 1e-9) or np.ptp(scales) > 1e-4 * scales.max():
            raise RetargetError(
                f"'{self.name}' has a non-uniform object scale {np.round(scales, 4).tolist()}: apply it first "
                "(Object › Apply › Scale) or give it the same scale on X, Y and Z")
        rotation = linear / scales.mean()
        if np.linalg.det(rotation) < 0:
            raise RetargetError(f"'{self.name}' is mirrored (negative object scale): apply the scale first "
                                "(Object › Apply › Scale)")
        return rotation, float(scales.mean())

    def world_points(self, points: np.ndarray) -> np.ndarray:
        """Armature-space points [..., 3] -> world [..., 3]."""
        return np.asarray(points, np.float64) @ self.object_matrix[:3, :3].T + self.object_matrix[:3, 3]

    def rest_heads_world(self) -> np.ndarray:
        return self.world_points(self.rest[:, :3, 3])


# ------------------------------------------------------------------------------------------------ FK
def _local_rest(rig: Rig) -> np.ndarray:
    """[J, 4, 4] Rest_parent⁻¹ Rest_i (Rest_i itself for roots)."""
    local = rig.rest.copy()
    for index, parent in enumerate(rig.parents):
        if parent >= 0:
            local[index] = np.linalg.inv(rig.rest[parent]) @ rig.rest[index]
    return local


def pose_from_basis(rig: Rig, basis: np.ndarray) -> np.ndarray:
    """Armature-space pose matrices [T, J, 4, 4] (pose_bone.matrix) from matrix_basis [T, J, 4, 4]."""
    basis = np.asarray(basis, np.float64)
    local = _local_rest(rig)
    pose = np.empty_like(basis)
    for index in rig.order():
        parent = rig.parents[index]
        chain = local[index] @ basis[:, index]
        pose[:, index] = chain if parent < 0 else pose[:, parent] @ chain
    return pose


def basis_from_pose(rig: Rig, pose: np.ndarray) -> np.ndarray:
    """matrix_basis [T, J, 4, 4] that gives the armature-space pose matrices [T, J, 4, 4]."""
    pose = np.asarray(pose, np.float64)
    local_inverse = np.linalg.inv(_local_rest(rig))
    basis = np.empty_like(pose)
    for index, parent in enumerate(rig.parents):
        relative = pose[:, index] if parent < 0 else _rigid_inverse(pose[:, parent]) @ pose[:, index]
        basis[:, index] = local_inverse[index] @ relative
    return basis


def _rigid_inverse(matrices: np.ndarray) -> np.ndarray:
    out = np.zeros_like(matrices)
    rotation_t = np.swapaxes(matrices[..., :3, :3], -1, -2)
    out[..., :3, :3] = rotation_t
    out[..., :3, 3] = -(rotation_t @ matrices[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def basis_from_channels(rotations: np.ndarray, locations: np.ndarray) -> np.ndarray:
    """[T, J, 4, 4] matrix_basis from rotation matrices [T, J, 3, 3] and locations [T, J, 3] (no scale)."""
    rotations = np.asarray(rotations, np.float64)
    basis = np.zeros(rotations.shape[:-2] + (4, 4))
    basis[..., :3, :3] = rotations
    basis[..., :3, 3] = locations
    basis[..., 3, 3] = 1.0
    return basis


# ------------------------------------------------------------------------------------------------ plan
@dataclass
class RetargetPlan:
    """Everything that depends only on the rest poses and the map."""

    source: Rig
    target: Rig
    source_bones: dict[str, int]          # SMPL joint -> source bone index
    target_bones: dict[str, int]          # SMPL joint -> target bone index (mapped joints)
    alignment: dict[str, np.ndarray]      # SMPL joint -> A [3, 3] (world)
    scale: float                          # target leg length / source leg length
    root_bone: int                        # target bone carrying the root motion (mapped pelvis)
    keyed: tuple[int, ...]                # target bones that get keys
    warnings: list[str] = field(default_factory=list)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-9:
        raise RetargetError("two mapped joints sit at the same place: the map is wrong")
    return vector / norm


def character_frame(heads: Mapping[str, np.ndarray]) -> np.ndarray:
    """[3, 3] columns (left, back, up) of a humanoid rest pose from its hip and upper-arm joints (world)."""
    left = (heads["left_hip"] - heads["right_hip"]) + (heads["left_shoulder"] - heads["right_shoulder"])
    up = 0.5 * (heads["left_shoulder"] + heads["right_shoulder"]) - 0.5 * (heads["left_hip"] + heads["right_hip"])
    up = _unit(up)
    left = _unit(left - (left @ up) * up)
    return np.stack([left, np.cross(up, left), up], axis=1)


def swing(a: np.ndarray, b: np.ndarray, fallback_axis: np.ndarray | None = None) -> np.ndarray:
    """The smallest rotation [3, 3] taking unit vector a to unit vector b."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    sin_angle, cos_angle = float(np.linalg.norm(axis)), float(a @ b)
    if sin_angle < 1e-9:
        if cos_angle > 0:
            return np.eye(3)
        axis = fallback_axis if fallback_axis is not None else np.eye(3)[int(np.argmin(np.abs(a)))]
        axis = _unit(axis - (axis @ a) * a)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    return _rotations.axis_angle_to_matrix(axis / sin_angle * np.arctan2(sin_angle, cos_angle))


def _direction_target(joint: str, mapped: Mapping[str, int]) -> str | None:
    child = DIRECTION_CHILD.get(joint)
    while child is not None and child not in mapped:
        child = DIRECTION_CHILD.get(child)
    return child


def _rest_direction(heads: np.ndarray, bones: Mapping[str, int], joint: str, child: str) -> np.ndarray:
    return _unit(heads[bones[child]] - heads[bones[joint]])


def _leg_length(heads: Mapping[str, np.ndarray], floor: float) -> float:
    lengths = []
    for hip, knee, ankle in LEG_CHAIN.values():
        lengths.append(float(np.linalg.norm(heads[knee] - heads[hip]) + np.linalg.norm(heads[ankle] - heads[knee])
                             + max(heads[ankle][2] - floor, 0.0)))
    return float(np.mean(lengths))


def rest_floor(rig: Rig, bones: Mapping[str, int]) -> float:
    """World height of a rig's rest floor: the object origin, or lower when the feet reach below it."""
    feet = [bones[j] for points in FOOT_POINTS.values() for j in points if j in bones]
    heights = [rig.object_matrix[2, 3]]
    if feet:
        heights.append(float(rig.world_points(rig.rest[feet, :3, 3])[:, 2].min()))
        heights.append(float(rig.world_points(rig.tails[feet])[:, 2].min()))
    return min(heights)


def plan_retarget(source: Rig, source_joints: Mapping[str, str], target: Rig, bone_map: Mapping[str, str],
                  exclude_from_keys: Sequence[str] = ()) -> RetargetPlan:
    """Check the map against the target and compute the rest alignment and root scale.

    source_joints: {SMPL joint: source bone name} (the imported person's bones);
    bone_map: {SMPL joint: target bone name}; exclude_from_keys: target bones never keyed (e.g.
    bones driven by constraints).
    """
    check = check_map(bone_map, target.names, target.parents)
    if not check.ok:
        raise BoneMapError(describe_check(check, target.name), bone_map, check.missing)
    source_index, target_index = source.index, target.index
    missing_source = [j for j in SMPL_JOINTS if j in bone_map and source_joints.get(j) not in source_index]
    if missing_source:
        raise RetargetError(f"the source person lacks the bones for {', '.join(missing_source)}: import it again")
    source_bones = {j: source_index[source_joints[j]] for j in bone_map}
    target_bones = {j: target_index[bone] for j, bone in bone_map.items()}
    source_q, _ = source.object_rotation_scale()
    target_q, _ = target.object_rotation_scale()
    source_heads, target_heads = source.rest_heads_world(), target.rest_heads_world()
    source_named = {j: source_heads[i] for j, i in source_bones.items()}
    target_named = {j: target_heads[i] for j, i in target_bones.items()}
    frame_source, frame_target = character_frame(source_named), character_frame(target_named)
    facing = frame_source @ frame_target.T  # target rest frame -> source rest frame
    warnings = []
    up_target = frame_target[:, 2]
    if up_target[2] < np.cos(np.radians(30.0)):
        warnings.append(f"'{target.name}' does not stand upright along +Z in its rest pose (its up is "
                        f"{np.round(up_target, 2).tolist()} in world space): the animation stands it up; check the "
                        "exported axes")
    alignment = {}
    leaves = []
    for joint in bone_map:
        child = _direction_target(joint, bone_map)
        if child is None:  # no mapped joint further down: keep the rest angle to the mapped parent
            leaves.append(joint)
            continue
        d_source = _rest_direction(source_heads, source_bones, joint, child)
        d_target = _rest_direction(target_heads, target_bones, joint, child)
        alignment[joint] = swing(facing @ d_target, d_source, fallback_axis=frame_source[:, 1]) @ facing
    for joint in leaves:
        ancestor = SMPL_PARENT_NAMES[joint]
        while ancestor is not None and ancestor not in alignment:
            ancestor = SMPL_PARENT_NAMES[ancestor]
        alignment[joint] = alignment[ancestor] if ancestor is not None else facing
    feet_ok = all(j in bone_map for j in ("left_ankle", "left_foot"))
    if feet_ok:
        toe = target_named["left_foot"] - target_named["left_ankle"]
        if toe @ frame_target[:, 1] > 0.5 * np.linalg.norm(toe):
            raise BoneMapError(f"Retarget: left and right look swapped in the map for '{target.name}' (its toes point "
                               "backwards); swap the left_ and right_ bones in the TRACE panel's Retarget › Bone Map",
                               bone_map)
    source_floor, target_floor = rest_floor(source, source_bones), rest_floor(target, target_bones)
    scale = _leg_length(target_named, target_floor) / _leg_length(source_named, source_floor)
    if not PLAUSIBLE_SCALE[0] <= scale <= PLAUSIBLE_SCALE[1]:
        warnings.append(f"'{target.name}' has {scale:.3g}x the source's leg length: the root motion is scaled by "
                        f"{scale:.3g}; if that is a unit mismatch (centimetres vs metres), set the object scale instead")
    root_bone = target_bones["pelvis"]
    if target.connected[root_bone]:
        raise RetargetError(f"the hip bone '{target.names[root_bone]}' is connected to its parent, so it cannot "
                            "carry the root motion: untick Bone Properties › Relations › Connected in Edit Mode")
    keyed = _bones_to_key(target, list(target_bones.values()), set(exclude_from_keys))
    return RetargetPlan(source, target, source_bones, target_bones, alignment, float(scale), root_bone, keyed, warnings)


def _bones_to_key(rig: Rig, mapped: list[int], excluded: set[str]) -> tuple[int, ...]:
    """Mapped bones, their ancestors and descendants (unmapped ones keyed at rest), minus excluded ones."""
    chosen = set(mapped)
    for index in mapped:
        parent = rig.parents[index]
        while parent >= 0:
            chosen.add(parent)
            parent = rig.parents[parent]
    changed = True
    while changed:
        changed = False
        for index, parent in enumerate(rig.parents):
            if parent in chosen and index not in chosen:
                chosen.add(index)
                changed = True
    return tuple(i for i in rig.order() if i in chosen and (i in mapped or rig.names[i] not in excluded))


# ------------------------------------------------------------------------------------------------ motion
@dataclass
class TargetMotion:
    pose: np.ndarray                # [T, J, 4, 4] target armature-space pose matrices
    basis: np.ndarray               # [T, J, 4, 4] matrix_basis of every target bone
    floor_offset: np.ndarray        # [T] vertical shift applied for floor contact (world units)
    scale: float


def retarget_motion(plan: RetargetPlan, source_pose: np.ndarray, floor_contact: bool = True) -> TargetMotion:
    """Target pose for every frame of the source pose [T, Js, 4, 4] (source armature space)."""
    source, target = plan.source, plan.target
    source_pose = np.asarray(source_pose, np.float64)
    frames = source_pose.shape[0]
    source_q, _ = source.object_rotation_scale()
    target_q, _ = target.object_rotation_scale()
    target_inverse = np.linalg.inv(target.object_matrix)
    desired = {}  # target bone -> armature-space rotation [T, 3, 3]
    for joint, source_bone in plan.source_bones.items():
        rest_world = source_q @ source.rest[source_bone, :3, :3]
        delta = source_q @ source_pose[:, source_bone, :3, :3] @ rest_world.T  # [T, 3, 3] world
        target_bone = plan.target_bones[joint]
        target_rest_world = target_q @ target.rest[target_bone, :3, :3]
        desired[target_bone] = target_q.T @ delta @ (plan.alignment[joint] @ target_rest_world)
    pelvis = plan.source_bones["pelvis"]
    source_root = source.world_points(source_pose[:, pelvis, :3, 3])                      # [T, 3]
    displacement = plan.scale * (source_root - source.world_points(source.rest[pelvis, :3, 3]))
    target_root = target.world_points(target.rest[plan.root_bone, :3, 3]) + displacement  # [T, 3] world
    pose = _solve_pose(target, desired, plan.root_bone, target_root, target_inverse, frames)
    offset = np.zeros(frames)
    if floor_contact:
        offset = _floor_offset(plan, source_pose, pose)
        pose = _solve_pose(target, desired, plan.root_bone, target_root + offset[:, None] * np.array([0, 0, 1.0]),
                           target_inverse, frames)
    basis = basis_from_pose(target, pose)
    return TargetMotion(pose, basis, offset, plan.scale)


def _solve_pose(target: Rig, desired: Mapping[int, np.ndarray], root_bone: int, root_world: np.ndarray,
                target_inverse: np.ndarray, frames: int) -> np.ndarray:
    local = _local_rest(target)
    pose = np.empty((frames, len(target.names), 4, 4))
    root_armature = root_world @ target_inverse[:3, :3].T + target_inverse[:3, 3]
    for index in target.order():
        parent = target.parents[index]
        follow = np.broadcast_to(local[index], (frames, 4, 4)) if parent < 0 else pose[:, parent] @ local[index]
        pose[:, index] = follow
        if index in desired:
            pose[:, index, :3, :3] = desired[index]
        if index == root_bone:
            pose[:, index, :3, 3] = root_armature
    return pose


def _foot_clearance(rig: Rig, pose: np.ndarray, bones: Mapping[str, int]) -> np.ndarray | None:
    """[T] lowest height of the mapped foot points above their rest heights (world units), or None."""
    points = [bones[j] for side in FOOT_POINTS.values() for j in side if j in bones]
    if not points:
        return None
    heights = rig.world_points(pose[:, points][:, :, :3, 3])[..., 2]   # [T, P]
    rest = rig.world_points(rig.rest[points, :3, 3])[:, 2]            # [P]
    return (heights - rest[None]).min(axis=1)


def _floor_offset(plan: RetargetPlan, source_pose: np.ndarray, target_pose: np.ndarray) -> np.ndarray:
    source_clearance = _foot_clearance(plan.source, source_pose, plan.source_bones)
    target_clearance = _foot_clearance(plan.target, target_pose, plan.target_bones)
    if source_clearance is None or target_clearance is None:
        return np.zeros(source_pose.shape[0])
    return plan.scale * source_clearance - target_clearance


# ------------------------------------------------------------------------------------------------ channels
@dataclass
class BoneChannels:
    """What gets keyed on one target bone."""

    name: str
    rotation_mode: str
    rotation: np.ndarray            # QUATERNION [T, 4] (w, x, y, z); Euler [T, 3]; AXIS_ANGLE [T, 4] (angle, x, y, z)
    location: np.ndarray | None     # [T, 3] for the root-motion bone, else None


def bone_channels(plan: RetargetPlan, motion: TargetMotion) -> list[BoneChannels]:
    """Keyable channels of every keyed bone, in each bone's own rotation mode, continuous over time."""
    channels = []
    for index in plan.keyed:
        mode = plan.target.rotation_modes[index]
        rotation = motion.basis[:, index, :3, :3]
        if mode == "QUATERNION":
            values = _rotations.make_quaternions_continuous(_rotations.matrix_to_quaternion(rotation), axis=0)
        elif mode == "AXIS_ANGLE":
            values = quaternion_to_blender_axis_angle(
                _rotations.make_quaternions_continuous(_rotations.matrix_to_quaternion(rotation), axis=0))
        elif mode in EULER_ORDERS:
            values = continuous_euler(matrix_to_euler(rotation, mode), mode)
        else:
            raise RetargetError(f"bone '{plan.target.names[index]}' has an unknown rotation mode {mode!r}")
        location = motion.basis[:, index, :3, 3] if index == plan.root_bone else None
        channels.append(BoneChannels(plan.target.names[index], mode, values, location))
    return channels


def quaternion_to_blender_axis_angle(quaternions: np.ndarray) -> np.ndarray:
    """[..., 4] (w, x, y, z) -> [..., 4] (angle, x, y, z) as Blender's rotation_axis_angle stores it."""
    q = np.asarray(quaternions, np.float64)
    w = np.clip(q[..., 0], -1.0, 1.0)
    vector = q[..., 1:]
    norm = np.linalg.norm(vector, axis=-1, keepdims=True)
    axis = np.where(norm > 1e-12, vector / np.maximum(norm, 1e-12), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([2.0 * np.arctan2(norm[..., 0], w)[..., None], axis], axis=-1)


def _axis_rotation(angles: np.ndarray, axis: int) -> np.ndarray:
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros(angles.shape + (3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """[..., 3] Blender Euler angles (x, y, z) in rotation_mode `order` -> [..., 3, 3].

    Blender's 'XYZ' applies X first: R = Rz · Ry · Rx; likewise for the other orders.
    """
    angles = np.asarray(angles, np.float64)
    axes = ["XYZ".index(c) for c in order]
    matrix = _axis_rotation(angles[..., axes[0]], axes[0])
    for axis in axes[1:]:
        matrix = _axis_rotation(angles[..., axis], axis) @ matrix
    return matrix


def matrix_to_euler(matrices: np.ndarray, order: str) -> np.ndarray:
    """[..., 3, 3] -> [..., 3] Blender Euler angles (x, y, z) for rotation_mode `order`."""
    m = np.asarray(matrices, np.float64)
    i, j, k = ("XYZ".index(c) for c in order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0   # even permutation of X, Y, Z
    # R = R_k(c) R_j(b) R_i(a): R[k, i] = -sign sin b.
    cos_b = np.hypot(m[..., i, i], m[..., j, i])
    b = np.arctan2(-sign * m[..., k, i], cos_b)
    regular = cos_b > 1e-9
    a = np.where(regular, np.arctan2(sign * m[..., k, j], m[..., k, k]), np.arctan2(-sign * m[..., j, k], m[..., j, j]))
    c = np.where(regular, np.arctan2(sign * m[..., j, i], m[..., i, i]), 0.0)
    out = np.empty(m.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = a, b, c
    return out


def continuous_euler(angles: np.ndarray, order: str) -> np.ndarray:
    """Euler angles [T, 3] for rotation_mode `order`, made continuous over T: each frame takes the
    equivalent triple closest to the previous frame (angles + 2πn, or the twin solution with the first
    and last axes turned by π and the middle one mirrored), so F-curves never jump by 360°."""
    i, j, k = ("XYZ".index(c) for c in order)
    values = np.asarray(angles, np.float64)
    out = values.copy()
    for t in range(1, values.shape[0]):
        previous = out[t - 1]
        twin = values[t].copy()
        twin[i] += np.pi
        twin[j] = np.pi - twin[j]
        twin[k] += np.pi
        best, best_distance = values[t], np.inf
        for candidate in (values[t], twin):
            wrapped = previous + (candidate - previous + np.pi) % (2 * np.pi) - np.pi
            distance = float(np.sum((wrapped - previous) ** 2))
            if distance < best_distance:
                best, best_distance = wrapped, distance
        out[t] = best
    return out
