"""The world stage on real motion capture (CMU, tests/data/mocap) seen through TRACE-like errors.

Short clips (150 frames) of the benchmark's scenes (tests/helpers/world_quality.py); tolerances
from `python benchmarks/bench_world_quality.py` (docs/world.md) with some margin for the shorter
clips.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.world.denoise import TrackMotion, denoise_tracks
from core.world.postprocess import apply_world_processing
from tests.helpers.mocap import CLIPS, MOCAP_DIR, bvh_to_smpl, load_clip, read_bvh
from tests.helpers.result_archive import rewrite_result_archive
from tests.helpers.world_quality import (EXACT, TRACE_LEVEL, build_scenes, evaluate, side_by_side_scene, trace_result,
                                         w_mpjpe)
from trace_format.fk import forward_kinematics
from trace_format.npz import read_result, write_result

FRAMES = 150


@pytest.fixture(scope="module")
def scenes():
    return build_scenes(frames_limit=FRAMES)


def test_mocap_clips_convert_exactly_to_smpl_poses():
    bvh = read_bvh(MOCAP_DIR / "cmu_131_02.bvh.gz")
    clip = bvh_to_smpl(bvh, "cmu_131_02")
    assert clip.fk_error_m < 1e-6 and clip.fps == 30.0 and len(clip.poses) == 312
    stored = load_clip("cmu_131_02")
    assert np.allclose(stored.joints, clip.joints, atol=1e-5)      # float32 storage
    for name in CLIPS:
        feet = load_clip(name).joints[:, [7, 8, 10, 11], 1]
        assert -0.03 < np.percentile(feet, 1) and np.percentile(feet, 50) < 0.15   # soles near the floor y = 0


def test_exact_input_is_left_alone(scenes):
    for scene in scenes:
        outcome = evaluate(scene, EXACT)
        for person in outcome["people"]:
            assert person["change_mm"] < 5.0, (scene.name, person)
            assert person["change_w_mpjpe"] <= 5.0, (scene.name, person)      # issue 9's target
            assert person["contact_precision"] > 0.85


def test_trace_level_noise_is_removed(scenes):
    scene = scenes[0]
    outcome = evaluate(scene, TRACE_LEVEL)
    for person in outcome["people"]:
        before, after = person["before"], person["after"]
        assert before["jitter"] > 1500 and before["foot_sliding"] > 200           # TRACE-like raw errors
        assert after["foot_sliding"] < 12.0
        assert after["jitter"] < 2.5 * person["mocap_jitter"]
        assert after["w_mpjpe"] < 0.65 * before["w_mpjpe"] and after["wa_mpjpe"] < 0.65 * before["wa_mpjpe"]
        assert after["rte"] <= before["rte"]
    assert outcome["floor_deg"][1] < 2.0 or outcome["floor"]["confidence"] == "low"


def test_denoising_off_keeps_the_raw_motion(scenes):
    raw = trace_result(scenes[0], TRACE_LEVEL)
    rest = scenes[0].people[0].clip.rest_joints
    bare = apply_world_processing(raw, align=False, foot_cleanup=False, denoise=False,
                                  rest_joints_for_track=lambda track: rest)
    assert all(track.clean_body_pose is None and track.clean_global_orient_world is None for track in bare.tracks)
    smoothed = apply_world_processing(raw, align=False, foot_cleanup=False, rest_joints_for_track=lambda track: rest)
    track = smoothed.tracks[0]
    assert track.has_clean_motion and np.array_equal(track.hip_center_world, raw.tracks[0].hip_center_world)
    assert smoothed.world_processing["settings"]["denoise"] is True
    assert smoothed.world_processing["metrics"]["tracks"][0]["denoise"]["denoised"] is True


def test_real_fast_motion_is_not_gated_as_outliers():
    """The whole hopping clip, exact: landings move ankles and wrists > 11 deg past the prediction;
    gating them (as a flip is) cost 4.9 mm W-MPJPE100, now 2.8 mm."""
    clip = load_clip("cmu_131_03")
    count = len(clip.poses)
    motion = TrackMotion(frames=np.arange(count), global_orient=clip.poses[:, 0], body_pose=clip.poses[:, 1:],
                         hip_centers=clip.root, weights=np.ones(count))
    result = denoise_tracks([motion], 30.0)[0]
    _, truth = forward_kinematics(clip.rest_joints, clip.poses, clip.root)
    _, smoothed = forward_kinematics(clip.rest_joints, np.concatenate([result.global_orient[:, None], result.body_pose], 1),
                                     result.hip_centers)
    assert result.denoised and result.outlier_frames == 0
    assert w_mpjpe(truth, smoothed)[0] < 3.5


def test_outlier_frames_barely_move_the_estimate():
    clip = load_clip("cmu_131_02", slice(0, 120))
    hips = clip.root.copy()
    orient = clip.poses[:, 0].copy()
    rng = np.random.default_rng(1)
    noisy = hips + rng.normal(0, 0.01, hips.shape)
    noisy[60] += [0.0, 0.0, 0.6]                                     # a jump of 60 cm
    flipped = orient.copy()
    flipped[40] = orient[40] + np.pi * orient[40] / max(np.linalg.norm(orient[40]), 1e-9) * 0 + [0.0, np.pi, 0.0]
    motion = TrackMotion(frames=np.arange(120), global_orient=flipped, body_pose=clip.poses[:, 1:], hip_centers=noisy,
                         weights=np.ones(120))
    result = denoise_tracks([motion], 30.0)[0]
    assert result.denoised and result.outlier_frames >= 1
    assert np.linalg.norm(result.hip_centers[60] - hips[60]) < 0.06


@pytest.mark.parametrize("change,reason", [
    (lambda m: dataclasses.replace(m, frames=m.frames[:5], global_orient=m.global_orient[:5], body_pose=m.body_pose[:5],
                                   hip_centers=m.hip_centers[:5], weights=m.weights[:5]), "too short"),
    (lambda m: dataclasses.replace(m, weights=np.zeros(len(m.frames))), "fewer than"),
    (lambda m: dataclasses.replace(m, hip_centers=np.where(np.arange(len(m.frames))[:, None] == 3, np.nan, m.hip_centers)),
     "non-finite"),
])
def test_bad_tracks_pass_through_unchanged_with_a_reason(change, reason):
    clip = load_clip("cmu_131_01", slice(0, 40))
    good = TrackMotion(frames=np.arange(40), global_orient=clip.poses[:, 0], body_pose=clip.poses[:, 1:],
                       hip_centers=clip.root, weights=np.ones(40))
    bad = change(good)
    results = denoise_tracks([bad, good], 30.0)
    assert not results[0].denoised and reason in results[0].note
    assert np.array_equal(results[0].hip_centers, bad.hip_centers, equal_nan=True)
    assert results[1].denoised


def test_person_never_on_the_floor_is_not_made_worse(scenes):
    """Everybody lifted 1 m (a person on a platform / in the air): nothing to pin, nothing worse."""
    scene = scenes[0]
    lifted = dataclasses.replace(scene, people=[dataclasses.replace(p, joints=p.joints + [0.0, 0.0, 1.0])
                                                 for p in scene.people])
    lifted.__post_init__()
    raw = trace_result(scene, EXACT)
    for track in raw.tracks:
        track.hip_center_world = (track.hip_center_world + (scene.cam_r[0].T @ [0.0, 0.0, 1.0])).astype(np.float32)
    rest = scene.people[0].clip.rest_joints
    processed = apply_world_processing(raw, rest_joints_for_track=lambda track: rest)
    before = raw.tracks[0]
    after = processed.tracks[0]
    assert np.abs(after.clean_hip_center_world - before.hip_center_world).max() < 0.02


def test_version_2_files_are_upgraded(tmp_path, scenes):
    raw = trace_result(scenes[0], EXACT)
    rest = scenes[0].people[0].clip.rest_joints
    processed = apply_world_processing(raw, rest_joints_for_track=lambda track: rest)
    path = write_result(tmp_path / "v3.trace.npz", processed)

    def to_version_2(meta, arrays):
        meta["version"] = 2
        arrays.pop("clean_global_orient_world")

    old = read_result(rewrite_result_archive(path, tmp_path / "v2.trace.npz", to_version_2))
    track = old.tracks[0]
    assert old.format_version == 2 and track.has_clean_motion
    assert np.array_equal(track.clean_global_orient_world, track.global_orient_world)
    assert np.array_equal(track.clean_body_pose, processed.tracks[0].clean_body_pose)


def test_low_confidence_floor_reaches_the_addon_shot_plan(scenes):
    from trace_blender.plan import result_shots

    raw = trace_result(scenes[0], TRACE_LEVEL)                     # one walker: contacts along a line
    rest = scenes[0].people[0].clip.rest_joints
    processed = apply_world_processing(raw, rest_joints_for_track=lambda track: rest)
    shot = result_shots(processed)[0]
    assert shot.aligned and shot.floor_confidence == "low" and "span only" in shot.floor_note
    assert any("low confidence" in note for note in processed.notes)


@pytest.mark.parametrize("denoise", [False, True])
def test_two_people_side_by_side_floor_is_right_or_flagged(denoise):
    """Issue 9's case: two people 1.4 m apart, TRACE-level noise. Raw, too few contacts survive and the
    floor is the people's upright direction, 6-7 deg off (it was reported as trusted); denoised, the
    plane fit is 0.6-5.7 deg off over these seeds. Either way: within 2 deg or flagged low."""
    scene = side_by_side_scene(FRAMES)
    for seed in range(3):
        outcome = evaluate(scene, TRACE_LEVEL, seed=seed, denoise=denoise)
        ground = outcome["result"].world_processing["metrics"]["shots"][0]["ground"]
        assert outcome["floor_deg"][1] < 2.0 or ground["confidence"] == "low", (seed, outcome["floor_deg"], ground)
        assert ground["confidence"] == "high" or ground["confidence_note"]



def test_sampled_rotation_noise_matches_the_whole_track_estimate():
    """The denoiser estimates joint-rotation noise from at most 2048 windows (bounded memory)."""
    from core.world.denoise import estimate_rotation_noise, sampled_rotation_noise
    from trace_format.rotations import axis_angle_to_quaternion, make_quaternions_continuous

    clip = load_clip("cmu_131_01")
    rng = np.random.default_rng(3)
    noisy = clip.poses + rng.normal(0.0, np.radians(2.0), clip.poses.shape)
    frames = np.arange(len(noisy))
    whole = estimate_rotation_noise(make_quaternions_continuous(axis_angle_to_quaternion(noisy), axis=0), frames)
    assert np.allclose(sampled_rotation_noise(lambda rows: noisy[rows], frames), whole, rtol=1e-6)
    sparse = sampled_rotation_noise(lambda rows: noisy[rows], frames, max_windows=100)
    assert np.allclose(sparse, whole, rtol=0.25)
