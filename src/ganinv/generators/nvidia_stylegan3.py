"""Build a :class:`StyleGAN3Generator` from NVIDIA's ``training.networks_stylegan3.Generator`` record.

NVIDIA network pickles are read without running their code by ganinv's restricted unpickler
(:func:`ganinv.generators.checkpoints.read_nvidia_pkl`), which turns every persistent network into a
record: ``class_name``, ``state`` (the module's ``__dict__`` — ``_parameters``, ``_buffers``,
``_modules`` with child records, ``_init_args`` / ``_init_kwargs``, plain attributes) and
``init_kwargs``. This module maps such a record onto ganinv's StyleGAN3:

* the constructor arguments come from the record's init kwargs (``z_dim``, ``c_dim``, ``w_dim``,
  ``img_resolution``, ``img_channels``, ``mapping_kwargs`` and the synthesis/layer arguments such as
  ``channel_base``, ``conv_kernel``, ``use_radial_filters``, ``conv_clamp``); an argument ganinv does not
  know is an error, not silently dropped;
* tensors are renamed (``mapping.fc{i}.*`` → ``mapping.fc{i}.*``, ``mapping.embed.*`` → ``mapping.embed.*``
  for a class-conditional generator, ``synthesis.input.*`` → ``input.*``,
  ``synthesis.L{i}_{size}_{channels}.*`` → ``layers.{i}.*``, ``mapping.w_avg`` → ``w_avg``) and checked:
  a missing tensor, a tensor with another shape, a tensor with no counterpart or a NaN/Inf raises
  :class:`~ganinv.errors.CheckpointError` naming the NVIDIA key;
* the stored low-pass filters must equal the ones the settings design (they are loaded as stored).

Class-conditional generators (``c_dim > 0``) load as a conditional :class:`StyleGAN3Generator` (their
``mapping.embed`` layer embeds the class; see :mod:`ganinv.generators.conditional` for using one).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import CheckpointError, GaninvError
from ganinv.generators.stylegan3 import StyleGAN3Generator, lowpass_filter

__all__ = ["is_stylegan3_record", "stylegan3_from_record", "stylegan3_config_from_record", "nvidia_stylegan3_state"]

#: Mapped z samples used to estimate ``w_avg`` when a record lacks ``mapping.w_avg``.
W_AVG_SAMPLES = 10_000

_GENERATOR_CLASS = "networks_stylegan3.Generator"
_LAYER_NAME = re.compile(r"L(\d+)_(\d+)_(\d+)")
# NVIDIA Generator's positional parameters, in order (persistence records positional arguments separately).
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
# NVIDIA synthesis / layer keyword → ours (same meaning); num_fp16_res only selects fp16 on GPU and is ignored.
_SYNTHESIS_KWARGS = {
    "channel_base": "channel_base", "channel_max": "channel_max", "num_layers": "num_layers",
    "num_critical": "num_critical", "first_cutoff": "first_cutoff", "first_stopband": "first_stopband",
    "last_stopband_rel": "last_stopband_rel", "margin_size": "margin_size", "output_scale": "output_scale",
    "conv_kernel": "conv_kernel", "filter_size": "filter_size", "lrelu_upsampling": "lrelu_upsampling",
    "use_radial_filters": "use_radial_filters", "conv_clamp": "conv_clamp",
    "magnitude_ema_beta": "magnitude_ema_beta",
}
_IGNORED_KWARGS = ("num_fp16_res",)
_MAPPING_KWARGS = {"num_layers": "mapping_layers", "lr_multiplier": "lr_mlp", "w_avg_beta": "w_avg_beta"}
_INT_ARGS = ("resolution", "img_channels", "z_dim", "w_dim", "c_dim", "mapping_layers", "channel_base", "channel_max",
             "num_layers", "num_critical", "margin_size", "conv_kernel", "filter_size", "lrelu_upsampling")
_FLOAT_ARGS = ("lr_mlp", "w_avg_beta", "first_cutoff", "first_stopband", "last_stopband_rel", "output_scale",
               "magnitude_ema_beta")
_LAYER_TENSORS = ("affine.weight", "affine.bias", "weight", "bias", "magnitude_ema", "up_filter", "down_filter")
_INPUT_TENSORS = ("weight", "affine.weight", "affine.bias", "transform", "freqs", "phases")


def _is_record(obj: Any) -> bool:
    return isinstance(getattr(obj, "class_name", None), str) and isinstance(getattr(obj, "state", None), dict)


def _child(record: Any, name: str) -> Any:
    modules = record.state.get("_modules")
    child = modules.get(name) if isinstance(modules, dict) else None
    return child if _is_record(child) else None


def _notify(notices: list[str] | None, message: str) -> None:
    if notices is not None:
        notices.append(message)
        return
    try:
        from ganinv.generators.checkpoints import CheckpointNotice as category
    except ImportError:  # pragma: no cover - the checkpoints package is being reorganised
        category = UserWarning  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=3)


def is_stylegan3_record(record: Any) -> bool:
    """Whether ``record`` is NVIDIA's StyleGAN3 generator: class ``training.networks_stylegan3.Generator``,
    or (a renamed class) a ``synthesis`` child holding an ``input`` network and ``L{i}_{size}_{channels}`` layers."""
    if not _is_record(record):
        return False
    if record.class_name.endswith(_GENERATOR_CLASS):
        return True
    synthesis = _child(record, "synthesis")
    if synthesis is None or _child(synthesis, "input") is None:
        return False
    modules = synthesis.state.get("_modules")
    return isinstance(modules, dict) and any(_LAYER_NAME.fullmatch(str(k)) for k in modules)


def _plain(value: Any) -> Any:
    """numpy scalars → Python numbers; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    return value


