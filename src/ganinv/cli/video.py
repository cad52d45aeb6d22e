"""``ganinv invert-video`` and ``ganinv edit-video``: a video in, its inversion (and edits) out, frame by frame.

``invert-video VIDEO -o DIR`` reads the video (or a folder of frames) with PyAV, frames every selected frame —
``--align face`` (the default: FFHQ alignment from MTCNN landmarks followed through the video and smoothed over
time, as STIT and stylegan3-editing align video), ``center`` or ``none`` — inverts the frames in chunks, each
chunk warm-started from the previous frame's code, and writes ``DIR/reconstruction.mp4`` (plus
``reconstruction.pasted.mp4``
with ``--paste-back``), the per-frame codes and ``summary.json`` (PSNR per frame). The run is resumable: every
finished frame is on disk at once, and the same command on the same DIR skips it (see :mod:`ganinv.video.runner`).

``edit-video (VIDEO|DIR) -d DIRECTION -o OUT`` moves every frame's code along a direction (constant ``--strength``
or a ramp ``FROM:TO``), renders and pastes back; a VIDEO is inverted into OUT first.

Heavy modules (torch, PyAV, PIL, numpy) are imported inside the commands.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from ganinv.cli.common import console
from ganinv.cli.groups import (ColorMatchOpt, Engine, ModelChoice, OptionGroup, PasteBackOpt, PasteMaskOpt, Runtime,
                               paste_settings)
from ganinv.errors import InputError

if TYPE_CHECKING:
    from ganinv.cli.invert import PasteSettings
    from ganinv.generators.base import Generator
    from ganinv.video.frames import FrameSource
    from ganinv.video.runner import VideoSettings

_FRAMES_PANEL = "Frames"
_ALIGN_PANEL = "Framing"
_TIME_PANEL = "Over time"

EveryOpt = Annotated[int, typer.Option("--every", rich_help_panel=_FRAMES_PANEL,
                                       help="Keep every N-th frame (the output plays at the source's rate ÷ N).")]
MaxFramesOpt = Annotated[Optional[int], typer.Option("--max-frames", rich_help_panel=_FRAMES_PANEL,
                                                     help="Keep at most this many frames.")]
StartOpt = Annotated[float, typer.Option("--start", rich_help_panel=_FRAMES_PANEL,
                                         help="First second of the video to use.")]
EndOpt = Annotated[Optional[float], typer.Option("--end", rich_help_panel=_FRAMES_PANEL,
                                                 help="Stop at this second (default: the end).")]
FpsOpt = Annotated[Optional[float], typer.Option("--fps", rich_help_panel=_FRAMES_PANEL,
                                                 help="Frame rate of a folder of frames (default 25; a video file "
                                                 "has its own).")]
VideoAlignOpt = Annotated[str, typer.Option(
    "--align", rich_help_panel=_ALIGN_PANEL,
    help="face (FFHQ alignment of the face followed through the video, MTCNN landmarks smoothed over time), center "
    "(the largest centred square of every frame) or none (the whole frame, resized).")]
LandmarkSigmaOpt = Annotated[float, typer.Option(
    "--landmark-sigma", rich_help_panel=_ALIGN_PANEL,
    help="Smooth the face landmarks over time with a Gaussian of this many frames, so the aligned crop does not "
    "jitter (0: per-frame alignment).")]
BatchFramesOpt = Annotated[int, typer.Option("--batch-frames", rich_help_panel=_TIME_PANEL,
                                             help="Consecutive frames inverted together in one engine call.")]
SmoothOpt = Annotated[float, typer.Option("--smooth", rich_help_panel=_TIME_PANEL,
                                          help="Smooth the codes over time with a Gaussian of this many frames "
                                          "before rendering (0: off; the per-frame codes are kept as inverted).")]
NoWarmStartOpt = Annotated[bool, typer.Option("--no-warm-start", rich_help_panel=_TIME_PANEL,
                                              help="Start every chunk from the engine's own start instead of the "
                                              "previous frame's code.")]
PriorOpt = Annotated[Optional[float], typer.Option(help="Weight of the latent prior (≥ 0).")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed (same seed, same result).")]


@dataclasses.dataclass(frozen=True)
class FrameOptions(OptionGroup):
    """Which frames of the video are used: ``--every --max-frames --start --end`` and ``--fps`` (frame folders)."""

    every: EveryOpt = 1
    max_frames: MaxFramesOpt = None
    start: StartOpt = 0.0
    end: EndOpt = None
    fps: FpsOpt = None

    def selection(self) -> Any:
        from ganinv.video.frames import Selection

        return Selection(self.every, self.max_frames, self.start, self.end).check()


@dataclasses.dataclass(frozen=True)
class VideoFraming(OptionGroup):
    """How frames are framed and whether results go back into them: ``--align --landmark-sigma --paste-back
    --paste-mask --color-match``."""

    align: VideoAlignOpt = "face"
    landmark_sigma: LandmarkSigmaOpt = 2.0
    paste_back: PasteBackOpt = False
    paste_mask: PasteMaskOpt = None
    color_match: ColorMatchOpt = False

    def check(self, align: str | None = None) -> None:
        """``--align`` known; ``--paste-mask``/``--color-match`` need ``--paste-back``, which needs a framing
        (``align``: the one in force, default ``--align``). Raises :class:`InputError`."""
        from ganinv.video.runner import ALIGN_MODES

        align = align or self.align
        if self.align not in ALIGN_MODES:
            raise InputError(f"--align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if not self.paste_back:
            extra = [flag for flag, given in (("--paste-mask", self.paste_mask is not None),
                                              ("--color-match", self.color_match)) if given]
            if extra:
                raise InputError(f"{' and '.join(extra)} only apply with --paste-back")
        elif align == "none":
            raise InputError("--paste-back needs to know where each aligned frame sits in the video: use --align "
                             "face (faces) or --align center (largest centred square)")

    def paste_settings(self, resolution: int) -> PasteSettings | None:
        """What pasting back needs (the mask read at ``resolution``), or None without ``--paste-back``."""
        return paste_settings(self, resolution)


def _model_arg(model: ModelChoice) -> str | None:
    """The ``--model`` value that loads the same generator again from anywhere (a path made absolute)."""
    if model.generator:
        return None
    if model.model and Path(model.model).expanduser().exists():
        return str(Path(model.model).expanduser().resolve())
    return model.model


def _prepare(video: Path, out_dir: Path, frames: FrameOptions, framing: VideoFraming, engine: Engine,
             model: ModelChoice, runtime: Runtime, *, batch_frames: int, warm_start: bool, smooth: float,
             prior: float | None, seed: int | None, default_prior: float | None = None
             ) -> tuple[Generator, str, FrameSource, VideoSettings, dict[str, Any]]:
    """Every check of an inversion before anything is written: ``(G on its device, model name, source, settings,
    manifest)``."""
    import math

    from ganinv.cli.invert import check_out_dir, check_square, plan_for
    from ganinv.video.edit import model_fingerprint
    from ganinv.video.frames import open_source, pick_encoder
    from ganinv.video.runner import VideoSettings, build_manifest

    check_out_dir(out_dir)
    selection = frames.selection()
    framing.check()
    if not (math.isfinite(smooth) and smooth >= 0):
        raise InputError(f"--smooth must be a number of frames ≥ 0, got {smooth}")
    if prior is not None and not (math.isfinite(prior) and prior >= 0):
        raise InputError(f"--prior must be a finite number ≥ 0, got {prior}")
    source = open_source(video, frames.fps)  # a missing file or a non-video fails here, before any model work
    pick_encoder()  # no usable encoder: fail before hours of inversion
    engine.apply_memory()
    options: dict[str, Any] = dict(engine.options("optimize"))
    options.setdefault("noise", "fixed")  # per-frame noise maps flicker; the stored ones keep the texture still
    if prior is not None or default_prior is not None:
        options["prior"] = prior if prior is not None else default_prior
    if seed is not None:
        options["seed"] = seed
    dev = runtime.setup()
    G, name = model.load()
    G = G.to(dev)
    check_square(G)
    if options.get("prior") and "w" not in G.latent_spaces:
        options.pop("prior")
    plan_for(G, batch_frames, options, None, "optimize")  # unknown space, noise maps the model lacks: fail now
    settings = VideoSettings(selection, framing.align, framing.landmark_sigma, batch_frames, warm_start,
                             options).check()
    manifest = build_manifest(source, settings, G, name, _model_arg(model), model_fingerprint(G))
    return G, name, source, settings, manifest


def _run_inversion(G: Generator, source: FrameSource, settings: VideoSettings, manifest: dict[str, Any],
                   out_dir: Path, *, smooth: float, paste: PasteSettings | None) -> dict[str, Any]:
    """The three passes on ``out_dir`` (resuming what is there); returns the summary."""
    from ganinv.video.runner import check_manifest, finish, invert_frames, scan

    resuming = check_manifest(out_dir, manifest)
    if resuming:
        console.print(f"resuming the video inversion in {escape(str(out_dir))}/")
    track = scan(source, settings, out_dir, G.resolution, console=console)
    stats = invert_frames(G, source, track, settings, out_dir, console=console)
    if stats["done_before"]:
        console.print(f"skipped {stats['done_before']} frame(s) already inverted")
    return finish(G, source, track, settings, out_dir, smooth=smooth, paste=paste, manifest=manifest, stats=stats,
                  console=console)


def _report(summary: dict[str, Any], out_dir: Path, seconds: float) -> None:
    n = summary["num_frames"]
    mean = summary["mean"]["psnr"]
    files = summary["files"]
    extra = f" and {files['pasted']}" if "pasted" in files else ""
    console.print(f"wrote {files['reconstruction']}{extra} ({n} frame{'s' if n != 1 else ''}, {summary['fps']:.4g} "
                  f"fps, {summary['codec']}), per-frame codes ({files['frames']}) and summary.json to "
                  f"{escape(str(out_dir))}/ — mean PSNR {mean if mean is not None else '—'} dB, {seconds:.1f} s")


def invert_video(
    video: Annotated[Path, typer.Argument(help="A video file (mp4, mov, mkv, avi, webm, …) or a folder of frame "
                                          "images.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder; run the same command on it again to "
                                          "resume an interrupted run.", show_default=False)],
    batch_frames: BatchFramesOpt = 8,
    smooth: SmoothOpt = 0.0,
    no_warm_start: NoWarmStartOpt = False,
    prior: PriorOpt = None,
    seed: SeedOpt = None,
    frames: FrameOptions = FrameOptions(),
    framing: VideoFraming = VideoFraming(),
    engine: Engine = Engine(),
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Invert every frame of a video: the reconstructed video, per-frame codes (.npz) and PSNR per frame in OUT.

    Frames are aligned (--align face by default: landmarks smoothed over time), inverted in chunks warm-started
    from the previous frame, and written as they finish; an interrupted run resumes where it stopped.
    """
    t0 = time.perf_counter()
    G, _, source, settings, manifest = _prepare(video, out_dir, frames, framing, engine, model, runtime,
                                                batch_frames=batch_frames, warm_start=not no_warm_start,
                                                smooth=smooth, prior=prior, seed=seed)
    summary = _run_inversion(G, source, settings, manifest, out_dir, smooth=smooth,
                             paste=framing.paste_settings(G.resolution))
    _report(summary, out_dir, time.perf_counter() - t0)


