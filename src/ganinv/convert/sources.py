"""Reading ``ganinv convert``'s input: the generator through :func:`load_generator`, its discriminator where the
format holds one, and PTI deltas applied on top."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganinv.convert.base import SourceModel
from ganinv.convert.discriminator import nvidia_discriminator, rosinality_discriminator
from ganinv.errors import CheckpointError, InputError
from ganinv.generators.checkpoints import PersistentRecord, _torch_load, load_generator, read_nvidia_pkl, sniff_format
from ganinv.modelfile import CONFIG_NAME, load_pretrained, read_config

__all__ = ["DELTAS_SUFFIX", "load_source", "resolve_input", "resolve_deltas"]

#: How ``ganinv invert --method pti`` names an image's generator deltas (beside its ``<stem>.npz``).
DELTAS_SUFFIX = ".deltas.safetensors"
_DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


def resolve_input(spec: str) -> tuple[Path, str | None]:
    """``(path on disk, bundled model name or None)`` for ``IN``, resolved as :func:`load_generator` does (a
    bundled name first; write ``./name`` for a local path of that name)."""
    from ganinv import zoo

    if spec in zoo.available():
        return zoo.model_dir(spec), spec
    return Path(spec).expanduser(), None


def resolve_deltas(path: Path) -> Path:
    """The delta file ``--deltas`` names: ``x.deltas.safetensors`` itself, or the one beside a PTI ``x.npz``."""
    if path.suffix.lower() == ".npz":
        sibling = path.with_name(path.stem + DELTAS_SUFFIX)
        if not sibling.is_file():
            raise InputError(f"--deltas {path}: no {sibling.name} beside it (ganinv invert --method pti writes one "
                             f"per image)")
        return sibling
    if not path.is_file():
        raise CheckpointError(f"--deltas: delta file not found: {path}")
    return path


def _nvidia_d(path: Path) -> tuple[nn.Module | None, str | None, list[str]]:
    obj, _ = read_nvidia_pkl(path)
    record = obj.get("D") if isinstance(obj, dict) else None
    if not isinstance(record, PersistentRecord):
        return None, "the pickle holds no discriminator D", []
    notes: list[str] = []
    return nvidia_discriminator(record, str(path), notes), None, notes


def _rosinality_d(path: Path) -> tuple[nn.Module | None, str | None, list[str]]:
    obj = _torch_load(path)
    state = obj.get("d") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        return None, "the file holds no discriminator ('d')", []
    return rosinality_discriminator(state, str(path)), None, []


def _folder_d(path: Path) -> tuple[nn.Module | None, str | None, list[str]]:
    folder = path if path.is_dir() else path.parent
    cfg = read_config(folder)
    if not isinstance(cfg.get("discriminator"), dict):
        return None, "the model folder holds no discriminator", []
    if not (folder / _DISCRIMINATOR_WEIGHTS).is_file():
        return None, f"{CONFIG_NAME} describes a discriminator but {_DISCRIMINATOR_WEIGHTS} is missing", []
    return load_pretrained(folder, weights_name=_DISCRIMINATOR_WEIGHTS, config_key="discriminator"), None, []


_FORMATS: dict[str, tuple[str, Callable[[Path], tuple[nn.Module | None, str | None, list[str]]]]] = {
    "pickle": ("NVIDIA .pkl", _nvidia_d),
    "zip": ("rosinality .pt", _rosinality_d),
    "torch-legacy": ("rosinality .pt", _rosinality_d),
    "directory": ("ganinv folder", _folder_d),
    "safetensors": ("ganinv folder", _folder_d),
}


def load_source(spec: str, *, deltas: Path | None = None, discriminator: bool = True,
                device: torch.device | str = "cpu",
                progress: Callable[[str], None] | None = None) -> SourceModel:
    """Read ``IN`` (a bundled name, ganinv folder, rosinality ``.pt`` or NVIDIA ``.pkl``) without running any code
    from it.

    Args:
        spec: ``IN``.
        deltas: a PTI delta file (:func:`resolve_deltas`) to apply to the generator (:func:`apply_deltas`); its
            base-generator fingerprint must be this generator's. The discriminator is then left out.
        discriminator: read the discriminator when the format holds one. One that does not convert (another
            architecture, a conditional one, …) is left out with a notice saying why.
        device: where the models are put (the verification renders there).
        progress: called with a short description of each slow step.

    Raises:
        UnknownModelError, CheckpointError: the loader's errors (missing, corrupt, unsafe, StyleGAN3, …).
    """
    say = progress or (lambda _msg: None)
    path, bundled = resolve_input(spec)
    say(f"reading {spec}")
    G, notices = load_generator(spec, device="cpu")
    fmt = "bundled model" if bundled else _FORMATS.get(sniff_format(path), ("checkpoint", None))[0]
    meta: dict[str, Any] = {}
    if bundled or fmt == "ganinv folder":
        folder = path if path.is_dir() else path.parent
        raw = read_config(folder).get("meta")
        meta = dict(raw) if isinstance(raw, dict) else {}
    D: nn.Module | None = None
    d_note: str | None = None
    if deltas is not None:
        from ganinv.inverters.pti import apply_deltas, load_deltas

        say(f"applying the PTI deltas {deltas.name}")
        G = apply_deltas(G, load_deltas(deltas, G))
        if discriminator:
            d_note = "PTI tunes the generator only, so the base model's discriminator is left out"
    elif discriminator:
        reader = _folder_d if bundled else _FORMATS.get(sniff_format(path), ("", None))[1]
        if reader is not None:
            say(f"reading the discriminator of {spec}")
            try:
                D, d_note, d_notes = reader(path)
                notices += d_notes
                if D is not None:  # the loader's "training checkpoint: … discriminator … ignored" is not so here
                    notices = [n for n in notices if "discriminator and optimiser states are ignored" not in n]
            except CheckpointError as exc:
                D, d_note = None, f"its discriminator does not convert ({str(exc).splitlines()[0]})"
        if D is not None and (getattr(D, "resolution", G.resolution) != G.resolution
                              or getattr(D, "img_channels", G.channels) != G.channels):
            d_note = (f"its discriminator takes {getattr(D, 'img_channels', '?')}×{getattr(D, 'resolution', '?')} px "
                      f"images, the generator makes {G.channels}×{G.resolution} px ones")
            D = None
    try:
        G = G.to(device)
        D = D.to(device) if D is not None else None
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise InputError(f"cannot move the model to device {str(device)!r}: {str(exc).splitlines()[0]}") from None
    return SourceModel(G=G, D=D, spec=spec, path=path, format=fmt, notices=notices, d_note=d_note, meta=meta,
                       deltas=deltas)
