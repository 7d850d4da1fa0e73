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
import os
import pickle
import zipfile
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
]

# Dense matrices built from pickled sparse ones are refused above this many elements (8 GB in
# float64): a corrupt or hostile shape must not exhaust memory. SMPL's J_regressor is 24 x 6890.
MAX_DENSE_ELEMENTS = 1_000_000_000


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
    if name == "add":
        return operand("a") + operand("b")
    if name == "subtract":
        return operand("a") - operand("b")
    if name == "multiply":
        return operand("a") * operand("b")
    if name == "dot":
        return np.atleast_1d(operand("a").dot(operand("b")))
    raise UnsupportedPickleContentError(
        f"chumpy object '{where}' cannot be evaluated without chumpy (only Ch, Reshape, transpose, "
        f"Select, add, subtract, multiply and dot are supported). Convert the file once with chumpy "
        f"installed (replace every chumpy value by numpy.array(value)) or use the .npz form."
    )


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
# .npz members
# --------------------------------------------------------------------------------------------


def _read_npy_header(handle: BinaryIO, where: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """Parse a .npy header with numpy's own reader -> (dtype, shape, fortran_order).

    Format 3.0 differs from 2.0 only by a UTF-8 header (structured field names), which the 2.0
    reader decodes as Latin-1: identical for every ASCII header.
    """
    try:
        version = np.lib.format.read_magic(handle)
    except ValueError as exc:  # bad magic bytes or a truncated file
        raise UnsupportedPickleContentError(f"{where}: not a .npy array ({exc})") from exc
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise UnsupportedPickleContentError(f"{where}: unsupported .npy format version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = read_header(handle)
    except ValueError as exc:  # truncated or malformed header
        raise UnsupportedPickleContentError(f"{where}: malformed .npy header ({exc})") from exc
    return dtype, tuple(int(v) for v in shape), bool(fortran_order)


def read_npz_member(npz_path: str | os.PathLike, member: str) -> np.ndarray:
    """Read one array of an `.npz`, including object arrays, without running pickled code.

    `np.load(..., allow_pickle=True)` would execute whatever an object array's pickle names; here
    object arrays go through `RestrictedUnpickler`. `member` is the array name ('outputs' reads
    'outputs.npy'). Raises KeyError when absent, UnsupportedPickleContentError when malformed and
    UnsafePickleError for disallowed content.
    """
    where = f"{Path(npz_path).name}:{member}"
    with zipfile.ZipFile(npz_path) as archive:
        name = member if member in archive.namelist() else member + ".npy"
        if name not in archive.namelist():
            raise KeyError(f"{member} is not an array in {npz_path}")
        with archive.open(name) as handle:
            dtype, shape, fortran_order = _read_npy_header(handle, where)
            if not dtype.hasobject:
                payload = handle.read()
                count = int(np.prod(shape, dtype=np.int64))
                if len(payload) < count * dtype.itemsize:
                    raise UnsupportedPickleContentError(f"{where}: truncated array data")
                array = np.frombuffer(payload, dtype=dtype, count=count)
                return array.reshape(shape, order="F" if fortran_order else "C").copy()
            array = restricted_load(handle)
    if not isinstance(array, np.ndarray):
        raise UnsupportedPickleContentError(f"{where}: pickled payload is a {type(array).__name__}, not an array")
    if array.shape != shape or array.dtype != dtype:
        raise UnsupportedPickleContentError(
            f"{where}: pickled array {array.dtype}{array.shape} differs from its header {dtype}{shape}")
    return array
