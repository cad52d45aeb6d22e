"""Test helper: write NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles from ganinv generators.

NVIDIA pickles each network through ``torch_utils.persistence`` as
``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src, class_name,
state}``, where ``state`` is the ``nn.Module.__dict__``. This helper reproduces that byte
layout *without* NVIDIA's code: it installs stand-in modules ``torch_utils``,
``torch_utils.persistence``, ``dnnlib`` and ``dnnlib.util`` in ``sys.modules`` only while
pickling, builds the nested records from a :class:`StyleGAN2Generator` by inverting
ganinv's NVIDIA → rosinality key mapping, and removes the stand-ins afterwards.

``module_src`` is configurable so a test can embed code that would leave a marker file if
anything ever executed it.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.generators.stylegan2 import StyleGAN2Generator, make_kernel
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.generators.stylegan3 import StyleGAN3Generator

DEFAULT_MODULE_SRC = '"""Stand-in for NVIDIA\'s training/networks.py source (never executed by ganinv)."""\n'
_FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")


@contextlib.contextmanager
def fake_nvidia_modules() -> Iterator[tuple[Any, type]]:
    """Install stand-in ``torch_utils.persistence`` and ``dnnlib.util`` while the block runs.

    Yields ``(reconstruct_fn, EasyDict)``: the function pickled as
    ``torch_utils.persistence._reconstruct_persistent_obj`` and the ``dnnlib.util.EasyDict`` class.
    """
    saved = {name: sys.modules.get(name) for name in _FAKE_MODULES}
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:  # pragma: no cover - never called
        raise RuntimeError("stand-in only; it exists so that pickle can name it")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

    class EasyDict(dict):
        """Stand-in for dnnlib.util.EasyDict."""

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"

    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    torch_utils.persistence = persistence  # type: ignore[attr-defined]
    util.EasyDict = EasyDict  # type: ignore[attr-defined]
    dnnlib.util = util  # type: ignore[attr-defined]
    dnnlib.EasyDict = EasyDict  # type: ignore[attr-defined]
    sys.modules.update({"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib,
                        "dnnlib.util": util})
    try:
        yield _reconstruct_persistent_obj, EasyDict
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class Persistent:
    """An object that pickles exactly like an NVIDIA persistent network: ``(_reconstruct_persistent_obj, (meta,))``."""

    def __init__(self, reconstruct: Any, meta: dict[str, Any]) -> None:
        self._reconstruct = reconstruct
        self.meta = meta

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return self._reconstruct, (self.meta,)


class _Builder:
    """Builds NVIDIA-style records (``Persistent`` objects) for one pickle."""

    def __init__(self, reconstruct: Any, easydict: type, module_src: str) -> None:
        self.reconstruct, self.EasyDict, self.module_src = reconstruct, easydict, module_src

    def record(self, class_name: str, params: dict[str, Tensor] | None = None,
               buffers: dict[str, Tensor] | None = None, modules: dict[str, Any] | None = None,
               init_kwargs: dict[str, Any] | None = None, **attrs: Any) -> Persistent:
        """One network: ``state`` mimics ``nn.Module.__dict__`` plus persistence's ``_init_args/_init_kwargs``."""
        state = {
            "training": False,
            "_parameters": collections.OrderedDict(
                (k, torch.nn.Parameter(v.detach().clone(), requires_grad=False)) for k, v in (params or {}).items()),
            "_buffers": collections.OrderedDict((k, v.detach().clone()) for k, v in (buffers or {}).items()),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": collections.OrderedDict(),
            "_forward_hooks": collections.OrderedDict(),
            "_forward_pre_hooks": collections.OrderedDict(),
            "_state_dict_hooks": collections.OrderedDict(),
            "_load_state_dict_pre_hooks": collections.OrderedDict(),
            "_modules": collections.OrderedDict(modules or {}),
            "_init_args": (),
            "_init_kwargs": self.EasyDict(init_kwargs or {}),
            **attrs,
        }
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=class_name, state=state)
        return Persistent(self.reconstruct, meta)

    def fc(self, weight: Tensor, bias: Tensor, lr: float, activation: str,
           class_name: str = "training.networks.FullyConnectedLayer") -> Persistent:
        out_f, in_f = weight.shape
        return self.record(class_name, {"weight": weight, "bias": bias},
                           init_kwargs={"in_features": in_f, "out_features": out_f, "activation": activation,
                                        "lr_multiplier": lr},
                           activation=activation, in_features=in_f, out_features=out_f,
                           weight_gain=np.float64(lr / np.sqrt(in_f)), bias_gain=lr)