def edit_video(
    input: Annotated[Path, typer.Argument(help="A finished `ganinv invert-video` folder, or a video file (inverted "
                                          "into OUT first).", show_default=False)],
    direction: Annotated[str, typer.Option("--direction", "-d", help="A direction file (.npy InterFaceGAN boundary, "
                                           ".npz GANSpace/SeFa components, FILE.npz:K, e4e/SFE *.pt) or pca:K / "
                                           "sefa:K computed on the fly.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (may be the inversion folder).",
                                          show_default=False)],
    strength: Annotated[str, typer.Option(help="Strength of the edit in every frame, or a ramp FROM:TO from the "
                                          "first frame to the last (units: see --units).")] = "2",
    layers: Annotated[Optional[str], typer.Option(help="w+ rows to move, A-B inclusive (e.g. 0-3 = coarse); "
                                                  "default all.")] = None,
    component: Annotated[Optional[int], typer.Option(help="Component of a .npz / *_pca.pt direction file "
                                                     "(default 0).")] = None,
    units: Annotated[str, typer.Option(help="sigma (strength 1 = one standard deviation of the model's codes along "
                                       "the direction) or raw (one latent unit).")] = "sigma",
    name: Annotated[str, typer.Option(help="Stem of the files written: NAME.mp4, NAME.pasted.mp4, NAME.npz, "
                                      "NAME.json.")] = "edit",
    batch_frames: BatchFramesOpt = 8,
    smooth: SmoothOpt = 0.0,
    no_warm_start: NoWarmStartOpt = False,
    prior: PriorOpt = None,
    seed: SeedOpt = None,
    frames: FrameOptions = FrameOptions(),
    framing: VideoFraming = VideoFraming(),
    engine: Engine = Engine(),
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Edit a video along a direction: every frame's code moved, rendered (and with --paste-back pasted into the
    original frames), written as NAME.mp4 in OUT. A video file is inverted into OUT first (resumable)."""
    from ganinv.cli.latents import EDIT_PRIOR
    from ganinv.editing import parse_layers, resolve_direction
    from ganinv.video.edit import check_model, check_name, edit_folder, parse_strength
    from ganinv.video.runner import read_manifest

    from ganinv.cli.invert import check_out_dir

    t0 = time.perf_counter()
    ramp = parse_strength(strength)
    check_name(name)
    check_out_dir(out_dir)
    if units not in ("sigma", "raw"):
        raise InputError(f"--units must be sigma or raw, got {units!r}")
    if not input.exists():
        raise InputError(f"{input}: no such video file or folder; check the path")
    is_folder = input.is_dir() and (input / "manifest.json").is_file()
    if is_folder:
        manifest = read_manifest(input)
        inversion_given = [flag for flag, given in (
            ("--every", frames.every != 1), ("--max-frames", frames.max_frames is not None),
            ("--start", frames.start != 0.0), ("--end", frames.end is not None), ("--fps", frames.fps is not None),
            ("--batch-frames", batch_frames != 8), ("--smooth", smooth != 0.0), ("--no-warm-start", no_warm_start),
            ("--prior", prior is not None), ("--seed", seed is not None),
            ("the optimisation options", bool(engine.options("optimize")))) if given]
        if inversion_given:
            raise InputError(f"{', '.join(inversion_given)} set how a video is inverted; {input} is inverted already "
                             "(drop them, or give the video file to invert it again)")
        framing.check(align=manifest.get("framing", {}).get("align"))
        recorded = manifest["model"]
        if model.model is None and model.generator is None and recorded.get("model_arg"):
            model = dataclasses.replace(model, model=recorded["model_arg"])
        if model.class_label is None and isinstance(recorded.get("class"), int):
            model = dataclasses.replace(model, class_label=recorded["class"])  # the class it was inverted with
        dev = runtime.setup()
        G, _ = model.load()
        G = G.to(dev)
        check_model(manifest, G, input)
        folder = input
    else:
        G, _, source, settings, manifest = _prepare(
            input, out_dir, frames, framing, engine, model, runtime, batch_frames=batch_frames,
            warm_start=not no_warm_start, smooth=smooth, prior=prior, seed=seed, default_prior=EDIT_PRIOR)
        folder = out_dir
    num_ws = getattr(G, "num_ws", None)
    if layers is not None and num_ws is None:
        raise InputError(f"--layers selects rows of w+, and this {G.arch} generator has none; drop --layers")
    rows = parse_layers(layers, num_ws) if num_ws is not None else None
    notes: list[str] = []
    d = resolve_direction(direction, G, component=component, layers=rows, notes=notes)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    paste = framing.paste_settings(G.resolution)
    if not is_folder:
        summary = _run_inversion(G, source, settings, manifest, out_dir, smooth=smooth, paste=paste)
        _report(summary, out_dir, time.perf_counter() - t0)
    record = {"direction": direction, "direction_name": d.name, "sigma": d.sigma, "units": units,
              "layers": layers or "all"}
    result = edit_folder(G, folder, out_dir, d.step(units), ramp, layers=rows, paste=paste, name=name,
                         record=record, console=console)
    files = result["files"]
    extra = f" and {files['pasted']}" if "pasted" in files else ""
    how = f"{ramp[0]:g}" if ramp[0] == ramp[1] else f"{ramp[0]:g} → {ramp[1]:g}"
    console.print(f"wrote {files['video']}{extra} ({result['num_frames']} frames) and {files['codes']} to "
                  f"{escape(str(out_dir))}/ — {escape(d.name)} at strength {how} ({units}), "
                  f"{time.perf_counter() - t0:.1f} s")


__all__ = ["FrameOptions", "VideoFraming", "edit_video", "invert_video"]
