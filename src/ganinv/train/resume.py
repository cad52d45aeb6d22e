"""Resuming a training run from its ``checkpoint.pt``: one reader and one rule for what a rerun may change."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from ganinv.errors import CheckpointError

C = TypeVar("C")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A run's checkpoint (tensors and plain data only: ``weights_only=True``), on CPU.

    Raises:
        CheckpointError: the file cannot be read, with the advice to delete it to start afresh.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise CheckpointError(f"cannot resume from {path}: {exc}. Delete it to start afresh.") from None


def resumed_config(saved: C, given: C) -> C:
    """The config a resumed run continues with: the saved one, except what a rerun may change — the iteration
    target, the time budget (when given) and the extra data (when given)."""
    saved.iterations = given.iterations  # type: ignore[attr-defined]
    if getattr(given, "time_budget", None) is not None:
        saved.time_budget = given.time_budget  # type: ignore[attr-defined]
    if getattr(given, "data", None):
        saved.data = list(given.data)  # type: ignore[attr-defined]
    return saved
