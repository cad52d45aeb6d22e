"""What every inversion method returns, and the small state object its callbacks see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


@dataclass
class InversionState:
    """Handed to ``callback(step, state)`` once per optimisation step (before the update).

    Attributes:
        step: step index within the phase, from 0.
        total_steps: steps planned for the phase.
        phase: ``"latent"`` or ``"noise"``.
        rows: indices (into the flattened ``images × restarts`` rows) of ``latent``/``image``/``loss``.
        latent: current latents of those rows ``[n, *space shape]`` (detached).
        image: their rendering ``[n, C, H, W]`` in nominal [0, 1] (detached, unclamped).
        loss: total objective per row ``[n]``.
        terms: the reconstruction-loss terms per row (unweighted), plus ``prior``/``noise_reg``.
        active: rows still optimising (not early-stopped) ``[n]`` bool.
    """

    step: int
    total_steps: int
    phase: str
    rows: Tensor
    latent: Tensor
    image: Tensor
    loss: Tensor
    terms: dict[str, Tensor]
    active: Tensor


@dataclass
class InversionResult:
    """The outcome of inverting a batch of ``B`` targets.

    Attributes:
        latent: best latent per target ``[B, *space shape]``.
        space: latent space name (``"z"``, ``"w"``, ``"w+"``).
        image: reconstruction ``[B, C, H, W]`` in [0, 1] (clamped).
        noise: per-layer noise maps ``[B, 1, H_i, W_i]`` when they were optimised, else ``None``.
        metrics: per-sample tensors ``[B]`` (``loss``, ``steps``, ``restart``; ``psnr``/``ssim``
            against the target when there is no physics; ``data_fit`` otherwise).
        history: per-step curves of the chosen rows, ``{term: [[value per target] per step]}``.
        method: method name (``"optimize"``, ...).
        seconds: wall time of the whole call.
        settings: the settings used (JSON-serialisable).
        deltas: PTI only — one ``{parameter name + suffix: tensor}`` weight delta per target
            (see :mod:`ganinv.inverters.pti`); ``save`` writes each as ``<stem>.deltas.safetensors``.
        extra: method-specific per-target tensors ``[B, ...]`` written into the ``.npz`` under their
            names (multicode: ``importance_<i>``, ``tail``).
        notes: sentences a person should read about this call (e.g. a target whose optimisation diverged
            and fell back to its best iterate; ``metrics["diverged"]`` flags those targets).
    """

    latent: Tensor
    space: str
    image: Tensor
    noise: list[Tensor] | None
    metrics: dict[str, Tensor]
    history: dict[str, list[list[float]]] = field(default_factory=dict)
    method: str = "optimize"
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    deltas: list[dict[str, Tensor]] | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.latent.shape[0]

    def npz_arrays(self, index: int, num_ws: int | None = None) -> dict[str, Any]:
        """The arrays written for target ``index``: ``w`` ``[1, num_ws, w_dim]`` for w/w+ (a W code
        is broadcast to every layer, as NVIDIA's projector writes it) or ``z`` ``[1, z_dim]``, plus
        ``noise_<i>`` maps when they were optimised; multicode writes ``codes`` ``[1, N, *shape]``,
        ``space``, ``layer`` and its ``extra`` tensors instead of the latent."""
        import numpy as np

        lat = self.latent[index:index + 1].detach().cpu().float()
        arrays: dict[str, Any] = {}
        if self.method == "multicode":  # N codes [1, N, *shape] + their composition
            arrays["codes"] = lat.numpy()
            arrays["space"] = np.array(self.space)
            arrays["layer"] = np.array(int(self.settings.get("layer", 0)))
        elif self.space == "w":
            if num_ws is None:
                raise ValueError("num_ws is needed to write a W code in NVIDIA's [1, num_ws, w_dim] layout")
            arrays["w"] = lat.unsqueeze(1).repeat(1, num_ws, 1).numpy()
        elif self.space == "w+":
            arrays["w"] = lat.numpy()
        else:
            arrays[self.space.replace("+", "plus")] = lat.numpy()
        if self.noise is not None:
            for i, n in enumerate(self.noise):
                arrays[f"noise_{i}"] = n[index:index + 1].detach().cpu().float().numpy()
        for key, value in self.extra.items():
            arrays[key] = value[index:index + 1].detach().cpu().float().numpy()
        return arrays

    def save(self, out_dir: str | Path, stems: Sequence[str] | None = None, num_ws: int | None = None) -> list[Path]:
        """Write ``<stem>.png`` (reconstruction), ``<stem>.npz`` (latent) and, for PTI,
        ``<stem>.deltas.safetensors`` per target; returns the paths."""

        from ganinv.io import save_image, save_npz

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stems = list(stems) if stems is not None else [f"{i:04d}" for i in range(len(self))]
        if len(stems) != len(self):
            raise ValueError(f"{len(stems)} names for {len(self)} results")
        written = []
        for i, stem in enumerate(stems):
            written.append(save_image(self.image[i], out / f"{stem}.png"))
            written.append(save_npz(out / f"{stem}.npz", self.npz_arrays(i, num_ws)))
            if self.deltas is not None:
                from ganinv.inverters.pti import save_deltas

                written.append(save_deltas(self.deltas[i], out / f"{stem}.deltas.safetensors",
                                           str(self.settings.get("generator_fingerprint", ""))))
        return written

    def select(self, index: int | slice | Tensor) -> InversionResult:
        """A result holding only the targets at ``index``."""
        idx = torch.arange(len(self))[index] if not isinstance(index, Tensor) else index.cpu()
        if idx.dtype == torch.bool:
            if idx.numel() != len(self):
                raise ValueError(f"boolean mask of length {idx.numel()} for {len(self)} results")
            idx = idx.nonzero().squeeze(1)
        idx = idx.reshape(-1).long()
        hist = {k: [[row[int(j)] for j in idx] for row in v] for k, v in self.history.items()}
        return InversionResult(
            latent=self.latent[idx], space=self.space, image=self.image[idx],
            noise=[n[idx] for n in self.noise] if self.noise is not None else None,
            metrics={k: v[idx] for k, v in self.metrics.items()}, history=hist, method=self.method,
            seconds=self.seconds, settings=self.settings,
            deltas=[self.deltas[int(j)] for j in idx] if self.deltas is not None else None,
            extra={k: v[idx] for k, v in self.extra.items()}, notes=list(self.notes))


__all__ = ["InversionResult", "InversionState"]
