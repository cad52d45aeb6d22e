"""Load generators from the checkpoint files people already have — without running their code.

Supported inputs (:func:`load_generator` picks by looking at the file's bytes, not its name):

* a bundled model name (:func:`ganinv.zoo.available`);
* a ganinv model folder (``config.json`` + ``model.safetensors``) or a ``.safetensors``
  file with a sibling ``config.json``;
* rosinality ``stylegan2-pytorch`` ``.pt`` files (:func:`load_rosinality`): converter output
  ``{"g_ema", "latent_avg"}``, training checkpoints ``{g, d, g_ema, g_optim, d_optim, args,
  ada_aug_p}``, pSp/e4e checkpoints (their ``decoder.*``) and bare state dicts. They are
  read with ``torch.load(weights_only=True)`` (``argparse.Namespace`` is the one extra class
  allowed, because rosinality stores its ``args`` that way);
* NVIDIA ``stylegan2-ada-pytorch`` ``.pkl`` files (:func:`load_nvidia_pkl`), read by a
  restricted unpickler (:class:`NvidiaUnpickler`) that rebuilds tensors and plain settings
  and refuses every other global. The pickled ``module_src`` (NVIDIA's source code that
  their loader ``exec()``\\ s) is never executed, only its length is kept.

The StyleGAN2 architecture (resolution, per-resolution widths, ``z_dim``, ``w_dim``,
``n_mlp``, image channels) is inferred from tensor names and shapes, and the weights are
loaded strictly: any missing key, unexpected key or shape mismatch is an error that lists
them. Loaders report things the user should know (an estimated ``latent_avg``, an ignored
``conv_clamp``) as *notices*: appended to a ``notices`` list when one is passed, otherwise
issued with :func:`warnings.warn` as :class:`CheckpointNotice`.
"""

from __future__ import annotations

import _compat_pickle
import argparse
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

from ganinv.errors import CheckpointError, GaninvError, InputError, UnknownModelError
from ganinv.generators.base import Generator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.modelfile import CONFIG_NAME, WEIGHTS_NAME, architectures, atomic_write, build, build_for, load_pretrained
from ganinv.modelfile import load_state_strict, read_config, read_safetensors

__all__ = [
    "CheckpointNotice", "PersistentRecord", "NvidiaUnpickler", "sniff_format", "load_rosinality",
    "save_rosinality", "infer_rosinality_config", "load_nvidia_pkl", "read_nvidia_pkl", "nvidia_to_rosinality",
    "load_generator", "inspect_checkpoint", "W_AVG_SAMPLES",
]

#: Number of mapped z used to estimate ``w_avg`` when a checkpoint does not store it (NVIDIA's projector uses 10k).
W_AVG_SAMPLES = 10_000

# Legacy (non-zip) torch.save files start with a pickled magic number; these are its LONG1 bytes.
_TORCH_LEGACY_MAGIC = b"\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
# Protocol 0/1 pickles: a GLOBAL (``cmodule\nname\n``), or a MARK followed by a GLOBAL, a string, a number, a
# dict/list/tuple opcode; or an empty dict/list memoised at index 0.
_PICKLE_0_1 = re.compile(rb"\(?c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n"
                         rb"|\((dp|lp|t|S'|S\"|V|I-?\d|F-?\d|X|c[A-Za-z_])|[}\]]q\x00")


class CheckpointNotice(UserWarning):
    """Something a user should know about a checkpoint that still loaded (e.g. an estimated ``latent_avg``)."""


def _notify(notices: list[str] | None, message: str) -> None:
    if notices is None:
        warnings.warn(message, CheckpointNotice, stacklevel=3)
    else:
        notices.append(message)


def _short(exc: BaseException) -> str:
    """First line of an exception message, at most 160 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:160] + ("…" if len(text) > 160 else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------
# Format sniffing
# ----------------------------------------------------------------------------------
def sniff_format(path: str | Path) -> str:
    """Guess a checkpoint's container from its bytes (never from its name).

    Returns one of ``"missing"``, ``"directory"``, ``"empty"``, ``"zip"`` (``torch.save``'s
    default format), ``"torch-legacy"`` (``torch.save`` before PyTorch 1.6), ``"pickle"``
    (a plain Python pickle such as NVIDIA's ``.pkl``, protocols 0–5), ``"safetensors"`` or ``"unknown"``.
    """
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        return "empty"
    if head.startswith(b"PK\x03\x04"):  # a zip archive (torch.save's format), possibly truncated
        return "zip"
    if head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head[:32]:
        return "torch-legacy"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    # (after safetensors: its 8-byte header length can begin with bytes such as "(t")
    if _PICKLE_0_1.match(head):  # protocol 0/1 pickles have no header: recognise their usual first opcodes
        return "pickle"
    return "unknown"


# ----------------------------------------------------------------------------------
# Reading torch.save files safely
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


def _torch_load(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors for people."""
    kind = sniff_format(path)
    if kind == "missing":
        raise CheckpointError(f"checkpoint not found: {path}")
    if kind == "directory":
        raise CheckpointError(f"{path} is a folder, not a PyTorch checkpoint file")
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
    if kind == "pickle":
        raise CheckpointError(
            f"{path} is a plain Python pickle, not a PyTorch checkpoint; if it is an NVIDIA stylegan2-ada "
            f"network pickle, load it with load_nvidia_pkl (or give it to load_generator / the CLI as is)")
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file, not a PyTorch checkpoint; "
                              f"it needs a {CONFIG_NAME} beside it")
    if kind == "torch-legacy":  # five pickles (magic, version, system info, objects, storage keys), then data
        with open(path, "rb") as f:
            size = path.stat().st_size
            for _ in range(5):
                _prescan_pickle(f, size, str(path), rewind=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _refused_global_from(exc)
        if name:
            tail = "ganinv loads PyTorch checkpoints with weights_only=True and never runs their code"
            raise _refusal(name, str(path), "the file", tail) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is corrupt or in another "
                              f"format") from None
    except CheckpointError:
        raise
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, KeyError, ... on damaged files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint; it looks truncated or corrupt "
                              f"({_short(exc)})") from None