def _record_kwargs(record: Any, source: str) -> dict[str, Any]:
    kwargs = dict(record.init_kwargs)
    args = record.state.get("_init_args") or ()
    if not isinstance(args, (list, tuple)) or len(args) > len(_POSITIONAL):
        raise CheckpointError(f"{source}: the generator's recorded positional arguments are malformed")
    for name, value in zip(_POSITIONAL, args):
        kwargs.setdefault(name, value)
    if not kwargs:
        raise CheckpointError(f"{source}: the StyleGAN3 generator record holds no constructor arguments "
                              f"(_init_kwargs), so its architecture is unknown")
    return kwargs


def stylegan3_config_from_record(record: Any, source: str = "checkpoint") -> dict[str, Any]:
    """Constructor arguments of :class:`StyleGAN3Generator` (plus ``arch``) from NVIDIA's recorded init kwargs.

    Raises:
        CheckpointError: a missing size, an argument ganinv does not know, a value of the wrong kind, or a
            class embedding that disagrees with ``c_dim``.
    """
    kw = _record_kwargs(record, source)
    c_dim = _plain(kw.pop("c_dim", 0))
    mapping = _child(record, "mapping")
    has_embed = mapping is not None and _child(mapping, "embed") is not None
    if c_dim in (0, None) and has_embed:
        raise CheckpointError(f"{source}: the StyleGAN3 generator has a class embedding (mapping.embed) but records "
                              f"c_dim={c_dim}; the file is inconsistent")
    cfg: dict[str, Any] = {"arch": StyleGAN3Generator.arch}
    if c_dim not in (0, None):
        cfg["c_dim"] = c_dim
    for theirs, ours in (("z_dim", "z_dim"), ("w_dim", "w_dim"), ("img_resolution", "resolution"),
                         ("img_channels", "img_channels")):
        if theirs not in kw:
            raise CheckpointError(f"{source}: the StyleGAN3 generator record does not say its {theirs}")
        cfg[ours] = _plain(kw.pop(theirs))
    mkw = kw.pop("mapping_kwargs", None) or {}
    if not isinstance(mkw, dict):
        raise CheckpointError(f"{source}: mapping_kwargs is a {type(mkw).__name__}, not a dict")
    unknown = []
    for name, value in mkw.items():
        if name in _MAPPING_KWARGS:
            cfg[_MAPPING_KWARGS[name]] = _plain(value)
        else:
            unknown.append(f"mapping_kwargs.{name}")
    for name, value in kw.items():
        if name in _SYNTHESIS_KWARGS:
            cfg[_SYNTHESIS_KWARGS[name]] = _plain(value)
        elif name not in _IGNORED_KWARGS:
            unknown.append(str(name))
    if unknown:
        raise CheckpointError(f"{source}: the StyleGAN3 generator was built with settings ganinv does not know: "
                              f"{', '.join(sorted(unknown))}")
    cfg.setdefault("mapping_layers", 2)  # NVIDIA MappingNetwork's default
    for name in _INT_ARGS:
        if name in cfg:
            value = cfg[name]
            if isinstance(value, float) and value.is_integer():
                cfg[name] = int(value)
            elif isinstance(value, bool) or not isinstance(value, int):
                raise CheckpointError(f"{source}: {name}={value!r} is not a whole number")
    for name in _FLOAT_ARGS:
        if name in cfg:
            if isinstance(cfg[name], bool) or not isinstance(cfg[name], (int, float)):
                raise CheckpointError(f"{source}: {name}={cfg[name]!r} is not a number")
            cfg[name] = float(cfg[name])
    if "use_radial_filters" in cfg:
        cfg["use_radial_filters"] = bool(cfg["use_radial_filters"])
    if cfg.get("conv_clamp") is not None:
        if isinstance(cfg["conv_clamp"], bool) or not isinstance(cfg["conv_clamp"], (int, float)):
            raise CheckpointError(f"{source}: conv_clamp={cfg['conv_clamp']!r} is not a number")
        cfg["conv_clamp"] = float(cfg["conv_clamp"])
    return cfg


