"""StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks") in pure PyTorch.

One class, :class:`StyleGAN3Generator`, covers both published configurations:

* **StyleGAN3-T** (translation equivariant): the defaults — 3×3 convolutions, separable
  Kaiser low-pass filters;
* **StyleGAN3-R** (rotation equivariant too): ``conv_kernel=1``, ``use_radial_filters=True``
  and, in NVIDIA's training configs, doubled ``channel_base`` / ``channel_max``
  (:func:`stylegan3_r_config`).

The computation is the one of NVIDIA's ``training/networks_stylegan3.py`` (the layer schedule
of cutoffs, stop bands and sampling rates; Fourier-feature input; modulated convolutions with
magnitude-EMA input gain; filtered leaky ReLU) so their network pickles convert exactly
(:mod:`ganinv.generators.nvidia_stylegan3`). The implementation is ours; in particular the
filtered leaky ReLU never builds the zero-stuffed upsampled image:

* upsampling by ``u`` is done *polyphase*: ``u²`` depthwise convolutions with the sub-sampled
  ``T×T`` filter taps (``T = taps / u``), each written into every ``u``-th pixel of the
  result — ``u²``× fewer multiply-adds than filtering the zero-stuffed image;
* downsampling by ``d`` is one depthwise convolution with stride ``d``, so discarded pixels
  are never computed;
* all resampling runs on channels-last tensors, where oneDNN's depthwise kernels are fastest
  on CPU (a 2-D ``12×12`` depthwise pass beat two separable ``1×12`` passes there, so
  separable filters are applied as their outer product);
* the upsampler's and downsampler's backward passes are each other (the adjoint of
  polyphase upsampling is strided filtering and vice versa), so gradients for inversion
  are as fast as the forward pass and twice-differentiable;
* the leaky ReLU gain is folded into the upsampling taps (exact: ``lrelu(g·x) = g·lrelu(x)``
  for ``g > 0``) and ``clamp(lrelu(x), ±c)`` is computed as ``lrelu(clamp(x, −c/slope, c))``.

Layout: ``mapping.fc{i}.{weight,bias}``, ``input.{weight,affine.*,transform,freqs,phases}``,
``layers.{i}.{affine.*,weight,bias,magnitude_ema,up_filter,down_filter}`` (filters are absent
where a layer has none, i.e. the final ToRGB layer). Raw parameters are stored as NVIDIA
stores them (equalised-learning-rate gains are applied at run time).

Class-conditional generators (``c_dim > 0``) embed the class in the mapping network as NVIDIA's do
(``mapping.embed.*``). Not (yet) supported: updating the magnitude EMAs during training. fp16 layers of
NVIDIA's models run in fp32 here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import LatentSpace, StyleGenerator, _chunks, check_c_dim, check_class_input
from ganinv.generators.base import check_resolution, random_classes

SQRT2 = math.sqrt(2.0)
_CL = torch.channels_last


# ----------------------------------------------------------------------------------
# Filter design and the layer schedule
# ----------------------------------------------------------------------------------
def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> np.ndarray | None:
    """Windowed-sinc (or, radially symmetric, windowed-jinc) low-pass FIR filter.

    Args:
        numtaps: filter length; ``1`` means no filter (returns ``None``).
        cutoff: cutoff frequency (same unit as ``fs``: cycles per unit length).
        width: transition band width; sets the Kaiser window's β.
        fs: sampling rate.
        radial: a 2-D ``[numtaps, numtaps]`` jinc filter (circularly symmetric pass band)
            windowed by a separable Kaiser window, instead of a 1-D ``[numtaps]`` filter.

    Returns:
        float64 taps summing to 1 (``None`` for ``numtaps == 1``).
    """
    if numtaps < 1:
        raise InputError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    import scipy.signal  # imported here: scipy.signal takes a while to import and is needed only to build layers
    import scipy.special

    if not radial:
        return np.asarray(scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs), dtype=np.float64)
    pos = (np.arange(numtaps, dtype=np.float64) - (numtaps - 1) / 2) / fs
    radius = np.sqrt(pos[:, None] ** 2 + pos[None, :] ** 2)
    arg = np.pi * radius
    with np.errstate(invalid="ignore", divide="ignore"):
        jinc = np.where(radius > 0, scipy.special.j1(2 * cutoff * arg) / np.where(arg > 0, arg, 1.0), cutoff)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    taps = jinc * np.outer(window, window)
    return taps / taps.sum()


@dataclass(frozen=True)
class LayerSpec:
    """Geometry of one synthesis layer (all frequencies in cycles per image width).

    ``padding`` is ``(x_before, x_after, y_before, y_after)`` on the upsampled image (negative: crop).
    """

    index: int
    is_torgb: bool
    is_critical: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_rate: float
    out_rate: float
    tmp_rate: float
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]

    @property
    def nvidia_name(self) -> str:
        """NVIDIA's attribute name for this layer: ``L{index}_{out_size}_{out_channels}``."""
        return f"L{self.index}_{self.out_size}_{self.out_channels}"


