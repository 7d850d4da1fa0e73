"""Drive `python -m core run ... --progress-json` as a subprocess (no bpy: testable on its own).

The core prints one JSON event per stdout line (protocol in docs/architecture.md). A reader thread
turns lines into events on a queue; `CoreRun.poll()` drains it from Blender's timer (or from a
plain loop in background mode) and keeps a `RunProgress` the panel draws. Cancelling terminates
the process (then kills it after a grace period) and removes the output folder this run created.
"""
from __future__ import annotations

import enum
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from trace_format.protocol import (EVENT_DONE, EVENT_ERROR, EVENT_PROGRESS, EVENT_START, EVENT_WARNING, ExitCode,
                                   format_duration)

from . import advice
from .errors import CoreRunError, CoreUnavailableError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
# The interpreter check: its version first (so a wrong Python is named as such), then the core's imports.
VERSION_AND_CORE_CHECK = "import sys; print('%d.%d' % sys.version_info[:2], flush=True); import core.cli, torch"
# `python -m core run` options that turn the world post-processing steps off (all on by default).
NO_ALIGN_FLAG = "--no-align"
NO_FOOT_CLEANUP_FLAG = "--no-foot-cleanup"
NO_DENOISE_FLAG = "--no-denoise"
NO_SHOT_DETECTION_FLAG = "--no-shot-detection"


class RunState(enum.Enum):
    NOT_STARTED = "not_started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"        # exit 10: a result for the frames before an unreadable one
    SAVED_ELSEWHERE = "saved_elsewhere"   # exit 11: finished, but the run folder failed: in a fallback folder
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunState.NOT_STARTED, RunState.RUNNING)


@dataclass
class RunProgress:
    """What the panel shows; updated from the JSON events."""

    stage: str = "starting"
    done: int = 0
    total: int = 0
    frames_per_second: float | None = None
    eta_s: float | None = None
    total_frames: int | None = None
    video_fps: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(max(self.done / self.total, 0.0), 1.0)

    def describe(self) -> str:
        """'inference 40/120 frames, 1.5 frames/s, ETA 0:53'."""
        if self.total <= 0:
            return self.stage.replace("_", " ")
        text = f"{self.stage.replace('_', ' ')} {self.done}/{self.total}"
        if self.stage in ("inference", "smpl"):
            text += " frames"
        if self.frames_per_second:
            text += f", {self.frames_per_second:.1f}/s"
        if self.eta_s is not None and self.done < self.total:
            text += f", ETA {format_duration(self.eta_s)}"
        return text


@dataclass
class RunOutcome:
    state: RunState
    result_path: Path | None
    message: str
    exit_code: int | None
    warnings: list[str]


@dataclass
class CoreCommand:
    """How to launch the core: `<python> -m core run VIDEO -o OUT --progress-json [options]`.

    The panel's world toggles become `--no-align`, `--no-foot-cleanup`, `--no-shot-detection` when off.

    `launcher` replaces `[python, "-m", "core"]` (tests use a fake core script).
    """

    python: str
    video: Path
    output_dir: Path
    weights_dir: str | None = None
    device: str = "auto"
    smpl_model: str | None = None
    smpl_extra_regressor: str | None = None   # J_regressor_extra.npy: official placement (only with smpl_model)
    launcher: Sequence[str] | None = None
    offline: bool = False      # Blender's "Allow Online Access" is off: the core must not download weights
    align: bool = True         # ground and gravity alignment (floor at z = 0)
    foot_cleanup: bool = True  # foot contacts and skate cleanup
    denoise: bool = True       # temporal denoising of the world motion
    shot_detection: bool = True  # restart tracking, world and camera at hard cuts
    preview: bool = False      # also write <name>.preview.mp4 beside the result (`run --preview`)

    def argv(self) -> list[str]:
        prefix = list(self.launcher) if self.launcher else [self.python, "-m", "core"]
        args = prefix + ["run", str(self.video), "-o", str(self.output_dir), "--progress-json", "--device", self.device]
        if self.preview:
            args.append("--preview")
        if self.weights_dir:
            args += ["--weights", str(self.weights_dir)]
        if self.smpl_model:
            args += ["--smpl-model", str(self.smpl_model)]
            if self.smpl_extra_regressor:
                args += ["--smpl-extra-regressor", str(self.smpl_extra_regressor)]
        if self.offline:
            args.append("--offline")
        if not self.align:
            args.append(NO_ALIGN_FLAG)
        if not self.foot_cleanup:
            args.append(NO_FOOT_CLEANUP_FLAG)
        if not self.denoise:
            args.append(NO_DENOISE_FLAG)
        if not self.shot_detection:
            args.append(NO_SHOT_DETECTION_FLAG)
        return args


