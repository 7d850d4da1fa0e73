"""Unpickling that cannot run code: numpy data, chumpy and scipy.sparse objects as plain numpy.

Files we read from users (SMPL model `.pkl` files, the official trace2 result `.npz`) are pickles.
`pickle.load` on them would run whatever callables the file names, and the SMPL files name
`chumpy` and `scipy.sparse` classes, which would make both packages dependencies. The
`RestrictedUnpickler` here resolves only an allow-list of globals:

* numpy array / dtype / scalar reconstruction and a few harmless builtins (set, frozenset, ...);
* chumpy classes (any class of the `chumpy` package): a stand-in records the pickled state and is
  replaced by the numpy value after loading (a plain `Ch` holds it in `x`; a few reordering and
  arithmetic nodes are evaluated from their operands);
* scipy.sparse csc/csr/coo matrices: a stand-in records `data`/`indices`/`indptr`/shape and is
  replaced by a dense numpy array.

Everything else raises `UnsafePickleError` naming the refused global, before anything is called.

Standard library + numpy only (shared with the Blender extension).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

__all__ = [
    "UnsafePickleError",
    "UnsupportedPickleContentError",
    "RestrictedUnpickler",
    "restricted_load",
    "restricted_loads",
    "load_pickle_file",
    "read_npz_member",
    "ArchiveError",
    "ArchiveLimitError",
    "ArchiveLimits",
    "RESULT_LIMITS",
    "SMPL_LIMITS",
    "NpzArchive",
    "check_npy_file",
]

# Arrays computed while loading (dense matrices from pickled sparse ones, chumpy products) are
# refused above this many elements (400 MB in float64): a corrupt or hostile shape in a small file
# must not exhaust memory. SMPL's J_regressor is 24 x 6890, SMPL-X's 55 x 10475.
MAX_DENSE_ELEMENTS = 50_000_000


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global (function or class) that is not on the allow-list.

    Such files could run arbitrary code when loaded with `pickle`; they are never executed here.
    """

    def __init__(self, module: str, name: str, detail: str = "") -> None:
        self.module = module
        self.name = name
        message = (
            f"refused to load '{module}.{name}' from a pickle: only numpy arrays, chumpy and "
            f"scipy.sparse data are allowed (loading it could run code)"
        )
        if detail:
            message += f"; {detail}"
        super().__init__(message)


class UnsupportedPickleContentError(ValueError):
    """An allowed object (a chumpy node, a sparse matrix) whose content cannot be turned into numpy."""


# --------------------------------------------------------------------------------------------
# Stand-ins for foreign classes: created by NEWOBJ / copyreg._reconstructor, filled by BUILD.
# --------------------------------------------------------------------------------------------


class _ForeignStandIn:
    """Base of the placeholder classes: remembers the pickled state, runs no foreign code."""

    foreign_module: str = ""
    foreign_name: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ForeignStandIn":
        if cls in (_ForeignStandIn, _ChumpyStandIn, _SparseStandIn):
            raise UnsafePickleError(cls.__module__, cls.__name__, "abstract stand-in")
        instance = object.__new__(cls)
        object.__setattr__(instance, "new_args", args)
        object.__setattr__(instance, "pickled_state", None)
        return instance

    def __setstate__(self, state: Any) -> None:
        # BUILD may hand (dict_state, slot_state); chumpy and scipy use a plain __dict__ state.
        if isinstance(state, tuple) and len(state) == 2:
            dict_state, slot_state = state
            merged: dict = {}
            for part in (dict_state, slot_state):
                if part is None:
                    continue
                if not isinstance(part, dict):
                    raise UnsupportedPickleContentError(
                        f"{self.qualified_name()}: unexpected pickled state of type {type(part).__name__}"
                    )
                merged.update(part)
            state = merged
        if not isinstance(state, dict):
            raise UnsupportedPickleContentError(
                f"{self.qualified_name()}: unexpected pickled state of type {type(state).__name__}"
            )
        object.__setattr__(self, "pickled_state", state)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("stand-ins for pickled foreign objects are read-only")

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.foreign_module}.{cls.foreign_name}"

    def state(self) -> dict:
        state = self.pickled_state
        if state is None:
            raise UnsupportedPickleContentError(f"{self.qualified_name()} object without pickled state")
        return state


