"""``ganinv convert IN OUT``: write a checkpoint in another format, verified before it appears."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ganinv.cli.common import console
from ganinv.cli.groups import DeviceOpt


def convert(
    inp: Annotated[str, typer.Argument(
        metavar="IN", help="Checkpoint to convert: NVIDIA stylegan2-ada .pkl, rosinality .pt, ganinv model folder, "
        "or a bundled model name (with --deltas: the PTI base model).", show_default=False)],
    out: Annotated[Path, typer.Argument(
        metavar="OUT", help="File or folder to write: .pt/.pth → rosinality checkpoint; no suffix, .ganinv or an "
        "existing folder → ganinv model folder (or choose with --to).", show_default=False)],
    to: Annotated[Optional[str], typer.Option(
        "--to", help="Output format: rosinality or ganinv (default: from OUT's suffix).")] = None,
    deltas: Annotated[Optional[Path], typer.Option(
        "--deltas", help="A PTI result's <stem>.deltas.safetensors (or its <stem>.npz), written by `ganinv invert "
        "--method pti` from IN: applied to IN, giving a standalone tuned generator.")] = None,
    discriminator: Annotated[bool, typer.Option(
        "--discriminator/--no-discriminator", help="Also write IN's discriminator when it holds one that converts "
        "(NVIDIA D, rosinality d, a ganinv folder's discriminator).")] = True,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing OUT (a file, or a ganinv model "
                                        "folder holding only its own files).")] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Convert a generator checkpoint (and its discriminator) to a rosinality .pt or a ganinv folder.

    Verified first (on --device): 4 seeded z are rendered by the source and the written model (and D logits compared).
    OUT appears only when every |difference| is ≤ 1e-5; nothing from the input is ever executed.
    """
    from ganinv.cli.common import resolve_device
    from ganinv.convert import convert_checkpoint

    dev = resolve_device(device)
    with console.status(f"converting {escape(inp)}", spinner="dots") as status:
        report = convert_checkpoint(inp, out, to=to, deltas=deltas, force=force, discriminator=discriminator,
                                    device=dev, progress=lambda msg: status.update(escape(msg)))
    for notice in report.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}")
    console.print(escape(report.summary()))
