"""Shared CLI pieces: the console, model options, and turning names into generators."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ganinv.errors import GaninvError, InputError
if TYPE_CHECKING:
    import torch
    from rich.table import Table

    from ganinv.generators.base import Generator

P = ParamSpec("P")
R = TypeVar("R")

console = Console(stderr=True)
out = Console()

_MODEL_PANEL = "Model"
#: Help panel of the optimisation engine's options (``ganinv.cli.groups.Engine``).
ENGINE_PANEL = "Optimisation"
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", rich_help_panel=_MODEL_PANEL,
    help="Bundled model name (see `ganinv models`) or a checkpoint path (ganinv folder, rosinality .pt, NVIDIA .pkl).")]
GeneratorOpt = Annotated[Optional[str], typer.Option(
    "--generator", rich_help_panel=_MODEL_PANEL,
    help="Bring your own generator: path/to/file.py:NAME (an nn.Module class, instance, or factory).")]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", rich_help_panel=_MODEL_PANEL,
    help="State dict for --generator (.pt/.pth loaded with weights_only, or .safetensors).")]
LatentDimOpt = Annotated[Optional[int], typer.Option(
    "--latent-dim", rich_help_panel=_MODEL_PANEL, help="Latent size for --generator.")]
ImageShapeOpt = Annotated[Optional[str], typer.Option(
    "--image-shape", rich_help_panel=_MODEL_PANEL, help="C,H,W output shape for --generator.")]
OutputRangeOpt = Annotated[Optional[str], typer.Option(
    "--output-range", rich_help_panel=_MODEL_PANEL, help="LO,HI native output range for --generator (default -1,1).")]
OptimizerOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="auto, adam or lbfgs (default auto: L-BFGS with the generator's stored noise maps, which measured "
    "better on every bundled model and space; Adam when --lr, --noise joint/after, a preset or a forward "
    "operator asks for it).")]
LbfgsPreconditionOpt = Annotated[Optional[float], typer.Option(
    "--lbfgs-precondition", rich_help_panel=ENGINE_PANEL,
    help="L-BFGS: rescale the latent's coordinates by the generator's Gauss-Newton "
    "diagonal to this power (0 = off; the hybrid's default is 0.75 in W+).")]
SaturationOpt = Annotated[Optional[bool], typer.Option(
    "--saturation/--no-saturation", rich_help_panel=ENGINE_PANEL,
    help="Reconstruction: treat pixels at 0 or 255 as clipped and penalise the render there only on the wrong "
    "side of the bound, as its clipped display would be (default on).")]
LbfgsHistoryOpt = Annotated[Optional[int], typer.Option(
    "--lbfgs-history", rich_help_panel=ENGINE_PANEL,
    help="L-BFGS: curvature pairs each image keeps (default 100).")]

MaxMemoryOpt = Annotated[Optional[str], typer.Option(
    "--max-memory", rich_help_panel="Compute",
    help="Memory budget of every batched pass, e.g. 8G, 8GiB, 8GB, 512M (default: 60% of the "
    "free RAM, 80% of the free GPU memory; also GANINV_MAX_MEMORY).")]
RetriesOpt = Annotated[Optional[int], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="Re-run images whose loss stays above --stop-loss from fresh random starts, up to this many rounds "
    "(needs --stop-loss).")]
LaggingOpt = Annotated[Optional[str], typer.Option(
    "--lagging", rich_help_panel=ENGINE_PANEL,
    help="Re-run an image whose loss ends more than this many times its batch's lower quartile (3+ images) from "
    "fresh random starts (default 10; off to turn it off); a loss at or below 1e-4 (MSE: 40 dB) is never re-run.")]
LaggingRoundsOpt = Annotated[Optional[int], typer.Option(
    "--lagging-rounds", rich_help_panel=ENGINE_PANEL,
    help="Rounds of --lagging re-runs, twice the starts each (default 2).")]
StopLossOpt = Annotated[Optional[float], typer.Option(
    "--stop-loss", rich_help_panel=ENGINE_PANEL,
    help="Stop an image as soon as its loss is at or below this value (per image).")]
TolOpt = Annotated[Optional[float], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="Relative improvement that counts as progress for --patience (default 1e-3).")]
MinStepsOpt = Annotated[Optional[float], typer.Option(
    "--min-steps", rich_help_panel=ENGINE_PANEL,
    help="Fraction of --steps an image runs before --patience may stop it (default 0.25).")]
WarmupOpt = Annotated[Optional[float], typer.Option(
    "--warmup", rich_help_panel=ENGINE_PANEL,
    help="L-BFGS from a random or best-of-N start: fraction of --steps run with Adam first, to cross the small "
    "local minima L-BFGS would stop in (default 0.2; 0 = L-BFGS from the start).")]
PolishStepsOpt = Annotated[Optional[int], typer.Option(
    "--polish-steps", rich_help_panel=ENGINE_PANEL,
    help="Per-image L-BFGS iterations after the latent phase, from each image's best latent.")]


CoarseOpt = Annotated[Optional[str], typer.Option(
    "--coarse", rich_help_panel=ENGINE_PANEL,
    help="Coarse-to-fine stages for StyleGAN2: resolutions like 32,64 fitted first against the "
    "downsampled image, rendering only the blocks up to them; 'off', or 'auto' (default: one 64 px stage at "
    "≥ 256 px for a pixel loss with fixed noise maps).")]
CoarseStepsOpt = Annotated[Optional[int], typer.Option(
    "--coarse-steps", rich_help_panel=ENGINE_PANEL,
    help="Steps of each coarse stage (default: max(50, --steps / 5); each image stops on its own).")]


def apply_max_memory(value: str | None) -> int | None:
    """Set the process's memory budget from ``--max-memory`` (else ``GANINV_MAX_MEMORY``, else automatic).
    Raises :class:`InputError` for a value that is not a size."""
    import os

    from ganinv import memory

    if value is None:
        env = os.environ.get("GANINV_MAX_MEMORY")
        if env:
            try:
                return memory.set_max_memory(env)
            except InputError as exc:
                raise InputError(f"GANINV_MAX_MEMORY: {exc}") from None
        return memory.set_max_memory(None)
    try:
        return memory.set_max_memory(value)
    except InputError as exc:
        raise InputError(f"--max-memory: {exc}") from None


def engine_options(*, retries: int | None = None, stop_loss: float | None = None, tol: float | None = None,
                   min_steps: float | None = None, polish_steps: int | None = None, coarse: str | None = None,
                   coarse_steps: int | None = None, lagging: str | None = None,
                   lagging_rounds: int | None = None) -> dict[str, object]:
    """The stopping / restart options a command passes to the engine, checked the way the CLI words them."""
    if retries is not None and retries < 0:
        raise InputError(f"--retries must be ≥ 0, got {retries}")
    if retries and stop_loss is None:
        raise InputError("--retries re-runs images whose loss stays above --stop-loss: add --stop-loss")
    for flag, value in (("--stop-loss", stop_loss), ("--tol", tol)):
        if value is not None and not (value > 0 and value < float("inf")):
            raise InputError(f"{flag} must be a finite positive number, got {value}")
    if min_steps is not None and not 0 <= min_steps <= 1:
        raise InputError(f"--min-steps is a fraction of --steps in [0, 1], got {min_steps}")
    if polish_steps is not None and polish_steps < 0:
        raise InputError(f"--polish-steps must be ≥ 0, got {polish_steps}")
    if coarse_steps is not None and coarse_steps < 1:
        raise InputError(f"--coarse-steps must be ≥ 1, got {coarse_steps}")
    if coarse is not None:
        text = coarse.strip().lower()
        if text not in ("auto", "off", "none") and not all(v.strip().isdigit() for v in text.split(",")):
            raise InputError(f"--coarse takes 'auto', 'off' or resolutions like 32,64; got {coarse!r}")
    if lagging_rounds is not None and lagging_rounds < 0:
        raise InputError(f"--lagging-rounds must be ≥ 0, got {lagging_rounds}")
    given = {"retries": retries, "stop_loss": stop_loss, "tol": tol, "min_steps": min_steps,
             "polish_steps": polish_steps, "coarse": coarse, "coarse_steps": coarse_steps,
             "lagging_rounds": lagging_rounds}
    out = {k: v for k, v in given.items() if v is not None}
    if lagging is not None:
        text = lagging.strip().lower()
        if text in ("off", "none", "0"):
            if lagging_rounds:
                raise InputError("--lagging off and --lagging-rounds contradict each other: give one")
            out["lagging_rounds"] = 0  # no rounds: the engine's own spelling of off (a None would read "not given")
        else:
            try:
                factor = float(text)
            except ValueError:
                factor = math.nan
            if not (math.isfinite(factor) and factor > 1):
                raise InputError(f"--lagging is a multiple of the batch's lower-quartile loss, a number > 1, or off; "
                                 f"got {lagging!r}")
            out["lagging"] = factor
    return out


def resolve_generator(model: str | None, generator: str | None = None, weights: Path | None = None,
                      latent_dim: int | None = None, image_shape: str | None = None,
                      output_range: str | None = None) -> tuple[Generator, str]:
    """Turn the CLI's model options into a frozen generator and a display name.

    ``--model`` and ``--generator`` are mutually exclusive; with neither, the default bundled model.
    """
    from ganinv.errors import InputError

    if model and generator:
        raise InputError("give either --model or --generator, not both")
    if generator:
        from ganinv.generators.wrap import load_generator_file, parse_image_shape, parse_range

        G = load_generator_file(generator, weights=str(weights) if weights else None, latent_dim=latent_dim,
                                image_shape=parse_image_shape(image_shape) if image_shape else None,
                                output_range=parse_range(output_range) if output_range else None)
        return G, generator
    if weights or latent_dim or image_shape or output_range:
        raise InputError("--weights/--latent-dim/--image-shape/--output-range only apply with --generator")
    from ganinv.generators.checkpoints import load_generator
    from ganinv.zoo import DEFAULT_MODEL

    name = model or DEFAULT_MODEL
    G, notices = load_generator(name)
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}")
    return G, name


def resolve_device(name: str) -> "torch.device":
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (the first GPU when one is usable, else CPU)."""
    import torch

    from ganinv.errors import InputError

    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} asked for, but this torch build sees no usable CUDA GPU; "
                             "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' asked for, but MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {name!r}; use cpu, cuda, cuda:N, mps or auto")
    return device


