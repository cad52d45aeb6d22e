"""``inspect_checkpoint`` (``ganinv info``): describe a checkpoint without running any code from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import CheckpointError, GaninvError
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints.common import W_AVG_SAMPLES, _keys_summary
from ganinv.generators.checkpoints.folder import _DISCRIMINATOR_WEIGHTS, _missing_config_error
from ganinv.generators.checkpoints.nvidia import _looks_like_stylegan3, _pick_nvidia_generator, _refuse_unconverted
from ganinv.generators.checkpoints.nvidia import find_record_converter, read_nvidia_pkl
from ganinv.generators.checkpoints.rosinality import _extract_rosinality, infer_rosinality_config
from ganinv.generators.checkpoints.sniff import sniff_format
from ganinv.generators.checkpoints.torchfile import _torch_load
from ganinv.generators.checkpoints.unpickler import PersistentRecord, _flatten_record
from ganinv.modelfile import CONFIG_NAME, WEIGHTS_NAME, architectures, build, read_config, read_safetensors


def _count_parameters(cfg: dict[str, Any]) -> int | None:
    """Parameter count of the module a config describes, built on the meta device (no memory, no weights)."""
    try:
        with torch.device("meta"):
            return int(sum(p.numel() for p in build(cfg).parameters()))
    except GaninvError:
        return None


def _arch_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    """The architecture fields of ``info`` from a config (values made JSON-safe)."""
    fields = {k: _jsonable(cfg.get(k)) for k in ("arch", "resolution", "z_dim", "w_dim", "n_mlp", "img_channels")}
    if cfg.get("arch") in ("stylegan2", "stylegan3"):  # class count of the mapping network; 0: unconditional
        fields["c_dim"] = _jsonable(cfg.get("c_dim", 0))
        if isinstance(fields["c_dim"], int) and not isinstance(fields["c_dim"], bool) and fields["c_dim"] > 0:
            fields["classes"] = (f"class-conditional: {fields['c_dim']} classes (0…{fields['c_dim'] - 1}); "
                                 f"sample with --class K")
    if isinstance(cfg.get("channels"), dict):  # a stranger's config.json may hold anything here: shown as it is
        fields["channels"] = {str(k): int(v) if isinstance(v, int) else _jsonable(v)
                              for k, v in cfg["channels"].items()}
    return fields


def _is_generator_arch(arch: Any) -> bool:
    """Whether ``arch`` names a registered architecture that is a :class:`Generator`."""
    cls = architectures().get(arch) if isinstance(arch, str) else None
    return cls is not None and issubclass(cls, Generator)


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-serialisable data (numbers, strings, lists, dicts); anything else as a short repr."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.number):
        return value.item()
    if isinstance(value, dict) and depth < 4:
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < 4:
        return [_jsonable(v, depth + 1) for v in value]
    return repr(value)[:80]


def _state_fields(state: dict[str, Tensor], depth: int = 1) -> dict[str, Any]:
    """``num_keys``, ``num_values`` and ``keys_summary`` of a state dict."""
    keys = list(state)
    return {"num_keys": len(keys), "num_values": int(sum(t.numel() for t in state.values())),
            "keys_summary": _keys_summary(keys, depth)}


def _inspect_ganinv(path: Path, kind: str, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` for a ganinv model folder (``kind="directory"``) or a ``.safetensors`` file."""
    folder = path if kind == "directory" else path.parent
    weights = folder / WEIGHTS_NAME if kind == "directory" else path
    if kind == "directory" and not (folder / CONFIG_NAME).is_file():
        raise _missing_config_error(path)
    info["format"] = "ganinv model folder" if kind == "directory" else "safetensors"
    state = read_safetensors(weights)
    info["latent_avg"] = "latent_avg" in state
    state.pop("latent_avg", None)
    info.update(_state_fields(state))
    if (folder / CONFIG_NAME).is_file():
        cfg_file = read_config(folder)
        key = "discriminator" if kind == "safetensors" and path.name == _DISCRIMINATOR_WEIGHTS \
            and isinstance(cfg_file.get("discriminator"), dict) else "config"
        cfg = cfg_file[key]
        info.update(_arch_fields(cfg))
        info["name"], info["kind"] = cfg_file.get("name"), cfg_file.get("kind")
        info["num_parameters"] = _count_parameters(cfg)
        info["loadable"] = key == "config" and _is_generator_arch(cfg.get("arch"))
        if not info["loadable"]:
            info["problem"] = f"it is a {cfg.get('arch')} model, not a generator"
    else:
        info["problem"] = f"no {CONFIG_NAME} beside it, so the architecture is unknown"
    return info


