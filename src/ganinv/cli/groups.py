"""Option groups: a set of CLI options that several commands share, declared once.

A group is a frozen dataclass whose fields are typer-annotated options (``Annotated[type, typer.Option(...)]``) with
their defaults. A command takes the whole group as one parameter::

    def sample(..., model: ModelChoice = ModelChoice(), runtime: Runtime = Runtime(device="cpu")) -> None:
        dev = runtime.setup()
        G, name = model.load()

and :func:`expand_groups` (applied when the command is registered, see ``ganinv.cli.app``) shows typer the group's
fields as ordinary options — ``--model --generator --weights --latent-dim --image-shape --output-range`` and
``--device --threads`` — then builds the group from them for the call. The parameter's default instance sets the
command's defaults (``Runtime(device="cpu")`` for a command that should not pick a GPU by itself). Every option
therefore has one definition: its flag, help text and checks live here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Optional

from pathlib import Path

import typer

from ganinv.cli.common import (ENGINE_PANEL, CoarseOpt, CoarseStepsOpt, GeneratorOpt, ImageShapeOpt, LaggingOpt,
                               LaggingRoundsOpt, LatentDimOpt, LbfgsHistoryOpt, LbfgsPreconditionOpt, MaxMemoryOpt,
                               MinStepsOpt, ModelOpt, OptimizerOpt, OutputRangeOpt, PolishStepsOpt, RetriesOpt,
                               SaturationOpt, StopLossOpt, TolOpt, WarmupOpt, WeightsOpt, apply_max_memory,
                               check_optimizer_options, engine_options, resolve_device, resolve_generator)
from ganinv.errors import InputError

if TYPE_CHECKING:
    import torch

    from ganinv.cli.invert import PasteSettings
    from ganinv.generators.base import Generator

DeviceOpt = Annotated[str, typer.Option(
    rich_help_panel="Compute", help="cpu, cuda, cuda:N or auto (the first usable GPU, else cpu).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    rich_help_panel="Compute", help="torch CPU threads (default: torch's).")]
ClassOpt = Annotated[Optional[int], typer.Option(
    "--class", rich_help_panel="Model",
    help="Class label K (0…c_dim−1) of a class-conditional generator (NVIDIA's conditional stylegan2-ada / "
    "stylegan3 pickles): sample and invert that class. Without it, `sample` refuses a conditional model, `invert` "
    "infers each image's class, and `edit`/`interpolate`/`mix` use the class recorded in the .npz.")]


class OptionGroup:
    """Base of option groups (see the module notes); subclasses are frozen dataclasses."""

    group: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class ModelChoice(OptionGroup):
    """Which generator a command uses: a bundled name or checkpoint (``--model``), or a user's own module
    (``--generator`` with ``--weights --latent-dim --image-shape --output-range``), and for a class-conditional
    model the class (``--class``)."""

    model: ModelOpt = None
    generator: GeneratorOpt = None
    weights: WeightsOpt = None
    latent_dim: LatentDimOpt = None
    image_shape: ImageShapeOpt = None
    output_range: OutputRangeOpt = None
    class_label: ClassOpt = None

    def load(self, need_class: bool = False) -> tuple[Generator, str]:
        """The frozen generator and its display name (:func:`ganinv.cli.common.resolve_generator`).

        With ``--class K`` the generator is the conditional model with class K bound
        (:func:`ganinv.generators.conditional.with_class`: z maps with that class, the mean w is the class's);
        without it a conditional model is returned as it is (W / W+ codes render without a class), unless
        ``need_class``. Raises :class:`InputError` (one sentence, with the class count): ``--class`` for an
        unconditional model, a label out of range, or no ``--class`` for a conditional one when ``need_class``."""
        from ganinv.generators.conditional import check_class_option, with_class

        G, name = resolve_generator(self.model, self.generator, self.weights, self.latent_dim, self.image_shape,
                                    self.output_range)
        label = check_class_option(G, self.class_label, required=need_class)
        if label is not None:
            G = with_class(G, label)
            G.eval().requires_grad_(False)
        return G, name


@dataclasses.dataclass(frozen=True)
class Runtime(OptionGroup):
    """Where a command computes: ``--device`` and ``--threads``."""

    device: DeviceOpt = "auto"
    threads: ThreadsOpt = None

    def setup(self) -> torch.device:
        """Apply ``--threads`` (≥ 1) and resolve ``--device``; an unusable device is an :class:`InputError`."""
        apply_threads(self.threads)
        return resolve_device(self.device)


#: ``--align`` choices: no framing (the whole file, centre-cropped and resized), FFHQ face alignment (MTCNN; one
#: target per face), or the largest centred square.
ALIGN_MODES = ("none", "face", "center")
_PHOTO_PANEL = "Photo"
AlignOpt = Annotated[str, typer.Option(
    "--align", rich_help_panel=_PHOTO_PANEL,
    help="Frame each photo first: none (the whole image, centre-cropped), face (FFHQ alignment of every detected "
    "face, MTCNN; a photo with several faces gives <stem>_face0, <stem>_face1, …) or center (the largest centred "
    "square). The framing is recorded in the .npz and summary.json for --paste-back.")]
PasteBackOpt = Annotated[bool, typer.Option(
    "--paste-back", rich_help_panel=_PHOTO_PANEL,
    help="Also write the result pasted back into the original photo at its own size (needs --align face/center, "
    "or codes whose .npz records an alignment).")]
PasteMaskOpt = Annotated[Optional[Path], typer.Option(
    "--paste-mask", rich_help_panel=_PHOTO_PANEL,
    help="Grey PNG in the aligned frame (the model's resolution; white = paste, black = keep the photo) blending "
    "each pasted face.")]
ColorMatchOpt = Annotated[bool, typer.Option(
    "--color-match", rich_help_panel=_PHOTO_PANEL,
    help="Match the pasted image's per-channel mean and spread to the photo's under it.")]


@dataclasses.dataclass(frozen=True)
class Framing(OptionGroup):
    """How photos are framed before inversion and whether results go back into them: ``--align``,
    ``--paste-back``, ``--paste-mask``, ``--color-match``."""

    align: AlignOpt = "none"
    paste_back: PasteBackOpt = False
    paste_mask: PasteMaskOpt = None
    color_match: ColorMatchOpt = False

    def check(self, recorded: bool = False) -> None:
        """``--align`` is known; ``--paste-mask``/``--color-match`` need ``--paste-back``, which needs a framing:
        ``--align`` other than none, or (``recorded``: the command also reads codes) alignments recorded in the
        input codes. Raises :class:`InputError`."""
        if self.align not in ALIGN_MODES:
            raise InputError(f"--align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if not self.paste_back:
            extra = [flag for flag, given in (("--paste-mask", self.paste_mask is not None),
                                              ("--color-match", self.color_match)) if given]
            if extra:
                raise InputError(f"{' and '.join(extra)} only apply with --paste-back")
            return
        if self.align == "none" and not recorded:
            raise InputError("--paste-back needs to know where each image came from in its photo: add --align face "
                             "(faces) or --align center (largest centred square)")

    def paste_settings(self, resolution: int) -> PasteSettings | None:
        """What pasting back needs (the mask read at ``resolution``), or None without ``--paste-back``."""
        return paste_settings(self, resolution)


def paste_settings(framing: Any, resolution: int) -> PasteSettings | None:
    """``--paste-back --paste-mask --color-match`` of a framing group (photos or video frames) → what pasting back
    needs, the mask read at ``resolution``; None without ``--paste-back``."""
    if not framing.paste_back:
        return None
    from ganinv.cli.invert import PasteSettings, load_paste_mask

    return PasteSettings(load_paste_mask(framing.paste_mask, resolution), framing.color_match,
                         str(framing.paste_mask) if framing.paste_mask else None)


SpaceOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="Latent space: z, w or w+ (default: the generator's, w+ for StyleGAN2).")]
EngineStepsOpt = Annotated[Optional[int], typer.Option(
    rich_help_panel=ENGINE_PANEL, help="Optimisation steps (default: the engine's).")]
LossOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="Loss spec, e.g. mse=1,ssim=0.5 (mse, l1, ssim, ms_ssim, lpips, lpips_alex, dfeat, id; lpips fetches its "
    "backbone once, unless GANINV_OFFLINE=1; id, pSp's face identity loss, needs ArcFace weights: GANINV_ARCFACE=PATH "
    "or invert's --id-weights).")]
RestartsOpt = Annotated[Optional[int], typer.Option(
    rich_help_panel=ENGINE_PANEL, help="Optimisations per image; the best is kept.")]
InitOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="Start from: auto (mean in W/W+, best-of-64 in z), mean, random or best-of-N.")]
NoiseOpt = Annotated[Optional[str], typer.Option(
    rich_help_panel=ENGINE_PANEL,
    help="StyleGAN2 noise maps: fixed, joint or after (default: the engine's).")]
LrOpt = Annotated[Optional[float], typer.Option(
    rich_help_panel=ENGINE_PANEL, help="Peak learning rate (Adam).")]


@dataclasses.dataclass(frozen=True)
class Engine(OptionGroup):
    """The optimisation engine's options that every inverting command passes through: the space, schedule, loss,
    starts, optimiser, stopping, coarse-to-fine stages and memory budget."""

    space: SpaceOpt = None
    steps: EngineStepsOpt = None
    loss: LossOpt = None
    restarts: RestartsOpt = None
    init: InitOpt = None
    noise: NoiseOpt = None
    optimizer: OptimizerOpt = None
    lbfgs_precondition: LbfgsPreconditionOpt = None
    lbfgs_history: LbfgsHistoryOpt = None
    lr: LrOpt = None
    retries: RetriesOpt = None
    lagging: LaggingOpt = None
    lagging_rounds: LaggingRoundsOpt = None
    stop_loss: StopLossOpt = None
    tol: TolOpt = None
    min_steps: MinStepsOpt = None
    polish_steps: PolishStepsOpt = None
    warmup: WarmupOpt = None
    coarse: CoarseOpt = None
    coarse_steps: CoarseStepsOpt = None
    saturation: SaturationOpt = None
    max_memory: MaxMemoryOpt = None

    def options(self, method: str) -> dict[str, object]:
        """The given options as the engine's keyword arguments (``None`` left out), checked for ``method``: stopping
        values in range, no option the method's optimiser ignores (the loss spec: ``ganinv.cli.invert.check_loss``).
        Raises :class:`InputError`."""
        check_optimizer_options(self.optimizer, method, lr=self.lr, lbfgs_precondition=self.lbfgs_precondition,
                                lbfgs_history=self.lbfgs_history, warmup=self.warmup)
        given = {"space": self.space, "steps": self.steps, "loss": self.loss, "restarts": self.restarts,
                 "init": self.init, "noise": self.noise, "optimizer": self.optimizer,
                 "lbfgs_precondition": self.lbfgs_precondition, "lbfgs_history": self.lbfgs_history,
                 "lr": self.lr, "saturation": self.saturation, "warmup": self.warmup,
                 **engine_options(retries=self.retries, stop_loss=self.stop_loss, tol=self.tol,
                                  min_steps=self.min_steps, polish_steps=self.polish_steps, coarse=self.coarse,
                                  coarse_steps=self.coarse_steps, lagging=self.lagging,
                                  lagging_rounds=self.lagging_rounds)}
        return {k: v for k, v in given.items() if v is not None}

    def apply_memory(self) -> int | None:
        """Set the process's memory budget from ``--max-memory`` (or ``GANINV_MAX_MEMORY``); the budget in bytes,
        None when automatic."""
        return apply_max_memory(self.max_memory)


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` for a given ``--threads`` (≥ 1, else an :class:`InputError`)."""
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads must be ≥ 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, OptionGroup)


