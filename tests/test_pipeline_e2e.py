"""From a video file to a result file through `python -m core run`, and the loop's bookkeeping.

The end-to-end runs use the whole 16-frame reference clip (official layout, generated seed-0
weights, a synthetic SMPL file) encoded as a real video file: two clips of 8, so the state carried
between clips (ConvGRU hidden state, tracker, memory unit, world anchors) is exercised through the CLI.
With the product tracking defaults the seed-0 network tracks people from the first clip on.
The run includes the world stage (shots, camera, floor, feet) and writes result format version 3;
the world flags and multi-shot videos are covered with a stand-in network in test_pipeline_world.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import core
from core.camera import official_lens
from core.checkpoints import sha256_file
from core.nn import decode_params
from core.pipeline import ClipFrames, TrackAccumulator, decode_clip_rows, run_inference, trim_unobserved_ends
from core.preprocess import input_offsets
from trace_format.npz import read_result
from core.video import FrameRange, SourceInfo, open_frame_source
from helpers.factories import write_video
from helpers.synthetic_smpl import write_synthetic_smpl_pkl

REPO_ROOT = Path(__file__).resolve().parents[1]
E2E_FRAMES = 16       # the whole reference clip: two clips of 8, so the carried state is exercised
FPS = 30.0


@pytest.fixture(scope="module")
def e2e_inputs(reference_dir, generated_weights, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    frames = np.load(reference_dir / "clip_seed0.npz")["frames"][:E2E_FRAMES]   # [16,240,320,3] RGB
    video = write_video(folder / "reference clip.avi", frames)
    smpl = write_synthetic_smpl_pkl(folder / "SMPL_NEUTRAL.pkl")
    return SimpleNamespace(folder=folder, video=video, smpl=Path(smpl), weights=generated_weights)


def core_command(inputs, out_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "run", str(inputs.video), "-o", str(out_dir), "--weights",
            str(inputs.weights), "--smpl-model", str(inputs.smpl), "--progress-json", "--threads", "2", *extra]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TRACE_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_video_to_result_file(e2e_inputs):
    out_dir = e2e_inputs.folder / "out"
    started = time.monotonic()
    run = subprocess.run(core_command(e2e_inputs, out_dir), capture_output=True, text=True, env=subprocess_env(),
                         timeout=900, cwd=REPO_ROOT)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]          # stdout: JSON lines only
    assert events[0] == {"event": "start", "total_frames": E2E_FRAMES, "fps": FPS, "input": str(e2e_inputs.video)}
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert (stages.index("load_weights") < stages.index("inference") < stages.index("smpl") < stages.index("world")
            < stages.index("write"))
    inference = [e for e in events if e["event"] == "progress" and e["stage"] == "inference"]
    assert inference[0]["done"] == 0 and inference[-1]["done"] == E2E_FRAMES
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 0
    result_path = out_dir / "reference clip.trace.npz"
    assert Path(done["result"]) == result_path and result_path.is_file()
    assert sorted(p.name for p in out_dir.iterdir()) == [result_path.name]          # no temp files
    assert f"track(s) over {E2E_FRAMES} frames" in run.stderr and "foot sliding:" in run.stderr

    result = read_result(result_path)
    assert done["tracks"] == len(result.tracks) >= 1
    # The world stage ran (defaults: alignment, foot cleanup, shot detection) and wrote format version 3.
    assert result.format_version == 3 and result.world_processing is not None
    wp_settings = result.world_processing["settings"]
    assert (wp_settings["align"], wp_settings["clean_feet"], wp_settings["cut_frames"]) == (True, True, [])
    assert wp_settings["rest_skeleton"] == "given per track"                 # the SMPL model's bodies
    assert result.settings["world"] == {"align": True, "foot_cleanup": True, "denoise": True, "shot_detection": True,
                                        "rest_body": "SMPL model (mean shape per track)"}
    assert [(s.start, s.stop) for s in result.shots] == [(0, E2E_FRAMES)]
    assert all(t.shot == 0 and t.registration.shape == (4, 4) for t in result.tracks)
    assert all(t.contacts.shape == (t.num_frames, 2) and t.clean_body_pose.shape == (t.num_frames, 23, 3)
               for t in result.tracks)
    assert result.scene_camera is not None and result.scene_camera.frames.tolist() == list(range(E2E_FRAMES))
    assert len(done["ground"]) == 1 and done["ground"][0]["start"] == 0 and done["shots"] == 1
    assert "foot_sliding_mm_before" in done and "foot_sliding_mm_after" in done
    assert (result.video.width, result.video.height, result.video.fps, result.video.frame_count) == (320, 240, FPS, E2E_FRAMES)
    assert result.camera.fov_deg == pytest.approx(50.0) and result.camera.focal_source == "official"
    assert (result.frames_processed.first, result.frames_processed.last) == (0, E2E_FRAMES - 1)
    assert result.settings["tracking_mode"] == "product" and result.settings["subjects"] == "all"
    assert result.settings["tracking"]["accept_new_dets"] is True
    assert result.settings["lens"]["normalized_focal"] == pytest.approx(1 / np.tan(np.radians(25)))
    assert (result.settings["device"], result.settings["dtype"]) == ("cpu", "float32")
    assert result.settings["frame_range"] == {"start": 0, "end": None, "stride": 1}
    assert result.software["version"] == core.__version__
    assert result.weights_sha256 == {name: sha256_file(e2e_inputs.weights / name) for name in
                                     ("trace_image_backbone.pkl", "trace_motion_backbone.pth", "trace_head.pkl")}
    assert result.smpl_model["sha256"] == sha256_file(e2e_inputs.smpl)
    for track in result.tracks:
        assert set(track.frames.tolist()) <= set(range(E2E_FRAMES))
        np.testing.assert_allclose(track.times, track.frames / FPS, atol=1e-6)
        assert track.poses.shape == (track.num_frames, 24, 3)
        assert np.all(track.poses[:, 22:] == 0)                                  # SMPL hands are not predicted
        for frame_name in ("cam", "world"):
            joints = getattr(track, f"joints_{frame_name}")
            assert joints.shape == (track.num_frames, 24, 3)
            hips = 0.5 * (joints[:, 1] + joints[:, 2])
            np.testing.assert_allclose(hips, getattr(track, f"hip_center_{frame_name}"), atol=1e-4)
        assert np.isfinite(track.center_2d).all()
        assert track.observed[0] and track.observed[-1]   # product mode: no phantom rows before/after detections
    print(f"e2e: {len(result.tracks)} tracks over {E2E_FRAMES} frames in {seconds:.1f} s")


@pytest.mark.slow
def test_interrupted_run_writes_nothing(e2e_inputs):
    out_dir = e2e_inputs.folder / "interrupted"
    process = subprocess.Popen(core_command(e2e_inputs, out_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=subprocess_env(), cwd=REPO_ROOT)
    events = []
    try:
        for line in process.stdout:
            events.append(json.loads(line))
            if events[-1].get("stage") == "inference":
                process.send_signal(signal.SIGINT)
                break
        remaining, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events += [json.loads(line) for line in remaining.splitlines()]
    assert process.returncode == 130, stderr[-3000:]
    assert events[-1]["event"] == "error" and events[-1]["code"] == "interrupted"
    assert events[-1]["exit_code"] == 130
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


# --- the loop's bookkeeping, with a stand-in network (fast) ------------------------------------------
def fake_clip_output(rows: list[tuple[int, int]], offset: float = 0.0) -> SimpleNamespace:
    """A ClipOutput-like object for (track_id, frame_in_clip) rows with recognisable values."""
    n = len(rows)
    track_ids = torch.tensor([r[0] for r in rows])
    batch = torch.tensor([r[1] for r in rows])
    params = torch.zeros(n, 156)
    params[:, 3:135] = torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(22)       # identity 6D (official layout)
    params[:, 135:145] = track_ids[:, None].float() + offset                   # betas tell the track
    cam = torch.stack([torch.full((n,), 0.5), 0.1 * batch.float(), 0.2 * track_ids.float()], 1)
    return SimpleNamespace(
        params_pred=params, cam=cam, world_cams=cam * 2, world_global_rots=torch.zeros(n, 3),
        pred_batch_ids=batch, pred_czyxs=torch.stack([batch, batch + 60, batch + 64], 1),
        top_score=torch.full((n, 1), 0.9), track_ids=track_ids, inherited=batch == 1,
        tracked=batch != 1, detection_flag=torch.ones(8, dtype=torch.bool))


def test_clip_rows_map_to_source_frames_and_lens():
    lens = official_lens(320, 240)
    clip = ClipFrames(frame_indices=np.array([10, 13, 16]), timestamps_s=np.array([0.4, 0.52, 0.64]))
    rows = decode_clip_rows(fake_clip_output([(5, 0), (5, 2), (7, 1)]), clip, input_offsets(240, 320), lens,
                            decode_params)
    np.testing.assert_array_equal(rows["track_id"], [5, 5, 7])
    np.testing.assert_array_equal(rows["frame"], [10, 16, 13])
    np.testing.assert_allclose(rows["time"], [0.4, 0.64, 0.52])
    np.testing.assert_allclose(rows["poses"], 0.0, atol=1e-6)
    np.testing.assert_allclose(rows["betas"][:, 0], [5, 5, 7])
    f_n = lens.normalized_focal
    np.testing.assert_allclose(rows["hip_center_cam"][2], [0.2 * 7 / 0.5, 0.1 / 0.5, f_n / 0.5], rtol=1e-5)
    np.testing.assert_allclose(rows["hip_center_world"][0, 2], f_n / 1.0, rtol=1e-5)
    np.testing.assert_array_equal(rows["observed"], [True, True, False])
    # map cell (y=60, x=64) -> 512-input (240, 256) -> padded square (150, 160) -> source (x=160, y=110)
    np.testing.assert_allclose(rows["center_2d"][0], [160.0, 110.0])


def test_accumulator_groups_sorts_and_deduplicates():
    acc = TrackAccumulator()
    lens = official_lens(320, 240)
    offsets = input_offsets(240, 320)
    acc.add(decode_clip_rows(fake_clip_output([(3, 1), (1, 0), (3, 0)]),
                             ClipFrames(np.array([8, 9]), np.array([0.8, 0.9])), offsets, lens, decode_params))
    acc.add(decode_clip_rows(fake_clip_output([(3, 0), (3, 1)], offset=100.0),
                             ClipFrames(np.array([9, 10]), np.array([0.9, 1.0])), offsets, lens, decode_params))
    tracks = acc.finalize()
    assert list(tracks) == [1, 3]
    np.testing.assert_array_equal(tracks[3]["frame"], [8, 9, 10])
    np.testing.assert_allclose(tracks[3]["betas"][:, 0], [3, 3, 103])      # repeated frame 9: first row kept
    np.testing.assert_array_equal(tracks[1]["frame"], [8])


class _StandInModel:
    """Records the clips it is given; tracks one person in every frame."""

    def __init__(self):
        self.clip_sizes = []
        self.streams = set()
        self.created = 0

    def new_stream(self):
        self.created += 1
        return {"stream": self.created}

    def run_clip(self, images, stream, settings, capture=None):
        assert images.dtype == np.uint8 and images.shape[1:] == (512, 512, 3)
        self.clip_sizes.append(len(images))
        self.streams.add(stream["stream"])
        return fake_clip_output([(1, i) for i in range(len(images))])


def test_loop_feeds_clips_of_eight_with_start_and_stride(tmp_path):
    video = write_video(tmp_path / "v.avi", np.zeros((40, 48, 64, 3), np.uint8), fps=10.0)
    model = _StandInModel()
    with open_frame_source(video) as source:
        frames = source.frames(FrameRange(start=3, end=39, stride=2))
        outcome = run_inference(model, frames, source.info, None, official_lens(64, 48), decode_params)
    assert model.clip_sizes == [8, 8, 2] and len(model.streams) == 1
    track = outcome.accumulator.finalize()[1]
    np.testing.assert_array_equal(track["frame"], np.arange(3, 39, 2))
    np.testing.assert_allclose(track["time"], np.arange(3, 39, 2) / 10.0, atol=1e-6)
    assert (outcome.frames_processed, outcome.first_frame, outcome.last_frame) == (18, 3, 37)


def two_shot_frames() -> np.ndarray:
    """20 RGB frames: a blue room with a moving block (0-9), then a hard cut to an orange street (10-19)."""
    rng = np.random.default_rng(1)
    frames = np.empty((20, 48, 64, 3), np.uint8)
    texture_a = rng.integers(0, 40, (48, 64, 1))
    texture_b = rng.integers(0, 40, (48, 64, 1))
    for i in range(20):
        if i < 10:
            frame = np.concatenate([texture_a + 20, texture_a + 60, texture_a + 170], axis=2)
            frame[10:30, 2 + 2 * i:12 + 2 * i] = (240, 240, 240)
        else:
            frame = np.concatenate([texture_b + 200, texture_b + 110, texture_b + 10], axis=2)
            frame[30:44, 40 - 2 * (i - 10):56 - 2 * (i - 10)] = (20, 20, 20)
        frames[i] = frame
    return frames


def test_stream_restarts_at_hard_cuts(tmp_path):
    from core.shots import ShotCutDetector

    video = write_video(tmp_path / "two_shots.avi", two_shot_frames(), fps=10.0)
    model = _StandInModel()
    with open_frame_source(video) as source:
        outcome = run_inference(model, source.frames(), source.info, None, official_lens(64, 48), decode_params,
                                shot_detector=ShotCutDetector())
    assert outcome.shot_cuts == [10]
    assert model.clip_sizes == [8, 2, 8, 2] and len(model.streams) == 2
    tracks = outcome.accumulator.finalize()
    assert sorted(tracks) == [1, 2]                         # the second shot's person gets a new id
    np.testing.assert_array_equal(tracks[1]["frame"], np.arange(10))
    np.testing.assert_array_equal(tracks[2]["frame"], np.arange(10, 20))


def test_tracking_modes_and_lens_choice():
    from core.errors import UsageError
    from core.pipeline import build_lens, build_tracking_settings
    from core.tracking import TrackingSettings, TrackingSettingsError

    assert build_tracking_settings(True, None, 25.0) == TrackingSettings.official()
    assert build_tracking_settings(True, "3", 25.0) == TrackingSettings.official(subject_num=3)
    assert build_tracking_settings(False, None, 25.0) == TrackingSettings.product_default(25.0)
    assert build_tracking_settings(False, None, 25.0).subjects == "all"
    assert build_tracking_settings(False, 2, 25.0) == TrackingSettings.product_default(25.0, subjects=2)
    assert build_tracking_settings(False, None, 25.0, {"time2forget": 7}).time2forget == 7
    with pytest.raises(TrackingSettingsError, match="unknown setting"):
        build_tracking_settings(False, None, 25.0, {"time_to_forget": 7})
    info = SourceInfo("v.mp4", "video", 1920, 1080, 30.0, 10)
    assert build_lens(info, None, None).normalized_focal == pytest.approx(1 / np.tan(np.radians(25)))
    assert build_lens(info, 60.0, None).focal_px == pytest.approx(960 / np.tan(np.radians(30)))
    assert build_lens(info, None, 1000.0).normalized_focal == pytest.approx(1000 / 960)
    with pytest.raises(UsageError):
        build_lens(info, None, -5.0)


def test_cuts_become_shots_in_the_result(tmp_path):
    """The cuts found while streaming are the only source of shots: the world stage makes them."""
    from core.pipeline import WorldOptions, write_run_result
    from core.shots import ShotCutDetector

    video = write_video(tmp_path / "two_shots.avi", two_shot_frames(), fps=10.0)
    lens = official_lens(64, 48)
    with open_frame_source(video) as source:
        outcome = run_inference(_StandInModel(), source.frames(), source.info, None, lens, decode_params,
                                shot_detector=ShotCutDetector())
        info = source.info
    path = write_run_result(tmp_path / "r.trace.npz", outcome.accumulator.finalize(), info, lens, {}, {}, None, [],
                            outcome, WorldOptions(align=False, foot_cleanup=False))
    result = read_result(path)
    assert [(s.start, s.stop, s.aligned) for s in result.shots] == [(0, 10, False), (10, 20, False)]
    assert [(t.track_id, t.shot) for t in result.tracks] == [(1, 0), (2, 1)]
    assert result.world_processing["split_tracks"] == []                # no track crossed the cut
    assert result.world_processing["settings"]["cut_frames"] == [10]


def test_trim_unobserved_ends_keeps_gaps_between_detections():
    observed = {1: [0, 1, 1, 0, 1, 0, 0], 2: [0, 0, 0], 3: [1]}
    tracks = {tid: {"frame": np.arange(len(obs)) + 10, "observed": np.array(obs, bool)} for tid, obs in observed.items()}
    kept, dropped, trimmed = trim_unobserved_ends(tracks)
    assert sorted(kept) == [1, 3] and dropped == 1 and trimmed == 1 + 2 + 3
    np.testing.assert_array_equal(kept[1]["frame"], [11, 12, 13, 14])          # the gap at 13 stays (infilled)
    np.testing.assert_array_equal(kept[1]["observed"], [True, True, False, True])
