"""Known-answer tests of core.world.scene_camera: a moving, panning camera filmed people whose pose in
the camera frame and in the world are both known; the fused camera must come back."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trace_format.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from core.world.ground import default_alignment
from core.world.scene_camera import (
    CameraEvidence,
    SceneCameraError,
    SceneCameraSettings,
    camera_poses_from_track,
    estimate_scene_camera,
    register_tracks,
)

FPS = 30.0
FRAMES = 120


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(np.shape(a) + (3, 3))


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(np.shape(a) + (3, 3))


def true_camera(frames: int = FRAMES):
    """Camera poses in TRACE world (= its own frame at frame 0): pans +-15 deg, tilts, dollies 1 m/s."""
    t = np.arange(frames) / FPS
    rotation = _rot_y(np.radians(15.0) * np.sin(1.5 * t)) @ _rot_x(np.radians(5.0) * np.sin(1.0 * t))
    centre = np.stack([0.8 * np.sin(0.8 * t), -0.05 * t, 1.0 * t], axis=1)
    return rotation, centre


def person(start, velocity, heading, frames: int = FRAMES):
    """World hip centres [T,3] and orientations [T,3,3] of someone walking (TRACE world, y down)."""
    t = np.arange(frames) / FPS
    hips = np.asarray(start, float) + t[:, None] * np.asarray(velocity, float)
    orientation = _rot_y(heading + 0.2 * np.sin(2.0 * t)) @ _rot_x(np.full(frames, np.pi))   # upright: y -> -y
    return hips, orientation


def observe(hips, orientation, cam_r, cam_t, keep=None, rng=None, angle_noise_deg=0.0, hip_noise=0.0,
            world_frame=None):
    """CameraEvidence of one person on the frames in `keep` (default all).

    world_frame (R [3,3], t [3]) optional: the track's world is the camera at some frame (as TRACE
    does for late tracks): world arrays are expressed in that frame.
    """
    keep = np.arange(len(hips)) if keep is None else np.asarray(keep)
    r_cam_body = np.swapaxes(cam_r, -1, -2) @ orientation
    hip_cam = np.einsum("tji,tj->ti", cam_r, hips - cam_t)
    world_r, world_hips = orientation, hips
    if world_frame is not None:
        frame_r, frame_t = world_frame
        world_r = frame_r.T @ orientation
        world_hips = (hips - frame_t) @ frame_r
    orient_cam = matrix_to_axis_angle(r_cam_body)
    if rng is not None and angle_noise_deg > 0:
        noise = rng.normal(0.0, np.radians(angle_noise_deg), (len(hips), 3))
        orient_cam = matrix_to_axis_angle(axis_angle_to_matrix(noise) @ r_cam_body)
        hip_cam = hip_cam + rng.normal(0.0, hip_noise, hip_cam.shape)
    return CameraEvidence(frames=keep, orient_cam=orient_cam[keep], orient_world=matrix_to_axis_angle(world_r)[keep],
                          hip_cam=hip_cam[keep], hip_world=world_hips[keep], weights=np.full(len(keep), 0.9))


def _errors(camera, cam_r, cam_t):
    index = camera.frames
    chord = np.linalg.norm(camera.rotations - cam_r[index], axis=(1, 2))
    angle = np.degrees(2 * np.arcsin(np.clip(chord / (2 * math.sqrt(2)), 0, 1)))
    return angle, np.linalg.norm(camera.positions - cam_t[index], axis=1)


PEOPLE = [((0.5, 1.0, 4.0), (0.3, 0.0, 0.8), 0.4), ((-1.5, 1.1, 7.0), (0.6, 0.0, 0.2), 2.0),
          ((2.0, 0.9, 10.0), (-0.4, 0.0, 0.5), -1.0)]


def test_exact_inputs_recover_the_moving_camera():
    cam_r, cam_t = true_camera()
    evidence = [observe(*person(*p), cam_r, cam_t) for p in PEOPLE[:2]]
    camera = estimate_scene_camera(evidence)
    angle, distance = _errors(camera, cam_r, cam_t)
    assert angle.max() < 0.5 and distance.max() < 0.02
    assert camera.observed.all() and not camera.interpolated.any()
    assert np.all(camera.witnesses == 2)
    assert np.nanmax(camera.spread_deg) < 1e-6 and np.nanmax(camera.spread_m) < 1e-6
    # Without smoothing the fusion itself is exact.
    raw = estimate_scene_camera(evidence, SceneCameraSettings(smoothing_sigma_frames=0.0))
    angle, distance = _errors(raw, cam_r, cam_t)
    assert angle.max() < 1e-6 and distance.max() < 1e-9


def test_per_track_pose_formula():
    cam_r, cam_t = true_camera()
    rotation, centre = camera_poses_from_track(observe(*person(*PEOPLE[0]), cam_r, cam_t).checked())
    assert np.allclose(rotation, cam_r, atol=1e-9) and np.allclose(centre, cam_t, atol=1e-9)


def test_people_lost_for_a_while_and_everyone_lost_for_some_frames():
    rng = np.random.default_rng(0)
    cam_r, cam_t = true_camera()
    everyone_lost = np.arange(80, 96)
    frames_a = np.setdiff1d(np.arange(FRAMES), everyone_lost)
    frames_b = np.setdiff1d(frames_a, np.arange(30, 61))           # B also lost on 30..60
    evidence = [observe(*person(*PEOPLE[0]), cam_r, cam_t, frames_a, rng, 1.0, 0.02),
                observe(*person(*PEOPLE[1]), cam_r, cam_t, frames_b, rng, 1.0, 0.02)]
    camera = estimate_scene_camera(evidence, frame_range=(0, FRAMES))
    assert np.all(np.isfinite(camera.rotations)) and np.all(np.isfinite(camera.positions))
    assert np.array_equal(np.flatnonzero(camera.interpolated), everyone_lost)
    assert np.array_equal(camera.witnesses[30:61], np.ones(31)) and camera.witnesses[0] == 2
    # 1 deg of orientation noise per person becomes ~distance x 1 deg of centre noise (people 4-7 m away).
    angle, distance = _errors(camera, cam_r, cam_t)
    assert angle.max() < 2.5 and distance.max() < 0.15
    # No jumps: per-frame steps stay within the true motion's scale (+ noise allowance).
    true_step = np.linalg.norm(np.diff(cam_t, axis=0), axis=1).max()              # ~0.045 m per frame
    step = np.linalg.norm(np.diff(camera.positions, axis=0), axis=1)
    assert step.max() < 2.0 * true_step
    chord = np.linalg.norm(np.diff(camera.rotations, axis=0), axis=(1, 2))
    true_chord = np.linalg.norm(np.diff(cam_r, axis=0), axis=(1, 2)).max()
    assert chord.max() < 2.0 * true_chord + 0.01


def test_frames_before_and_after_the_evidence_hold_the_pose():
    cam_r, cam_t = true_camera()
    evidence = [observe(*person(*PEOPLE[0]), cam_r, cam_t, np.arange(20, 60))]
    camera = estimate_scene_camera(evidence, frame_range=(0, 80))
    assert camera.interpolated[:20].all() and camera.interpolated[60:].all() and not camera.interpolated[20:60].any()
    assert np.allclose(camera.positions[:20], camera.positions[20]) and np.allclose(camera.positions[60:], camera.positions[59])
    angle, distance = _errors(camera, cam_r, cam_t)
    assert angle[20:60].max() < 0.5 and distance[20:60].max() < 0.02


def test_late_track_in_its_own_world_is_registered():
    """TRACE starts a new track's world at the camera where it first appears: register it back."""
    cam_r, cam_t = true_camera()
    late = np.arange(40, FRAMES)
    evidence = [observe(*person(*PEOPLE[0]), cam_r, cam_t, np.arange(0, 70)),
                observe(*person(*PEOPLE[2]), cam_r, cam_t, late, world_frame=(cam_r[40], cam_t[40]))]
    registrations = register_tracks(evidence)
    assert np.allclose(registrations[0], np.eye(4))
    assert np.allclose(registrations[1][:3, :3], cam_r[40], atol=1e-6)
    assert np.allclose(registrations[1][:3, 3], cam_t[40], atol=1e-6)
    camera = estimate_scene_camera(evidence)
    angle, distance = _errors(camera, cam_r, cam_t)
    assert angle.max() < 0.5 and distance.max() < 0.02
    # A track that overlaps nobody is chained to the last known camera pose.
    gap_track = observe(*person(*PEOPLE[1]), cam_r, cam_t, np.arange(70, FRAMES), world_frame=(cam_r[70], cam_t[70]))
    chained = register_tracks([evidence[0], gap_track])[1]
    assert np.allclose(chained[:3, 3], cam_t[69], atol=1e-6)        # held from frame 69


