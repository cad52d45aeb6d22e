"""``load_generator``: a bundled name, or a path whose sniffed format picks one of the registered formats.

A format is anything with a ``NAME``, the :func:`~ganinv.generators.checkpoints.sniff.sniff_format`
results it reads (``SNIFFED_AS``) and ``load(path, notices) -> Generator`` — normally a module of this
package (:mod:`.folder`, :mod:`.rosinality`, :mod:`.nvidia`); adding a format is adding such a module
and one :func:`register_format` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ganinv.errors import CheckpointError, InputError, UnknownModelError
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints import folder, nvidia, rosinality
from ganinv.generators.checkpoints.common import _as_generator, _short
from ganinv.generators.checkpoints.sniff import sniff_format


class CheckpointFormat(Protocol):
    """A checkpoint format :func:`load_generator` can read (a module or any object with these members)."""

    NAME: str
    SNIFFED_AS: tuple[str, ...]

    def load(self, path: Path, notices: list[str]) -> Generator:
        """The generator stored at ``path`` (CPU), appending what the user should know to ``notices``."""
        ...


#: sniffed kind → the format that reads it.
_FORMATS: dict[str, CheckpointFormat] = {}


def register_format(fmt: CheckpointFormat) -> None:
    """Make :func:`load_generator` read the paths :func:`sniff_format` classifies as one of ``fmt.SNIFFED_AS``.

    Raises:
        ValueError: another format (by ``NAME``) already reads one of those kinds.
    """
    for kind in fmt.SNIFFED_AS:
        taken = _FORMATS.get(kind)
        if taken is not None and taken.NAME != fmt.NAME:
            raise ValueError(f"the {taken.NAME!r} format already reads {kind!r} files")
    for kind in fmt.SNIFFED_AS:
        _FORMATS[kind] = fmt


def formats() -> dict[str, CheckpointFormat]:
    """The registered formats by the sniffed kind they read (a copy)."""
    return dict(_FORMATS)


for _module in (folder, rosinality, nvidia):
    register_format(_module)


def _bundled_names() -> list[str]:
    """The bundled model names (:func:`ganinv.zoo.available`)."""
    from ganinv import zoo

    return zoo.available()


def load_generator(spec: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, list[str]]:
    """Load a generator from a bundled name or a file/folder, whatever its format.

    Resolution order: a bundled model name (:func:`ganinv.zoo.available`; write ``./name`` to
    mean a local path of the same name), then a path: a ganinv model folder, a
    ``.safetensors`` file with a sibling ``config.json``, a ``torch.save`` file
    (rosinality / pSp layout, :func:`load_rosinality`) or a plain pickle (NVIDIA,
    :func:`load_nvidia_pkl`). The format is decided by the file's bytes, not its suffix
    (:func:`sniff_format`, then the format registered for that kind: :func:`register_format`).

    Returns:
        ``(G, notices)``: the generator on ``device`` in eval mode with gradients disabled,
        and the notices a user should see (possibly empty).

    Raises:
        UnknownModelError: ``spec`` is neither a bundled name nor an existing path (lists bundled models).
        CheckpointError: the file is corrupt, unsafe or not a generator.
        InputError: ``device`` is not usable.
    """
    notices: list[str] = []
    spec_str = str(spec)
    names = _bundled_names()
    if isinstance(spec, str) and spec in names:
        from ganinv import zoo

        G = _as_generator(zoo.load(spec), f"bundled model {spec!r}")
    else:
        path = Path(spec_str).expanduser()
        kind = sniff_format(path)
        fmt = _FORMATS.get(kind)
        if kind == "missing":
            raise UnknownModelError(f"no bundled model or file named {spec_str!r}; bundled models: "
                                    f"{', '.join(names) or '(none)'}; or give a path to a ganinv model folder, "
                                    f"a rosinality .pt or an NVIDIA .pkl")
        if fmt is not None:
            G = fmt.load(path, notices)
        elif kind == "empty":
            raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
        else:
            raise CheckpointError(f"{path} is not a checkpoint ganinv recognises (expected a ganinv model folder, "
                                  f"a .safetensors file with config.json, a PyTorch .pt or an NVIDIA .pkl)")
    try:
        G = G.to(device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise InputError(f"cannot move the generator to device {str(device)!r}: {_short(exc)}") from None
    G.eval().requires_grad_(False)
    return G, notices
