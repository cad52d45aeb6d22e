"""Clipped target pixels: compare a render with a target the way the target's own clipping would show it.

A photograph's blown highlights and crushed shadows, and a generator's sample shown in [0, 1] where it drew beyond
that range, store ``0`` or ``1`` for a pixel whose true value lies anywhere at or beyond the bound. A render that
exceeds the bound there reproduces the stored pixel exactly; a plain loss still pulls it back to the bound,
spending the latent's freedom on pixels nobody will see and moving it away from the code that drew the image
(on a random-weight 64 px StyleGAN2, half of a sample's pixels are clipped).
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["match_saturation"]


def match_saturation(pred: Tensor, target: Tensor, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    """``pred`` clipped to the target's bound where the target sits at it, unchanged elsewhere.

    Args:
        pred: renders ``[B, C, H, W]`` in nominal ``[lo, hi]`` (not clamped; differentiable).
        target: ``[B, C, H, W]`` (broadcastable to ``pred``) in ``[lo, hi]``.
        lo, hi: the display range's bounds.

    Returns:
        ``pred`` with ``min(pred, hi)`` where ``target == hi`` and ``max(pred, lo)`` where ``target == lo``: a
        pixel-wise loss then penalises a clipped pixel only on the wrong side of its bound (exactly the loss of the
        render's clipped display there), and its gradient is zero once the render is past the bound. Pixels whose
        target lies strictly inside the range, or outside it (an unclipped value, not a display), keep a two-sided
        comparison.
    """
    out = pred.clamp(max=hi).where(target == hi, pred)
    return out.clamp(min=lo).where(target == lo, out)