class _ChumpyStandIn(_ForeignStandIn):
    """A chumpy `Ch` (or subclass) object; its value is computed by `_chumpy_value`."""


class _SparseStandIn(_ForeignStandIn):
    """A scipy.sparse matrix; densified by `_sparse_to_dense`."""

    sparse_format: str = ""


_CHUMPY_MODULES = frozenset({
    "chumpy", "chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg", "chumpy.logic",
    "chumpy.utils", "chumpy.extras",
})

_SPARSE_MODULES = frozenset({
    "scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
    "scipy.sparse.coo", "scipy.sparse._coo",
})
_SPARSE_NAMES = {
    "csc_matrix": "csc", "csc_array": "csc", "csr_matrix": "csr", "csr_array": "csr",
    "coo_matrix": "coo", "coo_array": "coo",
}


# --------------------------------------------------------------------------------------------
# Allowed callables
# --------------------------------------------------------------------------------------------

# The reconstruction functions of the running numpy (numpy 1.x names them numpy.core.*, numpy 2.x
# numpy._core.*); pickles from either spelling map to these.
_NUMPY_RECONSTRUCT = np.ndarray(0).__reduce__()[0]
_NUMPY_SCALAR = np.float64(0).__reduce__()[0]


def _numpy_frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """Protocol-5 style array rebuild (numpy.core.numeric._frombuffer), numpy-only and data-only."""
    if not isinstance(buffer, (bytes, bytearray, memoryview)):
        raise UnsupportedPickleContentError("numpy _frombuffer: buffer is not bytes")
    if order not in ("C", "F"):
        raise UnsupportedPickleContentError(f"numpy _frombuffer: bad order {order!r}")
    array = np.frombuffer(buffer, dtype=np.dtype(dtype))
    if np.dtype(dtype).hasobject:
        raise UnsupportedPickleContentError("numpy _frombuffer: object dtype refused")
    return array.reshape(shape, order=order)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as used by protocol 2/3 pickles for bytes; text codecs only."""
    if encoding.lower().replace("-", "").replace("_", "") not in {"latin1", "utf8", "ascii", "iso88591"}:
        raise UnsafePickleError("_codecs", "encode", f"codec {encoding!r} is not allowed")
    if not isinstance(text, str):
        raise UnsupportedPickleContentError("_codecs.encode expects text")
    return text.encode(encoding)


def _empty_bytes(*args: Any) -> bytes:
    """`bytes()` as protocol 0-2 pickles spell an empty byte string (the data of an empty array).

    Only the no-argument form: `bytes(n)` would allocate n bytes from a number in a tiny file.
    """
    if args:
        raise UnsafePickleError("builtins", "bytes", "only the empty bytes() is allowed")
    return b""


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor restricted to our stand-in classes over `object` (protocol 0/1)."""
    if not (isinstance(cls, type) and issubclass(cls, _ForeignStandIn)):
        raise UnsafePickleError("copyreg", "_reconstructor", f"target {cls!r} is not an allowed class")
    if base is not object or state is not None:
        raise UnsafePickleError("copyreg", "_reconstructor", "only plain object reconstruction is allowed")
    return cls.__new__(cls)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _NUMPY_RECONSTRUCT
    _ALLOWED_GLOBALS[(_module, "scalar")] = _NUMPY_SCALAR
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED_GLOBALS[(_module, "_frombuffer")] = _numpy_frombuffer
_ALLOWED_GLOBALS[("numpy", "ndarray")] = np.ndarray
for _module in ("numpy", "numpy.matrixlib.defmatrix"):  # np.matrix: an ndarray subclass, data only
    _ALLOWED_GLOBALS[(_module, "matrix")] = np.matrix
_ALLOWED_GLOBALS[("numpy", "dtype")] = np.dtype
for _module in ("builtins", "__builtin__"):
    for _name, _value in (("set", set), ("frozenset", frozenset), ("complex", complex), ("object", object)):
        _ALLOWED_GLOBALS[(_module, _name)] = _value
    _ALLOWED_GLOBALS[(_module, "bytes")] = _empty_bytes
