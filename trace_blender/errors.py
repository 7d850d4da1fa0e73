"""Errors of the Blender side, each with a message a user can act on and a CLI exit code.

Standard library only (imported by the runner tests without bpy).
"""
from __future__ import annotations


class TraceBlenderError(Exception):
    """Base class; `exit_code` is what `python -m trace_blender` returns for it."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(TraceBlenderError):
    """Options that do not fit together (e.g. one BVH file for several people)."""

    exit_code = 2


class ResultFileError(TraceBlenderError):
    """The result file is missing, truncated or not a TRACE / trace2 result."""

    exit_code = 3


class SmplModelLoadError(TraceBlenderError):
    """The SMPL model file given for shapes and skinning cannot be used."""

    exit_code = 5


class OutputError(TraceBlenderError):
    """An output file cannot be written: read-only folder, full disk, a file in the way."""

    exit_code = 7


class SceneBuildError(TraceBlenderError):
    """Building the characters failed; everything created so far was removed again."""


class RetargetError(TraceBlenderError):
    """A retarget that cannot give a correct bake (not a humanoid, an incomplete map, a linked rig ...)."""

    exit_code = 6


class ExportError(TraceBlenderError):
    """An FBX / glTF / BVH export could not be written."""


class CoreUnavailableError(TraceBlenderError):
    """No usable TRACE core (Python package `core`) for reading results or running inference."""


class CoreRunError(TraceBlenderError):
    """Inference in the core subprocess failed; the message is core's own."""

    def __init__(self, message: str, exit_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.process_exit_code = exit_code
        self.code = code