# ----------------------------------------------------------------------------------
# Describing state dicts
# ----------------------------------------------------------------------------------
def _keys_summary(keys: list[str], depth: int = 1) -> dict[str, int]:
    """Count keys by their first ``depth`` dotted components, e.g. ``{"style": 8, "convs": 120}``."""
    counts: dict[str, int] = collections.Counter(".".join(k.split(".")[:depth]) for k in keys)
    return dict(sorted(counts.items()))


def _summary_text(keys: list[str], depth: int = 1, limit: int = 10) -> str:
    summary = _keys_summary(keys, depth)
    items = [f"{k} ({n})" for k, n in list(summary.items())[:limit]]
    more = f", … ({len(summary) - limit} more prefixes)" if len(summary) > limit else ""
    return ", ".join(items) + more


def _guess_contents(keys: list[str]) -> str:
    """One sentence saying what a state dict appears to be."""
    keyset = set(keys)
    if any(k.startswith(("mapping.fc", "synthesis.b")) for k in keys):
        return ("It has NVIDIA's key names (mapping.*, synthesis.*): load NVIDIA's original .pkl instead of "
                "re-saved weights.")
    if any(k.startswith("encoder.") for k in keys):
        return "It looks like an encoder checkpoint (encoder.* keys)."
    if any(k.startswith("net.") for k in keys) and any(k.endswith("running_mean") for k in keys):
        return "It looks like a DCGAN-style network (net.* layers with BatchNorm), not a StyleGAN2 generator."
    if "final_linear.0.weight" in keyset or any(k.startswith("final_") for k in keys):
        return "It looks like a StyleGAN2 discriminator, not a generator."
    return ""


# ----------------------------------------------------------------------------------
# rosinality .pt
# ----------------------------------------------------------------------------------
_ROSINALITY_CORE = ("style.1.weight", "input.input", "conv1.conv.weight", "to_rgb1.conv.weight")


def _check_ndim(state: dict[str, Tensor], key: str, ndim: int, source: str) -> tuple[int, ...]:
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"{source}: {key} has shape {list(shape)}, expected {ndim} dimensions "
                              f"for a StyleGAN2 generator in rosinality's layout")
    return shape