def new_run_directory(base_dir: str | os.PathLike, video: str | os.PathLike) -> Path:
    """A fresh folder `<base>/<video stem>-<time>-<id>` for one run's output (owned by that run)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(video).stem)[:40] or "video"
    path = Path(base_dir) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True, exist_ok=False)
    return path


_INTERPRETER_CHECKS: dict[str, str | None] = {}
NOT_CHECKED = "not checked yet"


def last_interpreter_check(python: str) -> str | None:
    """The last check's answer for `python` (None = fine), or NOT_CHECKED."""
    return _INTERPRETER_CHECKS.get(python, NOT_CHECKED)


def check_core_interpreter(python: str, timeout_s: float = 120.0, use_cache: bool = True) -> str | None:
    """None when `python` can run the TRACE core (imports core.cli and torch); else why not.

    Successes are cached per interpreter (importing torch takes seconds); failures are checked
    again every time, so fixing the installation needs no restart.
    """
    if use_cache and python in _INTERPRETER_CHECKS and _INTERPRETER_CHECKS[python] is None:
        return None
    if not python or not Path(python).is_file():
        problem = advice.interpreter_problem(python, exists=False, version=None, import_error=None)
    else:
        try:
            completed = subprocess.run([python, "-c", VERSION_AND_CORE_CHECK], capture_output=True, text=True,
                                       timeout=timeout_s)
            printed = re.match(r"(\d+)\.(\d+)$", (completed.stdout.strip().splitlines() or [""])[0])
            version = (int(printed.group(1)), int(printed.group(2))) if printed else None
            if version is not None and version != advice.CORE_PYTHON:
                problem = advice.interpreter_problem(python, exists=True, version=version, import_error=None)
            elif completed.returncode != 0:
                reason = (completed.stderr.strip().splitlines() or ["failed"])[-1]
                problem = advice.interpreter_problem(python, exists=True, version=version, import_error=reason)
            else:
                problem = None
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = advice.interpreter_problem(python, exists=True, version=None,
                                                 import_error=f"cannot start {python}: {exc}")
    _INTERPRETER_CHECKS[python] = problem
    return problem


