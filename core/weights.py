"""Where the three official TRACE checkpoints live, and how they get there.

The files are not redistributed with this project. They are looked up, in order, in `--weights DIR`,
`$TRACE_WEIGHTS_DIR`, the official installer's folder `~/.romp/TRACE_models` (used in place, never
copied) and the per-user folder; missing files are fetched once from the official ROMP release into
the per-user folder (or into the folder given with --weights / $TRACE_WEIGHTS_DIR). Downloads go to a temporary
file beside the target and are renamed only when complete, so an interrupted download never
leaves a half file that looks valid. Without network (or with --offline) the error names the three
files and the folder to put them in.

Standard library only (validation against the manifests is done by core.checkpoints).
"""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from trace_format.atomic import atomic_open

from .errors import WeightsError, WeightsNotFoundError

WEIGHT_FILENAMES = ("trace_image_backbone.pkl", "trace_motion_backbone.pth", "trace_head.pkl")
OFFICIAL_RELEASE_BASE_URL = "https://github.com/Arthur151/ROMP/releases/download/V3.0/"
WEIGHTS_DIR_ENV = "TRACE_WEIGHTS_DIR"
WEIGHTS_URL_ENV = "TRACE_WEIGHTS_URL"      # mirror of the release folder (must end with the file names)
OFFLINE_ENV = "TRACE_OFFLINE"              # "1" behaves like --offline
DOWNLOAD_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20

# on_progress(filename, bytes_done, bytes_total_or_0)
DownloadProgress = Callable[[str, int, int], None]
Opener = Callable[..., object]


