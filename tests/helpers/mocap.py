"""Real motion capture for tests and benchmarks: BVH reading and conversion to SMPL poses.

`read_bvh(path)` parses a BVH file (.bvh or .bvh.gz): hierarchy, offsets, channels, frames.
`bvh_to_smpl(bvh, fps=30)` converts it to SMPL-ordered poses on a 24-joint rest skeleton with the
actor's own bone lengths, so that `trace_format.fk.forward_kinematics(rest, poses)` reproduces the
captured joint positions (the mapped ones: error reported in `MocapClip.fk_error_m`):

* joint positions: SMPL joint j sits at BVH joint `SMPL_FROM_CMU[j][0]`;
* rotations: the global rotation of SMPL joint j is that of the BVH joint `SMPL_FROM_CMU[j][1]`
  (the joint whose rotation carries the SMPL child bone), times a constant rest rotation A_j that
  turns the actor's rest bone onto the bone direction of this project's default skeleton (T-pose,
  facing +z, y up). So the rest skeleton has our skeleton's directions and the actor's lengths,
  and the poses are SMPL poses in the usual sense (zero = T-pose);
* world: the capture's floor (y = 0 of a CMU capture, checked on the stance feet) becomes y = 0
  of the rest skeleton's frame; the clip is resampled to `fps` (nearest frames).

`load_clip(name)` reads a converted clip from tests/data/mocap (made by `python -m
tests.helpers.mocap`), see tests/data/mocap/README.md for sources and licences.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trace_format.fk import forward_kinematics
from trace_format.rotations import matrix_to_axis_angle
from trace_format.skeleton import SMPL_PARENTS, load_default_skeleton

MOCAP_DIR = Path(__file__).resolve().parents[1] / "data" / "mocap"

# SMPL joint -> (BVH joint giving its position, BVH joint whose global rotation it takes), CMU naming
# of the 3dsMax-friendly BVH release. Zero-length CMU joints (LHipJoint, lowerback, lowerneck, the
# collars, lhand) make some SMPL joints coincide (spine1 with the pelvis, neck and collars with
# spine3); forward kinematics is still exact for every mapped joint.
SMPL_FROM_CMU: tuple[tuple[str, str], ...] = (
    ("Hips", "Hips"),                   # 0 pelvis
    ("LeftHip", "LeftHip"),             # 1 left_hip
    ("RightHip", "RightHip"),           # 2 right_hip
    ("lowerback", "lowerback"),         # 3 spine1
    ("LeftKnee", "LeftKnee"),           # 4 left_knee
    ("RightKnee", "RightKnee"),         # 5 right_knee
    ("Chest", "Chest"),                 # 6 spine2
    ("LeftAnkle", "LeftAnkle"),         # 7 left_ankle
    ("RightAnkle", "RightAnkle"),       # 8 right_ankle
    ("Chest2", "Chest2"),               # 9 spine3
    ("LeftToe", "LeftToe"),             # 10 left_foot
    ("RightToe", "RightToe"),           # 11 right_foot
    ("lowerneck", "lowerneck"),         # 12 neck
    ("LeftCollar", "LeftCollar"),       # 13 left_collar
    ("RightCollar", "RightCollar"),     # 14 right_collar
    ("Neck", "Neck"),                   # 15 head
    ("LeftShoulder", "LeftShoulder"),   # 16 left_shoulder
    ("RightShoulder", "RightShoulder"),  # 17 right_shoulder
    ("LeftElbow", "LeftElbow"),         # 18 left_elbow
    ("RightElbow", "RightElbow"),       # 19 right_elbow
    ("LeftWrist", "lhand"),             # 20 left_wrist
    ("RightWrist", "rhand"),            # 21 right_wrist
    ("LFingers", "LFingers"),           # 22 left_hand
    ("RFingers", "RFingers"),           # 23 right_hand
)


@dataclass
class Bvh:
    """A parsed BVH file."""

    names: list[str]              # joint names, parents before children (End Sites excluded)
    parents: list[int]            # parent index per joint (-1 root)
    offsets: np.ndarray           # [J,3] offset of each joint from its parent (file units)
    channels: list[list[str]]     # per joint, e.g. ["Xposition", ..., "Zrotation", "Yrotation", "Xrotation"]
    motion: np.ndarray            # [F, sum(channels)] values as in the file (degrees for rotations)
    frame_time: float             # seconds


def read_bvh(path: str | Path) -> Bvh:
    """Parse a BVH file (.bvh, or gzip-compressed .bvh.gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        text = handle.read()
    header, _, motion_text = text.partition("MOTION")
    tokens = header.split()
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    index, pending, in_end_site = 0, -1, False
    while index < len(tokens):
        token = tokens[index]
        if token in ("ROOT", "JOINT"):
            names.append(tokens[index + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append([])
            pending = len(names) - 1
            index += 2
        elif token == "End":
            in_end_site, pending = True, -2
            index += 2
        elif token == "{":
            stack.append(pending if pending >= 0 else -2)
            index += 1
        elif token == "}":
            popped = stack.pop()
            if popped == -2:
                in_end_site = False
            index += 1
        elif token == "OFFSET":
            if not in_end_site:
                offsets[stack[-1]] = np.array([float(v) for v in tokens[index + 1:index + 4]])
            index += 4
        elif token == "CHANNELS":
            count = int(tokens[index + 1])
            channels[stack[-1]] = tokens[index + 2:index + 2 + count]
            index += 2 + count
        else:
            index += 1
    # End Site braces pushed -2; parents must skip them.
    lines = motion_text.strip().splitlines()
    frames = int(lines[0].split(":")[1])
    frame_time = float(lines[1].split(":")[1])
    motion = np.array([[float(v) for v in line.split()] for line in lines[2:2 + frames]])
    return Bvh(names=names, parents=parents, offsets=np.array(offsets), channels=channels, motion=motion,
               frame_time=frame_time)


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    angle = np.radians(degrees)
    c, s, one, zero = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    if axis == "X":
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == "Y":
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return np.stack(rows, -1).reshape(angle.shape + (3, 3))


def bvh_global_transforms(bvh: Bvh) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations [F,J,3,3] and positions [F,J,3] of every BVH joint (file units)."""
    count = bvh.motion.shape[0]
    joints = len(bvh.names)
    rotations = np.empty((count, joints, 3, 3))
    positions = np.empty((count, joints, 3))
    column = 0
    for j, (parent, names) in enumerate(zip(bvh.parents, bvh.channels)):
        local = np.broadcast_to(np.eye(3), (count, 3, 3)).copy()
        translation = np.broadcast_to(bvh.offsets[j], (count, 3)).copy()
        for name in names:
            values = bvh.motion[:, column]
            column += 1
            if name.endswith("position"):
                translation[:, "XYZ".index(name[0])] = values      # root: absolute position
            else:
                local = local @ _axis_rotation(name[0], values)
        if parent < 0:
            rotations[:, j], positions[:, j] = local, translation
        else:
            rotations[:, j] = rotations[:, parent] @ local
            positions[:, j] = positions[:, parent] + np.einsum("fij,fj->fi", rotations[:, parent], translation)
    return rotations, positions


def _minimal_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotation [3,3] taking the direction of source [3] onto that of target [3]."""
    a, b = source / np.linalg.norm(source), target / np.linalg.norm(target)
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis), float(a @ b)
    if sine < 1e-9:
        return np.eye(3)
    k = axis / sine
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sine * skew + (1.0 - cosine) * skew @ skew


@dataclass
class MocapClip:
    """A clip as SMPL poses on its own rest skeleton (y-up capture world, floor y = 0)."""

    name: str
    fps: float
    rest_joints: np.ndarray   # [24,3] canonical T-pose, soles on y = 0
    poses: np.ndarray         # [T,24,3] axis-angle; joint 0 = orientation in the capture world (y up)
    root: np.ndarray          # [T,3] pelvis (joint 0) position in the capture world
    joints: np.ndarray        # [T,24,3] FK joints (the ground truth) in the capture world
    fk_error_m: float         # largest |FK - captured| over mapped joints (conversion check)

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.poses)) / self.fps


