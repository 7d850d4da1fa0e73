"""Messages in Blender's terms: inside Blender the core's command-line advice (`--weights DIR`,
`$TRACE_WEIGHTS_DIR`, `--offline`, `TRACE_OFFLINE=1`, `--smpl-model`) means nothing. Each message gets
a short first line that says what to do in Blender (Preferences › Add-ons › TRACE › ..., Preferences ›
System › Allow Online Access); the core's details follow, with the command-line parts translated.

No bpy (the runner tests use it without Blender).
"""
from __future__ import annotations

import re

from trace_format.protocol import ExitCode

# The Python the core runs on (pyproject.toml requires-python = ">=3.11,<3.12").
CORE_PYTHON = (3, 11)
CORE_PYTHON_TEXT = f"Python {CORE_PYTHON[0]}.{CORE_PYTHON[1]}"
PREFERENCES = "Preferences › Add-ons › TRACE"
WEIGHTS_SETTING = f"{PREFERENCES} › Weights folder"
SMPL_SETTING = f"{PREFERENCES} › SMPL model file"
PYTHON_SETTING = f"{PREFERENCES} › Python interpreter"
ONLINE_SETTING = "Preferences › System › Allow Online Access"

# (pattern, replacement) for the command-line advice in core messages.
_TRANSLATIONS = (
    (r"\s*\(or pass --weights DIR, or set \$TRACE_WEIGHTS_DIR\)", ""),
    (r"or pass --weights DIR", f"or set {WEIGHTS_SETTING}"),
    (r"--weights DIR|--weights", WEIGHTS_SETTING),
    (r"\$?TRACE_WEIGHTS_DIR", WEIGHTS_SETTING),
    (r"--smpl-model FILE|--smpl-model", SMPL_SETTING),
)
_DROPPED_LINES = ("--offline", "TRACE_OFFLINE")


def translate_details(text: str) -> str:
    """The core's text with its command-line advice said in Blender's terms (lines about offline flags
    are dropped: in Blender that is the Allow Online Access preference, named in the first line)."""
    lines = [line for line in text.splitlines() if not any(flag in line for flag in _DROPPED_LINES)]
    out = "\n".join(lines)
    for pattern, replacement in _TRANSLATIONS:
        out = re.sub(pattern, replacement, out)
    return out


def core_failure(message: str, exit_code: int | None = None, code: str | None = None,
                 online_access: bool = True) -> str:
    """A failed core run as a Blender report: what to do first, then the core's details."""
    details = translate_details(message)
    if exit_code == ExitCode.WEIGHTS or (code or "").startswith("weights") or message.startswith("TRACE weights"):
        if online_access:
            first = f"TRACE weights missing or unusable: check {WEIGHTS_SETTING} and the network"
        else:
            first = f"TRACE weights missing: turn on {ONLINE_SETTING}, or set {WEIGHTS_SETTING}"
    elif exit_code == ExitCode.SMPL_MODEL or (code or "").startswith("smpl"):
        first = f"SMPL model file unusable: pick SMPL_NEUTRAL.pkl in {SMPL_SETTING}, or clear it"
    else:
        return details
    return f"{first}\n{details}"


def interpreter_problem(python: str, exists: bool, version: tuple[int, int] | None, import_error: str | None) -> str:
    """Why the chosen interpreter cannot run the core, and what to do, without suggesting a Python that is
    missing or of the wrong version."""
    if not exists:
        return (f"Set {PYTHON_SETTING}: '{python}' does not exist\n"
                f"Choose the executable of a {CORE_PYTHON_TEXT} that has the TRACE core installed "
                "(the trace-blender repository's setup.sh makes one).")
    if version is not None and tuple(version) != CORE_PYTHON:
        found = f"Python {version[0]}.{version[1]}"
        return (f"Set {PYTHON_SETTING} to a {CORE_PYTHON_TEXT}: '{python}' is {found}\n"
                f"The TRACE core (with torch) needs {CORE_PYTHON_TEXT}; install one, run the trace-blender "
                "repository's setup.sh with it, and choose its executable.")
    reason = import_error or "it cannot import the TRACE core"
    return (f"Install the TRACE core into '{python}', then press Check in {PYTHON_SETTING}\n"
            f"{reason}. Install it with `{python} -m pip install -e <path to the trace-blender repo>` "
            "(or run the repo's setup.sh with that Python), or choose another interpreter.")


def unreadable_result(path: str, reason: str) -> str:
    """A result file that cannot be read, said to someone who may only have received it."""
    damaged = "damaged or truncated" in reason or "write it again" in reason
    reason = reason.replace("; write it again", "")
    if damaged:
        return (f"cannot read the TRACE result {path}: the file is incomplete or damaged (a copy or download "
                f"cut short?); get a complete copy of it, or run TRACE on the video again\n{reason}")
    return f"cannot read the TRACE result {path}: {reason}"


def first_line(message: str) -> str:
    return message.splitlines()[0] if message else message
