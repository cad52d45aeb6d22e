"""Regularisers on latents and noise maps used during inversion, each per sample (``[B]``).

* :func:`latent_prior` — keeps a latent where the generator was trained:
  for ``z`` either the Gaussian negative log-likelihood ``½·mean(z²)`` (``"gaussian"``) or the
  χ-shell penalty ``(‖z‖/√d − 1)²`` (``"shell"``: a d-dimensional standard normal lives near
  radius √d, so this keeps ‖z‖ typical without pulling z to 0); for ``w``/``w+`` the squared
  distance to ``w_avg`` in units of the per-dimension variance of mapped samples.
* :func:`noise_regularization` — NVIDIA's projector penalty on StyleGAN2 noise maps: squared
  autocorrelation at lag 1 (both axes) at every octave down to 8×8, so the maps cannot hide
  image content; pair it with :func:`normalize_noise_` after each step.
* :func:`stochastic_clip_` — Lipton & Tripathi (2017): latent components that leave the prior's
  typical range are resampled instead of clipped, which lets gradient descent escape the box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError

PRIORS = ("gaussian", "shell")


def latent_prior(latent: Tensor, space: str, *, mean: Tensor | None = None, variance: float = 1.0,
                 kind: str = "gaussian") -> Tensor:
    """Per-sample prior penalty of ``latent`` ``[B, ...]`` → ``[B]``.

    Args:
        space: ``"z"`` uses ``kind``; any other space (``w``, ``w+``) is the squared distance to
            ``mean`` (``[1, ...]`` or broadcastable) divided by ``variance``, averaged over elements.
        kind: ``"gaussian"`` or ``"shell"`` (z only, see module docstring).
    """
    flat = latent.flatten(1)
    if space == "z":
        if kind == "gaussian":
            return 0.5 * flat.square().mean(1)
        if kind == "shell":
            return (flat.norm(dim=1) / math.sqrt(flat.shape[1]) - 1.0).square()
        raise InputError(f"unknown z prior {kind!r}; choose from {', '.join(PRIORS)}")
    if mean is None:
        raise InputError(f"the prior of space {space!r} needs the mean latent")
    return (latent - mean).flatten(1).square().mean(1) / max(variance, 1e-12)


def noise_regularization(noise: list[Tensor]) -> Tensor:
    """NVIDIA's noise-map autocorrelation penalty, per sample.

    Args:
        noise: maps ``[B, 1, H_i, W_i]`` (one per synthesis layer).
    Returns:
        ``[B]``: Σ over maps and octaves (down to 8 px) of the squared mean lag-1 products along
        both axes.
    """
    if not noise:
        raise InputError("noise_regularization needs at least one noise map")
    total = noise[0].new_zeros(noise[0].shape[0])
    for n in noise:
        while True:
            total = total + (n * torch.roll(n, shifts=1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (n * torch.roll(n, shifts=1, dims=2)).mean(dim=(1, 2, 3)).square()
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return total


@torch.no_grad()
def normalize_noise_(noise: list[Tensor]) -> None:
    """In place: every map ``[B, 1, H, W]`` to zero mean and unit variance per sample."""
    for n in noise:
        n.sub_(n.mean(dim=(1, 2, 3), keepdim=True))
        n.mul_(n.square().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12).rsqrt())


@torch.no_grad()
def stochastic_clip_(z: Tensor, threshold: float = 3.0, generator: torch.Generator | None = None) -> int:
    """In place: resample every component of ``z`` with ``|z_i| > threshold`` from N(0, 1) (truncated).

    Lipton & Tripathi resample components that leave the uniform prior's box [−1, 1]; for a
    Gaussian prior the box is ±``threshold`` standard deviations. Returns how many were resampled.
    """
    if threshold <= 0:
        raise InputError(f"stochastic clipping threshold must be > 0, got {threshold}")
    outside = z.abs() > threshold
    count = int(outside.sum())
    if count:
        fresh = torch.randn(count, generator=generator).to(z)
        z[outside] = fresh.clamp(-threshold, threshold)
    return count


__all__ = ["PRIORS", "latent_prior", "noise_regularization", "normalize_noise_", "stochastic_clip_"]
