"""Bring your own generator: a small MLP that ganinv can invert, restore with and edit.

Any ``nn.Module`` that maps a latent ``z [B, latent_dim]`` to an image works. The image may be
returned flat, ``[B, C*H*W]`` (as here: 784 values for a 28×28 digit), or as ``[B, C, H, W]``.
Declaring three class attributes saves typing the matching options on the command line:

* ``latent_dim``   — size of ``z`` (``z_dim`` is accepted too); else pass ``--latent-dim N``
* ``image_shape``  — ``(C, H, W)`` of one image; else pass ``--image-shape C,H,W``
* ``output_range`` — the native ``(LO, HI)`` of the output, mapped to ganinv's ``[0, 1]``
  (``(-1, 1)`` for tanh, ``(0, 1)`` for sigmoid); else ``--output-range LO,HI`` (default ``-1,1``)

Command line (``NAME`` may be a class constructible without arguments, a module instance, or a
factory function with no arguments that returns a module)::

    ganinv sample --generator examples/byo_mlp.py:MLPGenerator --weights mlp.pt
    ganinv sample --generator examples/byo_mlp.py:make_generator --weights mlp.safetensors

``--weights`` is a state dict, never code: ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)`` (bare, or under ``"state_dict"``, ``"g_ema"``, ``"generator"`` or
``"model"``), ``.safetensors`` with safetensors, and the keys must match the module exactly.
Save them with ``torch.save(model.state_dict(), "mlp.pt")``.

In Python, wrap the module (or any callable) directly::

    from ganinv.generators.wrap import wrap
    G = wrap(MLPGenerator(), latent_dim=64, image_shape=(1, 28, 28), output_range=(-1, 1))
    images = G.synthesize(G.sample_latent(8, seed=0))    # [8, 1, 28, 28], nominal [0, 1]

Run this file to check it wraps: ``python examples/byo_mlp.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLPGenerator(nn.Module):
    """z ``[B, 64]`` → a flat 28×28 grey image ``[B, 784]`` in ``[-1, 1]`` (tanh).

    Args:
        latent_dim: size of the latent vector z.
        hidden: width of the two hidden layers.
    """

    latent_dim = 64
    image_shape = (1, 28, 28)
    output_range = (-1.0, 1.0)

    def __init__(self, latent_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        c, h, w = self.image_shape
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, c * h * w), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """z ``[B, latent_dim]`` → ``[B, 784]`` in ``[-1, 1]``."""
        return self.net(z)


def make_generator() -> nn.Module:
    """Factory form of the same network (use it when construction needs arguments)."""
    return MLPGenerator(latent_dim=64, hidden=256)


if __name__ == "__main__":
    from ganinv.generators.wrap import wrap

    G = wrap(MLPGenerator(), latent_dim=MLPGenerator.latent_dim, image_shape=MLPGenerator.image_shape,
             output_range=MLPGenerator.output_range, name="examples/byo_mlp.py:MLPGenerator")
    with torch.no_grad():
        images = G.synthesize(G.sample_latent(4, seed=0))
    print(f"{G.config()} → images {list(images.shape)}, range [{images.min():.3f}, {images.max():.3f}]")
