"""``ganinv demo``: the main job on the bundled models and example images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from ganinv.cli.common import console, out


def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    n: Annotated[int, typer.Option("-n", "--num", min=1, max=1024, help="Samples per model.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Sample every bundled generator into OUT and classify the samples with the bundled classifier."""
    from ganinv import zoo
    from ganinv.generators.base import Generator
    from ganinv.io import save_grid

    names = [name for name in zoo.available() if zoo.describe(name).get("kind") == "generator"]
    classifier = zoo.load_classifier() if zoo.DEFAULT_CLASSIFIER in zoo.available() else None
    table = Table(title=f"ganinv demo — {n} samples per model (seed {seed})")
    table.add_column("model", no_wrap=True, style="bold")
    for col in ("arch", "latent spaces", "mean confidence", "classes present"):
        table.add_column(col)
    table.add_column("grid", overflow="fold")
    with Progress(console=console) as progress:
        task = progress.add_task("sampling bundled models", total=len(names))
        for name in names:
            G = zoo.load(name)
            assert isinstance(G, Generator)
            images = G.sample(n, seed=seed)
            path = save_grid(images, out_dir / f"{name}_samples.png", scale=4)
            conf, present = "–", "–"
            if classifier is not None:
                cls, c = classifier.predict(images)
                conf, present = f"{c.mean():.3f}", f"{len(set(cls.tolist()))}/10"
            table.add_row(name, G.arch, ", ".join(G.latent_spaces), conf, present, str(path))
            progress.advance(task)
    out.print(table)
