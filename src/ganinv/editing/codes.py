"""Latent codes read from files, checked against the generator they are meant for.

The readers live in :mod:`ganinv.latentfiles` (one module per format: ganinv/NVIDIA, e4e, ReStyle/HyperStyle,
rosinality, PTI); :func:`read_latent_file` is their one-code entry point. ganinv's own files
(what ``ganinv invert`` writes, NVIDIA's projector, InterFaceGAN's latent dumps):

* ``.npz`` with ``w`` ``[1, num_ws, w_dim]`` (W+; a W code broadcast to every row is the same thing),
  ``[1, w_dim]`` or ``[w_dim]`` (W), or ``z`` ``[1, z_dim]`` / ``[z_dim]``; optional per-layer noise maps
  ``noise_<i>`` ``[1, 1, H_i, W_i]`` (written when inversion optimised them);
* ``.npy`` holding one code: ``[num_ws, w_dim]`` / ``[1, num_ws, w_dim]`` (W+) or ``[D]`` / ``[1, D]``
  (W for generators that have a W space, else z).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator


@dataclass
class LatentCode:
    """One code: ``latent`` ``[1, *shape]`` in ``space``, and its noise maps (``[1, 1, H_i, W_i]`` each) or None."""

    latent: Tensor
    space: str
    noise: list[Tensor] | None = None


def edit_space(G: Generator) -> str:
    """The space directions live in: ``w`` where the generator has one (StyleGAN), else ``z``."""
    return "w" if "w" in G.latent_spaces else "z"


def _shape_error(path: Path, key: str, shape: tuple[int, ...], G: Generator) -> InputError:
    want = " or ".join(f"[1, {', '.join(map(str, s.shape))}] ({name})" for name, s in G.latent_spaces.items())
    return InputError(f"{path}: its {key!r} code has shape {list(shape)}, but this {G.arch} generator takes {want}; "
                      "was it inverted with another model?")


def code_from_array(arr: np.ndarray, key: str, G: Generator, path: Path) -> tuple[Tensor, str]:
    """Interpret one array as a code of ``G``: returns ``([1, *shape] float32 tensor, space)``."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{path}: {key!r} is not numeric (dtype {arr.dtype})")
    spaces = G.latent_spaces
    shape = tuple(arr.shape)
    squeezed = shape[1:] if len(shape) >= 1 and shape[0] == 1 else shape
    if key == "z":
        candidates = ["z"]
    elif key == "w":
        candidates = ["w+", "w"]
    else:
        candidates = list(spaces)
    for name in candidates:
        if name in spaces and squeezed == spaces[name].shape:
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).reshape(1, *spaces[name].shape)
            if not torch.isfinite(t).all():
                raise InputError(f"{path}: the code contains NaN or Inf")
            return t, name
    raise _shape_error(path, key, shape, G)


def read_latent_file(path: str | Path, G: Generator) -> LatentCode:
    """Read the one code of a latent file for ``G`` — any format :func:`ganinv.latentfiles.read_latents` knows
    (ganinv/NVIDIA ``.npz``, plain ``.npy``, ReStyle/HyperStyle ``latents.npy``, e4e ``latents.pt``, PTI ``0.pt``,
    rosinality projector ``.pt``); refuses a code of the wrong shape (another model's) and a file holding several
    codes with an :class:`InputError`."""
    from ganinv.latentfiles import read_latent

    return read_latent(path, G).code


def to_space(code: Tensor, src: str, dst: str, G: Generator) -> Tensor:
    """Convert codes ``[B, *shape]`` between spaces for editing: along z → w → w+ with the generator's
    mapping, and w+ → w by averaging the rows (exact for a broadcast W code; an approximation otherwise)."""
    if src == dst:
        return code
    if src == "w+" and dst == "w":
        return code.mean(dim=1)
    with torch.no_grad():
        return G.convert(code.to(G.device), src, dst)
