"""StyleGAN2 synthesis with *per-row* convolution weights (a functional path; the generator is not changed).

:class:`~ganinv.generators.stylegan2.StyleGAN2Generator` shares one weight per convolution across the batch.
A hypernetwork (:mod:`ganinv.encoders.hyper`) gives every image its own weights for some convolutions, so
this module re-runs the generator's synthesis with, for the named layers, a weight per batch row:

* the modulated convolution keeps the generator's non-fused form (scale the inputs by the style, convolve,
  demodulate the outputs), but the convolution is a *grouped* one (``groups = B``, one group per row), and the
  demodulation coefficients come from each row's own weight;
* every other layer (and every layer not named) is the generator's own module, called as the generator calls it.

Layers are named like their parameters in the generator: ``conv1`` (4 px) and ``convs.<j>`` (``j`` even:
the upsampling convolution of the ``8·2^(j//2)`` px block, ``j`` odd: the second one). The per-row weight of a
layer is given in the stored parameter's units (``<layer>.conv.weight[0]`` is ``[out, in, k, k]``), so a row
whose weight equals the stored one renders what the generator renders (to float rounding: grouped vs shared
convolution), and a weight ``θ + d`` renders what ``apply_deltas(G, {"<layer>.conv.weight.delta": d})`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.stylegan2 import ModulatedConv2d, StyledConv, StyleGAN2Generator


def conv_layers(G: StyleGAN2Generator) -> dict[str, StyledConv]:
    """The generator's non-toRGB convolutions by name: ``{"conv1": …, "convs.0": …, …}`` (synthesis order)."""
    out: dict[str, StyledConv] = {"conv1": G.conv1}
    for j, layer in enumerate(G.convs):
        out[f"convs.{j}"] = layer  # type: ignore[assignment]
    return out


def layer_resolution(name: str) -> int:
    """The output resolution of convolution ``name`` (``conv1`` → 4, ``convs.<j>`` → ``8·2^(j//2)``)."""
    if name == "conv1":
        return 4
    return 8 * 2 ** (int(name.split(".")[1]) // 2)


def modulated_conv_rows(conv: ModulatedConv2d, x: Tensor, style: Tensor, weight: Tensor) -> Tensor:
    """``conv`` with one weight per row.

    Args:
        conv: the generator's modulated convolution (its modulation, scale, padding, blur are used).
        x: input activations ``[B, in, H, W]``.
        style: the layer's w codes ``[B, w_dim]``.
        weight: per-row weights ``[B, out, in, k, k]`` in the stored parameter's units (before ``conv.scale``).
    Returns:
        ``[B, out, H', W']`` (``H' = 2H`` for the upsampling convolution).
    """
    B, c_in, H, W = x.shape
    c_out, k = conv.out_channel, conv.kernel_size
    if tuple(weight.shape) != (B, c_out, c_in, k, k):
        raise InputError(f"per-row weights must be {[B, c_out, c_in, k, k]}, got {list(weight.shape)}")
    w = conv.scale * weight
    s = conv.modulation(style)  # [B, in]
    xs = (x * s.view(B, c_in, 1, 1)).reshape(1, B * c_in, H, W)
    if conv.upsample:
        out = F.conv_transpose2d(xs, w.transpose(1, 2).reshape(B * c_in, c_out, k, k), stride=2, groups=B)
        out = conv.blur(out.view(B, c_out, *out.shape[2:]))
    else:
        out = F.conv2d(xs, w.reshape(B * c_out, c_in, k, k), padding=conv.padding, groups=B)
        out = out.view(B, c_out, *out.shape[2:])
    if conv.demodulate:
        w2 = w.square().sum(dim=(3, 4))  # [B, out, in]
        dcoefs = torch.rsqrt(torch.einsum("boi,bi->bo", w2, s.square()) + 1e-8)
        out = out * dcoefs.view(B, c_out, 1, 1)
    return out


def _styled(layer: StyledConv, x: Tensor, style: Tensor, noise: Tensor | None, weight: Tensor | None) -> Tensor:
    if weight is None:
        return layer(x, style, noise=noise)
    return layer.activate(layer.noise(modulated_conv_rows(layer.conv, x, style, weight), noise=noise))


def synthesis_rows(G: StyleGAN2Generator, ws: Tensor, weights: Mapping[str, Tensor],
                   noise: list[Tensor | None] | None = None) -> Tensor:
    """``G.synthesis`` with per-row weights for the layers in ``weights``.

    Args:
        G: a StyleGAN2 generator (not modified).
        ws: w+ codes ``[B, num_ws, w_dim]``.
        weights: ``{layer name: [B, out, in, k, k]}`` (see :func:`conv_layers`); other layers use G's weight.
        noise: per-layer noise maps (None: the generator's stored ones, as :meth:`Generator.synthesize` uses).
    Returns:
        the native image ``[B, C, H, W]`` (~[-1, 1], after the output activation).
    """
    if not isinstance(G, StyleGAN2Generator):
        raise InputError(f"per-row weights need a StyleGAN2 generator, not {type(G).__name__}")
    unknown = sorted(set(weights) - set(conv_layers(G)))
    if unknown:
        raise InputError(f"unknown convolution layer(s) {unknown}; this generator has {', '.join(conv_layers(G))}")
    noise = list(G.stored_noise()) if noise is None else list(noise)
    if len(noise) != G.num_layers:
        raise InputError(f"expected {G.num_layers} noise maps, got {len(noise)}")
    out = _styled(G.conv1, G.input(ws.shape[0]), ws[:, 0], noise[0], weights.get("conv1"))
    skip = G.to_rgb1(out, ws[:, 1])
    i = 1
    for b in range(len(G.to_rgbs)):
        out = _styled(G.convs[2 * b], out, ws[:, i], noise[2 * b + 1], weights.get(f"convs.{2 * b}"))
        out = _styled(G.convs[2 * b + 1], out, ws[:, i + 1], noise[2 * b + 2], weights.get(f"convs.{2 * b + 1}"))
        skip = G.to_rgbs[b](out, ws[:, i + 2], skip)
        i += 2
    return G._finish(skip)


__all__ = ["conv_layers", "layer_resolution", "modulated_conv_rows", "synthesis_rows"]
