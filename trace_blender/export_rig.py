"""The skeleton each engine preset gets, computed from a person's motion (numpy only, no bpy).

Every export (FBX for Unity / Unreal, glTF for Godot, BVH, .smpl, AMASS) starts from the same
`PersonMotion`: the evaluated motion of one imported armature in Blender's world (z up, metres,
the character facing -y at rest, its left on +x), sampled on every frame of the exported range.
`engine_skeleton` turns it into the bones a preset writes, in that engine's axes and units:

| preset | axes (engine <- Blender) | units | bones |
|---|---|---|---|
| unity  | (x, z, -y): y up, facing +z | m  | humanoid names, pelvis = skeleton root |
| unreal | identity: z up, facing -y   | cm | UE mannequin names under a ground-level `root` bone |
| godot  | (x, z, -y): glTF's y up, facing +z | m | humanoid names (Godot's SkeletonProfileHumanoid) |
| bvh    | (x, z, -y): y up, facing +z | m  | SMPL names |

Rest pose = the T-pose of the imported rest skeleton, everywhere. Bone rest orientations are chosen
per preset so that Euler curves (FBX stores XYZ Euler angles) stay away from gimbal lock for human
motion: every bone shares one local Z axis, so a child's rest orientation differs from its
parent's only about Z (the last Euler axis, which leaves the middle angle alone), and each bone's
local Y (the middle, gimbal-prone axis) is the body axis that joint turns least about: the lateral
axis for the pelvis (its yaw is unbounded), the twist axis elsewhere. glTF stores quaternions, so
its bones keep world-aligned rest orientations (identity node rotations).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from trace_format.rotations import make_quaternions_continuous, matrix_to_quaternion, quaternion_to_matrix
from trace_format.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS

PRESETS = ("unity", "unreal", "godot", "bvh")

# Engine axes <- Blender axes (rows: engine x, y, z in Blender coordinates).
Y_UP = np.array([[1.0, 0.0, 0.0],
                 [0.0, 0.0, 1.0],
                 [0.0, -1.0, 0.0]])
ENGINE_AXES = {"unity": Y_UP, "unreal": np.eye(3), "godot": Y_UP, "bvh": Y_UP}
ENGINE_UNITS = {"unity": 1.0, "unreal": 100.0, "godot": 1.0, "bvh": 1.0}  # engine units per metre

# Humanoid names: Unity's HumanBodyBones = Godot's SkeletonProfileHumanoid (both map them with no
# configuration). SMPL's `*_hand` joint sits at the knuckles: the middle finger's proximal joint.
HUMANOID_NAMES = {
    "pelvis": "Hips", "left_hip": "LeftUpperLeg", "right_hip": "RightUpperLeg", "spine1": "Spine",
    "left_knee": "LeftLowerLeg", "right_knee": "RightLowerLeg", "spine2": "Chest", "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot", "spine3": "UpperChest", "left_foot": "LeftToes", "right_foot": "RightToes",
    "neck": "Neck", "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftUpperArm", "right_shoulder": "RightUpperArm", "left_elbow": "LeftLowerArm",
    "right_elbow": "RightLowerArm", "left_wrist": "LeftHand", "right_wrist": "RightHand",
    "left_hand": "LeftMiddleProximal", "right_hand": "RightMiddleProximal",
}
# Unreal Engine mannequin names (what the IK Retargeter's auto-mapping and UE tooling expect).
UNREAL_NAMES = {
    "pelvis": "pelvis", "left_hip": "thigh_l", "right_hip": "thigh_r", "spine1": "spine_01",
    "left_knee": "calf_l", "right_knee": "calf_r", "spine2": "spine_02", "left_ankle": "foot_l",
    "right_ankle": "foot_r", "spine3": "spine_03", "left_foot": "ball_l", "right_foot": "ball_r",
    "neck": "neck_01", "left_collar": "clavicle_l", "right_collar": "clavicle_r", "head": "head",
    "left_shoulder": "upperarm_l", "right_shoulder": "upperarm_r", "left_elbow": "lowerarm_l",
    "right_elbow": "lowerarm_r", "left_wrist": "hand_l", "right_wrist": "hand_r",
    "left_hand": "middle_metacarpal_l", "right_hand": "middle_metacarpal_r",
}
NAME_SCHEMES = {"smpl": {n: n for n in SMPL_JOINT_NAMES}, "humanoid": HUMANOID_NAMES, "unreal": UNREAL_NAMES}
DEFAULT_NAME_SCHEME = {"unity": "humanoid", "unreal": "unreal", "godot": "humanoid", "bvh": "smpl"}
UNREAL_ROOT_BONE = "root"

_ARM_JOINTS = {"left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
               "left_wrist", "right_wrist", "left_hand", "right_hand"}


@dataclass
class BodyMesh:
    """A skinned body in Blender world at rest: vertices [V, 3], triangles [F, 3], weights [V, 24]."""

    vertices: np.ndarray
    triangles: np.ndarray
    weights: np.ndarray
    name: str = "body"


@dataclass
class PersonMotion:
    """One person's motion in Blender world (metres), on every frame of the exported range.

    rest_heads [24, 3]: joints at rest (T-pose); world_rotations [T, 24, 3, 3]: W_i, the rotation
    that takes the world-aligned rest skeleton to the pose; heads [T, 24, 3]: posed joints.
    """

    name: str
    rest_heads: np.ndarray
    world_rotations: np.ndarray
    heads: np.ndarray
    body: BodyMesh | None = None


@dataclass
class EngineSkeleton:
    """Bones as one preset writes them, in the engine's axes and units.

    rest [J, 4, 4] and posed [T, J, 4, 4]: global bone frames (rotation columns = the bone's local
    axes, translation = its head); parents index into the same list (-1 = skeleton root).
    source_joint: the SMPL joint index each bone follows (-1 for the Unreal `root` bone).
    """

    person: str
    names: list[str]
    parents: list[int]
    source_joint: list[int]
    rest: np.ndarray
    posed: np.ndarray
    axes: np.ndarray
    units: float
    body: BodyMesh | None = None

    def local(self, frames: np.ndarray) -> np.ndarray:
        """Parent-relative bone frames [..., J, 4, 4] of global frames [..., J, 4, 4]."""
        parent_index = np.array([max(p, 0) for p in self.parents])
        is_root = np.array([p < 0 for p in self.parents])
        parent = np.where(is_root[:, None, None], np.eye(4), frames[..., parent_index, :, :])
        return rigid_inverse(parent) @ frames

    def to_blender_metres(self, points: np.ndarray) -> np.ndarray:
        """Engine points [..., 3] -> Blender world metres (to compare readers' results with our FK)."""
        return (np.asarray(points, np.float64) / self.units) @ self.axes


def rigid_inverse(matrices: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 matrices [..., 4, 4]."""
    rotation_t = np.swapaxes(matrices[..., :3, :3], -1, -2)
    out = np.zeros_like(matrices)
    out[..., :3, :3] = rotation_t
    out[..., :3, 3] = -(rotation_t @ matrices[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def _frame(y_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    """Rotation whose columns are (y x z, y, z)."""
    return np.stack([np.cross(y_axis, z_axis), y_axis, z_axis], axis=-1)


def bone_rest_rotations(preset: str, names: tuple[str, ...] = SMPL_JOINT_NAMES) -> np.ndarray:
    """[J, 3, 3] rest orientation of each SMPL joint's bone in the engine's axes (see module doc)."""
    axes = ENGINE_AXES[preset]
    left, up, forward = axes @ np.array([1.0, 0, 0]), axes @ np.array([0, 0, 1.0]), axes @ np.array([0, -1.0, 0])
    if preset in ("godot", "bvh"):
        return np.broadcast_to(np.eye(3), (len(names), 3, 3)).copy()
    out = np.empty((len(names), 3, 3))
    for index, name in enumerate(names):
        if preset == "unity":   # shared z = forward; the pelvis yaws about local x
            y_axis = -left if name == "pelvis" else (left if name in _ARM_JOINTS else up)
            out[index] = _frame(y_axis, forward)
        else:                   # unreal: shared z = up (yaw is about z)
            out[index] = _frame(left if name in _ARM_JOINTS else forward, up)
    return out


def ascii_identifier(text: str) -> str:
    """A name every engine accepts: ASCII letters, digits and '_', not starting with a digit."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", folded).strip("_") or "person"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def bone_names(scheme: str, prefix: str = "") -> list[str]:
    """The 24 exported bone names in SMPL joint order; prefix makes them unique per person."""
    if scheme not in NAME_SCHEMES:
        raise ValueError(f"unknown bone naming {scheme!r}; choose one of {', '.join(NAME_SCHEMES)}")
    return [prefix + NAME_SCHEMES[scheme][name] for name in SMPL_JOINT_NAMES]


def preset_bone_names(preset: str, prefix: str = "") -> list[str]:
    """Every bone a preset writes, in file order: the Unreal `root` bone first, then the 24 SMPL joints."""
    names = bone_names(DEFAULT_NAME_SCHEME[preset], prefix)
    return [prefix + UNREAL_ROOT_BONE] + names if preset == "unreal" else names


def engine_skeleton(motion: PersonMotion, preset: str, scheme: str | None = None, prefix: str = "") -> EngineSkeleton:
    """The bones of `motion` as `preset` writes them (rest + every frame), names from `scheme`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    axes, units = ENGINE_AXES[preset], ENGINE_UNITS[preset]
    names = bone_names(scheme or DEFAULT_NAME_SCHEME[preset], prefix)
    parents = list(SMPL_PARENTS)
    orientation = bone_rest_rotations(preset)                              # [J, 3, 3] C_i
    rest_heads = (np.asarray(motion.rest_heads, np.float64) @ axes.T) * units
    heads = (np.asarray(motion.heads, np.float64) @ axes.T) * units        # [T, J, 3]
    world = axes @ np.asarray(motion.world_rotations, np.float64) @ axes.T  # [T, J, 3, 3] W_i in engine axes
    count, joints = heads.shape[:2]
    rest = np.tile(np.eye(4), (joints, 1, 1))
    rest[:, :3, :3], rest[:, :3, 3] = orientation, rest_heads
    posed = np.tile(np.eye(4), (count, joints, 1, 1))
    posed[..., :3, :3] = world @ orientation
    posed[..., :3, 3] = heads
    source = list(range(joints))
    if preset == "unreal":
        # A `root` bone on the floor under the pelvis: it carries the horizontal root motion; the
        # pelvis keeps height and every rotation. Its rest sits at the origin, axes = the engine's.
        up = axes @ np.array([0.0, 0.0, 1.0])
        horizontal = np.eye(3) - np.outer(up, up)
        root_rest = np.eye(4)
        root_posed = np.tile(np.eye(4), (count, 1, 1))
        root_posed[:, :3, 3] = (heads[:, 0] - rest_heads[0]) @ horizontal.T
        rest = np.concatenate([root_rest[None], rest])
        posed = np.concatenate([root_posed[:, None], posed], axis=1)
        names = [prefix + UNREAL_ROOT_BONE] + names
        parents = [-1] + [p + 1 for p in parents]
        source = [-1] + source
    body = motion.body
    if body is not None:
        body = BodyMesh((np.asarray(body.vertices, np.float64) @ axes.T) * units, body.triangles, body.weights,
                        body.name)
    return EngineSkeleton(motion.name, names, parents, source, rest, posed, axes, units, body)


def local_quaternions_xyzw(skeleton: EngineSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """(rest [J, 4], posed [T, J, 4]) parent-relative rotations as (x, y, z, w), signs continuous over
    time and starting in the rest's hemisphere (glTF's layout)."""
    rest = matrix_to_quaternion(skeleton.local(skeleton.rest)[..., :3, :3])          # (w, x, y, z)
    posed = matrix_to_quaternion(skeleton.local(skeleton.posed)[..., :3, :3])
    posed = make_quaternions_continuous(posed, axis=0)
    flip = np.sum(posed[:1] * rest[None], axis=-1, keepdims=True) < 0   # [1, J, 1]
    posed = np.where(flip, -posed, posed)
    return np.roll(rest, -1, axis=-1), np.roll(posed, -1, axis=-1)


def globals_from_local(local: np.ndarray, parents: list[int] | tuple[int, ...]) -> np.ndarray:
    """Global bone frames [..., J, 4, 4] of parent-relative ones (parents listed before children)."""
    out = np.empty_like(local)
    for joint, parent in enumerate(parents):
        out[..., joint, :, :] = local[..., joint, :, :] if parent < 0 else out[..., parent, :, :] @ local[..., joint, :, :]
    return out


def euler_xyz(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both Euler XYZ solutions (radians, [..., 3] each) of rotations [..., 3, 3] = Rz(c) Ry(b) Rx(a):
    FBX's default rotation order (Lcl Rotation)."""
    m = np.asarray(matrices, np.float64)
    b = np.arcsin(np.clip(-m[..., 2, 0], -1.0, 1.0))
    a = np.arctan2(m[..., 2, 1], m[..., 2, 2])
    c = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    first = np.stack([a, b, c], axis=-1)
    second = np.stack([a + np.pi, np.pi - b, c + np.pi], axis=-1)
    return first, second


