"""Reconstruction quality metrics, per sample.

Every image metric takes two ``[B, C, H, W]`` batches, clamps them to [0, 1], computes without
gradients (in float64 for the pixel metrics) and returns a ``[B]`` tensor on the inputs' device.

- :func:`psnr` — dB, capped at :data:`PSNR_CAP` (100 dB) so identical images give a finite number.
- :func:`ssim` — matches ``skimage.metrics.structural_similarity(a, b, data_range=1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=...)``.
- :func:`ms_ssim` — multi-scale SSIM; small images use fewer scales (see :mod:`ganinv.losses.pixel`).
- :func:`lpips` — LPIPS distance, or ``None`` when the backbone weights are not available offline.
- :func:`identity_similarity` — cosine of two faces' ArcFace embeddings ("ID" in pSp/e4e/ReStyle/PTI tables);
  needs a user-given ``model_ir_se50.pth`` (see :mod:`ganinv.losses.identity`).
- :func:`class_preservation` — whether a digit classifier gives the same class to both images.
- :func:`latent_error` — RMSE between latent codes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ganinv.errors import InputError, MissingWeightsError
from ganinv.losses.pixel import check_pair, ms_ssim_config, ms_ssim_value, ssim_value

PSNR_CAP = 100.0
"""PSNR (dB) reported for identical images, and the most any pair can score."""

_LPIPS_CACHE: dict[tuple[str, str, int], nn.Module] = {}


def _prepare(x: Tensor, y: Tensor, dtype: torch.dtype | None = torch.float64) -> tuple[Tensor, Tensor]:
    check_pair(x, y)
    if dtype is not None:
        x, y = x.to(dtype), y.to(dtype)
    return x.detach().clamp(0, 1), y.detach().clamp(0, 1)


@torch.no_grad()
def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio ``[B]`` in dB, ``10·log10(data_range² / MSE)``, capped at 100 dB.

    Images are clamped to ``[0, data_range]``. Identical images (MSE 0) give exactly :data:`PSNR_CAP`.
    """
    check_pair(x, y)
    x, y = x.detach().to(torch.float64).clamp(0, data_range), y.detach().to(torch.float64).clamp(0, data_range)
    err = (x - y).pow(2).flatten(1).mean(1)
    floor = data_range ** 2 * 10 ** (-PSNR_CAP / 10)
    out = 10 * torch.log10(data_range ** 2 / err.clamp_min(floor))
    return out.clamp_max(PSNR_CAP).float()


