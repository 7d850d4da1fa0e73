"""The process protocol between the core (`python -m core run --progress-json`) and its callers.

The Blender add-on runs the core in a subprocess and reads one JSON event per stdout line (fields in
docs/architecture.md and docs/cli.md); the exit status says how the run ended. Both sides take the
event names, the progress stages, the exit codes and the ETA clock format from here. Standard library
only.
"""
from __future__ import annotations

import math
from enum import IntEnum

__all__ = ["ExitCode", "EVENT_START", "EVENT_PROGRESS", "EVENT_WARNING", "EVENT_DONE", "EVENT_ERROR", "EVENTS",
           "STAGES", "format_duration"]


class ExitCode(IntEnum):
    """Process exit status of `python -m core run` (documented in docs/cli.md)."""

    OK = 0
    INTERNAL = 1          # a bug: the traceback is printed on stderr
    USAGE = 2
    INPUT = 3
    WEIGHTS = 4
    SMPL_MODEL = 5
    NO_PERSON = 6
    OUTPUT = 7            # the output folder cannot take the result (checked before the network), or is busy
    PARTIAL = 10
    SAVED_ELSEWHERE = 11  # the finished result could not go to OUT_DIR: it was written to a fallback folder
    INTERRUPTED = 130


# The `event` field of each JSON line, in the order a run sends them (warnings may come at any time).
EVENT_START = "start"
EVENT_PROGRESS = "progress"
EVENT_WARNING = "warning"
EVENT_DONE = "done"
EVENT_ERROR = "error"
EVENTS = (EVENT_START, EVENT_PROGRESS, EVENT_WARNING, EVENT_DONE, EVENT_ERROR)

# The `stage` field of progress events, in run order (`world` counts person-frames).
STAGES = ("load_weights", "inference", "smpl", "world", "write", "preview")


def format_duration(seconds: float | None) -> str:
    """'1:02:03' / '2:05' style clock, '--:--' when unknown (no rate yet)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