def _fields(cls: type) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


def expand_groups(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with each :class:`OptionGroup` parameter shown to typer as the group's own options (see the
    module notes). A command without groups is returned as it is. Two groups, or a group and a parameter, that
    declare the same name are a programming error (raised at registration)."""
    sig = inspect.signature(command, eval_str=True)
    if not any(_is_group(p.annotation) for p in sig.parameters.values()):
        return command
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    taken = {name for name, p in sig.parameters.items() if not _is_group(p.annotation)}
    for name, p in sig.parameters.items():
        if not _is_group(p.annotation):
            params.append(p)
            continue
        cls = p.annotation
        default = p.default if p.default is not inspect.Parameter.empty else cls()
        names = []
        for field_name, hint in _fields(cls):
            if field_name in taken:
                raise TypeError(f"{command.__name__}: option {field_name!r} of {cls.__name__} is declared twice")
            taken.add(field_name)
            names.append(field_name)
            params.append(inspect.Parameter(field_name, inspect.Parameter.KEYWORD_ONLY, annotation=hint,
                                            default=getattr(default, field_name)))
        groups[name] = (cls, names)
    # typer reads options in signature order; keyword-only is fine for it, but positional parameters must come first
    params.sort(key=lambda q: q.kind)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for group_name, (cls, names) in groups.items():
            kwargs[group_name] = cls(**{n: kwargs.pop(n) for n in names if n in kwargs})
        return command(*args, **kwargs)

    del wrapper.__wrapped__  # typer must read the expanded signature, not the command's
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {q.name: q.annotation for q in params}
    return wrapper


__all__ = ["ALIGN_MODES", "AlignOpt", "ClassOpt", "ColorMatchOpt", "DeviceOpt", "Engine", "Framing", "ModelChoice", "OptionGroup",
           "PasteBackOpt", "PasteMaskOpt", "Runtime", "ThreadsOpt", "apply_threads", "expand_groups"]
