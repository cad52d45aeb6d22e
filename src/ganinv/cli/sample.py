"""``ganinv sample``: draw a grid of samples from a generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganinv.cli.common import console
from ganinv.cli.groups import ModelChoice


def sample(
    n: Annotated[int, typer.Option("-n", "--num", min=1, max=4096, help="Number of samples.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same images).")] = 0,
    truncation: Annotated[float, typer.Option(min=0.0, max=2.0, help="Truncation ψ (1 = none).")] = 1.0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG grid.")] = Path("samples.png"),
    scale: Annotated[int, typer.Option(min=1, max=16, help="Nearest-neighbour enlargement of the grid.")] = 4,
    model: ModelChoice = ModelChoice(),
) -> None:
    """Sample N images from a model and save them as one grid (a class-conditional model: of class --class K,
    which it needs; truncation then pulls towards that class's mean w)."""
    from ganinv.io import save_grid

    G, name = model.load(need_class=True)
    images = G.sample(n, seed=seed, truncation=truncation)
    save_grid(images, out, scale=scale)
    of_class = f", class {model.class_label}" if model.class_label is not None else ""
    console.print(f"wrote {n} samples of [bold]{name}[/] (seed {seed}{of_class}) to {out}")
