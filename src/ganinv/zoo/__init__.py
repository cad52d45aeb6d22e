"""Bundled trained models, shipped inside the package.

Each model is a folder ``zoo/<name>/`` with ``config.json`` and ``model.safetensors``
(generators also carry ``discriminator.safetensors``, described by ``config.json``'s
``discriminator`` entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganinv.errors import UnknownModelError
from ganinv.modelconfig import CONFIG_NAME, read_config, read_summary

if TYPE_CHECKING:
    from torch import nn

ZOO_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "mnist-stylegan2"
DEFAULT_CLASSIFIER = "mnist-classifier"


def available() -> list[str]:
    """Names of the bundled models, sorted."""
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def model_dir(name: str) -> Path:
    """Folder of bundled model ``name``; a clear error lists the available ones."""
    folder = ZOO_DIR / name
    if "/" in name or "\\" in name or not (folder / CONFIG_NAME).is_file():
        names = available()
        raise UnknownModelError(f"unknown model {name!r}; bundled models: {', '.join(names) or '(none)'}")
    return folder


def describe(name: str) -> dict[str, Any]:
    """The bundled model's ``config.json`` contents."""
    return read_config(model_dir(name))


def summary(name: str) -> dict[str, Any]:
    """What bundled model ``name`` is, without building it when its config records a summary (else it is loaded):
    ``{"parameters": int}``, for a generator also ``latent_spaces`` ``{name: shape}``, ``noise_maps`` (count) and
    ``image_shape`` ``[C, H, W]`` (see :func:`ganinv.modelconfig.module_summary`)."""
    cfg = describe(name)
    found = read_summary(cfg, generator=cfg.get("kind") == "generator")
    if found is not None:
        return found
    from ganinv.modelconfig import module_summary

    return module_summary(load(name))


def load(name: str) -> nn.Module:
    """Load bundled model ``name`` (generator or classifier), eval mode, frozen."""
    from ganinv.modelfile import load_pretrained

    return load_pretrained(model_dir(name))


def load_discriminator(name: str) -> nn.Module:
    """Load the discriminator trained alongside generator ``name``."""
    folder = model_dir(name)
    cfg = read_config(folder)
    if "discriminator" not in cfg:
        raise UnknownModelError(f"bundled model {name!r} has no discriminator")
    from ganinv.modelfile import load_pretrained

    return load_pretrained(folder, weights_name="discriminator.safetensors", config_key="discriminator")


def load_classifier(name: str = DEFAULT_CLASSIFIER) -> nn.Module:
    """The bundled digit classifier used for evaluation."""
    return load(name)
