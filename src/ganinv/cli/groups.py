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

import typer

from ganinv.cli.common import (GeneratorOpt, ImageShapeOpt, LatentDimOpt, ModelOpt, OutputRangeOpt, WeightsOpt,
                               resolve_device, resolve_generator)
from ganinv.errors import InputError

if TYPE_CHECKING:
    import torch

    from ganinv.generators.base import Generator

DeviceOpt = Annotated[str, typer.Option(rich_help_panel="Compute", help="cpu, cuda, cuda:N or auto (the first usable GPU, else cpu).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(rich_help_panel="Compute", help="torch CPU threads (default: torch's).")]


class OptionGroup:
    """Base of option groups (see the module notes); subclasses are frozen dataclasses."""

    group: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class ModelChoice(OptionGroup):
    """Which generator a command uses: a bundled name or checkpoint (``--model``), or a user's own module
    (``--generator`` with ``--weights --latent-dim --image-shape --output-range``)."""

    model: ModelOpt = None
    generator: GeneratorOpt = None
    weights: WeightsOpt = None
    latent_dim: LatentDimOpt = None
    image_shape: ImageShapeOpt = None
    output_range: OutputRangeOpt = None

    def load(self) -> tuple[Generator, str]:
        """The frozen generator and its display name (:func:`ganinv.cli.common.resolve_generator`)."""
        return resolve_generator(self.model, self.generator, self.weights, self.latent_dim, self.image_shape,
                                 self.output_range)


@dataclasses.dataclass(frozen=True)
class Runtime(OptionGroup):
    """Where a command computes: ``--device`` and ``--threads``."""

    device: DeviceOpt = "auto"
    threads: ThreadsOpt = None

    def setup(self) -> torch.device:
        """Apply ``--threads`` (≥ 1) and resolve ``--device``; an unusable device is an :class:`InputError`."""
        apply_threads(self.threads)
        return resolve_device(self.device)


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


__all__ = ["DeviceOpt", "ModelChoice", "OptionGroup", "Runtime", "ThreadsOpt", "apply_threads", "expand_groups"]
