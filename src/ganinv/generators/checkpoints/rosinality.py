"""rosinality ``stylegan2-pytorch`` ``.pt`` files: reading, writing and inferring the architecture.

Read: converter output ``{"g_ema", "latent_avg"}``, training checkpoints ``{g, d, g_ema, g_optim,
d_optim, args, ada_aug_p}``, pSp/e4e checkpoints (their ``decoder.*``) and bare state dicts, all with
``torch.load(weights_only=True)`` (:mod:`~ganinv.generators.checkpoints.torchfile`). The StyleGAN2
helpers here (:func:`_build_stylegan2`, :func:`_set_w_avg`, :func:`_estimate_w_avg`) also serve the
NVIDIA conversion, whose output is this layout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints.common import W_AVG_SAMPLES, _notify, _summary_text
from ganinv.generators.checkpoints.torchfile import _torch_load
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.modelfile import atomic_write, build_for, load_state_strict

#: The format's name in :func:`ganinv.generators.checkpoints.load.formats`.
NAME: str = "rosinality"
#: What :func:`~ganinv.generators.checkpoints.sniff.sniff_format` says of the files this format reads.
SNIFFED_AS: tuple[str, ...] = ("zip", "torch-legacy")

_ROSINALITY_CORE = ("style.1.weight", "input.input", "conv1.conv.weight", "to_rgb1.conv.weight")


def _guess_contents(keys: list[str]) -> str:
    """One sentence saying what a state dict appears to be."""
    keyset = set(keys)
    if any(k.startswith(("mapping.fc", "synthesis.b")) for k in keys):
        return ("It has NVIDIA's key names (mapping.*, synthesis.*): load NVIDIA's original .pkl instead of "
                "re-saved weights.")
    if any(k.startswith("encoder.") for k in keys):
        return "It looks like an encoder checkpoint (encoder.* keys)."
    if any(k.startswith("net.") for k in keys) and any(k.endswith("running_mean") for k in keys):
        return "It looks like a DCGAN-style network (net.* layers with BatchNorm), not a StyleGAN2 generator."
    if "final_linear.0.weight" in keyset or any(k.startswith("final_") for k in keys):
        return "It looks like a StyleGAN2 discriminator, not a generator."
    return ""


def _check_ndim(state: dict[str, Tensor], key: str, ndim: int, source: str) -> tuple[int, ...]:
    """The shape of ``state[key]``, which must have ``ndim`` dimensions."""
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"{source}: {key} has shape {list(shape)}, expected {ndim} dimensions "
                              f"for a StyleGAN2 generator in rosinality's layout")
    return shape


def infer_rosinality_config(state: dict[str, Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Infer :class:`StyleGAN2Generator` constructor arguments from a rosinality state dict.

    * ``resolution = 2 ** (2 + n_convs / 2)`` from the number of ``convs.{i}`` layers;
    * widths: ``{4: conv1.conv.weight[1], 2**(k+3): convs.{2k}.conv.weight[1]}``
      (conv weights are ``[1, out, in, k, k]``);
    * ``n_mlp`` = number of ``style.{i}.weight``; ``z_dim, w_dim`` from ``style.1.weight`` ``[w_dim, z_dim]``;
    * ``img_channels`` from ``to_rgb1.conv.weight`` ``[1, C, in, 1, 1]``;
    * ``lr_mlp = 0.01`` (rosinality's fixed value; it is not recoverable from weights);
    * a class-conditional generator (ganinv's extension, written when converting NVIDIA's conditional
      models): ``embed.weight`` ``[embed_features, c_dim]``, and ``style.1`` takes ``z_dim + embed_features``.

    Returns:
        a config dict with ``arch="stylegan2"`` usable by :func:`ganinv.modelfile.build`.

    Raises:
        CheckpointError: when the core StyleGAN2 keys are missing (saying what the dict looks like)
            or their shapes are implausible.
    """
    keys = list(state)
    missing = [k for k in _ROSINALITY_CORE if k not in state]
    if missing:
        guess = _guess_contents(keys)
        raise CheckpointError(
            f"{source} is not a StyleGAN2 generator in rosinality's layout: missing keys {', '.join(missing)}. "
            + (f"{guess} " if guess else "")
            + f"It holds {len(keys)} tensors under: {_summary_text(keys) or '(nothing)'}.")
    conv_idx = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"convs\.(\d+)\.conv\.weight", k))})
    n_convs = len(conv_idx)
    if n_convs == 0 or n_convs % 2 or conv_idx != list(range(n_convs)):
        raise CheckpointError(f"{source}: the synthesis layers convs.* are incomplete (found convs "
                              f"{conv_idx[:20]}); expected pairs convs.0 … convs.{{2L−5}}")
    resolution = 2 ** (2 + n_convs // 2)
    channels = {4: _check_ndim(state, "conv1.conv.weight", 5, source)[1]}
    for k in range(n_convs // 2):
        channels[2 ** (k + 3)] = _check_ndim(state, f"convs.{2 * k}.conv.weight", 5, source)[1]
    style_idx = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"style\.(\d+)\.weight", k))})
    if style_idx != list(range(1, len(style_idx) + 1)):
        raise CheckpointError(f"{source}: mapping layers style.* are not numbered 1…n (found {style_idx})")
    w_dim, z_dim = _check_ndim(state, "style.1.weight", 2, source)
    embed_features, c_dim = _check_ndim(state, "embed.weight", 2, source) if "embed.weight" in state else (0, 0)
    z_dim -= embed_features
    if z_dim < 1:
        raise CheckpointError(f"{source}: style.1 takes {z_dim + embed_features} inputs, which leaves no room for z "
                              f"besides the {embed_features}-wide class embedding")
    img_channels = _check_ndim(state, "to_rgb1.conv.weight", 5, source)[1]
    _check_ndim(state, "input.input", 4, source)
    cfg: dict[str, Any] = {
        "arch": "stylegan2", "resolution": resolution, "channels": {str(r): int(c) for r, c in channels.items()},
        "z_dim": int(z_dim), "w_dim": int(w_dim), "n_mlp": len(style_idx), "img_channels": int(img_channels),
        "lr_mlp": 0.01,
    }
    if c_dim:
        cfg["c_dim"], cfg["embed_features"] = int(c_dim), int(embed_features)
    if (blur := _blur_kernel_option(state.get("convs.0.conv.blur.kernel"))) is not None:
        cfg["blur_kernel"] = blur
    return cfg


