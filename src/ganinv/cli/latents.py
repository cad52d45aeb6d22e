"""Inputs of the editing commands (``edit``, ``interpolate``, ``mix``): images are inverted first, latent files
are read and checked; plus the parsers for ``--strengths`` and the shared figure writers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from ganinv.cli.common import check_encoder_options, console
from ganinv.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

    from ganinv.generators.base import Generator
    from ganinv.latentfiles import FileCode
    from ganinv.photo import Alignment

#: Latent-file suffixes (ganinv/NVIDIA .npz, .npy incl. ReStyle's pickled latents.npy, e4e/PTI/rosinality .pt).
LATENT_SUFFIXES = (".npz", ".npy", ".pt", ".pth")
EDIT_METHODS = ("optimize", "encoder", "hybrid", "pti", "hyper")
#: The methods whose result renders with a per-image tuned generator (its weight deltas), not the shared one.
TUNED_METHODS = ("pti", "hyper")
#: Latent-prior weight used when images are inverted for editing (optimize/hybrid) and --prior is not given:
#: on the held-out digits it kept 99% of classes at 35.0 dB (37.2 without) and let InterFaceGAN directions flip
#: 86.9% of digits within 3σ (39.1% without) — benchmarks/editing.py, docs/editing.md. Chosen on 100 validation
#: digits as the least of 0.001 / 0.003 / 0.01 that reaches 80% there (75.0% / 88.2% / 93.0%; ``--validation``).
EDIT_PRIOR = 0.003

MethodOpt = Annotated[str, typer.Option(help="How images are inverted first: optimize (default), encoder, "
                                        "hybrid, pti or hyper (latent files are used as they are).")]
EncoderOpt = Annotated[Optional[str], typer.Option(
    help="The encoder that inverts images for --method encoder/hybrid (a folder from `ganinv train-encoder`, or a "
    "bundled name; default: the bundled one for the model), or the hypernetwork for --method hyper (a folder "
    "from `ganinv train-encoder --arch hyper --export`).")]
StepsOpt = Annotated[Optional[int], typer.Option(help="Optimisation steps for inverting images (default: the "
                                                 "engine's).")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed of the inversion.")]
PriorOpt = Annotated[Optional[float], typer.Option(help="Latent-prior weight of the inversion (optimize/hybrid): "
                                                   "higher keeps codes nearer the mean w, less faithful but more "
                                                   "editable; 0 turns it off (default 0.003, the editing "
                                                   "benchmark's choice: docs/editing.md).")]


@dataclass
class Code:
    """One input as a code: ``latent`` ``[1, *shape]`` in ``space``, its noise maps (``[1, 1, H_i, W_i]``) or None,
    and, after PTI, the tuned copy of the generator to render it with (None: the shared generator).

    A code of a framed photo (``--align``, or an ``.npz`` recording ``alignment_json``) also has its ``alignment``,
    the ``photo`` path it was cut from and, for a photo inverted on this run, the ``group`` stem shared by the
    photo's faces (None otherwise)."""

    stem: str
    source: str
    latent: Tensor
    space: str
    noise: list[Tensor] | None = None
    generator: Generator | None = None
    alignment: Alignment | None = None
    photo: str | None = None
    group: str | None = None