_ALLOWED_GLOBALS[("_codecs", "encode")] = _codecs_encode
_ALLOWED_GLOBALS[("collections", "OrderedDict")] = __import__("collections").OrderedDict
_ALLOWED_GLOBALS[("copyreg", "_reconstructor")] = _copyreg_reconstructor
_ALLOWED_GLOBALS[("copy_reg", "_reconstructor")] = _copyreg_reconstructor


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` only returns allow-listed, data-only globals.

    Loaded chumpy / sparse objects come out as stand-ins; use `restricted_load(s)` to get the
    finished numpy values.
    """

    def __init__(self, file: BinaryIO, *, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self._stand_in_classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        if module in _CHUMPY_MODULES and name.isidentifier() and not name.startswith("_"):
            return self._stand_in_class(_ChumpyStandIn, module, name)
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return self._stand_in_class(_SparseStandIn, module, name, sparse_format=_SPARSE_NAMES[name])
        raise UnsafePickleError(module, name)

    def _stand_in_class(self, base: type, module: str, name: str, **attributes: Any) -> type:
        """One placeholder class per foreign (module, name) and load, so NEWOBJ sees a real class."""
        key = (module, name)
        if key not in self._stand_in_classes:
            self._stand_in_classes[key] = type(f"StandIn_{name}", (base,),
                                               {"foreign_module": module, "foreign_name": name, **attributes})
        return self._stand_in_classes[key]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("<persistent id>", str(pid)[:40], "persistent references are not allowed")


def restricted_load(file: BinaryIO, *, encoding: str = "latin1") -> Any:
    """Unpickle from a binary file object without running code; foreign objects become numpy.

    `encoding='latin1'` reads Python 2 pickles (the SMPL files) with their byte strings intact.
    Raises UnsafePickleError for disallowed globals and UnsupportedPickleContentError for damaged
    data and for chumpy / sparse objects whose content cannot be converted.
    """
    try:
        raw = RestrictedUnpickler(file, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, RecursionError) as exc:
        # malformed opcodes, truncated data, wrong arguments to an allowed constructor, ...
        raise UnsupportedPickleContentError(f"damaged or unsupported pickle data ({type(exc).__name__}: {exc})") from exc
    return _replace_stand_ins(raw)


def restricted_loads(data: bytes, *, encoding: str = "latin1") -> Any:
    """`restricted_load` on an in-memory pickle."""
    return restricted_load(io.BytesIO(data), encoding=encoding)


def load_pickle_file(path: str | os.PathLike, *, encoding: str = "latin1") -> Any:
    """Read a pickle file with the restricted unpickler."""
    with open(path, "rb") as handle:
        return restricted_load(handle, encoding=encoding)


# --------------------------------------------------------------------------------------------
# Stand-in replacement
# --------------------------------------------------------------------------------------------


def _replace_stand_ins(root: Any) -> Any:
    """Return `root` with every stand-in (also inside dicts/lists/tuples/object arrays) converted."""
    converted: dict[int, Any] = {}
    in_progress: set[int] = set()

    def convert(value: Any) -> Any:
        key = id(value)
        if key in converted:
            return converted[key]
        if isinstance(value, _ForeignStandIn):
            if key in in_progress:
                raise UnsupportedPickleContentError(f"{value.qualified_name()}: cyclic chumpy graph")
            in_progress.add(key)
            if isinstance(value, _SparseStandIn):
                result = _sparse_to_dense(value, convert)
            else:
                result = _chumpy_value(value, convert)
            in_progress.discard(key)
        elif isinstance(value, dict):
            converted[key] = value  # containers may be shared or self-referencing: fill in place
            for item_key in list(value.keys()):
                value[item_key] = convert(value[item_key])
            return value
        elif isinstance(value, list):
            converted[key] = value
            for index, item in enumerate(value):
                value[index] = convert(item)
            return value
        elif isinstance(value, tuple):
            result = tuple(convert(item) for item in value)
        elif isinstance(value, np.ndarray) and value.dtype == object:
            converted[key] = value
            flat = value.reshape(-1)
            for index in range(flat.size):
                flat[index] = convert(flat[index])
            return value
        else:
            return value
        converted[key] = result
        return result

    try:
        return convert(root)
    except RecursionError as exc:
        raise UnsupportedPickleContentError("pickled data is nested too deeply") from exc


def _as_float_array(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UnsupportedPickleContentError(f"{where}: value is not numeric ({type(value).__name__})") from exc
    return np.atleast_1d(array)


def _chumpy_value(stand_in: _ChumpyStandIn, convert: Callable[[Any], Any]) -> np.ndarray:
    """The numpy value of a chumpy node (what chumpy's `.r` would give: float64, at least 1-D)."""
    cls = type(stand_in)
    state = stand_in.state()
    name = cls.foreign_name
    where = cls.qualified_name()

    def operand(term: str) -> np.ndarray:
        if term not in state:
            raise UnsupportedPickleContentError(f"{where}: pickled state lacks the term '{term}'")
        return _as_float_array(convert(state[term]), f"{where}.{term}")

    if name == "Ch":
        return operand("x")
    if name == "Reshape":
        return operand("a").reshape(_plain(convert(state.get("newshape"))))
    if name == "transpose":
        axes = convert(state.get("axes"))
        return np.ascontiguousarray(np.transpose(operand("a"), axes=None if axes is None else _plain(axes)))
    if name == "Select":
        selected = operand("a").ravel()[np.asarray(convert(state.get("idxs")), dtype=np.int64)]
        if "preferred_shape" in state and state["preferred_shape"] is not None:
            selected = selected.reshape(_plain(convert(state["preferred_shape"])))
        return selected
    if name in ("add", "subtract", "multiply"):
        first, second = operand("a"), operand("b")
        try:
            shape = np.broadcast_shapes(first.shape, second.shape)
        except ValueError as exc:
            raise UnsupportedPickleContentError(f"{where}: operands {first.shape} and {second.shape} do not broadcast") from exc
        _check_computed_size(shape, where)
        return {"add": np.add, "subtract": np.subtract, "multiply": np.multiply}[name](first, second)
    if name == "dot":
        first, second = operand("a"), operand("b")
        if first.ndim and second.ndim and first.shape[-1] != second.shape[0 if second.ndim == 1 else -2]:
            raise UnsupportedPickleContentError(f"{where}: operands {first.shape} and {second.shape} do not multiply")
        _check_computed_size(first.shape[:-1] + second.shape[:-2] + second.shape[-1:] if second.ndim > 1
                             else first.shape[:-1], where)
        return np.atleast_1d(first.dot(second))
    raise UnsupportedPickleContentError(
        f"chumpy object '{where}' cannot be evaluated without chumpy (only Ch, Reshape, transpose, "
        f"Select, add, subtract, multiply and dot are supported). Convert the file once with chumpy "
        f"installed (replace every chumpy value by numpy.array(value)) or use the .npz form."
    )


def _check_computed_size(shape: tuple[int, ...], where: str) -> None:
    if math.prod(shape) > MAX_DENSE_ELEMENTS:
        raise UnsupportedPickleContentError(f"{where}: result of {math.prod(shape):,} elements is implausible "
                                            f"(limit {MAX_DENSE_ELEMENTS:,})")


def _plain(value: Any) -> Any:
    """Shapes/axes from pickles may be numpy arrays or lists: make them tuples of ints."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return tuple(int(v) for v in np.asarray(value).ravel())


def _sparse_to_dense(stand_in: _SparseStandIn, convert: Callable[[Any], Any]) -> np.ndarray:
    """Dense float64 array from the pickled state of a scipy.sparse csc/csr/coo matrix."""
    cls = type(stand_in)
    where = cls.qualified_name()
    state = {key: convert(value) for key, value in stand_in.state().items()}
    shape = state.get("_shape", state.get("shape"))
    if shape is None or len(tuple(shape)) != 2:
        raise UnsupportedPickleContentError(f"{where}: pickled state has no 2-D shape")
    rows, cols = (int(v) for v in shape)
    if rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
        raise UnsupportedPickleContentError(f"{where}: implausible shape {rows} x {cols}")
    try:
        data = np.asarray(state["data"], dtype=np.float64).ravel()
        if cls.sparse_format == "coo":
            # scipy < 1.13 stores 'row' and 'col'; newer versions a 'coords' tuple
            row_value, col_value = state["coords"] if "coords" in state else (state["row"], state["col"])
            row_index = np.asarray(row_value, dtype=np.int64).ravel()
            col_index = np.asarray(col_value, dtype=np.int64).ravel()
        else:
            indices = np.asarray(state["indices"], dtype=np.int64).ravel()
            indptr = np.asarray(state["indptr"], dtype=np.int64).ravel()
    except KeyError as exc:
        raise UnsupportedPickleContentError(f"{where}: pickled state lacks '{exc.args[0]}'") from exc

    if cls.sparse_format != "coo":
        major = cols if cls.sparse_format == "csc" else rows
        if indptr.size != major + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) \
                or indptr[-1] != data.size or indices.size != data.size:
            raise UnsupportedPickleContentError(f"{where}: inconsistent indptr/indices/data arrays")
        major_index = np.repeat(np.arange(major, dtype=np.int64), np.diff(indptr))  # [nnz]
        if cls.sparse_format == "csc":
            row_index, col_index = indices, major_index
        else:
            row_index, col_index = major_index, indices
    if row_index.size != data.size or col_index.size != data.size:
        raise UnsupportedPickleContentError(f"{where}: index and data arrays differ in length")
    if data.size and (row_index.min() < 0 or row_index.max() >= rows or col_index.min() < 0 or col_index.max() >= cols):
        raise UnsupportedPickleContentError(f"{where}: indices out of range for shape {rows} x {cols}")
    dense = np.zeros((rows, cols), dtype=np.float64)
    np.add.at(dense, (row_index, col_index), data)  # duplicates sum, as in scipy
    return dense


# --------------------------------------------------------------------------------------------
# .npz archives: headers first, limits before decompression, bounded memory
# --------------------------------------------------------------------------------------------


class ArchiveError(UnsupportedPickleContentError):
    """An .npz archive (or one of its members) is damaged, not an .npz, or beyond the reading limits."""


class ArchiveLimitError(ArchiveError):
    """A member declares more data than the documented limits allow (a corrupt or hostile file)."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one .npz member may declare before any of its data is decompressed (docs/cli.md, "Faults").

    Every limit is checked from the zip directory and the `.npy` header alone, so a file that would
    expand to gigabytes is refused after reading a few hundred bytes, and memory never exceeds the
    arrays actually returned (each is read once into a buffer of its declared size).
    """

    max_elements: int = 2_000_000_000          # per array
    max_member_bytes: int = 16 << 30           # uncompressed bytes per member
    max_total_bytes: int = 32 << 30            # uncompressed bytes of all members read from one archive
    max_compression_ratio: float = 100.0       # uncompressed / compressed, for members above ratio_floor_bytes
    ratio_floor_bytes: int = 16 << 20          # smaller members may compress any amount (e.g. all-True flags)
    max_ndim: int = 8
    max_header_bytes: int = 65_536
    max_members: int = 10_000


RESULT_LIMITS = ArchiveLimits()
# SMPL-family model files: the largest array is posedirs (SMPL-X: 10475 x 3 x 486 = 15.3 M values).
SMPL_LIMITS = ArchiveLimits(max_elements=100_000_000, max_member_bytes=1 << 30, max_total_bytes=4 << 30)

_READ_CHUNK = 1 << 18          # bytes per read: the only memory beyond the arrays themselves


@dataclass(frozen=True)
class NpyMember:
    """A member's zip entry and its parsed `.npy` header (no data read yet)."""

    name: str                    # without '.npy'
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_offset: int             # bytes of magic + header

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def _read_npy_header(handle: BinaryIO, where: str, limits: ArchiveLimits = RESULT_LIMITS
                     ) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a .npy header (format 1.0, 2.0 or 3.0) with numpy's own reader -> (dtype, shape,
    fortran_order, header bytes)."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
    except ValueError as exc:
        raise ArchiveError(f"{where}: not a .npy array (bad magic bytes)") from exc
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ArchiveError(f"{where}: unsupported .npy format version {version}")
    # Format 3.0 differs from 2.0 only by a UTF-8 header (structured field names), which the 2.0
    # reader decodes as Latin-1: identical for every ASCII header.
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = read_header(handle, max_header_size=limits.max_header_bytes)
    except (ValueError, SyntaxError, KeyError, TypeError, EOFError) as exc:
        raise ArchiveError(f"{where}: malformed or truncated .npy header ({exc})") from exc
    shape = tuple(int(v) for v in shape)
    if len(shape) > limits.max_ndim or any(v < 0 for v in shape):
        raise ArchiveLimitError(f"{where}: implausible array shape {shape}")
    if math.prod(shape) > limits.max_elements:
        raise ArchiveLimitError(f"{where}: declares {math.prod(shape):,} elements (limit {limits.max_elements:,})")
    return dtype, shape, bool(fortran_order), handle.tell()


def check_npy_file(path: str | os.PathLike, limits: ArchiveLimits = SMPL_LIMITS) -> tuple[np.dtype, tuple[int, ...]]:
    """A plain `.npy` file's (dtype, shape) from its header, refused (ArchiveError / ArchiveLimitError)
    when the header is malformed, declares more than `limits`, or more data than the file holds: so
    that `numpy.load` on it cannot be made to allocate what a tiny file declares."""
    path = Path(path)
    with open(path, "rb") as handle:
        dtype, shape, _, offset = _read_npy_header(handle, path.name, limits)
        size = os.fstat(handle.fileno()).st_size
    if not dtype.hasobject:
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > limits.max_member_bytes:
            raise ArchiveLimitError(f"{path.name}: declares {nbytes:,} bytes (limit {limits.max_member_bytes:,})")
        if size - offset < nbytes:
            raise ArchiveError(f"{path.name}: truncated: the header declares {nbytes:,} bytes of data, the file "
                               f"holds {max(size - offset, 0):,}")
    return dtype, shape


class NpzArchive:
    """An `.npz` opened for safe reading: every member's zip entry and `.npy` header is checked first.

    `members` maps array names to their headers; `read(name)` returns one array. Plain arrays are
    read into a buffer of exactly their declared size (chunk by chunk, no intermediate copy);
    object arrays only with `allow_objects` and through `RestrictedUnpickler`. Raises ArchiveError
    (damaged, not an .npz) and ArchiveLimitError (beyond `limits`), both before any large
    decompression.
    """

    def __init__(self, path: str | os.PathLike, limits: ArchiveLimits = RESULT_LIMITS) -> None:
        self.path = Path(path)
        self.limits = limits
        self._read_bytes = 0
        label = self.path.name
        with open(self.path, "rb") as handle:
            head = handle.read(4)
            size = os.fstat(handle.fileno()).st_size
        if head != b"PK\x03\x04" and head != b"PK\x05\x06":
            raise ArchiveError(f"{label} is not an .npz (zip) archive" + (
                " although it starts with 'PK': it is damaged, truncated, or another kind of file" if head[:2] == b"PK"
                else ""))
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ArchiveError(f"{label} is damaged or truncated (incomplete .npz archive: {exc})") from exc
        try:
            infos = self._zip.infolist()
            if len(infos) > limits.max_members:
                raise ArchiveLimitError(f"{label}: {len(infos):,} members (limit {limits.max_members:,})")
            self.members: dict[str, NpyMember] = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue                     # not an array (np.load would return raw bytes): never read
                self._check_entry(info, size, label)
                name = info.filename.removesuffix(".npy")
                where = f"{label}:{name}"
                with self._zip.open(info) as member:
                    dtype, shape, fortran, offset = _read_npy_header(member, where, limits)
                entry = NpyMember(name, info, dtype, shape, fortran, offset)
                if not dtype.hasobject:
                    if entry.nbytes > limits.max_member_bytes:
                        raise ArchiveLimitError(f"{where}: declares {entry.nbytes:,} bytes (limit {limits.max_member_bytes:,})")
                    if info.file_size < offset + entry.nbytes:
                        raise ArchiveError(f"{where}: the array data is truncated ({info.file_size - offset:,} of "
                                           f"{entry.nbytes:,} bytes)")
                self.members[name] = entry
        except BaseException:
            self._zip.close()
            raise

    def _check_entry(self, info: zipfile.ZipInfo, archive_size: int, label: str) -> None:
        where = f"{label}:{info.filename}"
        limits = self.limits
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"{where}: unsupported compression method {info.compress_type}")
        if info.file_size > limits.max_member_bytes:
            raise ArchiveLimitError(f"{where}: {info.file_size:,} bytes uncompressed (limit {limits.max_member_bytes:,})")
        if info.header_offset + info.compress_size > archive_size:
            raise ArchiveError(f"{where}: the archive is truncated (member data past the end of the file)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ArchiveError(f"{where}: inconsistent sizes in the zip directory (damaged archive)")
        if info.file_size > limits.ratio_floor_bytes and \
                info.file_size > limits.max_compression_ratio * max(info.compress_size, 1):
            raise ArchiveLimitError(
                f"{where}: compressed {info.file_size / max(info.compress_size, 1):,.0f} to 1 (limit "
                f"{limits.max_compression_ratio:g} to 1 above {limits.ratio_floor_bytes >> 20} MiB): refused "
                f"without decompressing it (a 'zip bomb' or a damaged file)")

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def read(self, name: str, *, allow_objects: bool = False) -> np.ndarray:
        """The array `name`; KeyError when absent."""
        entry = self.members.get(name)
        if entry is None:
            raise KeyError(f"{name} is not an array in {self.path}")
        where = f"{self.path.name}:{name}"
        declared = entry.info.file_size if entry.dtype.hasobject else entry.nbytes
        if self._read_bytes + declared > self.limits.max_total_bytes:
            raise ArchiveLimitError(f"{where}: the archive's arrays exceed {self.limits.max_total_bytes:,} bytes")
        self._read_bytes += declared
        try:
            with self._zip.open(entry.info) as handle:
                _read_npy_header(handle, where, self.limits)      # skip to the data (cheap: a few bytes)
                if entry.dtype.hasobject:
                    if not allow_objects:
                        raise ArchiveError(f"{where}: stores pickled Python objects, which are not loaded "
                                           f"(they could run code)")
                    return self._read_object_array(handle, entry, where)
                return self._read_plain_array(handle, entry, where)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ArchiveError(f"{where}: damaged array data ({type(exc).__name__}: {exc})") from exc

    @staticmethod
    def _read_plain_array(handle: BinaryIO, entry: NpyMember, where: str) -> np.ndarray:
        flat = np.empty(entry.count, dtype=entry.dtype)
        if entry.nbytes:
            buffer = memoryview(flat.view(np.uint8)).cast("B")
            done = 0
            while done < entry.nbytes:
                got = handle.readinto(buffer[done:done + _READ_CHUNK])
                if not got:
                    raise ArchiveError(f"{where}: truncated array data ({done:,} of {entry.nbytes:,} bytes)")
                done += got
        return flat.reshape(entry.shape, order="F" if entry.fortran_order else "C")

    @staticmethod
    def _read_object_array(handle: BinaryIO, entry: NpyMember, where: str) -> np.ndarray:
        array = restricted_load(handle)
        if not isinstance(array, np.ndarray):
            raise UnsupportedPickleContentError(f"{where}: pickled payload is a {type(array).__name__}, not an array")
        if array.shape != entry.shape or array.dtype != entry.dtype:
            raise UnsupportedPickleContentError(
                f"{where}: pickled array {array.dtype}{array.shape} differs from its header {entry.dtype}{entry.shape}")
        return array


def read_npz_member(npz_path: str | os.PathLike, member: str, limits: ArchiveLimits = RESULT_LIMITS) -> np.ndarray:
    """Read one array of an `.npz`, including object arrays, without running pickled code.

    `np.load(..., allow_pickle=True)` would execute whatever an object array's pickle names; here
    object arrays go through `RestrictedUnpickler`. `member` is the array name ('outputs' reads
    'outputs.npy'). Raises KeyError when absent, ArchiveError / UnsupportedPickleContentError when
    malformed or beyond `limits`, and UnsafePickleError for disallowed content.
    """
    with NpzArchive(npz_path, limits) as archive:
        return archive.read(member, allow_objects=True)