def check_encoder_options(method: str, options: dict[str, object]) -> None:
    """Refuse optimisation options (``options``: the given ones, by engine field name) with ``--method encoder``
    or ``hyper``, which run none; the message names them as flags."""
    if method in ("encoder", "hyper") and options:
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise InputError(f"--method {method} runs no optimisation; drop {flags}")


#: The optimiser each method runs when ``--optimizer`` is not given: the hybrid's L-BFGS; ``auto`` (L-BFGS for
#: reconstruction unless an option asks for Adam, :func:`ganinv.inverters.optimize.resolve_optimizer`) for
#: optimisation and PTI's pivot; Adam elsewhere.
DEFAULT_OPTIMIZER = {"hybrid": "lbfgs", "optimize": "auto", "pti": "auto"}


def check_optimizer_options(optimizer: str | None, method: str, *, lr: float | None = None,
                            lbfgs_precondition: float | None = None, lbfgs_history: int | None = None,
                            warmup: float | None = None) -> None:
    """Refuse an option the optimiser in use ignores: ``--lr`` with L-BFGS (given, or the hybrid's default),
    which has no learning rate; ``--lbfgs-precondition`` / ``--lbfgs-history`` / ``--warmup`` with Adam (given,
    chosen by ``auto`` because of ``--lr``, or the method's default, :data:`DEFAULT_OPTIMIZER`), a history below 1
    and a warm-up outside [0, 1)."""
    used = optimizer or DEFAULT_OPTIMIZER.get(method, "adam")
    if used == "auto" and lr is not None:
        used = "adam"  # a learning rate makes auto pick Adam
    if lr is not None and used == "lbfgs":
        raise InputError("--lr sets Adam's learning rate; L-BFGS (the hybrid's default) has none — drop --lr"
                         + (", or add --optimizer adam to refine with Adam" if method == "hybrid" else ""))
    if lbfgs_precondition is not None and used == "adam":
        raise InputError("--lbfgs-precondition rescales L-BFGS's coordinates; add --optimizer lbfgs to use it")
    if lbfgs_history is not None:
        if lbfgs_history < 1:
            raise InputError(f"--lbfgs-history is a number of curvature pairs ≥ 1, got {lbfgs_history}")
        if used == "adam":
            raise InputError("--lbfgs-history sets L-BFGS's memory; add --optimizer lbfgs to use it")
    if warmup is not None:
        if not 0 <= warmup < 1:
            raise InputError(f"--warmup is the fraction of --steps run with Adam before L-BFGS, in [0, 1); got "
                             f"{warmup}")
        if used == "adam":
            raise InputError("--warmup is the Adam phase that opens an L-BFGS run; this run uses Adam throughout "
                             "— drop --warmup, or add --optimizer lbfgs")


