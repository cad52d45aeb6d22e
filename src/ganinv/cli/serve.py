"""``ganinv serve``: the web app (gradio), bound to this machine only unless told otherwise."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from ganinv.cli.common import MaxMemoryOpt, apply_max_memory, console
from ganinv.cli.groups import ModelChoice, Runtime


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. The default serves this machine only; "
                                      "0.0.0.0 opens the app to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 7860,
    concurrency: Annotated[int, typer.Option(min=1, help="Inversion/restoration jobs that run at once; the others "
                                             "wait in the queue, in order. Slider renders never wait for them.")] = 1,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload accepted (MB).")] = 10.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest image (pixels) decoded: a bigger one is refused "
                                            "before decoding (decompression bombs).")] = 4096 * 4096,
    max_steps: Annotated[int, typer.Option(min=1, help="Most optimisation steps one request may ask for.")] = 2000,
    work_dir: Annotated[Optional[Path], typer.Option(help="Folder for uploads and results (default: a new "
                                                     "temporary folder).")] = None,
    warm_up: Annotated[bool, typer.Option(help="Compute the Edit tab's directions in the background at start.")
                       ] = True,
    max_memory: MaxMemoryOpt = None,
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(device="cpu"),
) -> None:
    """Serve the web app: Invert, Restore and Edit tabs in the browser (gradio)."""
    folder = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="ganinv-web-"))
    folder.mkdir(parents=True, exist_ok=True)
    # gradio reads these when first imported: uploads go under our folder, no analytics calls
    os.environ.setdefault("GRADIO_TEMP_DIR", str(folder / "uploads"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ganinv.web.backend import Limits, Workbench

    budget = apply_max_memory(max_memory)
    dev = runtime.setup()
    G, name = model.load()
    from ganinv.web.app import launch  # gradio: only once the model is known to load
    G = G.to(dev)
    if concurrency > 1:  # jobs that run at once share the budget (each would otherwise plan with all of it)
        from ganinv import memory

        memory.set_max_memory((budget or memory.budget(G.device)) // concurrency)
    wb = Workbench(G, name, folder, Limits(max_upload_mb=max_upload_mb, max_pixels=max_pixels, max_steps=max_steps))
    if warm_up:
        wb.warm_up()
    console.print(f"serving [bold]{name}[/] at http://{host}:{port}  (work folder {folder}; Ctrl-C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]note:[/] listening on {host}: anyone who can reach this machine can use the app")
    launch(wb, host=host, port=port, concurrency=concurrency, max_upload_mb=max_upload_mb, block=True, quiet=True)
