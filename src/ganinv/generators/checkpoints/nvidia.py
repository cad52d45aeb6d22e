"""NVIDIA network pickles (``stylegan2-ada-pytorch``, ``stylegan3``): pickle → records → a ganinv generator.

The pickle is read by the restricted unpickler (:mod:`~ganinv.generators.checkpoints.unpickler`) into
:class:`PersistentRecord` trees; ``G_ema`` (else ``G``) is handed to the first *record converter* whose
predicate takes it (:func:`register_record_converter`). The StyleGAN2 converter, registered first,
renames NVIDIA's tensors to rosinality's layout (:func:`nvidia_to_rosinality`, one function per block
kind) and loads them into a :class:`StyleGAN2Generator`; the StyleGAN3 converter
(:mod:`ganinv.generators.nvidia_stylegan3`) follows. A generator no converter takes is refused with
the StyleGAN2 converter's reasons (StyleGAN3-like, not 'skip', not a StyleGAN2). Class-conditional
generators (``c_dim > 0``) of either kind convert with their class embedding (``mapping.embed``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import CheckpointError
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints.common import W_AVG_SAMPLES, _notify, _summary_text
from ganinv.generators.checkpoints.rosinality import _blur_kernel_option, _build_stylegan2, _estimate_w_avg
from ganinv.generators.checkpoints.rosinality import _set_w_avg
from ganinv.generators.checkpoints.sniff import _require_file, sniff_format
from ganinv.generators.checkpoints.unpickler import PersistentRecord, _flatten_record, read_restricted_pickle
from ganinv.generators.nvidia_stylegan3 import is_stylegan3_record, stylegan3_from_record
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.modelfile import load_state_strict

#: The format's name in :func:`ganinv.generators.checkpoints.load.formats`.
NAME: str = "nvidia"
#: What :func:`~ganinv.generators.checkpoints.sniff.sniff_format` says of the files this format reads.
SNIFFED_AS: tuple[str, ...] = ("pickle",)

# StyleGAN3's synthesis network: an ``input`` (Fourier features) and layers named ``L{i}_{size}_{channels}``.
_STYLEGAN3_KEY = re.compile(r"synthesis\.(input\.|L\d+_)")


# ----------------------------------------------------------------------------------
# Reading the pickle and picking the generator
# ----------------------------------------------------------------------------------
def read_nvidia_pkl(path: str | Path) -> tuple[Any, list[str]]:
    """Unpickle an NVIDIA ``.pkl`` with :class:`NvidiaUnpickler`.

    Returns:
        ``(obj, globals)``: the top-level object (normally a dict ``G, D, G_ema,
        training_set_kwargs, augment_pipe`` whose networks are :class:`PersistentRecord`)
        and the sorted list of pickle globals it referenced.

    Raises:
        CheckpointError: missing, empty, truncated or corrupt file; or a refused global.
    """
    path = Path(path)
    kind = sniff_format(path)
    _require_file(path, kind, "an NVIDIA .pkl file")
    if kind in ("zip", "torch-legacy"):
        raise CheckpointError(f"{path} is a PyTorch torch.save checkpoint, not an NVIDIA network pickle; "
                              f"load it with load_rosinality (or give it to load_generator / the CLI as is)")
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file, not an NVIDIA network pickle")
    return read_restricted_pickle(path)


def _pick_nvidia_generator(obj: Any, source: str, notices: list[str] | None) -> PersistentRecord:
    """The generator record of an unpickled NVIDIA file: ``G_ema``, else ``G`` (with a notice), or the record itself."""
    if isinstance(obj, PersistentRecord):
        return obj
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}; expected NVIDIA's dict with G, D and G_ema")
    for name in ("G_ema", "G"):
        if isinstance(obj.get(name), PersistentRecord):
            if name == "G":
                _notify(notices, f"{source} has no G_ema; using G (the non-averaged generator)")
            return obj[name]
    keys = ", ".join(str(k) for k in list(obj)[:12]) or "(none)"
    raise CheckpointError(f"{source} holds no NVIDIA generator network (top-level keys: {keys}); expected G_ema or G")


# ----------------------------------------------------------------------------------
# Record converters
# ----------------------------------------------------------------------------------
#: Builds a generator from a record: ``build(record, source, notices, w_avg_samples)``.
RecordBuilder = Callable[[PersistentRecord, str, list[str] | None, int], Generator]
#: What ``ganinv info`` shows of a record a converter takes: ``describe(record, source, notes)`` → a config dict.
RecordDescriber = Callable[[PersistentRecord, str, list[str]], dict[str, Any]]


@dataclass(frozen=True)
class RecordConverter:
    """Turns one kind of NVIDIA generator record into a ganinv generator.

    Attributes:
        name: short name (``"stylegan2"``, ``"stylegan3"``); registering a name again replaces that entry.
        matches: whether this converter takes a record (must not raise).
        build: the generator for a record it takes (CPU; eval mode and no gradients are set by the caller).
        describe: the generator's config for :func:`~ganinv.generators.checkpoints.inspect.inspect_checkpoint`
            without building it; ``None`` builds the generator and describes ``G.config()``.
    """

    name: str
    matches: Callable[[PersistentRecord], bool]
    build: RecordBuilder
    describe: RecordDescriber | None = None


_RECORD_CONVERTERS: list[RecordConverter] = []


def register_record_converter(name: str, matches: Callable[[PersistentRecord], bool], build: RecordBuilder,
                              describe: RecordDescriber | None = None) -> RecordConverter:
    """Add a record converter after those registered so far; a ``name`` already registered is replaced in place.

    Converters are tried in registration order and the first whose ``matches`` is true builds the generator.
    Returns the registered :class:`RecordConverter`.
    """
    converter = RecordConverter(name, matches, build, describe)
    for i, existing in enumerate(_RECORD_CONVERTERS):
        if existing.name == name:
            _RECORD_CONVERTERS[i] = converter
            break
    else:
        _RECORD_CONVERTERS.append(converter)
    return converter


def record_converters() -> tuple[RecordConverter, ...]:
    """The registered record converters, in the order they are tried."""
    return tuple(_RECORD_CONVERTERS)


def find_record_converter(record: PersistentRecord) -> RecordConverter | None:
    """The first registered converter that takes ``record`` (``None`` when none does)."""
    return next((c for c in _RECORD_CONVERTERS if c.matches(record)), None)


def _refuse_unconverted(record: PersistentRecord, source: str) -> NoReturn:
    """Refuse a generator record no converter takes, with the StyleGAN2 converter's reason for refusing it."""
    _check_nvidia_supported(record, list(_flatten_record(record, source)), source)
    raise CheckpointError(f"{source}: no converter takes the network {record.class_name or '(unnamed)'}")


