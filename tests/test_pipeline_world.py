"""The world stage inside `python -m core run`: shots from hard cuts, the --no-* flags, the summary.

The whole command runs in-process (core.cli.main) on small generated videos, with the network
replaced by the deterministic stand-in of tests/helpers/stand_in_network.py (the real network
costs seconds per frame; test_pipeline_e2e.py runs it). Everything else is real: decoding, cut
detection, stream restarts, row decoding, accumulation, the world post-processing, the result file.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core import cli
from core.errors import ExitCode, SmplModelFileError
from core.progress import STAGES, ProgressReporter
from trace_format.npz import read_result
from core.world.postprocess import WorldSummary
from helpers.stand_in_network import StandInNetwork, loader

SHOT_FRAMES = 10
CUTS = [SHOT_FRAMES, 2 * SHOT_FRAMES]
FRAMES = 3 * SHOT_FRAMES
PEOPLE = 2


def three_shot_frames() -> np.ndarray:
    """[30,48,64,3] RGB: a blue room, a hard cut to an orange street, a hard cut to a green field;
    each shot with texture and a moving block (camera-like motion inside a shot)."""
    rng = np.random.default_rng(3)
    palettes = [(20, 60, 170), (200, 110, 10), (40, 160, 50)]
    frames = np.empty((FRAMES, 48, 64, 3), np.uint8)
    for shot, base in enumerate(palettes):
        texture = rng.integers(0, 40, (48, 64, 1))
        for i in range(SHOT_FRAMES):
            frame = np.concatenate([texture + base[0], texture + base[1], texture + base[2]], axis=2).clip(0, 255)
            x = 4 + 2 * i + 10 * shot
            frame[8 + 6 * shot:28 + 6 * shot, x:x + 10] = (240, 240, 240) if shot != 1 else (15, 15, 15)
            frames[shot * SHOT_FRAMES + i] = frame
    return frames


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("world_video") / "three shots.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for frame in three_shot_frames():
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def run_core(monkeypatch, video: Path, out_dir: Path, *flags: str) -> tuple[int, list[dict], str, StandInNetwork]:
    """`python -m core run VIDEO -o OUT --progress-json FLAGS` in-process with the stand-in network."""
    import core.pipeline

    network = StandInNetwork(PEOPLE)
    monkeypatch.setattr(core.pipeline, "load_network", loader(network))
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(["run", str(video), "-o", str(out_dir), "--progress-json", "--threads", "1", *flags],
                    stdout=stdout, stderr=stderr)
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue(), network


@pytest.fixture(scope="module")
def default_run(cut_video, tmp_path_factory):
    """One run with every world step on (the defaults), shared by the tests that only read it."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        out = tmp_path_factory.mktemp("default_run")
        code, events, stderr, network = run_core(monkeypatch, cut_video, out)
    finally:
        monkeypatch.undo()
    assert code == 0, stderr[-3000:]
    return events, stderr, network, read_result(out / "three shots.trace.npz")


def test_hard_cuts_become_three_shots_and_no_track_spans_a_cut(default_run):
    events, _, network, result = default_run
    # The stream was restarted at each cut: the frames before a cut finish as a shorter clip.
    assert network.streams_started == 3 and network.clip_sizes == [8, 2] * 3
    assert result.settings["shot_cuts"] == CUTS and result.settings["shot_cut_detection"] is True
    assert [(s.index, s.start, s.stop) for s in result.shots] == [(0, 0, 10), (1, 10, 20), (2, 20, 30)]
    assert result.world_processing["settings"]["cut_frames"] == CUTS
    # People of a new shot got new ids, so the world stage had nothing left to split.
    assert result.world_processing["split_tracks"] == []
    assert [(t.track_id, t.shot) for t in result.tracks] == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2)]
    for track in result.tracks:
        shot = result.shots[track.shot]
        assert track.frames.tolist() == list(range(shot.start, shot.stop)), track.track_id
    # One camera per shot, covering each of its frames.
    assert result.scene_camera.frames.tolist() == list(range(FRAMES))
    assert result.scene_camera.shots.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert result.format_version == 3 and events[-1]["tracks"] == 6


