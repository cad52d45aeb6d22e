"""The restricted unpickler: reads a network pickle into :class:`PersistentRecord` trees and plain containers.

It knows nothing of any network architecture. ``find_class`` maps a short allow-list of globals (NVIDIA's
``torch_utils.persistence`` reconstructor → :class:`PersistentRecord`, ``EasyDict`` → dict, ``OrderedDict``,
``set``, tensor and storage rebuilders that read storages with ``torch.load(weights_only=True)``, torch
dtypes/``device``/``Size``, numeric numpy scalars/arrays) to sealed stand-ins; any other global is refused
with a :class:`~ganinv.errors.CheckpointError` naming it, before anything is called. Before unpickling,
:func:`_prescan_pickle` walks the opcodes (running nothing) and refuses files crafted to make the
unpickler allocate far more than they hold.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import pickletools
import re
import struct
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import CheckpointError
from ganinv.generators.checkpoints.common import _short


# ----------------------------------------------------------------------------------
# Naming and refusing globals
# ----------------------------------------------------------------------------------
def _python3_name(module: str, name: str) -> str:
    """``module.name`` with Python 2 pickle aliases (``__builtin__``, ``commands``, …) mapped as pickle does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _refused_global_from(exc: BaseException) -> str | None:
    """The global named in a ``weights_only`` refusal (torch writes builtins without their module)."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if not match:
        return None
    module, _, name = match.group(1).rpartition(".")
    return _python3_name(module or "builtins", name)


_DANGEROUS_MODULES = ("os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "shutil", "socket", "pty",
                      "ctypes", "pickle", "_pickle", "marshal", "code", "codeop", "functools", "operator",
                      "webbrowser", "multiprocessing", "io", "_io", "tempfile", "types")
_DANGEROUS_BUILTINS = ("eval", "exec", "compile", "__import__", "open", "getattr", "setattr", "delattr", "globals",
                       "locals", "vars", "input", "breakpoint", "help", "exit", "quit", "type", "object")
_FRIENDLY_NAMES = {"posix.system": "os.system", "nt.system": "os.system"}


def _refusal(full: str, source: str, where: str = "the pickle",
             tail: str = "ganinv reads only tensors and plain settings from checkpoints and never runs their code"
             ) -> CheckpointError:
    """The error for a refused pickle global ``full`` (``module.name``), saying whether it would run code."""
    module, _, name = full.rpartition(".")
    shown = f"{full} ({_FRIENDLY_NAMES[full]})" if full in _FRIENDLY_NAMES else full
    root = module.split(".")[0]
    if root in _DANGEROUS_MODULES or (module == "builtins" and name in _DANGEROUS_BUILTINS):
        why = "which would run code"
    else:
        why = "which is not on ganinv's list of safe names (a pickle can run code through any such reference)"
    return CheckpointError(f"refusing to load {source}: {where} references {shown}, {why}. {tail}")


# ----------------------------------------------------------------------------------
# Records and sealed stand-ins
# ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PersistentRecord:
    """What NVIDIA's ``torch_utils.persistence`` pickled for one network object — data only.

    Attributes:
        class_name: e.g. ``"training.networks.Generator"``.
        version: the persistence format version (6 in stylegan2-ada-pytorch).
        state: the module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` (child
            records), ``_init_args``, ``_init_kwargs`` and plain attributes.
        module_src_chars: length of the embedded source code, which is never executed.
    """

    class_name: str
    version: int | None
    state: dict[str, Any] = field(repr=False)
    module_src_chars: int = 0

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the network was constructed with (``{}`` if not recorded)."""
        kw = self.state.get("_init_kwargs")
        return dict(kw) if isinstance(kw, dict) else {}

    def child(self, name: str) -> PersistentRecord | None:
        """The child network record ``name`` from ``_modules`` (``None`` if absent)."""
        modules = self.state.get("_modules")
        child = modules.get(name) if isinstance(modules, dict) else None
        return child if isinstance(child, PersistentRecord) else None


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for NVIDIA's function of the same name: keep ``meta['state']``, never run ``module_src``."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"malformed NVIDIA persistent object: meta is a {type(meta).__name__}, not a dict")
    if meta.get("type", "class") != "class":
        raise CheckpointError(f"unsupported NVIDIA persistent object type {meta.get('type')!r}")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise CheckpointError(f"malformed NVIDIA persistent object {meta.get('class_name')!r}: state is a "
                              f"{type(state).__name__}, not a dict")
    src = meta.get("module_src")
    version = meta.get("version")
    return PersistentRecord(class_name=str(meta.get("class_name", "")),
                            version=version if isinstance(version, int) else None,
                            state=dict(state), module_src_chars=len(src) if isinstance(src, str) else 0)


class _SealedType(type):
    """Metaclass whose classes cannot be modified (a pickle's BUILD on the class itself is refused)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise CheckpointError(f"refusing to load: the pickle tries to modify {cls.__name__}.{name}")

    def __delattr__(cls, name: str) -> None:
        raise CheckpointError(f"refusing to load: the pickle tries to modify {cls.__name__}.{name}")


class _EasyDict(dict, metaclass=_SealedType):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (attribute access not needed here)."""


class _NdarrayType(metaclass=_SealedType):
    """Stand-in for ``numpy.ndarray`` when it appears as an argument of ``_reconstruct``."""


class _SealedCallable:
    """Wraps an allowed function so a pickle cannot change it (no ``__dict__``, no attribute setting)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CheckpointError(f"refusing to load: the pickle tries to modify a loader function ({name})")

    def __delattr__(self, name: str) -> None:
        raise CheckpointError(f"refusing to load: the pickle tries to modify a loader function ({name})")


def _safe_load_from_bytes(data: Any, source: str = "the pickle") -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the bytes are read with ``weights_only=True``."""
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError(f"malformed tensor storage in the pickle (a {type(data).__name__}, not bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _refused_global_from(exc)
        if name:
            raise _refusal(name, source, "one of its tensor storages") from None
        raise CheckpointError(f"a tensor storage in the pickle is corrupt ({_short(exc)})") from None
    except Exception as exc:
        raise CheckpointError(f"a tensor storage in the pickle is corrupt ({_short(exc)})") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"a tensor storage in the pickle holds a {type(storage).__name__}, not a storage")
    return storage


def _is_int_tuple(x: Any) -> bool:
    """Whether ``x`` is a tuple, list or ``torch.Size`` of ints (a shape, a stride)."""
    return isinstance(x, (tuple, list, torch.Size)) and all(isinstance(v, int) for v in x)


def _safe_rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                            backward_hooks: Any = None, metadata: Any = None) -> Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: type-checked, hooks and metadata dropped."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)) or not isinstance(storage_offset, int) \
            or not _is_int_tuple(size) or not _is_int_tuple(stride):
        raise CheckpointError("malformed tensor in the pickle (bad storage, offset, size or stride)")
    try:
        return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False,
                                               collections.OrderedDict())
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"malformed tensor in the pickle ({_short(exc)})") from None


def _safe_rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    """Stand-in for the older ``torch._utils._rebuild_tensor``."""
    return _safe_rebuild_tensor_v2(storage, storage_offset, size, stride)


def _safe_rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                            state: Any = None) -> Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: returns the plain tensor, hooks dropped."""
    if not isinstance(data, Tensor):
        raise CheckpointError(f"malformed parameter in the pickle (a {type(data).__name__}, not a tensor)")
    return data


def _safe_codecs_encode(obj: Any, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode`` as used by protocol-2 pickles to store bytes."""
    if not isinstance(obj, str) or not isinstance(encoding, str) \
            or encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise CheckpointError("refusing to load: the pickle calls _codecs.encode with unexpected arguments")
    return obj.encode("latin1")


def _safe_np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """Stand-in for ``numpy.dtype``: only plain numeric dtype strings, never ``object``."""
    if not isinstance(obj, str):
        raise CheckpointError(f"refusing to load: numpy dtype from a {type(obj).__name__}")
    try:
        # copy=True: the pickle's BUILD step then sets byte order etc. on a private copy, never on
        # numpy's shared dtype singletons.
        dtype = np.dtype(obj, align=bool(align), copy=True)
    except TypeError as exc:
        raise CheckpointError(f"malformed numpy dtype {obj!r} in the pickle ({exc})") from None
    if dtype.hasobject:
        raise CheckpointError("refusing to load: the pickle holds a numpy object array/scalar")
    return dtype


def _safe_np_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar``: numeric scalars from raw bytes only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise CheckpointError("malformed numpy scalar in the pickle")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _safe_np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for ``numpy.core.multiarray._reconstruct`` (plain ``ndarray`` only; filled by ``__setstate__``)."""
    if subtype is not _NdarrayType or not _is_int_tuple(shape):
        raise CheckpointError("refusing to load: the pickle reconstructs a numpy array subclass")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _safe_np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """Stand-in for ``numpy._core.numeric._frombuffer`` (pickle protocol 5 arrays)."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not _is_int_tuple(shape) or order not in ("C", "F"):
        raise CheckpointError("malformed numpy array in the pickle")
    try:
        return np.frombuffer(bytes(memoryview(buf)), dtype=dtype).reshape(tuple(shape), order=order).copy()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"malformed numpy array in the pickle ({exc})") from None


def _allowed_globals() -> dict[str, Any]:
    """The allow-list: ``module.name`` → the sealed stand-in :meth:`NvidiaUnpickler.find_class` returns for it."""
    allowed: dict[str, Any] = {
        "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
        "dnnlib.util.EasyDict": _EasyDict,
        "dnnlib.EasyDict": _EasyDict,
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "_codecs.encode": _safe_codecs_encode,
        "torch._utils._rebuild_tensor_v2": _safe_rebuild_tensor_v2,
        "torch._utils._rebuild_tensor": _safe_rebuild_tensor,
        "torch._utils._rebuild_parameter": _safe_rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _safe_rebuild_parameter,
        "torch.storage._load_from_bytes": _safe_load_from_bytes,
        "torch.device": torch.device,
        "torch.Size": torch.Size,
        "numpy.dtype": _safe_np_dtype,
        "numpy.ndarray": _NdarrayType,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{mod}.scalar"] = _safe_np_scalar
        allowed[f"{mod}._reconstruct"] = _safe_np_reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[f"{mod}._frombuffer"] = _safe_np_frombuffer
    for name in ("float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"):
        allowed[f"torch.{name}"] = getattr(torch, name)
    # Our own Python functions are wrapped so a pickle's BUILD opcode cannot alter them; the
    # remaining entries are C types/instances (immutable) or sealed classes.
    return {k: _SealedCallable(v) if isinstance(v, types.FunctionType) else v for k, v in allowed.items()}


#: ``module.name`` → what a pickle gets for it; every other global is refused.
_ALLOWED_GLOBALS = _allowed_globals()


class NvidiaUnpickler(pickle.Unpickler):
    """Restricted unpickler for NVIDIA network pickles: rebuilds tensors and plain data, refuses everything else.

    ``find_class`` maps a short allow-list (NVIDIA's persistent-object reconstructor →
    :class:`PersistentRecord`, ``EasyDict`` → dict, ``OrderedDict``, ``set``, tensor and
    storage rebuilders that read storages with ``torch.load(weights_only=True)``, torch
    dtypes/``device``/``Size`` and numeric numpy scalars/arrays). Any other global raises
    :class:`CheckpointError` naming it, before anything is called. Every global seen is
    recorded in :attr:`globals_seen`.
    """

    def __init__(self, file: Any, source: str = "pickle") -> None:
        super().__init__(file)
        self.source = source
        self.globals_seen: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        """The allow-listed stand-in for ``module.name``; any other global raises :class:`CheckpointError`."""
        full = _python3_name(module, name)
        self.globals_seen.append(full)
        target = _ALLOWED_GLOBALS.get(full)
        if target is None:
            raise _refusal(full, self.source)
        if full == "torch.storage._load_from_bytes":
            source = self.source
            return _SealedCallable(lambda data: _safe_load_from_bytes(data, source))
        return target

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: NVIDIA network pickles have none (a ``torch.save`` file does)."""
        raise CheckpointError(f"{self.source} uses pickle persistent ids (like a torch.save file), which NVIDIA "
                              f"network pickles do not; it is not an NVIDIA .pkl")


class _CappedReader:
    """A file whose ``read(n)`` never asks for more than the bytes left (``genops`` would otherwise allocate the
    length a crafted opcode declares before finding out the file is shorter)."""

    def __init__(self, f: Any, size: int) -> None:
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes (all that are left when ``n`` is negative), never more than the file holds."""
        left = max(0, self.size - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        """One line, at most 64 KiB."""
        return self.f.readline(65536)

    def tell(self) -> int:
        """The position in the underlying file."""
        return self.f.tell()


def _prescan_pickle(f: Any, size: int, source: str, rewind: bool = True) -> None:
    """Walk the pickle's opcodes (:func:`pickletools.genops`, which runs nothing) before unpickling, and refuse
    what would make CPython's unpickler allocate far more than the file holds: a memo slot far beyond the
    objects seen so far (``LONG_BINPUT 4000000000`` makes it allocate a 32 GB memo table — found by fuzzing),
    and lengths (frames, bytes, strings) longer than the rest of the file."""
    puts = 0
    try:
        for op, arg, pos in pickletools.genops(_CappedReader(f, size)):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if int(arg) > 2 * puts + 1024:
                    raise CheckpointError(f"refusing to load {source}: its pickle stores an object in memo slot "
                                          f"{int(arg):,} after {puts:,} objects, which only a crafted file does "
                                          "(it would make the unpickler allocate gigabytes)")
                puts += 1
            elif op.name == "MEMOIZE":
                puts += 1
            elif op.name == "FRAME" and int(arg) > size - pos:
                raise CheckpointError(f"{source} is not a readable pickle; it looks truncated or corrupt (a frame "
                                      f"of {int(arg):,} bytes at offset {pos:,} runs past the end of the file)")
    except CheckpointError:
        raise
    except (ValueError, EOFError, OverflowError, UnicodeDecodeError, MemoryError, struct.error) as exc:
        raise CheckpointError(f"{source} is not a readable pickle; it looks truncated or corrupt "
                              f"({_short(exc)})") from None
    if rewind:
        f.seek(0)


# ----------------------------------------------------------------------------------
# Reading a file and walking its records
# ----------------------------------------------------------------------------------
def read_restricted_pickle(path: Path) -> tuple[Any, list[str]]:
    """Pre-scan, then unpickle ``path`` with :class:`NvidiaUnpickler` (the caller has checked it is a pickle).

    Returns:
        ``(obj, globals)``: the top-level object and the sorted list of pickle globals it referenced.

    Raises:
        CheckpointError: truncated or corrupt file, or a refused global; every message names ``path``.
    """
    try:
        with open(path, "rb") as f:
            _prescan_pickle(f, path.stat().st_size, str(path))
            unpickler = NvidiaUnpickler(f, str(path))
            obj = unpickler.load()
    except CheckpointError as exc:
        if str(path) in str(exc):
            raise
        raise CheckpointError(f"{path}: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{path} is nested too deeply to be an NVIDIA network pickle") from None
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... on damaged files
        raise CheckpointError(f"{path} is not a readable pickle; it looks truncated or corrupt "
                              f"({_short(exc)})") from None
    return obj, sorted(set(unpickler.globals_seen))


def _flatten_record(record: PersistentRecord, source: str, prefix: str = "", depth: int = 0,
                    out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """NVIDIA key names (``mapping.fc0.weight``, ``synthesis.b4.const``, …) → tensors, from a record tree."""
    out = {} if out is None else out
    if depth > 32:
        raise CheckpointError(f"{source}: network records nest too deeply (a cycle?)")
    for group in ("_parameters", "_buffers"):
        entries = record.state.get(group) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(f"{source}: {prefix or 'network'} has malformed {group}")
        for name, value in entries.items():
            if value is None:
                continue
            if not isinstance(value, Tensor):
                raise CheckpointError(f"{source}: {prefix}{name} is a {type(value).__name__}, not a tensor")
            out[f"{prefix}{name}"] = value
    modules = record.state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise CheckpointError(f"{source}: {prefix or 'network'} has malformed _modules")
    for name, child in modules.items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"{source}: {prefix}{name} is a {type(child).__name__}, not an NVIDIA network")
        _flatten_record(child, source, f"{prefix}{name}.", depth + 1, out)
    return out

