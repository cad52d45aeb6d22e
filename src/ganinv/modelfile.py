"""ganinv's own model format: a folder with ``config.json`` + ``model.safetensors``.

``config.json`` holds ``{"format": "ganinv", "name", "kind", "config": {...constructor
arguments, "arch"...}, "meta": {...}}``; the safetensors file holds the module's
``state_dict`` (plus ``latent_avg`` for StyleGAN2 generators). Loading never executes code,
and keys and shapes are checked strictly.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ganinv.errors import CheckpointError, GaninvError
from ganinv.filemode import match_ordinary_mode

from ganinv.modelconfig import (CONFIG_NAME, FORMAT, SUMMARY_KEY, WEIGHTS_NAME, module_summary,  # noqa: F401
                                read_config)


def architectures() -> dict[str, type[nn.Module]]:
    """Architecture name → class, for every module ganinv can build from a config."""
    from ganinv.classifier import DigitClassifier
    from ganinv.encoders.hyper import HyperNetwork
    from ganinv.encoders.network import PyramidEncoder
    from ganinv.generators.dcgan import DCGANDiscriminator, DCGANGenerator
    from ganinv.generators.stylegan2 import StyleGAN2Generator
    from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
    from ganinv.generators.stylegan3 import StyleGAN3Generator

    return {c.arch: c for c in (StyleGAN2Generator, StyleGAN3Generator, DCGANGenerator, DCGANDiscriminator,
                                     StyleGAN2Discriminator, DigitClassifier, PyramidEncoder, HyperNetwork)}


#: Largest whole number a model config may hold (sizes, counts, resolutions): real architectures stay far
#: below it, and a stranger's config.json with ``"n_mlp": 10**9`` must not make ganinv build a billion layers.
MAX_CONFIG_INT = 2**16

# What a constructor raises on arguments of the wrong kind or size.
_BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
                 AssertionError, RuntimeError, NotImplementedError, RecursionError, MemoryError)


def _check_values(value: Any, where: str, depth: int = 0) -> None:
    """Refuse config values no architecture has: huge whole numbers, deep nesting, long lists."""
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_CONFIG_INT:
            raise CheckpointError(f"{where} = {value} is implausibly large for a model setting (limit "
                                  f"{MAX_CONFIG_INT:,}); the config is corrupt or not ganinv's")
        return
    if depth > 4:
        raise CheckpointError(f"{where} is nested too deeply for a model setting")
    if isinstance(value, dict | list | tuple):
        if len(value) > 256:
            raise CheckpointError(f"{where} has {len(value)} entries, too many for a model setting")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            _check_values(v, f"{where}.{k}", depth + 1)
        return
    raise CheckpointError(f"{where} is a {type(value).__name__}, not a plain setting")


def build(config: dict[str, Any]) -> nn.Module:
    """Instantiate a module from a config dict containing ``arch`` and constructor arguments.

    Raises:
        CheckpointError: unknown architecture, or arguments it does not take (wrong names, kinds or sizes).
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"a model config must be an object, got {type(config).__name__}")
    cfg = dict(config)
    arch = cfg.pop("arch", None)
    archs = architectures()
    if not isinstance(arch, str) or arch not in archs:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(sorted(archs))}")
    _check_values(cfg, "config")
    try:
        for key in ("blur_kernel", "latent_shape"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        return archs[arch](**cfg)
    except GaninvError:
        raise
    except _BUILD_ERRORS as exc:
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(f"config for {arch!r} has invalid arguments ({type(exc).__name__}: {text})") from None


def _mismatch(expected: dict[str, tuple[int, ...]], state: dict[str, Tensor], source: str, arch: str) -> None:
    """Raise a CheckpointError listing missing/unexpected keys and shape mismatches, if any."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: checkpoint {list(state[k].shape)} vs model {list(expected[k])}"
                  for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k])]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not match the {arch} architecture:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:12]) + (f", … ({len(items) - 12} more)" if len(items) > 12 else "")
                lines.append(f"  {title} ({len(items)}): {shown}")
        raise CheckpointError("\n".join(lines))


def build_skeleton(config: dict[str, Any], source: str) -> nn.Module:
    """The module ``config`` describes, built on PyTorch's meta device: no memory, no weights, just its
    structure (state-dict keys and shapes); config errors are raised here, naming ``source``."""
    try:
        with torch.device("meta"):
            return build(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def build_for(config: dict[str, Any], state: dict[str, Tensor], source: str,
              skeleton: nn.Module | None = None) -> nn.Module:
    """Build the module ``config`` describes, once ``state`` is known to fit it: its meta-device skeleton
    (:func:`build_skeleton`) is compared with ``state`` key by key and shape by shape first, so a config that asks
    for more than the weights file holds fails without allocating anything."""
    skeleton = skeleton if skeleton is not None else build_skeleton(config, source)
    _mismatch({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, state, source,
              getattr(skeleton, "arch", type(skeleton).__name__))
    return build(config)


def load_state_strict(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module`` requiring exactly the same keys and shapes.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    expected = module.state_dict()
    _mismatch({k: tuple(v.shape) for k, v in expected.items()}, state, source,
              getattr(module, "arch", type(module).__name__))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source} contains NaN/Inf values in: {', '.join(bad[:8])}")
    try:
        module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    except (RuntimeError, TypeError) as exc:  # e.g. a complex tensor where the model has a real one
        raise CheckpointError(f"{source}: the weights cannot be loaded ({str(exc).splitlines()[0][:160]})") from None


def _io_error(exc: BaseException, path: Path) -> OSError | None:
    """``exc`` as an :class:`OSError` about ``path`` when it is a failure of the disk: an OSError (renamed to the
    destination instead of the temporary file), or an I/O failure reported by a Rust writer such as
    safetensors (``… (os error 28)``) that would otherwise escape as a foreign exception."""
    if isinstance(exc, OSError):
        code = exc.errno
    elif isinstance(exc, Exception) and (m := re.search(r"os error (\d+)", str(exc))):
        code = int(m.group(1))
    else:
        return None
    if code is None:
        return None
    return OSError(code, os.strerror(code), str(path))


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has (almost) no space left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def atomic_write(path: Path, write: Any) -> None:
    """Write a file via a temporary name in the same folder, then rename (never half-written).

    Raises:
        OSError: the folder cannot be created or written, the disk is full or read-only (naming ``path``, not
            the temporary file); the temporary file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise (_io_error(exc, path) or exc) from None
    os.close(fd)
    try:
        write(tmp)
        match_ordinary_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException as exc:
        error = _io_error(exc, path)
        if error is None and isinstance(exc, Exception) and _disk_full(path.parent):
            # C++ writers (torch.save) report a full disk as a bare RuntimeError ("iostream error")
            error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        Path(tmp).unlink(missing_ok=True)
        if error is not None:
            raise error from None
        raise


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete what :func:`atomic_write` leaves behind when its process is killed between writing and renaming
    (``.<name>.<random>.tmp``); call it where one process owns the folder (a training run on start). Returns
    the files removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for tmp in found:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def save_pretrained(module: nn.Module, folder: str | Path, *, name: str, kind: str,
                    meta: dict[str, Any] | None = None, weights_name: str = WEIGHTS_NAME,
                    write_config: bool = True, extra_config: dict[str, Any] | None = None) -> Path:
    """Save ``module`` (which must have ``config()``) as ``folder/config.json`` + ``folder/weights_name``;
    ``extra_config`` adds top-level config entries (e.g. ``"discriminator"``: the config of a discriminator
    stored beside the generator)."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    w_avg = getattr(module, "w_avg", None)
    if isinstance(w_avg, Tensor):
        state["latent_avg"] = w_avg.detach().cpu().contiguous()
    atomic_write(folder / weights_name, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    if write_config:
        cfg = {"format": FORMAT, "name": name, "kind": kind, "config": module.config(), "meta": meta or {},
               **(extra_config or {})}
        cfg.setdefault(SUMMARY_KEY, module_summary(module))
        atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n"))
    return folder


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """Read a safetensors file with a clear error when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


def load_pretrained(folder: str | Path, weights_name: str = WEIGHTS_NAME,
                    config_key: str = "config") -> nn.Module:
    """Build the module described by ``folder/config.json`` and load its weights strictly.

    Returns the module in eval mode with gradients disabled.
    """
    folder = Path(folder)
    cfg = read_config(folder)
    source = str(folder / weights_name)
    sub = cfg[config_key] if config_key in cfg else cfg["config"]
    if not isinstance(sub, dict):
        raise CheckpointError(f"{folder / CONFIG_NAME}: '{config_key}' is not an object")
    skeleton = build_skeleton(sub, str(folder / CONFIG_NAME))  # config errors before reading any weights
    state = read_safetensors(folder / weights_name)
    w_avg = state.pop("latent_avg", None)
    module = build_for(sub, state, source, skeleton)
    load_state_strict(module, state, source)
    if w_avg is not None and isinstance(getattr(module, "w_avg", None), Tensor):
        if tuple(w_avg.shape) != tuple(module.w_avg.shape) or not torch.isfinite(w_avg).all():
            raise CheckpointError(f"{source}: latent_avg has shape {list(w_avg.shape)} or non-finite values; "
                                  f"expected {list(module.w_avg.shape)} finite numbers")
        module.w_avg.copy_(w_avg)
    module.eval().requires_grad_(False)
    return module