def test_default_run_records_settings_summary_and_world_stage(default_run):
    events, stderr, _, result = default_run
    assert result.settings["world"] == {"align": True, "foot_cleanup": True, "denoise": True, "shot_detection": True,
                                        "rest_body": "default skeleton"}
    settings = result.world_processing["settings"]
    assert (settings["align"], settings["clean_feet"], settings["rest_skeleton"]) == (True, True, "default skeleton")
    assert all(t.contacts is not None and t.clean_body_pose is not None for t in result.tracks)
    # Progress: a "world" stage in person-frames between inference and write.
    progress = [e for e in events if e["event"] == "progress"]
    stages = [e["stage"] for e in progress]
    assert stages.index("inference") < stages.index("world") < stages.index("write")
    world = [e for e in progress if e["stage"] == "world"]
    assert world[0]["done"] == 0 and world[-1]["done"] == world[-1]["total"] == PEOPLE * FRAMES
    # The 'done' event carries the world summary, and it is what the file says.
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 0
    assert {key: done[key] for key in WorldSummary.from_result(result).event_fields()} == \
        WorldSummary.from_result(result).event_fields()
    assert done["shots"] == 3 and [g["shot"] for g in done["ground"]] == [0, 1, 2]
    assert [(g["start"], g["stop"]) for g in done["ground"]] == [(0, 10), (10, 20), (20, 30)]
    assert [g["aligned"] for g in done["ground"]] == [s.aligned for s in result.shots]
    sliding = result.world_processing["metrics"]["foot_sliding"]
    expected = None if sliding["before_m"] is None else round(1000 * sliding["before_m"], 3)
    assert done["foot_sliding_mm_before"] == expected
    # Human summary on stderr (stdout carries only JSON in this mode).
    assert "world: 3 shot(s)" in stderr and "shot 2 (frames 20-29)" in stderr and "foot sliding:" in stderr


def test_no_align_and_no_foot_cleanup_keep_the_raw_trace_fields(default_run, cut_video, tmp_path, monkeypatch):
    _, _, _, default = default_run
    code, events, stderr, _ = run_core(monkeypatch, cut_video, tmp_path, "--no-align", "--no-foot-cleanup",
                                         "--no-denoise")
    assert code == 0, stderr[-3000:]
    result = read_result(tmp_path / "three shots.trace.npz")
    assert result.settings["world"]["align"] is False and result.settings["world"]["foot_cleanup"] is False
    settings = result.world_processing["settings"]
    assert (settings["align"], settings["clean_feet"], settings["denoise"]) == (False, False, False)
    assert [s.aligned for s in result.shots] == [False, False, False]
    assert all("turned off" in s.alignment_info["note"] for s in result.shots)
    assert all(g["method"] == "none" and not g["aligned"] for g in events[-1]["ground"])
    assert all(t.contacts is None and t.clean_body_pose is None for t in result.tracks)
    assert events[-1]["foot_sliding_mm_before"] is None and events[-1]["foot_sliding_mm_after"] is None
    assert len(result.shots) == 3 and result.scene_camera is not None     # shots and camera stay
    # TRACE's own arrays are identical whatever the world stage did.
    for raw, processed in zip(result.tracks, default.tracks):
        assert raw.track_id == processed.track_id
        for name in ("frames", "poses", "global_orient_world", "hip_center_cam", "hip_center_world", "betas",
                     "confidence", "observed", "center_2d"):
            assert np.array_equal(getattr(raw, name), getattr(processed, name)), (raw.track_id, name)


def test_no_foot_cleanup_still_detects_contacts(cut_video, tmp_path, monkeypatch):
    code, events, stderr, _ = run_core(monkeypatch, cut_video, tmp_path, "--no-foot-cleanup", "--no-denoise")
    assert code == 0, stderr[-3000:]
    result = read_result(tmp_path / "three shots.trace.npz")
    assert result.world_processing["settings"]["clean_feet"] is False
    assert result.world_processing["settings"]["align"] is True
    assert all(t.contacts is not None and t.clean_body_pose is None for t in result.tracks)
    assert events[-1]["foot_sliding_mm_after"] is None and events[-1]["foot_sliding_reduction"] is None


