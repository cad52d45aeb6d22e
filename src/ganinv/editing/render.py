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
           batch_size: int | None = None) -> Tensor:
    """Render codes ``[N, *shape]`` of ``space`` → images ``[N, C, H, W]`` in [0, 1] (on the CPU).

    ``noise``: per-layer maps ``[1 or N, 1, H_i, W_i]`` (None: the generator's stored maps).
    ``batch_size``: codes per forward pass (None: as many as fit in the memory budget, at most 256); a chunk
    whose allocation fails is halved (:mod:`ganinv.memory`).
    """
    from ganinv.memory import describe, render_cost, rows_that_fit, run_halving

    n = codes.shape[0]
    what = f"rendering {n} codes on the {describe(G)}"
    if batch_size is None:
        cost = render_cost(G, space)  # with gradients: bounds a no-grad rendering
        batch_size = rows_that_fit(G, n, cost, cap=256, what=what)

    def one(start: int, stop: int) -> Tensor:
        chunk = codes[start:stop].to(G.device)
        nz = None
        if noise is not None:
            nz = [m.to(G.device) if m.shape[0] == 1 else m[start:stop].to(G.device) for m in noise]
        return G.to_display(G.synthesize(chunk, space, nz)).cpu()

    return torch.cat(run_halving(one, n, batch_size, device=G.device, what=what))


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
