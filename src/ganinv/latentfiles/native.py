"""ganinv's own latent files, which are also NVIDIA's (``--latent-format ganinv`` / ``nvidia``).

Read:

* ``.npz`` with ``w`` ``[1, num_ws, w_dim]`` — what ``ganinv invert`` writes per image and what NVIDIA's
  stylegan2-ada-pytorch ``projector.py`` writes as ``projected_w.npz`` (``np.savez(..., w=projected_w.unsqueeze(0))``
  with ``projected_w`` ``[num_ws, 512]``) — or ``[1, w_dim]`` / ``[w_dim]`` (W), or ``z`` ``[1, z_dim]`` /
  ``[z_dim]``; optional per-layer noise maps ``noise_<i>`` ``[1, 1, H_i, W_i]``. A stack ``w`` ``[N, num_ws, w_dim]``
  (``N > 1``: the codes ``ganinv interpolate`` / ``edit`` write) is N codes ``<file>_<i>``.
  A ``z`` code with a ``class`` array ``[1, c_dim]`` (``ganinv invert`` on a class-conditional model) is mapped to
  W with that class when read, so it renders without ``--class`` (with ``--class``, the given class is used).
* ``.npy`` holding a plain array: ``[num_ws, w_dim]`` / ``[1, num_ws, w_dim]`` (W+), ``[D]`` / ``[1, D]`` (W where
  the generator has one, else z), or a stack ``[N, num_ws, w_dim]``. Arrays are read with ``allow_pickle=False``
  semantics (:func:`ganinv.io.load_npy`); a pickled ``.npy`` is ReStyle's format (:mod:`.restyle`).

Write: ``<stem>.npz`` per code with ``w`` ``[1, num_ws, w_dim]`` (W broadcast to every row, as NVIDIA writes
it) and the noise maps when they were optimised — the same file for ``ganinv`` and ``nvidia``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganinv.editing.codes import LatentCode, code_from_array
from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles.base import FileCode, LatentBatch


def _stack(arr: np.ndarray, key: str, G: Generator) -> list[np.ndarray] | None:
    """``arr`` as N > 1 codes of ``G`` (``[N, *shape]`` for a space of ``key``), or None when it is not a stack."""
    names = ["z"] if key == "z" else (["w+", "w"] if key == "w" else list(G.latent_spaces))
    for name in names:
        space = G.latent_spaces.get(name)
        if space is not None and arr.ndim == len(space.shape) + 1 and arr.shape[0] > 1 \
                and tuple(arr.shape[1:]) == space.shape:
            return list(arr)
    return None


def _codes(arr: np.ndarray, key: str, G: Generator, path: Path) -> list[FileCode]:
    try:
        latent, space = code_from_array(arr, key, G, path)
        return [FileCode(path.stem, path.name, LatentCode(latent, space))]
    except InputError:
        rows = _stack(np.asarray(arr), key, G)
        if rows is None:
            raise
    out = []
    for i, row in enumerate(rows):
        latent, space = code_from_array(row, key, G, path)
        out.append(FileCode(f"{path.stem}_{i}", f"{path.name}[{i}]", LatentCode(latent, space)))
    return out


def read_npz(path: Path, G: Generator) -> list[FileCode]:
    """The code(s) of a ganinv / NVIDIA ``.npz`` (see the module notes), checked against ``G``."""
    from ganinv.io import load_latent_npz

    arrays = load_latent_npz(path)
    key = "w" if "w" in arrays else ("z" if "z" in arrays else None)
    if key is None:
        raise InputError(f"{path} holds {', '.join(sorted(arrays))}, but a latent file needs a 'w' or 'z' array")
    codes = _codes(arrays[key], key, G, path)
    shapes = G.noise_shapes
    if len(codes) == 1 and shapes and all(f"noise_{i}" in arrays for i in range(len(shapes))):
        noise = []
        for i, want in enumerate(shapes):
            n = torch.from_numpy(np.ascontiguousarray(arrays[f"noise_{i}"], dtype=np.float32))
            if tuple(n.shape[1:]) != tuple(want[1:]) or n.shape[0] != 1:
                raise InputError(f"{path}: noise_{i} has shape {list(n.shape)}, expected {list(want)}")
            noise.append(n)
        codes[0].code.noise = noise
    if "class" in arrays and key == "z":
        _bind_recorded_class(codes, arrays["class"], G, path)
    return codes


def _bind_recorded_class(codes: list[FileCode], arr: np.ndarray, G: Generator, path: Path) -> None:
    """z codes of a class-conditional model with the class their ``.npz`` records (``class`` ``[1 or N, c_dim]``,
    written by ``ganinv invert``): mapped to W with it, so that they render, edit and mix without ``--class``.
    With ``--class`` (a class-bound ``G``) the given class wins, with a note where it differs."""
    from ganinv.generators.conditional import ClassBoundGenerator, class_probabilities, num_classes

    c_dim = num_classes(G)
    if not c_dim:
        codes[0].notes.append(f"{path.name}: its recorded class is ignored (this generator is unconditional)")
        return
    c = np.asarray(arr, dtype=np.float32)
    if c.ndim != 2 or c.shape[0] not in (1, len(codes)) or c.shape[1] != c_dim:
        raise InputError(f"{path}: its 'class' array has shape {list(c.shape)}, but this generator has {c_dim} "
                         f"classes (expected [1, {c_dim}])")
    try:
        probs = class_probabilities(c_dim, torch.from_numpy(c))
    except InputError as exc:
        raise InputError(f"{path}: its recorded class is not usable: {exc}") from None
    for i, fc in enumerate(codes):
        row = probs[min(i, probs.shape[0] - 1)].unsqueeze(0)
        label = int(row.argmax())
        if isinstance(G, ClassBoundGenerator):
            if G.label != label or float(row.max()) < 1.0:
                fc.notes.append(f"{fc.label}: rendered with --class {G.label if G.label is not None else '(given)'}; "
                                f"the file records class {label}")
            continue
        with torch.no_grad():
            fc.code.latent = G.convert(fc.code.latent.to(G.device), "z", "w", c=row.to(G.device)).cpu()
        fc.code.space = "w"


def read_npy(path: Path, G: Generator) -> list[FileCode]:
    """The code(s) of a plain ``.npy`` array (see the module notes), checked against ``G``."""
    from ganinv.io import load_npy

    arr = load_npy(path)
    return _codes(arr, "w" if "w" in G.latent_spaces else "z", G, path)


def write(out_dir: Path, batch: LatentBatch) -> list[Path]:
    """``out_dir/<stem>.npz`` per code: ``w`` ``[1, num_ws, w_dim]`` (or ``z`` ``[1, z_dim]``) and ``noise_<i>``."""
    from ganinv.io import save_npz

    if batch.space == "z":
        lat = batch.latent.float()
    else:
        lat = batch.wplus("ganinv")
    written = []
    for i, stem in enumerate(batch.stems):
        arrays = {("z" if batch.space == "z" else "w"): lat[i:i + 1].numpy()}
        if batch.noise is not None:
            arrays.update({f"noise_{j}": n[i:i + 1].numpy() for j, n in enumerate(batch.noise)})
        written.append(save_npz(out_dir / f"{stem}.npz", arrays))
    return written