def _key_map(G: StyleGAN3Generator) -> dict[str, str]:
    """NVIDIA key → ganinv key for every tensor ``G`` has (w_avg included)."""
    keys = {f"mapping.fc{i}.{p}": f"mapping.fc{i}.{p}" for i in range(G.mapping_layers) for p in ("weight", "bias")}
    if G.c_dim:
        keys.update({f"mapping.embed.{p}": f"mapping.embed.{p}" for p in ("weight", "bias")})
    keys["mapping.w_avg"] = "w_avg"
    keys.update({f"synthesis.input.{t}": f"input.{t}" for t in _INPUT_TENSORS})
    for i, spec in enumerate(G.specs):
        for t in _LAYER_TENSORS:
            keys[f"synthesis.{spec.nvidia_name}.{t}"] = f"layers.{i}.{t}"
    return keys


def _check_filters(G: StyleGAN3Generator, nv: dict[str, Tensor], source: str) -> None:
    """The stored filters must be the ones the recorded settings design (else our geometry would be wrong)."""
    for spec in G.specs:
        for kind, taps, cutoff, half, radial in (
                ("up_filter", spec.up_taps, spec.in_cutoff, spec.in_half_width, False),
                ("down_filter", spec.down_taps, spec.out_cutoff, spec.out_half_width, spec.down_radial)):
            key = f"synthesis.{spec.nvidia_name}.{kind}"
            want = lowpass_filter(taps, cutoff, half * 2, spec.tmp_rate, radial=radial)
            if want is None or key not in nv:
                continue
            diff = float((nv[key].double() - torch.from_numpy(want)).abs().max())
            if diff > 1e-6:
                raise CheckpointError(f"{source}: {key} differs from the filter its settings design (max |diff| "
                                      f"{diff:.2e}); the generator was built differently from NVIDIA's StyleGAN3")