def infer_rosinality_config(state: dict[str, Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Infer :class:`StyleGAN2Generator` constructor arguments from a rosinality state dict.

    * ``resolution = 2 ** (2 + n_convs / 2)`` from the number of ``convs.{i}`` layers;
    * widths: ``{4: conv1.conv.weight[1], 2**(k+3): convs.{2k}.conv.weight[1]}``
      (conv weights are ``[1, out, in, k, k]``);
    * ``n_mlp`` = number of ``style.{i}.weight``; ``z_dim, w_dim`` from ``style.1.weight`` ``[w_dim, z_dim]``;
    * ``img_channels`` from ``to_rgb1.conv.weight`` ``[1, C, in, 1, 1]``;
    * ``lr_mlp = 0.01`` (rosinality's fixed value; it is not recoverable from weights).

    Returns:
        a config dict with ``arch="stylegan2"`` usable by :func:`ganinv.modelfile.build`.

    Raises:
        CheckpointError: when the core StyleGAN2 keys are missing (saying what the dict looks like)
            or their shapes are implausible.
    """
    keys = list(state)
    missing = [k for k in _ROSINALITY_CORE if k not in state]
    if missing:
        guess = _guess_contents(keys)
        raise CheckpointError(
            f"{source} is not a StyleGAN2 generator in rosinality's layout: missing keys {', '.join(missing)}. "
            + (f"{guess} " if guess else "")
            + f"It holds {len(keys)} tensors under: {_summary_text(keys) or '(nothing)'}.")
    conv_idx = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"convs\.(\d+)\.conv\.weight", k))})
    n_convs = len(conv_idx)
    if n_convs == 0 or n_convs % 2 or conv_idx != list(range(n_convs)):
        raise CheckpointError(f"{source}: the synthesis layers convs.* are incomplete (found convs "
                              f"{conv_idx[:20]}); expected pairs convs.0 … convs.{{2L−5}}")
    resolution = 2 ** (2 + n_convs // 2)
    channels = {4: _check_ndim(state, "conv1.conv.weight", 5, source)[1]}
    for k in range(n_convs // 2):
        channels[2 ** (k + 3)] = _check_ndim(state, f"convs.{2 * k}.conv.weight", 5, source)[1]
    style_idx = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"style\.(\d+)\.weight", k))})
    if style_idx != list(range(1, len(style_idx) + 1)):
        raise CheckpointError(f"{source}: mapping layers style.* are not numbered 1…n (found {style_idx})")
    w_dim, z_dim = _check_ndim(state, "style.1.weight", 2, source)
    img_channels = _check_ndim(state, "to_rgb1.conv.weight", 5, source)[1]
    _check_ndim(state, "input.input", 4, source)
    cfg: dict[str, Any] = {
        "arch": "stylegan2", "resolution": resolution, "channels": {str(r): int(c) for r, c in channels.items()},
        "z_dim": int(z_dim), "w_dim": int(w_dim), "n_mlp": len(style_idx), "img_channels": int(img_channels),
        "lr_mlp": 0.01,
    }
    kernel = state.get("convs.0.conv.blur.kernel")
    if isinstance(kernel, Tensor) and kernel.dim() == 2 and tuple(kernel.shape) != (4, 4):
        rows = kernel.float().sum(1)
        cfg["blur_kernel"] = [float(v) for v in rows / rows.sum()]
    return cfg


def _build_stylegan2(cfg: dict[str, Any], source: str, state: dict[str, Tensor]) -> StyleGAN2Generator:
    """The generator ``cfg`` describes, once ``state``'s keys and shapes are known to fit it (see
    :func:`ganinv.modelfile.build_for`: a file whose layer names imply an enormous network allocates nothing)."""
    try:
        module = build_for(cfg, state, source)
    except InputError as exc:
        raise CheckpointError(f"{source}: the inferred architecture is invalid ({exc})") from None
    assert isinstance(module, StyleGAN2Generator)
    return module


def _set_w_avg(G: StyleGAN2Generator, latent_avg: Any, source: str, notices: list[str] | None) -> None:
    """Copy a stored ``latent_avg`` (``[w_dim]``, ``[1, w_dim]`` or per-layer ``[n, w_dim]``) into ``G.w_avg``."""
    if not isinstance(latent_avg, Tensor):
        raise CheckpointError(f"{source}: latent_avg is a {type(latent_avg).__name__}, expected a tensor")
    la = latent_avg.detach().float().cpu()
    if la.numel() == G.w_dim:
        la = la.reshape(G.w_dim)
    elif la.dim() >= 2 and la.shape[-1] == G.w_dim:
        la = la.reshape(-1, G.w_dim).mean(0)
        _notify(notices, f"{source}: latent_avg has shape {list(latent_avg.shape)} (one per layer); using its mean "
                         f"over layers as w_avg")
    else:
        raise CheckpointError(f"{source}: latent_avg has shape {list(latent_avg.shape)}, expected [{G.w_dim}]")
    if not torch.isfinite(la).all():
        raise CheckpointError(f"{source}: latent_avg contains NaN/Inf values")
    G.w_avg.copy_(la)


def _estimate_w_avg(G: StyleGAN2Generator, source: str, notices: list[str] | None, n: int) -> None:
    G.estimate_w_avg(n)
    _notify(notices, f"{source} stores no latent_avg; estimated the mean w from {n:,} mapped z (seed 0), "
                     f"which truncation and inversion start from")


#: Extra top-level key of rosinality-layout files written by ganinv (architecture options rosinality lacks).
GANINV_EXTRA_KEY = "ganinv"


def _extract_rosinality(obj: Any, source: str) -> tuple[dict[str, Tensor], Any, str, list[str]]:
    """Pick the generator state dict out of a loaded rosinality-style file.

    Returns ``(state, latent_avg or None, format description, notes)``.
    """
    notes: list[str] = []
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a dict of weights; "
                              f"it is not a StyleGAN2 checkpoint")
    top = [str(k) for k in obj]
    if isinstance(obj.get("g_ema"), dict):
        state, latent_avg = obj["g_ema"], obj.get("latent_avg")
        if any(k in obj for k in ("g", "d", "g_optim", "d_optim")):
            kind = "rosinality training checkpoint"
            notes.append(f"{source} is a training checkpoint: using g_ema (the moving-average generator); "
                         f"the discriminator and optimiser states are ignored")
        else:
            kind = "rosinality generator"
    elif isinstance(obj.get("state_dict"), dict) and any(str(k).startswith("decoder.") for k in obj["state_dict"]):
        state = {k[len("decoder."):]: v for k, v in obj["state_dict"].items() if k.startswith("decoder.")}
        latent_avg = obj.get("latent_avg")
        kind = "pSp/e4e encoder checkpoint"
        notes.append(f"{source} is an encoder checkpoint (pSp/e4e layout): using its StyleGAN2 decoder; "
                     f"the encoder is ignored")
    elif obj and all(isinstance(v, Tensor) for v in obj.values()):
        state = dict(obj)
        latent_avg = state.pop("latent_avg", state.pop("module.latent_avg", None))
        kind = "state dict"
    else:
        raise CheckpointError(
            f"{source} is not a StyleGAN2 generator checkpoint: its top-level keys are "
            f"{', '.join(top[:12]) or '(none)'}; expected 'g_ema' (rosinality) or a state dict of tensors")
    bad = [str(k) for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: the generator weights contain non-tensor entries: {', '.join(bad[:8])}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append(f"{source}: stripped the 'module.' prefix that DataParallel adds")
    return state, latent_avg, kind, notes


def load_rosinality(path: str | Path, *, notices: list[str] | None = None,
                    w_avg_samples: int = W_AVG_SAMPLES) -> StyleGAN2Generator:
    """Load a rosinality ``stylegan2-pytorch`` checkpoint as a :class:`StyleGAN2Generator`.

    Accepts ``{"g_ema": state_dict, "latent_avg": [w_dim]}`` (converter output), training
    checkpoints ``{g, d, g_ema, g_optim, d_optim, args, ada_aug_p}`` (``g_ema`` is used),
    pSp/e4e checkpoints (``state_dict`` ``decoder.*``) and bare state dicts (optionally with
    a ``latent_avg`` entry). The architecture is inferred by :func:`infer_rosinality_config`
    and the weights are loaded strictly. Without a stored ``latent_avg``, ``w_avg`` is
    estimated from ``w_avg_samples`` mapped z and a notice says so.

    Args:
        path: the ``.pt`` / ``.pth`` file (read with ``torch.load(weights_only=True)``).
        notices: list that receives notices for the user; ``None`` issues them as warnings.
        w_avg_samples: number of z used when ``w_avg`` must be estimated.

    Returns:
        the generator on CPU, in eval mode, with gradients disabled.

    Raises:
        CheckpointError: missing/corrupt/unsafe file, or weights that do not form a StyleGAN2 generator.
    """
    path = Path(path)
    obj = _torch_load(path)
    state, latent_avg, _kind, notes = _extract_rosinality(obj, str(path))
    cfg = infer_rosinality_config(state, str(path))
    extra = obj.get(GANINV_EXTRA_KEY) if isinstance(obj, dict) else None
    if isinstance(extra, dict) and extra.get("output_activation") == "tanh":
        cfg["output_activation"] = "tanh"  # written by save_rosinality; see there
    G = _build_stylegan2(cfg, str(path), state)
    load_state_strict(G, state, str(path))
    for note in notes:
        _notify(notices, note)
    if latent_avg is not None:
        _set_w_avg(G, latent_avg, str(path), notices)
    else:
        _estimate_w_avg(G, str(path), notices, w_avg_samples)
    return G.eval().requires_grad_(False)


def save_rosinality(G: StyleGAN2Generator, path: str | Path) -> Path:
    """Write ``G`` as rosinality's converter does: ``{"g_ema": state_dict, "latent_avg": w_avg [w_dim]}``.

    The file is written atomically with ``torch.save`` and loads back with
    :func:`load_rosinality` (or rosinality's own code, for the default architecture).
    A ``tanh`` output activation, which rosinality's format cannot express, is recorded under
    the extra top-level key ``"ganinv"`` (ignored by rosinality's loader, read by ours).
    """
    if not isinstance(G, StyleGAN2Generator):
        raise InputError(f"save_rosinality needs a StyleGAN2Generator, got {type(G).__name__}")
    path = Path(path)
    payload = {
        "g_ema": {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()},
        "latent_avg": G.w_avg.detach().cpu().clone(),
    }
    if G.output_activation:
        payload[GANINV_EXTRA_KEY] = {"output_activation": G.output_activation}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


# ----------------------------------------------------------------------------------
# NVIDIA stylegan2-ada-pytorch .pkl: a restricted unpickler
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
        raise CheckpointError(f"{self.source} uses pickle persistent ids (like a torch.save file), which NVIDIA "
                              f"network pickles do not; it is not an NVIDIA .pkl")


class _CappedReader:
    """A file whose ``read(n)`` never asks for more than the bytes left (``genops`` would otherwise allocate the
    length a crafted opcode declares before finding out the file is shorter)."""

    def __init__(self, f: Any, size: int) -> None:
        self.f, self.size = f, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.f.readline(65536)

    def tell(self) -> int:
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


def read_nvidia_pkl(path: str | Path) -> tuple[Any, list[str]]:
    """Unpickle an NVIDIA ``.pkl`` with :class:`NvidiaUnpickler`.

    Returns:
        ``(obj, globals)``: the top-level object (normally a dict ``G, D, G_ema,
        training_set_kwargs, augment_pipe`` whose networks are :class:`PersistentRecord`)
        and the sorted list of pickle globals it referenced.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file; or a refused global.
    """
    path = Path(path)
    kind = sniff_format(path)
    if kind == "missing":
        raise CheckpointError(f"checkpoint not found: {path}")
    if kind == "directory":
        raise CheckpointError(f"{path} is a folder, not an NVIDIA .pkl file")
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
    if kind in ("zip", "torch-legacy"):
        raise CheckpointError(f"{path} is a PyTorch torch.save checkpoint, not an NVIDIA network pickle; "
                              f"load it with load_rosinality (or give it to load_generator / the CLI as is)")
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file, not an NVIDIA network pickle")
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


def _pick_nvidia_generator(obj: Any, source: str, notices: list[str] | None) -> PersistentRecord:
    if isinstance(obj, PersistentRecord):
        return obj
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}; expected NVIDIA's dict with G, D and G_ema")
    for name in ("G_ema", "G"):
        if isinstance(obj.get(name), PersistentRecord):
            if name == "G":
                _notify(notices, f"{source} has no G_ema; using G (the non-averaged generator)")
            return obj[name]
    keys = ", ".join(str(k) for k in list(obj)[:12]) or "(none)"
    raise CheckpointError(f"{source} holds no NVIDIA generator network (top-level keys: {keys}); expected G_ema or G")


def _as_float(value: Any) -> float | None:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    return None


def _check_nvidia_supported(record: PersistentRecord, keys: list[str], source: str) -> None:
    """Refuse StyleGAN3, conditional and non-'skip' generators with one clear sentence each."""
    cls = record.class_name
    kw = record.init_kwargs
    if "stylegan3" in cls or any(re.match(r"synthesis\.(input\.|L\d+_)", k) for k in keys):
        raise CheckpointError(f"{source} holds a StyleGAN3 generator ({cls or 'synthesis.input / synthesis.L*'}); "
                              f"ganinv converts only StyleGAN2 generators (stylegan2-ada-pytorch, or "
                              f"stylegan3's networks_stylegan2)")
    c_dim = kw.get("c_dim", record.state.get("c_dim", 0))
    if (isinstance(c_dim, int) and c_dim > 0) or any(k.startswith("mapping.embed.") for k in keys):
        raise CheckpointError(f"{source} holds a class-conditional generator (c_dim={c_dim}); ganinv supports "
                              f"only unconditional generators")
    synth = kw.get("synthesis_kwargs") if isinstance(kw.get("synthesis_kwargs"), dict) else {}
    arch = synth.get("architecture", "skip")
    if arch != "skip" or any(".skip." in k for k in keys):
        raise CheckpointError(f"{source} uses the '{arch}' synthesis architecture; ganinv supports StyleGAN2's "
                              f"default 'skip' generator only")
    if "synthesis.b4.const" not in keys or not any(k.startswith("mapping.fc") for k in keys):
        raise CheckpointError(f"{source}: the network {cls or '(unnamed)'} is not a StyleGAN2 generator "
                              f"(no synthesis.b4.const / mapping.fc*); it holds {_summary_text(keys, 2)}")


# NVIDIA entries the conversion drops on purpose (they are not used by the computation that remains):
#   synthesis.b4.resample_filter                 — b4 never upsamples;
#   synthesis.b{R}.conv1.resample_filter, synthesis.b4.conv1.resample_filter — non-upsampling layers never filter.
# Every other NVIDIA entry must be consumed, or the conversion fails listing it.
def nvidia_to_rosinality(nv: dict[str, Tensor], source: str = "checkpoint",
                         notices: list[str] | None = None) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """Convert NVIDIA StyleGAN2 generator tensors to rosinality's key layout.

    Mapping (R = 4·2^i):

    * ``mapping.fc{j}.{weight,bias}`` → ``style.{j+1}.*``; ``mapping.w_avg`` → returned ``latent_avg`` ``[w_dim]``;
    * ``synthesis.b4.const`` ``[C,4,4]`` → ``input.input`` ``[1,C,4,4]``;
    * ``synthesis.b4.conv1`` → ``conv1``; ``synthesis.bR.conv{c}`` → ``convs.{2i−2+c}``;
      ``weight`` ``[O,I,3,3]`` → ``conv.weight`` ``[1,O,I,3,3]``, ``bias`` → ``activate.bias``,
      ``affine`` → ``conv.modulation``, ``noise_strength`` ``[]`` → ``noise.weight`` ``[1]``,
      ``noise_const`` ``[r,r]`` → ``noises.noise_{2i−1+c}`` ``[1,1,r,r]`` (``noise_0`` for b4),
      ``conv0.resample_filter`` × 4 → ``convs.{2i−2}.conv.blur.kernel``;
    * ``synthesis.b4.torgb`` → ``to_rgb1``, ``synthesis.bR.torgb`` → ``to_rgbs.{i−1}``
      (``bias`` ``[C]`` → ``[1,C,1,1]``),
      ``synthesis.bR.resample_filter`` × 4 → ``to_rgbs.{i−1}.upsample.kernel``.

    Returns:
        ``(state, latent_avg or None, config)`` where ``config`` has ``arch="stylegan2"``
        (``lr_mlp`` is left at 0.01; :func:`load_nvidia_pkl` overrides it from the pickle).

    Raises:
        CheckpointError: listing NVIDIA keys that are missing or that have no rosinality counterpart.
    """
    used: set[str] = set()
    missing: list[str] = []
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor | None:
        if key not in nv:
            missing.append(key)
            return None
        used.add(key)
        return nv[key]

    def put(key: str, value: Tensor | None, fn: Callable[[Tensor], Tensor] = lambda t: t) -> None:
        if value is not None:
            out[key] = fn(value)

    fc_idx = sorted(int(m.group(1)) for k in nv if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if fc_idx != list(range(len(fc_idx))) or not fc_idx:
        raise CheckpointError(f"{source}: mapping layers mapping.fc* are not numbered 0…n−1 (found {fc_idx})")
    for j in fc_idx:
        put(f"style.{j + 1}.weight", take(f"mapping.fc{j}.weight"))
        put(f"style.{j + 1}.bias", take(f"mapping.fc{j}.bias"))
    w_avg = take("mapping.w_avg") if "mapping.w_avg" in nv else None

    res_list = sorted({int(m.group(1)) for k in nv if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    expected = [2 ** i for i in range(2, 2 + len(res_list))]
    if res_list != expected or len(res_list) < 2:
        raise CheckpointError(f"{source}: synthesis blocks are {res_list}; expected b4, b8, … up to the resolution")

    def layer(src: str, dst: str, noise_idx: int, res: int, upsample: bool) -> None:
        put(f"{dst}.conv.weight", take(f"{src}.weight"), lambda t: t.unsqueeze(0))
        put(f"{dst}.conv.modulation.weight", take(f"{src}.affine.weight"))
        put(f"{dst}.conv.modulation.bias", take(f"{src}.affine.bias"))
        put(f"{dst}.activate.bias", take(f"{src}.bias"))
        if f"{src}.noise_strength" in nv:
            put(f"{dst}.noise.weight", take(f"{src}.noise_strength"), lambda t: t.reshape(1))
            put(f"noises.noise_{noise_idx}", take(f"{src}.noise_const"), lambda t: t.reshape(1, 1, *t.shape[-2:]))
        else:
            out[f"{dst}.noise.weight"] = torch.zeros(1)
            out[f"noises.noise_{noise_idx}"] = torch.zeros(1, 1, res, res)
            _notify(notices, f"{source}: {src} has no noise input (use_noise=False); its noise strength is set to 0")
        if upsample:
            put(f"{dst}.conv.blur.kernel", take(f"{src}.resample_filter"), lambda t: t * 4)
        elif f"{src}.resample_filter" in nv:
            used.add(f"{src}.resample_filter")

    def torgb(src: str, dst: str, filter_key: str | None) -> None:
        put(f"{dst}.conv.weight", take(f"{src}.weight"), lambda t: t.unsqueeze(0))
        put(f"{dst}.conv.modulation.weight", take(f"{src}.affine.weight"))
        put(f"{dst}.conv.modulation.bias", take(f"{src}.affine.bias"))
        put(f"{dst}.bias", take(f"{src}.bias"), lambda t: t.reshape(1, -1, 1, 1))
        if filter_key is not None:
            put(f"{dst}.upsample.kernel", take(filter_key), lambda t: t * 4)

    put("input.input", take("synthesis.b4.const"), lambda t: t.unsqueeze(0))
    layer("synthesis.b4.conv1", "conv1", 0, 4, upsample=False)
    torgb("synthesis.b4.torgb", "to_rgb1", None)
    if "synthesis.b4.resample_filter" in nv:
        used.add("synthesis.b4.resample_filter")
    for i, res in enumerate(res_list[1:], start=1):
        b = f"synthesis.b{res}"
        layer(f"{b}.conv0", f"convs.{2 * i - 2}", 2 * i - 1, res, upsample=True)
        layer(f"{b}.conv1", f"convs.{2 * i - 1}", 2 * i, res, upsample=False)
        torgb(f"{b}.torgb", f"to_rgbs.{i - 1}", f"{b}.resample_filter")

    leftover = sorted(set(nv) - used)
    if missing or leftover:
        lines = [f"{source}: the NVIDIA generator does not convert to StyleGAN2 (rosinality layout):"]
        for title, items in (("missing NVIDIA keys", missing), ("NVIDIA keys with no counterpart", leftover)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:12])
                             + (f", … ({len(items) - 12} more)" if len(items) > 12 else ""))
        raise CheckpointError("\n".join(lines))

    widths = {4: int(nv["synthesis.b4.const"].shape[0])}
    for res in res_list[1:]:
        widths[res] = int(nv[f"synthesis.b{res}.conv1.weight"].shape[0])
    first, last = nv["mapping.fc0.weight"], nv[f"mapping.fc{fc_idx[-1]}.weight"]
    if first.dim() != 2 or last.dim() != 2:
        raise CheckpointError(f"{source}: mapping.fc weights must be 2-D, got {list(first.shape)}")
    cfg: dict[str, Any] = {
        "arch": "stylegan2", "resolution": res_list[-1], "channels": {str(r): c for r, c in widths.items()},
        "z_dim": int(first.shape[1]), "w_dim": int(last.shape[0]), "n_mlp": len(fc_idx),
        "img_channels": int(nv["synthesis.b4.torgb.weight"].shape[0]), "lr_mlp": 0.01,
    }
    kernel = nv.get(f"synthesis.b{res_list[1]}.conv0.resample_filter")
    if isinstance(kernel, Tensor) and kernel.dim() == 2 and tuple(kernel.shape) != (4, 4):
        rows = kernel.float().sum(1)
        cfg["blur_kernel"] = [float(v) for v in rows / rows.sum()]
    return out, w_avg, cfg


def _nvidia_lr_mlp(record: PersistentRecord) -> float:
    """Mapping learning-rate multiplier: ``mapping.fc0.bias_gain``, else ``mapping_kwargs.lr_multiplier``, else 0.01."""
    mapping = record.child("mapping")
    fc0 = mapping.child("fc0") if mapping is not None else None
    if fc0 is not None and (gain := _as_float(fc0.state.get("bias_gain"))) is not None and gain > 0:
        return gain
    mkw = record.init_kwargs.get("mapping_kwargs")
    if isinstance(mkw, dict) and (lr := _as_float(mkw.get("lr_multiplier"))) is not None and lr > 0:
        return lr
    return 0.01


def _convert_nvidia(obj: Any, source: str, notices: list[str] | None
                    ) -> tuple[PersistentRecord, dict[str, Tensor], Tensor | None, dict[str, Any]]:
    record = _pick_nvidia_generator(obj, source, notices)
    nv = _flatten_record(record, source)
    _check_nvidia_supported(record, list(nv), source)
    state, w_avg, cfg = nvidia_to_rosinality(nv, source, notices)
    cfg["lr_mlp"] = _nvidia_lr_mlp(record)
    kw = record.init_kwargs
    for name in ("z_dim", "w_dim", "img_resolution", "img_channels"):
        ours = cfg["resolution"] if name == "img_resolution" else cfg[name]
        if isinstance(kw.get(name), int) and kw[name] != ours:
            raise CheckpointError(f"{source}: the generator was built with {name}={kw[name]} but its weights "
                                  f"imply {ours}; the file is inconsistent")
    synth = kw.get("synthesis_kwargs")
    clamp = synth.get("conv_clamp") if isinstance(synth, dict) else None
    if clamp is not None:
        _notify(notices, f"{source}: NVIDIA's conv_clamp={clamp} is not applied (ganinv runs in fp32); images "
                         f"are the same unless activations exceed ±{clamp}")
    return record, state, w_avg, cfg


def load_nvidia_pkl(path: str | Path, *, notices: list[str] | None = None,
                    w_avg_samples: int = W_AVG_SAMPLES) -> Generator:
    """Load an NVIDIA ``stylegan2-ada-pytorch`` / ``stylegan3`` network pickle without running its code.

    A StyleGAN3 generator (``training.networks_stylegan3``, config T or R) is built by
    :func:`ganinv.generators.nvidia_stylegan3.stylegan3_from_record`; everything below describes StyleGAN2.

    The file is read by :class:`NvidiaUnpickler`; ``G_ema`` (else ``G``) is flattened to
    NVIDIA key names, converted with :func:`nvidia_to_rosinality` and strictly loaded into a
    :class:`StyleGAN2Generator`; ``mapping.w_avg`` becomes ``G.w_avg``. The mapping's
    learning-rate multiplier is read from the pickle. NVIDIA's ``conv_clamp`` (activation
    clamping used for fp16 speed) is not applied and fp16 layers run in fp32; images agree
    up to the demodulation epsilon unless activations exceed the clamp.

    Args:
        path: the ``.pkl`` file.
        notices: list that receives notices; ``None`` issues them as warnings.
        w_avg_samples: z samples used if the pickle lacks ``mapping.w_avg``.

    Returns:
        the generator on CPU, in eval mode, with gradients disabled.

    Raises:
        CheckpointError: unsafe pickle (naming the refused global), corrupt file, StyleGAN3,
            class-conditional or otherwise unsupported generator, or mismatched weights.
    """
    path = Path(path)
    source = str(path)
    obj, _globals = read_nvidia_pkl(path)
    from ganinv.generators.nvidia_stylegan3 import is_stylegan3_record, stylegan3_from_record

    record = _pick_nvidia_generator(obj, source, [])  # notices come from the conversion below
    if is_stylegan3_record(record):
        return stylegan3_from_record(_pick_nvidia_generator(obj, source, notices), source, notices,
                                     w_avg_samples).eval().requires_grad_(False)
    _record, state, w_avg, cfg = _convert_nvidia(obj, source, notices)
    G = _build_stylegan2(cfg, source, state)
    load_state_strict(G, state, source)
    if w_avg is not None:
        _set_w_avg(G, w_avg, source, notices)
    else:
        _estimate_w_avg(G, source, notices, w_avg_samples)
    return G.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------
def _bundled_names() -> list[str]:
    from ganinv import zoo

    return zoo.available()


_DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


def _load_safetensors_with_config(path: Path) -> Generator:
    folder = path.parent
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{path} is a safetensors file without a {CONFIG_NAME} beside it; ganinv needs the "
                              f"config to know the architecture (save models with ganinv's save_pretrained)")
    if path.name == _DISCRIMINATOR_WEIGHTS and "discriminator" in read_config(folder):
        raise CheckpointError(f"{path} holds the discriminator of the model in {folder}, not a generator; "
                              f"give the folder (or its {WEIGHTS_NAME}) instead")
    module = load_pretrained(folder, weights_name=path.name)
    return _as_generator(module, str(path))


def _as_generator(module: Any, source: str) -> Generator:
    if not isinstance(module, Generator):
        raise CheckpointError(f"{source} holds a {getattr(module, 'arch', type(module).__name__)} model, "
                              f"not a generator")
    return module


def load_generator(spec: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, list[str]]:
    """Load a generator from a bundled name or a file/folder, whatever its format.

    Resolution order: a bundled model name (:func:`ganinv.zoo.available`; write ``./name`` to
    mean a local path of the same name), then a path: a ganinv model folder, a
    ``.safetensors`` file with a sibling ``config.json``, a ``torch.save`` file
    (rosinality / pSp layout, :func:`load_rosinality`) or a plain pickle (NVIDIA,
    :func:`load_nvidia_pkl`). The format is decided by the file's bytes, not its suffix.

    Returns:
        ``(G, notices)``: the generator on ``device`` in eval mode with gradients disabled,
        and the notices a user should see (possibly empty).

    Raises:
        UnknownModelError: ``spec`` is neither a bundled name nor an existing path (lists bundled models).
        CheckpointError: the file is corrupt, unsafe or not a generator.
        InputError: ``device`` is not usable.
    """
    notices: list[str] = []
    spec_str = str(spec)
    names = _bundled_names()
    if isinstance(spec, str) and spec in names:
        from ganinv import zoo

        G = _as_generator(zoo.load(spec), f"bundled model {spec!r}")
    else:
        path = Path(spec_str).expanduser()
        kind = sniff_format(path)
        if kind == "missing":
            raise UnknownModelError(f"no bundled model or file named {spec_str!r}; bundled models: "
                                    f"{', '.join(names) or '(none)'}; or give a path to a ganinv model folder, "
                                    f"a rosinality .pt or an NVIDIA .pkl")
        if kind == "directory":
            if not (path / CONFIG_NAME).is_file():
                raise CheckpointError(f"{path} is a folder without {CONFIG_NAME}; a ganinv model folder holds "
                                      f"{CONFIG_NAME} and {WEIGHTS_NAME}")
            G = _as_generator(load_pretrained(path), str(path))
        elif kind == "safetensors":
            G = _load_safetensors_with_config(path)
        elif kind in ("zip", "torch-legacy"):
            G = load_rosinality(path, notices=notices)
        elif kind == "pickle":
            G = load_nvidia_pkl(path, notices=notices)
        elif kind == "empty":
            raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
        else:
            raise CheckpointError(f"{path} is not a checkpoint ganinv recognises (expected a ganinv model folder, "
                                  f"a .safetensors file with config.json, a PyTorch .pt or an NVIDIA .pkl)")
    try:
        G = G.to(device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise InputError(f"cannot move the generator to device {str(device)!r}: {_short(exc)}") from None
    G.eval().requires_grad_(False)
    return G, notices


# ----------------------------------------------------------------------------------
# Inspection (ganinv info)
# ----------------------------------------------------------------------------------
def _count_parameters(cfg: dict[str, Any]) -> int | None:
    """Parameter count of the module a config describes, built on the meta device (no memory, no weights)."""
    try:
        with torch.device("meta"):
            return int(sum(p.numel() for p in build(cfg).parameters()))
    except GaninvError:
        return None


def _arch_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    fields = {k: _jsonable(cfg.get(k)) for k in ("arch", "resolution", "z_dim", "w_dim", "n_mlp", "img_channels")}
    if isinstance(cfg.get("channels"), dict):  # a stranger's config.json may hold anything here: shown as it is
        fields["channels"] = {str(k): int(v) if isinstance(v, int) else _jsonable(v)
                              for k, v in cfg["channels"].items()}
    return fields


def _is_generator_arch(arch: Any) -> bool:
    cls = architectures().get(arch) if isinstance(arch, str) else None
    return cls is not None and issubclass(cls, Generator)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.number):
        return value.item()
    if isinstance(value, dict) and depth < 4:
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < 4:
        return [_jsonable(v, depth + 1) for v in value]
    return repr(value)[:80]


def _state_fields(state: dict[str, Tensor], depth: int = 1) -> dict[str, Any]:
    keys = list(state)
    return {"num_keys": len(keys), "num_values": int(sum(t.numel() for t in state.values())),
            "keys_summary": _keys_summary(keys, depth)}


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """Describe a checkpoint without running any code from it (for ``ganinv info``).

    Returns a JSON-serialisable dict with ``path``, ``format`` (``"ganinv model folder"``,
    ``"safetensors"``, ``"rosinality generator"``, ``"rosinality training checkpoint"``,
    ``"pSp/e4e encoder checkpoint"``, ``"state dict"``, ``"NVIDIA network pickle"`` or
    ``"unknown"``), ``arch`` (``"stylegan2"``, ``"dcgan"``, … or ``None``), ``resolution``,
    ``z_dim``, ``w_dim``, ``n_mlp``, ``img_channels``, ``channels`` (when known),
    ``num_parameters`` (``None`` when the architecture is unknown), ``num_values`` (all
    tensor elements), ``num_keys``, ``keys_summary`` (key prefix → count),
    ``latent_avg`` (bool), ``loadable`` (whether :func:`load_generator` accepts it) with
    ``problem`` (why not) and ``notes``; for NVIDIA pickles also ``pickle_globals``,
    ``networks`` (name → class) and ``training_set_kwargs``.

    Raises:
        CheckpointError: missing, empty, corrupt or unsafe file (naming the refused global).
    """
    path = Path(path)
    kind = sniff_format(path)
    info: dict[str, Any] = {"path": str(path), "format": "unknown", "arch": None, "resolution": None,
                            "z_dim": None, "w_dim": None, "n_mlp": None, "img_channels": None,
                            "num_parameters": None, "num_values": 0, "num_keys": 0, "keys_summary": {},
                            "latent_avg": False, "loadable": False, "problem": None, "notes": []}
    if kind == "missing":
        raise CheckpointError(f"checkpoint not found: {path}")
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
    if kind in ("directory", "safetensors"):
        folder = path if kind == "directory" else path.parent
        weights = folder / WEIGHTS_NAME if kind == "directory" else path
        if kind == "directory" and not (folder / CONFIG_NAME).is_file():
            raise CheckpointError(f"{path} is a folder without {CONFIG_NAME}; a ganinv model folder holds "
                                  f"{CONFIG_NAME} and {WEIGHTS_NAME}")
        info["format"] = "ganinv model folder" if kind == "directory" else "safetensors"
        state = read_safetensors(weights)
        info["latent_avg"] = "latent_avg" in state
        state.pop("latent_avg", None)
        info.update(_state_fields(state))
        if (folder / CONFIG_NAME).is_file():
            cfg_file = read_config(folder)
            key = "discriminator" if kind == "safetensors" and path.name == _DISCRIMINATOR_WEIGHTS \
                and isinstance(cfg_file.get("discriminator"), dict) else "config"
            cfg = cfg_file[key]
            info.update(_arch_fields(cfg))
            info["name"], info["kind"] = cfg_file.get("name"), cfg_file.get("kind")
            info["num_parameters"] = _count_parameters(cfg)
            info["loadable"] = key == "config" and _is_generator_arch(cfg.get("arch"))
            if not info["loadable"]:
                info["problem"] = f"it is a {cfg.get('arch')} model, not a generator"
        else:
            info["problem"] = f"no {CONFIG_NAME} beside it, so the architecture is unknown"
        return info
    if kind in ("zip", "torch-legacy"):
        obj = _torch_load(path)
        try:
            state, latent_avg, fmt, notes = _extract_rosinality(obj, str(path))
        except CheckpointError as exc:
            info["problem"] = str(exc)
            if isinstance(obj, dict):
                info["top_level_keys"] = [str(k) for k in list(obj)[:20]]
            return info
        info["format"], info["notes"] = fmt, notes
        info["latent_avg"] = latent_avg is not None
        info.update(_state_fields(state))
        try:
            cfg = infer_rosinality_config(state, str(path))
        except CheckpointError as exc:
            info["problem"] = str(exc)
            return info
        info.update(_arch_fields(cfg))
        info["num_parameters"] = _count_parameters(cfg)
        info["loadable"] = True
        if latent_avg is None:
            info["notes"].append(f"no latent_avg stored: it will be estimated from {W_AVG_SAMPLES:,} mapped z on load")
        return info
    if kind == "pickle":
        obj, globals_seen = read_nvidia_pkl(path)
        info["format"] = "NVIDIA network pickle"
        info["pickle_globals"] = globals_seen
        if isinstance(obj, dict):
            info["networks"] = {str(k): v.class_name for k, v in obj.items() if isinstance(v, PersistentRecord)}
            if isinstance(obj.get("training_set_kwargs"), dict):
                info["training_set_kwargs"] = _jsonable(obj["training_set_kwargs"])
        notes: list[str] = []
        try:
            record = _pick_nvidia_generator(obj, str(path), notes)
        except CheckpointError as exc:
            info["problem"] = str(exc)
            return info
        nv = _flatten_record(record, str(path))
        info.update(_state_fields(nv, depth=2))
        info["latent_avg"] = "mapping.w_avg" in nv
        info["generator_class"] = record.class_name
        info["init_kwargs"] = _jsonable(record.init_kwargs)
        from ganinv.generators.nvidia_stylegan3 import is_stylegan3_record, stylegan3_from_record

        if is_stylegan3_record(record):
            try:
                G3 = stylegan3_from_record(record, str(path), notes)
            except CheckpointError as exc:
                info["problem"] = str(exc)
                info["arch"] = "stylegan3"
                return info
            info.update(_arch_fields(G3.config()))
            info["num_parameters"] = sum(p.numel() for p in G3.parameters())
            info["loadable"] = True
            info["notes"] = notes
            return info
        try:
            _, _, _, cfg = _convert_nvidia(obj, str(path), notes)
        except CheckpointError as exc:
            info["problem"] = str(exc)
            info["arch"] = "stylegan3" if "stylegan3" in record.class_name or any(
                re.match(r"synthesis\.(input\.|L\d+_)", k) for k in nv) else None
            return info
        info.update(_arch_fields(cfg))
        info["num_parameters"] = _count_parameters(cfg)
        info["loadable"] = True
        info["notes"] = notes
        return info
    raise CheckpointError(f"{path} is not a checkpoint ganinv recognises (expected a ganinv model folder, "
                          f"a .safetensors file, a PyTorch .pt or an NVIDIA .pkl)")
