"""Reading the field's pickled latent files without running anything in them.

Two readers, both size-capped (:data:`MAX_LATENT_FILE_BYTES`) and both turning every failure into one
:class:`~ganinv.errors.InputError` that names the file:

* :func:`load_torch` — a ``torch.save`` file (e4e ``latents.pt``, PTI ``0.pt``, rosinality projector ``.pt``,
  e4e direction ``.pt`` files) through ``torch.load(map_location="cpu", weights_only=True)``: tensors and plain
  containers only; anything else is refused by torch and reported by name.
* :func:`load_pickled_npy` — an ``.npy`` holding a pickled object (ReStyle / HyperStyle ``latents.npy``, written
  with ``np.save(path, dict)``), through :class:`NumpyOnlyUnpickler`, which resolves *only* NumPy's array
  reconstruction globals (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy[._]core.multiarray.scalar``, ``numpy[._]core.numeric._frombuffer``), a few plain containers (``set``,
  ``frozenset``, ``collections.OrderedDict``) and ``_codecs.encode`` (protocol 2's spelling of bytes). The NumPy
  names resolve to stand-ins that record what the pickle asks for; the arrays are built afterwards with
  ``np.frombuffer`` once dtype (numbers only) and size are checked, so no NumPy constructor sees arguments chosen
  by the file. Any other global is refused, by name, before it is looked up.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ganinv.errors import CheckpointError, InputError

#: Largest latent or direction file read (a ReStyle ``latents.npy`` of 1,000 FFHQ images × 5 iterations is
#: about 190 MB).
MAX_LATENT_FILE_BYTES = 512 * 2**20
#: Deepest nesting of containers accepted in a pickled latent file (the field's files nest three levels).
MAX_DEPTH = 16
#: Most arrays, containers and scalars in one pickled latent file.
MAX_OBJECTS = 1_000_000

#: Python 2 / numpy 1 spellings of the allowed globals, mapped to what they stand for.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("_codecs", "encode"): "latin1",
}
_CONTAINERS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("__builtin__", "set"): set,
               ("__builtin__", "frozenset"): frozenset, ("collections", "OrderedDict"): OrderedDict}
#: dtype characters read from a pickle: booleans, integers, floats, complex (and object, for the container
#: array ``np.save`` wraps a dict in).
_DTYPE_SPEC = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|O[48]?)$")


class _Refused(Exception):
    """A global the pickle asked for that is not allowed (carries ``module.name``)."""


class _NdarrayClass:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct`` (not a type: NEWOBJ fails on it)."""


_NDARRAY = _NdarrayClass()


class _Dtype:
    """A dtype a pickle asked for: ``numpy.dtype(spec, align, copy)`` then ``__setstate__`` (the byte order)."""

    def __init__(self, spec: Any, *_: Any) -> None:
        if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
            raise InputError(f"dtype {spec!r}: only numeric arrays (and object containers) are read")
        self.spec = spec
        self.order = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]
        if isinstance(state, tuple) and len(state) >= 4 and (state[2] is not None or state[3] is not None):
            raise InputError("structured dtypes are not read from latent files")

    def resolve(self) -> np.dtype:
        dt = np.dtype(self.spec)
        return dt.newbyteorder(self.order) if self.order in "<>" and dt.kind != "O" else dt


class _Array:
    """An array a pickle asked for: ``_reconstruct(ndarray, ...)`` then ``__setstate__((version, shape, dtype,
    fortran, data))``; :meth:`resolve` builds it (numbers: ``np.frombuffer``; object: a list or its one item)."""

    def __init__(self) -> None:
        self.state: tuple[Any, ...] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise InputError("an array's pickled state is malformed")
        self.state = state[-4:]

    def resolve(self) -> Any:
        if self.state is None:
            raise InputError("an array in the pickle has no data")
        shape, dtype, fortran, data = self.state
        return _make_array(shape, dtype, bool(fortran), data)


def _reconstruct(cls: Any, *_: Any) -> _Array:
    if cls is not _NDARRAY:
        raise InputError("_reconstruct is only read for numpy.ndarray")
    return _Array()


def _check_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError(f"an array in the pickle has a malformed shape {shape!r}")
    return shape


