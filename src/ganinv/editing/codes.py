"""Latent codes read from files, checked against the generator they are meant for.

Accepted files (what ``ganinv invert`` writes, NVIDIA's projector, InterFaceGAN's latent dumps):

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
    """Read one code for ``G`` from an ``.npz`` or ``.npy`` file (see the module notes); refuses a code of the
    wrong shape (another model's) with an :class:`InputError`."""
    from ganinv.io import load_latent_npz, load_npy

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such latent file; check the path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = load_npy(path)
        latent, space = code_from_array(arr, "w" if "w" in G.latent_spaces else "z", G, path)
        return LatentCode(latent, space)
    if suffix != ".npz":
        raise InputError(f"{path}: a latent file must be .npz (from `ganinv invert`) or .npy")
    arrays = load_latent_npz(path)
    key = "w" if "w" in arrays else ("z" if "z" in arrays else None)
    if key is None:
        raise InputError(f"{path} holds {', '.join(sorted(arrays))}, but a latent file needs a 'w' or 'z' array")
    latent, space = code_from_array(arrays[key], key, G, path)
    noise = None
    shapes = G.noise_shapes
    if shapes and all(f"noise_{i}" in arrays for i in range(len(shapes))):
        noise = []
        for i, want in enumerate(shapes):
            n = torch.from_numpy(np.ascontiguousarray(arrays[f"noise_{i}"], dtype=np.float32))
            if tuple(n.shape[1:]) != tuple(want[1:]) or n.shape[0] != 1:
                raise InputError(f"{path}: noise_{i} has shape {list(n.shape)}, expected {list(want)}")
            noise.append(n)
    return LatentCode(latent, space, noise)


def to_space(code: Tensor, src: str, dst: str, G: Generator) -> Tensor:
    """Convert codes ``[B, *shape]`` between spaces for editing: along z → w → w+ with the generator's
    mapping, and w+ → w by averaging the rows (exact for a broadcast W code; an approximation otherwise)."""
    if src == dst:
        return code
    if src == "w+" and dst == "w":
        return code.mean(dim=1)
    with torch.no_grad():
        return G.convert(code.to(G.device), src, dst)
