"""Checking a written model against the one it was converted from: seeded renders, and discriminator logits."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganinv.errors import CheckpointError
from ganinv.generators.base import Generator

__all__ = ["N_RENDERS", "SEED", "TOLERANCE", "compare_discriminators", "compare_generators", "seeded_latents"]

#: Largest |difference| accepted between the source's and the written model's float32 outputs (images in
#: ganinv's [0, 1] scale; discriminator logits).
TOLERANCE = 1e-5
#: Number of seeded latents rendered by both models.
N_RENDERS = 4
#: Seed of those latents (``Generator.sample_latent``).
SEED = 0


def seeded_latents(G: Generator, n: int = N_RENDERS, seed: int = SEED) -> tuple[Tensor, str]:
    """``(latents [n, *shape], space)``: ``n`` z samples from ``seed`` (the default space when there is no z)."""
    space = "z" if "z" in G.latent_spaces else G.default_space
    return G.sample_latent(n, space, seed=seed), space


def _max_abs(a: Tensor, b: Tensor) -> float:
    diff = (a.float() - b.float().to(a.device)).abs()
    return float(diff.max()) if diff.numel() else 0.0


@torch.no_grad()
def compare_generators(source: Generator, written: Generator, n: int = N_RENDERS,
                       seed: int = SEED) -> tuple[float, Tensor]:
    """Render ``n`` seeded latents with both generators, each with its own stored noise maps (so that the written
    noise buffers are checked too), and compare; the mean w (``w_avg``, used by truncation) is compared as well.
    Class-conditional generators render each seeded z with a seeded soft mixture of classes
    (:class:`~ganinv.generators.conditional.ClassLatentGenerator`), so the class embedding is checked too.

    Returns:
        ``(max |diff|, the source's images [n, C, H, W] in [0, 1])``; the difference is ``nan`` when either
        output is not finite.

    Raises:
        CheckpointError: the written generator has other latent spaces, noise maps or image shape.
    """
    spaces = {k: s.shape for k, s in source.latent_spaces.items()}
    theirs = {k: s.shape for k, s in written.latent_spaces.items()}
    if spaces != theirs or list(source.noise_shapes) != list(written.noise_shapes) \
            or tuple(source.image_shape) != tuple(written.image_shape):
        raise CheckpointError(f"the written model reads back as a different architecture (latent spaces {theirs}, "
                              f"image {tuple(written.image_shape)}; the source has {spaces}, "
                              f"{tuple(source.image_shape)})")
    from ganinv.generators.conditional import ClassLatentGenerator, num_classes

    if num_classes(source) or num_classes(written):  # class-conditional: each seeded row also draws a soft class
        if num_classes(source) != num_classes(written):
            raise CheckpointError(f"the written model reads back with {num_classes(written)} classes; the source "
                                  f"has {num_classes(source)}")
        source, written = ClassLatentGenerator(source), ClassLatentGenerator(written)
    latents, space = seeded_latents(source, n, seed)
    a = source.synthesize(latents, space)
    b = written.synthesize(latents.to(written.device), space)
    worst = _max_abs(a, b)
    if "w" in spaces:
        worst = max(worst, _max_abs(source.mean_latent("w"), written.mean_latent("w")))
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        worst = math.nan
    return worst, a


@torch.no_grad()
def compare_discriminators(source: nn.Module, written: nn.Module, images: Tensor) -> float:
    """Max |difference| of both discriminators' logits on ``images`` ``[B, C, H, W]`` (in the discriminator's
    input range); ``nan`` when either output is not finite."""
    a = source(images)
    b = written(images.to(next(written.parameters()).device))
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.nan
    return _max_abs(a, b)
