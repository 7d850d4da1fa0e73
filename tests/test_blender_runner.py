"""The add-on's process driver (trace_blender.runner) against a fake core that speaks the JSON protocol.

No bpy needed: the runner is plain Python.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from helpers.blender import fake_video, write_fake_core
from trace_blender import runner
from trace_blender.errors import CoreRunError


@pytest.fixture()
def fake_core(tmp_path: Path) -> Path:
    return write_fake_core(tmp_path)


def start_run(tmp_path: Path, fake_core: Path, mode: str, grace_s: float = 5.0) -> runner.CoreRun:
    video = fake_video(tmp_path, mode)
    output = runner.new_run_directory(tmp_path / "runs", video)
    command = runner.CoreCommand(python=str(fake_core), video=video, output_dir=output, weights_dir="/w",
                                 device="cpu", smpl_model="/m.pkl", offline=True)
    return runner.CoreRun(command.argv(), output, terminate_grace_s=grace_s).start()


def wait_for_stage(run: runner.CoreRun, stage: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while run.poll() is runner.RunState.RUNNING and run.progress.stage != stage:
        assert time.monotonic() < deadline, f"stage {stage!r} never reported"
        time.sleep(0.02)


def process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); check its state in /proc where available.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


def test_command_line_follows_the_core_cli():
    command = runner.CoreCommand(python="/py", video=Path("/v/clip.mp4"), output_dir=Path("/out"), weights_dir="/w",
                                 device="cuda", smpl_model="/s.pkl", offline=True)
    assert command.argv() == ["/py", "-m", "core", "run", "/v/clip.mp4", "-o", "/out", "--progress-json",
                              "--device", "cuda", "--weights", "/w", "--smpl-model", "/s.pkl", "--offline"]
    official = runner.CoreCommand(python="/py", video=Path("a.mov"), output_dir=Path("o"), smpl_model="/s.pkl",
                                  smpl_extra_regressor="/J_regressor_extra.npy")
    assert official.argv()[-4:] == ["--smpl-model", "/s.pkl", "--smpl-extra-regressor", "/J_regressor_extra.npy"]
    no_model = runner.CoreCommand(python="/py", video=Path("a.mov"), output_dir=Path("o"),
                                  smpl_extra_regressor="/J_regressor_extra.npy")
    assert "--smpl-extra-regressor" not in no_model.argv()          # the core needs the SMPL model for it
    minimal = runner.CoreCommand(python="/py", video=Path("a.mov"), output_dir=Path("o"))
    assert minimal.argv() == ["/py", "-m", "core", "run", "a.mov", "-o", "o", "--progress-json", "--device", "auto"]
    # The panel's world toggles, passed only when turned off (each step is on by default in the core).
    for field, flag in (("align", "--no-align"), ("foot_cleanup", "--no-foot-cleanup"), ("denoise", "--no-denoise"),
                        ("shot_detection", "--no-shot-detection")):
        off = runner.CoreCommand(python="/py", video=Path("a.mov"), output_dir=Path("o"), **{field: False})
        assert off.argv() == minimal.argv() + [flag]


def test_successful_run_reports_progress_and_result(tmp_path, fake_core):
    run = start_run(tmp_path, fake_core, "ok")
    seen = []
    while not run.poll().finished:
        seen.append((run.progress.stage, run.progress.done, run.progress.total))
        time.sleep(0.01)
    outcome = run.raise_for_failure()
    assert outcome.state is runner.RunState.SUCCEEDED and outcome.exit_code == 0
    assert outcome.result_path == run.output_dir / "result.npz" and outcome.result_path.is_file()
    assert run.progress.total_frames == 40 and run.progress.video_fps == 25.0
    assert run.progress.stage == "write" and run.progress.fraction == 1.0
    assert "a log line that is not JSON" in run.log_lines
    argv = json.loads((run.output_dir / "argv.json").read_text())
    assert argv[argv.index("--weights") + 1] == "/w" and "--offline" in argv and "--progress-json" in argv


def test_progress_fields_and_description():
    progress = runner.RunProgress()
    run = runner.CoreRun(["unused"], Path("/nonexistent"), owns_output_dir=False)
    run._apply({"event": "progress", "stage": "inference", "done": 40, "total": 120, "fps": 1.52, "eta_s": 52.6})
    progress = run.progress
    assert progress.fraction == pytest.approx(1 / 3)
    assert progress.describe() == "inference 40/120 frames, 1.5/s, ETA 0:53"
    run._apply({"event": "progress", "stage": "load_weights", "done": 0, "total": 3, "fps": None, "eta_s": None})
    assert progress.describe() == "load weights 0/3" and progress.fraction == 0.0
    run._apply({"event": "warning", "message": "low light"})
    assert progress.warnings == ["low light"]
    assert runner.format_duration(3725) == "1:02:05"


def test_core_error_event_becomes_the_message_and_output_is_removed(tmp_path, fake_core):
    run = start_run(tmp_path, fake_core, "error")
    outcome = run.wait(poll_interval_s=0.02, timeout_s=30)
    assert outcome.state is runner.RunState.FAILED and outcome.exit_code == 4
    assert outcome.message == "TRACE weights not found in /nowhere: run once online"
    assert not run.output_dir.exists()
    with pytest.raises(CoreRunError, match="weights not found") as caught:
        run.raise_for_failure()
    assert caught.value.code == "weights_missing" and caught.value.process_exit_code == 4


def test_crash_without_error_event_reports_stderr(tmp_path, fake_core):
    outcome = start_run(tmp_path, fake_core, "crash").wait(poll_interval_s=0.02, timeout_s=30)
    assert outcome.state is runner.RunState.FAILED and outcome.exit_code == 1
    assert "exit code 1" in outcome.message and "simulated crash" in outcome.message


def test_interpreter_without_core_gets_setup_instructions(tmp_path, fake_core):
    outcome = start_run(tmp_path, fake_core, "nocore").wait(poll_interval_s=0.02, timeout_s=30)
    assert outcome.state is runner.RunState.FAILED
    assert "no TRACE core installed" in outcome.message and "pip install -e" in outcome.message


def test_partial_result_is_importable_with_a_warning(tmp_path, fake_core):
    outcome = start_run(tmp_path, fake_core, "partial").wait(poll_interval_s=0.02, timeout_s=30)
    assert outcome.state is runner.RunState.PARTIAL and outcome.exit_code == 10
    assert outcome.result_path is not None and outcome.result_path.is_file()
    assert "frame 31 could not be decoded" in outcome.message
    assert outcome.warnings == ["frame 31 could not be decoded; the result covers frames 0-30"]


def test_result_saved_elsewhere_is_importable_and_says_where(tmp_path, fake_core):
    run = start_run(tmp_path, fake_core, "elsewhere")
    outcome = run.wait(poll_interval_s=0.02, timeout_s=30)
    assert outcome.state is runner.RunState.SAVED_ELSEWHERE and outcome.exit_code == 11
    saved = tmp_path / "unsaved results" / "clip.20260102-030405.trace.npz"
    assert outcome.result_path == saved and saved.is_file()
    assert str(saved) in outcome.message and str(run.output_dir) in outcome.message
    assert outcome.warnings and "No space left on device" in outcome.warnings[0]
    assert run.raise_for_failure() is outcome                       # not a failure: the result exists
    assert not run.output_dir.exists()                              # the empty run folder is tidied away


def test_cancel_terminates_the_process_and_removes_its_output(tmp_path, fake_core):
    run = start_run(tmp_path, fake_core, "slow")
    wait_for_stage(run, "smpl")
    assert (run.output_dir / "work_in_progress.tmp").exists()
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 5.0  # SIGTERM was enough
    assert run.state is runner.RunState.CANCELLED and run.outcome.result_path is None
    assert not run.output_dir.exists()
    assert process_is_gone(run.pid)


def test_cancel_kills_a_process_that_ignores_sigterm(tmp_path, fake_core):
    if os.name != "posix":
        pytest.skip("signal semantics tested on POSIX")
    run = start_run(tmp_path, fake_core, "stubborn", grace_s=0.5)
    wait_for_stage(run, "smpl")
    started = time.monotonic()
    run.cancel()
    assert 0.4 < time.monotonic() - started < 10.0  # waited the grace period, then killed
    assert run.state is runner.RunState.CANCELLED and not run.output_dir.exists()
    assert process_is_gone(run.pid)


def test_missing_interpreter_is_reported(tmp_path):
    problem = runner.check_core_interpreter(str(tmp_path / "no_python"), use_cache=False)
    assert problem is not None and "does not exist" in problem and "pip" not in problem  # never a missing Python
    assert runner.check_core_interpreter(sys.executable, use_cache=False) is None  # this repo's Python has core
    output = runner.new_run_directory(tmp_path, "x.mp4")
    with pytest.raises(Exception, match="cannot start the TRACE core"):
        runner.CoreRun([str(tmp_path / "no_python"), "-m", "core"], output).start()
    assert not output.exists()


def test_preview_flag_and_path():
    command = runner.CoreCommand(python="/py", video=Path("a.mov"), output_dir=Path("o"), preview=True)
    assert command.argv()[:10] == ["/py", "-m", "core", "run", "a.mov", "-o", "o", "--progress-json", "--device",
                                   "auto"] and command.argv()[10] == "--preview"
    assert runner.preview_path_for("/runs/x/clip.trace.npz") == Path("/runs/x/clip.preview.mp4")
    assert runner.preview_path_for("/runs/x/result.npz") == Path("/runs/x/result.preview.mp4")
