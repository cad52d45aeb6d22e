"""A hypernetwork encoder (after HyperStyle, Alaluf et al. 2022): per-image offsets to a generator's weights.

An encoder's code ``w`` (the *pivot*) cannot always reproduce an image; PTI tunes the generator per image to
close the gap, which takes seconds to minutes. A hypernetwork predicts that tuning in one forward pass: from
the target and the current reconstruction (``2C`` input channels, ReStyle-style) it predicts, for each
chosen convolution of the generator, a channel-wise multiplicative offset ``Δ`` ``[out, in]`` shared over the
kernel taps, and the image is rendered with

    θ'[o, i, :, :] = θ[o, i, :, :] · (1 + Δ[o, i])

Over ``passes`` passes the offsets add up (each pass sees the reconstruction of the previous one). Every
image has its own ``Δ``; the batch is rendered through :func:`ganinv.generators.stylegan2_rowwise.synthesis_rows`.

Our compact, CPU-friendly design (not HyperStyle's ResNet-34 + refinement blocks):

* a small residual backbone (the pyramid encoder's blocks) from ``R × R`` down to an ``8 × 8`` feature map
  shared by all heads;
* per chosen layer a head — a strided 3×3 convolution to ``4 × 4``, a linear layer to ``hidden`` features —
  and two linear maps giving the factors of a rank-``rank`` offset ``Δ = s·U·Vᵀ / rank`` (``s = delta_scale``) (``U`` ``[out, rank]``,
  ``V`` ``[in, rank]``). ``U``'s map starts at zero, so an untrained network changes nothing.

The default layers are HyperStyle's choice translated to any resolution: the non-toRGB convolutions of the
medium and fine resolutions (16 px and up; all from 8 px for an 8 px generator); the coarse 4–8 px layers and
the toRGB layers are left alone.

A saved hypernetwork is a ganinv model folder (``kind: "hyper-encoder"``) recording the generator it was
trained for (name, fingerprint) and its pivot (the encoder and its passes); :func:`resolve_hyper` refuses
another generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganinv.encoders.network import _ResidualDown, fit_input
from ganinv.errors import InputError

#: ``kind`` of a saved hypernetwork folder.
HYPER_KIND = "hyper-encoder"


def choose_layers(G: nn.Module, spec: str | list[str] | None = "auto") -> list[str]:
    """The convolutions a hypernetwork for ``G`` modulates, in synthesis order.

    Args:
        G: a StyleGAN2 generator.
        spec: ``"auto"``/None (HyperStyle's choice: the non-toRGB convolutions from 16 px up, from 8 px for an
            8 px generator), ``"all"``, ``"R+"`` (from ``R`` px up, e.g. ``"8+"``), or layer names
            (``"conv1,convs.2"``, or a list).
    Raises:
        InputError: not a StyleGAN2 generator, an unknown layer, or no layer chosen.
    """
    from ganinv.generators.stylegan2 import StyleGAN2Generator
    from ganinv.generators.stylegan2_rowwise import conv_layers, layer_resolution

    if not isinstance(G, StyleGAN2Generator):
        arch = getattr(G, "arch", type(G).__name__)
        raise InputError(f"a hypernetwork modulates StyleGAN2 convolutions, and this generator is {arch!r}, not "
                         "StyleGAN2")
    names = list(conv_layers(G))
    if isinstance(spec, list):
        wanted = [str(s).strip() for s in spec]
    else:
        text = (spec or "auto").strip().lower()
        if text == "all":
            return names
        if text == "auto":
            start = 16 if G.resolution >= 16 else 8
            return [n for n in names if layer_resolution(n) >= start]
        if text.endswith("+") and text[:-1].isdigit():
            start = int(text[:-1])
            chosen = [n for n in names if layer_resolution(n) >= start]
            if not chosen:
                raise InputError(f"--layers {spec}: this {G.resolution} px generator has no convolution at "
                                 f"{start} px or above")
            return chosen
        wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown or not wanted:
        raise InputError(f"--layers: unknown layer(s) {', '.join(unknown) or '(none given)'}; use auto, all, "
                         f"R+ (e.g. 16+) or names among {', '.join(names)}")
    return [n for n in names if n in wanted]


class _DeltaHead(nn.Module):
    """One layer's head: 8×8 features → rank-``rank`` offset ``Δ`` ``[B, out, in]``."""

    def __init__(self, channels: int, size: int, hidden: int, c_out: int, c_in: int, rank: int,
                 scale: float = 0.1) -> None:
        super().__init__()
        self.c_out, self.c_in, self.rank, self.scale = c_out, c_in, rank, scale
        self.conv = nn.Conv2d(channels, channels, 3, stride=2 if size > 4 else 1, padding=1)
        side = max(4, size // 2) if size > 4 else size
        self.fc = nn.Linear(channels * side * side, hidden)
        self.u = nn.Linear(hidden, c_out * rank)
        self.v = nn.Linear(hidden, c_in * rank)
        nn.init.zeros_(self.u.weight)
        nn.init.zeros_(self.u.bias)

    def forward(self, feat: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv(feat), 0.2).flatten(1)
        h = F.leaky_relu(self.fc(h), 0.2)
        u = self.u(h).view(-1, self.c_out, self.rank)
        v = self.v(h).view(-1, self.c_in, self.rank)
        return torch.bmm(u, v.transpose(1, 2)) * (self.scale / self.rank)


class HyperNetwork(nn.Module):
    """Image + current reconstruction → per-layer multiplicative weight offsets.

    Args:
        resolution: input size R (power of two ≥ 8); images of another size are resized (:func:`fit_input`).
        img_channels: C of the images (the input has 2C channels: target ‖ reconstruction).
        layers: ``[[name, out, in], …]``: the generator convolutions it modulates and their widths.
        width: channels of the backbone's first level (doubling per level, capped at ``max_width``).
        max_width: channel cap.
        hidden: features per head.
        rank: rank of each predicted ``Δ``.
        delta_scale: ``Δ = delta_scale · U·Vᵀ / rank`` (1 by default: with ``U``'s map starting at zero, an Adam
            step moves ``Δ`` by about ``lr · delta_scale``; at 0.1 the offsets stayed ~1e-4 after hundreds of steps
            and the factor ``V``'s gradients fell below Adam's ε, so the network changed nothing).
        grad_step: also take, every pass, a learned sign-gradient step per layer: ``Δ += head(x) − a_l ·
            sign(∂‖G(w; Δ) − x‖²/∂Δ)`` (``a_l`` = ``step_gain[l]``, starting at 0, so an untrained network still
            changes nothing). Without it the feed-forward heads alone learned nothing in hundreds of steps on
            random batches (the image-specific part of their gradient is tiny and changes sign from batch to
            batch); the gradient is computed per image (rows stay independent), with inputs detached. False
            (the default here) keeps folders saved before this option loadable; :func:`build_hyper` and the
            trainer turn it on.
    """

    arch = "hyper-encoder"

    def __init__(self, resolution: int = 32, img_channels: int = 1, layers: list[list[Any]] | None = None,
                 width: int = 32, max_width: int = 128, hidden: int = 128, rank: int = 8,
                 delta_scale: float = 1.0, grad_step: bool = False) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two ≥ 8, got {resolution}")
        if not layers:
            raise ValueError("a hypernetwork needs at least one layer")
        if rank < 1 or hidden < 1:
            raise ValueError("rank and hidden must be ≥ 1")
        self.resolution, self.img_channels = resolution, img_channels
        self.layer_specs = [[str(n), int(o), int(i)] for n, o, i in layers]
        self.width, self.max_width, self.hidden, self.rank = width, max_width, hidden, rank
        self.delta_scale = float(delta_scale)
        self.stem = nn.Sequential(nn.Conv2d(2 * img_channels, width, 3, padding=1), nn.LeakyReLU(0.2))
        self.downs = nn.ModuleList()
        c, size = width, resolution
        while size > 8:
            c_next = min(2 * c, max_width)
            self.downs.append(_ResidualDown(c, c_next))
            c, size = c_next, size // 2
        self.feat_channels, self.feat_size = c, size
        self.heads = nn.ModuleList(_DeltaHead(c, size, hidden, o, i, rank, self.delta_scale) for _, o, i in self.layer_specs)
        self.grad_step = bool(grad_step)
        if self.grad_step:
            self.step_gain = nn.Parameter(torch.zeros(len(self.layer_specs)))
        self.to(memory_format=torch.channels_last)

    @property
    def layer_names(self) -> list[str]:
        return [n for n, _, _ in self.layer_specs]

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "resolution": self.resolution, "img_channels": self.img_channels,
                "layers": self.layer_specs, "width": self.width, "max_width": self.max_width,
                "hidden": self.hidden, "rank": self.rank, "delta_scale": self.delta_scale, "grad_step": self.grad_step}

    def forward(self, image: Tensor, current_image: Tensor) -> dict[str, Tensor]:
        """One pass's offsets.

        Args:
            image: targets ``[B, C, H, W]`` in [0, 1].
            current_image: the current reconstructions ``[B, C, H', W']`` in nominal [0, 1].
        Returns:
            ``{layer name: Δ [B, out, in]}`` (unbounded; 0 = the generator's own weight).
        """
        if image.dim() != 4 or image.shape[1] != self.img_channels:
            raise ValueError(f"this hypernetwork takes [B, {self.img_channels}, H, W] images, got "
                             f"{tuple(image.shape)}")
        x = torch.cat([fit_input(image, self.resolution), fit_input(current_image, self.resolution)], 1) * 2 - 1
        h = self.stem(x.contiguous(memory_format=torch.channels_last))
        for down in self.downs:
            h = down(h)
        return {name: head(h) for name, head in zip(self.layer_names, self.heads)}


