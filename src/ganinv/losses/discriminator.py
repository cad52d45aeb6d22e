"""Discriminator feature matching: compare images through a trained GAN discriminator's activations."""

from __future__ import annotations

from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.losses.pixel import check_pair


class DiscriminatorFeatureLoss(nn.Module):
    """Per-sample feature-matching distance through a frozen discriminator: ``[B, C, H, W] × 2 → [B]``, ≥ 0.

    For each block ``k`` of ``D.features(x)`` (e.g.
    :meth:`ganinv.generators.dcgan.DCGANDiscriminator.features`) the term is the mean squared difference
    of the activations divided by the mean squared activation of the target's features (per sample,
    detached, plus a small epsilon). This makes each block scale-free, so no block dominates because its
    activations happen to be larger; a block's term is about 1 when the prediction's features are zero.
    The loss is the mean of the block terms; 0 for identical images.

    Images come in [0, 1] and are mapped linearly to ``input_range`` (``[-1, 1]`` for ganinv's
    discriminators) before ``D``. ``D`` is frozen (``requires_grad_(False)``) and kept in eval mode
    (``.train()`` is ignored, so BatchNorm uses its running statistics); gradients flow to the images.

    Args:
        discriminator: an ``nn.Module`` with ``features(x) -> list[Tensor]``.
        input_range: the ``(low, high)`` pixel range ``discriminator`` was trained on.
        eps: added to each block's normaliser.
    """

    def __init__(self, discriminator: nn.Module, input_range: tuple[float, float] = (-1.0, 1.0),
                 eps: float = 1e-6) -> None:
        super().__init__()
        if not callable(getattr(discriminator, "features", None)):
            raise InputError(f"the discriminator ({type(discriminator).__name__}) has no features(x) method "
                             "returning its block activations")
        self.discriminator = discriminator.eval().requires_grad_(False)
        self.low, self.high = float(input_range[0]), float(input_range[1])
        self.eps = float(eps)

    def train(self, mode: bool = True) -> DiscriminatorFeatureLoss:
        """Stay in eval mode whatever is asked (frozen loss network)."""
        return super().train(False)

    def _check_input(self, x: Tensor) -> None:
        D = self.discriminator
        channels, resolution = getattr(D, "img_channels", None), getattr(D, "resolution", None)
        if channels is not None and x.shape[1] != channels:
            raise InputError(f"the discriminator takes {channels}-channel images, got {x.shape[1]} channels")
        if resolution is not None and tuple(x.shape[-2:]) != (resolution, resolution):
            raise InputError(f"the discriminator takes {resolution}×{resolution} images, got "
                             f"{x.shape[-2]}×{x.shape[-1]}")

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Feature distance ``[B]`` between ``pred`` and ``target`` (``[B, C, H, W]`` in [0, 1])."""
        check_pair(pred, target)
        self._check_input(pred)
        scale = self.high - self.low
        feats_pred = self.discriminator.features(pred * scale + self.low)
        feats_target = self.discriminator.features(target * scale + self.low)
        if not feats_pred:
            raise InputError("the discriminator's features(x) returned no activations")
        terms = []
        for fp, ft in zip(feats_pred, feats_target):
            norm = ft.detach().pow(2).flatten(1).mean(1) + self.eps
            terms.append((fp - ft).pow(2).flatten(1).mean(1) / norm)
        return sum(terms) / len(terms)
