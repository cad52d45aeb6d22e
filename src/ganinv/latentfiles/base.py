"""What every latent-file format module shares: the codes a file yields, the batch a writer writes, and the
shape checks against the generator."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.editing.codes import LatentCode
from ganinv.errors import InputError
from ganinv.generators.base import Generator


@dataclass
class FileCode:
    """One code read from a latent file.

    Attributes:
        name: the stem to name its outputs by (``<file>``, ``<file>_<i>``, an image name from the file).
        label: where in the file it came from, for people (``latents.pt[3]``, ``latents.npy['001.jpg']``).
        code: the code, ``latent`` ``[1, *shape]`` in ``space``, with noise maps ``[1, 1, H_i, W_i]`` or None.
        notes: sentences about how it was read (e.g. noise maps left out), for the user.
    """

    name: str
    label: str
    code: LatentCode
    notes: list[str] = field(default_factory=list)


@dataclass
class LatentBatch:
    """Codes to write in a foreign format.

    Attributes:
        stems: one unique output stem per code.
        sources: the input each code came from (image paths as given; keys of dict formats).
        latent: ``[B, *shape]`` in ``space``.
        space: ``"w"`` or ``"w+"`` (the field's formats hold StyleGAN W/W+ codes; ``z`` is refused).
        num_ws: rows of W+ of the generator.
        noise: per-layer noise maps ``[B, 1, H_i, W_i]`` when they were optimised, else None.
        stored_noise: the generator's constant maps ``[1, 1, H_i, W_i]`` (what rendering used when ``noise`` is
            None; rosinality's projector always stores maps).
        images: reconstructions ``[B, C, H, W]`` in [0, 1], or None.
        output_range: the generator's native output range (rosinality stores ``img`` in it, e.g. [-1, 1]).
    """

    stems: list[str]
    sources: list[str]
    latent: Tensor
    space: str
    num_ws: int | None
    noise: list[Tensor] | None = None
    stored_noise: list[Tensor] | None = None
    images: Tensor | None = None
    output_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.stems) != self.latent.shape[0] or len(self.sources) != self.latent.shape[0]:
            raise ValueError(f"{len(self.stems)} stems and {len(self.sources)} sources for "
                             f"{self.latent.shape[0]} codes")

    @classmethod
    def from_generator(cls, G: Generator, stems: list[str], sources: list[str], latent: Tensor, space: str,
                       noise: list[Tensor] | None = None, images: Tensor | None = None) -> LatentBatch:
        """A batch for codes of ``G`` (its ``num_ws``, stored noise and output range filled in)."""
        stored = G.stored_noise() if hasattr(G, "stored_noise") else None
        return cls(list(stems), list(sources), latent.detach().cpu().float(), space, getattr(G, "num_ws", None),
                   [n.detach().cpu().float() for n in noise] if noise is not None else None,
                   [n.detach().cpu().float() for n in stored] if stored is not None else None,
                   images.detach().cpu().float() if images is not None else None,
                   tuple(float(v) for v in G.output_range))  # type: ignore[arg-type]

    def wplus(self, fmt: str) -> Tensor:
        """The codes as W+ ``[B, num_ws, D]`` float32 (a W code repeated on every row, as the field stores it)."""
        if self.space == "w+":
            return self.latent.float()
        if self.space == "w":
            if self.num_ws is None:
                raise InputError(f"--latent-format {fmt} stores W+ codes, and this generator has no W+ rows")
            return self.latent.float().unsqueeze(1).repeat(1, self.num_ws, 1)
        raise InputError(f"--latent-format {fmt} holds StyleGAN W/W+ codes; these codes are in {self.space} "
                         "(use --latent-format ganinv)")

    def maps(self, index: int) -> list[Tensor]:
        """Noise maps ``[1, 1, H_i, W_i]`` of code ``index``: the optimised ones, else the stored constants."""
        if self.noise is not None:
            return [n[index:index + 1].clone() for n in self.noise]
        return [n.clone() for n in self.stored_noise] if self.stored_noise is not None else []


def clean_stem(text: str, fallback: str = "latent") -> str:
    """A file stem from a name found in a file (an image path or name): its stem, characters other than letters,
    digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    stem = Path(str(text).replace("\\", "/")).stem
    stem = re.sub(r"[^\w.-]", "_", stem).strip(".") or fallback
    return stem[:120]


def _wanted(G: Generator) -> str:
    return " or ".join(f"[{', '.join(map(str, s.shape))}] ({name})" for name, s in G.latent_spaces.items()
                       if name != "z")


def shape_error(path: Path, what: str, shape: tuple[int, ...] | list[int], G: Generator) -> InputError:
    """The refusal of a code whose shape does not fit ``G``, naming the file's shape and the model's spaces."""
    if "w" not in G.latent_spaces:
        spaces = ", ".join(f"{n} [{', '.join(map(str, s.shape))}]" for n, s in G.latent_spaces.items())
        return InputError(f"{path}: {what} has shape {list(shape)}, a StyleGAN W/W+ code, but this {G.arch} "
                          f"generator has no W space (it takes {spaces}); was it made with another model?")
    return InputError(f"{path}: {what} has shape {list(shape)}, but this {G.arch} generator takes {_wanted(G)} "
                      "codes; was it made with another model?")


def as_array(value: Any, path: Path, what: str) -> np.ndarray:
    """A tensor or array from a file as a float32 NumPy array (numbers only)."""
    if isinstance(value, Tensor):
        if value.is_complex() or not (value.is_floating_point() or value.dtype in
                                      (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
            raise InputError(f"{path}: {what} is a {value.dtype} tensor, not a numeric code")
        return value.detach().to("cpu", torch.float32).numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value.astype(np.float32)
    raise InputError(f"{path}: {what} is a {type(value).__name__}, not an array of numbers")


def w_code(arr: np.ndarray, path: Path, what: str, G: Generator) -> LatentCode:
    """One W/W+ code of ``G`` from ``[num_ws, D]`` / ``[1, num_ws, D]`` (W+) or ``[D]`` / ``[1, D]`` (W)."""
    spaces = G.latent_spaces
    shape = tuple(arr.shape)
    squeezed = shape[1:] if len(shape) >= 1 and shape[0] == 1 else shape
    for name in ("w+", "w"):
        if name in spaces and squeezed == spaces[name].shape:
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).reshape(1, *spaces[name].shape)
            if not torch.isfinite(t).all():
                raise InputError(f"{path}: {what} contains NaN or Inf")
            return LatentCode(t, name)
    raise shape_error(path, what, shape, G)


def split_codes(arr: np.ndarray, path: Path, what: str, G: Generator) -> list[np.ndarray] | None:
    """A stack of codes ``[N, num_ws, D]`` (W+) or ``[N, D]`` (W, N > 1) as N arrays; None when ``arr`` is not
    a stack (then it is one code, or refused by :func:`w_code`)."""
    spaces = G.latent_spaces
    shape = tuple(arr.shape)
    if "w+" in spaces and len(shape) == 3 and shape[1:] == spaces["w+"].shape:
        return list(arr)
    if "w" in spaces and len(shape) == 2 and shape[0] > 1 and shape[1:] == spaces["w"].shape \
            and not ("w+" in spaces and shape == spaces["w+"].shape):
        return list(arr)
    return None


def noise_maps(value: Any, path: Path, what: str, G: Generator, notes: list[str]) -> list[Tensor] | None:
    """Per-layer noise maps from a file (a list of ``[1, 1, H_i, W_i]`` tensors) when they fit ``G``'s layers;
    otherwise None, with a note saying why they were left out."""
    shapes = G.noise_shapes
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, Tensor | np.ndarray) for v in value):
        notes.append(f"{what}: its noise maps are not a list of arrays; rendered with the model's own noise")
        return None
    got = [tuple(v.shape) for v in value]
    if not shapes or len(got) != len(shapes) or any(len(g) != 4 or g[0] != 1 or g[1:] != tuple(w[1:])
                                                     for g, w in zip(got, shapes)):
        sizes = lambda ss: ", ".join(f"{s[-2]}×{s[-1]}" if len(s) >= 2 else str(list(s)) for s in ss)  # noqa: E731
        notes.append(f"{what}: its {len(got)} noise maps ({sizes(got)}) do not match this model's "
                     f"{len(shapes)} ({sizes(shapes)}); rendered with the model's own noise")
        return None
    maps = [torch.from_numpy(np.ascontiguousarray(as_array(v, path, f"{what} noise map {i}")))
            for i, v in enumerate(value)]
    if not all(torch.isfinite(m).all() for m in maps):
        raise InputError(f"{path}: {what} has noise maps with NaN or Inf")
    return maps
