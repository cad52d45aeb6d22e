"""What every output format of ``ganinv convert`` implements, and the model being converted."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from ganinv.generators.base import Generator

__all__ = ["SourceModel", "Target", "describe_generator"]

_ARCH_NAMES = {"stylegan2": "StyleGAN2", "dcgan": "DCGAN"}


def describe_generator(G: Generator) -> str:
    """``"256 px StyleGAN2"``: resolution and architecture, for messages."""
    arch = str(getattr(G, "arch", type(G).__name__))
    return f"{G.resolution} px {_ARCH_NAMES.get(arch, arch)}"


@dataclass
class SourceModel:
    """A model read from ``IN`` (and ``--deltas``), ready to be written in another format.

    Attributes:
        G: the generator (eval mode, frozen), on the device the conversion verifies on.
        D: its discriminator (input ``[B, C, R, R]`` in G's native range, output ``[B]`` logits), or None.
        spec: ``IN`` as given (a path or a bundled model name).
        path: the file or folder ``IN`` names on disk (a bundled model's folder).
        format: ``"NVIDIA .pkl"``, ``"rosinality .pt"``, ``"ganinv folder"`` or ``"bundled model"``.
        notices: what the user should know about the reading (estimated ``w_avg``, an ignored clamp, …).
        d_note: why there is no discriminator (None when there is one, or none was asked for).
        meta: the source's ``meta`` (ganinv folders), carried into a ganinv folder.
        deltas: the PTI delta file applied to the base model, if any.
    """

    G: Generator
    D: nn.Module | None
    spec: str
    path: Path
    format: str
    notices: list[str] = field(default_factory=list)
    d_note: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    deltas: Path | None = None


class Target(ABC):
    """One output format. Adding a format = a module with a subclass, registered in :mod:`ganinv.convert`.

    Attributes:
        name: the ``--to`` value.
        label: how messages name the format (``"rosinality .pt"``).
        is_folder: whether the output is a folder (else one file).
        suffixes: ``OUT`` suffixes (lower case) that choose this format when ``--to`` is not given.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    is_folder: ClassVar[bool]
    suffixes: ClassVar[tuple[str, ...]]

    @abstractmethod
    def refusal(self, G: Generator) -> str | None:
        """Why ``G`` cannot be written in this format (a sentence), or None when it can."""

    def discriminator_refusal(self, D: nn.Module) -> str | None:
        """Why ``D`` cannot be written beside the generator (then it is left out with a notice), or None."""
        return None

    @abstractmethod
    def write(self, source: SourceModel, path: Path, *, name: str, notices: list[str]) -> None:
        """Write ``source.G`` (and ``source.D`` when not None) to ``path``, a fresh temporary file or an empty
        temporary folder next to the final ``OUT`` (whose file name is ``name``); append anything the user should
        know to ``notices``."""

    @abstractmethod
    def load_discriminator(self, path: Path) -> nn.Module | None:
        """The discriminator stored in the written ``path`` (None when it holds none), for verification."""
