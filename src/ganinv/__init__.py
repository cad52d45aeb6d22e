"""ganinv — GAN inversion toolkit: invert images into a generator's latent space and use the codes."""

from ganinv.errors import CheckpointError, GaninvError, InputError, UnknownModelError
from ganinv.generators import DCGANGenerator, Generator, LatentSpace, StyleGAN2Generator
from ganinv.generators.wrap import WrappedGenerator, wrap
from ganinv.inverters import InversionResult, OptimizeSettings, invert

__version__ = "0.1.0"

__all__ = [
    "invert", "InversionResult", "OptimizeSettings", "Generator", "LatentSpace", "wrap", "WrappedGenerator",
    "StyleGAN2Generator", "DCGANGenerator",
    "GaninvError", "CheckpointError", "InputError", "UnknownModelError", "__version__",
]