def _make_array(shape: Any, dtype: Any, fortran: bool, data: Any) -> Any:
    shape = _check_shape(shape)
    if not isinstance(dtype, _Dtype):
        raise InputError("an array in the pickle has no plain dtype")
    dt = dtype.resolve()
    count = math.prod(shape)
    if dt.kind == "O":  # np.save's wrapper around a dict (0-d) or an array of Python objects
        if not isinstance(data, list) or len(data) != count:
            raise InputError("an object array in the pickle does not hold as many items as its shape says")
        return data[0] if shape == () else _nest(data, shape)
    if not isinstance(data, bytes | bytearray):
        raise InputError("an array in the pickle holds no raw data")
    if count * dt.itemsize != len(data):
        raise InputError(f"an array in the pickle declares shape {list(shape)} ({dt}) but holds {len(data):,} bytes")
    return np.frombuffer(bytes(data), dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


def _nest(items: list[Any], shape: tuple[int, ...]) -> list[Any]:
    if len(shape) == 1:
        return list(items)
    step = math.prod(shape[1:])
    return [_nest(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, _Dtype) or dtype.resolve().kind == "O":
        raise InputError("only numeric scalars are read from a pickle")
    dt = dtype.resolve()
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise InputError("a scalar in the pickle has the wrong number of bytes")
    return np.frombuffer(data, dtype=dt)[0]


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
    if not isinstance(buf, bytes | bytearray):
        raise InputError("an out-of-band array buffer is not read")
    return _make_array(shape, dtype, order == "F", buf)


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode(text, "latin1")``: how protocol-2 pickles spell bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise InputError("_codecs.encode is only read as protocol 2's latin1 spelling of bytes")
    return text.encode("latin1")


_STANDINS = {"reconstruct": _reconstruct, "latin1": _latin1, "ndarray": _NDARRAY, "dtype": _Dtype, "scalar": _scalar,
             "frombuffer": _frombuffer}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only NumPy's array-reconstruction globals (to checked stand-ins) and plain containers; anything
    else raises before it is imported (the refusal names it). Persistent ids are refused."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _NUMPY_GLOBALS:
            return _STANDINS[_NUMPY_GLOBALS[key]]
        if key in _CONTAINERS:
            return _CONTAINERS[key]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


def _finish(obj: Any) -> Any:
    """Replace the stand-ins by arrays, everywhere in the loaded tree (shared objects converted once; cycles,
    over-deep nesting and over-many objects refused)."""
    done: dict[int, Any] = {}
    count = 0

    def walk(x: Any, depth: int) -> Any:
        nonlocal count
        if depth > MAX_DEPTH:
            raise InputError(f"the pickle nests deeper than {MAX_DEPTH} levels (or refers to itself)")
        if x is None or isinstance(x, bool | int | float | complex | str | bytes | np.generic):
            return x
        key = id(x)
        if key in done:
            return done[key]
        count += 1
        if count > MAX_OBJECTS:
            raise InputError(f"the pickle holds more than {MAX_OBJECTS:,} objects")
        if isinstance(x, _Array):
            out = walk(x.resolve(), depth + 1)
        elif isinstance(x, np.ndarray):
            out = x
        elif isinstance(x, dict):
            out = {walk(k, depth + 1): walk(v, depth + 1) for k, v in x.items()}
        elif isinstance(x, list | tuple | set | frozenset):
            out = type(x)(walk(v, depth + 1) for v in x)
        else:
            raise InputError(f"the pickle holds a {type(x).__name__}, which is not an array or a container")
        done[key] = out
        return out

    return walk(obj, 0)


def _check_size(path: Path, what: str) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}; check the path") from None
    except OSError as exc:
        raise InputError(f"{path} is not readable ({exc.strerror or exc})") from None
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a {what}")
    if size > MAX_LATENT_FILE_BYTES:
        raise InputError(f"{path} is {size / 2**20:,.0f} MB, more than the {MAX_LATENT_FILE_BYTES // 2**20} MB "
                         f"ganinv reads from a {what}; refusing it")
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    return size


_FRIENDLY = {"posix.system": "posix.system (os.system)", "nt.system": "nt.system (os.system)"}


def _refusal(path: Path, name: str, kind: str) -> InputError:
    name = _FRIENDLY.get(name, name)
    return InputError(f"refusing to read {path}: its pickle references {name}, which ganinv does not load (a "
                      f"pickle can run code through any such name); ganinv reads only {kind} from latent files "
                      "and never runs their code")


def load_pickled_npy(path: str | Path) -> Any:
    """Read an ``.npy`` whose payload is a pickle (``np.save`` of a dict or list, ReStyle's ``latents.npy``).

    Returns the object with every array as a plain ``np.ndarray`` (a 0-d object array — how ``np.save`` wraps a
    dict — is unwrapped to its item). Raises :class:`InputError` for a global other than NumPy's array
    reconstruction (named in the message; nothing is imported or run), a damaged file or one over
    :data:`MAX_LATENT_FILE_BYTES`."""
    path = Path(path)
    _check_size(path, "latent file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_LATENT_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path} is not readable ({exc.strerror or exc})") from None
    fh2 = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh2)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _shape, _fortran, dtype = header(fh2)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, ... on damaged headers
        raise InputError(f"{path} is not a readable .npy file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not dtype.hasobject:
        raise InputError(f"{path} holds a plain array, not a pickled object")
    from ganinv.generators.checkpoints import _prescan_pickle

    start = fh2.tell()
    try:  # walk the opcodes first (runs nothing): a crafted memo index or length would make CPython allocate GBs
        _prescan_pickle(fh2, len(raw), str(path), rewind=False)
    except CheckpointError as exc:
        raise InputError(str(exc)) from None
    fh2.seek(start)
    try:
        obj = NumpyOnlyUnpickler(fh2).load()
    except _Refused as exc:
        raise _refusal(path, str(exc), "NumPy arrays and plain containers") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: the pickle nests too deeply") from None
    except Exception as exc:  # truncated or damaged pickle: UnpicklingError, EOFError, TypeError, ...
        raise InputError(f"{path} is not a readable pickled .npy ({type(exc).__name__}: {str(exc)[:120]})") from None
    try:
        return _finish(obj)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: the pickle nests too deeply") from None


def npy_is_pickled(path: str | Path) -> bool:
    """Whether an ``.npy`` file's header declares an object array (a pickle follows); False for a plain array
    or an unreadable header (the plain reader then reports it)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            _, _, dtype = header(fh)
            return bool(dtype.hasobject)
    except Exception:
        return False


def _torch_refused_global(exc: BaseException) -> str | None:
    match = re.search(r"GLOBAL ([\w.]+)", re.sub(r"\x1b\[[0-9;]*m", "", str(exc)))
    return match.group(1) if match else None


def load_torch(path: str | Path, what: str = "latent file") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` for a latent or direction file.

    Only the zip format ``torch.save`` has written since PyTorch 1.6 is read, at most
    :data:`MAX_LATENT_FILE_BYTES` on disk and inflated. Raises :class:`InputError` naming the file: for a global
    torch's weights-only unpickler refuses (named; nothing runs), a damaged file, or an old-format one."""
    import torch

    path = Path(path)
    size = _check_size(path, what)
    try:
        with zipfile.ZipFile(path) as zf:
            inflated = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a torch.save file in the zip format (PyTorch ≥ 1.6); re-save it with "
                         "torch.save, or give a .npz/.npy latent") from None
    except OSError as exc:
        raise InputError(f"{path} is not readable ({exc.strerror or exc})") from None
    except Exception as exc:  # a damaged zip directory: UnicodeDecodeError, NotImplementedError, ValueError, ...
        raise InputError(f"{path} is not a readable torch.save file; its zip directory is damaged "
                         f"({type(exc).__name__})") from None
    if inflated > max(MAX_LATENT_FILE_BYTES, size):
        raise InputError(f"{path} inflates to {inflated / 2**20:,.0f} MB, more than the "
                         f"{MAX_LATENT_FILE_BYTES // 2**20} MB ganinv reads from a {what}; refusing it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _torch_refused_global(exc)
        if name:
            raise _refusal(path, name, "tensors and plain containers") from None
        raise InputError(f"{path} is not a readable torch.save file ({str(exc).splitlines()[0][:160]})") from None
    except Exception as exc:  # RuntimeError, EOFError, KeyError, ... on damaged files
        raise InputError(f"{path} is not a readable torch.save file; it looks truncated or corrupt "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