def _blur_kernel_option(kernel: Any) -> list[float] | None:
    """The ``blur_kernel`` config option a stored 2-D upsampling filter implies (``None`` for the default 4×4).

    The filter is separable: its row sums, normalised, are the 1-D kernel the generator is built with.
    """
    if isinstance(kernel, Tensor) and kernel.dim() == 2 and tuple(kernel.shape) != (4, 4):
        rows = kernel.float().sum(1)
        return [float(v) for v in rows / rows.sum()]
    return None


def _build_stylegan2(cfg: dict[str, Any], source: str, state: dict[str, Tensor]) -> StyleGAN2Generator:
    """The generator ``cfg`` describes, once ``state``'s keys and shapes are known to fit it (see
    :func:`ganinv.modelfile.build_for`: a file whose layer names imply an enormous network allocates nothing)."""
    try:
        module = build_for(cfg, state, source)
    except InputError as exc:
        raise CheckpointError(f"{source}: the inferred architecture is invalid ({exc})") from None
    assert isinstance(module, StyleGAN2Generator)
    return module


def _set_w_avg(G: StyleGAN2Generator, latent_avg: Any, source: str, notices: list[str] | None) -> None:
    """Copy a stored ``latent_avg`` (``[w_dim]``, ``[1, w_dim]`` or per-layer ``[n, w_dim]``) into ``G.w_avg``."""
    if not isinstance(latent_avg, Tensor):
        raise CheckpointError(f"{source}: latent_avg is a {type(latent_avg).__name__}, expected a tensor")
    la = latent_avg.detach().float().cpu()
    if la.numel() == G.w_dim:
        la = la.reshape(G.w_dim)
    elif la.dim() >= 2 and la.shape[-1] == G.w_dim:
        la = la.reshape(-1, G.w_dim).mean(0)
        _notify(notices, f"{source}: latent_avg has shape {list(latent_avg.shape)} (one per layer); using its mean "
                         f"over layers as w_avg")
    else:
        raise CheckpointError(f"{source}: latent_avg has shape {list(latent_avg.shape)}, expected [{G.w_dim}]")
    if not torch.isfinite(la).all():
        raise CheckpointError(f"{source}: latent_avg contains NaN/Inf values")
    G.w_avg.copy_(la)


def _estimate_w_avg(G: StyleGAN2Generator, source: str, notices: list[str] | None, n: int) -> None:
    """Estimate ``G.w_avg`` from ``n`` mapped z and say so (the checkpoint stored none)."""
    G.estimate_w_avg(n)
    _notify(notices, f"{source} stores no latent_avg; estimated the mean w from {n:,} mapped z (seed 0), "
                     f"which truncation and inversion start from")


#: Extra top-level key of rosinality-layout files written by ganinv (architecture options rosinality lacks).
GANINV_EXTRA_KEY = "ganinv"


