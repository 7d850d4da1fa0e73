"""trace_format rig math (rotations, skeleton, forward kinematics) and trace_blender.frames (numpy; smplx/torch only as a reference)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trace_format import fk, rotations, skeleton
from trace_blender import frames


def random_rotvecs(rng: np.random.Generator, count: int, max_angle: float = np.pi) -> np.ndarray:
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0, max_angle, size=(count, 1))


def rotation_about(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


# ---------------------------------------------------------------------------------------------- rotations
def test_axis_angle_to_matrix_matches_smplx_rodrigues():
    torch = pytest.importorskip("torch")
    lbs = pytest.importorskip("smplx.lbs")
    rng = np.random.default_rng(0)
    rotvecs = random_rotvecs(rng, 500)
    expected = lbs.batch_rodrigues(torch.from_numpy(rotvecs)).numpy()
    # smplx adds 1e-8 to every rotation vector before taking its norm, hence ~1e-8 differences.
    np.testing.assert_allclose(rotations.axis_angle_to_matrix(rotvecs), expected, atol=1e-7)


def test_axis_angle_to_matrix_is_orthonormal_with_batch_shape():
    rng = np.random.default_rng(1)
    rotvecs = random_rotvecs(rng, 60).reshape(3, 4, 5, 3)
    matrices = rotations.axis_angle_to_matrix(rotvecs)
    assert matrices.shape == (3, 4, 5, 3, 3)
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2), np.broadcast_to(np.eye(3), matrices.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)
    np.testing.assert_allclose(rotations.axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2])), rotation_about("z", np.pi / 2),
                               atol=1e-15)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-6, 3e-6, 1e-3, 1.0, np.pi - 1e-3, np.pi - 1e-7, np.pi])
def test_round_trips_near_zero_and_pi(angle):
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rotvecs = axes * angle
    matrices = rotations.axis_angle_to_matrix(rotvecs)
    back = rotations.matrix_to_axis_angle(matrices)
    # Same rotation (at exactly pi the axis sign is ambiguous): compare matrices, and angles.
    np.testing.assert_allclose(rotations.axis_angle_to_matrix(back), matrices, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), angle, atol=1e-9)
    if angle < np.pi - 1e-6:
        np.testing.assert_allclose(back, rotvecs, atol=1e-9)
    quats = rotations.axis_angle_to_quaternion(rotvecs)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(rotations.quaternion_to_matrix(quats), matrices, atol=1e-12)
    np.testing.assert_allclose(rotations.quaternion_to_matrix(rotations.matrix_to_quaternion(matrices)), matrices,
                               atol=1e-12)
    np.testing.assert_allclose(rotations.axis_angle_to_matrix(rotations.quaternion_to_axis_angle(quats)), matrices,
                               atol=1e-12)


def test_matrix_to_quaternion_is_wxyz_with_nonnegative_w():
    quaternion = rotations.matrix_to_quaternion(rotation_about("x", np.pi / 2))
    np.testing.assert_allclose(quaternion, [np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0], atol=1e-15)
    rng = np.random.default_rng(3)
    quats = rotations.matrix_to_quaternion(rotations.axis_angle_to_matrix(random_rotvecs(rng, 1000)))
    assert np.all(quats[:, 0] >= 0)
    # 180-degree turns about each axis: w = 0, the axis component is +-1.
    for index, axis in enumerate("xyz", start=1):
        q = rotations.matrix_to_quaternion(rotation_about(axis, np.pi))
        assert abs(q[0]) < 1e-15 and abs(abs(q[index]) - 1.0) < 1e-15


def test_make_quaternions_continuous_removes_sign_jumps():
    rng = np.random.default_rng(4)
    times = np.linspace(0, 6 * np.pi, 400)
    rotvecs = np.stack([np.sin(times), np.cos(0.7 * times), times], axis=1)  # spins past pi many times
    quats = rotations.axis_angle_to_quaternion(rotvecs)[:, None, :].repeat(3, axis=1)  # [T, 3, 4]
    flipped = quats * rng.choice([-1.0, 1.0], size=(400, 3, 1))
    continuous = rotations.make_quaternions_continuous(flipped, axis=0)
    assert np.all(np.sum(continuous[1:] * continuous[:-1], axis=-1) >= 0)
    # Same rotations as before.
    np.testing.assert_allclose(np.abs(np.sum(continuous * quats, axis=-1)), 1.0, atol=1e-12)
    # Time on another axis.
    moved = rotations.make_quaternions_continuous(np.swapaxes(flipped, 0, 1), axis=1)
    np.testing.assert_allclose(np.swapaxes(moved, 0, 1), continuous)


# ---------------------------------------------------------------------------------------------- skeleton
def test_joint_names_and_parents_match_smplx():
    joint_names = pytest.importorskip("smplx.joint_names")
    # smplx.joint_names.JOINT_NAMES is the SMPL-X list: the 22 body joints agree, SMPL's last two are the hands.
    assert list(skeleton.SMPL_JOINT_NAMES[:22]) == list(joint_names.JOINT_NAMES[:22])
    assert skeleton.SMPL_JOINT_NAMES[22:] == ("left_hand", "right_hand")
    assert skeleton.SMPL_PARENTS[0] == -1
    assert all(0 <= p < j for j, p in enumerate(skeleton.SMPL_PARENTS) if j > 0)
    assert skeleton.SMPL_PARENTS[skeleton.SMPL_JOINT_NAMES.index("left_wrist")] == skeleton.SMPL_JOINT_NAMES.index("left_elbow")


def test_default_skeleton_file_matches_generator_and_is_plausible(tmp_path):
    joints = skeleton.load_default_skeleton()
    np.testing.assert_allclose(joints, skeleton.anthropometric_rest_joints(1.75), atol=1e-6)
    names = skeleton.SMPL_JOINT_NAMES
    head, left_ankle = joints[names.index("head")], joints[names.index("left_ankle")]
    assert 1.45 < head[1] < 1.65 and 0.0 < left_ankle[1] < 0.1  # head ~1.56 m up, ankles near the floor
    for name in names:  # left joints on +x, mirrored right joints
        if name.startswith("left_"):
            left, right = joints[names.index(name)], joints[names.index("right_" + name[5:])]
            assert left[0] > 0 and np.allclose(left * [-1, 1, 1], right)
    span = joints[names.index("left_hand"), 0] - joints[names.index("right_hand"), 0]
    assert 1.5 < span < 1.9  # T-pose arm span close to stature
    written = skeleton.write_default_skeleton(tmp_path / "s.json", height_m=1.60)
    np.testing.assert_allclose(skeleton.load_default_skeleton(written), skeleton.anthropometric_rest_joints(1.60), atol=1e-6)


def test_default_skeleton_errors_are_actionable(tmp_path):
    with pytest.raises(skeleton.SkeletonError, match="not found"):
        skeleton.load_default_skeleton(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"joint_names": list(skeleton.SMPL_JOINT_NAMES), "rest_joints": [[0, 0, 0]] * 23}))
    with pytest.raises(skeleton.SkeletonError, match="24 SMPL joints"):
        skeleton.load_default_skeleton(bad)
    bad.write_text("{not json")
    with pytest.raises(skeleton.SkeletonError, match="cannot read"):
        skeleton.load_default_skeleton(bad)


def test_bone_tails_point_at_children_and_are_never_zero_length():
    joints = skeleton.load_default_skeleton()
    tails = skeleton.bone_tails(joints)
    names = skeleton.SMPL_JOINT_NAMES
    lengths = np.linalg.norm(tails - joints, axis=1)
    assert np.all(lengths >= 0.02)
    knee, hip = names.index("left_knee"), names.index("left_hip")
    np.testing.assert_allclose(tails[hip], joints[knee])
    np.testing.assert_allclose(tails[0], joints[names.index("spine1")])  # pelvis -> spine1
    np.testing.assert_allclose(tails[names.index("spine3")], joints[names.index("neck")])
    # Degenerate input: all joints at one point still gives usable bones.
    collapsed = skeleton.bone_tails(np.zeros((24, 3)))
    assert np.all(np.linalg.norm(collapsed, axis=1) >= 0.02 - 1e-12)


# ---------------------------------------------------------------------------------------------- fk
def synthetic_poses(rng: np.random.Generator, frames_count: int) -> np.ndarray:
    poses = random_rotvecs(rng, frames_count * 24, max_angle=1.2).reshape(frames_count, 24, 3)
    poses[:, 0] = random_rotvecs(rng, frames_count, max_angle=np.pi)
    return poses


def test_forward_kinematics_matches_smplx_rigid_transform():
    torch = pytest.importorskip("torch")
    lbs = pytest.importorskip("smplx.lbs")
    rng = np.random.default_rng(5)
    rest = skeleton.load_default_skeleton() + rng.normal(scale=0.01, size=(24, 3))
    poses = synthetic_poses(rng, 40)
    rotations_fk, joints_fk = fk.forward_kinematics(rest, poses)
    rot_mats = lbs.batch_rodrigues(torch.from_numpy(poses.reshape(-1, 3))).reshape(40, 24, 3, 3)
    parents = torch.tensor(skeleton.SMPL_PARENTS)
    posed, transforms = lbs.batch_rigid_transform(rot_mats, torch.from_numpy(rest)[None].expand(40, 24, 3), parents,
                                                  dtype=torch.float64)
    np.testing.assert_allclose(joints_fk, posed.numpy(), atol=1e-7)  # smplx's 1e-8 Rodrigues epsilon
    np.testing.assert_allclose(rotations_fk, transforms[..., :3, :3].numpy(), atol=1e-7)
    # Same rotation matrices in, exact agreement out: the chain composition itself is identical.
    exact_local_rotations = torch.from_numpy(rotations.axis_angle_to_matrix(poses))
    posed_exact, _ = lbs.batch_rigid_transform(exact_local_rotations, torch.from_numpy(rest)[None].expand(40, 24, 3),
                                               parents, dtype=torch.float64)
    np.testing.assert_allclose(joints_fk, posed_exact.numpy(), atol=1e-12)


def test_forward_kinematics_identity_pose_and_root_positions():
    rest = skeleton.load_default_skeleton()
    rotations_fk, joints_fk = fk.forward_kinematics(rest, np.zeros((3, 24, 3)))
    np.testing.assert_allclose(joints_fk, np.broadcast_to(rest, (3, 24, 3)), atol=1e-15)
    np.testing.assert_allclose(rotations_fk, np.broadcast_to(np.eye(3), (3, 24, 3, 3)))
    roots = np.array([[0, 0, 0], [1, 2, 3], [-1, 0.5, 7.0]])
    _, moved = fk.forward_kinematics(rest, np.zeros((3, 24, 3)), roots)
    np.testing.assert_allclose(moved[:, 0], roots)
    np.testing.assert_allclose(moved - moved[:, :1], joints_fk - joints_fk[:, :1], atol=1e-15)
    hips = np.array([[0.2, -0.1, 3.0]] * 3)
    placed = fk.place_by_hip_center(joints_fk, hips)
    np.testing.assert_allclose(fk.hip_centers(placed), hips, atol=1e-15)
    with pytest.raises(ValueError, match="poses must be"):
        fk.forward_kinematics(rest, np.zeros((3, 23, 3)))


def test_bending_the_left_knee_moves_only_the_leg_below():
    rest = skeleton.load_default_skeleton()
    poses = np.zeros((1, 24, 3))
    knee = skeleton.SMPL_JOINT_NAMES.index("left_knee")
    poses[0, knee] = [np.pi / 2, 0, 0]  # flex 90 degrees about x
    _, joints_fk = fk.forward_kinematics(rest, poses)
    moved = np.flatnonzero(np.linalg.norm(joints_fk[0] - rest, axis=1) > 1e-12)
    assert [skeleton.SMPL_JOINT_NAMES[m] for m in moved] == ["left_ankle", "left_foot"]
    shin = rest[7] - rest[knee]
    np.testing.assert_allclose(joints_fk[0, 7] - joints_fk[0, knee], rotation_about("x", np.pi / 2) @ shin, atol=1e-15)


# ---------------------------------------------------------------------------------------------- frames
def test_frame_matrices_are_the_documented_axis_swaps():
    np.testing.assert_array_equal(frames.TRACE_TO_BLENDER @ [1, 2, 3], [1, 3, -2])  # (x, z, -y)
    np.testing.assert_array_equal(frames.CANONICAL_TO_BLENDER_REST @ [1, 2, 3], [1, -3, 2])  # (x, -z, y)
    for matrix in (frames.TRACE_TO_BLENDER, frames.CANONICAL_TO_BLENDER_REST):
        assert np.isclose(np.linalg.det(matrix), 1.0)
    transform = frames.trace_to_blender_transform()
    np.testing.assert_array_equal(frames.map_points(transform, np.array([[0.5, -1.7, 4.0]])), [[0.5, 4.0, 1.7]])


def test_upright_person_in_trace_world_stands_up_in_blender():
    rest = skeleton.load_default_skeleton()
    poses = np.zeros((1, 24, 3))
    poses[0, 0] = [np.pi, 0, 0]  # a camera looking at a standing person: canonical up -> camera -y
    _, joints_fk = fk.forward_kinematics(rest, poses)
    joints_blender = frames.map_points(frames.trace_to_blender_transform(),
                                       fk.place_by_hip_center(joints_fk, np.array([[0.0, 0.0, 5.0]])))
    names = skeleton.SMPL_JOINT_NAMES
    assert joints_blender[0, names.index("head"), 2] > joints_blender[0, 0, 2] + 0.5  # head above pelvis (z up)
    np.testing.assert_allclose(fk.hip_centers(joints_blender)[0], [0.0, 5.0, 0.0], atol=1e-12)  # 5 m in front
    # Facing: canonical +z (front) -> TRACE -z (towards the camera) -> Blender -y (towards the camera at origin).
    toe_forward = joints_blender[0, names.index("left_foot")] - joints_blender[0, names.index("left_ankle")]
    assert toe_forward[1] < 0


def test_world_alignment_must_be_rigid():
    custom = np.eye(4)
    custom[:3, 3] = [1, 2, 3]
    np.testing.assert_array_equal(frames.trace_to_blender_transform(custom), custom)
    scaled = np.diag([2.0, 2.0, 2.0, 1.0])
    with pytest.raises(frames.FrameError, match="rigid"):
        frames.trace_to_blender_transform(scaled)
    mirrored = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(frames.FrameError, match="rigid"):
        frames.trace_to_blender_transform(mirrored)
    with pytest.raises(frames.FrameError, match="4x4"):
        frames.trace_to_blender_transform(np.eye(3))


def simulate_blender_pose(rest_heads: np.ndarray, bone_rest: np.ndarray, quaternions: np.ndarray,
                          root_location: np.ndarray) -> np.ndarray:
    """Blender's pose evaluation, written out: P_i = P_p Rest_p^-1 Rest_i Basis_i; returns heads [T, J, 3]."""
    count_frames, count_joints = quaternions.shape[:2]
    rest = np.zeros((count_joints, 4, 4))
    rest[:, :3, :3], rest[:, :3, 3], rest[:, 3, 3] = bone_rest, rest_heads, 1.0
    basis = np.zeros((count_frames, count_joints, 4, 4))
    basis[..., :3, :3] = rotations.quaternion_to_matrix(quaternions)
    basis[..., 3, 3] = 1.0
    basis[:, 0, :3, 3] = root_location
    posed = np.zeros_like(basis)
    for joint, parent in enumerate(skeleton.SMPL_PARENTS):
        if parent < 0:
            posed[:, joint] = rest[joint] @ basis[:, joint]
        else:
            posed[:, joint] = posed[:, parent] @ np.linalg.inv(rest[parent]) @ rest[joint] @ basis[:, joint]
    return posed[..., :3, 3]


