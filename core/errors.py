"""Exit codes and the error hierarchy of the command line.

Every failure a user can fix is a `TraceError` subclass that carries its process exit code and a
short machine name (`code`) for the JSON progress protocol, so the Blender add-on (which runs the
core in a subprocess) can react to the kind of failure without parsing English text.

Standard library only. The exit codes themselves are trace_format.protocol.ExitCode (shared with the add-on).
"""
from __future__ import annotations

from trace_format.protocol import ExitCode


class TraceError(Exception):
    """Base class: an error with a user-facing message, an exit code and a JSON code name."""

    exit_code: ExitCode = ExitCode.USAGE
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(TraceError):
    """Bad command-line arguments (conflicting or out-of-range options)."""

    exit_code = ExitCode.USAGE
    code = "usage"


class InputError(TraceError):
    """The input video or image folder cannot be used."""

    exit_code = ExitCode.INPUT
    code = "input"


class InputNotFoundError(InputError):
    code = "input_not_found"


class NotAVideoError(InputError):
    code = "not_a_video"


class NoFramesError(InputError):
    code = "no_frames"


class FrameReadError(InputError):
    """A frame could not be decoded after some frames were read successfully.

    Raised by the frame sources; the pipeline turns it into a partial result (exit 10) when at least
    one frame was processed, and into an input error (exit 3) otherwise.
    """

    code = "unreadable_frame"

    def __init__(self, message: str, frame_index: int, last_good_frame: int | None) -> None:
        super().__init__(message)
        self.frame_index = frame_index
        self.last_good_frame = last_good_frame


class WeightsError(TraceError):
    """The three TRACE checkpoint files are missing, corrupt or not the expected ones."""

    exit_code = ExitCode.WEIGHTS
    code = "weights"


class WeightsNotFoundError(WeightsError):
    code = "weights_missing"


class SmplModelFileError(TraceError):
    """The --smpl-model file cannot be used."""

    exit_code = ExitCode.SMPL_MODEL
    code = "smpl_model"


class OutputError(TraceError):
    """OUT_DIR cannot take the result: not creatable, read-only, full, a name too long, a file in the way."""

    exit_code = ExitCode.OUTPUT
    code = "output_unwritable"


class OutputBusyError(OutputError):
    """Another run holds OUT_DIR's lock."""

    code = "output_busy"


class NoPersonFoundError(TraceError):
    """The network tracked nobody in the processed frames; no result file is written."""

    exit_code = ExitCode.NO_PERSON
    code = "no_person"


class PartialResultError(TraceError):
    """Reading stopped at an unreadable frame; the result of the frames before it was written."""

    exit_code = ExitCode.PARTIAL
    code = "partial_result"

    def __init__(self, message: str, result_path: str, tracks: int) -> None:
        super().__init__(message)
        self.result_path = result_path
        self.tracks = tracks


class RunInterruptedError(TraceError):
    """SIGINT / SIGTERM: the run stopped and nothing was written."""

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"
