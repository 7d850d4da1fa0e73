"""Load and validate the three official TRACE checkpoint files against their manifests.

Files are read exactly as the official release stores them, only with
``torch.load(path, map_location="cpu", weights_only=True)`` (a file that would need to run code to
load is refused, never executed):

=================  ===========================  ==========================
slot               file                         key prefix in the file
=================  ===========================  ==========================
image_backbone     trace_image_backbone.pkl     ``module.backbone.``
motion_backbone    trace_motion_backbone.pth    ``module.``
head               trace_head.pkl               none
=================  ===========================  ==========================

As tolerant as the official loader (``load_model`` / ``copy_state_dict``, non-strict) where that is
safe, never silently wrong:

* a dict holding the weights under ``model_state_dict`` is unwrapped;
* keys the network does not read (the rest of the BEV model, the head's ``_result_parser.*`` SMPL
  buffers, anything else) are ignored and counted (``LoadedCheckpoint.ignored_keys``);
* a missing *deterministic* buffer is rebuilt: ``num_batches_tracked`` (a BatchNorm step counter,
  never read at inference) and the head's ``coordmap_3d`` grid (``core.nn.head.make_coordmap_3d``)
  (``LoadedCheckpoint.rebuilt_keys``);
* floating-point tensors stored in another float dtype (float16 / float64) are converted to float32,
  as ``copy_`` does;
* a missing or mis-shaped learned tensor stays an error naming it (the official code would leave the
  layer at its random initialisation and run on).

Every problem with a file is reported as ONE :class:`CheckpointError` (a ``WeightsError``: exit code 4)
that names the file, says what is wrong (missing / unexpected / mis-shaped keys, truncated, not a
checkpoint, unsafe, wrong slot) and what to do.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickletools
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from .errors import WeightsError, WeightsNotFoundError

__all__ = [
    "CheckpointError", "CheckpointNotFoundError", "CheckpointUnreadableError", "CheckpointTruncatedError",
    "CheckpointUnsafeError", "CheckpointKeysError", "CheckpointWrongSlotError", "CheckpointNonFiniteError",
    "SLOTS", "CheckpointSlot", "LoadedCheckpoint", "ManifestEntry",
    "load_manifest", "sha256_file", "read_state_dict", "load_checkpoint", "validate_weights_dir",
]

_MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
_LIST_LIMIT = 12          # keys listed per category in an error message
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(WeightsError):
    """A checkpoint file cannot be used; the message names the file and the fix."""

    code = "weights_invalid"

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class CheckpointNotFoundError(CheckpointError, WeightsNotFoundError):
    code = "weights_missing"


class CheckpointUnreadableError(CheckpointError):
    """Not a PyTorch checkpoint at all (text, random bytes, a zip of something else)."""

    code = "weights_unreadable"


class CheckpointTruncatedError(CheckpointUnreadableError):
    """A PyTorch checkpoint whose data ends early (interrupted download or copy)."""

    code = "weights_truncated"


class CheckpointUnsafeError(CheckpointError):
    """The file holds pickled Python objects that would run code when loaded; it was not loaded."""

    code = "weights_unsafe"


class CheckpointKeysError(CheckpointError):
    """Tensors missing, unexpected or with the wrong shape / dtype."""

    code = "weights_mismatch"

    def __init__(self, message: str, path: Path | str | None = None, missing: list[str] | None = None,
                 unexpected: list[str] | None = None, mismatched: list[str] | None = None) -> None:
        super().__init__(message, path)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.mismatched = mismatched or []


class CheckpointWrongSlotError(CheckpointKeysError):
    """The file is one of the other two TRACE checkpoints."""

    code = "weights_wrong_file"

    def __init__(self, message: str, path: Path | str | None = None, looks_like: str = "") -> None:
        super().__init__(message, path)
        self.looks_like = looks_like


class CheckpointNonFiniteError(CheckpointError):
    """Right names and shapes, but NaN or infinite values (a corrupted copy): refused at load."""

    code = "weights_non_finite"


@dataclass(frozen=True)
class CheckpointSlot:
    name: str
    filename: str
    manifest: str
    prefix: str
    description: str


SLOTS: dict[str, CheckpointSlot] = {
    "image_backbone": CheckpointSlot("image_backbone", "trace_image_backbone.pkl", "manifest_image_backbone.json",
                                     "module.backbone.", "HRNet-W32 image backbone"),
    "motion_backbone": CheckpointSlot("motion_backbone", "trace_motion_backbone.pth", "manifest_motion_backbone.json",
                                      "module.", "RAFT motion backbone"),
    "head": CheckpointSlot("head", "trace_head.pkl", "manifest_head.json", "", "TRACE temporal head"),
}


@dataclass(frozen=True)
class ManifestEntry:
    key: str                     # key as stored in the file (with prefix)
    shape: tuple[int, ...]
    dtype: torch.dtype


@lru_cache(maxsize=None)
def load_manifest(slot: str) -> tuple[ManifestEntry, ...]:
    """Entries (file keys, shapes, dtypes) the network reads from the slot's file, in state_dict order."""
    spec = SLOTS[slot]
    data = json.loads((_MANIFEST_DIR / spec.manifest).read_text(encoding="utf-8"))
    dtypes = {"float32": torch.float32, "int64": torch.int64}
    return tuple(ManifestEntry(e["key"], tuple(e["shape"]), dtypes[e["dtype"]]) for e in data["entries"])


