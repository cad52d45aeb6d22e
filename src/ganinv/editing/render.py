"""Rendering edited codes: batched, no gradients, images clamped to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ganinv.editing.directions import Direction
from ganinv.editing.ops import apply_direction
from ganinv.generators.base import Generator


@torch.no_grad()
def render(G: Generator, codes: Tensor, space: str, noise: list[Tensor] | None = None,
           batch_size: int = 256) -> Tensor:
    """Render codes ``[N, *shape]`` of ``space`` → images ``[N, C, H, W]`` in [0, 1] (on the CPU).

    ``noise``: per-layer maps ``[1 or N, 1, H_i, W_i]`` (None: the generator's stored maps).
    """
    out = []
    for start in range(0, codes.shape[0], batch_size):
        chunk = codes[start:start + batch_size].to(G.device)
        nz = None
        if noise is not None:
            nz = [n.to(G.device) if n.shape[0] == 1 else n[start:start + batch_size].to(G.device) for n in noise]
        out.append(G.to_display(G.synthesize(chunk, space, nz)).cpu())
    return torch.cat(out)


def direction_grid(G: Generator, code: Tensor, space: str, directions: Sequence[Direction],
                   strengths: Sequence[float], *, layers: Sequence[int] | None = None, units: str = "sigma",
                   noise: list[Tensor] | None = None) -> Tensor:
    """One row per direction, one column per strength, all edits of one code ``[1, *shape]``.

    Returns ``[len(directions) · len(strengths), C, H, W]`` in [0, 1], row-major (save with ``nrow=len(strengths)``).
    """
    num_ws = getattr(G, "num_ws", None)
    rows = []
    for d in directions:
        edited, out_space = apply_direction(code, d.step(units), list(strengths), space=space, layers=layers,
                                            num_ws=num_ws)
        rows.append(render(G, edited.flatten(0, 1), out_space, noise))
    return torch.cat(rows)