# ----------------------------------------------------------------------------------
# StyleGAN2: which records
# ----------------------------------------------------------------------------------
def _looks_like_stylegan3(record: PersistentRecord, keys: list[str]) -> bool:
    """Whether a record is StyleGAN3-like by its class name or its flattened NVIDIA keys."""
    return "stylegan3" in record.class_name or any(_STYLEGAN3_KEY.match(k) for k in keys)


def _check_nvidia_supported(record: PersistentRecord, keys: list[str], source: str) -> None:
    """Refuse StyleGAN3, non-'skip' and inconsistently conditional generators with one clear sentence each."""
    cls = record.class_name
    kw = record.init_kwargs
    if _looks_like_stylegan3(record, keys):
        raise CheckpointError(f"{source} holds a StyleGAN3 generator ({cls or 'synthesis.input / synthesis.L*'}); "
                              f"ganinv converts only StyleGAN2 generators (stylegan2-ada-pytorch, or "
                              f"stylegan3's networks_stylegan2)")
    c_dim = kw.get("c_dim", record.state.get("c_dim", 0))
    has_embed = any(k.startswith("mapping.embed.") for k in keys)
    if isinstance(c_dim, bool) or not isinstance(c_dim, (int, np.integer)) or c_dim < 0:
        raise CheckpointError(f"{source}: the generator records c_dim={c_dim!r}, not a class count")
    if bool(c_dim) != has_embed:
        raise CheckpointError(f"{source}: the generator records c_dim={c_dim} but "
                              f"{'has' if has_embed else 'has no'} class embedding (mapping.embed); "
                              f"the file is inconsistent")
    synth = kw.get("synthesis_kwargs") if isinstance(kw.get("synthesis_kwargs"), dict) else {}
    arch = synth.get("architecture", "skip")
    if arch != "skip" or any(".skip." in k for k in keys):
        raise CheckpointError(f"{source} uses the '{arch}' synthesis architecture; ganinv supports StyleGAN2's "
                              f"default 'skip' generator only")
    if "synthesis.b4.const" not in keys or not any(k.startswith("mapping.fc") for k in keys):
        raise CheckpointError(f"{source}: the network {cls or '(unnamed)'} is not a StyleGAN2 generator "
                              f"(no synthesis.b4.const / mapping.fc*); it holds {_summary_text(keys, 2)}")


