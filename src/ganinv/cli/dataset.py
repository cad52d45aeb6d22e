"""``ganinv invert-dataset``: invert a dataset of any size into latent shards + a Parquet manifest, resumably.

``ganinv invert-dataset SRC... --model M --out DIR [--method ...] [--steps N] [--seed S]
[--backend local|ray] [--ray-address auto|ADDR] [--workers N] [--batch-size B] [--save-images]``

SRC: folders (recursive), glob patterns, image files, ``.txt``/``.csv`` lists of paths. Writes
``DIR/shards/shard-XXXXX.safetensors`` (latents by image key), ``DIR/manifest.parquet`` (one row per image:
path, status, error, method, space, psnr, ssim, loss, steps, seconds, shard, key), ``DIR/run.json`` and, with
``--save-images``, ``DIR/images/``. Rerunning the same command skips what is done; a run killed at any moment
loses at most its batches in flight. A thin layer over :func:`ganinv.dataset.run_dataset`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from ganinv.cli.common import check_encoder_options, console, print_table, resolve_device
from ganinv.cli.groups import AlignOpt, DeviceOpt, Engine, Framing, ModelChoice
from ganinv.cli.invert import check_loss, check_square, plan_for
from ganinv.errors import InputError

if TYPE_CHECKING:
    from ganinv.generators.base import Generator


class RateColumn(ProgressColumn):
    """Throughput in images/s since the task started (worker start-up included, as in the summary)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("— img/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:.2f} img/s", style="progress.data.speed")


def load_generator_for(choice: ModelChoice) -> Generator:
    """The generator the CLI options name (module-level, so ``functools.partial`` of it pickles for Ray actors)."""
    return choice.load()[0]