def default_weights_dir(environ: Mapping[str, str] | None = None, platform: str | None = None,
                        home: Path | None = None) -> Path:
    """Per-user weights folder: $TRACE_WEIGHTS_DIR, else the platform's user data folder.

    Linux: $XDG_DATA_HOME/trace-blender/weights (default ~/.local/share/...); macOS:
    ~/Library/Application Support/trace-blender/weights; Windows: %LOCALAPPDATA%\\trace-blender\\weights.
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    if environ.get(WEIGHTS_DIR_ENV):
        return Path(environ[WEIGHTS_DIR_ENV]).expanduser()
    if platform.startswith("win"):
        base = Path(environ["LOCALAPPDATA"]) if environ.get("LOCALAPPDATA") else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ["XDG_DATA_HOME"]) if environ.get("XDG_DATA_HOME") else home / ".local" / "share"
    return base / "trace-blender" / "weights"


def official_install_dir(home: Path | None = None) -> Path:
    """Where the official TRACE code (simple_romp trace2) downloads its three checkpoints."""
    return (Path.home() if home is None else home) / ".romp" / "TRACE_models"


@dataclass(frozen=True)
class WeightsLocation:
    """The folder the run reads (and, if allowed, downloads) the checkpoints from, and why that one."""

    folder: Path
    source: str        # "--weights", "$TRACE_WEIGHTS_DIR", "official install", "per-user folder"

    def describe(self) -> str:
        return f"{self.folder} ({self.source})"


class PartialOfficialInstallError(WeightsError):
    """~/.romp/TRACE_models holds some but not all of the three files (an interrupted official install)."""

    code = "weights_partial_official_install"


def resolve_weights_location(explicit: Path | str | None = None, environ: Mapping[str, str] | None = None,
                             platform: str | None = None, home: Path | None = None) -> WeightsLocation:
    """Search order: `explicit` (--weights), $TRACE_WEIGHTS_DIR, the official install, the per-user folder.

    The official folder is used in place when it holds all three files. When it holds only some and
    the per-user folder is not complete either, the run stops with a message naming the files (the
    official installer was probably interrupted); with a complete per-user folder that one is used.
    """
    environ = os.environ if environ is None else environ
    if explicit is not None:
        return WeightsLocation(Path(explicit).expanduser(), "--weights")
    if environ.get(WEIGHTS_DIR_ENV):
        return WeightsLocation(Path(environ[WEIGHTS_DIR_ENV]).expanduser(), f"${WEIGHTS_DIR_ENV}")
    official = official_install_dir(home)
    per_user = default_weights_dir(environ, platform, home)
    official_missing = missing_weight_files(official) if official.is_dir() else list(WEIGHT_FILENAMES)
    if not official_missing:
        return WeightsLocation(official, "official install")
    if len(official_missing) < len(WEIGHT_FILENAMES) and missing_weight_files(per_user):
        present = [name for name in WEIGHT_FILENAMES if name not in official_missing]
        raise PartialOfficialInstallError(
            f"the official TRACE folder {official} holds only {', '.join(present)}; "
            f"{', '.join(official_missing)} missing there (an interrupted official install?). Put the missing "
            f"files there (from {release_url(official_missing[0])} ...), or remove that folder to let "
            f"trace-blender download all three into {per_user}, or pass --weights DIR.")
    return WeightsLocation(per_user, "per-user folder")


def weight_paths(folder: Path) -> dict[str, Path]:
    return {name: Path(folder) / name for name in WEIGHT_FILENAMES}


def missing_weight_files(folder: Path) -> list[str]:
    """Names of the three checkpoint files that are not regular, non-empty files in `folder`."""
    return [name for name, path in weight_paths(folder).items()
            if not path.is_file() or path.stat().st_size == 0]


def release_url(filename: str, base_url: str | None = None) -> str:
    base = base_url or os.environ.get(WEIGHTS_URL_ENV) or OFFICIAL_RELEASE_BASE_URL
    return base.rstrip("/") + "/" + filename


def offline_requested(offline_flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return offline_flag or environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def weights_not_found_message(folder: Path, missing: list[str], reason: str | None = None,
                              base_url: str | None = None, offline: bool = False) -> str:
    """The actionable message: which files, where to put them, where to get them."""
    lines = [f"TRACE weights not found: {len(missing)} of the 3 checkpoint files missing in {folder}"]
    if reason:
        lines[0] += f" ({reason})"
    lines.append("Put these files in that folder (or pass --weights DIR, or set $TRACE_WEIGHTS_DIR):")
    width = max(len(name) for name in missing) if missing else 0
    for name in missing:
        lines.append(f"  {name:<{width}}  <- {release_url(name, base_url)}")
    if offline:
        lines.append("Or run again without --offline (and without TRACE_OFFLINE=1) to download them automatically.")
    else:
        lines.append("Or connect to the internet and run again: missing files are downloaded automatically (~220 MB).")
    return "\n".join(lines)


def download_file(url: str, destination: Path, on_progress: DownloadProgress | None = None,
                  opener: Opener | None = None, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Stream `url` into `destination` via a temp file in the same folder, then rename atomically.

    Raises OSError/urllib errors on failure; the temp file is always removed unless renamed.
    """
    opener = opener or urllib.request.urlopen
    destination = Path(destination)
    request = urllib.request.Request(url, headers={"User-Agent": "trace-blender"})
    with atomic_open(destination, "wb") as out, opener(request, timeout=timeout_s) as response:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        if on_progress:
            on_progress(destination.name, 0, total)
        while True:
            chunk = response.read(CHUNK_BYTES)
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(destination.name, done, total)
        if total and done != total:
            raise OSError(f"download of {url} stopped at {done} of {total} bytes")
        if done == 0:
            raise OSError(f"download of {url} returned an empty file")
    return destination


def ensure_weight_files(folder: Path, offline: bool = False, base_url: str | None = None,
                        on_progress: DownloadProgress | None = None, opener: Opener | None = None,
                        on_message: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Make sure the three files exist in `folder`, downloading the missing ones when allowed.

    Returns {filename: path}. Raises WeightsNotFoundError (exit code 4) when files are missing
    and cannot be downloaded. Validation of the contents is the caller's next step.
    """
    folder = Path(folder).expanduser()
    missing = missing_weight_files(folder)
    if not missing:
        return weight_paths(folder)
    if offline_requested(offline):
        raise WeightsNotFoundError(weights_not_found_message(folder, missing, "offline mode: not downloading",
                                                             base_url, offline=True))
    for name in list(missing):
        url = release_url(name, base_url)
        if on_message:
            on_message(f"downloading {name} from {url} to {folder}")
        try:
            download_file(url, folder / name, on_progress=on_progress, opener=opener)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            still_missing = missing_weight_files(folder)
            raise WeightsNotFoundError(weights_not_found_message(
                folder, still_missing, f"download of {name} failed: {reason}", base_url)) from exc
    return weight_paths(folder)