@dataclass(frozen=True)
class InputSpec:
    """Fourier-feature input: ``channels`` features sampled on ``size × size`` points at ``rate``."""

    channels: int
    size: int
    rate: float
    bandwidth: float


def synthesis_schedule(resolution: int, img_channels: int, *, channel_base: int, channel_max: int, num_layers: int,
                       num_critical: int, first_cutoff: float, first_stopband: float, last_stopband_rel: float,
                       margin_size: int, conv_kernel: int, filter_size: int, lrelu_upsampling: int,
                       use_radial_filters: bool) -> tuple[InputSpec, list[LayerSpec]]:
    """The alias-free layer schedule: cutoffs and minimum stop bands grow geometrically from
    ``first_*`` to the output's Nyquist frequency over the first ``num_layers − num_critical`` layers
    and stay there (the last ``num_critical`` layers are critically sampled); each layer samples at the
    smallest power of two above twice its stop band (at most ``resolution``), with ``margin_size``
    extra samples on each side, except the last two, which are exactly ``resolution`` wide.

    Returns:
        the input's geometry and ``num_layers + 1`` layer geometries (the last one is ToRGB).
    """
    if num_layers < 1 or not 0 <= num_critical < num_layers:
        raise InputError(f"need num_layers ≥ 1 and 0 ≤ num_critical < num_layers, got {num_layers}, {num_critical}")
    last_cutoff = resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    n_grow = num_layers - num_critical
    cutoffs, stopbands, rates, half_widths, sizes, channels = [], [], [], [], [], []
    for i in range(num_layers + 1):
        e = min(i / n_grow, 1.0)
        fc = first_cutoff * (last_cutoff / first_cutoff) ** e
        ft = first_stopband * (last_stopband / first_stopband) ** e
        rate = 2.0 ** math.ceil(math.log2(min(ft * 2, resolution)))
        cutoffs.append(fc)
        stopbands.append(ft)
        rates.append(rate)
        half_widths.append(max(ft, rate / 2) - fc)
        sizes.append(int(rate + margin_size * 2))
        channels.append(int(round(min((channel_base / 2) / fc, channel_max))))
    sizes[-2] = sizes[-1] = resolution
    channels[-1] = img_channels
    if min(channels) < 1:
        raise InputError(f"channel_base={channel_base} / channel_max={channel_max} give a layer with no channels")

    specs: list[LayerSpec] = []
    for i in range(num_layers + 1):
        prev = max(i - 1, 0)
        is_torgb = i == num_layers
        in_rate, out_rate = int(rates[prev]), int(rates[i])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_upsampling)
        up, down = int(round(tmp_rate / in_rate)), int(round(tmp_rate / out_rate))
        if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
            raise InputError(f"layer {i}: sampling rates {in_rate} → {tmp_rate} → {out_rate} are not whole ratios")
        kernel = 1 if is_torgb else conv_kernel
        up_taps = filter_size * up if up > 1 and not is_torgb else 1
        down_taps = filter_size * down if down > 1 and not is_torgb else 1
        critical = i >= num_layers - num_critical
        total = (sizes[i] - 1) * down + 1 - (sizes[prev] + kernel - 1) * up + up_taps + down_taps - 2
        lo = (total + up) // 2
        hi = total - lo
        specs.append(LayerSpec(
            index=i, is_torgb=is_torgb, is_critical=critical, in_channels=channels[prev], out_channels=channels[i],
            in_size=sizes[prev], out_size=sizes[i], in_rate=in_rate, out_rate=out_rate, tmp_rate=tmp_rate,
            in_cutoff=cutoffs[prev], out_cutoff=cutoffs[i], in_half_width=half_widths[prev],
            out_half_width=half_widths[i], conv_kernel=kernel, up=up, down=down, up_taps=up_taps,
            down_taps=down_taps, down_radial=use_radial_filters and not critical, padding=(lo, hi, lo, hi)))
    return InputSpec(channels=channels[0], size=sizes[0], rate=rates[0], bandwidth=cutoffs[0]), specs