@torch.no_grad()
def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity ``[B]`` in [-1, 1] (1 for identical images), mean over channels.

    Gaussian window σ = 1.5 with 11 taps (the largest odd size that fits for images under 11 px),
    K1 = 0.01, K2 = 0.03, data range 1, population covariances, means over the valid region — the same
    numbers as scikit-image's ``structural_similarity`` with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1``.
    """
    x, y = _prepare(x, y)
    return ssim_value(x, y).float()


@torch.no_grad()
def ms_ssim(x: Tensor, y: Tensor) -> Tensor:
    """Multi-scale SSIM ``[B]`` in [0, 1] (1 for identical images).

    Five scales with an 11-tap window above 160 px; fewer scales and a smaller window for smaller
    images (e.g. 32 px: 3 scales, 7 taps), see :func:`ganinv.losses.pixel.ms_ssim_config`.

    Raises:
        InputError: the images' smaller side is under 13 px (not even two scales fit).
    """
    x, y = _prepare(x, y)
    return ms_ssim_value(x, y).float()


def ms_ssim_applicable(height: int, width: int) -> bool:
    """Whether :func:`ms_ssim` works for images of this size."""
    try:
        ms_ssim_config(height, width)
    except InputError:
        return False
    return True


def _lpips_model(net: str) -> nn.Module:
    """A cached :class:`~ganinv.losses.perceptual.LPIPSLoss` for ``net`` (keyed by its backbone file)."""
    from ganinv.losses.perceptual import LPIPSLoss, backbone_path

    path = backbone_path(net)
    key = (net, str(path), path.stat().st_mtime_ns)
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE.clear()  # keep at most one backbone in memory
        _LPIPS_CACHE[key] = LPIPSLoss(net, max_size=None)  # evaluation: at full resolution
    return _LPIPS_CACHE[key]


@torch.no_grad()
def lpips(x: Tensor, y: Tensor, net: str = "alex") -> Tensor | None:
    """LPIPS distance ``[B]`` (≥ 0, 0 for identical images), or ``None`` when it cannot be computed offline.

    ``net`` is ``"alex"`` (the usual evaluation choice) or ``"vgg"``. Returns ``None`` — never raises —
    when ``lpips``/``torchvision`` are missing or the backbone weights are not in the torch hub cache
    (see :func:`ganinv.losses.perceptual.missing_weights_message`). 1-channel images are repeated to RGB
    and images under 64 px upsampled (see :class:`~ganinv.losses.perceptual.LPIPSLoss`). The network is
    built once and cached.
    """
    from ganinv.losses.perceptual import BACKBONES, lpips_available

    if net not in BACKBONES:
        raise InputError(f"unknown LPIPS network {net!r}; choose one of: {', '.join(BACKBONES)}")
    x, y = _prepare(x, y, dtype=None)
    if not lpips_available(net):
        return None
    try:
        model = _lpips_model(net)
    except (MissingWeightsError, FileNotFoundError):  # file vanished since the check
        return None
    model.to(x.device)
    return model(x.float(), y.float()).float()


@torch.no_grad()
def identity_similarity(x: Tensor, y: Tensor, weights: str | Path | None = None) -> Tensor:
    """Identity similarity ``[B]`` in [-1, 1] (1 for identical images): the cosine of the ArcFace embeddings.

    As the inversion papers report it (pSp's ``IDLoss``, ArcFace IR-SE-50): RGB images in [0, 1] are brought to
    256×256 (area-downsampled, or bilinearly upsampled), the inner face rows 35:223 × columns 32:220 of an
    FFHQ-aligned portrait is cut out and pooled to 112×112 (see :func:`ganinv.losses.identity.face_crop`). Each
    pair is scored on its own, so the order of the batch does not matter. CurricularFace's IR-101 file works too.

    Args:
        weights: the state dict; default :func:`ganinv.losses.identity.find_weights` (``--id-weights``,
            ``$GANINV_ARCFACE``, ganinv's weights cache). The network is loaded once and kept.

    Raises:
        InputError: not RGB ``[B, 3, H, W]`` pairs of one shape.
        MissingWeightsError: no weight file anywhere; CheckpointError: an unreadable or foreign file.
    """
    from ganinv.losses.identity import cached_backbone, embed

    x, y = _prepare(x, y, dtype=torch.float32)
    if x.shape[1] != 3:
        raise InputError(f"identity similarity takes RGB face images [B, 3, H, W], got shape {tuple(x.shape)}")
    model = cached_backbone(weights).to(x.device)
    return (embed(model, x) * embed(model, y)).sum(dim=1).clamp(-1, 1)


@torch.no_grad()
def class_preservation(classifier: nn.Module, real: Tensor, recon: Tensor) -> Tensor:
    """Whether ``classifier`` predicts the same class for each real image and its reconstruction: bool ``[B]``.

    ``classifier`` is e.g. :func:`ganinv.zoo.load_classifier` (a ``DigitClassifier``: ``[B, 1, 32, 32]``
    in [0, 1], ``.predict(x) -> (class, confidence)``); images must have the shape it was trained on.
    """
    real, recon = _prepare(real, recon, dtype=torch.float32)
    channels, resolution = getattr(classifier, "img_channels", None), getattr(classifier, "resolution", None)
    if channels is not None and resolution is not None and tuple(real.shape[1:]) != (channels, resolution,
                                                                                     resolution):
        raise InputError(f"the classifier takes [B, {channels}, {resolution}, {resolution}] images, got "
                         f"{list(real.shape)}")
    device = next(classifier.parameters()).device
    cls_real, _ = classifier.predict(real.to(device))
    cls_recon, _ = classifier.predict(recon.to(device))
    return (cls_real == cls_recon).to(real.device)


@torch.no_grad()
def latent_error(a: Tensor, b: Tensor) -> Tensor:
    """Root-mean-square difference ``[B]`` between latent codes of one shape ``[B, ...]`` (over all non-batch dims)."""
    if a.shape != b.shape or a.dim() < 1:
        raise InputError(f"latent codes must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a.detach().to(torch.float64) - b.detach().to(torch.float64)).reshape(a.shape[0], -1)
    return diff.pow(2).mean(1).sqrt().float()


@torch.no_grad()
def compute_all(real: Tensor, recon: Tensor, classifier: nn.Module | None = None,
                lpips_net: str | None = None, identity: bool = False,
                identity_weights: str | Path | None = None) -> dict[str, Tensor]:
    """Every applicable metric for a batch: ``{"psnr", "ssim", "ms_ssim", "lpips", "id", "class_kept"}`` → ``[B]``.

    ``ms_ssim`` is left out for images under 13 px; ``lpips`` only with ``lpips_net`` (``"alex"`` or
    ``"vgg"``) and when its weights are available; ``id`` (:func:`identity_similarity`) only with ``identity``
    and RGB images; ``class_kept`` (bool) only with a ``classifier``.
    """
    check_pair(real, recon)
    out = {"psnr": psnr(real, recon), "ssim": ssim(real, recon)}
    if ms_ssim_applicable(*real.shape[-2:]):
        out["ms_ssim"] = ms_ssim(real, recon)
    if lpips_net is not None:
        value = lpips(real, recon, net=lpips_net)
        if value is not None:
            out["lpips"] = value
    if identity and real.shape[1] == 3:
        out["id"] = identity_similarity(real, recon, identity_weights)
    if classifier is not None:
        out["class_kept"] = class_preservation(classifier, real, recon)
    return out


def mean_of(values: dict[str, Tensor]) -> dict[str, float]:
    """Batch means of :func:`compute_all`'s output as plain floats (``class_kept`` becomes a rate in [0, 1])."""
    return {name: float(v.double().mean()) if v.numel() else math.nan for name, v in values.items()}