def euler_xyz_to_matrix(radians: np.ndarray) -> np.ndarray:
    """[..., 3] Euler XYZ (a, b, c) -> Rz(c) Ry(b) Rx(a) [..., 3, 3]."""
    a, b, c = np.moveaxis(np.asarray(radians, np.float64), -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    return np.stack([cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa,
                     sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa,
                     -sb, cb * sa, cb * ca], axis=-1).reshape(np.shape(a) + (3, 3))


def continuous_euler(first: np.ndarray, second: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per frame, the one of two equivalent Euler solutions (radians, [T, J, 3] each), turned by whole
    turns, that is closest to the previous frame's angles (frame 0: to `start` [J, 3]): no jumps."""
    full_turn = 2.0 * np.pi
    previous = np.asarray(start, np.float64)
    out = np.empty_like(first)
    for frame in range(first.shape[0]):
        candidates = [solution + full_turn * np.round((previous - solution) / full_turn)
                      for solution in (first[frame], second[frame])]
        distance = [np.abs(c - previous).sum(axis=-1, keepdims=True) for c in candidates]
        previous = np.where(distance[0] <= distance[1], candidates[0], candidates[1])
        out[frame] = previous
    return out


def continuous_euler_xyz_degrees(matrices: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Euler XYZ angles in degrees [T, J, 3] of rotations [T, J, 3, 3], each frame the solution (and
    turn) closest to the previous one, frame 0 closest to `start` [J, 3] (degrees): curves without jumps."""
    first, second = euler_xyz(matrices)
    return np.degrees(continuous_euler(first, second, np.radians(np.asarray(start, np.float64))))


def blender_pose_basis(skeleton: EngineSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """Blender pose-bone channels that reproduce the skeleton: (locations [T, J, 3], quaternions
    [T, J, 4] (w, x, y, z), continuous). Basis_i = (Rest_parent^-1 Rest_i)^-1 P_parent^-1 P_i."""
    rest_local = skeleton.local(skeleton.rest)                  # [J, 4, 4]
    posed_local = skeleton.local(skeleton.posed)                # [T, J, 4, 4]
    basis = rigid_inverse(rest_local)[None] @ posed_local
    quaternions = make_quaternions_continuous(matrix_to_quaternion(basis[..., :3, :3]), axis=0)
    return basis[..., :3, 3], quaternions


def pose_from_basis(rest: np.ndarray, parents: list[int] | tuple[int, ...], locations: np.ndarray,
                    quaternions: np.ndarray, object_matrix: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blender's pose evaluation, in numpy: (rest_heads [J, 3], world_rotations [T, J, 3, 3], heads [T, J, 3]).

    rest [J, 4, 4]: bone.matrix_local; locations [T, J, 3] / quaternions [T, J, 4] (w, x, y, z): the
    pose-bone channels; object_matrix: the armature object's world matrix (rigid + uniform scale).
    Pose_i = Pose_parent (Rest_parent^-1 Rest_i) Basis_i; W_i = R_obj Pose_i B_i^T R_obj^T (the rotation
    that takes the world-aligned rest skeleton to the pose, as PersonMotion holds it).
    """
    rest = np.asarray(rest, np.float64)
    count, joints = np.asarray(locations).shape[:2]
    basis = np.tile(np.eye(4), (count, joints, 1, 1))
    basis[..., :3, :3] = quaternion_to_matrix(quaternions)
    basis[..., :3, 3] = locations
    pose = np.empty_like(basis)
    for joint, parent in enumerate(parents):      # parents come before children (SMPL order)
        if parent < 0:
            pose[:, joint] = rest[joint] @ basis[:, joint]
        else:
            offset = np.linalg.inv(rest[parent]) @ rest[joint]
            pose[:, joint] = pose[:, parent] @ offset @ basis[:, joint]
    world = np.eye(4) if object_matrix is None else np.asarray(object_matrix, np.float64)
    scale = np.cbrt(np.linalg.det(world[:3, :3]))
    object_rotation = world[:3, :3] / scale
    rotations = object_rotation @ pose[..., :3, :3] @ np.swapaxes(rest[:, :3, :3], -1, -2)[None] @ object_rotation.T
    heads = pose[..., :3, 3] @ world[:3, :3].T + world[:3, 3]
    rest_heads = rest[:, :3, 3] @ world[:3, :3].T + world[:3, 3]
    return rest_heads, rotations, heads
