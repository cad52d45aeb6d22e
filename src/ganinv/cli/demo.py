"""``ganinv demo``: the main job on the bundled models and example images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from ganinv.cli.common import console, print_table
from ganinv.cli.invert import Target, report_failures, run_inversion

if TYPE_CHECKING:
    from ganinv.generators.base import Generator

#: Engine options of the demo's inversion: none, so it shows what the engine's defaults give ...
DEMO_OPTIONS: dict[str, object] = {}
#: ... except that it runs at most this many steps, to stay quick (~30 s on 2 CPU cores).
DEMO_MAX_STEPS = 150
#: The restoration the demo shows: a hole in the middle of every example digit, three hypotheses each.
DEMO_RESTORE = {"task_name": "inpaint", "hypotheses": 3, "steps": 100, "restarts": 1}


def example_digits() -> list[Path]:
    """The bundled example digits (``examples/digit_*.png`` of a source checkout), or [] when not found."""
    import ganinv
    from ganinv.io import _natural_key

    folder = Path(ganinv.__file__).resolve().parents[2] / "examples"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("digit_*.png"), key=lambda p: _natural_key(p.name))


def demo_targets(G: Generator, out_dir: Path) -> tuple[list[Target], list[dict[str, str]], str]:
    """The demo's inversion targets: the example digits, else one held-out MNIST digit per class."""
    from ganinv.cli.invert import load_targets

    paths = example_digits()
    if paths:
        targets, failures = load_targets(paths, G, out_dir)
        return targets, failures, f"the example digits in {paths[0].parent}"
    from ganinv.data import heldout_subset

    images, labels = heldout_subset(10)  # the first held-out digit of each class
    targets = [Target(f"ganinv.data.mnist('test') digit {int(c)}", f"digit_{int(c)}", img)
               for img, c in zip(images, labels, strict=True)]
    return targets, [], "10 held-out MNIST digits (one per class)"


def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    n: Annotated[int, typer.Option("-n", "--num", min=1, max=1024, help="Samples per model.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Sample every bundled generator into OUT and classify the samples with the bundled classifier; invert
    the example digits with the default model into OUT/invert (as `ganinv invert` does) and score them; then
    cut a hole in each and restore it three ways into OUT/restore (as `ganinv restore --simulate` does)."""
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
    print_table(table)

    G = zoo.load(zoo.DEFAULT_MODEL)
    assert isinstance(G, Generator)
    invert_dir = out_dir / "invert"
    targets, failures, what = demo_targets(G, invert_dir)
    from ganinv.inverters import OptimizeSettings

    options = dict(DEMO_OPTIONS)
    default_steps = OptimizeSettings().steps
    how = "engine defaults"
    if "steps" not in options and default_steps > DEMO_MAX_STEPS:
        options["steps"] = DEMO_MAX_STEPS
        how = f"engine defaults, {DEMO_MAX_STEPS} steps instead of {default_steps} to stay quick"
    console.print(f"inverting {what} with {zoo.DEFAULT_MODEL} ({how}) into {invert_dir}")
    run_inversion(G, zoo.DEFAULT_MODEL, targets, invert_dir, options=options, failures=failures,
                  title=f"ganinv demo — {len(targets)} digits inverted with {zoo.DEFAULT_MODEL}")
    report_failures(failures)

    paths = example_digits()
    if paths:
        from ganinv.cli.restore import restore

        restore_dir = out_dir / "restore"
        console.print(f"restoring the example digits with a hole in the middle ({DEMO_RESTORE['hypotheses']} "
                      f"hypotheses each, {DEMO_RESTORE['steps']} steps) into {restore_dir}")
        restore(inputs=[paths[0].parent], out_dir=restore_dir, simulate=True, **DEMO_RESTORE)  # type: ignore[arg-type]
