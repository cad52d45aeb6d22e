"""ReStyle's and HyperStyle's ``latents.npy`` (``--latent-format restyle``).

Both save every code of a run as one pickled dict, keyed by the image's file name:

* ReStyle (``yuval-alaluf/restyle-encoder``, ``scripts/inference_iterative.py``): ``all_latents[basename] =
  result_latents[i]`` — a *list* with one ``[num_ws, 512]`` array per refinement step (``run_on_batch`` appends
  ``latent[idx].cpu().numpy()`` each iteration) — then ``np.save(exp_dir/'latents.npy', all_latents)``;
* HyperStyle (``yuval-alaluf/hyperstyle``, ``scripts/inference.py``): ``all_latents[basename] =
  result_latents[i][0]``, one ``[num_ws, 512]`` array (its W+ code is fixed by the e4e encoder); read back by
  ``editing/styleclip/edit.py`` with ``np.load(..., allow_pickle=True).item()``.

Read: one code per key, named by the key's stem; a list (ReStyle's iterations) or a stacked ``[n_iters, num_ws,
512]`` array gives its *last* step. The pickle is read with :func:`ganinv.latentfiles.safe.load_pickled_npy`,
which builds NumPy arrays and plain containers only and refuses any other global by name — nothing in the file
runs (``np.load(allow_pickle=True)`` would run it).
Write: ``OUT/latents.npy``, ``np.save`` of ``{<stem><image suffix, else .png>: [num_ws, w_dim] float32}``
(HyperStyle's layout, which ReStyle's readers index the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles.base import FileCode, LatentBatch, as_array, clean_stem, w_code

FILENAME = "latents.npy"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def _last_step(value: Any, path: Path, what: str, G: Generator) -> tuple[np.ndarray, str]:
    """The array of one entry: the last of a list of steps, or of a stacked ``[n_iters, num_ws, D]`` array."""
    note = ""
    if isinstance(value, list | tuple):
        if not value:
            raise InputError(f"{path}: {what} is an empty list")
        if len(value) > 1:
            note = f"step {len(value)} of {len(value)}"
        value = value[-1]
    arr = as_array(value, path, what)
    wplus = G.latent_spaces.get("w+")
    if wplus is not None and arr.ndim == 3 and tuple(arr.shape[1:]) == wplus.shape and arr.shape[0] > 1:
        note = f"step {arr.shape[0]} of {arr.shape[0]}"
        arr = arr[-1]
    return arr, note


def read_dict(obj: Any, path: Path, G: Generator) -> list[FileCode]:
    """One code per key of a ReStyle/HyperStyle dict, checked against ``G`` (see the module notes)."""
    if not isinstance(obj, Mapping) or not obj:
        found = f"an empty {type(obj).__name__}" if not obj else f"a {type(obj).__name__}"
        raise InputError(f"{path} holds {found}; a pickled latents.npy (ReStyle/HyperStyle) holds "
                         "{image name: latent array}")
    out = []
    for key, value in obj.items():
        what = f"entry {str(key)!r}"
        arr, note = _last_step(value, path, what, G)
        code = w_code(arr, path, what, G)
        label = f"{path.name}[{str(key)!r}]" + (f" ({note})" if note else "")
        out.append(FileCode(clean_stem(str(key)), label, code))
    return out


def write(out_dir: Path, batch: LatentBatch) -> list[Path]:
    """``out_dir/latents.npy``: ``np.save`` of ``{name: [num_ws, w_dim] float32}``, atomically."""
    from ganinv.modelfile import atomic_write

    codes = batch.wplus("restyle").numpy()
    latents: dict[str, np.ndarray] = {}
    for i, (stem, source) in enumerate(zip(batch.stems, batch.sources, strict=True)):
        suffix = Path(source).suffix.lower()  # keys are image file names, as ReStyle's data loader gives them
        latents[f"{stem}{suffix if suffix in _IMAGE_SUFFIXES else '.png'}"] = np.ascontiguousarray(codes[i])

    def save(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, latents, allow_pickle=True)  # type: ignore[arg-type]  # a dict, pickled as ReStyle does

    path = out_dir / FILENAME
    atomic_write(path, save)
    return [path]
