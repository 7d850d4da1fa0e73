"""apply_world_processing on a synthetic scene with a known answer.

Truth lives in a z-up world with the floor at z = 0. Two shots separated by a hard cut at frame
120: in each, a camera 1.2-1.8 m above the floor, pitched 12-21 degrees down and rolled 3-4 degrees
(the first one also pans, tilts, rises and dollies), films people walking (FK + two-bone IK on the default
skeleton, stance feet planted and then made to slide 6 cm per step). What TRACE would report is made
exactly: poses in the camera frame, and world arrays in the camera frame where each track started
(the second person of shot 0 starts later, in a different TRACE world). One person is tracked
across the cut under the same id, as a tracker that is not restarted would do.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trace_format.npz import read_result, write_result
from trace_format.schema import (DEFAULT_ALIGNMENT_MATRIX, CameraInfo, FramesProcessed, TraceResult, TrackResult,
                                 VideoInfo)
from trace_format.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from trace_format.skeleton import load_default_skeleton
from helpers.blender import planned_camera_matrices
from core.world.contacts import LEGS, foot_sliding, pose_to_joints, two_bone_ik
from core.world.ground import DEFAULT_FOOT_JOINT_HEIGHTS, FOOT_JOINTS
from core.world.contacts import SkateCleanupSettings
from core.world.postprocess import WorldProcessingError, WorldProcessingSettings, apply_world_processing, smpl_rest_body

FPS = 30.0
CUT = 120
FRAMES = 240
REST = load_default_skeleton()
HIP_CENTRE_REST = 0.5 * (REST[1] + REST[2])
CANONICAL_TO_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # faces +Y, z up
LEVEL_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])          # looks along +Y
FLIP_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])
UP = np.array([0.0, 0.0, 1.0])
# The scenes' stance feet slide on noise-free motion: an error the noise estimate cannot see, so the
# cleanup is allowed to move feet by up to 20 cm (on clean input it moves them by at most 2 mm:
# docs/world.md "Do no harm", tests/test_world_quality.py).
INJECTED_SKATE = WorldProcessingSettings(cleanup=SkateCleanupSettings(max_correction_floor_m=0.2))


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations [...,3,3] about x (0) or z (2) by angles [...]."""
    angle = np.asarray(angle, float)
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    rows = [o, z, z, z, c, -s, z, s, c] if axis == 0 else [c, -s, z, s, c, z, z, z, o]
    return np.stack(rows, -1).reshape(angle.shape + (3, 3))


