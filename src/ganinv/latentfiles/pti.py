"""PTI's pivot files, ``<image>/0.pt`` (``--latent-format pti``).

PTI (Roich et al., ``danielroich/PTI``) inverts each image to a pivot and saves it per image
(``scripts/latent_creators/base_latent_creator.py`` and ``training/coaches/base_coach.py``)::

    embedding_dir = f'{w_path_dir}/{paths_config.pti_results_keyword}/{image_name}'   # embeddings/<run>/PTI/<image>
    torch.save(w_pivot, f'{embedding_dir}/0.pt')

``w_pivot`` is ``[1, num_ws, 512]``: the W projector returns ``w_opt.repeat([1, 18, 1])`` and the e4e pivot is
W+ already. ``load_inversions`` reads it back with ``torch.load(...)`` when ``use_last_w_pivots`` is set.

Read: a ``[1, num_ws, w_dim]`` (or ``[num_ws, w_dim]`` / ``[1, w_dim]``) tensor; a file named ``<digits>.pt`` is
named by its folder (``…/PTI/face/0.pt`` → ``face``). Loaded with ``torch.load(weights_only=True)``. PTI's tuned
generators (``model_<run>_<image>.pt``, a whole pickled module) are not latent files and are not read.
Write: ``OUT/<stem>/0.pt`` per image, ``[1, num_ws, w_dim]`` float32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles.base import FileCode, LatentBatch, as_array, clean_stem, w_code

FILENAME = "0.pt"


def is_pivot_path(path: Path) -> bool:
    """PTI names its pivots ``<image>/<digits>.pt``."""
    return path.stem.isdigit() and path.suffix.lower() == ".pt" and bool(path.parent.name)


def read_tensor(obj: Tensor, path: Path, G: Generator) -> list[FileCode]:
    """The pivot in ``path`` (a tensor ``[1, num_ws, w_dim]``), named by its folder, checked against ``G``."""
    if not isinstance(obj, Tensor):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a pivot tensor")
    name = clean_stem(path.parent.name) if is_pivot_path(path) else path.stem
    arr = as_array(obj, path, "the pivot")
    return [FileCode(name, f"{path.parent.name}/{path.name}", w_code(arr, path, "the pivot", G))]


def write(out_dir: Path, batch: LatentBatch) -> list[Path]:
    """``out_dir/<stem>/0.pt`` per code: ``[1, num_ws, w_dim]`` float32, atomically."""
    from ganinv.modelfile import atomic_write

    codes = batch.wplus("pti")
    written = []
    for i, stem in enumerate(batch.stems):
        path = out_dir / stem / FILENAME
        pivot = codes[i:i + 1].contiguous().clone()
        atomic_write(path, lambda tmp, t=pivot: torch.save(t, tmp))
        written.append(path)
    return written
