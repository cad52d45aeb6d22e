"""What every resumable training run shares: its checkpoint reader, the rule for what a rerun may change, and
how far the run is (iterations or its time budget, whichever is further)."""

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


class BudgetedRun:
    """Mixin of a trainer with ``iteration``, ``train_seconds`` and a config holding ``iterations`` and
    ``time_budget`` (seconds or None)."""

    iteration: int
    train_seconds: float
    cfg: Any

    def progress(self) -> float:
        """Fraction of the run done: iterations over ``iterations``, or the time budget used if further."""
        p = self.iteration / self.cfg.iterations
        if self.cfg.time_budget:
            p = max(p, self.train_seconds / self.cfg.time_budget)
        return min(1.0, p)


def linear_decay(progress: float, start: float, floor: float = 0.02) -> float:
    """A learning-rate factor: 1 until ``start`` (a fraction of the run), then linear down to ``floor`` at the end."""
    if progress < start:
        return 1.0
    return max(floor, 1 - (progress - start) / max(1e-9, 1 - start))


def save_best(path: Path, module: Any) -> None:
    """Write ``module``'s state dict (on CPU, contiguous) as safetensors at ``path``, atomically: the best-so-far
    snapshot a trainer exports from."""
    from safetensors.torch import save_file

    from ganinv.modelfile import atomic_write

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp))
