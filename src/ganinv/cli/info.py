"""``ganinv info``: what a checkpoint file is, without executing anything in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ganinv.cli.common import out


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def info(checkpoint: Annotated[str, typer.Argument(help="Checkpoint file/folder or bundled model name.")]) -> None:
    """Describe a checkpoint: format, architecture, resolution, latent sizes, keys."""
    from ganinv import zoo
    from ganinv.generators.checkpoints import inspect_checkpoint

    path = Path(checkpoint)
    if not path.exists() and checkpoint in zoo.available():
        path = zoo.model_dir(checkpoint)
    report = inspect_checkpoint(path)
    table = Table(title=str(checkpoint), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in report.items():
        table.add_row(key, _fmt(value))
    out.print(table)