def test_armature_animation_reproduces_fk_under_blender_pose_composition():
    rng = np.random.default_rng(6)
    rest = skeleton.load_default_skeleton()
    count = 30
    poses = synthetic_poses(rng, count)
    hips = np.cumsum(rng.normal(scale=0.05, size=(count, 3)), axis=0) + [0, 0, 4]
    # Arbitrary bone rest orientations: the conversion must not depend on bone tails or rolls.
    bone_rest = rotations.axis_angle_to_matrix(random_rotvecs(rng, 24))
    animation = frames.armature_animation(rest, poses, hips, bone_rest)
    assert animation.quaternions.shape == (count, 24, 4) and animation.root_location.shape == (count, 3)
    assert np.all(np.sum(animation.quaternions[1:] * animation.quaternions[:-1], axis=-1) >= 0)
    heads = simulate_blender_pose(frames.canonical_to_blender_rest(rest), bone_rest, animation.quaternions,
                                  animation.root_location)
    _, joints_fk = fk.forward_kinematics(rest, poses)
    expected = frames.map_points(frames.trace_to_blender_transform(), fk.place_by_hip_center(joints_fk, hips))
    np.testing.assert_allclose(animation.joints, expected, atol=1e-12)
    np.testing.assert_allclose(heads, expected, atol=1e-10)


def test_blender_frame_rate_handles_ntsc_rates():
    assert frames.blender_frame_rate(25.0) == (25, 1.0)
    fps, base = frames.blender_frame_rate(30000 / 1001)
    assert fps == 30 and abs(fps / base - 29.97002997) < 1e-6
    fps, base = frames.blender_frame_rate(23.976)
    assert fps == 24 and abs(fps / base - 23.976) < 1e-9
    with pytest.raises(ValueError, match="positive"):
        frames.blender_frame_rate(0.0)


def test_rig_math_is_torch_and_bpy_free():
    """trace_format imports only the standard library and numpy; trace_blender.frames adds trace_format."""
    import ast
    import sys
    from pathlib import Path

    allowed_format = set(sys.stdlib_module_names) | {"numpy"}
    pure_addon_files = [Path(frames.__file__), Path(frames.__file__).with_name("plan.py")]
    for path in [*Path(rotations.__file__).parent.glob("*.py"), *pure_addon_files]:
        allowed = allowed_format if path.parent.name == "trace_format" else allowed_format | {"trace_format"}
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            assert all(n.split(".")[0] in allowed for n in names), (path.name, names)
