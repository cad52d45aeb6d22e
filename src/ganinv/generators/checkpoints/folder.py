"""ganinv's own format: a model folder (``config.json`` + ``model.safetensors``), or a ``.safetensors`` file
with a sibling ``config.json`` (see :mod:`ganinv.modelfile`)."""

from __future__ import annotations

from pathlib import Path

from ganinv.errors import CheckpointError
from ganinv.generators.base import Generator
from ganinv.generators.checkpoints.common import _as_generator
from ganinv.modelfile import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, read_config

#: The format's name in :func:`ganinv.generators.checkpoints.load.formats`.
NAME: str = "ganinv folder"
#: What :func:`~ganinv.generators.checkpoints.sniff.sniff_format` says of the paths this format reads.
SNIFFED_AS: tuple[str, ...] = ("directory", "safetensors")

#: The weights file of a model folder's discriminator (``ganinv convert`` / training write it beside the generator).
_DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


def _missing_config_error(folder: Path) -> CheckpointError:
    """The error for a folder that is not a ganinv model folder (it has no ``config.json``)."""
    return CheckpointError(f"{folder} is a folder without {CONFIG_NAME}; a ganinv model folder holds "
                           f"{CONFIG_NAME} and {WEIGHTS_NAME}")


def _load_folder(path: Path) -> Generator:
    """The generator of the ganinv model folder ``path``."""
    if not (path / CONFIG_NAME).is_file():
        raise _missing_config_error(path)
    return _as_generator(load_pretrained(path), str(path))


def _load_safetensors_with_config(path: Path) -> Generator:
    """The generator a ``.safetensors`` file holds, built from the ``config.json`` beside it."""
    folder = path.parent
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{path} is a safetensors file without a {CONFIG_NAME} beside it; ganinv needs the "
                              f"config to know the architecture (save models with ganinv's save_pretrained)")
    if path.name == _DISCRIMINATOR_WEIGHTS and "discriminator" in read_config(folder):
        raise CheckpointError(f"{path} holds the discriminator of the model in {folder}, not a generator; "
                              f"give the folder (or its {WEIGHTS_NAME}) instead")
    module = load_pretrained(folder, weights_name=path.name)
    return _as_generator(module, str(path))


def load(path: Path, notices: list[str]) -> Generator:
    """The format's loader for :func:`~ganinv.generators.checkpoints.load.load_generator`: a model folder or
    a ``.safetensors`` file with its config (ganinv's files carry no notices)."""
    return _load_folder(path) if path.is_dir() else _load_safetensors_with_config(path)