# ----------------------------------------------------------------------------------
# Resampling: polyphase upsampling and strided downsampling, each the other's adjoint
# ----------------------------------------------------------------------------------
def _axis_plan(n_in: int, taps: int, up: int, pad0: int, pad1: int) -> tuple[int, int, int, int, int]:
    """Polyphase bookkeeping for one axis of an upsampling by ``up``.

    With ``k`` the flipped ``taps``-long filter, output ``n`` (``0 ≤ n < n_out``) equals
    ``Σ_j k[up·j + up − 1 − ρ] · x[q + j]`` for ``n = up·(q − 1) + pad0 + 1 + ρ``, ``0 ≤ ρ < up``.

    Returns:
        ``(n_out, phase_taps, pad_left, pad_right, shift)``: pad the input by ``pad_left`` /
        ``pad_right`` (negative: crop), correlate each phase ``ρ`` with its ``phase_taps`` taps; phase
        ``ρ``'s output ``i`` lands at ``n = up·i + ρ − shift``.
    """
    n_out = n_in * up + pad0 + pad1 - taps + 1
    phase_taps = -(-taps // up)
    q0 = (-pad0 - 1) // up + 1  # first q whose phases reach n ≥ 0
    shift = -(up * (q0 - 1) + pad0 + 1)  # 0 ≤ shift < up
    n_q = -(-(n_out + shift) // up)
    return n_out, phase_taps, -q0, q0 + n_q + phase_taps - 1 - n_in, shift


def _upsample_forward(x: Tensor, f: Tensor, up: int, padding: tuple[int, int, int, int]) -> Tensor:
    b, c, h, w = x.shape
    ly, lx = f.shape
    px0, px1, py0, py1 = padding
    ny, ty, ply, pry, sy = _axis_plan(h, ly, up, py0, py1)
    nx, tx, plx, prx, sx = _axis_plan(w, lx, up, px0, px1)
    if ny <= 0 or nx <= 0:
        raise InputError(f"upsampling a {h}×{w} input with padding {padding} leaves nothing")
    k = f.flip(0, 1)
    k = F.pad(k, [0, up * tx - lx, 0, up * ty - ly])
    xp = F.pad(x.contiguous(memory_format=_CL), [plx, prx, ply, pry])
    out = torch.empty((b, c, ny, nx), dtype=x.dtype, device=x.device, memory_format=_CL)
    for ry in range(up):
        oy0 = (ry - sy) % up  # first output row of this phase
        iy0 = (oy0 + sy - ry) // up
        cy = -(-(ny - oy0) // up)
        for rx in range(up):
            ox0 = (rx - sx) % up
            ix0 = (ox0 + sx - rx) // up
            cx = -(-(nx - ox0) // up)
            kp = k[up - 1 - ry::up, up - 1 - rx::up].to(x.dtype)
            z = F.conv2d(xp, kp.expand(c, 1, ty, tx), groups=c)
            out[:, :, oy0::up, ox0::up] = z[:, :, iy0:iy0 + cy, ix0:ix0 + cx]
    return out


def _downsample_forward(x: Tensor, f: Tensor, down: int) -> Tensor:
    c = x.shape[1]
    ly, lx = f.shape
    k = f.flip(0, 1).to(x.dtype)
    return F.conv2d(x.contiguous(memory_format=_CL), k.expand(c, 1, ly, lx), stride=down, groups=c)


def _fold_vmap(fn: Any, in_dims: tuple[int | None, ...], x: Tensor, f: Tensor, *rest: Any) -> tuple[Tensor, int]:
    """The ``torch.func.vmap`` rule of :class:`_Upsample` / :class:`_Downsample`: both are depthwise over the
    image batch, so a vmapped batch of images (PTI renders one tuned generator per image this way) is folded
    into the image batch, resampled in one call, and unfolded. The filter is a buffer, never vmapped."""
    if in_dims[1] is not None:
        raise NotImplementedError("vmap over the resampling filter itself")
    x = x.movedim(in_dims[0], 0)
    return fn.apply(x.flatten(0, 1), f, *rest).unflatten(0, x.shape[:2]), 0


class _Upsample(torch.autograd.Function):
    """``upfirdn2d`` with ``up``: zero-stuff ``x`` by ``up``, pad by ``padding``, convolve with ``f``."""

    @staticmethod
    def forward(x: Tensor, f: Tensor, up: int, padding: tuple[int, int, int, int]) -> Tensor:
        return _upsample_forward(x, f, up, padding)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _, f, up, padding = inputs
        ctx.save_for_backward(f)
        ctx.up, ctx.padding = up, padding

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], x: Tensor, f: Tensor, up: int,
             padding: tuple[int, int, int, int]) -> tuple[Tensor, int]:
        return _fold_vmap(_Upsample, in_dims, x, f, up, padding)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (f,) = ctx.saved_tensors
        ly, lx = f.shape
        px0, px1, py0, py1 = ctx.padding
        up = ctx.up
        g = F.pad(grad, [lx - 1 - px0, lx - up - px1, ly - 1 - py0, ly - up - py1])
        return _Downsample.apply(g, f.flip(0, 1), up), None, None, None


class _Downsample(torch.autograd.Function):
    """``upfirdn2d`` with ``down``: convolve ``x`` with ``f`` (no padding), keep every ``down``-th pixel."""

    @staticmethod
    def forward(x: Tensor, f: Tensor, down: int) -> Tensor:
        return _downsample_forward(x, f, down)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, f, down = inputs
        ctx.save_for_backward(f)
        ctx.down, ctx.in_shape = down, tuple(x.shape[2:])

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], x: Tensor, f: Tensor, down: int) -> tuple[Tensor, int]:
        return _fold_vmap(_Downsample, in_dims, x, f, down)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (f,) = ctx.saved_tensors
        ly, lx = f.shape
        d = ctx.down
        h, w = ctx.in_shape
        pad = (lx - 1, w - grad.shape[3] * d, ly - 1, h - grad.shape[2] * d)
        return _Upsample.apply(grad, f.flip(0, 1), d, pad), None, None