def sha256_file(path: Path | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoadedCheckpoint:
    """A validated checkpoint: ``state_dict`` keys are the module's own (prefix removed)."""

    slot: str
    path: Path
    state_dict: dict[str, torch.Tensor]
    ignored_keys: list[str] = field(default_factory=list)    # keys in the file the network does not read
    rebuilt_keys: list[str] = field(default_factory=list)    # deterministic buffers absent from the file, rebuilt
    converted_keys: list[str] = field(default_factory=list)  # float tensors converted to float32
    info: list[str] = field(default_factory=list)


def _redownload_hint(slot: CheckpointSlot) -> str:
    return (f"Replace it with the official {slot.filename} (delete it and run again online to download it, "
            f"or copy it from the official ROMP release).")


_SAFE_GLOBAL_MODULES = ("torch", "collections", "numpy", "_codecs")


def _pickle_streams(path: Path) -> list[bytes]:
    """The pickle bytes of a checkpoint: data.pkl of a zip checkpoint, else the whole (legacy) file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(name) for name in archive.namelist() if name.endswith(".pkl")]
    return [path.read_bytes()]


def _foreign_globals(path: Path) -> list[str]:
    """Python callables a pickle would import, found by a static scan (nothing is executed).

    Only globals outside torch / collections / numpy count. Scanning stops at the first byte that is not
    a valid pickle opcode (legacy files append raw tensor bytes after their pickles).
    """
    found: list[str] = []
    try:
        streams = _pickle_streams(path)
    except (OSError, zipfile.BadZipFile):
        return found
    for data in streams:
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            strings: list[str] = []          # string pushes, in order (operands of STACK_GLOBAL)
            memo: dict[int, str] = {}        # memo slot -> string, to follow BINGET of a module name
            memo_next = 0
            pushed_string = False
            try:
                for opcode, arg, _ in pickletools.genops(stream):
                    name = opcode.name
                    is_string = isinstance(arg, str) and ("UNICODE" in name or "STRING" in name)
                    if name in ("GLOBAL", "INST") and isinstance(arg, str):
                        found.append(arg.replace(" ", "."))
                    elif name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif is_string:
                        strings.append(str(arg))
                    elif name in ("BINPUT", "LONG_BINPUT", "PUT") and pushed_string:
                        memo[int(arg)] = strings[-1]
                    elif name == "MEMOIZE":
                        if pushed_string:
                            memo[memo_next] = strings[-1]
                        memo_next += 1
                    elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                        strings.append(memo[int(arg)])
                        is_string = True
                    pushed_string = is_string
            except Exception:   # not (or no longer) a pickle stream
                break
    return [g for g in found if not g.split(".")[0] in _SAFE_GLOBAL_MODULES]


def _describe_load_failure(path: Path, slot: CheckpointSlot, error: BaseException) -> CheckpointError:
    text = str(error)
    first_line = text.splitlines()[0] if text else type(error).__name__
    hint = _redownload_hint(slot)
    foreign = _foreign_globals(path)
    if foreign:
        return CheckpointUnsafeError(
            f"{path}: refused to load -- the file contains pickled Python objects that would run code when loaded "
            f"({', '.join(sorted(set(foreign))[:5])}). Nothing from it was executed. It is not an official "
            f"{slot.filename}. {hint}", path)
    lowered = text.lower()
    truncated_markers = ("central directory", "unexpected eof", "ran out of input", "truncated", "corrupted")
    if isinstance(error, EOFError) or any(marker in lowered for marker in truncated_markers):
        return CheckpointTruncatedError(
            f"{path}: the checkpoint is truncated or corrupted ({first_line}). An interrupted download or copy "
            f"usually causes this. {hint}", path)
    if "weights only load failed" in lowered:
        return CheckpointUnreadableError(
            f"{path}: not a PyTorch state_dict file (the safe loader cannot read it: "
            f"{next((ln.strip() for ln in text.splitlines() if 'Unsupported' in ln), 'unsupported content')}). {hint}",
            path)
    return CheckpointUnreadableError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: "
                                     f"{first_line}). {hint}", path)


def read_state_dict(path: Path | str, slot: str) -> dict[str, torch.Tensor]:
    """torch.load the file safely and return its flat {key: tensor} mapping (no validation of keys).

    Accepts a plain state_dict or a dict holding one under ``model_state_dict``.
    """
    spec = SLOTS[slot]
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"{spec.description} checkpoint not found: {path}. Put the official {spec.filename} there "
            f"(or point --weights to the folder that holds it).", path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise CheckpointTruncatedError(f"{path}: the file is empty. {_redownload_hint(spec)}", path)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as error:
            raise CheckpointTruncatedError(
                f"{path}: the checkpoint archive is truncated or corrupted ({error}). {_redownload_hint(spec)}",
                path) from None
        if not any(name.endswith("data.pkl") for name in names):
            raise CheckpointUnreadableError(
                f"{path}: this is a zip archive but not a PyTorch checkpoint (no data.pkl inside; it holds "
                f"{', '.join(names[:5]) or 'nothing'}). {_redownload_hint(spec)}", path)
    elif head[0] != 0x80:   # neither torch's zip format nor a (legacy) pickle stream
        raise CheckpointUnreadableError(
            f"{path}: not a PyTorch checkpoint (it starts with {head[:8]!r}; expected a torch.save file). "
            f"{_redownload_hint(spec)}", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # torch warns about pickle protocols it handles
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # torch raises several unrelated types for broken files
        raise _describe_load_failure(path, spec, error) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("model_state_dict"), dict):
        loaded = loaded["model_state_dict"]
    if not isinstance(loaded, dict):
        raise CheckpointUnreadableError(
            f"{path}: holds a {type(loaded).__name__}, not a dict of tensors (state_dict). {_redownload_hint(spec)}",
            path)
    non_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise CheckpointUnreadableError(
            f"{path}: {len(non_tensors)} entries are not tensors (e.g. {non_tensors[:3]}); not a state_dict. "
            f"{_redownload_hint(spec)}", path)
    return {str(k): v for k, v in loaded.items()}


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f" ... (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
    return f"  {title} ({len(items)}): {shown}{more}"


def _guess_slot(keys: set[str]) -> tuple[str | None, float]:
    """The slot whose manifest keys the file covers best, and that coverage (0..1)."""
    best, best_cover = None, 0.0
    for name in SLOTS:
        manifest_keys = {e.key for e in load_manifest(name)}
        cover = len(manifest_keys & keys) / len(manifest_keys)
        if cover > best_cover:
            best, best_cover = name, cover
    return best, best_cover


def _rebuild_deterministic(key: str, entry: ManifestEntry, prefix: str) -> torch.Tensor | None:
    """The value of a buffer that does not depend on training, or None for a learned tensor."""
    own_key = key[len(prefix):]
    if own_key.endswith("num_batches_tracked") and entry.shape == ():
        return torch.zeros((), dtype=torch.int64)      # BatchNorm step counter, unused at inference
    if own_key == "coordmap_3d":
        from .nn.head import make_coordmap_3d
        grid = make_coordmap_3d()
        return grid if tuple(grid.shape) == entry.shape else None
    return None


def _compatible_dtype(stored: torch.dtype, expected: torch.dtype) -> bool:
    """Whether copying `stored` into an `expected` tensor is lossless enough to accept (as copy_ does)."""
    if stored == expected:
        return True
    if expected.is_floating_point:
        return stored.is_floating_point
    return not stored.is_floating_point and not stored.is_complex and stored != torch.bool


def check_state_dict(state: dict[str, torch.Tensor], slot: str, path: Path | str = "<memory>") -> LoadedCheckpoint:
    """Validate keys, shapes and dtypes of a file's state_dict against the slot's manifest.

    Missing deterministic buffers are rebuilt, extra keys ignored and counted, other float dtypes
    converted; missing or mis-shaped learned tensors raise one CheckpointKeysError listing them all.
    """
    spec = SLOTS[slot]
    path = Path(path)
    entries = load_manifest(slot)
    expected = {e.key: e for e in entries}

    rebuilt: dict[str, torch.Tensor] = {}
    missing = []
    for e in entries:
        if e.key in state:
            continue
        value = _rebuild_deterministic(e.key, e, spec.prefix)
        if value is None:
            missing.append(e.key)
        else:
            rebuilt[e.key] = value
    ignored = sorted(set(state) - set(expected))
    mismatched, converted = [], []
    for e in entries:
        tensor = state.get(e.key)
        if tensor is None:
            continue
        if tuple(tensor.shape) != e.shape or not _compatible_dtype(tensor.dtype, e.dtype):
            mismatched.append(f"{e.key} {tuple(tensor.shape)} {str(tensor.dtype).replace('torch.', '')} "
                              f"(expected {e.shape} {str(e.dtype).replace('torch.', '')})")
        elif tensor.dtype != e.dtype:
            converted.append(e.key)

    if missing or mismatched:
        guess, cover = _guess_slot(set(state))
        if guess is not None and guess != slot and cover > 0.5:
            other = SLOTS[guess]
            raise CheckpointWrongSlotError(
                f"{path}: this looks like {other.filename} (the {other.description}: {cover:.0%} of its tensors "
                f"are in the file), not {spec.filename} (the {spec.description}). The files were probably "
                f"swapped or renamed; put each file under its own name.", path, looks_like=guess)
        lines = [f"{path}: does not match the official {spec.filename} ({spec.description}):"]
        if missing:
            lines.append(_listing("missing tensors", missing))
        if mismatched:
            lines.append(_listing("wrong shape or dtype", mismatched))
        if ignored:
            lines.append(_listing("tensors TRACE does not use (these alone would be ignored)", ignored))
        lines.append(_redownload_hint(spec))
        raise CheckpointKeysError("\n".join(lines), path, missing=missing, unexpected=ignored, mismatched=mismatched)

    non_finite = [e.key for e in entries if e.key in state     # rebuilt buffers are computed, so finite
                  and state[e.key].is_floating_point() and not bool(torch.isfinite(state[e.key]).all())]
    if non_finite:
        raise CheckpointNonFiniteError(
            f"{path}: {len(non_finite)} tensor(s) hold NaN or infinite values, so the network could only "
            f"produce garbage:\n{_listing('non-finite tensors', non_finite)}\nThe file is corrupted (or was saved "
            f"from a diverged training run). {_redownload_hint(spec)}", path)
    prefix_len = len(spec.prefix)
    own = {}
    for e in entries:
        value = state[e.key] if e.key in state else rebuilt[e.key]
        own[e.key[prefix_len:]] = value.to(e.dtype) if value.dtype != e.dtype else value
    info = []
    if ignored:
        info.append(f"{path.name}: ignored {len(ignored)} tensors that TRACE does not use "
                    f"(e.g. {', '.join(ignored[:3])})")
    if rebuilt:
        info.append(f"{path.name}: rebuilt {len(rebuilt)} deterministic buffers absent from the file "
                    f"(e.g. {', '.join(list(rebuilt)[:3])})")
    if converted:
        info.append(f"{path.name}: converted {len(converted)} tensors to float32 (e.g. {', '.join(converted[:3])})")
    return LoadedCheckpoint(slot=slot, path=path, state_dict=own, ignored_keys=ignored,
                            rebuilt_keys=list(rebuilt), converted_keys=converted, info=info)


def load_checkpoint(path: Path | str, slot: str) -> LoadedCheckpoint:
    """Read one file safely and validate it; raises a single CheckpointError describing every problem."""
    if slot not in SLOTS:
        raise ValueError(f"unknown checkpoint slot {slot!r}; expected one of {sorted(SLOTS)}")
    state = read_state_dict(path, slot)
    return check_state_dict(state, slot, path)


def validate_weights_dir(folder: Path | str, with_sha256: bool = False) -> dict[str, LoadedCheckpoint]:
    """Load and validate all three files of a weights folder; returns {slot: LoadedCheckpoint}.

    Files missing from the folder are reported together in one CheckpointNotFoundError.
    """
    folder = Path(folder)
    missing = [spec.filename for spec in SLOTS.values() if not (folder / spec.filename).is_file()]
    if missing:
        raise CheckpointNotFoundError(
            f"TRACE weights folder {folder} lacks {', '.join(missing)}. Put the official checkpoint files there "
            f"(or pass --weights DIR / set $TRACE_WEIGHTS_DIR).", folder)
    loaded = {}
    for name, spec in SLOTS.items():
        checkpoint = load_checkpoint(folder / spec.filename, name)
        if with_sha256:
            checkpoint.info.append(f"{spec.filename} sha256 {sha256_file(checkpoint.path)}")
        loaded[name] = checkpoint
    return loaded
