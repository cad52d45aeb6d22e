"""What every checkpoint format shares: notices, short error texts, key summaries, the generator check."""

from __future__ import annotations

import collections
import warnings
from typing import Any

from ganinv.errors import CheckpointError
from ganinv.generators.base import Generator

#: Number of mapped z used to estimate ``w_avg`` when a checkpoint does not store it (NVIDIA's projector uses 10k).
W_AVG_SAMPLES = 10_000


class CheckpointNotice(UserWarning):
    """Something a user should know about a checkpoint that still loaded (e.g. an estimated ``latent_avg``)."""


def _notify(notices: list[str] | None, message: str) -> None:
    """Append ``message`` to ``notices``, or issue it as a :class:`CheckpointNotice` when ``notices`` is ``None``.

    The warning points at the caller of the loader that called this (``stacklevel=3``).
    """
    if notices is None:
        warnings.warn(message, CheckpointNotice, stacklevel=3)
    else:
        notices.append(message)


def _short(exc: BaseException) -> str:
    """First line of an exception message, at most 160 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:160] + ("…" if len(text) > 160 else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _keys_summary(keys: list[str], depth: int = 1) -> dict[str, int]:
    """Count keys by their first ``depth`` dotted components, e.g. ``{"style": 8, "convs": 120}``."""
    counts: dict[str, int] = collections.Counter(".".join(k.split(".")[:depth]) for k in keys)
    return dict(sorted(counts.items()))


def _summary_text(keys: list[str], depth: int = 1, limit: int = 10) -> str:
    """:func:`_keys_summary` as text for error messages: ``"style (8), convs (120), … (3 more prefixes)"``."""
    summary = _keys_summary(keys, depth)
    items = [f"{k} ({n})" for k, n in list(summary.items())[:limit]]
    more = f", … ({len(summary) - limit} more prefixes)" if len(summary) > limit else ""
    return ", ".join(items) + more


def _as_generator(module: Any, source: str) -> Generator:
    """``module`` itself when it is a :class:`Generator`; otherwise a :class:`CheckpointError` naming what it is."""
    if not isinstance(module, Generator):
        raise CheckpointError(f"{source} holds a {getattr(module, 'arch', type(module).__name__)} model, "
                              f"not a generator")
    return module
