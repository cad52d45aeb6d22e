"""encoder4editing's ``latents.pt`` (``--latent-format e4e``).

e4e's ``scripts/inference.py`` encodes a folder of images and saves every code in one file::

    latent_codes = get_all_latents(net, data_loader, args.n_sample)   # torch.cat of the batches
    torch.save(latent_codes, os.path.join(args.save_dir, 'latents.pt'))

a float32 tensor ``[N, num_ws, 512]`` (``[N, 18, 512]`` for FFHQ 1024 px) of W+ codes, in the data loader's
order (its ``inversions/`` are numbered ``00001.jpg`` …). The same script reloads the file when it exists, so a
``latents.pt`` written here is rendered by e4e as its own. ReStyle's ``inference_iterative.py`` and StyleCLIP's
mapper take the same layout as their ``latents_test_path``.

Read: ``[N, num_ws, w_dim]`` → N codes named ``<file>_<i>`` (one code ``[1, num_ws, w_dim]`` keeps the file's
stem), also ``[num_ws, w_dim]`` / ``[w_dim]`` / ``[N, w_dim]`` (W). Loaded with ``torch.load(weights_only=True)``.
Write: ``OUT/latents.pt``, the batch as one ``[N, num_ws, w_dim]`` float32 tensor (W codes repeated on every row).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles.base import FileCode, LatentBatch, as_array, split_codes, w_code

FILENAME = "latents.pt"


def read_tensor(obj: Tensor, path: Path, G: Generator) -> list[FileCode]:
    """The codes of a tensor ``[N, num_ws, w_dim]`` (or one code) saved with ``torch.save``, checked against ``G``."""
    if not isinstance(obj, Tensor):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a tensor of codes")
    arr = as_array(obj, path, "the tensor")
    rows = split_codes(arr, path, "its tensor", G)
    if rows is None or len(rows) == 1:
        return [FileCode(path.stem, path.name, w_code(arr, path, "its tensor", G))]
    return [FileCode(f"{path.stem}_{i}", f"{path.name}[{i}]", w_code(row, path, f"code {i} of its tensor", G))
            for i, row in enumerate(rows)]


def write(out_dir: Path, batch: LatentBatch) -> list[Path]:
    """``out_dir/latents.pt``: the batch as one ``[N, num_ws, w_dim]`` float32 tensor, atomically."""
    from ganinv.modelfile import atomic_write

    codes = batch.wplus("e4e").contiguous().clone()
    path = out_dir / FILENAME
    atomic_write(path, lambda tmp: torch.save(codes, tmp))
    return [path]
