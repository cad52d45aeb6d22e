"""The field's latent files: one reader for all of them, and writers for ``--latent-format``.

Every place ganinv reads a latent code from a file (``edit``, ``interpolate``, ``mix``, ``directions --labels``,
:func:`ganinv.editing.read_latent_file`) goes through :func:`read_latents`, which tells the format from the
suffix and the contents and returns one :class:`~ganinv.latentfiles.base.FileCode` per code in the file:

====================  ==================================================  ===============================
format                file and layout                                     module
====================  ==================================================  ===============================
ganinv / NVIDIA       ``<stem>.npz`` / ``projected_w.npz``: ``w``         :mod:`.native`
                      ``[1, num_ws, w_dim]`` (+ ``noise_<i>``); plain
                      ``.npy`` ``[num_ws, w_dim]``
e4e                   ``latents.pt``: tensor ``[N, num_ws, w_dim]`` →     :mod:`.e4e`
                      N codes ``<file>_<i>``
ReStyle / HyperStyle  ``latents.npy``: pickled ``{image name: [n_iters     :mod:`.restyle`
                      of [num_ws, w_dim]] or [num_ws, w_dim]}`` (last
                      step)
rosinality projector  ``<first>.pt``: ``{image path: {"img", "latent"      :mod:`.rosinality`
                      [w_dim] or [n_latent, w_dim], "noise": [maps]}}``
PTI pivots            ``<image>/0.pt``: tensor ``[1, num_ws, w_dim]``      :mod:`.pti`
====================  ==================================================  ===============================

Torch files are read with ``torch.load(weights_only=True)`` and pickled ``.npy`` files with a NumPy-only
unpickler (:mod:`.safe`); both are size-capped, and a file that asks for anything else is refused by name
without running it. Every code is checked against the generator: a shape that does not fit is refused with a
message naming the file's shape and the model's spaces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.latentfiles import e4e, native, pti, restyle, rosinality
from ganinv.latentfiles.base import FileCode, LatentBatch
from ganinv.latentfiles.safe import load_pickled_npy, load_torch, npy_is_pickled

#: Suffixes of latent files (everything else given to the editing commands is an image or a folder).
LATENT_SUFFIXES = (".npz", ".npy", ".pt", ".pth")

#: ``--latent-format`` choices: what each writes into the output folder.
LATENT_FORMATS: dict[str, str] = {
    "ganinv": "<stem>.npz per image: w [1, num_ws, w_dim] (or z [1, z_dim]) and optimised noise_<i> maps",
    "nvidia": "the same <stem>.npz, which is NVIDIA's projected_w.npz layout (w [1, num_ws, w_dim])",
    "e4e": "latents.pt: one tensor [N, num_ws, w_dim] for the batch (encoder4editing's scripts/inference.py)",
    "restyle": "latents.npy: a pickled dict {image name: [num_ws, w_dim]} (ReStyle / HyperStyle inference)",
    "rosinality": "<first stem>.pt: {image path: {img, latent, noise}} (rosinality's projector.py)",
    "pti": "<stem>/0.pt per image: tensor [1, num_ws, w_dim] (PTI's embeddings/…/<image>/0.pt pivots)",
}

_WRITERS: dict[str, Callable[[Path, LatentBatch], list[Path]]] = {
    "ganinv": native.write, "nvidia": native.write, "e4e": e4e.write, "restyle": restyle.write,
    "rosinality": rosinality.write, "pti": pti.write,
}


def is_latent_file(path: Path) -> bool:
    """Whether ``path`` names a latent file (by suffix) rather than an image or a folder."""
    return path.suffix.lower() in LATENT_SUFFIXES


def detect_format(path: str | Path) -> str:
    """The format of a latent file from its suffix and, for ``.npy``/``.pt``, a look at its contents:
    ``ganinv`` (``.npz``, plain ``.npy``), ``restyle`` (pickled ``.npy``), or ``torch`` (``.pt``/``.pth``; e4e,
    PTI and rosinality are told apart once loaded). Raises :class:`InputError` for another suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "ganinv"
    if suffix == ".npy":
        return "restyle" if npy_is_pickled(path) else "ganinv"
    if suffix in (".pt", ".pth"):
        return "torch"
    raise InputError(f"{path}: a latent file is .npz/.npy (ganinv, NVIDIA, ReStyle/HyperStyle latents.npy) or "
                     ".pt (e4e latents.pt, PTI 0.pt, rosinality projector)")


