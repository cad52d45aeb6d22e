"""Generators that ganinv was not developed on, for ``benchmarks/unseen.py``: seeded random weights.

Three are written here the way third-party training scripts write them and reach ganinv only through
:func:`ganinv.wrap` (what ``--generator file.py:NAME`` does): a GAN-tutorial MLP, the DCGAN of the PyTorch
examples (transposed convolutions + batch norm, z as ``[100, 1, 1]``) and the ResNet generator of the
SNGAN / WGAN-GP CIFAR-10 experiments (nearest-neighbour upsampling residual blocks with batch norm). Two are
ganinv's own StyleGAN2 and StyleGAN3-T classes in configurations no bundled model uses (64 px RGB, 4 mapping
layers; 32 px -T with narrow channels).

Random weights make each model's own samples in-range targets whose exact latent is known, whatever the
model would have learnt. Batch-norm layers get running statistics from a few batches of their own
activations (a trained model's would be those of its training batches); without that, eval-mode batch norm
with the initial statistics (mean 0, variance 1) scales activations arbitrarily. A random network's tanh
output covers only part of ``[-1, 1]``, so each wrapped model declares the range its samples span
(0.05 % / 99.95 % quantiles) as its output range, which maps its images onto ``[0, 1]`` the way a trained
model's are, with a few pixels clipped as in a real model's samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv import wrap
from ganinv.generators.base import Generator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.generators.stylegan3 import StyleGAN3Generator


class TutorialMLP(nn.Module):
    """z ``[64]`` → 28 × 28 grey, LeakyReLU hidden layers, tanh output (flat ``[B, 784]``)."""

    def __init__(self, z_dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
                                 nn.Linear(512, 784), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ExamplesDCGAN(nn.Module):
    """z ``[nz, 1, 1]`` → 64 × 64 RGB: four stride-2 transposed convolutions with batch norm and ReLU, tanh."""

    def __init__(self, nz: int = 100, ngf: int = 32, nc: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8),
                                   nn.ReLU(True)]
        for cin, cout in ((ngf * 8, ngf * 4), (ngf * 4, ngf * 2), (ngf * 2, ngf)):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class UpBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution (nearest neighbour)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class ResNet32(nn.Module):
    """z ``[128]`` → 32 × 32 RGB: a linear layer to 4 × 4 × ch, three upsampling residual blocks,
    BN-ReLU-conv-tanh."""

    def __init__(self, z_dim: int = 128, ch: int = 128) -> None:
        super().__init__()
        self.ch = ch
        self.linear = nn.Linear(z_dim, 4 * 4 * ch)
        self.blocks = nn.Sequential(UpBlock(ch, ch), UpBlock(ch, ch), UpBlock(ch, ch))
        self.bn, self.out = nn.BatchNorm2d(ch), nn.Conv2d(ch, 3, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.blocks(self.linear(z).view(-1, self.ch, 4, 4))
        return torch.tanh(self.out(F.relu(self.bn(h))))


@torch.no_grad()
def calibrate(net: nn.Module, z_shape: tuple[int, ...], batches: int = 4, rows: int = 256,
              seed: int = 1) -> tuple[float, float]:
    """Give ``net``'s batch norms running statistics of its own activations (cumulative over ``batches`` batches
    of standard-normal latents); return the 0.05 % / 99.95 % quantiles of its eval-mode output."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        net.train()
        for _ in range(batches):
            net(torch.randn((rows, *z_shape), generator=gen))
    net.eval()
    out = net(torch.randn((rows, *z_shape), generator=gen)).flatten()
    sample = out[torch.randperm(out.numel(), generator=gen)[:200_000]]
    return float(sample.quantile(5e-4)), float(sample.quantile(1 - 5e-4))


def _wrapped(net: nn.Module, z_dim: int, image_shape: tuple[int, int, int],
             input_shape: tuple[int, ...] | None = None) -> Generator:
    lo, hi = calibrate(net, input_shape or (z_dim,))
    return wrap(net, latent_dim=z_dim, image_shape=image_shape, output_range=(lo, hi), input_shape=input_shape)


def tutorial_mlp() -> Generator:
    torch.manual_seed(11)
    return _wrapped(TutorialMLP(), 64, (1, 28, 28))


def examples_dcgan() -> Generator:
    torch.manual_seed(12)
    return _wrapped(ExamplesDCGAN(), 100, (3, 64, 64), input_shape=(100, 1, 1))


def resnet32() -> Generator:
    torch.manual_seed(13)
    return _wrapped(ResNet32(), 128, (3, 32, 32))


def stylegan2_64() -> Generator:
    torch.manual_seed(14)
    G = StyleGAN2Generator(resolution=64, channels={4: 256, 8: 256, 16: 256, 32: 128, 64: 64}, z_dim=256,
                           w_dim=256, n_mlp=4, img_channels=3)
    G.estimate_w_avg(2000)
    return G.eval().requires_grad_(False)


def stylegan3_t_32() -> Generator:
    torch.manual_seed(15)
    G = StyleGAN3Generator(resolution=32, z_dim=128, w_dim=128, channel_base=4096, channel_max=128, num_layers=6)
    G.estimate_w_avg(2000)
    return G.eval().requires_grad_(False)


#: name → (description, builder)
GENERATORS: dict[str, tuple[str, Callable[[], Generator]]] = {
    "mlp": ("GAN-tutorial MLP, z 64 → 28 px grey (wrap)", tutorial_mlp),
    "dcgan": ("PyTorch-examples DCGAN, z 100 → 64 px RGB, batch norm (wrap)", examples_dcgan),
    "resnet32": ("SNGAN / WGAN-GP CIFAR ResNet, z 128 → 32 px RGB, batch norm (wrap)", resnet32),
    "stylegan2-64": ("StyleGAN2 64 px RGB, 256-d, 4 mapping layers", stylegan2_64),
    "stylegan3-t-32": ("StyleGAN3-T 32 px RGB, 128-d, 6 layers", stylegan3_t_32),
}