def nvidia_state(G: StyleGAN2Generator) -> dict[str, Tensor]:
    """Invert ganinv's mapping: rosinality keys of ``G`` → NVIDIA generator keys (incl. ``mapping.w_avg``)."""
    sd = G.state_dict()
    nv: dict[str, Tensor] = {}
    for j in range(G.n_mlp):
        nv[f"mapping.fc{j}.weight"] = sd[f"style.{j + 1}.weight"]
        nv[f"mapping.fc{j}.bias"] = sd[f"style.{j + 1}.bias"]
    if G.c_dim:
        nv["mapping.embed.weight"], nv["mapping.embed.bias"] = sd["embed.weight"], sd["embed.bias"]
    nv["mapping.w_avg"] = G.w_avg.detach().clone()
    base_filter = make_kernel(list(G.blur_kernel))
    nv["synthesis.b4.const"] = sd["input.input"][0]
    nv["synthesis.b4.resample_filter"] = base_filter

    def layer(src: str, dst: str, noise_idx: int, up: bool) -> None:
        nv[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        nv[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        nv[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        nv[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape(())
        nv[f"{dst}.noise_const"] = sd[f"noises.noise_{noise_idx}"][0, 0]
        nv[f"{dst}.resample_filter"] = sd[f"{src}.conv.blur.kernel"] / 4 if up else base_filter

    def torgb(src: str, dst: str) -> None:
        nv[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        nv[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        nv[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    layer("conv1", "synthesis.b4.conv1", 0, up=False)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for i in range(1, G.log_size - 1):
        b = f"synthesis.b{4 * 2 ** i}"
        layer(f"convs.{2 * i - 2}", f"{b}.conv0", 2 * i - 1, up=True)
        layer(f"convs.{2 * i - 1}", f"{b}.conv1", 2 * i, up=False)
        torgb(f"to_rgbs.{i - 1}", f"{b}.torgb")
        nv[f"{b}.resample_filter"] = sd[f"to_rgbs.{i - 1}.upsample.kernel"] / 4
    return {k: v.detach().clone() for k, v in nv.items()}


def _check_conditional(G: Any, conditional: bool | None) -> None:
    """``conditional`` must agree with the generator (it is derived from ``G.c_dim`` when None)."""
    if conditional is not None and conditional != bool(G.c_dim):
        raise ValueError(f"conditional={conditional} but the generator has c_dim={G.c_dim}: build a generator with "
                         f"c_dim > 0 to write a class-conditional pickle")


def _generator_record(bld: _Builder, G: StyleGAN2Generator, *, conditional: bool | None, stylegan3: bool,
                      include_w_avg: bool, conv_clamp: int | None, extra_state: dict[str, Any] | None) -> Persistent:
    _check_conditional(G, conditional)
    nv = nvidia_state(G)
    c_dim = G.c_dim
    mapping_modules: dict[str, Any] = {}
    if c_dim:
        mapping_modules["embed"] = bld.fc(nv["mapping.embed.weight"], nv["mapping.embed.bias"], 1.0, "linear")
    for j in range(G.n_mlp):
        mapping_modules[f"fc{j}"] = bld.fc(nv[f"mapping.fc{j}.weight"], nv[f"mapping.fc{j}.bias"], G.lr_mlp, "lrelu")
    mapping = bld.record(
        "training.networks.MappingNetwork", buffers={"w_avg": nv["mapping.w_avg"]} if include_w_avg else {},
        modules=mapping_modules,
        init_kwargs={"z_dim": G.z_dim, "c_dim": c_dim, "w_dim": G.w_dim, "num_ws": G.num_ws,
                     "num_layers": G.n_mlp, "lr_multiplier": G.lr_mlp,
                     **({"embed_features": G.embed_features} if c_dim else {})},
        z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, num_ws=G.num_ws, num_layers=G.n_mlp, w_avg_beta=0.995)

    def affine(prefix: str) -> Persistent:
        return bld.fc(nv[f"{prefix}.affine.weight"], nv[f"{prefix}.affine.bias"], 1.0, "linear")

    def synth_layer(prefix: str, res: int, up: int) -> Persistent:
        return bld.record(
            "training.networks.SynthesisLayer",
            params={"weight": nv[f"{prefix}.weight"], "noise_strength": nv[f"{prefix}.noise_strength"],
                    "bias": nv[f"{prefix}.bias"]},
            buffers={"resample_filter": nv[f"{prefix}.resample_filter"], "noise_const": nv[f"{prefix}.noise_const"]},
            modules={"affine": affine(prefix)},
            resolution=res, up=up, use_noise=True, activation="lrelu", conv_clamp=conv_clamp, channels_last=False,
            padding=1, act_gain=float(np.sqrt(2)))

    def torgb(prefix: str) -> Persistent:
        weight = nv[f"{prefix}.weight"]
        return bld.record("training.networks.ToRGBLayer", params={"weight": weight, "bias": nv[f"{prefix}.bias"]},
                          modules={"affine": affine(prefix)}, conv_clamp=conv_clamp, channels_last=False,
                          weight_gain=np.float64(1 / np.sqrt(weight.shape[1])))

    blocks: dict[str, Any] = {}
    resolutions = [4 * 2 ** i for i in range(G.log_size - 1)]
    for res in resolutions:
        b = f"synthesis.b{res}"
        modules: dict[str, Any] = {}
        params: dict[str, Tensor] = {}
        if res == 4:
            params["const"] = nv[f"{b}.const"]
        else:
            modules["conv0"] = synth_layer(f"{b}.conv0", res, 2)
        modules["conv1"] = synth_layer(f"{b}.conv1", res, 1)
        modules["torgb"] = torgb(f"{b}.torgb")
        blocks[f"b{res}"] = bld.record(
            "training.networks.SynthesisBlock", params=params, buffers={"resample_filter": nv[f"{b}.resample_filter"]},
            modules=modules, in_channels=0 if res == 4 else G.widths[res // 2], w_dim=G.w_dim, resolution=res,
            img_channels=G.channels, is_last=res == G.resolution, architecture="skip", use_fp16=False,
            channels_last=False, num_conv=1 if res == 4 else 2, num_torgb=1)
    synthesis_kwargs = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": conv_clamp}
    if stylegan3:
        blocks = {
            "input": bld.record("training.networks_stylegan3.SynthesisInput", params={"weight": torch.randn(8, 4)},
                                buffers={"freqs": torch.randn(8, 2), "phases": torch.rand(8)}),
            "L0_36_512": bld.record("training.networks_stylegan3.SynthesisLayer",
                                    params={"weight": torch.randn(8, 8, 3, 3), "bias": torch.zeros(8)}),
        }
    synthesis = bld.record(
        "training.networks_stylegan3.SynthesisNetwork" if stylegan3 else "training.networks.SynthesisNetwork",
        modules=blocks, init_kwargs={"w_dim": G.w_dim, "img_resolution": G.resolution,
                                     "img_channels": G.channels, **synthesis_kwargs},
        w_dim=G.w_dim, img_resolution=G.resolution, img_resolution_log2=G.log_size, img_channels=G.channels,
        block_resolutions=resolutions, num_ws=G.num_ws)
    init_kwargs = {"z_dim": G.z_dim, "c_dim": c_dim, "w_dim": G.w_dim, "img_resolution": G.resolution,
                   "img_channels": G.channels, "mapping_kwargs": bld.EasyDict(num_layers=G.n_mlp),
                   "synthesis_kwargs": bld.EasyDict(synthesis_kwargs)}
    return bld.record(
        "training.networks_stylegan3.Generator" if stylegan3 else "training.networks.Generator",
        modules={"synthesis": synthesis, "mapping": mapping}, init_kwargs=init_kwargs,
        z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=G.channels,
        num_ws=G.num_ws, **(extra_state or {}))


def _conv_record(bld: _Builder, weight: Tensor, bias: Tensor | None, activation: str, down: int,
                 conv_clamp: int | None) -> Persistent:
    """An NVIDIA ``Conv2dLayer`` (``weight`` ``[O, I, k, k]``, optional ``bias``, its ``resample_filter``)."""
    out_ch, in_ch, k, _ = weight.shape
    return bld.record(
        "training.networks.Conv2dLayer", params={"weight": weight, **({"bias": bias} if bias is not None else {})},
        buffers={"resample_filter": make_kernel([1, 3, 3, 1])},
        init_kwargs={"in_channels": in_ch, "out_channels": out_ch, "kernel_size": k, "bias": bias is not None,
                     "activation": activation, "down": down, "conv_clamp": conv_clamp},
        activation=activation, up=1, down=down, conv_clamp=conv_clamp, padding=k // 2,
        weight_gain=np.float64(1 / np.sqrt(in_ch * k * k)),
        act_gain=float(np.sqrt(2)) if activation == "lrelu" else 1.0)


def discriminator_record(bld: _Builder, D: StyleGAN2Discriminator, *, conv_clamp: int | None = None,
                         architecture: str = "resnet", c_dim: int = 0) -> Persistent:
    """NVIDIA's ``training.networks.Discriminator`` record holding ``D``'s weights (ganinv → NVIDIA names, the
    inverse of :func:`ganinv.convert.discriminator.nvidia_discriminator`)."""
    sd = {k: v.detach().clone() for k, v in D.state_dict().items()}
    res = [D.resolution // 2 ** i for i in range(len(D.blocks))]  # R, R/2, …, 8
    blocks: dict[str, Any] = {}
    for i, r in enumerate(res):
        modules: dict[str, Any] = {}
        if i == 0:
            modules["fromrgb"] = _conv_record(bld, sd["from_rgb.weight"], sd["from_rgb.act.bias"], "lrelu", 1,
                                              conv_clamp)
        modules["conv0"] = _conv_record(bld, sd[f"blocks.{i}.conv1.weight"], sd[f"blocks.{i}.conv1.act.bias"], "lrelu",
                                        1, conv_clamp)
        modules["conv1"] = _conv_record(bld, sd[f"blocks.{i}.conv2.weight"], sd[f"blocks.{i}.conv2.act.bias"], "lrelu",
                                        2, conv_clamp)
        modules["skip"] = _conv_record(bld, sd[f"blocks.{i}.skip.weight"], None, "linear", 2, None)
        blocks[f"b{r}"] = bld.record(
            "training.networks.DiscriminatorBlock", buffers={"resample_filter": make_kernel([1, 3, 3, 1])},
            modules=modules, in_channels=0 if i == 0 else D.channels[str(r)], resolution=r,
            img_channels=D.img_channels, architecture=architecture, use_fp16=False, channels_last=False,
            num_layers=len(modules))
    epi: dict[str, Any] = {}
    if D.mbstd_group > 0:
        epi["mbstd"] = bld.record("training.networks.MinibatchStdLayer", group_size=D.mbstd_group, num_channels=1)
    epi["conv"] = _conv_record(bld, sd["final_conv.weight"], sd["final_conv.act.bias"], "lrelu", 1, conv_clamp)
    epi["fc"] = bld.fc(sd["final_linear.weight"], sd["final_linear.bias"], 1.0, "lrelu")
    epi["out"] = bld.fc(sd["head.weight"], sd["head.bias"], 1.0, "linear")
    c4 = D.channels["4"]
    blocks["b4"] = bld.record("training.networks.DiscriminatorEpilogue", modules=epi, in_channels=c4, cmap_dim=0,
                              resolution=4, img_channels=D.img_channels, architecture=architecture)
    if c_dim:
        embed = bld.fc(torch.randn(c4, c_dim), torch.zeros(c4), 1.0, "linear")
        blocks["mapping"] = bld.record("training.networks.MappingNetwork", modules={"embed": embed})
    return bld.record(
        "training.networks.Discriminator", modules=blocks,
        init_kwargs={"c_dim": c_dim, "img_resolution": D.resolution, "img_channels": D.img_channels,
                     "architecture": architecture, "conv_clamp": conv_clamp,
                     "epilogue_kwargs": bld.EasyDict(mbstd_group_size=D.mbstd_group)},
        c_dim=c_dim, img_resolution=D.resolution, img_channels=D.img_channels, block_resolutions=res)


def write_nvidia_pkl(G: StyleGAN2Generator, path: str | Path, *, module_src: str = DEFAULT_MODULE_SRC,
                     conditional: bool | None = None, stylegan3: bool = False, include_w_avg: bool = True,
                     include_g_ema: bool = True, conv_clamp: int | None = None,
                     extra_generator_state: dict[str, Any] | None = None, protocol: int = 4,
                     D: StyleGAN2Discriminator | None = None, include_d: bool = True,
                     d_kwargs: dict[str, Any] | None = None) -> Path:
    """Write ``G`` as NVIDIA's ``{G, D, G_ema, training_set_kwargs, augment_pipe}`` network pickle.

    Args:
        G: the generator to export (its rosinality keys are mapped to NVIDIA names).
        path: output file.
        module_src: source text embedded in every persistent record (never executed by ganinv).
        conditional: whether ``G`` is class-conditional (None: from ``G.c_dim``; it must agree). A conditional
            ``G`` is written with its ``mapping.embed`` layer and ``c_dim``.
        stylegan3: name the classes ``training.networks_stylegan3.*`` with ``synthesis.input``/``L0_*`` layers.
        include_w_avg: keep ``mapping.w_avg``.
        include_g_ema: write ``G_ema`` (otherwise only ``G``).
        conv_clamp: value recorded in ``synthesis_kwargs`` (NVIDIA's configs use 256).
        extra_generator_state: extra entries in the generator record's state (e.g. a malicious object).
        protocol: pickle protocol (NVIDIA's files are protocol 3/4).
        D: a discriminator written as NVIDIA's real ``D`` (:func:`discriminator_record`); without it ``D`` is a
            stub record that does not convert.
        include_d: write ``D`` at all.
        d_kwargs: options of :func:`discriminator_record` (``architecture``, ``c_dim``, ``conv_clamp``).
    """
    path = Path(path)
    with fake_nvidia_modules() as (reconstruct, easydict):
        bld = _Builder(reconstruct, easydict, module_src)
        kwargs = dict(conditional=conditional, stylegan3=stylegan3, include_w_avg=include_w_avg,
                      conv_clamp=conv_clamp, extra_state=extra_generator_state)
        g_ema = _generator_record(bld, G, **kwargs)
        g_train = _generator_record(bld, G, **kwargs)
        disc = discriminator_record(bld, D, **(d_kwargs or {})) if D is not None else bld.record(
            "training.networks.Discriminator",
            modules={"b4": bld.record("training.networks.DiscriminatorEpilogue",
                                      params={"out_weight": torch.randn(1, 8), "out_bias": torch.zeros(1)})},
            init_kwargs={"c_dim": 0, "img_resolution": G.resolution, "img_channels": G.channels},
            c_dim=0, img_resolution=G.resolution, img_channels=G.channels)
        augment = bld.record("training.augment.AugmentPipe", buffers={"p": torch.zeros([])},
                             init_kwargs={"xflip": 1, "rotate90": 1}, xflip=1.0, rotate90=1.0,
                             Hz_table=np.linspace(0, 1, 4, dtype=np.float32))
        data = {"G": g_train, **({"D": disc} if include_d else {}), "augment_pipe": augment,
                "training_set_kwargs": easydict(class_name="training.dataset.ImageFolderDataset",
                                                path="~/datasets/digits.zip", use_labels=False, max_size=4000,
                                                xflip=False, resolution=G.resolution)}
        if include_g_ema:
            data["G_ema"] = g_ema
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


def fake_modules_installed() -> list[str]:
    """Names of the stand-in modules still present in ``sys.modules`` (should be empty after writing)."""
    return [name for name in _FAKE_MODULES if name in sys.modules]


# ----------------------------------------------------------------------------------
# StyleGAN3 (training.networks_stylegan3)
# ----------------------------------------------------------------------------------
_SG3 = "training.networks_stylegan3"
# ganinv StyleGAN3Generator config key → NVIDIA Generator keyword (flat: synthesis and layer arguments)
_SG3_KWARGS = {"channel_base": "channel_base", "channel_max": "channel_max", "num_layers": "num_layers",
               "num_critical": "num_critical", "first_cutoff": "first_cutoff", "first_stopband": "first_stopband",
               "last_stopband_rel": "last_stopband_rel", "margin_size": "margin_size", "output_scale": "output_scale",
               "conv_kernel": "conv_kernel", "filter_size": "filter_size", "lrelu_upsampling": "lrelu_upsampling",
               "use_radial_filters": "use_radial_filters", "conv_clamp": "conv_clamp",
               "magnitude_ema_beta": "magnitude_ema_beta"}


def nvidia_stylegan3_tensors(G: StyleGAN3Generator) -> dict[str, Tensor | None]:
    """ganinv StyleGAN3 keys → NVIDIA keys (``synthesis.L{i}_{size}_{ch}.*``, ``mapping.w_avg``; filters a layer
    does not have map to ``None``, as NVIDIA registers them)."""
    sd = G.state_dict()
    nv: dict[str, Tensor | None] = {}
    for i in range(G.mapping_layers):
        nv[f"mapping.fc{i}.weight"] = sd[f"mapping.fc{i}.weight"]
        nv[f"mapping.fc{i}.bias"] = sd[f"mapping.fc{i}.bias"]
    if G.c_dim:
        nv["mapping.embed.weight"], nv["mapping.embed.bias"] = sd["mapping.embed.weight"], sd["mapping.embed.bias"]
    nv["mapping.w_avg"] = G.w_avg
    for t in ("weight", "affine.weight", "affine.bias", "transform", "freqs", "phases"):
        nv[f"synthesis.input.{t}"] = sd[f"input.{t}"]
    for i, spec in enumerate(G.specs):
        for t in ("affine.weight", "affine.bias", "weight", "bias", "magnitude_ema", "up_filter", "down_filter"):
            nv[f"synthesis.{spec.nvidia_name}.{t}"] = sd.get(f"layers.{i}.{t}")
    return {k: None if v is None else v.detach().clone() for k, v in nv.items()}


def stylegan3_generator_record(bld: _Builder, G: StyleGAN3Generator, *, include_w_avg: bool = True,
                               drop: tuple[str, ...] = (), replace: dict[str, Tensor] | None = None,
                               kwargs_update: dict[str, Any] | None = None,
                               conditional: bool | None = None) -> Persistent:
    """NVIDIA's ``training.networks_stylegan3.Generator`` record holding ``G``'s weights (the inverse of
    :func:`ganinv.generators.nvidia_stylegan3.stylegan3_from_record`).

    Args:
        drop: NVIDIA keys to leave out (a damaged file).
        replace: NVIDIA key → tensor to store instead (e.g. of another shape).
        kwargs_update: entries merged into the generator's init kwargs.
        conditional: whether ``G`` is class-conditional (None: from ``G.c_dim``; it must agree).
    """
    _check_conditional(G, conditional)
    nv = nvidia_stylegan3_tensors(G)
    nv.update(replace or {})
    cfg = G.config()
    c_dim = G.c_dim

    def get(key: str) -> Tensor | None:
        return None if key in drop else nv[key]

    def params(prefix: str, names: tuple[str, ...]) -> dict[str, Tensor]:
        return {n: t for n in names if (t := get(f"{prefix}.{n}")) is not None}

    def fc(prefix: str, lr: float, activation: str) -> Persistent:
        weight, bias = get(f"{prefix}.weight"), get(f"{prefix}.bias")
        rec = bld.fc(weight if weight is not None else torch.zeros(1, 1),
                     bias if bias is not None else torch.zeros(1), lr, activation,
                     class_name=f"{_SG3}.FullyConnectedLayer")
        p = rec.meta["state"]["_parameters"]
        for name, value in (("weight", weight), ("bias", bias)):
            if value is None:
                del p[name]
        return rec

    mapping_modules: dict[str, Any] = {}
    if c_dim and "mapping.embed.weight" not in drop:
        mapping_modules["embed"] = fc("mapping.embed", 1.0, "linear")
    for i in range(G.mapping_layers):
        mapping_modules[f"fc{i}"] = fc(f"mapping.fc{i}", G.lr_mlp, "lrelu")
    w_avg = get("mapping.w_avg") if include_w_avg else None
    mapping = bld.record(
        f"{_SG3}.MappingNetwork", buffers={"w_avg": w_avg} if w_avg is not None else {}, modules=mapping_modules,
        init_kwargs={"z_dim": G.z_dim, "c_dim": c_dim, "w_dim": G.w_dim, "num_ws": G.num_ws,
                     "num_layers": G.mapping_layers, "lr_multiplier": G.lr_mlp, "w_avg_beta": G.w_avg_beta},
        z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, num_ws=G.num_ws, num_layers=G.mapping_layers,
        w_avg_beta=G.w_avg_beta)

    inp = G.input
    input_rec = bld.record(
        f"{_SG3}.SynthesisInput", params=params("synthesis.input", ("weight",)),
        buffers=params("synthesis.input", ("transform", "freqs", "phases")),
        modules={"affine": fc("synthesis.input.affine", 1.0, "linear")},
        init_kwargs={"w_dim": G.w_dim, "channels": inp.channels, "size": inp.size,
                     "sampling_rate": np.float64(inp.rate), "bandwidth": np.float64(inp.bandwidth)},
        w_dim=G.w_dim, channels=inp.channels, size=np.broadcast_to(np.asarray(inp.size), [2]),
        sampling_rate=np.float64(inp.rate), bandwidth=np.float64(inp.bandwidth))
    layers: dict[str, Any] = {"input": input_rec}
    for spec in G.specs:
        prefix = f"synthesis.{spec.nvidia_name}"
        buffers = params(prefix, ("magnitude_ema",))
        for name in ("up_filter", "down_filter"):  # NVIDIA registers missing filters as None buffers
            buffers[name] = get(f"{prefix}.{name}")
        layers[spec.nvidia_name] = bld.record(
            f"{_SG3}.SynthesisLayer", params=params(prefix, ("weight", "bias")), buffers={},
            modules={"affine": fc(f"{prefix}.affine", 1.0, "linear")},
            w_dim=G.w_dim, is_torgb=spec.is_torgb, is_critically_sampled=spec.is_critical, use_fp16=False,
            in_channels=spec.in_channels, out_channels=spec.out_channels,
            in_size=np.broadcast_to(np.asarray(spec.in_size), [2]),
            out_size=np.broadcast_to(np.asarray(spec.out_size), [2]),
            in_sampling_rate=spec.in_rate, out_sampling_rate=spec.out_rate, tmp_sampling_rate=spec.tmp_rate,
            in_cutoff=np.float64(spec.in_cutoff), out_cutoff=np.float64(spec.out_cutoff),
            conv_kernel=spec.conv_kernel, conv_clamp=G.conv_clamp, up_factor=spec.up, down_factor=spec.down,
            up_taps=spec.up_taps, down_taps=spec.down_taps, down_radial=spec.down_radial,
            padding=list(spec.padding))
        layers[spec.nvidia_name].meta["state"]["_buffers"] = collections.OrderedDict(
            (k, None if v is None else v.detach().clone()) for k, v in buffers.items())
    synthesis = bld.record(
        f"{_SG3}.SynthesisNetwork", modules=layers, w_dim=G.w_dim, num_ws=G.num_ws, img_resolution=G.resolution,
        img_channels=G.channels, num_layers=G.num_layers, num_critical=cfg["num_critical"],
        margin_size=cfg["margin_size"], output_scale=G.output_scale, num_fp16_res=4,
        layer_names=[s.nvidia_name for s in G.specs])
    init_kwargs: dict[str, Any] = {
        "z_dim": G.z_dim, "c_dim": c_dim, "w_dim": G.w_dim, "img_resolution": G.resolution,
        "img_channels": G.channels,
        "mapping_kwargs": bld.EasyDict(num_layers=G.mapping_layers, lr_multiplier=G.lr_mlp,
                                       w_avg_beta=G.w_avg_beta),
        "num_fp16_res": 4}
    init_kwargs.update({theirs: cfg[ours] for ours, theirs in _SG3_KWARGS.items()})
    init_kwargs.update(kwargs_update or {})
    return bld.record(f"{_SG3}.Generator", modules={"synthesis": synthesis, "mapping": mapping},
                      init_kwargs=init_kwargs, z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim,
                      img_resolution=G.resolution, img_channels=G.channels, num_ws=G.num_ws)


def write_nvidia_stylegan3_pkl(G: StyleGAN3Generator, path: str | Path, *, module_src: str = DEFAULT_MODULE_SRC,
                               include_w_avg: bool = True, drop: tuple[str, ...] = (),
                               replace: dict[str, Tensor] | None = None, kwargs_update: dict[str, Any] | None = None,
                               conditional: bool | None = None, protocol: int = 4) -> Path:
    """Write ``G`` as an NVIDIA stylegan3 training snapshot ``{G, D, G_ema, augment_pipe, training_set_kwargs}``
    (options as in :func:`stylegan3_generator_record`; ``D`` is a stub record)."""
    path = Path(path)
    with fake_nvidia_modules() as (reconstruct, easydict):
        bld = _Builder(reconstruct, easydict, module_src)
        kwargs = dict(include_w_avg=include_w_avg, drop=drop, replace=replace, kwargs_update=kwargs_update,
                      conditional=conditional)
        disc = bld.record("training.networks_stylegan2.Discriminator",
                          modules={"b4": bld.record("training.networks_stylegan2.DiscriminatorEpilogue",
                                                    params={"out_weight": torch.randn(1, 8)})},
                          init_kwargs={"c_dim": 0, "img_resolution": G.resolution, "img_channels": G.channels})
        data = {"G": stylegan3_generator_record(bld, G, **kwargs), "D": disc,
                "G_ema": stylegan3_generator_record(bld, G, **kwargs), "augment_pipe": None,
                "training_set_kwargs": easydict(class_name="training.dataset.ImageFolderDataset",
                                                path="~/datasets/faces.zip", use_labels=False, xflip=False,
                                                resolution=G.resolution)}
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path