def _read_torch(path: Path, G: Generator) -> list[FileCode]:
    obj = load_torch(path)
    if isinstance(obj, Tensor):
        return pti.read_tensor(obj, path, G) if pti.is_pivot_path(path) and obj.dim() == 3 and obj.shape[0] == 1 \
            else e4e.read_tensor(obj, path, G)
    if rosinality.looks_like(obj):
        return rosinality.read_dict(obj, path, G)
    if isinstance(obj, dict):
        keys = ", ".join(map(repr, list(obj)[:8])) + (" …" if len(obj) > 8 else "")
        raise InputError(f"{path} holds a dict with keys {keys}, which is no latent layout ganinv knows: a .pt "
                         "latent file is a tensor [N, num_ws, w_dim] (e4e latents.pt, PTI 0.pt) or rosinality's "
                         "{image path: {'img', 'latent', 'noise'}}")
    raise InputError(f"{path} holds a {type(obj).__name__}; a .pt latent file is a tensor [N, num_ws, w_dim] "
                     "(e4e, PTI) or rosinality's projector dict")


def read_latents(path: str | Path, G: Generator) -> list[FileCode]:
    """Every code in a latent file, checked against ``G``, in the file's order (see the module notes).

    Raises:
        InputError: a missing, unreadable, unsafe or oversized file, a layout ganinv does not know, or a code
            whose shape does not fit ``G`` (the message names the file's shape and ``G``'s spaces).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such latent file; check the path")
    if not path.is_file():
        raise InputError(f"{path} is not a file; pass a latent file (.npz, .npy, .pt)")
    fmt = detect_format(path)
    if fmt == "torch":
        codes = _read_torch(path, G)
    elif fmt == "restyle":
        codes = restyle.read_dict(load_pickled_npy(path), path, G)
    elif path.suffix.lower() == ".npy":
        codes = native.read_npy(path, G)
    else:
        codes = native.read_npz(path, G)
    if not codes:
        raise InputError(f"{path} holds no codes")
    return codes


def read_latent(path: str | Path, G: Generator) -> FileCode:
    """The one code of a latent file; a file holding several is refused (naming how many)."""
    codes = read_latents(path, G)
    if len(codes) != 1:
        raise InputError(f"{path} holds {len(codes)} codes ({', '.join(c.name for c in codes[:4])}"
                         f"{' …' if len(codes) > 4 else ''}); one code is needed here")
    return codes[0]


def write_latents(fmt: str, out_dir: str | Path, batch: LatentBatch) -> list[Path]:
    """Write ``batch`` into ``out_dir`` in ``fmt`` (one of :data:`LATENT_FORMATS`), atomically; returns the files."""
    if fmt not in _WRITERS:
        raise InputError(f"unknown --latent-format {fmt!r}; use one of {', '.join(LATENT_FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _WRITERS[fmt](out, batch)


def check_format(fmt: str, space: str | None = None, method: str | None = None) -> str:
    """Refuse an unknown ``fmt``, or a foreign one for codes it cannot hold (z codes, multicode), before work
    starts. Returns ``fmt`` lower-cased."""
    fmt = fmt.strip().lower()
    if fmt not in LATENT_FORMATS:
        raise InputError(f"unknown --latent-format {fmt!r}; use one of {', '.join(LATENT_FORMATS)}")
    if fmt == "ganinv":
        return fmt
    if method == "multicode":
        raise InputError(f"--latent-format {fmt} holds one W/W+ code per image; --method multicode makes several "
                         "(use --latent-format ganinv)")
    if space == "z":
        raise InputError(f"--latent-format {fmt} holds StyleGAN W/W+ codes, and these codes are in z "
                         "(use --latent-format ganinv)")
    return fmt


__all__ = ["LATENT_FORMATS", "LATENT_SUFFIXES", "FileCode", "LatentBatch", "check_format", "detect_format",
           "is_latent_file", "read_latent", "read_latents", "write_latents"]
