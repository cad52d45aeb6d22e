"""StyleGAN2 (Karras et al. 2020) in pure PyTorch, with rosinality's parameter layout.

The module tree and ``state_dict`` keys match rosinality's ``stylegan2-pytorch`` exactly
(``style.*``, ``input.input``, ``conv1.*``, ``to_rgb1.*``, ``convs.*``, ``to_rgbs.*``,
``noises.noise_*``), so its ``.pt`` files load with strict key checking, and NVIDIA's
``.pkl`` weights are converted to the same layout (see :mod:`ganinv.generators.checkpoints`).

Differences from the reference code, all numerically equivalent:

* no compiled CUDA ops: ``upfirdn2d`` and the fused bias + leaky ReLU are written with
  plain ``torch`` ops and run on any device;
* the modulated convolution uses the *non-fused* form (scale the input activations by the
  style, convolve with the shared weight, then demodulate the outputs), which shares one
  weight across the batch and ran about 2× faster on CPU than the grouped form;
* image channels, resolution, per-resolution widths, ``z_dim`` and ``w_dim`` are free;
* class-conditional models (``c_dim > 0``, NVIDIA's conditional stylegan2-ada generators) add an
  ``embed.*`` layer outside rosinality's layout (which has none): see :class:`StyleGAN2Generator`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import LatentSpace, StyleGenerator, _chunks, check_c_dim, check_class_input
from ganinv.generators.base import check_resolution, random_classes

SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------
def make_kernel(k: list[float] | Tensor) -> Tensor:
    """Separable FIR kernel → normalised 2-D kernel (sums to 1)."""
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.dim() == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample (zero insertion), FIR-filter and downsample each channel of ``x`` ``[B, C, H, W]``.

    Same semantics as the CUDA op of the same name: output size is
    ``(H * up + pad0 + pad1 - kh) // down + 1``.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    kh, kw = kernel.shape
    weight = torch.flip(kernel, [0, 1]).to(x).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


class PixelNorm(nn.Module):
    """Normalise each vector to unit second moment along dim 1."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """×factor upsampling with an FIR filter (buffer ``kernel``)."""

    def __init__(self, kernel: list[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass filter (buffer ``kernel``) used after a transposed convolution."""

    def __init__(self, kernel: list[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor**2
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at runtime).

    ``weight`` ``[out, in]`` is stored divided by ``lr_mul``; the effective weight is
    ``weight * lr_mul / sqrt(in)`` and the effective bias ``bias * lr_mul``.
    With ``activation="fused_lrelu"`` the output is ``lrelu(x + b, 0.2) * sqrt(2)``.
    """

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.activation = activation
        self.scale = (1.0 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        if self.activation:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias * self.lr_mul, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias followed by ``lrelu(·, 0.2) * sqrt(2)`` (parameter ``bias`` ``[C]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * SQRT2


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (weight ``[1, out, in, k, k]``, ``modulation`` affine).

    Non-fused form: ``y = demod ⊙ conv(x ⊙ s, W)``, with ``s = modulation(w)`` and
    ``demod[b, o] = 1 / sqrt(Σ_{i,kh,kw} (scale·W[o,i]·s[b,i])² + 1e-8)``.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False,
                 blur_kernel: tuple[float, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(list(blur_kernel), pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        batch = x.shape[0]
        weight = self.scale * self.weight[0]  # [out, in, k, k]
        s = self.modulation(style)  # [B, in]
        x = x * s.view(batch, self.in_channel, 1, 1)
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2)
            out = self.blur(out)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            w2 = weight.square().sum(dim=(2, 3))  # [out, in]
            dcoefs = torch.rsqrt(s.square() @ w2.t() + 1e-8)  # [B, out]
            out = out * dcoefs.view(batch, self.out_channel, 1, 1)
        return out


class NoiseInjection(nn.Module):
    """Add a learned-strength noise map: ``x + weight * noise`` (``weight`` ``[1]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            b, _, h, w = x.shape
            noise = x.new_empty(b, 1, h, w).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """Learned constant ``input`` ``[1, C, 4, 4]`` broadcast over the batch."""

    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv → noise → bias + lrelu."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: tuple[float, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    """1×1 modulated conv without demodulation, plus the upsampled skip image."""

    def __init__(self, in_channel: int, style_dim: int, img_channels: int = 3, upsample: bool = True,
                 blur_kernel: tuple[float, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(list(blur_kernel))
        self.conv = ModulatedConv2d(in_channel, img_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, img_channels, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ----------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------
def default_channels(resolution: int, channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's widths: 512 up to 32 px, then 256·cm, 128·cm, 64·cm, 32·cm, 16·cm."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm,
             1024: 16 * cm}
    return {r: table[r] for r in table if r <= resolution}


class StyleGAN2Generator(StyleGenerator):
    """StyleGAN2 generator (mapping + synthesis) with rosinality's parameter names.

    Latent spaces: ``z`` ``[z_dim]`` (standard normal), ``w`` ``[w_dim]`` (mapped),
    ``w+`` ``[num_ws, w_dim]`` (one w per layer input, ``num_ws = 2·log2(res) − 2``),
    plus one noise map per synthesis layer (:attr:`noise_shapes`).

    Args:
        resolution: output size (power of two ≥ 8).
        channels: widths per resolution ``{4: c4, 8: c8, ...}`` (keys may be str from JSON).
        z_dim, w_dim: latent sizes (rosinality uses ``z_dim == w_dim == style_dim``).
        n_mlp: mapping layers.
        img_channels: output channels (3 for RGB, 1 for grayscale).
        lr_mlp: mapping learning-rate multiplier (0.01 in StyleGAN2).
        output_activation: ``None`` (rosinality/NVIDIA: the skip image as is) or ``"tanh"``, which
            bounds the output to (-1, 1); the bundled digit model uses it so that the flat black
            background of the data is reachable exactly (without it a discriminator separates
            real from fake on background noise alone, and training collapsed in our runs).
        c_dim: number of classes of a class-conditional model (0: unconditional). The mapping then
            takes a class vector ``c`` ``[B, c_dim]`` besides z: ``embed`` (a linear equalised layer
            ``c_dim → embed_features``, learning rate multiplier 1) embeds it, z and the embedding are
            each normalised to unit second moment and concatenated, and the FC layers map the result
            (``style.1`` takes ``z_dim + embed_features`` inputs) — NVIDIA's ``MappingNetwork``.
        embed_features: width of the class embedding (None: ``w_dim``, NVIDIA's default).
    """

    arch = "stylegan2"

    def __init__(self, resolution: int = 32, channels: dict[int, int] | None = None, z_dim: int = 512,
                 w_dim: int = 512, n_mlp: int = 8, img_channels: int = 3, lr_mlp: float = 0.01,
                 blur_kernel: tuple[float, ...] = (1, 3, 3, 1), output_activation: str | None = None,
                 c_dim: int = 0, embed_features: int | None = None) -> None:
        super().__init__()
        check_resolution(resolution)
        self.c_dim = check_c_dim(c_dim)
        if embed_features is not None and (isinstance(embed_features, bool) or not isinstance(embed_features, int)
                                           or embed_features < 1):
            raise InputError(f"embed_features must be a positive whole number or None, got {embed_features!r}")
        self.embed_features = (embed_features or w_dim) if self.c_dim else 0
        if resolution < 8:
            raise InputError("StyleGAN2 needs resolution ≥ 8")
        channels = {int(k): int(v) for k, v in (channels or default_channels(resolution)).items()}
        missing = [2**i for i in range(2, int(math.log2(resolution)) + 1) if 2**i not in channels]
        if missing:
            raise InputError(f"channels must give a width for every resolution; missing {missing}")
        self.resolution, self.channels = resolution, img_channels
        self.image_shape = (img_channels, resolution, resolution)
        self.output_range = (-1.0, 1.0)
        self.z_dim, self.w_dim, self.n_mlp, self.lr_mlp = z_dim, w_dim, n_mlp, lr_mlp
        self.widths = {r: channels[r] for r in sorted(channels) if r <= resolution}
        self.blur_kernel = tuple(float(k) for k in blur_kernel)
        if output_activation not in (None, "tanh"):
            raise InputError(f"output_activation must be None or 'tanh', got {output_activation!r}")
        self.output_activation = output_activation
        self.log_size = int(math.log2(resolution))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_ws = self.log_size * 2 - 2

        layers: list[nn.Module] = [PixelNorm()]
        for i in range(n_mlp):
            layers.append(EqualLinear(z_dim + self.embed_features if i == 0 else w_dim, w_dim, lr_mul=lr_mlp,
                                      activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)
        if self.c_dim:
            self.embed = EqualLinear(self.c_dim, self.embed_features)

        ch = self.widths
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, w_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], w_dim, img_channels, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, w_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, w_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, w_dim, img_channels, blur_kernel=blur_kernel))
            in_ch = out_ch
        # Mean of w, kept outside state_dict() so the module's keys are exactly rosinality's;
        # checkpoint code stores it as "latent_avg".
        self.register_buffer("w_avg", torch.zeros(w_dim), persistent=False)

    # ----- description -------------------------------------------------------------
    def _latent_spaces(self) -> dict[str, LatentSpace]:
        return {
            "z": LatentSpace("z", (self.z_dim,), "input noise, standard normal"),
            "w": LatentSpace("w", (self.w_dim,), "intermediate latent, one code for all layers"),
            "w+": LatentSpace("w+", (self.num_ws, self.w_dim), "one intermediate code per layer input"),
        }

    @property
    def noise_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(getattr(self.noises, f"noise_{i}").shape) for i in range(self.num_layers)]

    def stored_noise(self) -> list[Tensor]:
        """The constant noise maps held in the checkpoint (``noises.noise_i``)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def config(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "resolution": self.resolution, "channels": {str(k): v for k, v in self.widths.items()},
            "z_dim": self.z_dim, "w_dim": self.w_dim, "n_mlp": self.n_mlp, "img_channels": self.channels,
            "lr_mlp": self.lr_mlp, "blur_kernel": list(self.blur_kernel), "output_activation": self.output_activation,
            **({"c_dim": self.c_dim, "embed_features": self.embed_features} if self.c_dim else {}),
        }

    # ----- latents -----------------------------------------------------------------
    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """z ``[B, z_dim]`` (and, for a conditional model, the class ``c`` ``[B or 1, c_dim]``: one-hot rows
        or probability vectors) → w ``[B, w_dim]``. ``c`` is required when ``c_dim > 0`` and refused otherwise."""
        c = check_class_input(self.c_dim, c, z.shape[0], self.arch)
        if c is None:
            return self.style(z)
        x = torch.cat([self.style[0](z.float()), self.style[0](self.embed(c.to(z.device, torch.float32)))], dim=1)
        return self.style[1:](x)

    @torch.no_grad()
    def estimate_w_avg(self, n: int = 10_000, seed: int = 0) -> Tensor:
        """Estimate the mean of w from ``n`` mapped z (NVIDIA's projector uses 10k); a conditional model maps
        them with classes drawn uniformly (NVIDIA tracks it over the training labels)."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=gen).to(self.device)
        c = random_classes(self.c_dim, n, gen, self.device)
        w = torch.cat([self.mapping(zc, cc) for zc, cc in _chunks(z, c)]).mean(0)
        self.w_avg.copy_(w)
        return w

    # ----- rendering ---------------------------------------------------------------
    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        ws = self.convert(latent, space, "w+")
        if noise is None:
            noise = self.stored_noise()
        elif len(noise) != self.num_layers:
            raise InputError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        return self.synthesis(ws, noise)

    def synthesis(self, ws: Tensor, noise: list[Tensor | None]) -> Tensor:
        """w+ ``[B, num_ws, w_dim]`` and per-layer noise → native image ``[B, C, H, W]`` in ~[-1, 1]."""
        out = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, ws[:, 1])
        out, skip = self._blocks(out, skip, ws, noise, 0, len(self.to_rgbs))
        return self._finish(skip)

    def _blocks(self, out: Tensor, skip: Tensor, ws: Tensor, noise: list[Tensor | None], first: int,
                last: int) -> tuple[Tensor, Tensor]:
        """Upsampling blocks ``first … last − 1`` (block ``b`` renders 8·2^b px); ``ws[:, 1]`` is the
        first code of block ``first`` (global w+ row ``2·first + 1``), the following rows continue."""
        i = 1
        for b in range(first, last):
            out = self.convs[2 * b](out, ws[:, i], noise=noise[2 * b + 1])
            out = self.convs[2 * b + 1](out, ws[:, i + 1], noise=noise[2 * b + 2])
            skip = self.to_rgbs[b](out, ws[:, i + 2], skip)
            i += 2
        return out, skip

    def _finish(self, skip: Tensor) -> Tensor:
        return torch.tanh(skip) if self.output_activation == "tanh" else skip

    # ----- coarse renderings (coarse-to-fine inversion) ----------------------------
    def skip_resolutions(self) -> list[int]:
        """Resolutions at which the toRGB skip sum is itself an image: ``8, 16, …`` half the output size."""
        return [2**k for k in range(3, self.log_size)]

    def prefix_rows(self, resolution: int) -> int:
        """The w+ rows the synthesis reads up to ``resolution``: ``2·log2(resolution) − 2`` (rows
        ``0 … 2·log2(resolution) − 3``)."""
        self._check_skip(resolution)
        return 2 * int(math.log2(resolution)) - 2

    def prefix_noise_layers(self, resolution: int) -> int:
        """The noise maps (from the first) the synthesis reads up to ``resolution``: ``2·log2(resolution) − 3``."""
        self._check_skip(resolution)
        return 2 * int(math.log2(resolution)) - 3

    def synthesis_prefix(self, ws: Tensor, noise: list[Tensor | None], resolution: int) -> Tensor:
        """The skip image at ``resolution`` ``[B, C, r, r]`` (native range, after the output activation) from
        the first :meth:`prefix_rows` w+ rows ``ws`` and the first :meth:`prefix_noise_layers` noise maps —
        the blocks above ``resolution`` are not run."""
        self._check_skip(resolution)
        out = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, ws[:, 1])
        out, skip = self._blocks(out, skip, ws, noise, 0, int(math.log2(resolution)) - 2)
        return self._finish(skip)

    def _check_skip(self, resolution: int) -> None:
        if resolution not in self.skip_resolutions():
            raise InputError(f"the {self.resolution} px StyleGAN2 has coarse images at "
                             f"{', '.join(map(str, self.skip_resolutions()))} px, not {resolution}")

    # ----- intermediate features (multi-code inversion) ----------------------------
    def feature_layers(self) -> list[str]:
        """Resolutions after which the synthesis can be split: ``4x4`` … half the output size."""
        return [f"{2 ** r}x{2 ** r}" for r in range(2, self.log_size)]

    def tail_shape(self, layer: int) -> tuple[int, ...] | None:
        """The layers after ``layer`` take the w+ rows ``2·layer − 1 …`` (the last toRGB of the head
        and the tail share row ``2·layer − 1``)."""
        self.check_feature_layer(layer)
        return (self.num_ws - (2 * layer - 1), self.w_dim)

    def render_head(self, latent: Tensor, space: str, layer: int) -> list[Tensor]:
        """Synthesis up to ``layer`` with the stored noise → ``[features, skip image]``."""
        self.check_feature_layer(layer)
        ws = self.convert(latent, space, "w+")
        noise = self.stored_noise()
        out = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, ws[:, 1])
        if layer > 1:
            out, skip = self._blocks(out, skip, ws, list(noise), 0, layer - 1)
        return [out, skip]

    def render_tail(self, state: list[Tensor], tail: Tensor | None, layer: int) -> Tensor:
        """Continue from ``[features, skip]`` with the tail codes ``tail`` ``[B, *tail_shape(layer)]``."""
        shape = self.tail_shape(layer)
        if tail is None or tuple(tail.shape[1:]) != shape:
            raise InputError(f"the StyleGAN2 tail after layer {layer} needs codes of shape {list(shape or ())}")
        ws = torch.cat([tail[:, :1], tail], dim=1)  # _blocks reads its first code at index 1
        out, skip = self._blocks(state[0], state[1], ws, list(self.stored_noise()), layer - 1, len(self.to_rgbs))
        return self._finish(skip)

    def forward(self, z: Tensor, truncation: float = 1.0, random_noise: bool = False,
                noise: list[Tensor] | None = None, c: Tensor | None = None) -> Tensor:
        """Training-style call: z ``[B, z_dim]`` → native image ``[B, C, H, W]`` in ~[-1, 1].

        ``noise`` (one map ``[B, 1, H, W]`` per layer, e.g. drawn for a larger batch and sliced)
        overrides ``random_noise``. ``c`` ``[B or 1, c_dim]``: the class of a conditional model (see
        :meth:`mapping`); truncation pulls towards the stored ``w_avg`` (NVIDIA's).
        """
        w = self.mapping(z, c)
        if truncation != 1.0:
            w = self.w_avg + truncation * (w - self.w_avg)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.synthesis(ws, self._noise_arg(noise, random_noise))

    def forward_mixed(self, z1: Tensor, z2: Tensor, crossover: Tensor | int,
                      noise: list[Tensor] | None = None, c: Tensor | None = None) -> Tensor:
        """Style mixing regularisation: layers ``< crossover`` from z1, the rest from z2; random noise
        (or the given ``noise`` maps); ``c``: both halves' class (conditional models)."""
        w1, w2 = self.mapping(z1, c), self.mapping(z2, c)
        idx = torch.arange(self.num_ws, device=z1.device).view(1, -1, 1)
        cross = torch.as_tensor(crossover, device=z1.device).view(-1, 1, 1)
        ws = torch.where(idx < cross, w1.unsqueeze(1), w2.unsqueeze(1))
        return self.synthesis(ws, self._noise_arg(noise, True))

    def _noise_arg(self, noise: list[Tensor] | None, random_noise: bool) -> list[Tensor | None]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise InputError(f"expected {self.num_layers} noise maps, got {len(noise)}")
            return list(noise)
        return [None] * self.num_layers if random_noise else list(self.stored_noise())