@pytest.mark.parametrize("flags", [["--no-shot-detection"], ["--official-tracking"]])
def test_without_shot_detection_the_video_is_one_shot(cut_video, tmp_path, monkeypatch, flags):
    code, events, stderr, network = run_core(monkeypatch, cut_video, tmp_path, *flags)
    assert code == 0, stderr[-3000:]
    result = read_result(tmp_path / "three shots.trace.npz")
    assert network.streams_started == 1 and network.clip_sizes == [8, 8, 8, 6]
    assert result.settings["shot_cut_detection"] is False and result.settings["shot_cuts"] == []
    assert result.settings["world"]["shot_detection"] is False
    assert [(s.start, s.stop) for s in result.shots] == [(0, FRAMES)] and events[-1]["shots"] == 1
    assert [(t.track_id, t.frames[0], t.frames[-1]) for t in result.tracks] == [(1, 0, 29), (2, 0, 29)]
    # The world steps stay on unless turned off (also with the official tracking settings).
    assert result.world_processing["settings"]["align"] is True
    assert result.world_processing["settings"]["clean_feet"] is True
    if "--official-tracking" in flags:
        from core.tracking import TrackingSettings

        assert result.settings["tracking_mode"] == "official"
        assert result.settings["tracking"] == TrackingSettings.official().to_dict()


def test_official_tracking_with_shot_detection(cut_video, tmp_path, monkeypatch):
    code, _, stderr, network = run_core(monkeypatch, cut_video, tmp_path, "--official-tracking", "--shot-detection")
    assert code == 0, stderr[-3000:]
    result = read_result(tmp_path / "three shots.trace.npz")
    assert network.streams_started == 3 and [(s.start, s.stop) for s in result.shots] == [(0, 10), (10, 20), (20, 30)]


def test_conflicting_shot_flags_are_a_usage_error(cut_video, tmp_path, monkeypatch):
    code, events, _, _ = run_core(monkeypatch, cut_video, tmp_path, "--no-shot-detection", "--shot-detection")
    assert code == ExitCode.USAGE and events[-1]["code"] == "usage" and "not allowed with" in events[-1]["message"]


def test_smpl_model_whose_feet_cannot_be_placed_fails_early(tmp_path):
    """The world stage stands bodies on their lowest rest vertex: a model where that makes no sense
    is refused before the network runs (exit code 5), not after the inference."""
    from core.pipeline import check_rest_body
    from trace_format.skeleton import load_default_skeleton

    class FloatingFeet:
        def joints_for_betas(self, betas):
            return load_default_skeleton()

        def vertices_for_betas(self, betas):
            return np.array([[0.0, -0.5, 0.0], [0.0, 1.7, 0.0]])    # soles half a metre below the ankles

    with pytest.raises(SmplModelFileError, match=r"model\.pkl to place feet on the floor: foot joints are"):
        check_rest_body(FloatingFeet(), Path("model.pkl"))
    assert SmplModelFileError.exit_code == ExitCode.SMPL_MODEL


def test_progress_reporter_world_stage_and_done_fields():
    out = io.StringIO()
    reporter = ProgressReporter(json_stream=out, human_stream=io.StringIO(), is_tty=False,
                                clock=iter([0.0, 0.0, 2.0]).__next__)
    assert STAGES.index("smpl") < STAGES.index("world") < STAGES.index("write")
    reporter.begin_stage("world", 60, unit="person-frames")
    reporter.update(60)
    reporter.done("out/x.trace.npz", 2, 0, {"foot_sliding_mm_before": 4.2, "tracks": 99})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[-2] == {"event": "progress", "stage": "world", "done": 60, "total": 60, "fps": 30.0, "eta_s": 0.0}
    assert events[-1] == {"event": "done", "result": "out/x.trace.npz", "tracks": 2, "exit_code": 0,
                          "foot_sliding_mm_before": 4.2}          # extra fields never override the protocol's