def is_stylegan2_record(record: PersistentRecord) -> bool:
    """Whether ``record`` is a generator the StyleGAN2 converter supports: a well-formed record tree of a
    (conditional or not) 'skip' StyleGAN2 (``synthesis.b4.const``, ``mapping.fc*``) that does not look like StyleGAN3."""
    try:
        _check_nvidia_supported(record, list(_flatten_record(record, "")), "")
    except CheckpointError:
        return False
    return True


# ----------------------------------------------------------------------------------
# StyleGAN2: NVIDIA key names → rosinality's, one function per block kind
# ----------------------------------------------------------------------------------
def _unchanged(t: Tensor) -> Tensor:
    """The tensor as it is (the default transform of :meth:`_Renaming.move`)."""
    return t


class _Renaming:
    """NVIDIA tensors being renamed to rosinality's layout: what was taken, what was absent, what came out."""

    def __init__(self, nv: dict[str, Tensor]) -> None:
        self.nv = nv
        self.used: set[str] = set()
        self.missing: list[str] = []
        self.out: dict[str, Tensor] = {}

    def take(self, key: str) -> Tensor | None:
        """NVIDIA's tensor ``key``, marked as consumed; ``None`` (and listed as missing) when absent."""
        if key not in self.nv:
            self.missing.append(key)
            return None
        self.used.add(key)
        return self.nv[key]

    def move(self, src: str, dst: str, fn: Callable[[Tensor], Tensor] = _unchanged) -> None:
        """Store ``fn(nv[src])`` as ``dst`` (nothing when ``src`` is missing; it is listed)."""
        value = self.take(src)
        if value is not None:
            self.out[dst] = fn(value)

    def drop(self, key: str) -> None:
        """Mark ``key`` as consumed without converting it (an entry the remaining computation does not use)."""
        if key in self.nv:
            self.used.add(key)

    def check_complete(self, source: str) -> None:
        """Raise, listing them, when NVIDIA keys were missing or left without a rosinality counterpart."""
        leftover = sorted(set(self.nv) - self.used)
        if not self.missing and not leftover:
            return
        lines = [f"{source}: the NVIDIA generator does not convert to StyleGAN2 (rosinality layout):"]
        for title, items in (("missing NVIDIA keys", self.missing), ("NVIDIA keys with no counterpart", leftover)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:12])
                             + (f", … ({len(items) - 12} more)" if len(items) > 12 else ""))
        raise CheckpointError("\n".join(lines))


