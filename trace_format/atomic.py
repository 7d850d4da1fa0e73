"""Atomic file writes: an output never exists half-written under its final name.

Every writer of the project (result files, downloads, exports, reports) goes through here: the data
goes to a unique temporary file in the target's folder, which is moved onto the target with
``os.replace`` only when writing succeeded; on any error (or Ctrl-C) the temporary file is removed and
a previous file of that name is left untouched. Standard library only (shared with the Blender
extension).
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_path", "atomic_open"]


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; move it onto `path` when the block succeeds.

    For writers that take a file name (Blender's exporters, ``bpy.ops.wm.save_as_mainfile``). The
    temporary name is hidden (leading dot), unique, and ends with `suffix` for writers that look at the
    extension. Raises FileNotFoundError when the block wrote nothing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"nothing was written for {target}")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing; flush, fsync and move it onto `path` when the block succeeds.

    `mode` is "wb" or "w" (text, then `encoding` defaults to UTF-8). The file is created exclusively
    with the default permissions (umask), unlike tempfile's 0600.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes new files only: mode 'wb' or 'w', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as temporary:
        with open(temporary, mode.replace("w", "x"), encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
