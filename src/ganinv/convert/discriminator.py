"""StyleGAN2 discriminators in other people's layouts ↔ ganinv's :class:`StyleGAN2Discriminator`.

Two layouts are read, and rosinality's is also written:

* NVIDIA ``stylegan2-ada-pytorch`` (``training.networks.Discriminator``, ``architecture="resnet"``),
  from the data-only records of :func:`ganinv.generators.checkpoints.read_nvidia_pkl` (nothing of
  NVIDIA's code runs). Per block ``b{r}`` (``r`` = R … 8, block index ``i`` = 0, 1, …)::

      b{R}.fromrgb.{weight,bias}      → from_rgb.weight, from_rgb.act.bias
      b{r}.conv0.{weight,bias}        → blocks.{i}.conv1.weight, blocks.{i}.conv1.act.bias
      b{r}.conv1.{weight,bias}        → blocks.{i}.conv2.weight, blocks.{i}.conv2.act.bias
      b{r}.skip.weight                → blocks.{i}.skip.weight
      b4.conv.{weight,bias}           → final_conv.weight, final_conv.act.bias
      b4.fc.{weight,bias}             → final_linear.{weight,bias}   (× the layer's lr multiplier)
      b4.out.{weight,bias}            → head.{weight,bias}           (× the layer's lr multiplier)
      b4.mbstd.group_size             → mbstd_group

  NVIDIA's ``resample_filter`` buffers must be the ``[1, 3, 3, 1]`` filter ganinv's layers use.
  The two computations agree: NVIDIA pads a 3×3 ``down=2`` convolution by 2 before its filter
  and a 1×1 one by 1 (ganinv's ``blur_pad``), the residual gains ``sqrt(0.5)`` equal ganinv's
  ``/ sqrt(2)``, and ``MinibatchStdLayer(num_channels=1)`` is ganinv's :class:`MinibatchStd`.
* rosinality ``stylegan2-pytorch`` (the ``"d"`` entry of its training checkpoints; block ``i`` is
  ``convs.{i+1}``)::

      convs.0.0.weight, convs.0.1.bias                      ↔ from_rgb.weight, from_rgb.act.bias
      convs.{i+1}.conv1.0.weight, .conv1.1.bias             ↔ blocks.{i}.conv1.weight, .conv1.act.bias
      convs.{i+1}.conv2.0.kernel, .conv2.1.weight, .2.bias  ↔ blocks.{i}.conv2.blur_kernel, .weight, .act.bias
      convs.{i+1}.skip.0.kernel, .skip.1.weight             ↔ blocks.{i}.skip.blur_kernel, .weight
      final_conv.0.weight, final_conv.1.bias                ↔ final_conv.weight, final_conv.act.bias
      final_linear.0.{weight,bias}, final_linear.1.*        ↔ final_linear.*, head.*

  rosinality's minibatch-stddev group is fixed at 4.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import CheckpointError
from ganinv.generators.checkpoints import PersistentRecord, _flatten_record
from ganinv.generators.stylegan2 import make_kernel
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.modelfile import build_for, load_state_strict

__all__ = ["ROSINALITY_MBSTD_GROUP", "nvidia_discriminator", "rosinality_discriminator", "rosinality_d_state"]

#: rosinality's ``Discriminator.stddev_group`` (not configurable there).
ROSINALITY_MBSTD_GROUP = 4


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _build(cfg: dict[str, Any], state: dict[str, Tensor], source: str) -> StyleGAN2Discriminator:
    """The discriminator ``cfg`` describes with ``state`` loaded strictly, in eval mode, frozen."""
    D = build_for(cfg, state, source)
    load_state_strict(D, state, source)
    assert isinstance(D, StyleGAN2Discriminator)
    return D.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------
# NVIDIA stylegan2-ada-pytorch
# ----------------------------------------------------------------------------------
def nvidia_discriminator(record: PersistentRecord, source: str,
                         notices: list[str] | None = None) -> StyleGAN2Discriminator:
    """Convert NVIDIA's ``D`` record (an unconditional ``resnet`` StyleGAN2 discriminator).

    Args:
        record: the pickle's ``D`` as read by :func:`~ganinv.generators.checkpoints.read_nvidia_pkl`.
        source: the file, for messages.
        notices: receives things the user should know (an ignored ``conv_clamp``).

    Returns:
        a :class:`StyleGAN2Discriminator` (input ``[B, C, R, R]`` in [-1, 1], output ``[B]`` logits)
        computing what NVIDIA's ``D(img, c=None)`` computes (``[B, 1]`` there) in float32.

    Raises:
        CheckpointError: a conditional, ``orig``/``skip`` or otherwise different discriminator, naming why.
    """
    where = f"{source}: its discriminator"
    kw = record.init_kwargs
    c_dim = kw.get("c_dim", record.state.get("c_dim", 0))
    if (isinstance(c_dim, int) and c_dim > 0) or record.child("mapping") is not None:
        raise CheckpointError(f"{where} is class-conditional (c_dim={c_dim}); only unconditional ones convert")
    arch = kw.get("architecture", "resnet")
    if arch != "resnet":
        raise CheckpointError(f"{where} uses the {arch!r} architecture; only StyleGAN2's default 'resnet' converts")
    nv = _flatten_record(record, source)
    res_list = sorted({int(m.group(1)) for k in nv if (m := re.match(r"b(\d+)\.", k))})
    if len(res_list) < 2 or res_list != [2 ** i for i in range(2, 2 + len(res_list))]:
        raise CheckpointError(f"{where} has blocks {res_list}; expected b4, b8, … up to its resolution")
    R = res_list[-1]
    epilogue = record.child("b4")
    if epilogue is None or f"b{R}.fromrgb.weight" not in nv or "b4.out.weight" not in nv:
        raise CheckpointError(f"{where} is not a StyleGAN2 'resnet' discriminator (no b{R}.fromrgb / b4.out)")
    used: set[str] = set()
    missing: list[str] = []
    ours: dict[str, Tensor] = {}

    def take(key: str) -> Tensor | None:
        if key not in nv:
            missing.append(key)
            return None
        used.add(key)
        return nv[key]

    def put(dst: str, src: str, scale: float = 1.0) -> None:
        value = take(src)
        if value is not None:
            ours[dst] = value.float() * scale if scale != 1.0 else value.float()

    def check_layer(rec: PersistentRecord | None, name: str, activation: str) -> None:
        if rec is None:
            missing.append(f"{name} (network)")
            return
        act = rec.state.get("activation", activation)
        if act != activation:
            raise CheckpointError(f"{where}: {name} uses activation {act!r}; ganinv's layer uses {activation!r}")

    block_records = {r: record.child(f"b{r}") for r in res_list}
    for i, r in enumerate(res_list[:0:-1]):  # R, R/2, …, 8
        rec = block_records[r]
        if r == R:
            check_layer(rec.child("fromrgb") if rec else None, f"b{r}.fromrgb", "lrelu")
            put("from_rgb.weight", f"b{r}.fromrgb.weight")
            put("from_rgb.act.bias", f"b{r}.fromrgb.bias")
        elif f"b{r}.fromrgb.weight" in nv:
            raise CheckpointError(f"{where} has fromRGB layers below its top block (the 'skip' architecture)")
        for theirs, mine, act in (("conv0", "conv1", "lrelu"), ("conv1", "conv2", "lrelu"), ("skip", "skip", "linear")):
            check_layer(rec.child(theirs) if rec else None, f"b{r}.{theirs}", act)
            put(f"blocks.{i}.{mine}.weight", f"b{r}.{theirs}.weight")
            if theirs != "skip":
                put(f"blocks.{i}.{mine}.act.bias", f"b{r}.{theirs}.bias")
            elif f"b{r}.skip.bias" in nv:
                raise CheckpointError(f"{where}: b{r}.skip has a bias, which StyleGAN2's skip layers lack")
        for mine in ("conv2", "skip"):
            ours[f"blocks.{i}.{mine}.blur_kernel"] = make_kernel([1, 3, 3, 1])
    check_layer(epilogue.child("conv"), "b4.conv", "lrelu")
    put("final_conv.weight", "b4.conv.weight")
    put("final_conv.act.bias", "b4.conv.bias")
    for theirs, mine, act in (("fc", "final_linear", "lrelu"), ("out", "head", "linear")):
        rec = epilogue.child(theirs)
        check_layer(rec, f"b4.{theirs}", act)
        lr = _float(rec.state.get("bias_gain")) if rec is not None else None
        lr = 1.0 if lr is None or lr <= 0 else lr  # the layer's lr multiplier, folded into the stored weights
        put(f"{mine}.weight", f"b4.{theirs}.weight", lr)
        put(f"{mine}.bias", f"b4.{theirs}.bias", lr)
    if epilogue.child("fromrgb") is not None or "b4.fromrgb.weight" in nv:
        raise CheckpointError(f"{where} has an epilogue fromRGB layer (the 'skip' architecture)")

    # every resampling filter must be [1, 3, 3, 1], the one ganinv's layers apply
    standard = make_kernel([1, 3, 3, 1])
    for key in [k for k in nv if k.endswith("resample_filter")]:
        used.add(key)
        f = nv[key].float()
        if tuple(f.shape) != (4, 4) or not torch.allclose(f, standard, atol=1e-6):
            raise CheckpointError(f"{where}: {key} is not the [1, 3, 3, 1] filter StyleGAN2 uses "
                                  f"(shape {list(f.shape)}); ganinv's discriminator has no other")
    leftover = sorted(set(nv) - used)
    if missing or leftover:
        parts = [f"missing {', '.join(missing[:8])}" if missing else "",
                 f"unexpected {', '.join(leftover[:8])}" if leftover else ""]
        raise CheckpointError(f"{where} does not match StyleGAN2's residual discriminator: "
                              + "; ".join(p for p in parts if p))

    mbstd = epilogue.child("mbstd")
    group = 0
    if mbstd is not None:
        n_feat = mbstd.state.get("num_channels", 1)
        group_size = mbstd.state.get("group_size", 4)
        if n_feat != 1:
            raise CheckpointError(f"{where} uses {n_feat} minibatch-stddev features; ganinv's uses 1")
        if not isinstance(group_size, int) or group_size < 1:
            raise CheckpointError(f"{where} takes the minibatch-stddev over the whole batch (group_size="
                                  f"{group_size!r}); ganinv's discriminator needs a fixed group size")
        group = group_size
    widths = {R: int(ours["from_rgb.weight"].shape[0])}
    for i, r in enumerate(res_list[:0:-1]):
        widths[r // 2] = int(ours[f"blocks.{i}.conv2.weight"].shape[0])
    cfg = {"arch": StyleGAN2Discriminator.arch, "resolution": R,
           "channels": {str(r): c for r, c in sorted(widths.items(), reverse=True)},
           "img_channels": int(ours["from_rgb.weight"].shape[1]), "mbstd_group": group}
    clamp = kw.get("conv_clamp")
    if clamp is not None:
        (notices if notices is not None else []).append(
            f"{source}: the discriminator's conv_clamp={clamp} is not applied (ganinv runs in fp32); logits are "
            f"the same unless activations exceed ±{clamp}")
    return _build(cfg, ours, f"{where}")


# ----------------------------------------------------------------------------------
# rosinality stylegan2-pytorch
# ----------------------------------------------------------------------------------
def _rosinality_names(n_blocks: int) -> list[tuple[str, str]]:
    """``(ganinv key, rosinality key)`` pairs of a discriminator with ``n_blocks`` residual blocks."""
    pairs = [("from_rgb.weight", "convs.0.0.weight"), ("from_rgb.act.bias", "convs.0.1.bias")]
    for i in range(n_blocks):
        b, c = f"blocks.{i}", f"convs.{i + 1}"
        pairs += [(f"{b}.conv1.weight", f"{c}.conv1.0.weight"), (f"{b}.conv1.act.bias", f"{c}.conv1.1.bias"),
                  (f"{b}.conv2.blur_kernel", f"{c}.conv2.0.kernel"), (f"{b}.conv2.weight", f"{c}.conv2.1.weight"),
                  (f"{b}.conv2.act.bias", f"{c}.conv2.2.bias"), (f"{b}.skip.blur_kernel", f"{c}.skip.0.kernel"),
                  (f"{b}.skip.weight", f"{c}.skip.1.weight")]
    pairs += [("final_conv.weight", "final_conv.0.weight"), ("final_conv.act.bias", "final_conv.1.bias"),
              ("final_linear.weight", "final_linear.0.weight"), ("final_linear.bias", "final_linear.0.bias"),
              ("head.weight", "final_linear.1.weight"), ("head.bias", "final_linear.1.bias")]
    return pairs


def rosinality_d_state(D: StyleGAN2Discriminator) -> dict[str, Tensor]:
    """``D``'s weights under rosinality's ``Discriminator`` key names (CPU, contiguous)."""
    sd = D.state_dict()
    return {theirs: sd[mine].detach().cpu().contiguous() for mine, theirs in _rosinality_names(len(D.blocks))}


def rosinality_discriminator(state: dict[str, Any], source: str) -> StyleGAN2Discriminator:
    """Build a :class:`StyleGAN2Discriminator` from rosinality's ``Discriminator`` state dict.

    The architecture is read from the shapes: ``convs.0.0.weight`` ``[ch_R, C, 1, 1]``, one residual block
    ``convs.{i}`` (``i ≥ 1``) per halving down to 4 px, ``convs.{i}.conv2.1.weight`` ``[ch_{r/2}, ch_r, 3, 3]``.

    Raises:
        CheckpointError: non-tensor entries, or keys/shapes that are not rosinality's discriminator.
    """
    where = f"{source}: its discriminator ('d')"
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{where} is not a dict of tensors")
    if state and all(str(k).startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    blocks = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"convs\.(\d+)\.conv1\.0\.weight", k))})
    if "convs.0.0.weight" not in state or not blocks or blocks != list(range(1, len(blocks) + 1)):
        raise CheckpointError(f"{where} is not rosinality's StyleGAN2 discriminator (convs.0 and residual blocks "
                              f"convs.1 … are missing)")
    pairs = _rosinality_names(len(blocks))
    absent = [theirs for _, theirs in pairs if theirs not in state]
    extra = sorted(set(state) - {theirs for _, theirs in pairs})
    if absent or extra:
        parts = [f"missing {', '.join(absent[:8])}" if absent else "",
                 f"unexpected {', '.join(extra[:8])}" if extra else ""]
        raise CheckpointError(f"{where} does not match StyleGAN2's residual discriminator: "
                              + "; ".join(p for p in parts if p))
    if any(state[k].dim() != 4 for k in ("convs.0.0.weight", *(f"convs.{i}.conv2.1.weight" for i in blocks))):
        raise CheckpointError(f"{where}: its convolution weights are not 4-D")
    R = 4 * 2 ** len(blocks)
    widths = {R: int(state["convs.0.0.weight"].shape[0])}
    for i in blocks:
        widths[R // 2 ** i] = int(state[f"convs.{i}.conv2.1.weight"].shape[0])
    cfg = {"arch": StyleGAN2Discriminator.arch, "resolution": R,
           "channels": {str(r): c for r, c in sorted(widths.items(), reverse=True)},
           "img_channels": int(state["convs.0.0.weight"].shape[1]), "mbstd_group": ROSINALITY_MBSTD_GROUP}
    return _build(cfg, {mine: state[theirs].float() for mine, theirs in pairs}, where)