def human_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


def print_table(table: "Table", console: Console | None = None) -> None:
    """Print ``table`` as a table when it fits the console's width without cutting a word (long cells wrap), else
    one record per row.

    Piped or in CI (80 columns, no terminal) a wide table would squeeze every column to a few letters ("reso…");
    a record keeps every value whole: the first column's value as its heading, then ``header: value`` pairs,
    wrapped at the console's width. A table without a header row (key/value tables) keeps its two columns.
    """
    from rich.table import Table
    from rich.text import Text

    console = console or out
    assert isinstance(table, Table)
    # the narrowest the table can be without cutting a word: its columns' longest words plus the borders
    narrowest = table.__rich_measure__(console, console.options.update(max_width=10**6)).minimum
    if narrowest <= console.width or not table.show_header or len(table.columns) < 2:
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="italic"))
    headers = [Text.from_markup(c.header) if isinstance(c.header, str) else Text(str(c.header))
               for c in table.columns]
    columns = [list(c.cells) for c in table.columns]
    for r in range(table.row_count):
        raw = [col[r] if r < len(col) else "" for col in columns]
        cells = [Text.from_markup(c) if isinstance(c, str) else c for c in raw]
        line = Text("• ")
        line.append_text(cells[0] if isinstance(cells[0], Text) else Text(str(cells[0])))
        line.stylize("bold", 0, len(line))
        for header, cell in zip(headers[1:], cells[1:], strict=True):
            value = cell if isinstance(cell, Text) else Text(str(cell))
            if not value.plain.strip():
                continue
            line.append("  ")
            line.append_text(header.copy().append(": "))
            line.append_text(value)
        console.print(line, overflow="fold")
    if table.caption:
        console.print(Text(str(table.caption), style="dim"))