def upsample2d(x: Tensor, f: Tensor | None, up: int, padding: tuple[int, int, int, int]) -> Tensor:
    """NVIDIA ``upfirdn2d(x, f, up=up, padding=padding)`` semantics without building the zero-stuffed image.

    Args:
        x: ``[B, C, H, W]``.
        f: 2-D filter ``[Ly, Lx]`` (convolution, i.e. not flipped), gain included; ``None`` = identity.
        up: upsampling factor ≥ 1.
        padding: ``(x0, x1, y0, y1)`` on the upsampled image, negative values crop.

    Returns:
        ``[B, C, H·up + y0 + y1 − Ly + 1, W·up + x0 + x1 − Lx + 1]``, channels-last.
    """
    if f is None:
        if up != 1:
            f = x.new_ones(1, 1)
        else:
            px0, px1, py0, py1 = padding
            return F.pad(x, [px0, px1, py0, py1]) if any(padding) else x
    return _Upsample.apply(x, f, up, padding)


def downsample2d(x: Tensor, f: Tensor | None, down: int) -> Tensor:
    """NVIDIA ``upfirdn2d(x, f, down=down)`` semantics, computing only the kept pixels.

    Args:
        x: ``[B, C, H, W]``.
        f: 2-D filter ``[Ly, Lx]`` (convolution), or ``None`` = identity.
        down: downsampling factor ≥ 1.

    Returns:
        ``[B, C, (H − Ly) // down + 1, (W − Lx) // down + 1]``, channels-last.
    """
    if f is None:
        return x if down == 1 else x[:, :, ::down, ::down]
    return _Downsample.apply(x, f, down)


def filtered_leaky_relu(x: Tensor, up_filter: Tensor | None, down_filter: Tensor | None, up: int, down: int,
                        padding: tuple[int, int, int, int], gain: float = SQRT2, slope: float = 0.2,
                        clamp: float | None = None) -> Tensor:
    """Upsample → leaky ReLU × ``gain`` → clamp to ±``clamp`` → downsample (bias already added).

    Equal to NVIDIA's ``filtered_lrelu(x, fu, fd, b=None, up, down, padding, gain, slope, clamp)``
    with the separable 1-D filters given as their 2-D outer products.

    Args:
        x: ``[B, C, H, W]`` (any memory format).
        up_filter: 2-D upsampling filter ``[L, L]`` including the ``up²`` gain, or ``None``.
        down_filter: 2-D downsampling filter ``[L, L]`` or ``None``.
        up, down: resampling factors.
        padding: ``(x0, x1, y0, y1)`` on the upsampled image.
        gain: positive scale after the activation.
        slope: leaky ReLU negative slope ≥ 0 (1 = linear).
        clamp: clamp magnitude or ``None``.

    Returns:
        ``[B, C, H_out, W_out]`` channels-last.
    """
    if gain <= 0 or slope < 0:
        raise InputError(f"filtered_leaky_relu needs gain > 0 and slope ≥ 0, got {gain}, {slope}")
    group = _channel_group(x, up, padding, up_filter)
    if group < x.shape[1]:  # every step is per channel: a group's upsampled image stays in the CPU's caches
        return torch.cat([_filtered_leaky_relu(x[:, i:i + group], up_filter, down_filter, up, down, padding, gain,
                                               slope, clamp) for i in range(0, x.shape[1], group)], dim=1)
    return _filtered_leaky_relu(x, up_filter, down_filter, up, down, padding, gain, slope, clamp)


#: Bytes of upsampled activations a CPU processes at once in :func:`filtered_leaky_relu` (channel groups): the
#: upsampled image is 4× its input and, for a whole batch, far larger than the caches. Measured on a 64 px
#: StyleGAN3-T (128 channels), forward + backward in W+: batch 4 is 1.27-1.32× faster grouped (1 and 2 threads),
#: batch 1 is unchanged (0.90-1.09×, within noise); the values are bit-identical.
CPU_GROUP_BYTES = 8 << 20