def parse_strengths(text: str) -> list[float]:
    """``"-3,-1.5,0,1.5,3"`` → ``[-3.0, -1.5, 0.0, 1.5, 3.0]`` (finite numbers, at least one)."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise InputError(f"bad --strengths {text!r}: give comma-separated numbers, e.g. -3,-1.5,0,1.5,3")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise InputError(f"bad --strengths {text!r}: {p!r} is not a number; give comma-separated numbers, "
                             "e.g. -3,-1.5,0,1.5,3") from None
        if not math.isfinite(v):
            raise InputError(f"bad --strengths {text!r}: {p!r} is not finite")
        values.append(v)
    return values


def _expand(inputs: list[Path]) -> list[Path]:
    """Latent files as given; image files and folders through :func:`ganinv.io.collect_images`.
    Any missing or unreadable input is an error (nothing has run yet)."""
    from ganinv.io import collect_images

    files: list[Path] = []
    for raw in inputs:
        if raw.suffix.lower() in LATENT_SUFFIXES:
            if not raw.is_file():
                raise InputError(f"{raw}: no such latent file; check the path")
            files.append(raw)
            continue
        found, problems = collect_images([raw])
        if problems:
            path, why = problems[0]
            raise InputError(f"{path}: {why}")
        files.extend(found)
    return files


def load_codes(inputs: list[Path], G: Generator, model_name: str, out_dir: Path, *, method: str = "optimize",
               steps: int | None = None, seed: int | None = None, prior: float | None = None,
               allow_pti: bool = True, one_per_input: bool = False, align: str = "none",
               encoder: str | None = None) -> list[Code]:
    """Every input as :class:`Code` s for ``G``, in the order given.

    Latent files (any format :func:`ganinv.latentfiles.read_latents` reads: ganinv/NVIDIA ``.npz``, ``.npy``,
    ReStyle/HyperStyle ``latents.npy``, e4e ``latents.pt``, PTI ``0.pt``, rosinality projector ``.pt``) are read
    and checked against ``G``; a file holding N codes gives N codes (stems ``<file>_<i>`` or the image names it
    records), unless ``one_per_input`` (then it is refused). A PTI ``<stem>.deltas.safetensors`` next to an
    ``.npz`` is applied. Images are inverted together in one batch with ``method`` and the inversions written to
    ``out_dir/inverted/`` (reconstructions, ``.npz`` codes, ``summary.json``). Optimising methods use the latent
    prior ``prior`` (None: :data:`EDIT_PRIOR`; not for z-only generators, whose codes the engine keeps typical
    by other means).

    ``align`` (``none``, ``face``, ``center``) frames images first (:func:`ganinv.cli.invert.load_targets`): a photo
    with several faces gives one code per face (``<stem>_face<k>``), each with its alignment. A ganinv ``.npz``
    holding one code and an ``alignment_json`` gives a code with that alignment and photo.

    ``encoder``: the encoder (``encoder`` / ``hybrid``) or hypernetwork (``hyper``) that inverts the images, checked
    against ``G`` before anything runs (None: the bundled one for ``G``). ``pti`` and ``hyper`` give codes that
    render with their own tuned generator, so ``allow_pti=False`` refuses both.
    """
    from ganinv.cli.invert import NETWORK_METHODS, load_targets, method_network, read_alignment, run_inversion, \
        unique_stems
    from ganinv.latentfiles import read_latents

    if method not in EDIT_METHODS:
        raise InputError(f"unknown --method {method!r}; use one of {', '.join(EDIT_METHODS)}")
    if method in TUNED_METHODS and not allow_pti:
        raise InputError(f"--method {method} tunes a separate generator for every image, so codes of different "
                         "images cannot be combined; use optimize, encoder or hybrid here")
    if encoder is not None and method not in NETWORK_METHODS:
        raise InputError(f"--encoder names the network of --method encoder, hybrid or hyper, not {method}")
    check_encoder_options(method, {k: v for k, v in (("steps", steps), ("prior", prior)) if v is not None})
    if prior is not None and not (prior >= 0 and math.isfinite(prior)):
        raise InputError(f"--prior must be a finite number ≥ 0, got {prior}")
    files = _expand(inputs)
    if not files:
        raise InputError("no inputs given: pass images, folders of images or latent files (.npz, .npy, .pt)")
    # images to invert: their network, checked now
    net = method_network(method, encoder, G) if any(p.suffix.lower() not in LATENT_SUFFIXES for p in files) else None
    # one entry per code: (input file, the code read from it or None for an image); stems from the codes' names
    entries: list[tuple[Path, FileCode | None]] = []
    for path in files:
        if path.suffix.lower() not in LATENT_SUFFIXES:
            entries.append((path, None))
            continue
        found = read_latents(path, G)
        if one_per_input and len(found) > 1:
            raise InputError(f"{path} holds {len(found)} codes ({', '.join(c.name for c in found[:3])}"
                             f"{' …' if len(found) > 3 else ''}); this command takes one code per input — "
                             "edit them with `ganinv edit`, or pass a file with one code")
        for fc in found:
            entries.append((path, fc))
    named = [p if fc is None or fc.name == p.stem else p.with_name(f"{fc.name}{p.suffix}") for p, fc in entries]
    stems = unique_stems(named, out_dir)
    codes: list[list[Code]] = [[] for _ in entries]
    image_idx = [i for i, (_, fc) in enumerate(entries) if fc is None]
    for i, (path, fc) in enumerate(entries):
        if fc is None:
            continue
        code = fc.code
        for note in fc.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
        tuned = None
        deltas = path.with_name(f"{path.stem}.deltas.safetensors")
        if path.suffix.lower() == ".npz" and deltas.is_file():
            from ganinv.inverters.pti import apply_deltas, load_deltas

            if not allow_pti:
                raise InputError(f"{path} comes with PTI generator deltas ({deltas.name}): a code of a per-image "
                                 "tuned generator cannot be combined with other codes")
            from ganinv.generators.conditional import unwrap

            base_g = unwrap(G)  # W codes: a class-conditional model's deltas belong to the model, not to a class
            tuned = apply_deltas(base_g, load_deltas(deltas, base_g)).to(G.device)
            console.print(f"{escape(path.name)}: rendered with its PTI generator deltas ({escape(deltas.name)})")
        tuned = _with_pose(path, fc.label == path.name, tuned or G, allow_pti) or tuned
        source = f"{path}{fc.label[len(path.name):]}" if fc.label.startswith(f"{path.name}[") else str(path)
        single = fc.label == path.name  # not one row of a stack of codes
        framing = read_alignment(path) if path.suffix.lower() == ".npz" and single else None
        codes[i] = [Code(stems[i], source, code.latent.to(G.device), code.space,
                         [n.to(G.device) for n in code.noise] if code.noise else None, tuned,
                         alignment=framing[0] if framing else None, photo=framing[1] if framing else None)]
    if image_idx:
        image_paths = [entries[i][0] for i in image_idx]
        targets, failures = load_targets(image_paths, G, out_dir / "inverted", align)
        if failures:
            where, why = failures[0]["input"], failures[0]["error"]
            raise InputError(why if why.startswith(where) else f"{where}: {why}")
        if one_per_input:
            faces = [t for t in targets if t.suffix]
            if faces:
                n = sum(t.index == faces[0].index for t in targets)
                raise InputError(f"{faces[0].source} has {n} faces, and this command takes one image per input: "
                                 "crop the photo to one face, or invert it with `ganinv invert --align face` and "
                                 "pass the .npz of the face you want")
        for t in targets:
            i = image_idx[t.index]
            t.group = stems[i] if t.alignment is not None else None
            t.stem = stems[i] + t.suffix
        if prior is None and method in ("optimize", "hybrid") and "w" in G.latent_spaces:
            prior = EDIT_PRIOR
        options = {k: v for k, v in {"steps": steps, "seed": seed, "prior": prior}.items() if v is not None}
        outcome = run_inversion(G, model_name, targets, out_dir / "inverted", options=options, method=method,
                                title=f"{model_name} · inverted first ({method})", encoder=net)
        r = outcome.result
        tuned_gs: list[Any] = [None] * len(targets)
        if r.deltas is not None:
            from ganinv.inverters.pti import apply_deltas

            from ganinv.generators.conditional import unwrap

            tuned_base = unwrap(G) if r.space != "z" else G  # a W pivot: deltas of the conditional model itself
            tuned_gs = [apply_deltas(tuned_base, d).to(G.device) for d in r.deltas]
        for j, t in enumerate(targets):
            i = image_idx[t.index]
            noise = [n[j:j + 1].to(G.device) for n in r.noise] if r.noise is not None else None
            codes[i].append(Code(t.stem, str(entries[i][0]), r.latent[j:j + 1].detach().to(G.device), r.space,
                                 noise, tuned_gs[j], alignment=t.alignment, photo=t.photo, group=t.group))
    return [c for group in codes for c in group]



def _with_pose(path: Path, single: bool, G: Generator, allow_pti: bool) -> Generator | None:
    """A ganinv ``.npz`` of ``invert --pose`` records each code's StyleGAN3 input ``transform`` ``[1, 3, 3]``: the
    generator that renders the code with it (None when the file has none)."""
    if path.suffix.lower() != ".npz" or not single:
        return None
    import numpy as np
    import torch

    with np.load(path, allow_pickle=False) as data:
        if "transform" not in data.files:
            return None
        transform = torch.from_numpy(np.asarray(data["transform"], dtype=np.float32))
    if not allow_pti:
        raise InputError(f"{path} was inverted with --pose: its code renders with its own input transform, so it "
                         "cannot be combined with other codes here; edit it with `ganinv edit`")
    from ganinv.inverters.pose import PoseBoundGenerator

    console.print(f"{escape(path.name)}: rendered at its recorded pose (input transform)")
    return PoseBoundGenerator(G, transform.reshape(-1, 3, 3)[:1])


def common_space(codes: list[Code], G: Generator, floor: str | None = None) -> str:
    """The space every code can be brought to: the furthest along z → w → w+ among them (and ``floor``)."""
    order = [s for s in ("z", "w", "w+") if s in G.latent_spaces]
    names = [c.space for c in codes] + ([floor] if floor else [])
    return max(names, key=lambda s: order.index(s) if s in order else -1)


def convert_code(code: Code, space: str, G: Generator) -> Tensor:
    """``code.latent`` in ``space`` (along z → w → w+; w+ → w averages the rows)."""
    from ganinv.editing.codes import to_space

    return to_space(code.latent, code.space, space, G).to(G.device)


def display_scale(G: Generator) -> int:
    """Nearest-neighbour enlargement so that a tile is about 128 px (1–4×)."""
    return max(1, min(4, 128 // max(1, G.resolution)))


def ping_pong(frames: list[Tensor]) -> list[Tensor]:
    """``a b c`` → ``a b c b`` (a loop that goes there and back without repeating the ends)."""
    return frames + frames[-2:0:-1] if len(frames) > 2 else frames


def latent_arrays(latents: Tensor, space: str) -> dict[str, Any]:
    """``{"w": [N, num_ws, D]}`` for w+/w codes (w broadcast rows are kept as w ``[N, D]``), ``{"z": [N, D]}`` for z."""
    arr = latents.detach().cpu().float().numpy()
    return {"z" if space == "z" else "w": arr}


def digit_classifier(G: Generator) -> Any:
    """The bundled digit classifier when ``G`` makes 1×32×32 images (and it is installed), else None."""
    from ganinv import zoo

    if tuple(G.image_shape) != (1, 32, 32) or zoo.DEFAULT_CLASSIFIER not in zoo.available():
        return None
    return zoo.load_classifier()


def digit_classes(classifier: Any, images: Tensor) -> list[int] | None:
    """The classifier's prediction for each image ``[N, 1, 32, 32]`` (None without a classifier)."""
    if classifier is None:
        return None
    classes, _ = classifier.predict(images.cpu())
    return [int(c) for c in classes]