def nvidia_stylegan3_state(nv: dict[str, Tensor], G: StyleGAN3Generator,
                           source: str = "checkpoint") -> tuple[dict[str, Tensor], Tensor | None]:
    """Rename NVIDIA's flattened StyleGAN3 tensors to ``G``'s state-dict keys, checking each one.

    Args:
        nv: NVIDIA key → tensor (``mapping.*``, ``synthesis.*``).
        G: a generator of the target architecture (a meta-device skeleton is enough: only shapes are read).
        source: what to name in errors.

    Returns:
        ``(state, w_avg or None)``: ``state`` has exactly ``G.state_dict()``'s keys.

    Raises:
        CheckpointError: naming missing NVIDIA keys, keys whose shape differs, keys with no counterpart
            and tensors holding NaN/Inf.
    """
    expected = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    expected["w_avg"] = (G.w_dim,)
    mapping = {theirs: ours for theirs, ours in _key_map(G).items() if ours in expected}
    missing = [theirs for theirs, ours in mapping.items() if theirs not in nv and ours != "w_avg"]
    reshaped = [f"{theirs}: file {list(nv[theirs].shape)} vs expected {list(expected[ours])}"
                for theirs, ours in mapping.items() if theirs in nv and tuple(nv[theirs].shape) != expected[ours]]
    unexpected = sorted(set(nv) - set(mapping))
    if missing or reshaped or unexpected:
        lines = [f"{source} does not match the StyleGAN3 architecture its settings describe:"]
        for title, items in (("missing tensors", missing), ("tensors with another shape", reshaped),
                             ("tensors with no counterpart", unexpected)):
            if items:
                shown = ", ".join(items[:12]) + (f", … ({len(items) - 12} more)" if len(items) > 12 else "")
                lines.append(f"  {title} ({len(items)}): {shown}")
        raise CheckpointError("\n".join(lines))
    bad = [k for k in mapping if k in nv and nv[k].is_floating_point() and not torch.isfinite(nv[k]).all()]
    non_float = [k for k in mapping if k in nv and not nv[k].is_floating_point()]
    if bad or non_float:
        raise CheckpointError(f"{source}: " + (f"NaN/Inf values in {', '.join(bad[:8])}" if bad else
                                               f"non-float tensors {', '.join(non_float[:8])}"))
    state = {ours: nv[theirs].detach().to(torch.float32).clone() for theirs, ours in mapping.items()
             if theirs in nv and ours != "w_avg"}
    w_avg = nv["mapping.w_avg"].detach().to(torch.float32).clone() if "mapping.w_avg" in nv else None
    return state, w_avg


def stylegan3_from_record(record: Any, source: str = "checkpoint", notices: list[str] | None = None,
                          w_avg_samples: int = W_AVG_SAMPLES) -> StyleGAN3Generator:
    """Build ganinv's StyleGAN3 from NVIDIA's ``training.networks_stylegan3.Generator`` record.

    Args:
        record: the generator's record (``G_ema`` or ``G`` of a pickle read by ``read_nvidia_pkl``).
        source: the file name, for messages.
        notices: receives things the user should know (an estimated ``w_avg``); ``None`` issues them as
            warnings.
        w_avg_samples: mapped z samples used when the record lacks ``mapping.w_avg``.

    Returns:
        the generator on CPU, in eval mode, gradients disabled; renders equal NVIDIA's CPU renders (fp32)
        to float rounding.

    Raises:
        CheckpointError: not a StyleGAN3 generator, unknown settings, or tensors that
            are missing, differently shaped, unexpected, non-finite or filters that do not match.
    """
    if not is_stylegan3_record(record):
        name = getattr(record, "class_name", type(record).__name__)
        raise CheckpointError(f"{source}: {name or 'the network'} is not NVIDIA's StyleGAN3 generator "
                              f"(training.networks_stylegan3.Generator)")
    cfg = stylegan3_config_from_record(record, source)
    args = {k: v for k, v in cfg.items() if k != "arch"}
    try:
        with torch.device("meta"):
            skeleton = StyleGAN3Generator(**args)
    except GaninvError as exc:
        raise CheckpointError(f"{source}: its StyleGAN3 settings are unusable: {exc}") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise CheckpointError(f"{source}: its StyleGAN3 settings are unusable ({type(exc).__name__}: {exc})") from None
    from ganinv.generators.checkpoints.unpickler import _flatten_record

    nv = _flatten_record(record, source)
    state, w_avg = nvidia_stylegan3_state(nv, skeleton, source)
    _check_filters(skeleton, nv, source)
    G = skeleton.to_empty(device="cpu")
    G.load_state_dict(state, strict=True)
    if w_avg is not None:
        G.w_avg.copy_(w_avg)
    else:
        G.estimate_w_avg(w_avg_samples)
        _notify(notices, f"{source}: no mapping.w_avg stored; estimated it from {w_avg_samples:,} mapped z "
                         f"(truncation uses it)")
    return G.eval().requires_grad_(False)
