"""Reconstruction losses, each per sample (``[B, C, H, W] × 2 → [B]``), and their weighted combination.

A loss spec is a comma-separated list of ``name=weight`` (a bare ``name`` means weight 1), e.g.
``"mse=1,lpips=0.8"``. Names:

========== ==========================================================
mse        mean squared error (:func:`~ganinv.losses.pixel.mse`)
l1         mean absolute error (:func:`~ganinv.losses.pixel.l1`)
ssim       1 − SSIM (:func:`~ganinv.losses.pixel.ssim_loss`)
ms_ssim    1 − MS-SSIM (:func:`~ganinv.losses.pixel.ms_ssim_loss`)
lpips      LPIPS with VGG16 (same as ``lpips_vgg``)
lpips_vgg  LPIPS with VGG16 (:class:`~ganinv.losses.perceptual.LPIPSLoss`)
lpips_alex LPIPS with AlexNet
dfeat      discriminator feature matching (:class:`~ganinv.losses.discriminator.DiscriminatorFeatureLoss`)
id         1 − cosine of ArcFace face embeddings, pSp's identity loss (:class:`~ganinv.losses.identity.IdentityLoss`;
           RGB faces, user-given ``model_ir_se50.pth``: ``--id-weights`` / ``$GANINV_ARCFACE`` / weights cache)
========== ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.losses.discriminator import DiscriminatorFeatureLoss
from ganinv.losses.identity import IdentityLoss
from ganinv.losses.perceptual import LPIPSLoss, backbone_path, lpips_available, missing_weights_message
from ganinv.losses.pixel import l1, ms_ssim_loss, mse, ssim_loss
from ganinv.losses.saturation import match_saturation

__all__ = [
    "LOSS_NAMES", "CombinedLoss", "DiscriminatorFeatureLoss", "IdentityLoss", "LPIPSLoss", "backbone_path", "l1",
    "lpips_available", "match_saturation", "missing_weights_message", "ms_ssim_loss", "mse", "parse_loss_spec",
    "ssim_loss",
]

_PIXEL: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mse": mse, "l1": l1, "ssim": ssim_loss,
                                                          "ms_ssim": ms_ssim_loss}
_LPIPS_NET = {"lpips": "vgg", "lpips_vgg": "vgg", "lpips_alex": "alex"}
LOSS_NAMES: tuple[str, ...] = (*_PIXEL, *_LPIPS_NET, "dfeat", "id")
"""Every name a loss spec accepts."""


def _canonical(name: str) -> str:
    """The term a name stands for (``lpips`` and ``lpips_vgg`` are one term)."""
    return "lpips_vgg" if name == "lpips" else name


def parse_loss_spec(spec: str) -> dict[str, float]:
    """Parse ``"mse=1,lpips=0.8"`` into ``{"mse": 1.0, "lpips": 0.8}`` (names as written, in order).

    Names are case-insensitive and ``-`` may stand for ``_`` (``ms-ssim``); a bare name has weight 1;
    weights must be finite and ≥ 0 (0 keeps the term out of the sum).

    Raises:
        InputError: empty spec, bad syntax, unknown name, a term given twice, or a bad weight.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"empty loss spec; give name=weight pairs such as 'mse=1,lpips=0.8' "
                         f"(names: {', '.join(LOSS_NAMES)})")
    out: dict[str, float] = {}
    seen: dict[str, str] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise InputError(f"empty term in loss spec {spec!r}; write name=weight pairs separated by commas")
        name, sep, value = (part.strip() for part in item.partition("="))
        name = name.lower().replace("-", "_")
        if not name:
            raise InputError(f"missing loss name in {item!r} (loss spec {spec!r})")
        if name not in LOSS_NAMES:
            raise InputError(f"unknown loss {name!r} in {spec!r}; known losses: {', '.join(LOSS_NAMES)}")
        if sep:
            try:
                weight = float(value)
            except ValueError:
                raise InputError(f"weight of {name!r} must be a number, got {value!r} (loss spec {spec!r})") from None
        else:
            weight = 1.0
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"weight of {name!r} must be a finite number ≥ 0, got {value!r}")
        key = _canonical(name)
        if key in seen:
            raise InputError(f"loss {name!r} given twice in {spec!r}" +
                             (f" ({seen[key]!r} is the same loss)" if seen[key] != name else ""))
        seen[key] = name
        out[name] = weight
    return out


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms, per sample: ``forward(pred, target) → [B]``.

    Build it from a spec with :meth:`from_spec`. After each call, :attr:`last_terms` holds every term's
    unweighted per-sample value (``[B]``, detached) by spec name, for logging. Module terms (LPIPS,
    discriminator features) are sub-modules: ``.to(device)`` moves them.

    Args:
        terms: name → (weight, loss callable ``(pred, target) -> [B]``); zero-weight terms are dropped.

    Attributes:
        saturation: compare ``pred`` with ``target`` through :func:`~ganinv.losses.saturation.match_saturation`
            (target pixels at 0 or 1 count as clipped); False by default, set by the engine for reconstruction.
    """

    def __init__(self, terms: Mapping[str, tuple[float, Callable[[Tensor, Tensor], Tensor]]]) -> None:
        super().__init__()
        self.saturation = False
        kept = {name: (float(w), fn) for name, (w, fn) in terms.items() if w != 0}
        if not kept:
            raise InputError("the loss has no term with a non-zero weight")
        self.weights: dict[str, float] = {name: w for name, (w, _) in kept.items()}
        self.modules_ = nn.ModuleDict({name: fn for name, (_, fn) in kept.items() if isinstance(fn, nn.Module)})
        self._functions = {name: fn for name, (_, fn) in kept.items() if not isinstance(fn, nn.Module)}
        self.last_terms: dict[str, Tensor] = {}

    @classmethod
    def from_spec(cls, spec: str | Mapping[str, float], discriminator: nn.Module | None = None, *,
                  id_weights: str | Path | None = None) -> CombinedLoss:
        """Build from a spec string (see :func:`parse_loss_spec`) or a ready ``{name: weight}`` mapping.

        ``id_weights`` is the ArcFace state dict for an ``id`` term (default:
        :func:`ganinv.losses.identity.find_weights` — ``--id-weights``, ``$GANINV_ARCFACE``, the weights cache).

        Raises:
            InputError: bad spec, all weights zero, or ``dfeat`` without a ``discriminator``.
            MissingWeightsError: an LPIPS term whose backbone weights are not in the torch hub cache, or an ``id``
                term without ArcFace weights (CheckpointError: an unreadable or foreign ArcFace file).
        """
        weights = parse_loss_spec(spec) if isinstance(spec, str) else \
            parse_loss_spec(",".join(f"{name}={w}" for name, w in spec.items()) or " ")
        terms: dict[str, tuple[float, Callable[[Tensor, Tensor], Tensor]]] = {}
        for name, weight in weights.items():
            if weight == 0:
                continue
            if name in _PIXEL:
                terms[name] = (weight, _PIXEL[name])
            elif name in _LPIPS_NET:
                terms[name] = (weight, LPIPSLoss(_LPIPS_NET[name]))
            elif name == "id":
                terms[name] = (weight, IdentityLoss(id_weights))
            else:  # dfeat
                if discriminator is None:
                    raise InputError("the 'dfeat' loss needs a discriminator: use a model that ships one "
                                     "(e.g. a bundled model) or drop 'dfeat' from the loss")
                terms[name] = (weight, DiscriminatorFeatureLoss(discriminator))
        return cls(terms)

    @property
    def names(self) -> list[str]:
        """Names of the active (non-zero weight) terms, in spec order."""
        return list(self.weights)

    def term(self, name: str) -> Callable[[Tensor, Tensor], Tensor]:
        """The loss callable behind term ``name``."""
        return self.modules_[name] if name in self.modules_ else self._functions[name]

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Weighted sum ``[B]`` of the terms for ``pred`` and ``target`` (``[B, C, H, W]`` in [0, 1])."""
        total: Tensor | None = None
        last: dict[str, Tensor] = {}
        if self.saturation:
            pred = match_saturation(pred, target)
        for name, weight in self.weights.items():
            value = self.term(name)(pred, target)
            last[name] = value.detach()
            total = value * weight if total is None else total + value * weight
        self.last_terms = last
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={w:g}" for name, w in self.weights.items())