def test_one_wrong_track_does_not_drag_the_camera():
    cam_r, cam_t = true_camera()
    evidence = [observe(*person(*p), cam_r, cam_t) for p in PEOPLE]
    bad = evidence[2]
    tilted = matrix_to_axis_angle(axis_angle_to_matrix(np.array([0.0, 0.0, math.radians(45.0)]))
                                  @ axis_angle_to_matrix(bad.orient_world))
    evidence[2] = CameraEvidence(bad.frames, bad.orient_cam, tilted, bad.hip_cam, bad.hip_world + 2.0, bad.weights)
    camera = estimate_scene_camera(evidence, SceneCameraSettings(register_tracks=False))
    angle, distance = _errors(camera, cam_r, cam_t)
    assert angle.max() < 0.5 and distance.max() < 0.02
    assert np.nanmin(camera.spread_deg) > 10.0          # the disagreement is reported


def test_camera_in_the_aligned_world():
    cam_r, cam_t = true_camera()
    camera = estimate_scene_camera([observe(*person(*PEOPLE[0]), cam_r, cam_t)])
    rotation, position = camera.in_world(default_alignment().matrix)
    # Frame 0 with the fixed swap: the camera (OpenCV axes) looks along +Y, its up (-y) is +Z, at the origin.
    assert np.allclose(rotation[0] @ np.array([0.0, 0.0, 1.0]), [0.0, 1.0, 0.0], atol=1e-3)
    assert np.allclose(rotation[0] @ np.array([0.0, -1.0, 0.0]), [0.0, 0.0, 1.0], atol=1e-3)
    assert np.allclose(position[0], 0.0, atol=1e-3)


