"""Bad inputs: each failure has its exit code, a message a user can act on, and a JSON error event.

Most cases fail before the network runs (input, options, SMPL file and weights are checked first),
so they run in-process through core.cli.main and take well under a second each. The cases that
need the network (no person found, unreadable frames midway) run it on a few frames.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from core import cli
from core.errors import ExitCode
from core.progress import ProgressReporter, format_bar_line, format_duration, format_plain_line, rate_and_eta
from core.weights import WEIGHT_FILENAMES
from helpers.factories import write_video


def run_cli(*args: str) -> tuple[int, list[dict], str]:
    """core.cli.main in-process with --progress-json: (exit code, JSON events, human stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(["run", *map(str, args), "--progress-json"], stdout=stdout, stderr=stderr)
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    return code, events, stderr.getvalue()


@pytest.fixture()
def small_video(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    return write_video(tmp_path / "small.avi", [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)],
                       fps=10.0, codec="MJPG")


def assert_error(code: int, events: list[dict], expected: ExitCode, name: str, *phrases: str) -> str:
    assert code == int(expected), events
    assert events and events[-1]["event"] == "error", events
    error = events[-1]
    assert error["exit_code"] == int(expected) and error["code"] == name, error
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error["message"])
    return error["message"]


# --- input -----------------------------------------------------------------------------------------
def test_missing_input(tmp_path):
    code, events, stderr = run_cli(tmp_path / "nope.mp4", "-o", tmp_path / "out")
    assert_error(code, events, ExitCode.INPUT, "input_not_found", "input not found", "nope.mp4")
    assert "error: input not found" in stderr
    assert not (tmp_path / "out").exists()


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("these are my holiday notes, not a video\n" * 50)
    code, events, _ = run_cli(fake, "-o", tmp_path / "out")
    assert_error(code, events, ExitCode.INPUT, "not_a_video", "cannot open", "not a video file")


def test_zero_frame_video(tmp_path):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()                                     # a valid AVI container holding no frame
    assert empty.stat().st_size > 0
    code, events, _ = run_cli(empty, "-o", tmp_path / "out")
    assert_error(code, events, ExitCode.INPUT, "no_frames", "no video frames")
    zero_bytes = tmp_path / "zero.mp4"
    zero_bytes.write_bytes(b"")
    code, events, _ = run_cli(zero_bytes, "-o", tmp_path / "out")
    assert_error(code, events, ExitCode.INPUT, "no_frames", "empty file")


def test_start_beyond_the_end(small_video, tmp_path):
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--start", "10")
    assert_error(code, events, ExitCode.INPUT, "no_frames", "no frames selected", "--start 10")


# --- usage -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, phrase", [
    (["--fov", "40", "--focal", "900"], "not allowed with argument"),
    (["--stride", "0"], "expected a number >= 1"),
    (["--subjects", "some"], "--subjects must be 'all' or a positive whole number"),
    (["--end", "1.5 minutes"], "--end expects a frame number"),
    (["--save-vertices"], "--save-vertices needs --smpl-model"),
    (["--device", "tpu"], "invalid choice"),
])
def test_usage_errors(small_video, tmp_path, args, phrase):
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", *args)
    assert_error(code, events, ExitCode.USAGE, events[-1]["code"], phrase)
    assert events[-1]["code"] in ("usage", "tracking_settings")


def test_no_command_is_a_usage_error():
    stdout, stderr = io.StringIO(), io.StringIO()
    assert cli.main([], stdout=stdout, stderr=stderr) == ExitCode.USAGE
    assert "run INPUT -o OUT_DIR" in stderr.getvalue()


# --- SMPL model --------------------------------------------------------------------------------------
def test_wrong_smpl_file(small_video, tmp_path):
    not_smpl = tmp_path / "SMPL_NEUTRAL.pkl"
    not_smpl.write_bytes(b"\x80\x02}q\x00X\x03\x00\x00\x00fooq\x01K\x01s.")   # a pickled {'foo': 1}
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--smpl-model", not_smpl, "--offline",
                              "--weights", tmp_path / "no_weights")
    message = assert_error(code, events, ExitCode.SMPL_MODEL, "smpl_model", "SMPL_NEUTRAL.pkl")
    assert "weights not found" not in message and "found: foo" in message   # checked before the weights
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--smpl-model", tmp_path / "missing.pkl")
    assert_error(code, events, ExitCode.SMPL_MODEL, "smpl_model", "not found")


