"""Inversion methods behind one entry point, :func:`invert`.

``invert(G, target, physics=None, method=..., ...)`` → :class:`InversionResult`. Methods:

============ ===================================================================================
optimize     optimisation in z / w / w+ (+ noise maps) — :mod:`ganinv.inverters.optimize`
encoder      one pass of a trained encoder (+ ReStyle refinement passes) — :mod:`.encoder`
hybrid       encoder initialisation, then optimisation (iGAN; IDInvert's domain regulariser) — :mod:`.hybrid`
pti          pivot in W, then per-image generator tuning stored as compact deltas — :mod:`.pti`
hyper        encoder pivot + per-image weight offsets predicted by a hypernetwork (HyperStyle), stored like
             PTI's deltas — :mod:`.hyper`
multicode    N codes blended at an intermediate layer (mGANprior) — :mod:`.multicode`
============ ===================================================================================
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult, InversionState
from ganinv.inverters.encoder import EncoderSettings, invert_encoder
from ganinv.inverters.hybrid import HybridSettings, invert_hybrid
from ganinv.inverters.hyper import HyperSettings, invert_hyper
from ganinv.inverters.multicode import MultiCodeSettings, invert_multicode, render_multicode
from ganinv.inverters.optimize import PRESETS, Callback, OptimizeSettings, optimize
from ganinv.inverters.pti import PTISettings, invert_pti

METHODS = ("optimize", "encoder", "hybrid", "pti", "multicode", "hyper")
#: methods that accept a forward operator (restoration)
PHYSICS_METHODS = ("optimize", "multicode")

_OPT_FIELDS = {f.name for f in fields(OptimizeSettings)}


def _split(options: dict[str, Any], own: set[str], method: str, nested: str | None) -> tuple[dict, dict]:
    """Options of the method's own settings, and the rest (optimisation options when ``nested``)."""
    mine = {k: v for k, v in options.items() if k in own}
    rest = {k: v for k, v in options.items() if k not in own}
    unknown = sorted(set(rest) - (_OPT_FIELDS if nested else set()))
    if unknown:
        valid = sorted(own | (_OPT_FIELDS if nested else set()))
        raise InputError(f"unknown option(s) {', '.join(unknown)} for method {method!r}; valid: {', '.join(valid)}")
    return mine, rest


def invert(G: Generator, target: Tensor, physics: Any = None, *, method: str = "optimize",
           preset: str | None = None, discriminator: nn.Module | None = None, callback: Callback | None = None,
           settings: Any = None, encoder: nn.Module | str | Path | None = None,
           hyper: nn.Module | str | Path | None = None, **options: Any) -> InversionResult:
    """Find latents whose renderings reproduce ``target`` (through ``physics`` when given).

    Args:
        G: the generator (frozen for the call, restored after).
        target: ``[B, C, H, W]`` images in [0, 1], or observations ``y = A(x)`` when ``physics`` is given.
        physics: None, a callable forward operator, or a deepinv physics object (``optimize`` and
            ``multicode``).
        method: one of :data:`METHODS`.
        preset: start from a reference schedule (``"nvidia"``, ``"rosinality"``) — ``optimize`` only.
        discriminator: for the ``dfeat`` loss term.
        callback: ``callback(step, state)`` per optimisation step.
        settings: the method's settings object (:class:`OptimizeSettings`, :class:`EncoderSettings`,
            :class:`HybridSettings`, :class:`PTISettings`, :class:`MultiCodeSettings`, :class:`HyperSettings`); ``options``
            override its fields.
        encoder: ``encoder``/``hybrid``: an encoder module, a model folder or a bundled name; None finds
            the bundled encoder trained for ``G`` (an encoder trained for another generator is refused).
            ``hyper``: overrides the hypernetwork's recorded pivot encoder.
        hyper: ``hyper`` only: a hypernetwork module, a saved folder or a bundled name (None: the bundled one
            trained for ``G``; one trained for another generator is refused).
        options: fields of the method's settings. For ``hybrid`` and ``pti``, optimisation options
            (e.g. ``steps=100``) go to the optimisation phase / the pivot.
    Returns:
        :class:`InversionResult` with per-sample latents, images, metrics and loss history.
    """
    if method not in METHODS:
        raise InputError(f"unknown inversion method {method!r}; available: {', '.join(METHODS)}")
    if preset is not None:
        if method != "optimize":
            raise InputError("presets are reference optimisation schedules: use them with method 'optimize'")
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        options = {**PRESETS[preset], **options}
    if method not in PHYSICS_METHODS and physics is not None:
        raise InputError(f"method {method!r} inverts clean images; use method 'optimize' or 'multicode' with physics")
    if method == "optimize":
        mine, _ = _split(options, _OPT_FIELDS, method, None)
        base = settings if isinstance(settings, OptimizeSettings) else OptimizeSettings()
        return optimize(G, target, physics, replace(base, **mine), discriminator=discriminator, callback=callback)
    if method == "encoder":
        mine, _ = _split(options, {f.name for f in fields(EncoderSettings)}, method, None)
        base_e = settings if isinstance(settings, EncoderSettings) else EncoderSettings()
        return invert_encoder(G, target, replace(base_e, **mine), encoder=encoder)
    if method == "hybrid":
        mine, opt = _split(options, {f.name for f in fields(HybridSettings)}, method, "optimize")
        base_h = settings if isinstance(settings, HybridSettings) else HybridSettings()
        merged = replace(base_h, **mine)
        merged = replace(merged, optimize={**merged.optimize, **opt})
        return invert_hybrid(G, target, None, merged, encoder=encoder, discriminator=discriminator,
                             callback=callback)
    if hyper is not None and method != "hyper":
        raise InputError(f"a hypernetwork is used by method 'hyper', not {method!r}")
    if method == "hyper":
        mine, _ = _split(options, {f.name for f in fields(HyperSettings)}, method, None)
        base_y = settings if isinstance(settings, HyperSettings) else HyperSettings()
        return invert_hyper(G, target, replace(base_y, **mine), hyper=hyper, encoder=encoder)
    if method == "multicode":
        mine, _ = _split(options, {f.name for f in fields(MultiCodeSettings)}, method, None)
        base_m = settings if isinstance(settings, MultiCodeSettings) else MultiCodeSettings()
        return invert_multicode(G, target, physics, replace(base_m, **mine), callback=callback)
    mine, opt = _split(options, {f.name for f in fields(PTISettings)}, method, "optimize")
    base_p = settings if isinstance(settings, PTISettings) else PTISettings()
    merged_p = replace(base_p, **mine)
    merged_p = replace(merged_p, pivot={**merged_p.pivot, **opt})
    return invert_pti(G, target, merged_p, callback=callback)


__all__ = ["METHODS", "PHYSICS_METHODS", "EncoderSettings", "HybridSettings", "HyperSettings", "InversionResult", "InversionState",
           "MultiCodeSettings", "OptimizeSettings", "PTISettings", "invert", "optimize", "render_multicode"]