class CoreRun:
    """One inference subprocess: start, poll (non-blocking), wait (blocking), cancel."""

    def __init__(self, command: Sequence[str], output_dir: Path, owns_output_dir: bool = True,
                 env: dict[str, str] | None = None, terminate_grace_s: float = 5.0) -> None:
        self.command = list(command)
        self.output_dir = Path(output_dir)
        self.owns_output_dir = owns_output_dir
        self.env = env
        self.terminate_grace_s = terminate_grace_s
        self.progress = RunProgress()
        self.state = RunState.NOT_STARTED
        self.log_lines: deque[str] = deque(maxlen=200)   # non-JSON stdout lines
        self.stderr_tail: deque[str] = deque(maxlen=60)
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._process: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        self._done_event: dict[str, Any] | None = None
        self._error_event: dict[str, Any] | None = None
        self._cancel_requested = False
        self._outcome: RunOutcome | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "CoreRun":
        if self.state is not RunState.NOT_STARTED:
            raise RuntimeError("a CoreRun can be started once")
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("PYTHONIOENCODING", "utf-8")
        try:
            self._process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
                start_new_session=(os.name == "posix"),  # its own process group: cancel reaches its children
            )
        except OSError as exc:
            self._remove_output_dir()
            raise CoreUnavailableError(f"cannot start the TRACE core ({self.command[0]}): {exc}. Set the Python "
                                       "interpreter in the add-on preferences") from exc
        self.state = RunState.RUNNING
        self._threads = [
            threading.Thread(target=self._read_stdout, name="trace-core-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="trace-core-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and "event" in event:
                self._events.put(event)
            else:
                self.log_lines.append(line)

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            line = line.rstrip()
            if line:
                self.stderr_tail.append(line)

    def poll(self) -> RunState:
        """Apply queued events; detect the end of the process. Never blocks."""
        self._drain_events()
        if self.state is RunState.RUNNING and self._process is not None and self._process.poll() is not None:
            for thread in self._threads:
                thread.join(timeout=5.0)
            self._drain_events()
            self._finish(self._process.returncode)
        return self.state

    def wait(self, poll_interval_s: float = 0.1, timeout_s: float | None = None) -> RunOutcome:
        """Block until the run ends (background mode); on timeout the run is cancelled."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.poll().finished:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                break
            time.sleep(poll_interval_s)
        return self.outcome

    def cancel(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after the grace period) and delete its output folder."""
        if self.state.finished and self.state is not RunState.CANCELLED:
            return
        self._cancel_requested = True
        process = self._process
        if process is not None and process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=self.terminate_grace_s)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
                process.wait(timeout=10.0)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._drain_events()
        self.state = RunState.CANCELLED
        self._remove_output_dir()
        self._outcome = RunOutcome(RunState.CANCELLED, None, "cancelled: the run was stopped and its output removed",
                                   None if process is None else process.returncode, list(self.progress.warnings))

    @staticmethod
    def _signal(process: subprocess.Popen, sig: int) -> None:
        try:
            if os.name == "posix":
                os.killpg(process.pid, sig)  # the group created by start_new_session: only this run
            elif sig == signal.SIGTERM:
                process.terminate()
            else:
                process.kill()
        except ProcessLookupError:
            pass

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def outcome(self) -> RunOutcome:
        if self._outcome is None:
            raise RuntimeError("the run has not finished yet")
        return self._outcome

    # --- events ----------------------------------------------------------------------------------
    def _drain_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        progress = self.progress
        if kind == EVENT_START:
            progress.total_frames = _as_int(event.get("total_frames"))
            progress.video_fps = _as_float(event.get("fps"))
        elif kind == EVENT_PROGRESS:
            progress.stage = str(event.get("stage", progress.stage))
            progress.done = _as_int(event.get("done")) or 0
            progress.total = _as_int(event.get("total")) or 0
            progress.frames_per_second = _as_float(event.get("fps"))
            progress.eta_s = _as_float(event.get("eta_s"))
        elif kind == EVENT_WARNING:
            progress.warnings.append(str(event.get("message", "")))
        elif kind == EVENT_DONE:
            self._done_event = event
        elif kind == EVENT_ERROR:
            self._error_event = event

    def _finish(self, returncode: int) -> None:
        warnings = list(self.progress.warnings)
        result = self._result_path()
        if self._cancel_requested:
            self.state = RunState.CANCELLED
            message = "cancelled"
        elif returncode == ExitCode.OK and result is not None:
            self.state, message = RunState.SUCCEEDED, f"result written to {result}"
        elif returncode == ExitCode.PARTIAL and result is not None:
            detail = self._error_message() or (warnings[-1] if warnings else "")
            self.state = RunState.PARTIAL
            message = f"partial result (the video could not be read to the end): {detail}".rstrip(": ")
        elif returncode == ExitCode.SAVED_ELSEWHERE and result is not None:
            self.state = RunState.SAVED_ELSEWHERE
            message = (f"the result could not be written to the run folder {self.output_dir}, so the TRACE core "
                       f"saved it to {result}: it was imported from there; move that file where you want to keep "
                       f"it (the imported people refer to it)")
            self._remove_output_dir(only_if_empty=True)
        else:
            self.state = RunState.FAILED
            message = self._failure_message(returncode, result)
            self._remove_output_dir()
            result = None
        self._outcome = RunOutcome(self.state, result, message, returncode, warnings)

    def _result_path(self) -> Path | None:
        for event in (self._done_event, self._error_event):
            if event and event.get("result"):
                return Path(str(event["result"]))
        return None

    def _error_message(self) -> str | None:
        if self._error_event and self._error_event.get("message"):
            return str(self._error_event["message"])
        return None

    def _failure_message(self, returncode: int, result: Path | None) -> str:
        core_message = self._error_message()
        if core_message:
            return core_message
        stderr_text = "\n".join(self.stderr_tail)
        if "No module named core" in stderr_text or "No module named 'core'" in stderr_text:
            return advice.interpreter_problem(
                self.command[0], exists=True, version=None,
                import_error=f"the Python interpreter used for inference has no TRACE core installed ({self.command[0]})")
        if returncode == ExitCode.OK:
            return "the TRACE core finished without reporting a result file"
        if returncode == ExitCode.INTERRUPTED:
            return "the TRACE core was interrupted; nothing was written"
        last = self.stderr_tail[-1] if self.stderr_tail else "no error message"
        return f"the TRACE core failed with exit code {returncode}: {last}"

    def _remove_output_dir(self, only_if_empty: bool = False) -> None:
        if not (self.owns_output_dir and self.output_dir.exists()):
            return
        if not only_if_empty:
            shutil.rmtree(self.output_dir, ignore_errors=False)
            return
        try:
            self.output_dir.rmdir()          # keeps whatever the core did manage to write there
        except OSError:
            pass

    def raise_for_failure(self) -> RunOutcome:
        """The outcome, or CoreRunError with core's own message when the run failed or was cancelled."""
        outcome = self.outcome
        if outcome.state in (RunState.FAILED, RunState.CANCELLED):
            code = self._error_event.get("code") if self._error_event else None
            raise CoreRunError(outcome.message, exit_code=outcome.exit_code, code=code)
        return outcome


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def default_python() -> str:
    """The interpreter running this code (Blender's bundled Python, or the bpy module's host)."""
    return sys.executable


def preview_path_for(result_path: str | Path) -> Path:
    """Where `run --preview` writes the overlay video of a result: `<name>.preview.mp4` beside it."""
    path = Path(result_path)
    name = path.name[:-len(".trace.npz")] if path.name.endswith(".trace.npz") else path.stem
    return path.with_name(name + ".preview.mp4")