def _mapping_indices(nv: dict[str, Tensor], source: str) -> list[int]:
    """The ``j`` of ``mapping.fc{j}.weight``, which must be numbered 0…n−1."""
    fc_idx = sorted(int(m.group(1)) for k in nv if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if fc_idx != list(range(len(fc_idx))) or not fc_idx:
        raise CheckpointError(f"{source}: mapping layers mapping.fc* are not numbered 0…n−1 (found {fc_idx})")
    return fc_idx


def _synthesis_resolutions(nv: dict[str, Tensor], source: str) -> list[int]:
    """The ``R`` of the ``synthesis.bR`` blocks, which must be 4, 8, … up to the resolution."""
    res_list = sorted({int(m.group(1)) for k in nv if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    expected = [2 ** i for i in range(2, 2 + len(res_list))]
    if res_list != expected or len(res_list) < 2:
        raise CheckpointError(f"{source}: synthesis blocks are {res_list}; expected b4, b8, … up to the resolution")
    return res_list


def _convert_mapping(r: _Renaming, fc_idx: list[int]) -> Tensor | None:
    """``mapping.fc{j}`` → ``style.{j+1}``, ``mapping.embed`` → ``embed`` (conditional generators); returns
    ``mapping.w_avg`` (``None`` when not stored)."""
    if "mapping.embed.weight" in r.nv:
        r.move("mapping.embed.weight", "embed.weight")
        r.move("mapping.embed.bias", "embed.bias")
    for j in fc_idx:
        r.move(f"mapping.fc{j}.weight", f"style.{j + 1}.weight")
        r.move(f"mapping.fc{j}.bias", f"style.{j + 1}.bias")
    return r.take("mapping.w_avg") if "mapping.w_avg" in r.nv else None


def _convert_layer(r: _Renaming, src: str, dst: str, noise_idx: int, res: int, upsample: bool, source: str,
                   notices: list[str] | None) -> None:
    """One modulated 3×3 convolution ``src`` (``synthesis.bR.conv{c}``) → ``dst`` (``conv1`` / ``convs.{k}``)."""
    r.move(f"{src}.weight", f"{dst}.conv.weight", lambda t: t.unsqueeze(0))
    r.move(f"{src}.affine.weight", f"{dst}.conv.modulation.weight")
    r.move(f"{src}.affine.bias", f"{dst}.conv.modulation.bias")
    r.move(f"{src}.bias", f"{dst}.activate.bias")
    if f"{src}.noise_strength" in r.nv:
        r.move(f"{src}.noise_strength", f"{dst}.noise.weight", lambda t: t.reshape(1))
        r.move(f"{src}.noise_const", f"noises.noise_{noise_idx}", lambda t: t.reshape(1, 1, *t.shape[-2:]))
    else:
        r.out[f"{dst}.noise.weight"] = torch.zeros(1)
        r.out[f"noises.noise_{noise_idx}"] = torch.zeros(1, 1, res, res)
        _notify(notices, f"{source}: {src} has no noise input (use_noise=False); its noise strength is set to 0")
    if upsample:
        r.move(f"{src}.resample_filter", f"{dst}.conv.blur.kernel", lambda t: t * 4)
    else:
        r.drop(f"{src}.resample_filter")


def _convert_torgb(r: _Renaming, src: str, dst: str, filter_key: str | None) -> None:
    """A ``torgb`` layer → ``to_rgb1`` / ``to_rgbs.{i}``, with the block's upsampling filter when it has one."""
    r.move(f"{src}.weight", f"{dst}.conv.weight", lambda t: t.unsqueeze(0))
    r.move(f"{src}.affine.weight", f"{dst}.conv.modulation.weight")
    r.move(f"{src}.affine.bias", f"{dst}.conv.modulation.bias")
    r.move(f"{src}.bias", f"{dst}.bias", lambda t: t.reshape(1, -1, 1, 1))
    if filter_key is not None:
        r.move(filter_key, f"{dst}.upsample.kernel", lambda t: t * 4)


def _convert_b4(r: _Renaming, source: str, notices: list[str] | None) -> None:
    """``synthesis.b4``: the constant input, ``conv1`` and ``to_rgb1`` (its resample filter is unused)."""
    r.move("synthesis.b4.const", "input.input", lambda t: t.unsqueeze(0))
    _convert_layer(r, "synthesis.b4.conv1", "conv1", 0, 4, False, source, notices)
    _convert_torgb(r, "synthesis.b4.torgb", "to_rgb1", None)
    r.drop("synthesis.b4.resample_filter")


def _convert_block(r: _Renaming, i: int, res: int, source: str, notices: list[str] | None) -> None:
    """``synthesis.b{res}`` (the ``i``-th block after b4): ``conv0`` (upsampling), ``conv1`` and ``torgb``."""
    b = f"synthesis.b{res}"
    _convert_layer(r, f"{b}.conv0", f"convs.{2 * i - 2}", 2 * i - 1, res, True, source, notices)
    _convert_layer(r, f"{b}.conv1", f"convs.{2 * i - 1}", 2 * i, res, False, source, notices)
    _convert_torgb(r, f"{b}.torgb", f"to_rgbs.{i - 1}", f"{b}.resample_filter")


def _stylegan2_config(nv: dict[str, Tensor], fc_idx: list[int], res_list: list[int], source: str) -> dict[str, Any]:
    """The StyleGAN2 config the (fully converted) NVIDIA tensors imply; ``lr_mlp`` is rosinality's 0.01."""
    widths = {4: int(nv["synthesis.b4.const"].shape[0])}
    for res in res_list[1:]:
        widths[res] = int(nv[f"synthesis.b{res}.conv1.weight"].shape[0])
    first, last = nv["mapping.fc0.weight"], nv[f"mapping.fc{fc_idx[-1]}.weight"]
    if first.dim() != 2 or last.dim() != 2:
        raise CheckpointError(f"{source}: mapping.fc weights must be 2-D, got {list(first.shape)}")
    embed = nv.get("mapping.embed.weight")
    c_dim, embed_features = 0, 0
    if embed is not None:
        if embed.dim() != 2:
            raise CheckpointError(f"{source}: mapping.embed.weight must be 2-D, got {list(embed.shape)}")
        embed_features, c_dim = int(embed.shape[0]), int(embed.shape[1])
    z_dim = int(first.shape[1]) - embed_features
    if z_dim < 1:
        raise CheckpointError(f"{source}: mapping.fc0 takes {int(first.shape[1])} inputs, which leaves no room for "
                              f"z besides the {embed_features}-wide class embedding (z_dim=0 models are not "
                              f"supported)")
    cfg: dict[str, Any] = {
        "arch": "stylegan2", "resolution": res_list[-1], "channels": {str(r): c for r, c in widths.items()},
        "z_dim": z_dim, "w_dim": int(last.shape[0]), "n_mlp": len(fc_idx),
        "img_channels": int(nv["synthesis.b4.torgb.weight"].shape[0]), "lr_mlp": 0.01,
    }
    if c_dim:
        cfg["c_dim"], cfg["embed_features"] = c_dim, embed_features
    if (blur := _blur_kernel_option(nv.get(f"synthesis.b{res_list[1]}.conv0.resample_filter"))) is not None:
        cfg["blur_kernel"] = blur
    return cfg


# NVIDIA entries the conversion drops on purpose (they are not used by the computation that remains):
#   synthesis.b4.resample_filter                 — b4 never upsamples;
#   synthesis.b{R}.conv1.resample_filter, synthesis.b4.conv1.resample_filter — non-upsampling layers never filter.
# Every other NVIDIA entry must be consumed, or the conversion fails listing it.
def nvidia_to_rosinality(nv: dict[str, Tensor], source: str = "checkpoint",
                         notices: list[str] | None = None) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """Convert NVIDIA StyleGAN2 generator tensors to rosinality's key layout.

    Mapping (R = 4·2^i):

    * ``mapping.fc{j}.{weight,bias}`` → ``style.{j+1}.*``; ``mapping.w_avg`` → returned ``latent_avg`` ``[w_dim]``;
      ``mapping.embed.{weight,bias}`` (conditional generators) → ``embed.*``;
    * ``synthesis.b4.const`` ``[C,4,4]`` → ``input.input`` ``[1,C,4,4]``;
    * ``synthesis.b4.conv1`` → ``conv1``; ``synthesis.bR.conv{c}`` → ``convs.{2i−2+c}``;
      ``weight`` ``[O,I,3,3]`` → ``conv.weight`` ``[1,O,I,3,3]``, ``bias`` → ``activate.bias``,
      ``affine`` → ``conv.modulation``, ``noise_strength`` ``[]`` → ``noise.weight`` ``[1]``,
      ``noise_const`` ``[r,r]`` → ``noises.noise_{2i−1+c}`` ``[1,1,r,r]`` (``noise_0`` for b4),
      ``conv0.resample_filter`` × 4 → ``convs.{2i−2}.conv.blur.kernel``;
    * ``synthesis.b4.torgb`` → ``to_rgb1``, ``synthesis.bR.torgb`` → ``to_rgbs.{i−1}``
      (``bias`` ``[C]`` → ``[1,C,1,1]``),
      ``synthesis.bR.resample_filter`` × 4 → ``to_rgbs.{i−1}.upsample.kernel``.

    Returns:
        ``(state, latent_avg or None, config)`` where ``config`` has ``arch="stylegan2"``
        (``lr_mlp`` is left at 0.01; :func:`load_nvidia_pkl` overrides it from the pickle).

    Raises:
        CheckpointError: listing NVIDIA keys that are missing or that have no rosinality counterpart.
    """
    fc_idx = _mapping_indices(nv, source)
    r = _Renaming(nv)
    w_avg = _convert_mapping(r, fc_idx)
    res_list = _synthesis_resolutions(nv, source)
    _convert_b4(r, source, notices)
    for i, res in enumerate(res_list[1:], start=1):
        _convert_block(r, i, res, source, notices)
    r.check_complete(source)
    return r.out, w_avg, _stylegan2_config(nv, fc_idx, res_list, source)


# ----------------------------------------------------------------------------------
# StyleGAN2: the converter
# ----------------------------------------------------------------------------------
def _as_float(value: Any) -> float | None:
    """A real number stored as a Python/numpy number or a one-element tensor; ``None`` otherwise (and for bools)."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    return None


def _nvidia_lr_mlp(record: PersistentRecord) -> float:
    """Mapping learning-rate multiplier: ``mapping.fc0.bias_gain``, else ``mapping_kwargs.lr_multiplier``, else 0.01."""
    mapping = record.child("mapping")
    fc0 = mapping.child("fc0") if mapping is not None else None
    if fc0 is not None and (gain := _as_float(fc0.state.get("bias_gain"))) is not None and gain > 0:
        return gain
    mkw = record.init_kwargs.get("mapping_kwargs")
    if isinstance(mkw, dict) and (lr := _as_float(mkw.get("lr_multiplier"))) is not None and lr > 0:
        return lr
    return 0.01


def _convert_stylegan2_record(record: PersistentRecord, source: str, notices: list[str] | None
                              ) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """A StyleGAN2 generator record → ``(state in rosinality's layout, w_avg or None, config)``.

    Checks that the record is supported and that its constructor arguments agree with its weights; notes
    an ignored ``conv_clamp``.
    """
    nv = _flatten_record(record, source)
    _check_nvidia_supported(record, list(nv), source)
    state, w_avg, cfg = nvidia_to_rosinality(nv, source, notices)
    cfg["lr_mlp"] = _nvidia_lr_mlp(record)
    kw = record.init_kwargs
    for name in ("z_dim", "w_dim", "img_resolution", "img_channels", "c_dim"):
        ours = cfg["resolution"] if name == "img_resolution" else cfg.get(name, 0)
        if isinstance(kw.get(name), int) and kw[name] != ours:
            raise CheckpointError(f"{source}: the generator was built with {name}={kw[name]} but its weights "
                                  f"imply {ours}; the file is inconsistent")
    synth = kw.get("synthesis_kwargs")
    clamp = synth.get("conv_clamp") if isinstance(synth, dict) else None
    if clamp is not None:
        _notify(notices, f"{source}: NVIDIA's conv_clamp={clamp} is not applied (ganinv runs in fp32); images "
                         f"are the same unless activations exceed ±{clamp}")
    return state, w_avg, cfg


def _convert_nvidia(obj: Any, source: str, notices: list[str] | None
                    ) -> tuple[PersistentRecord, dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """An unpickled NVIDIA file → ``(generator record, rosinality state, w_avg or None, StyleGAN2 config)``."""
    record = _pick_nvidia_generator(obj, source, notices)
    state, w_avg, cfg = _convert_stylegan2_record(record, source, notices)
    return record, state, w_avg, cfg


def stylegan2_from_record(record: PersistentRecord, source: str = "checkpoint", notices: list[str] | None = None,
                          w_avg_samples: int = W_AVG_SAMPLES) -> StyleGAN2Generator:
    """Build a :class:`StyleGAN2Generator` from NVIDIA's StyleGAN2 generator record (the StyleGAN2 converter).

    The weights are loaded strictly; ``mapping.w_avg`` becomes ``G.w_avg`` (estimated from
    ``w_avg_samples`` mapped z, with a notice, when absent).
    """
    state, w_avg, cfg = _convert_stylegan2_record(record, source, notices)
    G = _build_stylegan2(cfg, source, state)
    load_state_strict(G, state, source)
    if w_avg is not None:
        _set_w_avg(G, w_avg, source, notices)
    else:
        _estimate_w_avg(G, source, notices, w_avg_samples)
    return G.eval().requires_grad_(False)


def _describe_stylegan2_record(record: PersistentRecord, source: str, notes: list[str]) -> dict[str, Any]:
    """The StyleGAN2 config of a record, for ``ganinv info`` (converted, not built)."""
    return _convert_stylegan2_record(record, source, notes)[2]


register_record_converter("stylegan2", is_stylegan2_record, stylegan2_from_record, _describe_stylegan2_record)
register_record_converter("stylegan3", is_stylegan3_record, stylegan3_from_record)


# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------
def load_nvidia_pkl(path: str | Path, *, notices: list[str] | None = None,
                    w_avg_samples: int = W_AVG_SAMPLES) -> Generator:
    """Load an NVIDIA ``stylegan2-ada-pytorch`` / ``stylegan3`` network pickle without running its code.

    A StyleGAN3 generator (``training.networks_stylegan3``, config T or R) is built by
    :func:`ganinv.generators.nvidia_stylegan3.stylegan3_from_record`; everything below describes StyleGAN2.
    (Each is a record converter: see :func:`register_record_converter`.)

    The file is read by :class:`NvidiaUnpickler`; ``G_ema`` (else ``G``) is flattened to
    NVIDIA key names, converted with :func:`nvidia_to_rosinality` and strictly loaded into a
    :class:`StyleGAN2Generator`; ``mapping.w_avg`` becomes ``G.w_avg``. The mapping's
    learning-rate multiplier is read from the pickle. NVIDIA's ``conv_clamp`` (activation
    clamping used for fp16 speed) is not applied and fp16 layers run in fp32; images agree
    up to the demodulation epsilon unless activations exceed the clamp.

    Args:
        path: the ``.pkl`` file.
        notices: list that receives notices; ``None`` issues them as warnings.
        w_avg_samples: z samples used if the pickle lacks ``mapping.w_avg``.

    Returns:
        the generator on CPU, in eval mode, with gradients disabled.

    Raises:
        CheckpointError: unsafe pickle (naming the refused global), corrupt file, unsupported generator
            (not 'skip', inconsistent class embedding), or mismatched weights.
    """
    path = Path(path)
    source = str(path)
    obj, _globals = read_nvidia_pkl(path)
    record = _pick_nvidia_generator(obj, source, notices)
    converter = find_record_converter(record)
    if converter is None:
        _refuse_unconverted(record, source)
    return converter.build(record, source, notices, w_avg_samples).eval().requires_grad_(False)


def load(path: Path, notices: list[str]) -> Generator:
    """The format's loader for :func:`~ganinv.generators.checkpoints.load.load_generator`: :func:`load_nvidia_pkl`."""
    return load_nvidia_pkl(path, notices=notices)