def _extract_rosinality(obj: Any, source: str) -> tuple[dict[str, Tensor], Any, str, list[str]]:
    """Pick the generator state dict out of a loaded rosinality-style file.

    Returns ``(state, latent_avg or None, format description, notes)``.
    """
    notes: list[str] = []
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a dict of weights; "
                              f"it is not a StyleGAN2 checkpoint")
    top = [str(k) for k in obj]
    if isinstance(obj.get("g_ema"), dict):
        state, latent_avg = obj["g_ema"], obj.get("latent_avg")
        if any(k in obj for k in ("g", "d", "g_optim", "d_optim")):
            kind = "rosinality training checkpoint"
            notes.append(f"{source} is a training checkpoint: using g_ema (the moving-average generator); "
                         f"the discriminator and optimiser states are ignored")
        else:
            kind = "rosinality generator"
    elif isinstance(obj.get("state_dict"), dict) and any(str(k).startswith("decoder.") for k in obj["state_dict"]):
        state = {k[len("decoder."):]: v for k, v in obj["state_dict"].items() if k.startswith("decoder.")}
        latent_avg = obj.get("latent_avg")
        kind = "pSp/e4e encoder checkpoint"
        notes.append(f"{source} is an encoder checkpoint (pSp/e4e layout): using its StyleGAN2 decoder; "
                     f"the encoder is ignored")
    elif obj and all(isinstance(v, Tensor) for v in obj.values()):
        state = dict(obj)
        latent_avg = state.pop("latent_avg", state.pop("module.latent_avg", None))
        kind = "state dict"
    else:
        raise CheckpointError(
            f"{source} is not a StyleGAN2 generator checkpoint: its top-level keys are "
            f"{', '.join(top[:12]) or '(none)'}; expected 'g_ema' (rosinality) or a state dict of tensors")
    bad = [str(k) for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: the generator weights contain non-tensor entries: {', '.join(bad[:8])}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append(f"{source}: stripped the 'module.' prefix that DataParallel adds")
    return state, latent_avg, kind, notes


def load_rosinality(path: str | Path, *, notices: list[str] | None = None,
                    w_avg_samples: int = W_AVG_SAMPLES) -> StyleGAN2Generator:
    """Load a rosinality ``stylegan2-pytorch`` checkpoint as a :class:`StyleGAN2Generator`.

    Accepts ``{"g_ema": state_dict, "latent_avg": [w_dim]}`` (converter output), training
    checkpoints ``{g, d, g_ema, g_optim, d_optim, args, ada_aug_p}`` (``g_ema`` is used),
    pSp/e4e checkpoints (``state_dict`` ``decoder.*``) and bare state dicts (optionally with
    a ``latent_avg`` entry). The architecture is inferred by :func:`infer_rosinality_config`
    and the weights are loaded strictly. Without a stored ``latent_avg``, ``w_avg`` is
    estimated from ``w_avg_samples`` mapped z and a notice says so.

    Args:
        path: the ``.pt`` / ``.pth`` file (read with ``torch.load(weights_only=True)``).
        notices: list that receives notices for the user; ``None`` issues them as warnings.
        w_avg_samples: number of z used when ``w_avg`` must be estimated.

    Returns:
        the generator on CPU, in eval mode, with gradients disabled.

    Raises:
        CheckpointError: missing/corrupt/unsafe file, or weights that do not form a StyleGAN2 generator.
    """
    path = Path(path)
    obj = _torch_load(path)
    state, latent_avg, _kind, notes = _extract_rosinality(obj, str(path))
    cfg = infer_rosinality_config(state, str(path))
    extra = obj.get(GANINV_EXTRA_KEY) if isinstance(obj, dict) else None
    if isinstance(extra, dict) and extra.get("output_activation") == "tanh":
        cfg["output_activation"] = "tanh"  # written by save_rosinality; see there
    G = _build_stylegan2(cfg, str(path), state)
    load_state_strict(G, state, str(path))
    for note in notes:
        _notify(notices, note)
    if latent_avg is not None:
        _set_w_avg(G, latent_avg, str(path), notices)
    else:
        _estimate_w_avg(G, str(path), notices, w_avg_samples)
    return G.eval().requires_grad_(False)


def save_rosinality(G: StyleGAN2Generator, path: str | Path) -> Path:
    """Write ``G`` as rosinality's converter does: ``{"g_ema": state_dict, "latent_avg": w_avg [w_dim]}``.

    The file is written atomically with ``torch.save`` and loads back with
    :func:`load_rosinality` (or rosinality's own code, for the default architecture).
    A ``tanh`` output activation, which rosinality's format cannot express, is recorded under
    the extra top-level key ``"ganinv"`` (ignored by rosinality's loader, read by ours).
    """
    if not isinstance(G, StyleGAN2Generator):
        raise InputError(f"save_rosinality needs a StyleGAN2Generator, got {type(G).__name__}")
    path = Path(path)
    payload = {
        "g_ema": {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()},
        "latent_avg": G.w_avg.detach().cpu().clone(),
    }
    if G.output_activation:
        payload[GANINV_EXTRA_KEY] = {"output_activation": G.output_activation}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load(path: Path, notices: list[str]) -> Generator:
    """The format's loader for :func:`~ganinv.generators.checkpoints.load.load_generator`: :func:`load_rosinality`."""
    return load_rosinality(path, notices=notices)
