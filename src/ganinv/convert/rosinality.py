"""Output format ``rosinality``: a ``stylegan2-pytorch`` ``.pt`` file.

The file holds what rosinality's converter and training loop write, and what
:func:`ganinv.generators.checkpoints.load_rosinality` reads::

    {"g_ema": generator state dict, "latent_avg": w_avg [w_dim],
     "d": discriminator state dict (rosinality's names; only when a StyleGAN2 discriminator is known),
     "ganinv": {"output_activation": "tanh"} (only for generators with a tanh output)}

rosinality's format fixes the mapping network's learning-rate multiplier at 0.01; another value
is folded into the stored mapping weights (the images are the same; further training of the
mapping would move at rosinality's rate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.convert.base import SourceModel, Target
from ganinv.convert.discriminator import ROSINALITY_MBSTD_GROUP, rosinality_d_state, rosinality_discriminator
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints import GANINV_EXTRA_KEY, _torch_load
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.modelfile import atomic_write

__all__ = ["ROSINALITY_LR_MLP", "RosinalityTarget"]

#: The mapping learning-rate multiplier rosinality's loader assumes.
ROSINALITY_LR_MLP = 0.01


def _generator_state(G: StyleGAN2Generator) -> dict[str, Tensor]:
    """``G``'s state dict on the CPU, with the mapping's lr multiplier folded into ``style.*`` when it is not 0.01
    (``EqualLinear`` computes ``x·(w·lr/√in)ᵀ + b·lr``: storing ``w·lr/0.01`` and ``b·lr/0.01`` keeps it)."""
    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    if G.lr_mlp != ROSINALITY_LR_MLP:
        factor = G.lr_mlp / ROSINALITY_LR_MLP
        for key in [k for k in state if k.startswith("style.")]:
            state[key] = state[key] * factor
    return state


class RosinalityTarget(Target):
    """StyleGAN2 generators (and StyleGAN2 residual discriminators) as rosinality ``.pt`` files."""

    name = "rosinality"
    label = "rosinality .pt"
    is_folder = False
    suffixes = (".pt", ".pth")

    def refusal(self, G: Generator) -> str | None:
        if not isinstance(G, StyleGAN2Generator):
            return (f"a rosinality .pt holds StyleGAN2 generators only, and this is a {G.arch} generator; "
                    f"write a ganinv folder instead (an OUT without suffix, or --to ganinv)")
        return None

    def discriminator_refusal(self, D: nn.Module) -> str | None:
        if not isinstance(D, StyleGAN2Discriminator):
            return (f"its discriminator ({getattr(D, 'arch', type(D).__name__)}) has no rosinality layout "
                    f"(only StyleGAN2's residual discriminator has)")
        if D.mbstd_group != ROSINALITY_MBSTD_GROUP:
            return (f"its discriminator's minibatch-stddev group is {D.mbstd_group}, and rosinality's format fixes "
                    f"it at {ROSINALITY_MBSTD_GROUP}")
        return None

    def write(self, source: SourceModel, path: Path, *, name: str, notices: list[str]) -> None:
        G = source.G
        assert isinstance(G, StyleGAN2Generator)
        payload: dict[str, Any] = {"g_ema": _generator_state(G), "latent_avg": G.w_avg.detach().cpu().clone()}
        if G.lr_mlp != ROSINALITY_LR_MLP:
            notices.append(f"the mapping's learning-rate multiplier {G.lr_mlp:g} is folded into its weights "
                           f"(rosinality's format fixes it at {ROSINALITY_LR_MLP:g}); the images are the same")
        if G.output_activation:
            payload[GANINV_EXTRA_KEY] = {"output_activation": G.output_activation}
            notices.append(f"the generator's {G.output_activation} output activation is recorded under the extra "
                           f"key {GANINV_EXTRA_KEY!r}: ganinv applies it, rosinality's own code does not")
        if source.D is not None:
            assert isinstance(source.D, StyleGAN2Discriminator)
            payload["d"] = rosinality_d_state(source.D)
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

    def load_discriminator(self, path: Path) -> nn.Module | None:
        obj = _torch_load(path)
        d = obj.get("d") if isinstance(obj, dict) else None
        return rosinality_discriminator(d, str(path)) if isinstance(d, dict) else None