def check_layers_fit(net: HyperNetwork, G: nn.Module) -> None:
    """Raise :class:`InputError` unless every layer ``net`` modulates exists in ``G`` with the same widths."""
    from ganinv.generators.stylegan2_rowwise import conv_layers

    choose_layers(G, "all")  # a StyleGAN2 generator
    convs = conv_layers(G)  # type: ignore[arg-type]
    for name, o, i in net.layer_specs:
        layer = convs.get(name)
        if layer is None or (layer.conv.out_channel, layer.conv.in_channel) != (o, i):
            raise InputError(f"this hypernetwork modulates layer {name} [{o}, {i}], which this generator "
                             f"{'lacks' if layer is None else 'has with other widths'}")


def build_hyper(G: nn.Module, layers: str | list[str] | None = "auto", *, input_size: int | None = None,
                width: int = 32, max_width: int = 128, hidden: int = 128, rank: int = 8,
                delta_scale: float = 1.0, grad_step: bool = True) -> HyperNetwork:
    """A fresh hypernetwork shaped for ``G`` (input size: min(64, the generator's resolution) by default)."""
    from ganinv.generators.stylegan2_rowwise import conv_layers

    names = choose_layers(G, layers)
    convs = conv_layers(G)  # type: ignore[arg-type]
    specs = [[n, convs[n].conv.out_channel, convs[n].conv.in_channel] for n in names]
    size = input_size or min(64, int(G.resolution))  # type: ignore[arg-type]
    if size < 8 or size & (size - 1):
        raise InputError(f"--input-size must be a power of two ≥ 8, got {size}")
    return HyperNetwork(resolution=size, img_channels=int(G.channels), layers=specs, width=width,  # type: ignore[arg-type]
                        max_width=max_width, hidden=hidden, rank=rank, delta_scale=delta_scale,
                        grad_step=grad_step)


