"""ganinv — GAN inversion toolkit: invert images into a generator's latent space and use the codes.

The public names below are imported on first use (PEP 562), so ``import ganinv`` — and with it ``ganinv --help``
— does not wait for torch; ``from ganinv import invert`` imports the engine as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ganinv.errors import CheckpointError, GaninvError, InputError, UnknownModelError

if TYPE_CHECKING:
    from ganinv.generators import DCGANGenerator, Generator, LatentSpace, StyleGAN2Generator
    from ganinv.generators.wrap import WrappedGenerator, wrap
    from ganinv.inverters import InversionResult, OptimizeSettings, invert

__version__ = "0.1.0"

#: Public name → the module that defines it (imported when the name is first read).
_LAZY = {
    "invert": "ganinv.inverters", "InversionResult": "ganinv.inverters", "OptimizeSettings": "ganinv.inverters",
    "Generator": "ganinv.generators", "LatentSpace": "ganinv.generators",
    "StyleGAN2Generator": "ganinv.generators", "DCGANGenerator": "ganinv.generators",
    "wrap": "ganinv.generators.wrap", "WrappedGenerator": "ganinv.generators.wrap",
}

__all__ = [
    "invert", "InversionResult", "OptimizeSettings", "Generator", "LatentSpace", "wrap", "WrappedGenerator",
    "StyleGAN2Generator", "DCGANGenerator",
    "GaninvError", "CheckpointError", "InputError", "UnknownModelError", "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ganinv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
