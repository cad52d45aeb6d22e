"""rosinality/stylegan2-pytorch's ``projector.py`` results (``--latent-format rosinality``).

The projector inverts the images given on its command line together and saves one file named after the first::

    result_file[input_name] = {"img": img_gen[i], "latent": latent_in[i], "noise": noise_single}
    torch.save(result_file, os.path.splitext(os.path.basename(args.files[0]))[0] + ".pt")

a dict ``{image path as given: {"img": [3, H, W] in [-1, 1], "latent": [512] (W) or [n_latent, 512] (W+, with
--w_plus), "noise": [[1, 1, 4, 4], [1, 1, 8, 8], [1, 1, 8, 8], …]}}`` — one noise map per synthesis layer, in
``g_ema.make_noise()`` order (4×4, then two per resolution), the same order as ganinv's StyleGAN2 layers.

Read: one code per entry, named by the image's stem; its noise maps are used when their number and sizes match
the model (otherwise the model's own noise, with a note). ``img`` is not needed. Loaded with
``torch.load(weights_only=True)``.
Write: ``OUT/<first stem>.pt`` with the projector's keys: the input paths, ``latent`` W+ ``[num_ws, w_dim]`` (a W
inversion gives ``[w_dim]``, the projector's layout without --w_plus), ``noise`` (the optimised maps, else the
generator's stored ones) and ``img`` (the reconstruction in the generator's native range).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ganinv.editing.codes import LatentCode
from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles.base import FileCode, LatentBatch, as_array, clean_stem, noise_maps, w_code

KEYS = ("img", "latent", "noise")


def looks_like(obj: Any) -> bool:
    """A projector result: a non-empty dict whose values are dicts holding ``latent``."""
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Mapping) and "latent" in v
                                                          for v in obj.values())


def read_dict(obj: Mapping[Any, Any], path: Path, G: Generator) -> list[FileCode]:
    """One code per entry of a projector result, checked against ``G`` (see the module notes)."""
    if not looks_like(obj):
        raise InputError(f"{path} is not a rosinality projector file: expected {{image path: {{'img', 'latent', "
                         "'noise'}}}}")
    out = []
    for key, entry in obj.items():
        what = f"entry {str(key)!r}"
        code = w_code(as_array(entry["latent"], path, f"{what}'s latent"), path, f"{what}'s latent", G)
        notes: list[str] = []
        noise = noise_maps(entry.get("noise"), path, f"{Path(str(key)).name}", G, notes)
        out.append(FileCode(clean_stem(str(key)), f"{path.name}[{str(key)!r}]",
                            LatentCode(code.latent, code.space, noise), notes))
    return out


def filename(batch: LatentBatch) -> str:
    """The projector's name for its result: the first input's stem + ``.pt``."""
    return f"{batch.stems[0]}.pt"


def write(out_dir: Path, batch: LatentBatch) -> list[Path]:
    """``out_dir/<first stem>.pt``: ``{source: {"img", "latent", "noise"}}``, atomically."""
    from ganinv.modelfile import atomic_write

    lat = batch.latent.float() if batch.space == "w" else batch.wplus("rosinality")
    lo, hi = batch.output_range
    result: dict[str, dict[str, Any]] = {}
    for i, source in enumerate(batch.sources):
        entry: dict[str, Any] = {"latent": lat[i].clone(), "noise": batch.maps(i)}
        if batch.images is not None:
            entry["img"] = (batch.images[i] * (hi - lo) + lo).clone()
        result[source if source not in result else f"{source}#{i}"] = entry
    path = out_dir / filename(batch)
    atomic_write(path, lambda tmp: torch.save(result, tmp))
    return [path]