def base_weights(G: nn.Module, names: list[str]) -> dict[str, Tensor]:
    """The stored weights ``[out, in, k, k]`` of the named convolutions (``<name>.conv.weight[0]``)."""
    from ganinv.generators.stylegan2_rowwise import conv_layers

    convs = conv_layers(G)  # type: ignore[arg-type]
    return {n: convs[n].conv.weight[0] for n in names}


def offset_weights(base: dict[str, Tensor], delta: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-row weights ``θ + θ·Δ`` ``[B, out, in, k, k]`` from offsets ``Δ`` ``[B, out, in]`` (written as
    ``base + difference`` so that they equal PTI's ``apply_deltas`` of :func:`weight_differences` bit for bit)."""
    return {n: base[n][None] + base[n][None] * d[:, :, :, None, None] for n, d in delta.items()}


def weight_differences(base: dict[str, Tensor], delta: dict[str, Tensor], index: int) -> dict[str, Tensor]:
    """Row ``index``'s offsets as a PTI delta: ``{"<layer>.conv.weight.delta": θ·Δ [1, out, in, k, k]}``."""
    return {f"{n}.conv.weight.delta": (base[n][None] * delta[n][index][None, :, :, None, None]).detach().clone()
            for n in delta}


def save_hyper(net: HyperNetwork, folder: str | Path, *, name: str, meta: dict[str, Any]) -> Path:
    """Write ``folder/config.json`` (``kind: "hyper-encoder"``) + ``model.safetensors``."""
    from ganinv.modelfile import save_pretrained

    return save_pretrained(net.eval(), folder, name=name, kind=HYPER_KIND, meta=meta)


def load_hyper(source: str | Path) -> HyperNetwork:
    """Load a hypernetwork folder (or a bundled name); its ``generator_info`` / ``pivot_info`` come from the meta.

    Raises:
        InputError: not a hypernetwork folder; CheckpointError: missing/corrupt weights or a key mismatch.
    """
    from ganinv import zoo
    from ganinv.errors import CheckpointError
    from ganinv.modelfile import load_state_strict, read_config, read_safetensors

    folder = Path(source).expanduser()
    if not (folder / "config.json").is_file():
        if str(source) not in zoo.available():
            raise InputError(f"{source}: no hypernetwork folder (config.json) there; train one with "
                             "`ganinv train-encoder --arch hyper --export FOLDER`")
        folder = zoo.model_dir(str(source))
    cfg = read_config(folder)
    if cfg.get("kind") != HYPER_KIND:
        raise InputError(f"{source} is a {cfg.get('kind', 'unknown')!r} model, not a hypernetwork (a folder from "
                         "`ganinv train-encoder --arch hyper --export FOLDER`; an image encoder goes with --method "
                         "encoder or hybrid)")
    conf = dict(cfg.get("config", {}))
    if conf.pop("arch", None) != HyperNetwork.arch:
        raise CheckpointError(f"{folder / 'config.json'}: not a {HyperNetwork.arch} config")
    try:
        net = HyperNetwork(**conf)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: invalid hypernetwork config ({exc})") from None
    path = folder / "model.safetensors"
    load_state_strict(net, read_safetensors(path), str(path))
    meta = cfg.get("meta", {})
    net.generator_info = dict(meta.get("generator", {}))  # type: ignore[assignment]
    net.pivot_info = dict(meta.get("pivot", {}))  # type: ignore[assignment]
    if "fingerprint" not in net.generator_info:
        raise InputError(f"{source} does not record which generator it was trained for")
    return net.eval().requires_grad_(False)


def check_hyper_compatible(net: nn.Module, G: nn.Module) -> None:
    """Raise :class:`InputError` unless ``net`` was trained for exactly this generator."""
    from ganinv.encoders import generator_fingerprint

    target = getattr(net, "generator_info", None)
    if not isinstance(target, dict) or "fingerprint" not in target:
        raise InputError("this hypernetwork does not record which generator it was trained for; save it with "
                         "`ganinv train-encoder --arch hyper`")
    fp = generator_fingerprint(G)
    if target["fingerprint"] != fp:
        where = f" — load that one with `{target['invert_args']}`" if target.get("invert_args") else ""
        raise InputError(f"this hypernetwork was trained for generator {target.get('name', '?')!r} (fingerprint "
                         f"{target['fingerprint']}){where}, not for this one (fingerprint {fp}); it only works "
                         "with the exact weights it was trained against")
    check_layers_fit(net, G)  # type: ignore[arg-type]


def resolve_hyper(hyper: nn.Module | str | Path | None, G: nn.Module) -> HyperNetwork:
    """A hypernetwork for ``G``: given, loaded from a folder, or the bundled one for ``G``; always checked."""
    from ganinv import zoo
    from ganinv.encoders import generator_fingerprint
    from ganinv.errors import UnknownModelError

    choose_layers(G, "all")  # a StyleGAN2 generator, before anything is looked up
    if hyper is None:
        fp = generator_fingerprint(G)
        for name in zoo.available():
            meta = zoo.describe(name)
            if meta.get("kind") == HYPER_KIND and meta.get("meta", {}).get("generator", {}).get("fingerprint") == fp:
                hyper = name
                break
        else:
            raise UnknownModelError("no bundled hypernetwork was trained for this generator; pass one with "
                                    "hyper=... (or --encoder FOLDER), or train one with "
                                    "`ganinv train-encoder --arch hyper`")
    net = load_hyper(hyper) if isinstance(hyper, (str, Path)) else hyper
    check_hyper_compatible(net, G)
    device = next(G.parameters()).device
    return net.to(device).eval().requires_grad_(False)  # type: ignore[return-value]


def describe_pivot(info: dict[str, Any]) -> str:
    """``"encoder mnist-stylegan2-encoder, 5 passes"`` / ``"the mean latent"`` from a pivot record."""
    enc = info.get("encoder")
    return "the mean latent" if enc in (None, "mean") else f"encoder {enc}, {info.get('passes', 1)} passes"


def compute_pivot(G: nn.Module, images: Tensor, encoder: nn.Module | None, passes: int) -> tuple[Tensor, Tensor]:
    """The pivot codes and their renderings: ``(w+ [B, num_ws, w_dim], image [B, C, H, W] in nominal [0, 1])``.

    ``encoder`` (an encoder object already checked against ``G``) runs ``passes`` ReStyle passes from its start
    latent; None pivots every image at the mean latent ``w_avg`` (broadcast to every layer)."""
    lo, hi = G.output_range  # type: ignore[attr-defined]
    with torch.no_grad():
        if encoder is None:
            w = G.mean_latent("w+").to(images.device)  # type: ignore[operator]
            lat = w.expand(images.shape[0], -1, -1).contiguous()
            img = ((G._native(lat[:1], "w+", None) - lo) / (hi - lo)).float().expand(images.shape[0], -1, -1, -1)
            return lat, img.contiguous()
        from ganinv.train.encoder import render_start

        start = render_start(encoder, G, "w+")  # type: ignore[arg-type]
        lat = encoder.start_latent.expand(images.shape[0], *encoder.start_latent.shape)
        img = start.expand(images.shape[0], *start.shape[1:])
        for _ in range(passes):
            lat = encoder(images, img, lat)
            img = ((G._native(lat, "w+", None) - lo) / (hi - lo)).float()
        return lat, img


def run_hyper_passes(net: HyperNetwork, G: nn.Module, images: Tensor, pivot: Tensor, pivot_image: Tensor,
                     passes: int) -> list[tuple[dict[str, Tensor], Tensor]]:
    """HyperStyle's iterative refinement: ``passes`` × (accumulated offsets ``{layer: Δ [B, out, in]}``, rendering
    ``[B, C, H, W]`` float32 in nominal [0, 1]); each pass sees the target and the previous rendering (detached)
    and adds its offsets to the previous ones. The code stays the pivot ``[B, num_ws, w_dim]`` throughout.

    With ``net.grad_step`` each pass also adds ``−step_gain[l] · sign(g_l)``, ``g_l`` the gradient of each image's
    squared error at the current offsets (computed here, with detached inputs, also under ``torch.no_grad``)."""
    from ganinv.generators.stylegan2_rowwise import synthesis_rows

    lo, hi = G.output_range  # type: ignore[attr-defined]
    base = base_weights(G, net.layer_names)
    total: dict[str, Tensor] | None = None
    current = pivot_image
    out = []
    names = net.layer_names
    for _ in range(passes):
        step = net(images, current.detach())
        if net.grad_step:
            with torch.enable_grad():
                at = {n: (images.new_zeros(images.shape[0], *base[n].shape[:2]) if total is None else total[n])
                      .detach().requires_grad_(True) for n in names}
                rendered = ((synthesis_rows(G, pivot.detach(), offset_weights(base, at)) - lo) / (hi - lo)).float()  # type: ignore[arg-type]
                grads = torch.autograd.grad((rendered - images.detach()).square().sum(), [at[n] for n in names])
            step = {n: step[n] - net.step_gain[j] * torch.sign(grads[j]) for j, n in enumerate(names)}
        total = step if total is None else {k: total[k] + step[k] for k in step}
        img = ((synthesis_rows(G, pivot, offset_weights(base, total)) - lo) / (hi - lo)).float()  # type: ignore[arg-type]
        out.append((total, img))
        current = img
    return out


__all__ = ["HYPER_KIND", "HyperNetwork", "base_weights", "build_hyper", "check_hyper_compatible",
           "check_layers_fit", "choose_layers", "compute_pivot", "describe_pivot", "load_hyper", "offset_weights",
           "resolve_hyper", "run_hyper_passes", "save_hyper", "weight_differences"]