def describe_spaces(G: Generator) -> str:
    """``z 128 · w 128 · w+ 8×128 · noise ×7``."""
    parts = [f"{name} {'×'.join(map(str, s.shape))}" for name, s in G.latent_spaces.items()]
    if G.noise_shapes:
        parts.append(f"noise ×{len(G.noise_shapes)}")
    return " · ".join(parts)


#: Exit status of a command that failed on a bug rather than on its input (sysexits' EX_SOFTWARE).
INTERNAL_ERROR_EXIT = 70


def report_internal_error(exc: BaseException) -> Path | None:
    """A bug (an exception no input check anticipated): one line on the console naming the exception, and the
    traceback written to a file in the temp folder, whose path is returned (None when it cannot be written)."""
    import os
    import tempfile
    import time
    import traceback

    first = str(exc).splitlines()[0][:300] if str(exc).strip() else ""
    name = f"ganinv-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path: Path | None = None
    try:
        target = Path(tempfile.gettempdir()) / name
        target.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        path = target
    except OSError:
        pass
    where = f"the traceback is in {path}" if path is not None else "the traceback could not be saved"
    console.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}{': ' + escape(first) if first else ''} "
                  f"— a bug in ganinv, not in your input; {escape(where)} (GANINV_DEBUG=1 prints it); "
                  "files already written are kept")
    return path


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a CLI command: a :class:`GaninvError` or OS error prints one line and exits 1; Ctrl-C exits 130;
    any other exception (a bug) prints one line, saves its traceback (:func:`report_internal_error`) and exits
    :data:`INTERNAL_ERROR_EXIT` — unless ``GANINV_DEBUG`` is set, which lets it propagate."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return guarded(*args, **kwargs)
        except Exception as exc:
            import os

            # typer's / click's own exits, aborts and usage errors (typer may vendor click) keep their handling
            if type(exc).__module__.split(".")[0] in ("typer", "click") or os.environ.get("GANINV_DEBUG"):
                raise
            report_internal_error(exc)
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None

    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except GaninvError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except (MemoryError, RuntimeError) as exc:
            from ganinv.memory import is_oom

            if not is_oom(exc):
                raise
            console.print("[bold red]error:[/] ran out of memory ("
                          f"{escape(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)}); set a "
                          "smaller --max-memory or --batch-size, free memory, or use a device with more memory")
            raise typer.Exit(1) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            console.print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{escape(str(where))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper
