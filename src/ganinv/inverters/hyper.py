"""``method="hyper"``: an encoder's code plus per-image generator weight offsets from a hypernetwork (HyperStyle).

1. **Pivot.** The encoder the hypernetwork was trained with (its recorded pivot: an encoder and its ReStyle
   passes, or the mean latent) gives each image a W+ code; it stays fixed.
2. **Offsets.** The hypernetwork (:mod:`ganinv.encoders.hyper`) sees the target and the current reconstruction
   and predicts channel-wise multiplicative offsets ``Δ`` for some convolution weights, ``passes`` times
   (the offsets add up). Every image gets its own offsets, in one batched forward per pass.

The result is laid out like a PTI result: ``latent`` (W+ pivots), ``deltas`` (one ``{"<layer>.conv.weight.delta":
θ·Δ}`` dict per image, the full-size weight difference), ``settings["generator_fingerprint"]``; so
``InversionResult.save`` writes ``<stem>.deltas.safetensors`` beside ``<stem>.npz``, and everything that reads a
PTI result (:func:`ganinv.inverters.pti.apply_deltas`, ``ganinv edit``, ``ganinv convert --deltas``) reads it.
The reconstruction is rendered with exactly the weights ``apply_deltas`` rebuilds (to float rounding: one
grouped convolution for the batch instead of one convolution per tuned generator).
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
class HyperSettings:
    """Settings of ``method="hyper"``.

    Attributes:
        passes: hypernetwork passes (None: the number it was trained with).
        pivot_passes: encoder passes of the pivot (None: the recorded pivot's).
        batch_size: images per forward (None: as many as fit, at most 64).
    """

    passes: int | None = None
    pivot_passes: int | None = None
    batch_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pivot_encoder(net: nn.Module, G: Generator, encoder: nn.Module | str | Path | None = None) -> nn.Module | None:
    """The encoder that makes the pivots: ``encoder`` when given, else the one recorded in ``net`` (None = the
    mean latent). Refuses an encoder of another generator."""
    from ganinv.encoders import resolve_encoder

    if encoder is not None:
        return resolve_encoder(encoder, G)
    spec = getattr(net, "pivot_info", {}).get("encoder")
    if spec in (None, "mean"):
        return None
    if spec == "given":
        raise InputError("this hypernetwork was trained with a pivot encoder passed as an object, which it cannot "
                         "reload: pass the same encoder (encoder=... / --encoder FOLDER)")
    return resolve_encoder(spec, G)


def invert_hyper(G: Generator, target: Tensor, settings: HyperSettings | None = None, *,
                 hyper: nn.Module | str | Path | None = None,
                 encoder: nn.Module | str | Path | None = None) -> InversionResult:
    """Invert ``target`` ``[B, C, H, W]`` in [0, 1] with a pivot encoder and a hypernetwork.

    Args:
        G: a StyleGAN2 generator (frozen).
        target: images at the generator's size.
        settings: :class:`HyperSettings`.
        hyper: a hypernetwork module, a saved folder or a bundled name; None finds the bundled one for ``G``.
            One trained for another generator is refused.
        encoder: override the hypernetwork's recorded pivot encoder (same generator).
    Returns:
        :class:`InversionResult` with ``space="w+"``, per-image ``deltas`` (PTI's layout), metrics ``psnr`` /
        ``ssim`` / ``loss`` / ``steps`` (passes) / ``pivot_psnr``; ``history["psnr"]`` per pass (pass 0: the pivot).
    """
    from ganinv import metrics as M
    from ganinv.encoders import generator_fingerprint
    from ganinv.encoders.hyper import base_weights, compute_pivot, resolve_hyper, run_hyper_passes, \
        weight_differences
    from ganinv.inverters.encoder import _check_images
    from ganinv.inverters.optimize import _FrozenGenerator
    from ganinv.memory import RowCost, describe, render_cost, rows_that_fit, run_halving

    s = settings or HyperSettings()
    t0 = time.perf_counter()
    net = resolve_hyper(hyper, G)
    info = dict(getattr(net, "pivot_info", {}))
    passes = int(s.passes if s.passes is not None else info.get("hyper_passes", 1))
    pivot_passes = int(s.pivot_passes if s.pivot_passes is not None else info.get("passes", 1))
    if passes < 1 or pivot_passes < 1:
        raise InputError(f"passes and pivot_passes must be ≥ 1, got {passes} and {pivot_passes}")
    enc = pivot_encoder(net, G, encoder)
    y = _check_images(G, target)
    B = y.shape[0]
    base = base_weights(G, net.layer_names)
    # a row: the pivot's renderings and the hypernetwork's, with its own copy of the modulated weights
    what = f"the hypernetwork inversion with the {describe(G)}"
    wbytes = sum(v.numel() * v.element_size() for v in base.values())
    render = render_cost(G, "w+")
    cost = RowCost(per_row=2 * render.per_row + 3 * wbytes, fixed=render.fixed, how=render.how)
    chunk = s.batch_size or rows_that_fit(G, B, cost, cap=64, what=what)

    def one(a: int, b: int) -> tuple[Tensor, list[Tensor], list[dict[str, Tensor]]]:
        yc = y[a:b]
        lat, pimg = compute_pivot(G, yc, enc, pivot_passes)
        runs = run_hyper_passes(net, G, yc, lat, pimg, passes)  # type: ignore[arg-type]
        total, _ = runs[-1]
        deltas = [weight_differences(base, total, i) for i in range(yc.shape[0])]
        return lat, [pimg] + [img for _, img in runs], deltas

    with _FrozenGenerator(G), torch.no_grad():
        parts = run_halving(one, B, chunk, device=G.device, what=what)
    latent = torch.cat([p[0] for p in parts])
    per_pass = [torch.cat([p[1][k] for p in parts]).clamp(0, 1) for k in range(passes + 1)]
    deltas = [d for p in parts for d in p[2]]
    image = per_pass[-1]
    metrics = {"psnr": M.psnr(image, y).float().cpu(), "ssim": M.ssim(image, y).float().cpu(),
               "loss": (image - y).flatten(1).square().mean(1).cpu(),
               "steps": torch.full((B,), passes, dtype=torch.long),
               "pivot_psnr": M.psnr(per_pass[0], y).float().cpu()}
    history = {"psnr": [M.psnr(img, y).float().cpu().tolist() for img in per_pass]}
    settings_out = {**s.to_dict(), "passes": passes, "pivot_passes": pivot_passes, "layers": net.layer_names,
                    "pivot_encoder": info.get("encoder") if encoder is None else "given",
                    "generator_fingerprint": generator_fingerprint(G)}
    return InversionResult(latent=latent.detach(), space="w+", image=image, noise=None, metrics=metrics,
                           history=history, method="hyper", seconds=time.perf_counter() - t0,
                           settings=settings_out, deltas=deltas)


__all__ = ["HyperSettings", "invert_hyper", "pivot_encoder"]
