"""The torch-free half of a ganinv model folder: ``config.json`` and what a folder says about its model.

A folder holds ``config.json`` (``{"format": "ganinv", "name", "kind", "config", "meta", "summary", …}``) beside its
``.safetensors`` weights. Reading the config and the ``summary`` it records (the parameter count and, for a
generator, its latent spaces, noise maps and image shape; written by :func:`ganinv.modelfile.save_pretrained`) need
neither torch nor numpy, so listing models (``ganinv models``) starts at once; building the module is
:mod:`ganinv.modelfile`'s job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganinv.errors import CheckpointError

FORMAT = "ganinv"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Top-level ``config.json`` entry describing a generator without building it (see :func:`module_summary`).
SUMMARY_KEY = "summary"


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``folder/config.json``; a missing, unreadable or foreign file is a :class:`CheckpointError`."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a ganinv model folder: {CONFIG_NAME} is missing")
    try:
        cfg = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{path} is nested too deeply to be a model config") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or not isinstance(cfg.get("config"), dict):
        raise CheckpointError(f"{path} is not a ganinv model config (needs format='ganinv' and a 'config' object)")
    return cfg


def module_summary(module: Any) -> dict[str, Any]:
    """What a folder records about ``module`` so that it can be described without building it:
    ``{"parameters": count}``, and for a generator also ``{"latent_spaces": {name: shape}, "noise_maps": count,
    "image_shape": [C, H, W]}``."""
    out: dict[str, Any] = {"parameters": int(sum(p.numel() for p in module.parameters()))}
    if hasattr(module, "latent_spaces") and hasattr(module, "noise_shapes") and hasattr(module, "image_shape"):
        out.update({"latent_spaces": {name: list(s.shape) for name, s in module.latent_spaces.items()},
                    "noise_maps": len(module.noise_shapes), "image_shape": [int(v) for v in module.image_shape]})
    return out


def read_summary(cfg: dict[str, Any], generator: bool) -> dict[str, Any] | None:
    """The ``summary`` entry of a config when it is well formed (see :func:`module_summary`; a ``generator``'s must
    hold its spaces too), else None (folders written before it existed: build the module to describe it)."""
    s = cfg.get(SUMMARY_KEY)
    if not isinstance(s, dict) or not isinstance(s.get("parameters"), int):
        return None
    if not generator:
        return s
    spaces, noise, shape = s.get("latent_spaces"), s.get("noise_maps"), s.get("image_shape")
    ok = (isinstance(spaces, dict) and bool(spaces) and isinstance(noise, int) and isinstance(shape, list)
          and len(shape) == 3 and all(isinstance(v, int) for v in shape)
          and all(isinstance(v, list) and all(isinstance(d, int) for d in v) for v in spaces.values()))
    return s if ok else None


__all__ = ["CONFIG_NAME", "FORMAT", "SUMMARY_KEY", "WEIGHTS_NAME", "module_summary", "read_config", "read_summary"]