def invert_dataset(
    sources: Annotated[list[str], typer.Argument(
        metavar="SRC...", show_default=False,
        help="Folders (recursive), glob patterns (quote them), image files, or .txt/.csv lists of paths (CSV: a "
             "'path' column or the first).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder: shards/, manifest.parquet, run.json "
                                          "(rerun the same command to resume).", show_default=False)],
    method: Annotated[str, typer.Option(help="optimize, encoder, hybrid, pti or multicode.")] = "optimize",
    seed: Annotated[int, typer.Option(help="Base seed; each image's seed is derived from it and the image's key.")
                    ] = 0,
    passes: Annotated[Optional[int], typer.Option(help="Encoder passes (encoder/hybrid).")] = None,
    encoder: Annotated[Optional[str], typer.Option(help="Encoder folder or bundled name (encoder/hybrid).")
                       ] = None,
    backend: Annotated[str, typer.Option(help="local (this process) or ray (Ray Data actor pool).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Existing Ray cluster: auto or "
                                                       "HOST:PORT (default: start a local Ray).")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors, each loading the generator once (--backend ray).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch = per shard and manifest "
                                            "part (the most a crash loses per worker).")] = 16,
    threads: Annotated[int, typer.Option(help="torch CPU threads per worker (latents are bit-identical across "
                                         "backends and resumes at equal threads and device).")] = 1,
    device: DeviceOpt = "auto",
    save_images: Annotated[bool, typer.Option("--save-images", help="Also write reconstructions to DIR/images/.")
                           ] = False,
    align: AlignOpt = "none",
    engine: Engine = Engine(),
    model: ModelChoice = ModelChoice(),
) -> None:
    """Invert every image of SRC... into OUT: latent shards, a Parquet manifest, resumable, local or on Ray.

    Each image is inverted on its own with a seed derived from --seed and its key (its path relative to its
    source), so its latent does not depend on the batch, the worker or a resume. Bad files are recorded in the
    manifest and the run goes on; the exit code is 1 when the manifest holds any failed image.
    """
    from ganinv.dataset import DatasetJob, run_dataset
    from ganinv.dataset.sources import check_sources

    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r}; use local or ray")
    if ray_address is not None and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if workers != 1 and backend != "ray":
        raise InputError("--workers sets the number of Ray actors: add --backend ray (it starts a local Ray "
                         "when no --ray-address is given)")
    for flag, value in (("--workers", workers), ("--batch-size", batch_size), ("--threads", threads)):
        if value < 1:
            raise InputError(f"{flag} must be ≥ 1, got {value}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is an existing file; give a folder (it is created if missing)")
    check_sources(sources)
    Framing(align=align).check()
    check_loss(engine.loss)
    options = engine.options(method)
    method_options = {k: v for k, v in {"passes": passes}.items() if v is not None}
    wrong = [flag for flag, value, ok in (("--passes", passes, ("encoder", "hybrid")),
                                          ("--encoder", encoder, ("encoder", "hybrid"))) if value is not None
             and method not in ok]
    if wrong:
        raise InputError(f"{', '.join(wrong)} do(es) not apply to --method {method}")
    check_encoder_options(method, options)
    budget = engine.apply_memory()
    dev = resolve_device(device)

    G, name = model.load(need_class=True)  # (a conditional model: the engine needs a class)
    check_square(G)
    plan_for(G, 1, options, None, method)  # unknown method, missing space or noise maps: fail before any work
    if method in ("encoder", "hybrid"):
        from ganinv.encoders import resolve_encoder

        resolve_encoder(encoder, G)  # refuses an encoder trained for another generator
    job = DatasetJob(method=method, options=options, method_options=method_options, seed=seed, encoder=encoder,
                     save_images=save_images, align=align)
    source: Any = G.to(dev)
    if backend == "ray":  # each actor loads the generator itself
        source = functools.partial(load_generator_for, model)

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                        speed_estimate_period=120)
    task = progress.add_task(f"{escape(name)} · {method}", total=None, start=False)
    failures: list[dict[str, Any]] = []

    def on_start(found: int, todo: int) -> None:
        if found > todo:
            console.print(f"{found - todo} of {found} images already done in {escape(str(out_dir))}: skipped")
        progress.update(task, total=todo)
        if todo:
            progress.start()
            progress.start_task(task)

    def on_image(row: dict[str, Any]) -> None:
        progress.advance(task)

    def on_batch(rows: list[dict[str, Any]]) -> None:
        failures.extend(r for r in rows if r["status"] != "ok")
        if backend == "ray":
            progress.advance(task, len(rows))

    try:
        stats = run_dataset(sources, out_dir, source, job, generator_name=name, backend=backend,
                            batch_size=batch_size, workers=workers, ray_address=ray_address, device=str(dev),
                            threads=threads, on_start=on_start, on_image=on_image, on_batch=on_batch,
                            max_memory=budget)
    finally:
        progress.stop()

    table = Table(title=f"{name} · {method} · {out_dir}")
    for header in ("found", "skipped", "done", "failed", "images/s", "mean psnr (dB)", "manifest rows"):
        table.add_column(header, justify="right")
    psnr = "—" if stats.mean_psnr is None or not math.isfinite(stats.mean_psnr) else f"{stats.mean_psnr:.2f}"
    rate = f"{stats.images_per_second:.2f}" if stats.done + stats.failed else "—"
    table.add_row(str(stats.found), str(stats.skipped), str(stats.done), str(stats.failed), rate, psnr,
                  str(stats.manifest_rows))
    print_table(table)
    for f in failures[:5]:
        console.print(f"[yellow]failed:[/] {escape(f['key'])}: {escape(str(f['error']))}")
    if len(failures) > 5:
        console.print(f"[yellow]… and {len(failures) - 5} more[/] (status = 'error' in the manifest)")
    if stats.manifest_failed:
        n = stats.manifest_failed
        console.print(f"[bold red]{n} image{'s' if n != 1 else ''} failed[/] (recorded in "
                      f"{escape(str(out_dir / 'manifest.parquet'))}; the others are done)")
        raise typer.Exit(1)
