"""Known-answer tests of core.world.ground: synthetic people on a known floor seen by a tilted camera.

Truth lives in a z-up world with the floor at z = 0. The camera stands at a known height, pitched
down and rolled; its frame (x right, y down, z forward) is the TRACE world the algorithm sees.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from trace_format.schema import DEFAULT_ALIGNMENT_MATRIX
from trace_format.skeleton import load_default_skeleton
from core.world.ground import (
    DEFAULT_FOOT_JOINT_HEIGHTS,
    FOOT_JOINTS,
    GroundFitError,
    GroundFitSettings,
    PersonJoints,
    alignment_from_plane,
    default_alignment,
    estimate_ground,
    foot_joint_heights,
)

FPS = 30.0
REST = load_default_skeleton()                      # canonical, y up, soles at y = 0
LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS = (7, 10), (8, 11)


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


# Canonical (body's left +x, y up, facing +z) -> z-up world, body facing +Y (its left on -X): (-x, z, y).
CANONICAL_TO_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def standing_person(position, heading: float, frames: int, rng, floor_z: float = 0.0) -> np.ndarray:
    """[T,24,3] world joints of someone standing (upper body sways by a few cm, feet still)."""
    body = REST @ CANONICAL_TO_WORLD.T @ _rot_z(heading).T + np.array([position[0], position[1], floor_z])
    joints = np.repeat(body[None], frames, axis=0)
    sway = 0.03 * np.sin(np.arange(frames) / FPS * 2.0)[:, None] * np.array([1.0, 0.5, 0.0])
    upper = [j for j in range(24) if j not in (*LEFT_FOOT_JOINTS, *RIGHT_FOOT_JOINTS, 4, 5)]
    joints[:, upper] += sway[:, None]
    return joints


def walking_person(start, heading: float, frames: int, speed: float = 1.2, period: float = 1.0,
                   floor_z: float = 0.0) -> np.ndarray:
    """[T,24,3] world joints of a straight walk: body glides, each foot alternates stance (60%) and swing.

    Stance feet are exactly still on the floor; a swing foot travels to its next landing on an arc.
    """
    times = np.arange(frames) / FPS
    direction = _rot_z(heading) @ np.array([0.0, 1.0, 0.0])
    body = REST @ CANONICAL_TO_WORLD.T @ _rot_z(heading).T + np.array([start[0], start[1], floor_z])
    joints = body[None] + (speed * times)[:, None, None] * direction      # everything glides ...
    stride = speed * period
    for foot, phase in ((LEFT_FOOT_JOINTS, 0.0), (RIGHT_FOOT_JOINTS, 0.5)):
        cycle = (times / period + phase) % 1.0                            # 0..0.6 stance, 0.6..1 swing
        cycle_start = times - cycle * period
        # ... except the feet: during stance they stay where the body was mid-stance
        stance_anchor = speed * (cycle_start + 0.3 * period)
        swing = np.clip((cycle - 0.6) / 0.4, 0.0, 1.0)
        along = stance_anchor + swing * stride                              # [T]
        lift = 0.12 * np.sin(np.pi * swing)                                 # [T]
        for joint in foot:
            joints[:, joint] = body[joint] + along[:, None] * direction + lift[:, None] * np.array([0, 0, 1.0])
    return joints


def jumping_person(position, frames: int, height: float = 0.45, period: float = 1.2) -> np.ndarray:
    """[T,24,3]: repeated vertical jumps (feet slow near the apex: tempting false contacts)."""
    body = REST @ CANONICAL_TO_WORLD.T + np.array([position[0], position[1], 0.0])
    phase = (np.arange(frames) / FPS / period) % 1.0
    lift = height * np.clip(np.sin(np.pi * phase / 0.6), 0.0, None) * (phase < 0.6)
    return body[None] + lift[:, None, None] * np.array([0.0, 0.0, 1.0])


def camera(height: float, pitch_deg: float, roll_deg: float, position_xy=(0.4, -1.0)):
    """(R_world_from_cam [3,3], centre [3]): looks along +Y, pitched down, rolled about its axis."""
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns: cam x, y, z in world
    rotation = level @ _rot_x(-math.radians(pitch_deg))
    rotation = rotation @ np.array([[math.cos(math.radians(roll_deg)), -math.sin(math.radians(roll_deg)), 0],
                                    [math.sin(math.radians(roll_deg)), math.cos(math.radians(roll_deg)), 0],
                                    [0, 0, 1.0]])
    return rotation, np.array([position_xy[0], position_xy[1], height])


def to_camera(points_world: np.ndarray, rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return (points_world - centre) @ rotation   # R^T (p - c), row form


def make_people(worlds, rotation, centre, rng, noise=0.01, noise_per_metre=0.0, with_up_axes=False):
    """PersonJoints in the camera (TRACE) frame with Gaussian joint noise (sigma grows with distance).

    with_up_axes: also give each body's up axis (what global_orient_world provides): world +Z here.
    """
    people = []
    for joints in worlds:
        cam = to_camera(joints, rotation, centre)
        sigma = noise + noise_per_metre * np.linalg.norm(cam, axis=-1, keepdims=True)
        cam = cam + rng.normal(0.0, 1.0, cam.shape) * sigma
        up_axes = np.repeat((rotation.T @ np.array([0.0, 0.0, 1.0]))[None], len(cam), axis=0) if with_up_axes else None
        people.append(PersonJoints(joints=cam, times=np.arange(len(cam)) / FPS, up_axes=up_axes))
    return people


def expected_alignment(rotation: np.ndarray, centre: np.ndarray):
    """Truth: aligned = world - (cx, cy, 0) when the camera looks along +Y (no yaw), else rotated."""
    def world_to_aligned(points_world):
        return points_world - np.array([centre[0], centre[1], 0.0])
    return world_to_aligned


def _normal_error_deg(alignment, rotation) -> float:
    true_up_trace = rotation.T @ np.array([0.0, 0.0, 1.0])      # world +Z seen from the camera
    mapped = alignment.rotation @ true_up_trace
    return math.degrees(math.acos(np.clip(mapped[2], -1, 1)))


def _sole_heights(aligned_joints: np.ndarray) -> np.ndarray:
    """[T,4] heights of the soles below the foot joints in the aligned world."""
    return aligned_joints[:, list(FOOT_JOINTS), 2] - DEFAULT_FOOT_JOINT_HEIGHTS


@pytest.mark.parametrize("pitch, roll, height", [(10.0, 3.0, 1.2), (18.0, -4.0, 1.6), (25.0, 5.0, 2.0)])
def test_tilted_camera_floor_becomes_z0_with_z_up(pitch, roll, height):
    rng = np.random.default_rng(1)
    rotation, centre = camera(height, pitch, roll)
    frames = 90
    worlds = [standing_person((1.0, 5.0), 0.3, frames, rng),
              walking_person((-2.0, 3.0), -0.4, frames),
              walking_person((2.5, 9.0), 2.6, frames)]
    alignment = estimate_ground(make_people(worlds, rotation, centre, rng))
    assert alignment.method == "plane_fit"
    assert _normal_error_deg(alignment, rotation) < 1.0
    assert alignment.camera_height == pytest.approx(height, abs=0.02)
    standing = alignment.apply_points(to_camera(worlds[0], rotation, centre))
    assert np.abs(_sole_heights(standing)).max() < 0.02
    # Yaw: the camera's forward axis projected on the floor is +Y, so aligned = world - camera xy.
    truth = expected_alignment(rotation, centre)
    for joints in worlds:
        aligned = alignment.apply_points(to_camera(joints, rotation, centre))
        assert np.abs(aligned - truth(joints)).max() < 0.05
    assert alignment.inliers > 0.5 * alignment.candidates
    assert alignment.rms_residual_m < 0.02
    assert alignment.prior_angle_deg < 10.0


def test_people_far_apart_share_one_floor():
    rng = np.random.default_rng(2)
    rotation, centre = camera(1.5, 15.0, 2.0)
    frames = 90
    near = walking_person((-3.0, 3.0), 0.5, frames)
    far = walking_person((6.0, 12.0), -2.0, frames)        # ~10 m away from the first person
    alignment = estimate_ground(make_people([near, far], rotation, centre, rng, noise=0.005, noise_per_metre=0.002))
    assert _normal_error_deg(alignment, rotation) < 1.0
    for joints in (near, far):
        aligned = alignment.apply_points(to_camera(joints, rotation, centre))
        stance = np.abs(np.diff(joints[:, list(FOOT_JOINTS)], axis=0)).max(axis=-1) < 1e-9   # [T-1,4]
        assert np.abs(_sole_heights(aligned)[1:][stance]).max() < 0.02


def test_jumping_person_and_person_on_a_ledge_do_not_tilt_the_floor():
    rng = np.random.default_rng(3)
    rotation, centre = camera(1.7, 20.0, -3.0)
    frames = 120
    floor_people = [walking_person((-2.0, 4.0), 0.2, frames), walking_person((2.0, 8.0), 3.0, frames),
                    standing_person((0.5, 6.0), 0.0, frames, rng)]
    jumper = jumping_person((-1.0, 7.0), frames)
    on_ledge = standing_person((3.5, 5.0), 1.0, frames, rng, floor_z=0.5)
    alignment = estimate_ground(make_people([*floor_people, jumper, on_ledge], rotation, centre, rng))
    assert alignment.method == "plane_fit"
    assert _normal_error_deg(alignment, rotation) < 1.0
    standing = alignment.apply_points(to_camera(floor_people[2], rotation, centre))
    assert np.abs(_sole_heights(standing)).max() < 0.02
    ledge = alignment.apply_points(to_camera(on_ledge, rotation, centre))
    assert np.abs(_sole_heights(ledge) - 0.5).max() < 0.03      # stays on its ledge, floor not pulled up


def test_single_standing_person_uses_the_prior_where_contacts_span_no_area():
    rng = np.random.default_rng(4)
    rotation, centre = camera(1.6, 12.0, 2.0)
    person = standing_person((0.0, 4.0), 0.0, 60, rng)
    alignment = estimate_ground(make_people([person], rotation, centre, rng, noise=0.005))
    # The people's upright direction (pelvis -> neck, 2 deg lean in the default skeleton) decides the
    # tilt; the feet still decide the height.
    assert _normal_error_deg(alignment, rotation) < 4.0
    aligned = alignment.apply_points(to_camera(person, rotation, centre))
    assert np.abs(_sole_heights(aligned)).max() < 0.03


def test_too_few_contacts_fall_back_to_prior_and_lowest_foot():
    rng = np.random.default_rng(5)
    rotation, centre = camera(1.4, 15.0, 0.0)
    person = standing_person((0.0, 4.0), 0.0, 1, rng)
    # Bodies' up axes given (from global_orient_world): the fallback is exact.
    alignment = estimate_ground(make_people([person], rotation, centre, rng, noise=0.0, with_up_axes=True))
    assert alignment.method == "up_prior_lowest_foot"      # one frame: no speed, no contact candidates
    assert alignment.candidates == 0
    assert alignment.camera_height == pytest.approx(1.4, abs=0.02)
    assert _normal_error_deg(alignment, rotation) < 0.01
    assert "upright" in alignment.note
    assert alignment.confidence == "low" and "leans" in alignment.confidence_note   # never a trusted floor
    # From joints alone the prior is pelvis -> neck, which leans ~2 deg in the default skeleton: the
    # floor tilts by that much and the height is off by ~distance x angle (documented limit).
    joints_only = estimate_ground(make_people([person], rotation, centre, rng, noise=0.0))
    assert joints_only.method == "up_prior_lowest_foot"
    assert _normal_error_deg(joints_only, rotation) < 3.0
    aligned = joints_only.apply_points(to_camera(person, rotation, centre))
    assert np.abs(_sole_heights(aligned)).max() < 0.02     # the feet themselves are still on z = 0


def test_default_alignment_is_the_fixed_axis_swap():
    default = default_alignment()
    assert default.method == "none"
    assert np.array_equal(default.rotation, DEFAULT_ALIGNMENT_MATRIX[:3, :3])
    assert np.array_equal(default.translation, np.zeros(3))
    assert np.allclose(alignment_from_plane(np.array([0.0, -1.0, 0.0]), 0.0), default.matrix)
    # A floor 1.5 m below a level camera only adds the height.
    lifted = alignment_from_plane(np.array([0.0, -1.0, 0.0]), -1.5)
    assert np.allclose(lifted[:3, :3], DEFAULT_ALIGNMENT_MATRIX[:3, :3]) and np.allclose(lifted[:3, 3], [0, 0, 1.5])
    assert np.allclose(default.apply_points(np.array([1.0, 2.0, 3.0])), [1.0, 3.0, -2.0])


def test_camera_looking_straight_down_keeps_a_defined_yaw():
    matrix = alignment_from_plane(np.array([0.0, 0.0, -1.0]), -3.0)   # floor normal = -forward
    rotation = matrix[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.linalg.det(rotation) == pytest.approx(1.0)
    assert np.allclose(rotation @ np.array([0.0, -1.0, 0.0]), [0.0, 1.0, 0.0])   # image up -> +Y


def test_foot_heights_and_errors():
    assert np.allclose(foot_joint_heights(REST), REST[list(FOOT_JOINTS), 1])
    lowered = REST - np.array([0.0, 1.2, 0.0])                # SMPL-like: soles well below y = 0
    with pytest.raises(GroundFitError, match="rest vertices"):
        foot_joint_heights(lowered)
    vertices = np.array([[0.0, -1.2, 0.0], [0.0, 0.5, 0.0]])
    assert np.allclose(foot_joint_heights(lowered, vertices), REST[list(FOOT_JOINTS), 1])
    with pytest.raises(GroundFitError, match="no people"):
        estimate_ground([])
    person = PersonJoints(joints=np.zeros((3, 24, 3)), times=np.arange(3) / FPS, weights=np.zeros(3))
    with pytest.raises(GroundFitError, match="usable"):
        estimate_ground([person])
    with pytest.raises(GroundFitError, match=r"\[T,24,3\]"):
        estimate_ground([PersonJoints(joints=np.zeros((3, 17, 3)), times=np.arange(3))])
    assert GroundFitSettings().seed == 0