def camera_path(frames: np.ndarray, height: float, pitch_deg: float, roll_deg: float, position_xy, pan_deg: float = 0.0,
                tilt_deg: float = 0.0, velocity=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Truth camera (R camera->world [T,3,3] with OpenCV axes, centre [T,3]): pitched down, rolled,
    panning by up to `pan_deg`, tilting by up to `tilt_deg` and moving at `velocity` (m/s)."""
    t = (frames - frames[0]) / FPS
    yaw = np.radians(pan_deg) * np.sin(0.8 * t)
    pitch = np.radians(pitch_deg + tilt_deg * np.sin(1.1 * t))
    rotation = _rot(2, yaw) @ LEVEL_CAMERA @ _rot(0, -pitch) @ _rot(2, np.full(len(t), math.radians(roll_deg)))
    centre = np.array([position_xy[0], position_xy[1], height]) + t[:, None] * np.asarray(velocity)
    return rotation, centre


def walk(frames: int, heading_deg: float, origin, speed: float = 1.0, period: float = 1.0, slide: float = 0.06):
    """Truth walk in the z-up world: (poses [T,24,3] joint 0 = world orientation, hips [T,3], stance [T,2]).

    Stance lasts 60% of a cycle with the foot flat; `slide` metres of foot sliding are added over each
    stance (and taken back during the swing), along a fixed direction.
    """
    times = np.arange(frames) / FPS
    heading = math.radians(heading_deg)
    yaw = _rot(2, np.array(heading))
    orientation = yaw @ CANONICAL_TO_WORLD
    ahead, lateral = yaw @ [0.0, 1.0, 0.0], yaw @ [1.0, 0.0, 0.0]
    start = np.array([origin[0], origin[1], 0.0])
    hips = start + speed * times[:, None] * ahead + (0.84 + 0.01 * np.cos(4 * math.pi * times / period))[:, None] * UP
    poses = np.zeros((frames, 24, 3))
    poses[:, 0] = matrix_to_axis_angle(orientation)
    rest_world = (REST - HIP_CENTRE_REST) @ orientation.T
    slide_direction = np.array([1.0, 0.3, 0.0]) / np.linalg.norm([1.0, 0.3, 0.0])
    stance = np.zeros((frames, 2), bool)
    targets = np.zeros((frames, 2, 3))
    for side, phase in ((0, 0.0), (1, 0.5)):
        ankle = LEGS[side][2]
        cycle = (times / period + phase) % 1.0
        stance[:, side] = cycle < 0.6
        swing = np.clip((cycle - 0.6) / 0.4, 0.0, 1.0)
        along = speed * (times - cycle * period + 0.3 * period) + swing * speed * period
        sliding = slide * np.where(cycle < 0.6, cycle / 0.6, 1.0 - swing)
        targets[:, side] = (start + along[:, None] * ahead + (rest_world[ankle] @ lateral) * lateral
                            + (REST[ankle, 1] + 0.10 * np.sin(np.pi * swing))[:, None] * UP
                            + sliding[:, None] * slide_direction)
    rotations, joints = pose_to_joints(REST, poses, hips)
    pelvis = rotations[:, 0]
    for side, (hip, knee, ankle, _) in enumerate(LEGS):
        swing_thigh, swing_shin, _, reached = two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle],
                                                          targets[:, side], pelvis @ [0.0, 0.0, 1.0])
        assert reached.all()
        thigh = swing_thigh @ rotations[:, hip]
        shin = swing_shin @ swing_thigh @ rotations[:, knee]
        poses[:, hip] = matrix_to_axis_angle(np.swapaxes(pelvis, -1, -2) @ thigh)
        poses[:, knee] = matrix_to_axis_angle(np.swapaxes(thigh, -1, -2) @ shin)
        poses[:, ankle] = matrix_to_axis_angle(np.swapaxes(shin, -1, -2) @ pelvis)      # foot flat
    return poses, hips, stance


def observe(track_id: int, frames: np.ndarray, poses, hips, cam_r, cam_t, world_frame: int, observed=None) -> TrackResult:
    """What TRACE reports for one person over `frames` (arrays indexed by frame number).

    Camera frame: R_cam^T R_body, R_cam^T (hip - c). World: the camera frame at `world_frame`.
    """
    r_body = axis_angle_to_matrix(poses[frames, 0])
    r_cam, c_cam = cam_r[frames], cam_t[frames]
    r0, c0 = cam_r[world_frame], cam_t[world_frame]
    count = len(frames)
    camera_poses = poses[frames].copy()
    camera_poses[:, 0] = matrix_to_axis_angle(np.swapaxes(r_cam, -1, -2) @ r_body)
    return TrackResult(
        track_id=track_id, frames=frames, times=frames / FPS, poses=camera_poses,
        global_orient_world=matrix_to_axis_angle(r0.T @ r_body), betas=np.zeros((count, 10)),
        hip_center_cam=np.einsum("tji,tj->ti", r_cam, hips[frames] - c_cam), hip_center_world=(hips[frames] - c0) @ r0,
        confidence=np.full(count, 0.9), observed=np.ones(count, bool) if observed is None else observed,
        center_2d=np.full((count, 2), 320.0))


class Scene:
    """The synthetic two-shot scene: truth and the TRACE-like result."""

    def __init__(self) -> None:
        every = np.arange(FRAMES)
        first, second = every[:CUT], every[CUT:]
        rotation_a, centre_a = camera_path(first, 1.4, 18.0, 3.0, (0.4, -1.0), pan_deg=4.0, tilt_deg=3.0,
                                           velocity=(0.3, 0.05, 0.1))
        rotation_b, centre_b = camera_path(second, 1.2, 12.0, -4.0, (-2.0, 0.5), pan_deg=0.0)
        self.cam_r = np.concatenate([rotation_a, rotation_b])
        self.cam_t = np.concatenate([centre_a, centre_b])
        # Person P walks in shot 0 and (elsewhere) in shot 1, tracked across the cut under one id.
        p_a = walk(CUT, 20.0, (-1.0, 3.0))
        p_b = walk(FRAMES - CUT, -60.0, (-3.0, 4.5))
        self.p = tuple(np.concatenate([a, b]) for a, b in zip(p_a, p_b))
        self.q = walk(FRAMES, 160.0, (1.5, 6.0))          # shot 0 only, from frame 20
        self.r = walk(FRAMES, 100.0, (-4.5, 6.0))         # shot 1 only, from frame 130
        observed = np.ones(FRAMES, bool)
        observed[60:64] = False                            # a few infilled frames
        p_first = observe(0, first, *self.p[:2], self.cam_r, self.cam_t, world_frame=0, observed=observed[:CUT])
        p_second = observe(0, second, *self.p[:2], self.cam_r, self.cam_t, world_frame=CUT)
        p_track = TrackResult(track_id=0, **{name: np.concatenate([getattr(p_first, name), getattr(p_second, name)])
                                             for name in ("frames", "times", "poses", "global_orient_world", "betas",
                                                          "hip_center_cam", "hip_center_world", "confidence",
                                                          "observed", "center_2d")})
        q_track = observe(1, np.arange(20, CUT), *self.q[:2], self.cam_r, self.cam_t, world_frame=20)
        r_track = observe(2, np.arange(130, FRAMES), *self.r[:2], self.cam_r, self.cam_t, world_frame=130)
        self.result = TraceResult(
            tracks=[p_track, q_track, r_track],
            video=VideoInfo(path="synthetic_cut.mp4", fps=FPS, width=1280, height=720, frame_count=FRAMES),
            camera=CameraInfo(fov_deg=50.0, focal_px=1372.4), notes=["synthetic"],
            frames_processed=FramesProcessed(first=0, last=FRAMES - 1))
        # Truth per output track id: (person arrays, frame of its TRACE world). Piece 2 of track 0 gets id 3.
        self.truth = {0: (self.p, 0), 1: (self.q, 20), 3: (self.p, CUT), 2: (self.r, 130)}


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


@pytest.fixture(scope="module")
def processed(scene) -> TraceResult:
    return apply_world_processing(scene.result, settings=INJECTED_SKATE, cut_frames=[CUT])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    chord = np.linalg.norm(a - b, axis=(-2, -1))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * math.sqrt(2.0)), 0.0, 1.0)))


def _blender_joints(result: TraceResult, track: TrackResult, cleaned: bool) -> np.ndarray:
    """FK joints [T,24,3] of the stored (cleaned or raw) motion, in Blender's world."""
    _, joints = pose_to_joints(REST, track.world_poses(cleaned), track.world_hip_centers(cleaned))
    transform = result.blender_transform(track)
    return joints @ transform[:3, :3].T + transform[:3, 3]


def _sole_heights(joints: np.ndarray) -> np.ndarray:
    """[T,4] sole heights under (left ankle, right ankle, left toe, right toe)."""
    return joints[:, list(FOOT_JOINTS), 2] - DEFAULT_FOOT_JOINT_HEIGHTS


def test_shots_and_tracks_split_at_the_cut(processed, scene):
    assert [(s.index, s.start, s.stop, s.aligned) for s in processed.shots] == [(0, 0, CUT, True), (1, CUT, FRAMES, True)]
    assert [(t.track_id, t.shot) for t in processed.tracks] == [(0, 0), (1, 0), (3, 1), (2, 1)]
    for track in processed.tracks:
        shot = processed.shots[track.shot]
        assert shot.start <= track.frames[0] and track.frames[-1] < shot.stop
    assert processed.world_processing["split_tracks"] == [{"track_id": 3, "source_track_id": 0, "shot": 1}]
    assert processed.track(3).frames.tolist() == list(range(CUT, FRAMES))
    # The raw TRACE arrays are copied unchanged.
    original = scene.result.track(0)
    assert np.array_equal(processed.track(3).hip_center_world, original.hip_center_world[CUT:])
    assert np.array_equal(processed.track(0).poses, original.poses[:CUT])
    assert processed.format_version == 3 and processed.frames_processed == scene.result.frames_processed


def test_floor_is_level_at_zero_in_every_shot(processed, scene):
    for track in processed.tracks:
        (poses, hips, stance), world_frame = scene.truth[track.track_id]
        transform = processed.blender_transform(track)
        true_up_in_track_world = scene.cam_r[world_frame].T @ UP
        assert _angle_deg(transform[:3, :3] @ true_up_in_track_world, UP) < 1.0, track.track_id
        # Raw stance feet (sliding is horizontal) stand on z = 0 ...
        raw = _sole_heights(_blender_joints(processed, track, cleaned=False))
        planted = stance[track.frames][:, [0, 1, 0, 1]]
        assert np.abs(raw[planted]).max() < 0.02, track.track_id
        # ... and the cleaned feet in contact do too.
        clean = _sole_heights(_blender_joints(processed, track, cleaned=True))
        contact = track.contacts[:, [0, 1, 0, 1]]
        assert contact[:, 0].sum() > 20 and np.abs(clean[contact]).max() < 0.02, track.track_id
        # Contacts found are the stance phases.
        assert np.mean(track.contacts == stance[track.frames]) > 0.85
    for shot in processed.shots:
        assert shot.alignment_info["method"] == "plane_fit" and shot.alignment_info["rms_residual_m"] < 0.02


def test_late_track_is_registered_into_the_shot_world(processed, scene):
    """Track 1 started at frame 20, in the camera frame of that moment: its registration is the
    camera's motion between frame 0 (the shot world) and frame 20."""
    r0, c0, r20, c20 = scene.cam_r[0], scene.cam_t[0], scene.cam_r[20], scene.cam_t[20]
    truth = np.eye(4)
    truth[:3, :3], truth[:3, 3] = r0.T @ r20, r0.T @ (c20 - c0)
    registration = processed.track(1).registration
    assert _rotation_error_deg(registration[:3, :3], truth[:3, :3]) < 0.1
    assert np.linalg.norm(registration[:3, 3] - truth[:3, 3]) < 0.01
    assert _rotation_error_deg(truth[:3, :3], np.eye(3)) > 2.0 and np.linalg.norm(truth[:3, 3]) > 0.1  # it matters
    assert np.allclose(processed.track(0).registration, np.eye(4))


def test_foot_sliding_reduced_by_cleanup(processed):
    for track in processed.tracks:
        raw = _blender_joints(processed, track, cleaned=False)
        clean = _blender_joints(processed, track, cleaned=True)
        before, after = foot_sliding(raw, track.contacts), foot_sliding(clean, track.contacts)
        assert before > 0.002 and after < 0.2 * before, (track.track_id, before, after)
        metrics = next(m for m in processed.world_processing["metrics"]["tracks"] if m["track_id"] == track.track_id)
        assert metrics["sliding_before_m"] == pytest.approx(before, rel=1e-3)
        assert metrics["sliding_after_m"] == pytest.approx(after, rel=1e-2, abs=1e-5)
    overall = processed.world_processing["metrics"]["foot_sliding"]
    assert overall["reduction"] >= 0.8 and overall["after_m"] < overall["before_m"]


def test_scene_camera_matches_the_truth(processed, scene):
    first_track_of_shot = {0: processed.track(0), 1: processed.track(3)}
    for shot_index, track in first_track_of_shot.items():
        frames, matrices = planned_camera_matrices(processed)[shot_index]
        shot = processed.shots[shot_index]
        assert frames.tolist() == list(range(shot.start, shot.stop))
        world_frame = scene.truth[track.track_id][1]
        r0, c0 = scene.cam_r[world_frame], scene.cam_t[world_frame]
        transform = processed.blender_transform(track)
        true_r = transform[:3, :3] @ r0.T @ scene.cam_r[frames] @ FLIP_TO_BLENDER_CAMERA    # [F,3,3]
        true_t = (scene.cam_t[frames] - c0) @ r0 @ transform[:3, :3].T + transform[:3, 3]   # [F,3]
        assert _rotation_error_deg(matrices[:, :3, :3], true_r).max() < 0.5
        assert np.linalg.norm(matrices[:, :3, 3] - true_t, axis=1).max() < 0.02
        # The camera stands at its true height above the floor.
        assert np.abs(matrices[:, 2, 3] - scene.cam_t[frames, 2]).max() < 0.02
    camera_metrics = [m["camera"] for m in processed.world_processing["metrics"]["shots"]]
    assert all(m["spread_deg_max"] < 0.1 and m["interpolated_frames"] == 0 for m in camera_metrics)


def _with_noise(track: TrackResult, rng, angle_deg: float, metres: float) -> TrackResult:
    """The track with Gaussian noise on every rotation (angle_deg) and on the hip centres (metres)."""
    count = track.num_frames

    def turned(axis_angle):
        noise = axis_angle_to_matrix(rng.normal(0.0, math.radians(angle_deg), (count, 3)))
        return matrix_to_axis_angle(noise @ axis_angle_to_matrix(axis_angle))

    poses = track.poses.astype(float)
    poses[:, 0] = turned(poses[:, 0])
    poses[:, 1:22] += rng.normal(0.0, math.radians(angle_deg), (count, 21, 3))
    return dataclasses.replace(track, poses=poses, global_orient_world=turned(track.global_orient_world),
                               hip_center_cam=track.hip_center_cam + rng.normal(0.0, metres, (count, 3)),
                               hip_center_world=track.hip_center_world + rng.normal(0.0, metres, (count, 3)))


def test_noisy_inputs_stay_within_bounds(scene):
    """1 degree of noise on every rotation and 1 cm on the hips, per frame (measured: floor 0.07-0.34
    deg, cleaned contact soles <= 9 mm, sliding 42.5 -> 4.4 mm, camera <= 1.7 deg / 16 cm)."""
    rng = np.random.default_rng(0)
    noisy = dataclasses.replace(scene.result, tracks=[_with_noise(t, rng, 1.0, 0.01) for t in scene.result.tracks])
    result = apply_world_processing(noisy, settings=INJECTED_SKATE, cut_frames=[CUT])
    for track in result.tracks:
        world_frame = scene.truth[track.track_id][1]
        up = result.blender_transform(track)[:3, :3] @ scene.cam_r[world_frame].T @ UP
        assert _angle_deg(up, UP) < 1.0
        clean = _sole_heights(_blender_joints(result, track, cleaned=True))
        assert np.abs(clean[track.contacts[:, [0, 1, 0, 1]]]).max() < 0.02
    assert result.world_processing["metrics"]["foot_sliding"]["reduction"] >= 0.8
    for shot_index, track_id in ((0, 0), (1, 3)):
        track = result.track(track_id)
        frames, matrices = planned_camera_matrices(result)[shot_index]
        r0, c0 = scene.cam_r[scene.truth[track_id][1]], scene.cam_t[scene.truth[track_id][1]]
        transform = result.blender_transform(track)
        true_r = transform[:3, :3] @ r0.T @ scene.cam_r[frames] @ FLIP_TO_BLENDER_CAMERA
        true_t = (scene.cam_t[frames] - c0) @ r0 @ transform[:3, :3].T + transform[:3, 3]
        assert _rotation_error_deg(matrices[:, :3, :3], true_r).max() < 3.0
        assert np.linalg.norm(matrices[:, :3, 3] - true_t, axis=1).max() < 0.3


def test_round_trip_of_the_processed_result(processed, tmp_path):
    assert processed.created_utc is None   # a new result: stamped when written
    stamped = dataclasses.replace(processed, created_utc="2025-01-02T03:04:05Z")
    loaded = read_result(write_result(tmp_path / "world.trace.npz", stamped))
    assert loaded.equals(stamped)
    assert loaded.world_processing["settings"]["align"] is True
    assert loaded.world_processing["settings"]["ground"]["inlier_threshold"] == 0.05


def test_alignment_off_keeps_the_fixed_swap_but_still_cleans(scene):
    result = apply_world_processing(scene.result, settings=INJECTED_SKATE, align=False, cut_frames=[CUT])
    assert [s.aligned for s in result.shots] == [False, False]
    assert all(np.array_equal(s.alignment_matrix, DEFAULT_ALIGNMENT_MATRIX) for s in result.shots)
    assert "turned off" in result.shots[0].alignment_info["note"]
    for track in result.tracks:
        assert np.allclose(result.blender_transform(track), DEFAULT_ALIGNMENT_MATRIX @ track.registration)
        assert track.contacts is not None and track.contacts.any()
    assert result.world_processing["metrics"]["foot_sliding"]["reduction"] >= 0.8
    assert result.world_processing["metrics"]["shots"][0]["ground"]["used_for"].startswith("contacts only")
    # Neither alignment nor cleanup: no contacts, no cleaned motion; the camera and shots remain.
    bare = apply_world_processing(scene.result, settings=INJECTED_SKATE, align=False, foot_cleanup=False, denoise=False, cut_frames=[CUT])
    assert all(t.contacts is None and t.clean_body_pose is None for t in bare.tracks)
    assert bare.scene_camera is not None and len(bare.shots) == 2
    assert bare.world_processing["metrics"]["foot_sliding"]["before_m"] is None


def test_alignment_without_cleanup_stores_contacts(scene):
    result = apply_world_processing(scene.result, settings=INJECTED_SKATE, foot_cleanup=False, denoise=False,
                                    cut_frames=[CUT])
    assert all(t.contacts is not None and t.clean_body_pose is None for t in result.tracks)
    sliding = result.world_processing["metrics"]["foot_sliding"]
    assert sliding["before_m"] > 0.002 and sliding["after_m"] is None and sliding["reduction"] is None


def test_degenerate_shots_and_tracks_give_notes_not_nan(scene, tmp_path):
    """A shot nobody is in, a track of one frame, one of five, one only infilled; a cut outside."""
    p = scene.result.track(0)
    one_frame = observe(5, np.array([50]), *scene.q[:2], scene.cam_r, scene.cam_t, world_frame=50)
    short = observe(6, np.arange(200, 205), *scene.r[:2], scene.cam_r, scene.cam_t, world_frame=200)
    cam_r = np.concatenate([scene.cam_r, np.repeat(scene.cam_r[-1:], 60, axis=0)])
    cam_t = np.concatenate([scene.cam_t, np.repeat(scene.cam_t[-1:], 60, axis=0)])
    infilled = observe(7, np.arange(250, 256), *[np.concatenate([a, a[:60]]) for a in scene.r[:2]], cam_r, cam_t,
                       world_frame=250, observed=np.zeros(6, bool))
    result = TraceResult(tracks=[p, one_frame, short, infilled], video=scene.result.video, camera=scene.result.camera,
                         frames_processed=FramesProcessed(first=0, last=299))
    processed = apply_world_processing(result, cut_frames=[CUT, 240, 270, 400, 0])
    assert [(s.start, s.stop) for s in processed.shots] == [(0, 120), (120, 240), (240, 270), (270, 300)]
    assert [s.aligned for s in processed.shots] == [True, True, False, False]
    notes = " | ".join(processed.notes)
    assert "cuts at frames [0, 400] ignored" in notes
    assert "no person tracked in shot 3 (frames 270..299)" in notes
    assert "no scene camera for shot 2" in notes and "no floor found in shot 2" in notes
    assert "ground alignment failed" in processed.shots[2].alignment_info["note"]
    assert set(processed.scene_camera.shots.tolist()) == {0, 1}
    assert set(planned_camera_matrices(processed)) == {0, 1}
    for track in processed.tracks:
        for name in ("contacts", "clean_body_pose", "clean_hip_center_world", "registration"):
            value = getattr(track, name)
            assert value is not None and np.all(np.isfinite(value)), (track.track_id, name)
    assert not processed.track(5).contacts.any()
    assert np.array_equal(processed.track(7).clean_hip_center_world, processed.track(7).hip_center_world)
    processed.created_utc = "2025-01-02T03:04:05Z"
    loaded = read_result(write_result(tmp_path / "degenerate.npz", processed))
    assert loaded.equals(processed)
    # Processing again keeps the shot boundaries of the processed result.
    again = apply_world_processing(loaded)
    assert [(s.start, s.stop) for s in again.shots] == [(s.start, s.stop) for s in processed.shots]
    assert [(t.track_id, t.shot) for t in again.tracks] == [(t.track_id, t.shot) for t in processed.tracks]


class _ShiftedSkeletonModel:
    """Stands in for SmplModelData: rest joints / vertices of a body whose soles are at y = -0.9."""

    def __init__(self) -> None:
        self.betas_seen = []

    def joints_for_betas(self, betas):
        self.betas_seen.append(np.asarray(betas))
        return REST + [0.0, -0.9, 0.0]

    def vertices_for_betas(self, betas):
        return np.array([[0.1, -0.9, 0.05], [-0.1, -0.9, 0.05], [0.0, 0.8, 0.0]])


def test_smpl_rest_body_and_bad_rest_skeletons(scene):
    model = _ShiftedSkeletonModel()
    result = apply_world_processing(scene.result, settings=INJECTED_SKATE, cut_frames=[CUT], rest_joints_for_track=smpl_rest_body(model))
    assert len(model.betas_seen) == 4 and all(b.shape == (10,) for b in model.betas_seen)
    assert result.world_processing["settings"]["rest_skeleton"] == "given per track"
    assert result.world_processing["metrics"]["foot_sliding"]["reduction"] >= 0.8
    # Joints alone that do not stand on y = 0 cannot locate the soles: a clear error, not a bad floor.
    with pytest.raises(WorldProcessingError, match="smpl_rest_body"):
        apply_world_processing(scene.result, settings=INJECTED_SKATE, rest_joints_for_track=lambda track: REST + [0.0, -0.9, 0.0])
    with pytest.raises(WorldProcessingError, match=r"\[24,3\]"):
        apply_world_processing(scene.result, settings=INJECTED_SKATE, rest_joints_for_track=lambda track: REST[:20])
    with pytest.raises(WorldProcessingError, match="cut_frames must be frame numbers"):
        apply_world_processing(scene.result, settings=INJECTED_SKATE, cut_frames=["soon"])


def test_summary_reports_each_shot_floor_and_the_sliding(processed, scene):
    """WorldSummary (the command line's summary and JSON 'done' fields) on the known scene: the
    camera height and tilt against the floor of each shot's reference camera are the truth."""
    from core.cli import world_summary_lines
    from core.world.postprocess import WorldSummary

    summary = WorldSummary.from_result(processed)
    assert (summary.shots, summary.aligned_shots, summary.split_tracks) == (2, 2, 1)
    for entry, world_frame, height in zip(summary.ground, (0, CUT), (1.4, 1.2)):
        up_in_camera = scene.cam_r[world_frame].T @ UP
        true_tilt = math.degrees(math.acos(-up_in_camera[1]))        # vs the image-up axis (-y)
        assert entry["method"] == "plane_fit" and entry["aligned"] and entry["used_for"] == "alignment and contacts"
        assert entry["camera_tilt_deg"] == pytest.approx(true_tilt, abs=0.03)   # floor on the denoised feet
        assert entry["camera_height_m"] == pytest.approx(height, abs=0.002)
        assert entry["inliers"] > 100 and entry["rms_residual_m"] < 0.005   # fitted on the denoised feet
    assert [(g["start"], g["stop"]) for g in summary.ground] == [(0, CUT), (CUT, FRAMES)]
    sliding = processed.world_processing["metrics"]["foot_sliding"]
    assert summary.foot_sliding_mm_before == pytest.approx(1000 * sliding["before_m"], abs=1e-3)
    assert summary.foot_sliding_mm_after == pytest.approx(1000 * sliding["after_m"], abs=1e-3)
    assert summary.event_fields()["ground"] == summary.ground
    lines = world_summary_lines(summary)
    assert lines[0] == "world: 2 shot(s), floor aligned in 2; 1 track(s) split at cuts"
    assert lines[1].startswith("  shot 0 (frames 0-119): floor fitted to ") and "camera 1.40 m above it" in lines[1]
    assert lines[-1].startswith(f"foot sliding: {summary.foot_sliding_mm_before:.2f} -> ")
    # Turned off: the shots say so, and the floor found for the contacts is reported as such.
    off = WorldSummary.from_result(apply_world_processing(scene.result, settings=INJECTED_SKATE, align=False, cut_frames=[CUT]))
    assert off.aligned_shots == 0 and all(not g["aligned"] and g["method"] == "plane_fit" for g in off.ground)
    assert "alignment off: used for the foot contacts only" in world_summary_lines(off)[1]


def test_progress_callback_counts_person_frames(scene):
    calls = []
    apply_world_processing(scene.result, settings=INJECTED_SKATE, cut_frames=[CUT], on_progress=lambda done, total: calls.append((done, total)))
    total = sum(track.num_frames for track in scene.result.tracks)
    assert len(calls) == 4 and all(t == total for _, t in calls)          # one call per track piece
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (total, total)
