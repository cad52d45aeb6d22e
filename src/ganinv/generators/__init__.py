"""Generator architectures, the common interface, and checkpoint loaders."""

from ganinv.generators.base import Generator, LatentSpace
from ganinv.generators.dcgan import DCGANDiscriminator, DCGANGenerator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.generators.stylegan3 import StyleGAN3Generator

__all__ = ["Generator", "LatentSpace", "StyleGAN2Generator", "StyleGAN3Generator", "DCGANGenerator",
           "DCGANDiscriminator", "StyleGAN2Discriminator"]
