"""Fuzz targets: every loader ganinv points at a file from a stranger, with the seed file it starts from.

Shared by ``tests/test_fuzz_loaders.py`` (hypothesis), ``scripts/fuzz_loaders.py`` (atheris or a plain
mutation loop) and ``scripts/reliability_report.py``. A target writes the fuzzed bytes where its loader looks
(a file with the right suffix, or one file inside a copy of a model folder) and calls the loaders; the
contract is that they return or raise a :class:`ganinv.errors.GaninvError`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _generator(path: Path, G: Any) -> None:
    from ganinv.generators.checkpoints import load_generator

    load_generator(str(path))


def _inspect(path: Path, G: Any) -> None:
    from ganinv.generators.checkpoints import inspect_checkpoint

    inspect_checkpoint(path)


def _sniff(path: Path, G: Any) -> None:
    from ganinv.generators.checkpoints import sniff_format

    sniff_format(path)


def _rosinality(path: Path, G: Any) -> None:
    from ganinv.generators.checkpoints import load_rosinality

    load_rosinality(path, notices=[])


def _nvidia(path: Path, G: Any) -> None:
    from ganinv.generators.checkpoints import load_nvidia_pkl

    load_nvidia_pkl(path, notices=[])


def _pretrained(path: Path, G: Any) -> None:
    from ganinv.modelfile import load_pretrained

    load_pretrained(path)


def _image(path: Path, G: Any) -> None:
    from ganinv.io import load_target

    load_target(path, 1, 8)
    load_target(path, 3, 8)


def _npz(path: Path, G: Any) -> None:
    from ganinv.editing.codes import read_latent_file
    from ganinv.io import load_latent_npz

    load_latent_npz(path)
    read_latent_file(path, G)


def _npy(path: Path, G: Any) -> None:
    from ganinv.editing.codes import read_latent_file
    from ganinv.io import load_npy

    load_npy(path)
    read_latent_file(path, G)


def _observation(path: Path, G: Any) -> None:
    from ganinv.cli.restore import read_observation_file

    read_observation_file(path)


def _mask_and_kernel(path: Path, G: Any) -> None:
    from ganinv.physics import make_task

    make_task("inpaint", (1, 8, 8), mask=str(path))
    make_task("deblur", (1, 8, 8), kernel=str(path))


@dataclass(frozen=True)
class Target:
    """``seed``: key of :func:`hardening_payloads.seed_files`; ``inside``: the file of a model folder that is
    fuzzed (``None``: the seed file itself); ``suffix`` of the written file; the loaders to call."""

    seed: str
    loaders: tuple[Callable[[Path, Any], None], ...]
    suffix: str = ""
    inside: str | None = None

    def seed_bytes(self, seeds: dict[str, Path]) -> bytes:
        return (seeds[self.seed] / self.inside).read_bytes() if self.inside else seeds[self.seed].read_bytes()

    def prepare(self, seeds: dict[str, Path], data: bytes | None, where: Path) -> Path:
        """Write ``data`` (``None``: the seed as it is) where the loaders will read it; returns the path to load."""
        if self.inside is not None or self.seed == "folder":
            shutil.rmtree(where, ignore_errors=True)
            shutil.copytree(seeds["folder"], where)
            if self.inside is not None and data is not None:
                (where / self.inside).write_bytes(data)
            return where
        path = where.with_suffix(self.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(seeds[self.seed].read_bytes() if data is None else data)
        return path


TARGETS: dict[str, Target] = {
    "rosinality-pt": Target("pt", (_sniff, _generator, _rosinality, _inspect), ".pt"),
    "legacy-pt": Target("pt-legacy", (_generator, _rosinality, _inspect), ".pt"),
    "nvidia-pkl": Target("pkl", (_sniff, _generator, _nvidia, _inspect), ".pkl"),
    "safetensors": Target("folder", (_generator, _pretrained, _inspect), inside="model.safetensors"),
    "config-json": Target("folder", (_generator, _pretrained, _inspect), inside="config.json"),
    "png": Target("png", (_image, _mask_and_kernel), ".png"),
    "jpeg": Target("jpeg", (_image,), ".jpg"),
    "gif": Target("gif", (_image,), ".gif"),
    "npz": Target("npz", (_npz,), ".npz"),
    "npy": Target("npy", (_npy,), ".npy"),
    "observation-npz": Target("observation", (_observation,), ".npz"),
    "mask-npy": Target("mask", (_mask_and_kernel, _observation), ".npy"),
}
# the whole model folder, unchanged bytes (the structured config test edits its config.json itself)
FOLDER_TARGETS: dict[str, Target] = {
    "folder": Target("folder", (_generator, _pretrained)),
    "folder-inspect": Target("folder", (_inspect,)),
}


def run_target(name: str, path: Path, G: Any) -> None:
    """Call every loader of target ``name`` on ``path`` (``G``: the generator latents are read for). A
    :class:`~ganinv.errors.GaninvError` lets the next loader try too and is raised at the end; any other
    exception is raised at once."""
    from ganinv.errors import GaninvError

    target = TARGETS.get(name) or FOLDER_TARGETS[name]
    first: GaninvError | None = None
    for loader in target.loaders:
        try:
            loader(path, G)
        except GaninvError as exc:
            first = first or exc
    if first is not None:
        raise first