def test_errors_are_actionable():
    with pytest.raises(SceneCameraError, match="no track"):
        estimate_scene_camera([])
    cam_r, cam_t = true_camera()
    ev = observe(*person(*PEOPLE[0]), cam_r, cam_t)
    with pytest.raises(SceneCameraError, match=r"hip_cam must be \[T=120,3\]"):
        estimate_scene_camera([CameraEvidence(ev.frames, ev.orient_cam, ev.orient_world, ev.hip_cam[:5], ev.hip_world)])


def test_block_size_and_sparse_storage_do_not_change_the_answer():
    """Fusion runs block by block over frames, stacking only the tracks present: any block size gives
    the same camera (each frame is fused on its own)."""
    rng = np.random.default_rng(1)
    cam_r, cam_t = true_camera()
    evidence = [observe(*person(*PEOPLE[0]), cam_r, cam_t, np.arange(0, 90), rng, 1.0, 0.02),
                observe(*person(*PEOPLE[1]), cam_r, cam_t, np.arange(40, 120), rng, 1.0, 0.02,
                        world_frame=(cam_r[40], cam_t[40])),
                observe(*person(*PEOPLE[2]), cam_r, cam_t, np.arange(100, 120), rng, 1.0, 0.02,
                        world_frame=(cam_r[100], cam_t[100]))]
    reference = estimate_scene_camera(evidence, frame_range=(0, 130))
    for block in (1, 7, 50):
        camera = estimate_scene_camera(evidence, SceneCameraSettings(block_frames=block), frame_range=(0, 130))
        assert np.allclose(camera.rotations, reference.rotations, atol=1e-12)
        assert np.allclose(camera.positions, reference.positions, atol=1e-12)
        assert np.array_equal(camera.witnesses, reference.witnesses)
        assert np.allclose(camera.spread_deg, reference.spread_deg, atol=1e-9, equal_nan=True)
        assert all(np.allclose(a, b, atol=1e-12) for a, b in zip(camera.registrations, reference.registrations))
    # Registering on a few evenly spread shared frames (the cap for long overlaps) is exact on exact data.
    exact = [observe(*person(*PEOPLE[0]), cam_r, cam_t, np.arange(0, 90)),
             observe(*person(*PEOPLE[2]), cam_r, cam_t, np.arange(40, 120), world_frame=(cam_r[40], cam_t[40]))]
    capped = register_tracks(exact, SceneCameraSettings(registration_frames=3))[1]
    assert np.allclose(capped[:3, :3], cam_r[40], atol=1e-6) and np.allclose(capped[:3, 3], cam_t[40], atol=1e-6)


def test_relay_of_many_short_tracks_over_a_long_shot():
    """40 people, each seen for 2 s in the TRACE world of the camera where they appeared, each
    overlapping only the next one (a crowd walking through a 40 s shot): registrations chain through
    all of them and the camera is recovered everywhere, with only the people present fused per frame."""
    frames, tracks, length, step = 1200, 40, 60, 29
    cam_r, cam_t = true_camera(frames)
    evidence = []
    for k in range(tracks):
        start = k * step
        keep = np.arange(start, min(start + length, frames))
        spec = PEOPLE[k % 3]
        hips, orientation = person((spec[0][0], spec[0][1], spec[0][2] + 0.1 * k), spec[1], spec[2], frames)
        evidence.append(observe(hips, orientation, cam_r, cam_t, keep, world_frame=(cam_r[start], cam_t[start])))
    registrations = register_tracks(evidence)
    for k in range(1, tracks):
        start = k * step
        assert np.allclose(registrations[k][:3, :3], cam_r[start], atol=1e-6), k
        assert np.allclose(registrations[k][:3, 3], cam_t[start], atol=1e-6), k
    camera = estimate_scene_camera(evidence, SceneCameraSettings(block_frames=256))
    angle, distance = _errors(camera, cam_r, cam_t)
    assert camera.frames.tolist() == list(range(tracks * step - step + length)) and camera.observed.all()
    assert angle.max() < 0.5 and distance.max() < 0.02
    assert camera.witnesses.max() == 3 and camera.witnesses.min() >= 1


def test_smoother_is_exact_on_linear_motion_with_gaps():
    from core.world.scene_camera import _gaussian_local_linear

    frames = np.arange(200, dtype=float)
    values = np.stack([0.5 * frames - 3.0, -0.02 * frames], axis=1)         # [F,2] linear in time
    weights = np.ones(200)
    weights[50:58] = 0.0                                                    # a gap
    weights[120:] = 0.3                                                     # lower confidence
    smoothed, support = _gaussian_local_linear(values, weights, sigma=2.0)
    observed = weights > 0
    assert np.allclose(smoothed[observed], values[observed], atol=1e-9)
    assert support[100] == pytest.approx(np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2).sum())
