"""Known-answer tests of core.world.contacts on a synthetic walk built with the default skeleton.

The ground-truth walk is made with FK + analytic leg IK: the hip centre glides forward and bobs,
each ankle is exactly planted during its stance (60% of the cycle, the foot flat) and swings on an
arc to its next landing. Sliding is then added on purpose, and the cleanup must take it out again.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from trace_format.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from trace_format.skeleton import load_default_skeleton
from core.world.contacts import (
    LEGS,
    ContactError,
    SkateCleanupSettings,
    clean_foot_skate,
    detect_foot_contacts,
    foot_sliding,
    pose_to_joints,
    two_bone_ik,
)
from core.world.ground import PersonJoints, estimate_ground
from core.world.scene_camera import apply_world_transform

# The walks' stance feet slide on noise-free motion: an error the noise estimate cannot see, so the
# cleanup may move feet by up to 20 cm here (on clean input it moves them by at most 2 mm).
INJECTED_SKATE = SkateCleanupSettings(max_correction_floor_m=0.2)

FPS = 30.0
REST = load_default_skeleton()
CANONICAL_TO_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # faces +Y, z up
HIP_CENTRE_REST = 0.5 * (REST[1] + REST[2])


def _solve_legs(poses: np.ndarray, hips: np.ndarray, ankle_targets: np.ndarray) -> np.ndarray:
    """Leg rotations putting each ankle on its target, feet kept parallel to the pelvis. [T,24,3]."""
    poses = poses.copy()
    rotations, joints = pose_to_joints(REST, poses, hips)
    pelvis = rotations[:, 0]
    forward = pelvis @ np.array([0.0, 0.0, 1.0])
    for side, (hip, knee, ankle, _) in enumerate(LEGS):
        swing_thigh, swing_shin, _, reached = two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle],
                                                          ankle_targets[:, side], forward)
        assert reached.all()
        thigh = swing_thigh @ rotations[:, hip]
        shin = swing_shin @ swing_thigh @ rotations[:, knee]
        poses[:, hip] = matrix_to_axis_angle(np.swapaxes(pelvis, -1, -2) @ thigh)
        poses[:, knee] = matrix_to_axis_angle(np.swapaxes(thigh, -1, -2) @ shin)
        poses[:, ankle] = matrix_to_axis_angle(np.swapaxes(shin, -1, -2) @ pelvis)   # foot flat, facing forward
    return poses


def walk(frames: int = 150, speed: float = 1.0, period: float = 1.0, heading_deg: float = 20.0,
         slide=None, origin=(0.0, 0.0)):
    """Ground-truth walk: (poses [T,24,3], hip centres [T,3], stance [T,2] bool, times [T]).

    slide(cycle [T]) -> [T,3] optional extra ankle motion (sliding) added to the targets; cycle in
    [0, 1): stance below 0.6, swing above.
    """
    times = np.arange(frames) / FPS
    heading = math.radians(heading_deg)
    yaw = np.array([[math.cos(heading), -math.sin(heading), 0.0], [math.sin(heading), math.cos(heading), 0.0], [0, 0, 1.0]])
    orientation = yaw @ CANONICAL_TO_WORLD
    ahead = yaw @ np.array([0.0, 1.0, 0.0])
    lateral = yaw @ np.array([1.0, 0.0, 0.0])
    hip_height = 0.84 + 0.01 * np.cos(4 * math.pi * times / period)
    start = np.array([origin[0], origin[1], 0.0])
    hips = start + speed * times[:, None] * ahead + hip_height[:, None] * np.array([0.0, 0.0, 1.0])
    poses = np.zeros((frames, 24, 3))
    poses[:, 0] = matrix_to_axis_angle(orientation)
    rest_world = (REST - HIP_CENTRE_REST) @ orientation.T                 # joints relative to the hip centre
    stance = np.zeros((frames, 2), bool)
    targets = np.zeros((frames, 2, 3))
    stride = speed * period
    for side, phase in ((0, 0.0), (1, 0.5)):
        ankle = LEGS[side][2]
        cycle = (times / period + phase) % 1.0                            # stance 0 .. 0.6, swing 0.6 .. 1
        stance[:, side] = cycle < 0.6
        mid_stance_time = times - cycle * period + 0.3 * period
        swing = np.clip((cycle - 0.6) / 0.4, 0.0, 1.0)
        along = speed * mid_stance_time + swing * stride
        lift = 0.10 * np.sin(np.pi * swing)
        side_offset = rest_world[ankle] @ lateral
        targets[:, side] = (start + along[:, None] * ahead + side_offset * lateral
                            + (REST[ankle, 1] + lift)[:, None] * np.array([0.0, 0.0, 1.0]))
        if slide is not None:
            targets[:, side] += slide(cycle)
    return _solve_legs(poses, hips, targets), hips, stance, times


def stance_slide(distance: float, direction=(1.0, 0.3, 0.0)):
    """Feet slide `distance` m along `direction` over each stance and come back during the swing."""
    unit = np.asarray(direction) / np.linalg.norm(direction)

    def slide(cycle):
        amount = np.where(cycle < 0.6, cycle / 0.6, 1.0 - (cycle - 0.6) / 0.4)     # 0 -> 1 -> 0
        return (distance * amount)[:, None] * unit
    return slide


def _frame_accuracy(detected: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(detected == truth))


def _away_from_contacts(contacts: np.ndarray, margin: int) -> np.ndarray:
    """[T,2] True where the foot is not in contact and no contact is within `margin` frames."""
    count = contacts.shape[0]
    near = np.zeros_like(contacts)
    for shift in range(-margin, margin + 1):
        index = np.clip(np.arange(count) + shift, 0, count - 1)
        near |= contacts[index]
    return ~near


def test_ground_truth_walk_has_planted_feet():
    poses, hips, stance, times = walk()
    _, joints = pose_to_joints(REST, poses, hips)
    for side, (_, _, ankle, toe) in enumerate(LEGS):
        both = stance[1:, side] & stance[:-1, side]
        assert np.abs(np.diff(joints[:, [ankle, toe]], axis=0))[both].max() < 1e-9
        assert np.abs(joints[stance[:, side], ankle, 2] - REST[ankle, 1]).max() < 1e-9   # sole on z = 0
    assert foot_sliding(joints, stance) < 1e-9


def test_contact_detection_recovers_stance_phases():
    poses, hips, stance, times = walk(slide=stance_slide(0.08))
    _, joints = pose_to_joints(REST, poses, hips)
    contacts = detect_foot_contacts(joints, times)
    assert _frame_accuracy(contacts, stance) > 0.9
    # With 5 mm of joint noise as well.
    noisy = joints + np.random.default_rng(0).normal(0, 0.005, joints.shape)
    assert _frame_accuracy(detect_foot_contacts(noisy, times), stance) > 0.9


def test_cleanup_removes_stance_sliding_and_leaves_the_rest():
    poses, hips, stance, times = walk(slide=stance_slide(0.08))
    _, before = pose_to_joints(REST, poses, hips)
    result = clean_foot_skate(REST, poses, hips, times, settings=INJECTED_SKATE)
    assert _frame_accuracy(result.contacts, stance) > 0.9
    assert result.sliding_before_m > 0.003
    assert result.sliding_after_m < 0.2 * result.sliding_before_m            # >= 80% less sliding
    # Measured on the true stance phases as well.
    assert foot_sliding(result.joints, stance) < 0.2 * foot_sliding(before, stance)
    # Only leg rotations (hip, knee, ankle) and the hip centre may change.
    changed = np.any(np.abs(result.poses - poses) > 1e-9, axis=(0, 2))
    assert set(np.flatnonzero(changed)) <= {1, 2, 4, 5, 7, 8}
    # Away from contacts (beyond the blend window) the legs stay where they were ...
    away = _away_from_contacts(result.contacts, SkateCleanupSettings().blend_frames)
    for side, (_, knee, ankle, toe) in enumerate(LEGS):
        moved = np.linalg.norm(result.joints[away[:, side]][:, [knee, ankle, toe]]
                               - before[away[:, side]][:, [knee, ankle, toe]], axis=-1)
        assert moved.max() < 0.02
    # ... and the upper body never moves more than 2 cm.
    upper = [j for j in range(24) if j not in (1, 2, 4, 5, 7, 8, 10, 11)]
    assert np.linalg.norm(result.joints[:, upper] - before[:, upper], axis=-1).max() < 0.02
    assert result.unreached_frames == 0
    assert np.all(np.isfinite(result.poses))


def test_cleanup_takes_a_common_drift_out_through_the_root():
    """Someone standing with both feet planted while the body drifts (typical depth jitter)."""
    frames = 90
    times = np.arange(frames) / FPS
    drift = np.stack([0.05 * np.sin(2 * np.pi * times / 3.0), 0.04 * times, np.zeros(frames)], axis=1)   # [T,3]
    orientation = CANONICAL_TO_WORLD
    hips = np.array([0.0, 0.0, 0.86]) + drift
    poses = np.zeros((frames, 24, 3))
    poses[:, 0] = matrix_to_axis_angle(orientation)
    rest_world = (REST - HIP_CENTRE_REST) @ orientation.T
    targets = np.stack([np.repeat(rest_world[[7]] + [[0, 0, 0.86]], frames, 0),
                        np.repeat(rest_world[[8]] + [[0, 0, 0.86]], frames, 0)], axis=1)
    targets[:, :, 2] = REST[7, 1]
    planted = _solve_legs(poses, np.array([0.0, 0.0, 0.86]) + 0 * drift, targets)   # truth: no drift
    _, truth = pose_to_joints(REST, planted, np.array([0.0, 0.0, 0.86]) + 0 * drift)
    # Input: same legs, but the whole body carried by the drift (feet slide with it).
    result = clean_foot_skate(REST, planted, hips, times, settings=INJECTED_SKATE)
    assert result.contacts.all()
    assert result.sliding_after_m < 0.2 * result.sliding_before_m
    # The root absorbed the drift around its mean, the legs were barely bent.
    recentred = drift - drift.mean(axis=0)
    assert np.abs(result.root_offsets[:, :2] + recentred[:, :2]).max() < 0.005
    assert np.abs(result.poses[:, [4, 5]] - planted[:, [4, 5]]).max() < 0.05
    assert np.abs(result.joints[:, [7, 8], 2] - truth[:, [7, 8], 2]).max() < 0.005


def test_two_bone_ik_reaches_targets_and_keeps_bone_lengths():
    rng = np.random.default_rng(1)
    hip = np.zeros((50, 3))
    knee = np.tile([0.0, -0.43, 0.05], (50, 1))
    ankle = np.tile([0.0, -0.86, 0.0], (50, 1))
    target = ankle + rng.uniform(-0.15, 0.15, (50, 3)) + np.array([0.0, 0.2, 0.0])
    swing_thigh, swing_shin, new_ankle, reached = two_bone_ik(hip, knee, ankle, target, np.tile([0, 0, 1.0], (50, 1)))
    assert reached.all() and np.allclose(new_ankle, target, atol=1e-9)
    new_knee = hip + np.einsum("nij,nj->ni", swing_thigh, knee - hip)
    rebuilt_ankle = new_knee + np.einsum("nij,nj->ni", swing_shin @ swing_thigh, ankle - knee)
    assert np.allclose(rebuilt_ankle, target, atol=1e-9)
    assert np.allclose(np.linalg.norm(new_knee - hip, axis=1), np.linalg.norm(knee - hip, axis=1))
    assert np.all(new_knee[:, 2] > 0)          # the knee still bends forward (+z pole)
    # Out of reach: the leg straightens towards the target and says so.
    far = np.tile([0.0, -2.0, 0.0], (1, 1))
    _, _, stretched, ok = two_bone_ik(hip[:1], knee[:1], ankle[:1], far, np.array([[0, 0, 1.0]]))
    assert not ok[0] and np.linalg.norm(stretched[0]) < 0.8715


def test_contact_hysteresis_and_minimum_duration():
    frames = 60
    times = np.arange(frames) / FPS
    joints = np.zeros((frames, 24, 3))
    joints[:, :, 2] = 0.5                             # everything in the air ...
    heights = np.array([0.068, 0.068, 0.021, 0.021])
    ankle_z = np.full(frames, 0.5)
    ankle_z[10:30] = 0.068 + 0.01                      # ... left ankle planted 20 frames
    ankle_z[18] = 0.068 + 0.07                         # one frame between enter and exit height: kept
    ankle_z[45:47] = 0.068                             # a 2-frame touch: too short, dropped
    joints[:, 7, 2] = ankle_z
    contacts = detect_foot_contacts(joints, times, heights)
    assert not contacts[:, 1].any()
    left = np.flatnonzero(contacts[:, 0])
    assert left.min() <= 11 and left.max() >= 28 and contacts[10:30, 0].sum() >= 18
    assert not contacts[40:, 0].any()


def test_errors_are_actionable():
    poses = np.zeros((5, 24, 3))
    with pytest.raises(ContactError, match="hip_centers"):
        clean_foot_skate(REST, poses, np.zeros((4, 3)), np.arange(5) / FPS)
    with pytest.raises(ContactError, match="increase"):
        detect_foot_contacts(np.zeros((5, 24, 3)), np.zeros(5))
    with pytest.raises(ContactError, match=r"\[T,24,3\]"):
        detect_foot_contacts(np.zeros((5, 17, 3)), np.arange(5))
    assert math.isnan(foot_sliding(np.zeros((5, 24, 3)), np.zeros((5, 2), bool)))
    assert axis_angle_to_matrix(np.zeros(3)).shape == (3, 3)


def test_pipeline_order_from_trace_world_to_clean_feet():
    """TRACE world (a pitched, rolled camera) -> ground alignment -> cleanup in the aligned world."""
    pitch, roll = math.radians(15.0), math.radians(3.0)
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])     # camera axes in the world (columns)
    tilt = np.array([[1, 0, 0], [0, math.cos(-pitch), -math.sin(-pitch)], [0, math.sin(-pitch), math.cos(-pitch)]])
    twist = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1.0]])
    cam_rotation, cam_centre = level @ tilt @ twist, np.array([0.3, -2.0, 1.5])
    walkers = [walk(heading_deg=20.0, slide=stance_slide(0.06), origin=(-1.0, 2.0)),
               walk(heading_deg=-70.0, slide=stance_slide(0.06), origin=(1.5, 5.0))]
    people, trace_arrays = [], []
    for poses, hips, _, times in walkers:
        orient_trace = matrix_to_axis_angle(cam_rotation.T @ axis_angle_to_matrix(poses[:, 0]))
        hips_trace = (hips - cam_centre) @ cam_rotation
        trace_poses = np.concatenate([orient_trace[:, None], poses[:, 1:]], axis=1)
        _, joints_trace = pose_to_joints(REST, trace_poses, hips_trace)
        people.append(PersonJoints(joints=joints_trace, times=times))
        trace_arrays.append((trace_poses, hips_trace, times))
    alignment = estimate_ground(people)
    assert alignment.method == "plane_fit"
    for (trace_poses, hips_trace, times), (poses, hips, stance, _) in zip(trace_arrays, walkers):
        orient, aligned_hips, _ = apply_world_transform(alignment.matrix, trace_poses[:, 0], hips_trace)
        aligned_poses = np.concatenate([orient[:, None], trace_poses[:, 1:]], axis=1)
        result = clean_foot_skate(REST, aligned_poses, aligned_hips, times, settings=INJECTED_SKATE)
        assert _frame_accuracy(result.contacts, stance) > 0.9
        assert result.sliding_after_m < 0.2 * result.sliding_before_m
        # Aligned heights equal the true heights (floor z = 0 in both).
        assert np.abs(aligned_hips[:, 2] - hips[:, 2]).max() < 0.02