def test_partial_result_still_gets_the_world_stage(tmp_path, monkeypatch):
    """An unreadable frame midway: the frames before it are processed, world stage included, and
    the 'done' event (exit code 10) carries the world summary too."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(three_shot_frames()[:12]):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), np.ascontiguousarray(frame[:, :, ::-1]))
    (folder / "f012.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cv2.imwrite(str(folder / "f013.png"), np.ascontiguousarray(three_shot_frames()[13][:, :, ::-1]))
    code, events, stderr, _ = run_core(monkeypatch, folder, tmp_path / "out")
    assert code == ExitCode.PARTIAL, stderr[-3000:]
    assert "f012.png" in [e for e in events if e["event"] == "warning"][-1]["message"]
    done = events[-1]
    assert done["event"] == "done" and done["exit_code"] == 10 and done["shots"] == 2
    result = read_result(tmp_path / "out" / "frames.trace.npz")
    assert result.frames_processed.stopped_early and result.frames_processed.last == 11
    assert [(s.start, s.stop) for s in result.shots] == [(0, 10), (10, 12)]
    assert [g["stop"] for g in done["ground"]] == [10, 12] and "foot sliding:" in stderr


def test_autocast_option_reaches_the_network_and_the_settings(cut_video, tmp_path, monkeypatch):
    import core.pipeline

    seen = {}
    stand_in = loader(StandInNetwork(PEOPLE))

    def recording_loader(*args, autocast_dtype=None, **kwargs):
        seen["autocast_dtype"] = autocast_dtype
        return stand_in(*args, autocast_dtype=autocast_dtype, **kwargs)

    monkeypatch.setattr(core.pipeline, "load_network", recording_loader)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(["run", str(cut_video), "-o", str(tmp_path), "--progress-json", "--threads", "1",
                     "--device", "cpu", "--autocast", "bf16"], stdout=stdout, stderr=stderr)
    assert code == 0, stderr.getvalue()[-2000:]
    assert seen["autocast_dtype"] is torch.bfloat16
    assert read_result(tmp_path / "three shots.trace.npz").settings["autocast"] == "bf16"


def test_raft_schedule_options_reach_the_network_and_the_result(cut_video, tmp_path, monkeypatch):
    import core.pipeline
    from core.nn import RaftSchedule

    seen = {}
    stand_in = loader(StandInNetwork(PEOPLE))

    def recording_loader(*args, raft=None, **kwargs):
        seen["raft"] = raft
        return stand_in(*args, raft=raft, **kwargs)

    monkeypatch.setattr(core.pipeline, "load_network", recording_loader)
    for flags, expected in ((), RaftSchedule()), (("--raft-iterations", "8", "--raft-warm-start"),
                                                   RaftSchedule(iterations=8, warm_start=True)):
        out = tmp_path / str(len(flags))
        stdout, stderr = io.StringIO(), io.StringIO()
        code = cli.main(["run", str(cut_video), "-o", str(out), "--progress-json", "--threads", "1",
                         "--device", "cpu", *flags], stdout=stdout, stderr=stderr)
        assert code == 0, stderr.getvalue()[-2000:]
        assert seen["raft"] == expected
        result = read_result(out / "three shots.trace.npz")
        assert result.settings["raft"] == expected.as_dict()
        assert any("RAFT schedule off the official program: 8 iterations, warm-started" in note
                   for note in result.notes) == bool(flags)


def test_raft_iterations_must_be_positive(cut_video, tmp_path, monkeypatch):
    code, events, stderr, _ = run_core(monkeypatch, cut_video, tmp_path, "--raft-iterations", "0")
    assert code == 2 and "--raft-iterations" in stderr + json.dumps(events)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flags", [("--device", "cpu", "--autocast", "fp16"), ("--dtype", "float64", "--autocast", "bf16")])
def test_autocast_misuse_is_a_usage_error(cut_video, tmp_path, monkeypatch, flags):
    code, events, stderr, _ = run_core(monkeypatch, cut_video, tmp_path, *flags)
    assert code == 2 and events[-1]["event"] == "error" and "--autocast" in events[-1]["message"]
    assert not any(tmp_path.iterdir())
