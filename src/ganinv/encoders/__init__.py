"""Encoders: networks trained to map images to a specific generator's latents.

An encoder is only meaningful for the generator it was trained against, so every saved encoder
records that generator's name and *fingerprint* (a hash of its weights) and refuses to run with
any other (:func:`check_compatible`). Bundled encoders live in the zoo as
``zoo/<generator>-encoder/`` (``config.json`` with ``kind: "encoder"`` + ``model.safetensors``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganinv.encoders.network import PyramidEncoder
from ganinv.errors import InputError, UnknownModelError
from ganinv.generators.base import Generator


def generator_fingerprint(G: nn.Module) -> str:
    """A short hash (16 hex digits) of ``G``'s architecture config and weights (device-independent)."""
    h = hashlib.sha256()
    config = getattr(G, "config", None)
    h.update(repr(sorted(config().items()) if callable(config) else type(G).__name__).encode())
    for key, value in sorted(G.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(G: nn.Module) -> str:
    """:func:`generator_fingerprint` of the model under any class wrapper
    (:mod:`ganinv.generators.conditional`): an encoder is trained for the whole model, and is the same encoder
    whichever class is bound when it is used."""
    from ganinv.generators.conditional import unwrap

    return generator_fingerprint(unwrap(G))  # type: ignore[arg-type]


def encoder_target(encoder: nn.Module) -> dict[str, Any]:
    """The ``{"name", "fingerprint", "space", ...}`` record of the generator ``encoder`` was trained for.

    Encoders written by ``ganinv train-encoder`` for a generator given by path also record how to load it:
    ``"source"`` (the ``--model`` / ``--generator`` options, paths made absolute) and ``"invert_args"`` (those
    options as a command-line fragment, e.g. ``--model /data/ffhq.pt``)."""
    target = getattr(encoder, "generator_info", None)
    if not isinstance(target, dict) or "fingerprint" not in target:
        raise InputError("this encoder does not record which generator it was trained for; "
                         "encoders must be saved by `ganinv train-encoder`")
    return target


def check_compatible(encoder: nn.Module, G: Generator) -> None:
    """Raise :class:`InputError` unless ``encoder`` was trained for exactly this generator."""
    target = encoder_target(encoder)
    fp = model_fingerprint(G)
    if target["fingerprint"] != fp:
        name = getattr(G, "name", None) or getattr(G, "arch", type(G).__name__)
        where = f" — load that one with `{target['invert_args']}`" if target.get("invert_args") else ""
        raise InputError(
            f"this encoder was trained for generator {target.get('name', '?')!r} "
            f"(fingerprint {target['fingerprint']}){where}, "
            f"not for this {name!r} generator (fingerprint {fp}); an encoder only works with the exact weights it "
            f"was trained against — train one with `ganinv train-encoder --model ...`")


def load_encoder(source: str | Path) -> PyramidEncoder:
    """Load an encoder from a model folder or a bundled name (``mnist-stylegan2-encoder``)."""
    from ganinv import zoo
    from ganinv.modelfile import load_pretrained, read_config

    folder = Path(source)
    if not (folder / "config.json").is_file():
        folder = zoo.model_dir(str(source))
    cfg = read_config(folder)
    if cfg.get("kind") != "encoder":
        raise InputError(f"{source} is a {cfg.get('kind', 'unknown')!r} model, not an encoder")
    encoder = load_pretrained(folder)
    encoder.generator_info = dict(cfg.get("meta", {}).get("generator", {}))  # type: ignore[assignment]
    encoder_target(encoder)
    return encoder  # type: ignore[return-value]


def find_encoder(G: Generator) -> PyramidEncoder:
    """The bundled encoder trained for ``G`` (matched by fingerprint), or a clear error."""
    from ganinv import zoo

    fp = model_fingerprint(G)
    for name in zoo.available():
        meta = zoo.describe(name)
        if meta.get("kind") == "encoder" and meta.get("meta", {}).get("generator", {}).get("fingerprint") == fp:
            return load_encoder(name)
    raise UnknownModelError("no bundled encoder was trained for this generator; pass one with encoder=... "
                            "(or --encoder PATH), or train one with `ganinv train-encoder`")


def resolve_encoder(encoder: nn.Module | str | Path | None, G: Generator) -> PyramidEncoder:
    """An encoder object for ``G``: given, loaded from a path/name, or found in the zoo; always checked."""
    if encoder is None:
        enc = find_encoder(G)
    elif isinstance(encoder, (str, Path)):
        enc = load_encoder(encoder)
    else:
        enc = encoder  # type: ignore[assignment]
    check_compatible(enc, G)
    return enc.to(G.device).eval().requires_grad_(False)


__all__ = ["PyramidEncoder", "check_compatible", "encoder_target", "find_encoder", "generator_fingerprint",
           "load_encoder", "model_fingerprint", "resolve_encoder"]