def _channel_group(x: Tensor, up: int, padding: tuple[int, int, int, int], up_filter: Tensor | None) -> int:
    """Channels per group of :func:`filtered_leaky_relu` (all of them on a GPU, or when the image is small)."""
    if x.device.type != "cpu":
        return x.shape[1]
    taps = 1 if up_filter is None else up_filter.shape[-1]
    px0, px1, py0, py1 = padding
    h, w = _axis_plan(x.shape[2], taps, up, py0, py1)[0], _axis_plan(x.shape[3], taps, up, px0, px1)[0]
    per_channel = x.shape[0] * max(h, 1) * max(w, 1) * x.element_size()
    return max(1, min(x.shape[1], CPU_GROUP_BYTES // per_channel))


def _filtered_leaky_relu(x: Tensor, up_filter: Tensor | None, down_filter: Tensor | None, up: int, down: int,
                         padding: tuple[int, int, int, int], gain: float, slope: float,
                         clamp: float | None) -> Tensor:
    src = x
    if gain != 1.0:
        if up_filter is not None:
            up_filter = up_filter * gain
        else:
            x = x * gain
    x = upsample2d(x, up_filter, up, padding)
    fresh = x is not src  # a new tensor: safe (also under autograd) to modify in place
    if clamp is not None:
        lo = -clamp / slope if slope > 0 else -clamp
        x = x.clamp_min_(lo).clamp_max_(clamp) if fresh else x.clamp(lo, clamp)  # (clamp_ has no vmap rule)
        fresh = True
    if slope != 1.0:
        x = F.leaky_relu_(x, slope) if fresh else F.leaky_relu(x, slope)
    return downsample2d(x, down_filter, down)


# ----------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------
class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer: ``y = x @ (weight · lr/√in)ᵀ + bias · lr``, optionally
    followed by ``lrelu(·, 0.2) · √2``.

    ``weight`` ``[out, in]`` and ``bias`` ``[out]`` hold NVIDIA's raw (pre-gain) values.
    """

    def __init__(self, in_features: int, out_features: int, lr_multiplier: float = 1.0, activation: bool = False,
                 weight_init: float = 1.0, bias_init: float | list[float] = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        self.bias = nn.Parameter(torch.as_tensor(bias_init, dtype=torch.float32).expand(out_features) / lr_multiplier)
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[B, in]`` → ``[B, out]``."""
        y = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(y, 0.2) * SQRT2 if self.activation else y


def _unit_second_moment(x: Tensor) -> Tensor:
    """Scale each row of ``x`` ``[B, D]`` to unit mean square (ε = 1e-8)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """z ``[B, z_dim]`` (and a class ``c`` ``[B, c_dim]`` when ``c_dim > 0``) → w ``[B, w_dim]``.

    z is normalised to unit second moment; a conditional network also embeds ``c`` with ``embed``
    (linear ``c_dim → w_dim``, learning-rate multiplier 1), normalises the embedding the same way and
    concatenates it after z; then ``layers`` FC + lrelu layers (the first takes ``z_dim + w_dim`` inputs
    when conditional).
    """

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_multiplier: float, c_dim: int = 0) -> None:
        super().__init__()
        self.num_layers, self.c_dim = layers, c_dim
        if c_dim:
            self.embed = FullyConnected(c_dim, w_dim)
        first = z_dim + (w_dim if c_dim else 0)
        for i in range(layers):
            self.add_module(f"fc{i}", FullyConnected(first if i == 0 else w_dim, w_dim, lr_multiplier, activation=True))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        c = check_class_input(self.c_dim, c, z.shape[0], "stylegan3")
        x = _unit_second_moment(z.float())
        if c is not None:
            x = torch.cat([x, _unit_second_moment(self.embed(c.to(z.device, torch.float32)))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class FourierInput(nn.Module):
    """Fourier features ``sin(2π(f·p + φ))`` on a ``size × size`` grid, rotated and translated by an
    affine of w and by the user transform, then mixed by a learned ``weight`` ``[C, C]``.

    Buffers: ``freqs`` ``[C, 2]`` (cycles per unit, inside a disc of radius ``bandwidth``),
    ``phases`` ``[C]``, ``transform`` ``[3, 3]`` (identity by default: the *inverse* of the
    transform the image should undergo, in units of the output image width, origin at the centre).
    """

    def __init__(self, w_dim: int, spec: InputSpec) -> None:
        super().__init__()
        self.channels, self.size, self.rate, self.bandwidth = spec.channels, spec.size, spec.rate, spec.bandwidth
        freqs = torch.randn(spec.channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * spec.bandwidth
        self.weight = nn.Parameter(torch.randn(spec.channels, spec.channels))
        self.affine = FullyConnected(w_dim, 4, weight_init=0.0, bias_init=[1.0, 0.0, 0.0, 0.0])
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(spec.channels) - 0.5)

    def forward(self, w: Tensor, transform: Tensor | None = None) -> Tensor:
        """``w`` ``[B, w_dim]`` (and an optional per-call transform ``[3, 3]`` / ``[B, 3, 3]`` replacing
        the buffer) → features ``[B, C, size, size]`` (channels-last)."""
        b = w.shape[0]
        user = self.transform if transform is None else transform.to(w)
        user = user.expand(b, 3, 3) if user.dim() == 2 else user
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # rotation · translation (both inverse, w.r.t. the image), then the user transform
        learned = torch.stack([
            torch.stack([cos, -sin, -(cos * tx - sin * ty)], 1),
            torch.stack([sin, cos, -(sin * tx + cos * ty)], 1),
            torch.stack([zero, zero, one], 1)], 1)
        m = learned @ user
        phases = self.phases + (self.freqs @ m[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = self.freqs @ m[:, :2, :2]  # [B, C, 2]
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.rate / 2 - self.bandwidth)).clamp(0, 1)
        grid = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2) / self.rate
        arg = (grid.view(1, 1, -1, 1) * freqs[:, None, None, :, 0] + grid.view(1, -1, 1, 1) * freqs[:, None, None, :, 1]
               + phases[:, None, None, :])  # [B, y, x, C]
        feats = torch.sin(arg * (2 * math.pi)) * amp[:, None, None, :]
        feats = feats @ (self.weight / math.sqrt(self.channels)).t()
        return feats.permute(0, 3, 1, 2)  # channels-last memory


class AliasFreeLayer(nn.Module):
    """Modulated convolution + filtered leaky ReLU (or, for the last layer, the linear ToRGB).

    ``y = filtered_lrelu(demod ⊙ conv(x ⊙ s ⊙ g, Ŵ) + bias)``, with ``s = affine(w)`` (normalised per
    sample), ``Ŵ`` the weight normalised per output channel, ``g = magnitude_ema^{-1/2}`` and
    ``demod[b, o] = (Σ (Ŵ[o] s[b])² + 1e-8)^{-1/2}``; the convolution is "full" (padding ``k − 1``).
    ToRGB: no demodulation, ``s`` scaled by ``1/√(in·k²)``, no activation, no resampling (clamp kept).

    While :attr:`update_emas` is set (:meth:`StyleGAN3Generator.updating_emas`, the training loop's
    discriminator step), each call first moves ``magnitude_ema`` towards the input's mean square,
    ``ema ← mean(x²) + magnitude_ema_beta · (ema − mean(x²))``, as NVIDIA's training does; otherwise the
    buffer is only read.

    Args:
        spec: the layer's geometry.
        w_dim: style size.
        conv_clamp: clamp magnitude or ``None``.
        magnitude_ema_beta: the EMA's decay per update.
    """

    update_emas: bool = False

    def __init__(self, spec: LayerSpec, w_dim: int, conv_clamp: float | None,
                 magnitude_ema_beta: float = 0.999) -> None:
        super().__init__()
        self.spec = spec
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        k = spec.conv_kernel
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        up = lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_rate)
        down = lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, spec.tmp_rate,
                              radial=spec.down_radial)
        self.up_filter: Tensor | None
        self.down_filter: Tensor | None
        self.register_buffer("up_filter", None if up is None else torch.tensor(up, dtype=torch.float32))
        self.register_buffer("down_filter", None if down is None else torch.tensor(down, dtype=torch.float32))

    def _filters(self) -> tuple[Tensor | None, Tensor | None]:
        """The 2-D filters (separable ones as outer products; the upsampler with its ``up²`` gain)."""
        up, down = self.up_filter, self.down_filter
        if up is not None:
            up = (up[:, None] * up[None, :] if up.dim() == 1 else up) * (self.spec.up ** 2)
        if down is not None and down.dim() == 1:
            down = down[:, None] * down[None, :]
        return up, down

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x`` ``[B, in_channels, in_size, in_size]``, ``w`` ``[B, w_dim]`` →
        ``[B, out_channels, out_size, out_size]`` (channels-last)."""
        spec = self.spec
        if self.update_emas:
            with torch.no_grad():
                current = x.detach().float().square().mean()
                self.magnitude_ema.copy_(current.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        gain = self.magnitude_ema.rsqrt()
        k = spec.conv_kernel
        if spec.is_torgb:
            styles = styles * (1 / math.sqrt(spec.in_channels * k * k))
            y = F.conv2d(x * (styles * gain)[:, :, None, None], self.weight, padding=k - 1)
            y = y + self.bias.view(1, -1, 1, 1)
        else:
            weight = self.weight * self.weight.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
            styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
            y = F.conv2d(x * (styles * gain)[:, :, None, None], weight, padding=k - 1)
            demod = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # [B, out]
            y = torch.addcmul(self.bias.view(1, -1, 1, 1), y, demod[:, :, None, None])
        up, down = self._filters()
        return filtered_leaky_relu(y, up, down, spec.up, spec.down, spec.padding,
                                   gain=1.0 if spec.is_torgb else SQRT2, slope=1.0 if spec.is_torgb else 0.2,
                                   clamp=self.conv_clamp)


# ----------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------
def stylegan3_r_config(resolution: int, **kwargs: Any) -> dict[str, Any]:
    """Constructor arguments of NVIDIA's ``stylegan3-r`` training config at ``resolution`` (1×1 convolutions,
    radial filters, doubled widths); ``kwargs`` override. The defaults of :class:`StyleGAN3Generator` are
    ``stylegan3-t``'s."""
    cfg: dict[str, Any] = {"resolution": resolution, "conv_kernel": 1, "use_radial_filters": True,
                           "channel_base": 65536, "channel_max": 1024}
    cfg.update(kwargs)
    return cfg


class StyleGAN3Generator(StyleGenerator):
    """StyleGAN3 generator (-T by default; -R with :func:`stylegan3_r_config`).

    Latent spaces: ``z`` ``[z_dim]`` (standard normal), ``w`` ``[w_dim]`` (mapped), ``w+``
    ``[num_ws, w_dim]`` with ``num_ws = num_layers + 2`` (row 0 drives the Fourier input's
    rotation/translation, row ``i + 1`` layer ``i``). No noise inputs. Native output range
    ~[-1, 1] (``synthesize`` returns [0, 1]).

    The input transform (:attr:`input_transform`, :meth:`set_transform`) translates / rotates the
    generated image continuously: see :func:`image_transform`.

    Args mirror NVIDIA's ``Generator`` / ``SynthesisNetwork`` / ``SynthesisLayer`` arguments
    (``mapping_layers`` and ``lr_mlp`` are its ``mapping_kwargs.num_layers`` / ``lr_multiplier``); ``c_dim > 0``
    makes a class-conditional generator whose z → w mapping takes a class ``c`` ``[B, c_dim]``
    (:class:`MappingNetwork`, :meth:`convert`'s ``c``).
    """

    arch = "stylegan3"

    def __init__(self, resolution: int = 256, img_channels: int = 3, z_dim: int = 512, w_dim: int = 512,
                 mapping_layers: int = 2, lr_mlp: float = 0.01, w_avg_beta: float = 0.998,
                 channel_base: int = 32768, channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
                 first_cutoff: float = 2.0, first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                 margin_size: int = 10, output_scale: float = 0.25, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999, c_dim: int = 0) -> None:
        super().__init__()
        check_resolution(resolution)
        self.c_dim = check_c_dim(c_dim)
        if resolution < 16:
            raise InputError(f"StyleGAN3 needs resolution ≥ 16, got {resolution}")
        for name, value in (("img_channels", img_channels), ("z_dim", z_dim), ("w_dim", w_dim),
                            ("mapping_layers", mapping_layers), ("conv_kernel", conv_kernel),
                            ("filter_size", filter_size), ("lrelu_upsampling", lrelu_upsampling)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive whole number, got {value!r}")
        if conv_clamp is not None and not conv_clamp > 0:
            raise InputError(f"conv_clamp must be positive or None, got {conv_clamp!r}")
        self.resolution, self.channels = resolution, img_channels
        self.image_shape = (img_channels, resolution, resolution)
        self.output_range = (-1.0, 1.0)
        self.z_dim, self.w_dim, self.mapping_layers, self.lr_mlp = z_dim, w_dim, mapping_layers, float(lr_mlp)
        self.w_avg_beta = float(w_avg_beta)
        self.synthesis_kwargs: dict[str, Any] = {
            "channel_base": channel_base, "channel_max": channel_max, "num_layers": num_layers,
            "num_critical": num_critical, "first_cutoff": float(first_cutoff), "first_stopband": float(first_stopband),
            "last_stopband_rel": float(last_stopband_rel), "margin_size": margin_size, "conv_kernel": conv_kernel,
            "filter_size": filter_size, "lrelu_upsampling": lrelu_upsampling,
            "use_radial_filters": bool(use_radial_filters)}
        self.output_scale = float(output_scale)
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.magnitude_ema_beta = float(magnitude_ema_beta)
        self.num_layers = num_layers
        self.num_ws = num_layers + 2
        input_spec, self.specs = synthesis_schedule(resolution, img_channels, **self.synthesis_kwargs)

        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, self.lr_mlp, self.c_dim)
        self.input = FourierInput(w_dim, input_spec)
        self.layers = nn.ModuleList(AliasFreeLayer(s, w_dim, self.conv_clamp, self.magnitude_ema_beta)
                                    for s in self.specs)
        # Mean of w, kept outside state_dict() like StyleGAN2's (model folders store it as "latent_avg").
        self.register_buffer("w_avg", torch.zeros(w_dim), persistent=False)

    # ----- description -------------------------------------------------------------
    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return {
            "z": LatentSpace("z", (self.z_dim,), "input noise, standard normal"),
            "w": LatentSpace("w", (self.w_dim,), "intermediate latent, one code for all layers"),
            "w+": LatentSpace("w+", (self.num_ws, self.w_dim), "one intermediate code per layer (row 0: the input)"),
        }

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "img_channels": self.channels, "z_dim": self.z_dim,
                "w_dim": self.w_dim, "mapping_layers": self.mapping_layers, "lr_mlp": self.lr_mlp,
                "w_avg_beta": self.w_avg_beta, **self.synthesis_kwargs, "output_scale": self.output_scale,
                "conv_clamp": self.conv_clamp, "magnitude_ema_beta": self.magnitude_ema_beta,
                **({"c_dim": self.c_dim} if self.c_dim else {})}

    # ----- the input transform ------------------------------------------------------
    @property
    def input_transform(self) -> Tensor:
        """The ``[3, 3]`` transform buffer of the Fourier input (identity = untransformed image)."""
        return self.input.transform

    @torch.no_grad()
    def set_transform(self, matrix: Tensor | np.ndarray | None) -> None:
        """Set the input transform (``None``: identity); see :func:`image_transform` for building one."""
        m = torch.eye(3) if matrix is None else torch.as_tensor(np.asarray(matrix, dtype=np.float32))
        if tuple(m.shape) != (3, 3) or not torch.isfinite(m).all():
            raise InputError(f"the input transform must be a finite 3×3 matrix, got shape {list(m.shape)}")
        self.input.transform.copy_(m)

    @contextmanager
    def updating_emas(self) -> Iterator[None]:
        """Within the block, every synthesis call also updates the layers' input-magnitude EMAs (training:
        NVIDIA updates them in the discriminator step's generator pass, not in the generator's own step)."""
        for layer in self.layers:
            layer.update_emas = True
        try:
            yield
        finally:
            for layer in self.layers:
                layer.update_emas = False

    # ----- intermediate features (multi-code inversion) ----------------------------
    def feature_layers(self) -> list[str]:
        """The layers after which the synthesis can be split, by NVIDIA's names (``L0_36_512`` …): every layer
        but the ToRGB one."""
        return [layer.spec.nvidia_name for layer in self.layers[:-1]]

    def default_feature_layer(self) -> int:
        """A quarter of the way through the synthesis (StyleGAN2's default, its 8×8 layer, is about as far)."""
        return max(1, len(self.feature_layers()) // 4)

    def tail_shape(self, layer: int) -> tuple[int, ...] | None:
        """The layers after ``layer`` take the last ``num_ws − 1 − layer`` w+ rows (row 0 drives the input)."""
        self.check_feature_layer(layer)
        return (self.num_ws - 1 - layer, self.w_dim)

    def render_head(self, latent: Tensor, space: str, layer: int) -> list[Tensor]:
        """Fourier input (at the stored transform) and the first ``layer`` layers → ``[features]``."""
        self.check_feature_layer(layer)
        ws = self.convert(latent, space, "w+").float()
        return [self._layers(self.input(ws[:, 0]), ws[:, 1:], 0, layer)]

    def render_tail(self, state: list[Tensor], tail: Tensor | None, layer: int) -> Tensor:
        """Continue from ``[features]`` with the tail codes ``tail`` ``[B, *tail_shape(layer)]`` → native image."""
        shape = self.tail_shape(layer)
        if tail is None or tuple(tail.shape[1:]) != shape:
            raise InputError(f"the StyleGAN3 tail after layer {layer} needs codes of shape {list(shape or ())}")
        return self._layers(state[0], tail.float(), layer, len(self.layers))

    # ----- latents -----------------------------------------------------------------

    @torch.no_grad()
    def estimate_w_avg(self, n: int = 10_000, seed: int = 0) -> Tensor:
        """Estimate the mean of w from ``n`` mapped z and store it in :attr:`w_avg` (a conditional model maps
        them with classes drawn uniformly)."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=gen).to(self.device)
        c = random_classes(self.c_dim, n, gen, self.device)
        w = torch.cat([self.mapping(zc, cc) for zc, cc in _chunks(z, c)]).mean(0)
        self.w_avg.copy_(w)
        return w

    # ----- rendering ---------------------------------------------------------------
    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        return self.synthesis(self.convert(latent, space, "w+"))

    def synthesis(self, ws: Tensor, transform: Tensor | None = None) -> Tensor:
        """w+ ``[B, num_ws, w_dim]`` → native image ``[B, C, H, W]`` in ~[-1, 1] (contiguous).

        ``transform`` (``[3, 3]`` or ``[B, 3, 3]``) replaces the stored input transform for this call.
        """
        if ws.dim() != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise InputError(f"StyleGAN3 synthesis needs w+ of shape [B, {self.num_ws}, {self.w_dim}], "
                             f"got {list(ws.shape)}")
        ws = ws.float()
        return self._layers(self.input(ws[:, 0], transform), ws[:, 1:], 0, len(self.layers))

    def _layers(self, x: Tensor, rows: Tensor, start: int, stop: int) -> Tensor:
        """Layers ``start … stop − 1`` on the features ``x``, layer ``start + j`` modulated by ``rows[:, j]``
        (``[B, stop − start, w_dim]``); through the last layer, the output scale too (native image, contiguous)."""
        for i in range(start, stop):
            x = self.layers[i](x, rows[:, i - start])
        if stop < len(self.layers):
            return x
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.contiguous()

    def forward(self, z: Tensor, truncation: float = 1.0, c: Tensor | None = None) -> Tensor:
        """Training-style call: z ``[B, z_dim]`` (and the class ``c`` ``[B or 1, c_dim]`` of a conditional model)
        → native image ``[B, C, H, W]`` in ~[-1, 1]."""
        w = self.mapping(z, c)
        if truncation != 1.0:
            w = self.w_avg + truncation * (w - self.w_avg)
        return self.synthesis(w.unsqueeze(1).repeat(1, self.num_ws, 1))


def image_transform(shift: tuple[float, float] = (0.0, 0.0), angle: float = 0.0,
                    resolution: int | None = None) -> Tensor:
    """The input transform (for :meth:`StyleGAN3Generator.set_transform`) that moves the image content by
    ``shift = (dx, dy)`` and rotates it by ``angle`` degrees (counter-clockwise as displayed, about the centre).

    ``shift`` is in output pixels when ``resolution`` is given, else in image widths. The stored matrix is the
    inverse of the content transform, because the generator samples its input at transformed coordinates.

    Returns:
        ``[3, 3]`` float32.
    """
    scale = 1.0 / resolution if resolution else 1.0
    dx, dy = shift[0] * scale, shift[1] * scale
    rad = math.radians(angle)
    c, s = math.cos(rad), math.sin(rad)
    forward = torch.tensor([[c, s, dx], [-s, c, dy], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return torch.linalg.inv(forward).float()