def bvh_to_smpl(bvh: Bvh, name: str, fps: float = 30.0, floor_y: float = 0.0) -> MocapClip:
    """Convert a CMU BVH (3dsMax-friendly naming, metres) to SMPL poses (see module docstring)."""
    index = {joint: k for k, joint in enumerate(bvh.names)}
    rotations, positions = bvh_global_transforms(bvh)                  # [F,J,3,3], [F,J,3]
    source_fps = 1.0 / bvh.frame_time
    picked = np.unique(np.round(np.arange(0.0, len(bvh.motion) - 0.5, source_fps / fps)).astype(int))  # nearest frames
    position_of = np.array([index[p] for p, _ in SMPL_FROM_CMU])
    rotation_of = np.array([index[r] for _, r in SMPL_FROM_CMU])
    captured = positions[picked][:, position_of]                                              # [T,24,3]
    carried = rotations[picked][:, rotation_of]                                               # [T,24,3,3]

    # Actor's rest skeleton (all BVH rotations zero) at the SMPL joints, then each bone turned onto
    # the default skeleton's direction: rest rotation A_j per joint (applied to all its child bones).
    zero = Bvh(bvh.names, bvh.parents, bvh.offsets, bvh.channels, np.zeros((1, bvh.motion.shape[1])), bvh.frame_time)
    _, rest_positions = bvh_global_transforms(zero)
    actor_rest = rest_positions[0, position_of]                                               # [24,3]
    ours = load_default_skeleton()
    children = {j: [c for c in range(24) if SMPL_PARENTS[c] == j] for j in range(24)}
    main_child = {0: 3, 9: 12, 3: 6, 6: 9, 12: 15}
    rest_rotation = np.tile(np.eye(3), (24, 1, 1))
    rest = np.zeros((24, 3))
    rest[0] = actor_rest[0]
    for j in range(24):
        kids = children[j]
        if kids:
            child = main_child.get(j, kids[0])
            bone = actor_rest[child] - actor_rest[j]
            if np.linalg.norm(bone) > 1e-6 and j not in (0,):
                rest_rotation[j] = _minimal_rotation(bone, ours[child] - ours[j])
    # Rest positions: walk the tree, offsets turned by the parent's A.
    for c in range(1, 24):
        p = SMPL_PARENTS[c]
        rest[c] = rest[p] + rest_rotation[p] @ (actor_rest[c] - actor_rest[p])
    # Global rotations of the converted skeleton: G'_j = G_j A_j^T; local = G'_parent^T G'_j.
    converted = carried @ np.swapaxes(rest_rotation, -1, -2)[None]
    local = np.empty_like(converted)
    local[:, 0] = converted[:, 0]
    for c in range(1, 24):
        local[:, c] = np.swapaxes(converted[:, SMPL_PARENTS[c]], -1, -2) @ converted[:, c]
    poses = matrix_to_axis_angle(local)
    root = captured[:, 0] - np.array([0.0, floor_y, 0.0])
    # Rest skeleton standing on y = 0 with the toe joints as high above the sole as the actor's toe
    # joints are above the floor while planted (median over frames where a toe moves < 0.15 m/s).
    toes = captured[:, [10, 11]] - np.array([0.0, floor_y, 0.0])                              # [T,2,3]
    speed = np.linalg.norm(np.gradient(toes, axis=0), axis=-1) * fps                           # [T,2]
    planted = toes[..., 1][speed < 0.15]
    toe_height = float(np.median(planted)) if planted.size else float(ours[10, 1])
    rest = rest + np.array([0.0, toe_height - 0.5 * (rest[10, 1] + rest[11, 1]), 0.0])
    _, joints = forward_kinematics(rest, poses, root)
    error = float(np.abs(joints - (captured - np.array([0.0, floor_y, 0.0]))).max())
    return MocapClip(name=name, fps=fps, rest_joints=rest, poses=poses, root=root, joints=joints, fk_error_m=error)


