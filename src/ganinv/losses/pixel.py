"""Pixel-space reconstruction losses: MSE, L1, 1 − SSIM and 1 − MS-SSIM, each per sample.

Every function takes ``pred`` and ``target`` of shape ``[B, C, H, W]`` (values nominally in
[0, 1]; nothing is clamped so that gradients survive slight overshoot) and returns a ``[B]``
tensor. All are differentiable with respect to both arguments.

SSIM follows the usual definition (Gaussian window σ = 1.5, 11 taps, K1 = 0.01, K2 = 0.03,
data range 1, statistics over the "valid" region, mean over channels) and is computed with
:mod:`pytorch_msssim`. Images smaller than 11 px on a side use the largest odd window that fits.

MS-SSIM on images larger than 160 px uses the standard five scales and 11-tap window, also via
:mod:`pytorch_msssim`. Smaller images cannot hold four 2× downsamplings of an 11-tap window, so
:func:`ms_ssim_config` picks fewer scales: as many as keep the coarsest scale at least
``7`` px wide, with the window shrunk to the largest odd size ≤ 11 that fits the coarsest scale,
and the first ``n`` standard scale weights renormalised to sum to 1. For example 32 px → 3 scales,
7-tap window; 64 px → 4 scales, 7-tap window; 16 px → 2 scales, 7-tap window. Below 13 px not even
two scales fit and :class:`~ganinv.errors.InputError` is raised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Standard per-scale exponents of MS-SSIM (Wang et al. 2003), finest scale first."""

SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
MS_SSIM_MIN_COARSEST = 7
"""Smallest side (px) allowed at MS-SSIM's coarsest scale; also its smallest window."""

_K1, _K2 = 0.01, 0.03


