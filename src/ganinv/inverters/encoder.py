"""``method="encoder"``: one forward pass of a trained encoder, plus optional ReStyle refinement passes.

The encoder predicts a latent in its generator's encoder space (W+ for StyleGAN2, z for z-only
generators). Pass 0 starts at the encoder's start latent (``w_avg``); each further pass feeds the
target and the current reconstruction back in and adds the predicted residual.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult


@dataclass
class EncoderSettings:
    """Settings of ``method="encoder"``.

    Attributes:
        passes: encoder passes (1 = a plain encoder; 5 = ReStyle's default refinement).
        batch_size: images per forward pass (None: 256).
    """

    passes: int = 1
    batch_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_images(G: Generator, target: Tensor) -> Tensor:
    if not isinstance(target, Tensor) or target.dim() != 4:
        raise InputError(f"target must be an image batch [B, C, H, W], got "
                         f"{tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__}")
    if target.shape[0] == 0:
        raise InputError("target is an empty batch: give at least one image")
    want = (G.channels, G.resolution, G.resolution)
    if tuple(target.shape[1:]) != want:
        raise InputError(f"target images are {tuple(target.shape[1:])}, the generator makes {want} (C, H, W)")
    if not torch.isfinite(target).all():
        raise InputError("target contains NaN or Inf values")
    return target.to(G.device, torch.float32)


@torch.no_grad()
def encode(G: Generator, target: Tensor, encoder: nn.Module | str | Path | None = None, *, passes: int = 1,
           batch_size: int | None = None, keep_passes: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Encode images: returns ``(latent [B, *shape], image [B, C, H, W] in nominal [0, 1], per-pass images)``.

    ``per-pass images`` is filled only with ``keep_passes`` (used for ReStyle's progress plots).
    """
    from ganinv.encoders import resolve_encoder
    from ganinv.train.encoder import encoder_space, render_start

    if passes < 1:
        raise InputError(f"passes must be ≥ 1, got {passes}")
    enc = resolve_encoder(encoder, G)
    y = _check_images(G, target)
    space = encoder_space(G)
    lo, hi = G.output_range
    start_img = render_start(enc, G, space)
    from ganinv.memory import RowCost, describe, render_cost, rows_that_fit, run_halving

    what = f"encoding with the {describe(G)}"
    if batch_size is None:  # a row: the encoder's pass and a rendering (the with-grad cost bounds both)
        cost = render_cost(G, space)
        batch_size = rows_that_fit(G, y.shape[0], RowCost(2 * cost.per_row, cost.fixed, cost.how), cap=256,
                                   what=what)

    def one(start: int, stop: int) -> tuple[Tensor, Tensor, list[Tensor]]:
        chunk = y[start:stop]
        cur_lat = enc.start_latent.expand(chunk.shape[0], *enc.start_latent.shape)
        cur_img = start_img.expand(chunk.shape[0], *start_img.shape[1:])
        seen = []
        for p in range(passes):
            cur_lat = enc(chunk, cur_img, cur_lat)
            cur_img = (G._native(cur_lat, space, None) - lo) / (hi - lo)
            if keep_passes:
                seen.append(cur_img)
        return cur_lat, cur_img, seen

    parts = run_halving(one, y.shape[0], batch_size, device=G.device, what=what)
    lats = [p[0] for p in parts]
    imgs = [p[1] for p in parts]
    per_pass = [p[2] for p in parts]
    merged = [torch.cat([s[p] for s in per_pass]) for p in range(passes)] if keep_passes else []
    return torch.cat(lats), torch.cat(imgs), merged


def invert_encoder(G: Generator, target: Tensor, settings: EncoderSettings | None = None, *,
                   encoder: nn.Module | str | Path | None = None) -> InversionResult:
    """Invert with the encoder alone (``settings.passes`` passes); metrics PSNR/SSIM per pass in ``history``."""
    from ganinv import metrics as M
    from ganinv.train.encoder import encoder_space

    s = settings or EncoderSettings()
    t0 = time.perf_counter()
    latent, image, per_pass = encode(G, target, encoder, passes=s.passes, batch_size=s.batch_size, keep_passes=True)
    y = _check_images(G, target)
    image = image.clamp(0, 1)
    history = {"psnr": [M.psnr(img.clamp(0, 1), y).float().cpu().tolist() for img in per_pass]}
    metrics = {"psnr": M.psnr(image, y).float().cpu(), "ssim": M.ssim(image, y).float().cpu(),
               "loss": (image - y).flatten(1).square().mean(1).cpu(),
               "steps": torch.full((y.shape[0],), s.passes, dtype=torch.long)}
    return InversionResult(latent=latent, space=encoder_space(G), image=image, noise=None, metrics=metrics,
                           history=history, method="encoder", seconds=time.perf_counter() - t0,
                           settings=s.to_dict())


__all__ = ["EncoderSettings", "encode", "invert_encoder"]