def save_clip(clip: MocapClip, path: Path) -> None:
    np.savez_compressed(path, name=clip.name, fps=clip.fps, rest_joints=clip.rest_joints.astype(np.float64),
                        poses=clip.poses.astype(np.float32), root=clip.root.astype(np.float32),
                        fk_error_m=clip.fk_error_m)


def load_clip(name: str, frames: slice | None = None) -> MocapClip:
    """A converted clip of tests/data/mocap (float64 poses; joints recomputed by FK)."""
    with np.load(MOCAP_DIR / f"{name}.npz", allow_pickle=False) as data:
        rest = np.asarray(data["rest_joints"], np.float64)
        poses = np.asarray(data["poses"], np.float64)
        root = np.asarray(data["root"], np.float64)
        fps, error = float(data["fps"]), float(data["fk_error_m"])
    if frames is not None:
        poses, root = poses[frames], root[frames]
    _, joints = forward_kinematics(rest, poses, root)
    return MocapClip(name=name, fps=fps, rest_joints=rest, poses=poses, root=root, joints=joints, fk_error_m=error)


CLIPS = ("cmu_131_01", "cmu_131_02", "cmu_131_03")


def main() -> None:
    """Convert tests/data/mocap/*.bvh.gz to .npz (run from the repository root)."""
    for name in CLIPS:
        bvh = read_bvh(MOCAP_DIR / f"{name}.bvh.gz")
        clip = bvh_to_smpl(bvh, name)
        save_clip(clip, MOCAP_DIR / f"{name}.npz")
        print(f"{name}: {len(clip.poses)} frames at {clip.fps:g} fps, FK error {1000 * clip.fk_error_m:.2f} mm")


if __name__ == "__main__":
    main()