# --- weights -----------------------------------------------------------------------------------------
def test_missing_weights_offline(small_video, tmp_path):
    weights = tmp_path / "weights"
    code, events, stderr = run_cli(small_video, "-o", tmp_path / "out", "--weights", weights, "--offline")
    message = assert_error(code, events, ExitCode.WEIGHTS, "weights_missing", "weights not found", str(weights))
    for name in WEIGHT_FILENAMES:
        assert name in message
    assert events[0]["event"] == "start" and events[0]["total_frames"] == 4
    assert not (tmp_path / "out" / "small.trace.npz").exists()


def test_missing_weights_without_network(small_video, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACE_WEIGHTS_URL", "http://127.0.0.1:9/")     # closed port: like no internet
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--weights", tmp_path / "w")
    assert_error(code, events, ExitCode.WEIGHTS, "weights_missing", "weights not found", "download of")


@pytest.fixture()
def weights_copy(generated_weights, tmp_path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(generated_weights, folder)
    return folder


def test_truncated_weights(small_video, tmp_path, weights_copy):
    head = weights_copy / "trace_head.pkl"
    head.write_bytes(head.read_bytes()[: head.stat().st_size // 3])
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--weights", weights_copy, "--offline")
    message = assert_error(code, events, ExitCode.WEIGHTS, events[-1]["code"], "trace_head.pkl")
    assert events[-1]["code"].startswith("weights")
    assert "truncated" in message or "ends early" in message or "incomplete" in message, message


def test_weights_in_the_wrong_slot(small_video, tmp_path, weights_copy):
    shutil.copy(weights_copy / "trace_head.pkl", weights_copy / "trace_image_backbone.pkl")
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out", "--weights", weights_copy, "--offline")
    assert_error(code, events, ExitCode.WEIGHTS, events[-1]["code"], "trace_image_backbone.pkl")
    assert events[-1]["code"].startswith("weights")


# --- interruption (mapping; the real signal is sent in test_pipeline_e2e) ---------------------------
def test_interrupt_maps_to_130(small_video, tmp_path, monkeypatch):
    import core.pipeline

    def interrupted(options, reporter):
        raise KeyboardInterrupt

    monkeypatch.setattr(core.pipeline, "run_video", interrupted)
    code, events, _ = run_cli(small_video, "-o", tmp_path / "out")
    assert_error(code, events, ExitCode.INTERRUPTED, "interrupted", "no result was written")


# --- progress formatting -------------------------------------------------------------------------------
def test_progress_formatting():
    assert format_duration(None) == "--:--"
    assert format_duration(59.6) == "1:00"
    assert format_duration(3725) == "1:02:05"
    assert rate_and_eta(0, 100, 5.0) == (None, None)
    assert rate_and_eta(40, 120, 20.0) == (2.0, 40.0)
    line = format_bar_line("inference", 40, 120, 2.0, 40.0, width=12)
    assert line == "inference    [####........]  40/120 frames  2.00 frames/s  ETA 0:40"
    assert format_plain_line("smpl", 3, 4, None, None) == "smpl: 3/4 frames (75%), -- frames/s, ETA --:--"


def test_progress_reporter_json_and_plain_lines():
    clock = iter([0.0, 0.0, 1.0, 2.0, 10.0, 10.0, 10.0]).__next__
    out, err = io.StringIO(), io.StringIO()
    reporter = ProgressReporter(json_stream=out, human_stream=err, is_tty=False, plain_interval_s=5.0, clock=clock)
    reporter.start(20, 30.0, "clip.mp4")
    reporter.begin_stage("inference", 20)      # t=0 (stage start), t=0 (update 0)
    reporter.update(8)                         # t=1: JSON only (plain lines every 5 s)
    reporter.update(16)                        # t=2
    reporter.update(20)                        # t=10: finished -> plain line
    reporter.end_stage()
    reporter.done("out/clip.trace.npz", 2)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "progress", "progress", "progress", "done"]
    assert events[2] == {"event": "progress", "stage": "inference", "done": 8, "total": 20, "fps": 8.0, "eta_s": 1.5}
    assert events[-1] == {"event": "done", "result": "out/clip.trace.npz", "tracks": 2, "exit_code": 0}
    lines = err.getvalue().splitlines()
    assert lines[1] == "inference: 0/20 frames (0%), -- frames/s, ETA --:--"
    assert lines[2] == "inference: 20/20 frames (100%), 2.00 frames/s, ETA 0:00"
    assert len(lines) == 3


def test_progress_reporter_tty_bar():
    err = io.StringIO()
    reporter = ProgressReporter(human_stream=err, is_tty=True, clock=iter([0.0, 0.0, 4.0, 4.0]).__next__)
    reporter.begin_stage("inference", 8)
    reporter.update(8)
    reporter.end_stage()
    text = err.getvalue()
    assert "\r" in text and text.endswith("\n")
    assert "8/8 frames  2.00 frames/s  ETA 0:00" in text


# --- cases that run the network (a few frames each) --------------------------------------------------
@pytest.mark.slow
def test_unreadable_frame_midway_writes_partial_result(reference_dir, generated_weights, tmp_path):
    frames = np.load(reference_dir / "clip_seed0.npz")["frames"]           # RGB
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in (0, 1, 3):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frames[i][:, :, ::-1])
    (folder / "frame_002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")   # damaged image in the middle
    out = tmp_path / "out"
    code, events, stderr = run_cli(folder, "-o", out, "--weights", generated_weights, "--offline")
    assert code == ExitCode.PARTIAL, stderr[-2000:]
    assert events[-1]["event"] == "done" and events[-1]["exit_code"] == 10
    warning = [e for e in events if e["event"] == "warning"][-1]["message"]
    assert "frame_002.png" in warning and "stopped after frame 1" in warning and "was written" in warning
    from trace_format.npz import read_result
    result = read_result(out / "shots.trace.npz")
    assert Path(events[-1]["result"]) == out / "shots.trace.npz" and events[-1]["tracks"] == len(result.tracks) >= 1
    assert result.frames_processed.stopped_early and result.frames_processed.last == 1
    assert "frame_002.png" in result.frames_processed.stop_reason
    assert all(set(t.frames.tolist()) <= {0, 1} for t in result.tracks)
    np.testing.assert_allclose(result.tracks[0].times, result.tracks[0].frames / 30.0)   # folder default 30 fps


@pytest.mark.slow
def test_no_person_found_writes_nothing(reference_dir, generated_weights, tmp_path):
    frame = np.load(reference_dir / "clip_seed0.npz")["frames"][0]
    video = write_video(tmp_path / "one.avi", [frame], fps=10.0, codec="MJPG")
    out = tmp_path / "out"
    # thresholds no detection can pass: the tracker starts no track
    code, events, _ = run_cli(video, "-o", out, "--weights", generated_weights, "--offline",
                              "--tracking", "first_frame_det_thresh=1e9", "--tracking", "tracker_det_thresh=1e9")
    assert_error(code, events, ExitCode.NO_PERSON, "no_person", "no person was tracked", "nothing was written")
    assert [e["done"] for e in events if e.get("stage") == "inference"] == [0, 1]   # the network did run
    assert not out.exists() or list(out.iterdir()) == []


def test_stdout_carries_only_json_lines(small_video, tmp_path):
    """A library printing to stdout mid-run must not corrupt the protocol (it is sent to stderr)."""
    import subprocess
    import sys

    script = ("import sys, core.pipeline as p, core.cli as c\n"
              "def noisy(options, reporter):\n"
              "    print('library chatter'); reporter.warning('careful'); raise KeyboardInterrupt\n"
              "p.run_video = noisy\n"
              f"sys.exit(c.main(['run', {str(small_video)!r}, '-o', {str(tmp_path / 'out')!r}, '--progress-json']))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["event"] for e in events] == ["warning", "error"] and run.returncode == 130
    assert "library chatter" in run.stderr