def check_pair(pred: Tensor, target: Tensor, what: str = "images") -> None:
    """Raise :class:`InputError` unless ``pred`` and ``target`` are both ``[B, C, H, W]`` of one shape."""
    if pred.dim() != 4 or target.dim() != 4:
        raise InputError(f"{what} must be [B, C, H, W] tensors, got shapes {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if pred.shape != target.shape:
        raise InputError(f"{what} must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def check_batch_pair(pred: Tensor, target: Tensor) -> None:
    """Raise :class:`InputError` unless ``pred`` and ``target`` are ``[B, ...]`` (≥ 2-D) of one shape —
    element-wise terms also compare non-image observations (compressed measurements ``[B, m]``)."""
    if pred.dim() < 2 or pred.shape != target.shape:
        raise InputError(f"prediction and target must be [B, ...] tensors of the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per sample: ``[B, ...] × 2 → [B]`` (images ``[B, C, H, W]`` or observations), ≥ 0."""
    check_batch_pair(pred, target)
    return (pred - target).pow(2).flatten(1).mean(1)


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per sample: ``[B, ...] × 2 → [B]``, ≥ 0."""
    check_batch_pair(pred, target)
    return (pred - target).abs().flatten(1).mean(1)


def ssim_window(height: int, width: int) -> int:
    """Gaussian window size for SSIM on an ``height × width`` image: 11, or the largest odd size that fits."""
    side = min(height, width)
    if side < 3:
        raise InputError(f"image of {height}×{width} px is too small for SSIM (needs at least 3×3)")
    return min(SSIM_WIN_SIZE, side if side % 2 else side - 1)


def ssim_value(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM per sample (mean over channels), data range 1: ``[B, C, H, W] × 2 → [B]`` in [-1, 1]; 1 if equal."""
    from pytorch_msssim import ssim

    check_pair(pred, target)
    win = ssim_window(*pred.shape[-2:])
    return ssim(pred, target, data_range=1.0, size_average=False, win_size=win, win_sigma=SSIM_SIGMA)


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 − SSIM`` per sample: ``[B, C, H, W] × 2 → [B]`` in [0, 2]; 0 for identical images."""
    return 1.0 - ssim_value(pred, target)


def ms_ssim_config(height: int, width: int) -> tuple[int, int]:
    """``(scales, window)`` used by MS-SSIM for an ``height × width`` image (see the module docstring).

    Raises:
        InputError: the image is too small for two scales (smaller side < 13 px).
    """
    side = min(height, width)
    for scales in range(len(MS_SSIM_WEIGHTS), 1, -1):
        coarsest = math.ceil(side / 2 ** (scales - 1))
        if coarsest >= MS_SSIM_MIN_COARSEST:
            return scales, min(SSIM_WIN_SIZE, coarsest if coarsest % 2 else coarsest - 1)
    min_side = 2 * MS_SSIM_MIN_COARSEST - 1
    raise InputError(f"image of {height}×{width} px is too small for MS-SSIM: two scales need at least "
                     f"{min_side}×{min_side} px; use ssim instead")


def ms_ssim_weights(scales: int) -> list[float]:
    """The first ``scales`` standard MS-SSIM weights, renormalised to sum to 1."""
    w = MS_SSIM_WEIGHTS[:scales]
    total = sum(w)
    return [v / total for v in w]


def _gauss_blur_valid(x: Tensor, win: int) -> Tensor:
    """Separable Gaussian blur (σ = 1.5, ``win`` taps) keeping only the fully covered ("valid") region."""
    coords = torch.arange(win, dtype=x.dtype, device=x.device) - win // 2
    g = torch.exp(-coords.pow(2) / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, win, 1).expand(c, 1, win, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, win).expand(c, 1, 1, win), groups=c)


def _ssim_and_cs(x: Tensor, y: Tensor, win: int) -> tuple[Tensor, Tensor]:
    """Per-channel SSIM and contrast-structure term, each ``[B, C]``."""
    c1, c2 = _K1 ** 2, _K2 ** 2
    mu_x, mu_y = _gauss_blur_valid(x, win), _gauss_blur_valid(y, win)
    var_x = _gauss_blur_valid(x * x, win) - mu_x ** 2
    var_y = _gauss_blur_valid(y * y, win) - mu_y ** 2
    cov = _gauss_blur_valid(x * y, win) - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def ms_ssim_multiscale(pred: Tensor, target: Tensor, scales: int, win: int, floor: float = 0.0) -> Tensor:
    """MS-SSIM with an explicit number of scales and window: ``[B, C, H, W] × 2 → [B]``.

    Same arithmetic as :func:`pytorch_msssim.ms_ssim` (2× average pooling between scales, odd sides
    padded), with ``scales`` renormalised standard weights. Per-scale terms are clamped below at
    ``floor``; a small positive floor keeps gradients finite when a term would be ≤ 0.
    """
    weights = torch.tensor(ms_ssim_weights(scales), dtype=pred.dtype, device=pred.device)
    x, y = pred, target
    terms = []
    for level in range(scales):
        ssim_c, cs_c = _ssim_and_cs(x, y, win)
        if level < scales - 1:
            terms.append(cs_c.clamp_min(floor))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    terms.append(ssim_c.clamp_min(floor))
    stacked = torch.stack(terms)  # [scales, B, C]
    return stacked.pow(weights.view(-1, 1, 1)).prod(0).mean(1)


def ms_ssim_value(pred: Tensor, target: Tensor) -> Tensor:
    """MS-SSIM per sample, data range 1: ``[B, C, H, W] × 2 → [B]`` in [0, 1]; 1 if equal.

    Images larger than 160 px use :func:`pytorch_msssim.ms_ssim` with its defaults; smaller ones use
    :func:`ms_ssim_config`'s scales and window (see the module docstring).
    """
    check_pair(pred, target)
    scales, win = ms_ssim_config(*pred.shape[-2:])
    if scales == len(MS_SSIM_WEIGHTS) and win == SSIM_WIN_SIZE and min(pred.shape[-2:]) > 16 * (win - 1):
        from pytorch_msssim import ms_ssim

        return ms_ssim(pred, target, data_range=1.0, size_average=False)
    return ms_ssim_multiscale(pred, target, scales, win)


def ms_ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 − MS-SSIM`` per sample: ``[B, C, H, W] × 2 → [B]`` in [0, 1]; 0 for identical images.

    Uses the same scales and window as :func:`ms_ssim_value`, with per-scale terms floored at 1e-6 so
    that gradients stay finite even for anti-correlated images (where a term would be clamped to 0).
    """
    check_pair(pred, target)
    scales, win = ms_ssim_config(*pred.shape[-2:])
    return 1.0 - ms_ssim_multiscale(pred, target, scales, win, floor=1e-6)
