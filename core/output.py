"""The result file's way to disk: proven before the network runs, never lost after it.

Before the network (`OutputFolder.prepare`): OUT_DIR is created, locked against a second run
writing into it, cleared of temporary files that killed runs left behind, and a probe file with the
longest temporary name the write will use and about the result's size is written and removed. So a
read-only folder, a file in the way, a full disk, a file-size limit or a name too long for the file
system fails in seconds, not after the inference.

After it (`OutputFolder.write`): the result is written atomically (trace_format.atomic). A partial result
never replaces a complete one of the same name: it is written beside it (`<name>.partial.trace.npz`).
When the folder fails anyway (the disk filled up meanwhile, it was removed or made read-only), the
finished result is written to a fallback folder and the run says where (exit 11) instead of losing
hours of inference.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trace_format.atomic import (FolderBusyError, FolderLock, fit_name, folder_problem, probe_folder,
                     remove_stale_temporaries)
from .errors import OutputBusyError, OutputError, UsageError

RESULT_SUFFIX = ".trace.npz"
PARTIAL_SUFFIX = ".partial.trace.npz"
# Bytes a result needs per (person, frame) without SMPL geometry: TRACE's arrays, contacts, the
# cleaned motion and the scene camera (docs/result_format.md), rounded up.
BYTES_PER_PERSON_FRAME = 800
BYTES_PER_SMPL_JOINTS = 2 * 24 * 3 * 4
BYTES_PER_KEYPOINTS = 24 * 2 * 4 + 4 * 4       # keypoints_2d and box_2d (float32), in every result
BYTES_METADATA = 64 << 10


def result_path_for(input_path: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """OUT_DIR/<input stem>.trace.npz (a folder input uses the folder name); names too long for a
    file system are shortened with a hash of the whole name (trace_format.atomic.fit_name)."""
    input_path = Path(input_path)
    stem = input_path.name if input_path.is_dir() else input_path.stem
    return Path(output_dir) / fit_name(f"{stem or 'result'}{RESULT_SUFFIX}")


def partial_path_for(result_path: Path) -> Path:
    """`clip.trace.npz` -> `clip.partial.trace.npz` (beside it, within the name limit)."""
    stem = result_path.name.removesuffix(RESULT_SUFFIX)
    return result_path.with_name(fit_name(stem + PARTIAL_SUFFIX))


def estimated_result_bytes(frames: int, smpl_joints: bool = False, vertices: int = 0) -> int:
    """A lower bound of the result size for one person over `frames` frames (who is in the video
    is unknown before the network runs): what the probe writes and the free space must hold."""
    per_frame = BYTES_PER_PERSON_FRAME + BYTES_PER_KEYPOINTS + (BYTES_PER_SMPL_JOINTS if smpl_joints else 0) + 2 * vertices * 3 * 4
    return BYTES_METADATA + max(int(frames), 1) * per_frame


def fallback_folders() -> list[Path]:
    """Where a finished result goes when its folder fails: the per-user data folder, then the
    system's temporary folder."""
    from .weights import WEIGHTS_DIR_ENV, default_weights_dir

    environ = {key: value for key, value in os.environ.items() if key != WEIGHTS_DIR_ENV}
    return [default_weights_dir(environ).parent / "unsaved results", Path(tempfile.gettempdir()) / "trace-blender"]


@dataclass
class WriteOutcome:
    path: Path                          # where the result is
    intended: Path                      # where it was meant to go
    failure: str | None = None          # why it is not there (None: it is)
    beside_complete: bool = False       # partial result written beside a complete one

    @property
    def saved_elsewhere(self) -> bool:
        return self.failure is not None


