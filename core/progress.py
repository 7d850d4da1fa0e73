"""Progress reporting for the command line: a terminal bar, plain log lines, and JSON lines.

Humans get a redrawn bar with frames/s and ETA when stderr is a terminal, and a plain line every few
seconds otherwise (log files, CI). With `--progress-json` every event also goes to stdout as one
JSON object per line (protocol in docs/architecture.md and docs/cli.md), which is what the Blender
add-on reads; then stdout carries nothing else.

Standard library only.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, Callable, TextIO

from trace_format.protocol import (EVENT_DONE, EVENT_ERROR, EVENT_PROGRESS, EVENT_START, EVENT_WARNING,
                                   STAGES, format_duration)


def rate_and_eta(done: int, total: int, elapsed_s: float) -> tuple[float | None, float | None]:
    """Items per second over the stage so far and the seconds left at that rate (None until known)."""
    if done <= 0 or elapsed_s <= 0:
        return None, None
    rate = done / elapsed_s
    remaining = max(total - done, 0)
    return rate, remaining / rate


def format_bar_line(stage: str, done: int, total: int, rate: float | None, eta_s: float | None,
                    width: int = 24, unit: str = "frames") -> str:
    """One-line bar: 'inference [#######.........]  40/120 frames  1.52 frames/s  ETA 0:53'."""
    fraction = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(round(fraction * width))
    bar = "#" * filled + "." * (width - filled)
    rate_text = "--" if rate is None else f"{rate:.2f}"
    return (f"{stage:<12s} [{bar}] {done:>{len(str(total))}d}/{total} {unit}  "
            f"{rate_text} {unit}/s  ETA {format_duration(eta_s)}")


def format_plain_line(stage: str, done: int, total: int, rate: float | None, eta_s: float | None,
                      unit: str = "frames") -> str:
    """Log-friendly line: 'inference: 40/120 frames (33%), 1.52 frames/s, ETA 0:53'."""
    percent = 100.0 * done / total if total > 0 else 0.0
    rate_text = "--" if rate is None else f"{rate:.2f}"
    return (f"{stage}: {done}/{total} {unit} ({percent:.0f}%), {rate_text} {unit}/s, "
            f"ETA {format_duration(eta_s)}")


def _round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


class ProgressReporter:
    """Sends start/progress/warning/done/error events to humans (stderr) and optionally JSON (stdout).

    Why one object: the pipeline reports once, and the same call feeds both the terminal and the
    add-on's protocol, so the two can never disagree.
    """

    def __init__(self, json_stream: TextIO | None = None, human_stream: TextIO | None = None,
                 is_tty: bool | None = None, plain_interval_s: float = 5.0, json_interval_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.json_stream = json_stream
        self.human_stream = human_stream if human_stream is not None else sys.stderr   # None under pythonw
        if is_tty is None:
            isatty = getattr(self.human_stream, "isatty", None)
            is_tty = bool(isatty()) if callable(isatty) else False
        self.is_tty = is_tty
        self.plain_interval_s = plain_interval_s
        self.json_interval_s = json_interval_s   # progress events closer than this are dropped (not 0 / total)
        self.clock = clock
        self._stage: str | None = None
        self._stage_total = 0
        self._stage_unit = "frames"
        self._stage_done = 0
        self._stage_started = 0.0
        self._last_human = -math.inf
        self._last_json = -math.inf
        self._bar_visible = False

    # --- low level -------------------------------------------------------------------------------
    def emit_json(self, event: dict[str, Any]) -> None:
        """Write one protocol event as a single JSON line (flushed: the reader is a live process)."""
        if self.json_stream is None:
            return
        try:
            self.json_stream.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.json_stream.flush()
        except (OSError, ValueError):     # reader gone (broken pipe, `| head`) or stdout closed: the run goes on
            self.json_stream = None

    def _write_human(self, text: str) -> None:
        """Human output is best effort: a closed or broken stderr never fails a run."""
        if self.human_stream is None:
            return
        try:
            self.human_stream.write(text)
            self.human_stream.flush()
        except (OSError, ValueError, AttributeError):
            self.human_stream = None

    def _human(self, text: str) -> None:
        self._clear_bar()
        self._write_human(text + "\n")

    def _clear_bar(self) -> None:
        if self._bar_visible:
            self._write_human("\r\x1b[2K")
            self._bar_visible = False

    # --- events ----------------------------------------------------------------------------------
    def start(self, total_frames: int, fps: float, input_path: str) -> None:
        self.emit_json({"event": EVENT_START, "total_frames": int(total_frames), "fps": _round_or_none(fps),
                        "input": str(input_path)})
        self._human(f"input: {input_path} ({total_frames} frames to process at {fps:.3f} fps)")

    def info(self, message: str) -> None:
        """Human-only line (not part of the JSON protocol)."""
        self._human(message)

    def warning(self, message: str) -> None:
        self.emit_json({"event": EVENT_WARNING, "message": message})
        self._human(f"warning: {message}")

    def begin_stage(self, stage: str, total: int, unit: str = "frames") -> None:
        """Start timing a stage and announce it with done=0 (the add-on shows the stage at once).

        `unit` only labels the human output; JSON `done`/`total` count the same units (frames for
        inference, person-frames for smpl and world, bytes while downloading weights, steps otherwise).
        """
        if stage not in STAGES:
            raise ValueError(f"unknown progress stage {stage!r}; expected one of {STAGES}")
        self._stage = stage
        self._stage_total = int(total)
        self._stage_unit = unit
        self._stage_done = 0
        self._stage_started = self.clock()
        self._last_human = -math.inf
        self._last_json = -math.inf
        self.update(0, force=True)

    def update(self, done: int, force: bool = False) -> None:
        """Report `done` items of the current stage; human output is rate-limited, JSON is not."""
        if self._stage is None:
            raise RuntimeError("update() called before begin_stage()")
        self._stage_done = int(done)
        # Totals can be estimates (a container's frame count): never report more done than total.
        self._stage_total = max(self._stage_total, self._stage_done)
        now = self.clock()
        rate, eta = rate_and_eta(self._stage_done, self._stage_total, now - self._stage_started)
        finished = self._stage_done >= self._stage_total
        if force or finished or now - self._last_json >= self.json_interval_s:
            self.emit_json({"event": EVENT_PROGRESS, "stage": self._stage, "done": self._stage_done,
                            "total": self._stage_total, "fps": _round_or_none(rate),
                            "eta_s": _round_or_none(eta, 1)})
            self._last_json = now
        if self.is_tty:
            if force or finished or now - self._last_human >= 0.1:
                line = format_bar_line(self._stage, self._stage_done, self._stage_total, rate, eta,
                                       unit=self._stage_unit)
                self._write_human("\r\x1b[2K" + line)
                self._bar_visible = True
                self._last_human = now
        elif (force and self._stage == "inference") or finished or now - self._last_human >= self.plain_interval_s:
            self._human(format_plain_line(self._stage, self._stage_done, self._stage_total, rate, eta,
                                          unit=self._stage_unit))
            self._last_human = now

    def end_stage(self) -> float:
        """Close the current stage (newline after a bar); returns its duration in seconds."""
        elapsed = self.clock() - self._stage_started
        if self._bar_visible:
            self._write_human("\n")
            self._bar_visible = False
        self._stage = None
        return elapsed

    def done(self, result_path: str, tracks: int, exit_code: int = 0, extra: dict[str, Any] | None = None) -> None:
        """The last event of a run that wrote a result; `extra` adds fields (e.g. the world summary)."""
        event = {"event": EVENT_DONE, "result": str(result_path), "tracks": int(tracks), "exit_code": int(exit_code)}
        event.update({key: value for key, value in (extra or {}).items() if key not in event})
        self.emit_json(event)

    def error(self, code: str, message: str, exit_code: int) -> None:
        self.emit_json({"event": EVENT_ERROR, "code": code, "message": message, "exit_code": int(exit_code)})
        self._human(f"error: {message}")

    def close(self) -> None:
        self._clear_bar()
        self._write_human("")