def _inspect_torch_file(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` for a ``torch.save`` file (rosinality / pSp layouts)."""
    obj = _torch_load(path)
    try:
        state, latent_avg, fmt, notes = _extract_rosinality(obj, str(path))
    except CheckpointError as exc:
        info["problem"] = str(exc)
        if isinstance(obj, dict):
            info["top_level_keys"] = [str(k) for k in list(obj)[:20]]
        return info
    info["format"], info["notes"] = fmt, notes
    info["latent_avg"] = latent_avg is not None
    info.update(_state_fields(state))
    try:
        cfg = infer_rosinality_config(state, str(path))
    except CheckpointError as exc:
        info["problem"] = str(exc)
        return info
    info.update(_arch_fields(cfg))
    info["num_parameters"] = _count_parameters(cfg)
    info["loadable"] = True
    if latent_avg is None:
        info["notes"].append(f"no latent_avg stored: it will be estimated from {W_AVG_SAMPLES:,} mapped z on load")
    return info


def _describe_record(record: PersistentRecord, source: str, notes: list[str]) -> tuple[dict[str, Any], int | None]:
    """``(config, parameter count)`` of the generator a record converts to, by the converter that takes it
    (its ``describe``, else by building the generator).

    Raises:
        CheckpointError: no converter takes the record, or its conversion fails.
    """
    converter = find_record_converter(record)
    if converter is None:
        _refuse_unconverted(record, source)
    if converter.describe is not None:
        cfg = converter.describe(record, source, notes)
        return cfg, _count_parameters(cfg)
    G = converter.build(record, source, notes, W_AVG_SAMPLES)
    return G.config(), sum(p.numel() for p in G.parameters())


def _inspect_pickle(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` for an NVIDIA network pickle."""
    obj, globals_seen = read_nvidia_pkl(path)
    info["format"] = "NVIDIA network pickle"
    info["pickle_globals"] = globals_seen
    if isinstance(obj, dict):
        info["networks"] = {str(k): v.class_name for k, v in obj.items() if isinstance(v, PersistentRecord)}
        if isinstance(obj.get("training_set_kwargs"), dict):
            info["training_set_kwargs"] = _jsonable(obj["training_set_kwargs"])
    notes: list[str] = []
    try:
        record = _pick_nvidia_generator(obj, str(path), notes)
    except CheckpointError as exc:
        info["problem"] = str(exc)
        return info
    nv = _flatten_record(record, str(path))
    info.update(_state_fields(nv, depth=2))
    info["latent_avg"] = "mapping.w_avg" in nv
    info["generator_class"] = record.class_name
    info["init_kwargs"] = _jsonable(record.init_kwargs)
    try:
        cfg, num_parameters = _describe_record(record, str(path), notes)
    except CheckpointError as exc:
        info["problem"] = str(exc)
        info["arch"] = "stylegan3" if _looks_like_stylegan3(record, list(nv)) else None
        return info
    info.update(_arch_fields(cfg))
    info["num_parameters"] = num_parameters
    info["loadable"] = True
    info["notes"] = notes
    return info


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """Describe a checkpoint without running any code from it (for ``ganinv info``).

    Returns a JSON-serialisable dict with ``path``, ``format`` (``"ganinv model folder"``,
    ``"safetensors"``, ``"rosinality generator"``, ``"rosinality training checkpoint"``,
    ``"pSp/e4e encoder checkpoint"``, ``"state dict"``, ``"NVIDIA network pickle"`` or
    ``"unknown"``), ``arch`` (``"stylegan2"``, ``"dcgan"``, … or ``None``), ``resolution``,
    ``z_dim``, ``w_dim``, ``n_mlp``, ``img_channels``, ``channels`` (when known), ``c_dim`` (StyleGAN2/3: the
    class count, 0 for an unconditional model; a conditional one also gets a ``classes`` sentence),
    ``num_parameters`` (``None`` when the architecture is unknown), ``num_values`` (all
    tensor elements), ``num_keys``, ``keys_summary`` (key prefix → count),
    ``latent_avg`` (bool), ``loadable`` (whether :func:`load_generator` accepts it) with
    ``problem`` (why not) and ``notes``; for NVIDIA pickles also ``pickle_globals``,
    ``networks`` (name → class) and ``training_set_kwargs``.

    Raises:
        CheckpointError: missing, empty, corrupt or unsafe file (naming the refused global).
    """
    path = Path(path)
    kind = sniff_format(path)
    info: dict[str, Any] = {"path": str(path), "format": "unknown", "arch": None, "resolution": None,
                            "z_dim": None, "w_dim": None, "n_mlp": None, "img_channels": None,
                            "num_parameters": None, "num_values": 0, "num_keys": 0, "keys_summary": {},
                            "latent_avg": False, "loadable": False, "problem": None, "notes": []}
    if kind == "missing":
        raise CheckpointError(f"checkpoint not found: {path}")
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
    if kind in ("directory", "safetensors"):
        return _inspect_ganinv(path, kind, info)
    if kind in ("zip", "torch-legacy"):
        return _inspect_torch_file(path, info)
    if kind == "pickle":
        return _inspect_pickle(path, info)
    raise CheckpointError(f"{path} is not a checkpoint ganinv recognises (expected a ganinv model folder, "
                          f"a .safetensors file, a PyTorch .pt or an NVIDIA .pkl)")
