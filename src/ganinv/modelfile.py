"""ganinv's own model format: a folder with ``config.json`` + ``model.safetensors``.

``config.json`` holds ``{"format": "ganinv", "name", "kind", "config": {...constructor
arguments, "arch"...}, "meta": {...}}``; the safetensors file holds the module's
``state_dict`` (plus ``latent_avg`` for StyleGAN2 generators). Loading never executes code,
and keys and shapes are checked strictly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ganinv.errors import CheckpointError

FORMAT = "ganinv"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def architectures() -> dict[str, type[nn.Module]]:
    """Architecture name → class, for every module ganinv can build from a config."""
    from ganinv.classifier import DigitClassifier
    from ganinv.encoders.network import PyramidEncoder
    from ganinv.generators.dcgan import DCGANDiscriminator, DCGANGenerator
    from ganinv.generators.stylegan2 import StyleGAN2Generator

    return {c.arch: c for c in (StyleGAN2Generator, DCGANGenerator, DCGANDiscriminator, DigitClassifier,
                                     PyramidEncoder)}


def build(config: dict[str, Any]) -> nn.Module:
    """Instantiate a module from a config dict containing ``arch`` and constructor arguments."""
    cfg = dict(config)
    arch = cfg.pop("arch", None)
    archs = architectures()
    if arch not in archs:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(sorted(archs))}")
    for key in ("blur_kernel", "latent_shape"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    try:
        return archs[arch](**cfg)
    except TypeError as exc:
        raise CheckpointError(f"config for {arch!r} has invalid arguments: {exc}") from None


def load_state_strict(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module`` requiring exactly the same keys and shapes.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: checkpoint {list(state[k].shape)} vs model {list(expected[k].shape)}"
                  for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not match the {getattr(module, 'arch', type(module).__name__)} architecture:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:12]) + (f", … ({len(items) - 12} more)" if len(items) > 12 else "")
                lines.append(f"  {title} ({len(items)}): {shown}")
        raise CheckpointError("\n".join(lines))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source} contains NaN/Inf values in: {', '.join(bad[:8])}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def atomic_write(path: Path, write: Any) -> None:
    """Write a file via a temporary name in the same folder, then rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(module: nn.Module, folder: str | Path, *, name: str, kind: str,
                    meta: dict[str, Any] | None = None, weights_name: str = WEIGHTS_NAME,
                    write_config: bool = True) -> Path:
    """Save ``module`` (which must have ``config()``) as ``folder/config.json`` + ``folder/weights_name``."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    w_avg = getattr(module, "w_avg", None)
    if isinstance(w_avg, Tensor):
        state["latent_avg"] = w_avg.detach().cpu().contiguous()
    atomic_write(folder / weights_name, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    if write_config:
        cfg = {"format": FORMAT, "name": name, "kind": kind, "config": module.config(), "meta": meta or {}}
        atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n"))
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``folder/config.json``."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a ganinv model folder: {CONFIG_NAME} is missing")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or not isinstance(cfg.get("config"), dict):
        raise CheckpointError(f"{path} is not a ganinv model config (needs format='ganinv' and a 'config' object)")
    return cfg


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
    module = build(cfg[config_key] if config_key in cfg else cfg["config"])
    state = read_safetensors(folder / weights_name)
    w_avg = state.pop("latent_avg", None)
    load_state_strict(module, state, str(folder / weights_name))
    if w_avg is not None and isinstance(getattr(module, "w_avg", None), Tensor):
        module.w_avg.copy_(w_avg)
    module.eval().requires_grad_(False)
    return module
