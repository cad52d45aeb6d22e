"""Inversion methods behind one entry point, :func:`invert`.

``invert(G, target, physics=None, method="optimize", ...)`` → :class:`InversionResult`.
Methods available now: ``optimize`` (:mod:`ganinv.inverters.optimize`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult, InversionState
from ganinv.inverters.optimize import PRESETS, Callback, OptimizeSettings, optimize

METHODS = ("optimize",)


def invert(G: Generator, target: Tensor, physics: Any = None, *, method: str = "optimize",
           preset: str | None = None, discriminator: nn.Module | None = None, callback: Callback | None = None,
           settings: OptimizeSettings | None = None, **options: Any) -> InversionResult:
    """Find latents whose renderings reproduce ``target`` (through ``physics`` when given).

    Args:
        G: the generator (frozen for the call, restored after).
        target: ``[B, C, H, W]`` images in [0, 1], or observations ``y = A(x)`` when ``physics`` is given.
        physics: None, a callable forward operator, or a deepinv physics object (its ``.A`` is used).
        method: ``"optimize"``.
        preset: start from a reference schedule (``"nvidia"``, ``"rosinality"``) before ``options``.
        discriminator: for the ``dfeat`` loss term.
        callback: ``callback(step, state)`` per optimisation step.
        settings: a full :class:`OptimizeSettings`; ``options`` (its field names, e.g. ``space="w+"``,
            ``steps=300``, ``loss="mse=1,ssim=0.5"``, ``restarts=4``) override it.
    Returns:
        :class:`InversionResult` with per-sample latents, images, metrics and loss history.
    """
    if method not in METHODS:
        raise InputError(f"unknown inversion method {method!r}; available: {', '.join(METHODS)}")
    base = settings or OptimizeSettings()
    fields = set(OptimizeSettings.__dataclass_fields__)
    if preset is not None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        options = {**PRESETS[preset], **options}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for method {method!r}; "
                         f"valid: {', '.join(sorted(fields))}")
    from dataclasses import replace

    return optimize(G, target, physics, replace(base, **options), discriminator=discriminator, callback=callback)


__all__ = ["METHODS", "InversionResult", "InversionState", "OptimizeSettings", "invert", "optimize"]
