"""Atomic file writes: an output never exists half-written under its final name.

Every writer of the project (result files, downloads, exports, reports) goes through here: the data
goes to a unique temporary file in the target's folder, which is moved onto the target with
``os.replace`` only when writing succeeded; on any error (or Ctrl-C) the temporary file is removed and
a previous file of that name is left untouched. Cleanup never hides the error that caused it.

Also here, because they are about the same files: names that fit every file system
(`fit_name`), what a path is when it is not a regular file (`special_file_kind`), a probe that
proves a folder takes a file before hours of work go into one (`probe_folder`), one writer per
folder (`FolderLock`) and removal of temporary files left by killed runs (`remove_stale_temporaries`).
Standard library only (shared with the Blender extension).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_path", "atomic_open", "temporary_path_for", "fit_name", "NAME_MAX_BYTES",
           "special_file_kind", "folder_problem", "probe_folder", "FolderLock", "FolderBusyError",
           "remove_stale_temporaries"]

# The longest file name (UTF-8 bytes) every common file system takes: ext4, XFS, btrfs, APFS (255
# bytes) and NTFS / exFAT / HFS+ (255 UTF-16 units, never more than the UTF-8 byte count).
NAME_MAX_BYTES = 255
_TOKEN_HEX = 12
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{%d})(?P<suffix>\.[^.]*)$" % _TOKEN_HEX)


def fit_name(name: str, limit: int = NAME_MAX_BYTES) -> str:
    """`name` itself when it fits in `limit` UTF-8 bytes, else its start + a hash of the whole name
    + its extensions (`very long … name.trace.npz` -> `very long…~1a2b3c4d.trace.npz`): unique,
    recognisable and within every file system's name limit."""
    if len(name.encode("utf-8")) <= limit:
        return name
    parts = name.split(".")
    kept = 0                          # keep up to two short extensions ('.trace.npz')
    while kept < 2 and len(parts) - kept > 1 and 0 < len(parts[-1 - kept].encode("utf-8")) <= 16:
        kept += 1
    stem, extensions = ".".join(parts[:len(parts) - kept]), ".".join(parts[len(parts) - kept:])
    tail = f"~{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}" + (f".{extensions}" if extensions else "")
    budget = limit - len(tail.encode("utf-8"))
    head = stem.encode("utf-8")[:max(budget, 1)].decode("utf-8", errors="ignore")
    return head + tail


def temporary_path_for(target: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A fresh hidden temporary name beside `target`: `.<name>.<12 hex><suffix>`, within NAME_MAX_BYTES."""
    target = Path(target)
    fixed = len(f"..{'0' * _TOKEN_HEX}{suffix}".encode("utf-8"))
    name = fit_name(target.name, NAME_MAX_BYTES - fixed)
    return target.parent / f".{name}.{secrets.token_hex(_TOKEN_HEX // 2)}{suffix}"


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What `path` is when it exists but is not a regular file or folder ('a named pipe (FIFO)',
    'a device', 'a socket'); None for regular files, folders and missing paths."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def folder_problem(error: OSError, folder: str | os.PathLike | None = None) -> str:
    """An OSError met while creating or writing into `folder` (default: the folder of the file the
    error names), in a user's terms: the folder and the reason, never a temporary file's name."""
    import errno

    if folder is None:
        folder = Path(str(error.filename)).parent if error.filename else "the output folder"

    reasons = {
        errno.EACCES: "permission denied", errno.EPERM: "permission denied",
        errno.EROFS: "it is on a read-only file system", errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded", errno.EFBIG: "the file size limit (ulimit -f) is reached",
        errno.ENAMETOOLONG: "a file name is too long for this file system",
        errno.ENOTDIR: "part of the path is a file, not a folder", errno.EEXIST: "a file of that name is in the way",
        errno.EISDIR: "a folder is in the way",
    }
    reason = reasons.get(error.errno) or (error.strerror or type(error).__name__).lower()
    return f"cannot write into the folder {folder}: {reason}"


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; move it onto `path` when the block succeeds.

    For writers that take a file name (Blender's exporters, ``bpy.ops.wm.save_as_mainfile``). The
    temporary name is hidden (leading dot), unique, within every file system's name limit, and ends
    with `suffix` for writers that look at the extension. Raises FileNotFoundError when the block
    wrote nothing, IsADirectoryError when `path` is a folder. Removing the temporary file after a
    failure never replaces the failure's own error.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give a file name inside it")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path_for(target, suffix)
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"nothing was written for {target}")
        os.replace(temporary, target)
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:       # e.g. a read-only or vanished folder: the original error matters, not this
            pass


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


def probe_folder(target: str | os.PathLike, size_bytes: int = 0) -> None:
    """Prove that `target`'s folder can be created and take a file like `target`'s temporary file.

    Creates the folder, writes `size_bytes` (at least one byte, at most 64 MiB) to a temporary name
    of the longest length the real write will use, then removes it. Raises OSError (the caller turns
    it into a message with `folder_problem`) or IsADirectoryError when `target` is a folder.
    """
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    probe = temporary_path_for(target)
    remaining = min(max(int(size_bytes), 1), 64 << 20)
    chunk = b"\0" * min(remaining, 1 << 20)
    try:
        with open(probe, "xb") as handle:
            while remaining > 0:
                remaining -= handle.write(chunk[:remaining])
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def remove_stale_temporaries(folder: str | os.PathLike, target_suffix: str) -> list[Path]:
    """Delete this project's temporary files in `folder` whose target name ends with `target_suffix`
    (e.g. '.trace.npz'): left behind when a run was killed (SIGKILL, power loss) mid-write.

    Call it only while holding the folder's `FolderLock`, so no live writer owns them. Returns the
    removed paths; files that cannot be removed are left alone.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        if not match.group("name").endswith(target_suffix):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


class FolderBusyError(OSError):
    """Another process holds the folder's lock (a second run writing into the same folder)."""


class FolderLock:
    """An exclusive, advisory lock on a folder (file `.trace.lock` in it while held), released when
    the process ends however it ends (the operating system drops it with the process: no stale
    locks). The lock file is removed on release, so a finished run leaves nothing behind.

    `acquire()` never waits: a second holder gets FolderBusyError at once.
    """

    NAME = ".trace.lock"

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._handle: IO | None = None

    def acquire(self) -> "FolderLock":
        for _attempt in range(10):
            handle = open(self.path, "a+b")
            try:
                _lock_file(handle)
            except OSError as exc:
                handle.close()
                holder = _read_holder(self.path)
                raise FolderBusyError(f"another run{holder} is writing into {self.folder}") from exc
            if _same_file(handle, self.path):      # not removed by a holder releasing meanwhile
                break
            _unlock_file(handle)
            handle.close()
        else:
            raise FolderBusyError(f"the lock of {self.folder} keeps changing hands")
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            self.path.unlink(missing_ok=True)     # while still locked: a newcomer locks a fresh file
        except OSError:
            pass
        finally:
            _unlock_file(handle)
            handle.close()

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(handle: IO, path: Path) -> bool:
    try:
        opened, named = os.fstat(handle.fileno()), os.stat(path)
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def _read_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


if os.name == "nt":
    import msvcrt

    def _lock_file(handle: IO) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(handle: IO) -> None:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
else:
    import fcntl

    def _lock_file(handle: IO) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: IO) -> None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except OSError:
            pass