@dataclass
class OutputFolder:
    """OUT_DIR checked and locked for one run; use as a context manager (the lock ends with it)."""

    folder: Path
    result_path: Path
    lock: FolderLock
    removed_temporaries: list[Path] = field(default_factory=list)
    created: bool = False               # the run made the folder (removed again if it fails empty)

    @classmethod
    def prepare(cls, input_path: str | os.PathLike, output_dir: str | os.PathLike,
                estimated_bytes: int) -> "OutputFolder":
        """Create, lock, clean and probe OUT_DIR; raises UsageError / OutputError / OutputBusyError."""
        folder = Path(output_dir)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"-o {folder} is a file, not a folder: give the folder the result should go to")
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"-o {folder}: {folder_problem(error, folder)}") from None
        result_path = result_path_for(input_path, folder)
        if result_path.is_dir():
            raise UsageError(f"-o {folder}: a folder named {result_path.name} is where the result file would go")
        try:
            lock = FolderLock(folder).acquire()
        except FolderBusyError as error:
            raise OutputBusyError(f"{error}; two runs writing one folder would overwrite each other. Wait for "
                                  f"it to finish or give this run another -o folder") from None
        except OSError as error:
            raise OutputError(f"-o {folder}: {folder_problem(error, folder)}") from None
        try:
            removed = remove_stale_temporaries(folder, RESULT_SUFFIX)
            try:
                probe_folder(result_path, estimated_bytes)
            except OSError as error:
                raise OutputError(f"-o {folder}: {folder_problem(error, folder)}") from None
            free = _free_bytes(folder)
            if free is not None and free < estimated_bytes:
                raise OutputError(f"-o {folder}: the disk has {free / 1e6:.1f} MB free, the result needs at least "
                                  f"{estimated_bytes / 1e6:.1f} MB; free some space or choose another folder")
        except BaseException:
            output = cls(folder, result_path, lock, removed, created)
            output.release(failed=True)
            raise
        return cls(folder, result_path, lock, removed, created)

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.release(failed=exc_type is not None)

    def release(self, failed: bool = False) -> None:
        """Drop the lock; a folder this run created is removed again when the run failed and left it empty."""
        self.lock.release()
        if failed and self.created:
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def target_for(self, partial: bool) -> tuple[Path, bool]:
        """(path to write, whether that is beside a complete result): a partial result goes beside an
        existing result that is not itself partial."""
        if partial and self.result_path.exists() and not is_partial_result(self.result_path):
            return partial_path_for(self.result_path), True
        return self.result_path, False

    def write(self, write: Callable[[Path], Path], partial: bool = False) -> WriteOutcome:
        """Write with `write(path)`; on a file-system error, into the first fallback folder that works.

        Raises OutputError only when no folder at all takes the result.
        """
        target, beside = self.target_for(partial)
        try:
            return WriteOutcome(write(target), self.result_path, beside_complete=beside)
        except OSError as error:
            reason = folder_problem(error, self.folder)
        tried = []
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for folder in fallback_folders():
            name = fit_name(f"{target.name.removesuffix(RESULT_SUFFIX)}.{stamp}{RESULT_SUFFIX}")
            try:
                return WriteOutcome(write(folder / name), self.result_path, failure=reason, beside_complete=beside)
            except OSError as error:
                tried.append(f"{folder} ({folder_problem(error, folder).split(': ', 1)[-1]})")
        raise OutputError(f"the result could not be written: {reason}; the fallback folders failed too: "
                          f"{'; '.join(tried)}. Nothing was saved")


def is_partial_result(path: Path) -> bool:
    """True when `path` is a result of a run that stopped early (its metadata says so)."""
    import json

    from trace_format.safe_pickle import NpzArchive

    try:
        with NpzArchive(path) as archive:
            if "meta_json" not in archive.members or archive.members["meta_json"].nbytes > 64 << 20:
                return False
            meta = json.loads(str(archive.read("meta_json")[()]))
    except (OSError, ValueError):
        return False
    processed = meta.get("frames_processed") if isinstance(meta, dict) else None
    return bool(isinstance(processed, dict) and processed.get("stopped_early"))


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
