"""``ganinv invert``: images → latent codes, reconstructions, metrics and figures, in one batched engine call.

The command is a thin layer over :func:`ganinv.inverters.invert`. Its core, :func:`run_inversion`, is shared
with ``ganinv demo``: it takes loaded targets, runs the engine once with a progress bar, and writes

- ``DIR/<stem>.png`` (reconstruction) and ``DIR/<stem>.npz`` (latent: ``w`` ``[1, num_ws, w_dim]`` or
  ``z`` ``[1, z_dim]``) per image,
- ``DIR/summary.json`` (one record per image, the settings used, the failures),
- ``DIR/comparison.png`` (target | reconstruction | error) and ``DIR/loss.png`` (loss curves),
- optionally a video of the optimisation.

With ``--align face|center`` each photo is framed first (:mod:`ganinv.photo`): every detected face becomes its own
target (``<stem>`` for a photo with one face, ``<stem>_face0``, ``<stem>_face1``, … largest first for several),
or the largest centred square is cut. The framing travels with the code: the ``.npz`` holds ``alignment_json``
(0-d text, :meth:`ganinv.photo.Alignment.to_json`) and ``photo_path`` (0-d text, the photo's absolute path), and
the image's ``summary.json`` record holds ``alignment`` and ``photo``. ``--paste-back`` also writes
``<photo stem>.pasted.png``: the photo at its own size with every face's reconstruction pasted in.

Only options the user gives are passed on, so the engine's defaults (or a ``--preset``) apply otherwise.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ganinv.cli.common import check_encoder_options, console, print_table
from ganinv.cli.groups import ALIGN_MODES, Engine, Framing, ModelChoice, Runtime
from ganinv.errors import GaninvError, InputError

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor, nn

    from ganinv.generators.base import Generator
    from ganinv.inverters.base import InversionResult
    from ganinv.photo import Alignment

#: Names of the files written next to the per-image outputs; an input with such a stem gets a suffix.
RESERVED_STEMS = frozenset({"comparison", "loss", "summary"})
#: At most this many images are shown in the video and in comparison.png (all are inverted and saved).
VIDEO_MAX_IMAGES = 64
COMPARISON_MAX_IMAGES = 100
#: Roughly this many video frames per optimisation phase.
VIDEO_FRAMES = 60
#: Keys of the per-image ``.npz`` that record the framing (0-d text arrays; latent readers ignore them).
ALIGNMENT_KEY = "alignment_json"
PHOTO_KEY = "photo_path"


@dataclass
class Target:
    """One image to invert: where it came from, its output stem, the tensor ``[C, H, W]`` in [0, 1] and load notes.

    With ``--align face|center`` also: ``alignment`` (how ``image`` was cut from the photo), ``photo`` (the photo's
    absolute path), ``group`` (the stem shared by all targets cut from one photo) and ``suffix`` (``""`` or
    ``"_face<k>"``, so that ``stem == group + suffix``). ``index``: position of its file in :func:`load_targets`'
    ``paths``.
    """

    source: str
    stem: str
    image: Tensor
    notes: list[str] = field(default_factory=list)
    alignment: Alignment | None = None
    photo: str | None = None
    group: str | None = None
    suffix: str = ""
    index: int = -1


@dataclass(frozen=True)
class PasteSettings:
    """How :func:`paste_targets` blends results into their photos: an optional grey ``mask`` (PIL ``L``, the aligned
    size; 255 = paste), per-channel ``color_match``, and the mask's file name (recorded in summaries)."""

    mask: Image.Image | None = None
    color_match: bool = False
    mask_path: str | None = None


@dataclass
class InvertOutcome:
    """What :func:`run_inversion` did: the engine result, per-image records and the files written."""

    result: InversionResult
    records: list[dict[str, Any]]
    failures: list[dict[str, str]]
    out_dir: Path
    files: dict[str, str]


@dataclass
class _Plan:
    """The effective schedule (engine defaults ← preset ← user options), for the progress bar and video."""

    steps: int
    extra_steps: int
    restarts: int
    chunks: int
    #: coarse-to-fine stages before the full-resolution run: ``(phase name, steps, chunks)`` each
    coarse: tuple[tuple[str, int, int], ...] = ()

    @property
    def per_chunk(self) -> int:
        return self.steps + self.extra_steps

    @property
    def coarse_total(self) -> int:
        return sum(steps * chunks for _, steps, chunks in self.coarse)

    def coarse_offset(self, phase: str) -> tuple[int, int, int]:
        """Steps planned before coarse stage ``phase``, the stage's steps per chunk and its chunks."""
        done = 0
        for name, steps, chunks in self.coarse:
            if name == phase:
                return done, steps, chunks
            done += steps * chunks
        return done, 0, 0


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------

def unique_stems(paths: list[Path], out_dir: Path) -> list[str]:
    """One output stem per input, never two alike (case-insensitively: ``x``, ``x-1``, ``x-2``), never one of
    :data:`RESERVED_STEMS`, and never one whose ``.png``/``.npz`` in ``out_dir`` would overwrite an input file."""
    inputs = {p.resolve() for p in paths}
    used = set(RESERVED_STEMS)
    out_dir = out_dir.resolve() if out_dir.exists() else out_dir.absolute()

    def free(stem: str) -> bool:
        return stem.lower() not in used and all((out_dir / f"{stem}{ext}").resolve() not in inputs
                                                for ext in (".png", ".npz"))

    stems = []
    for p in paths:
        base = p.stem or "image"
        stem, k = base, 0
        while not free(stem):
            k += 1
            stem = f"{base}-{k}"
        used.add(stem.lower())
        stems.append(stem)
    return stems


def load_targets(paths: list[Path], G: Generator, out_dir: Path, align: str = "none", *,
                 size: int | None = None, channels: int | None = None) -> tuple[list[Target], list[dict[str, str]]]:
    """Read every file as a target (or, with ``align`` ``face``/``center``, one target per framed face) for ``G``;
    print each file's conversion notes once; unreadable files, and photos without a usable face, become failures
    ``{"input", "error"}`` (reported, not raised). A missing face-detector is raised (it concerns every file).

    ``size`` / ``channels`` frame photos at another side / channel count than ``G``'s (e.g. a low-resolution
    observation for super-resolution); only with ``align`` ``face``/``center``."""
    from ganinv.io import load_target

    if align not in ALIGN_MODES:
        raise InputError(f"--align must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
    if align != "none":
        return _load_framed(paths, G, out_dir, align, size or G.resolution, channels or G.channels)
    names = [p.name for p in paths]
    targets: list[Target] = []
    failures: list[dict[str, str]] = []
    stems = unique_stems(paths, out_dir)
    for index, (path, stem) in enumerate(zip(paths, stems, strict=True)):
        label = path.name if names.count(path.name) == 1 else str(path)
        try:
            image, notes = load_target(path, G.channels, G.resolution)
        except GaninvError as exc:
            failures.append({"input": str(path), "error": str(exc)})
            console.print(f"[yellow]skipped:[/] {escape(str(exc))}")
            continue
        if notes:
            console.print(f"{escape(label)}: {escape('; '.join(notes))}")
        if stem != path.stem:
            console.print(f"{escape(label)}: saved as {escape(stem)}.png/.npz (name already taken)")
        targets.append(Target(str(path), stem, image, notes, index=index))
    return targets, failures


def _photo_tensor(image: Image.Image, channels: int) -> Tensor:
    """An 8-bit RGB PIL image ``N × N`` → float tensor ``[channels, N, N]`` in [0, 1] (grey: ITU-R 601-2 luma)."""
    import numpy as np
    import torch

    from ganinv.io import _LUMA

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if channels == 1:
        arr = (arr @ _LUMA)[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)).clamp_(0.0, 1.0)


def frame_photo(photo: Image.Image, align: str, size: int,
                detector: Any = None) -> list[tuple[Image.Image, Alignment, str]]:
    """Frame one RGB photo for a ``size`` px generator: ``[(aligned N × N RGB image, Alignment, note)]``.

    ``align="face"``: every face the detector finds, largest first, FFHQ-aligned; faces too small for ``size``
    are left out while another face is usable (else the library's :class:`~ganinv.photo.FaceTooSmallError`);
    none found → :class:`~ganinv.photo.NoFaceError`. ``align="center"``: the largest centred square.
    """
    from ganinv.photo import FaceTooSmallError, NoFaceError, align_center, align_face, detect_faces

    w, h = photo.size
    if align == "center":
        aligned, alignment = align_center(photo, size, "crop")
        side = min(w, h)
        return [(aligned, alignment, f"framed the centred {side}×{side} square of {w}×{h} → {size}×{size}")]
    faces = detect_faces(photo, detector)
    if not faces:
        raise NoFaceError("no face found in the photo; frame it without the face detector instead: "
                          "--align center (largest centred square) or --align none")
    out: list[tuple[Image.Image, Alignment, str]] = []
    too_small: list[FaceTooSmallError] = []
    for k, face in enumerate(faces):
        try:
            aligned, alignment = align_face(photo, face, size)
        except FaceTooSmallError as exc:
            too_small.append(exc)
            continue
        which = f"face {k + 1} of {len(faces)}" if len(faces) > 1 else "the face"
        out.append((aligned, alignment, f"aligned {which} (FFHQ; a {alignment.face_size:.0f} px square of the "
                                        f"{w}×{h} photo) → {size}×{size}"))
    if not out:
        raise too_small[0]
    if too_small:
        out[0] = (out[0][0], out[0][1], out[0][2] + f"; left out {len(too_small)} face(s) too small for {size} px")
    return out


def _load_framed(paths: list[Path], G: Generator, out_dir: Path, align: str, size: int,
                 channels: int) -> tuple[list[Target], list[dict[str, str]]]:
    """:func:`load_targets` for ``--align face|center``: each photo read at full size and framed to ``size`` px,
    ``channels`` channels."""
    from ganinv.io import load_photo

    detector = None
    if align == "face":
        from ganinv.photo import get_detector

        detector = get_detector("mtcnn")  # missing weights: one error for the whole run, before any work
    names = [p.name for p in paths]
    failures: list[dict[str, str]] = []
    framed: list[tuple[int, Path, list[tuple[Image.Image, Alignment, str]], list[str]]] = []
    for index, path in enumerate(paths):
        try:
            photo, notes = load_photo(path)
            framed.append((index, path, frame_photo(photo, align, size, detector), notes))
        except GaninvError as exc:
            text = str(exc)
            error = text if text.startswith(str(path)) else f"{path}: {text}"
            failures.append({"input": str(path), "error": error})
            console.print(f"[yellow]skipped:[/] {escape(error)}")
    groups = unique_stems([path for _, path, _, _ in framed], out_dir)
    used = {g.lower() for g in groups} | set(RESERVED_STEMS)
    targets: list[Target] = []
    for group, (index, path, items, notes) in zip(groups, framed, strict=True):
        label = path.name if names.count(path.name) == 1 else str(path)
        if notes:
            console.print(f"{escape(label)}: {escape('; '.join(notes))}")
        for k, (aligned, alignment, note) in enumerate(items):
            suffix = f"_face{k}" if len(items) > 1 else ""
            stem, n = group + suffix, 0
            while suffix and stem.lower() in used:
                n += 1
                stem = f"{group}{suffix}-{n}"
            used.add(stem.lower())
            console.print(f"{escape(label)}: {escape(note)}" + (f" as {escape(stem)}" if stem != path.stem else ""))
            targets.append(Target(str(path), stem, _photo_tensor(aligned, channels), [*notes, note],
                                  alignment=alignment, photo=str(path.resolve()), group=group,
                                  suffix=stem[len(group):], index=index))
    return targets, failures


def load_paste_mask(path: Path | None, size: int) -> Image.Image | None:
    """``--paste-mask``: a grey image of the aligned size ``size`` × ``size`` (PIL ``L``, 0..255), or None.

    A mask of another size raises :class:`~ganinv.photo.MaskSizeError`."""
    if path is None:
        return None
    from ganinv.io import load_photo
    from ganinv.photo import MaskSizeError

    image, _ = load_photo(path)
    if image.size != (size, size):
        raise MaskSizeError(f"--paste-mask {path} is {image.size[0]}×{image.size[1]} px but the aligned image is "
                            f"{size}×{size} px (the model's resolution): give a mask of that size")
    return image.convert("L")


def read_original(photo_path: str) -> Image.Image:
    """The original photo at ``photo_path``, full size, 8-bit RGB; a missing photo is one clear :class:`InputError`."""
    from ganinv.io import load_photo

    path = Path(photo_path)
    if not path.is_file():
        raise InputError(f"cannot paste back: the original photo {path} is missing; put it back there (or "
                         "invert the photo again)")
    return load_photo(path)[0]


def paste_into_photo(photo_path: str, items: list[tuple[Tensor, Alignment]], settings: PasteSettings,
                     photo: Image.Image | None = None) -> Image.Image:
    """Every aligned image ``[C, N, N]`` in [0, 1] of ``items`` pasted into the photo at ``photo_path`` (read again at
    full size unless ``photo`` is that photo already read), in order; returns the photo-sized RGB PIL image. A moved
    or changed photo is an :class:`InputError`."""
    from ganinv.photo import paste_many

    path = Path(photo_path)
    if photo is None:
        photo = read_original(photo_path)
    want = tuple(items[0][1].original_size)
    if photo.size != want:
        raise InputError(f"cannot paste back into {path}: it is {photo.size[0]}×{photo.size[1]} px, but the "
                         f"alignment was made on a {want[0]}×{want[1]} px photo (the file changed)")
    pastes = [(img.detach().cpu().float().clamp(0, 1), al, settings.mask) for img, al in items]
    from PIL import Image as PILImage

    out = paste_many(photo, pastes, color_match=settings.color_match)
    assert isinstance(out, PILImage.Image)  # a PIL photo in, a PIL photo out
    return out


def save_pil(image: Image.Image, path: Path) -> Path:
    """Write a PIL image as PNG, atomically; returns ``path``."""
    from ganinv.modelfile import atomic_write

    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def alignment_arrays(alignment: Alignment, photo: str) -> dict[str, Any]:
    """The ``.npz`` members recording a framing: ``alignment_json`` and ``photo_path``, 0-d unicode arrays."""
    import numpy as np

    return {ALIGNMENT_KEY: np.array(alignment.to_json()), PHOTO_KEY: np.array(photo)}


def read_alignment(path: Path) -> tuple[Alignment, str] | None:
    """The framing recorded in a ganinv ``.npz`` (``(alignment, photo path)``), or None when it has none."""
    from ganinv.io import load_npz
    from ganinv.photo import Alignment

    arrays = load_npz(path)
    if ALIGNMENT_KEY not in arrays:
        return None
    try:
        text = str(arrays[ALIGNMENT_KEY][()])
        photo = str(arrays[PHOTO_KEY][()]) if PHOTO_KEY in arrays else ""
    except (IndexError, ValueError):
        raise InputError(f"{path}: {ALIGNMENT_KEY} must be one text value") from None
    alignment = Alignment.from_json(text)
    if not photo:
        raise InputError(f"{path} records an alignment but not the photo it was cut from ({PHOTO_KEY})")
    if not Path(photo).is_file() and (path.parent / Path(photo).name).is_file():
        photo = str((path.parent / Path(photo).name).resolve())  # the photo moved along with the code
    return alignment, photo


#: The methods that run a trained network (``--encoder`` names it): an image encoder, or a hypernetwork.
NETWORK_METHODS = ("encoder", "hybrid", "hyper")


def method_network(method: str, encoder: Any, G: Generator) -> Any:
    """The network ``method`` runs on ``G``, checked before anything is inverted: the image encoder of
    ``encoder``/``hybrid``, the hypernetwork of ``hyper`` (``encoder``: a module, folder or bundled name; None:
    the bundled one trained for ``G``); None for the other methods. Raises :class:`InputError` /
    :class:`UnknownModelError`: none bundled, another generator's, or the wrong kind of network."""
    if method in ("encoder", "hybrid"):
        from ganinv.encoders import resolve_encoder

        return resolve_encoder(encoder, G)  # refuses an encoder trained for another generator
    if method == "hyper":
        from ganinv.encoders.hyper import resolve_hyper

        return resolve_hyper(encoder, G)  # refuses a non-StyleGAN2 model, a pyramid encoder, another generator's
    return None


def check_square(G: Generator) -> None:
    """Inputs are read as square images; a generator with non-square output cannot be inverted from files."""
    c, h, w = G.image_shape
    if h != w:
        raise InputError(f"this generator outputs {w}×{h} images; `ganinv invert` reads images as squares, so it "
                         "needs a generator with square output")


def check_out_dir(out_dir: Path) -> None:
    """Refuse an ``--out`` that is a file or cannot be written, before any work is done (nothing is created: a
    probe file is made and removed in the folder, or in its nearest existing parent)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is an existing file; give a folder (it is created if missing)")
    probe_dir = out_dir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".ganinv-write-test.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--out {out_dir} is not writable ({exc.strerror or exc}); choose another folder") from None


def check_video_path(video: Path | None) -> None:
    if video is None:
        return
    suffix = video.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"cannot write video '{video.name}': use a .gif (or .mp4) file name")
    if video.exists() and video.is_dir():
        raise InputError(f"--video {video} is a folder; give a file name ending in .gif or .mp4")
    if suffix == ".mp4":
        from ganinv.io import _mp4_backend

        if _mp4_backend() is None:
            raise InputError(f"cannot write {video.name}: MP4 needs imageio with an ffmpeg backend (imageio-ffmpeg "
                             "or av), which is not installed; use a .gif file name instead")


def check_loss(loss: str | None) -> list[str]:
    """Parse ``--loss`` early (clear error before anything runs); LPIPS terms need their backbone weights."""
    if loss is None:
        return []
    from ganinv.errors import MissingWeightsError
    from ganinv.losses import lpips_available, missing_weights_message, parse_loss_spec

    names = [name for name, weight in parse_loss_spec(loss).items() if weight > 0]
    for name in names:
        if name.startswith("lpips"):
            net = "alex" if name == "lpips_alex" else "vgg"
            if not lpips_available(net, download=True):  # fetched on first use unless GANINV_OFFLINE=1
                raise MissingWeightsError(missing_weights_message(net))
        elif name == "id":  # the user-given ArcFace file: --id-weights, $GANINV_ARCFACE or the weights cache
            from ganinv.losses.identity import find_weights

            find_weights()
    return names


def load_discriminator_for(model: str | None, generator: str | None, G: Generator) -> nn.Module:
    """The discriminator shipped with the model (for the ``dfeat`` loss): a bundled model's or ganinv folder's, a
    rosinality training checkpoint's ``"d"``, an NVIDIA pickle's ``D`` (read without running any of its code).

    Raises:
        InputError: the model has none that converts (one sentence saying why).
    """
    from ganinv import zoo
    from ganinv.train.encoder_data import discriminator_for

    source = {} if generator else {"model": model or zoo.DEFAULT_MODEL}
    D, why = discriminator_for(source, G)
    if D is None:
        raise InputError(f"the 'dfeat' loss needs the model's discriminator, and there is none to use: {why}; drop "
                         "'dfeat' from --loss")
    return D


def plan_for(G: Generator, n_images: int, options: dict[str, Any], preset: str | None,
             method: str = "optimize") -> _Plan:
    """The effective settings the engine will use (its defaults, then ``preset``, then ``options``), checked
    early for the mistakes a user makes most (unknown preset, a space or noise maps the generator lacks)."""
    from ganinv.inverters import METHODS
    from ganinv.inverters.coarse import CoarseView, coarse_steps, parse_stages
    from ganinv.inverters.optimize import PRESETS, OptimizeSettings, auto_batch_size, resolve_noise, \
        resolve_optimizer

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    if method in ("encoder", "hyper"):
        return _Plan(steps=0, extra_steps=0, restarts=1, chunks=1)
    if method == "multicode":
        from ganinv.inverters.multicode import MultiCodeSettings

        codes = int(options.get("codes", MultiCodeSettings.codes))
        if codes < 1:
            raise InputError(f"--codes must be ≥ 1, got {codes}")
        if options.get("layer") is not None:
            G.check_feature_layer(int(options["layer"]))
        else:
            G.default_feature_layer()  # a generator without intermediate features: clear error now
        per = max(1, 256 // codes)
        return _Plan(steps=int(options.get("steps", MultiCodeSettings.steps)), extra_steps=0, restarts=1,
                     chunks=math.ceil(n_images / per))
    options = dict(options)
    tune_steps = 0
    if method == "hybrid":
        from ganinv.inverters.hybrid import HYBRID_DEFAULTS
        from ganinv.train.encoder import encoder_space

        if options.get("space", encoder_space(G)) != encoder_space(G):
            raise InputError(f"--method hybrid optimises in the encoder's space ({encoder_space(G)}); drop --space")
        options = {**HYBRID_DEFAULTS, **options, "space": encoder_space(G)}
    if method == "pti":
        from ganinv.inverters.pti import PTISettings

        tune_steps = int(options.pop("pti_steps", PTISettings.steps))
        options.setdefault("space", "w" if "w" in G.latent_spaces else "z")
    merged = dict(options)
    if preset is not None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        merged = {**PRESETS[preset], **options}
    s = replace(OptimizeSettings(), **merged)
    space = s.space or G.default_space
    if preset is not None and "space" not in options and space not in G.latent_spaces:
        raise InputError(f"preset {preset!r} inverts in {space!r}, which the {G.arch} generator does not have "
                         f"(it has: {', '.join(G.latent_spaces)}); add --space {G.default_space}")
    G.space(space)
    if s.noise in ("joint", "after") and not G.noise_shapes:
        hint = "; add --noise fixed" if preset is not None and "noise" not in options else ""
        why = f"preset {preset!r} optimises noise maps" if hint else f"--noise {s.noise} optimises noise maps"
        raise InputError(f"{why}, which the {G.arch} generator does not have{hint}")
    for name in ("steps", "restarts"):
        if getattr(s, name) < 1:
            raise InputError(f"--{name} must be ≥ 1, got {getattr(s, name)}")
    if s.batch_size is not None and s.batch_size < 1:
        raise InputError(f"--batch-size must be ≥ 1, got {s.batch_size}")
    s = replace(s, optimizer=resolve_optimizer(s))
    if s.optimizer == "lbfgs" and s.noise == "joint" and G.noise_shapes and s.noise_reg > 0:
        resolve_noise(G, s.noise, s.optimizer, s.noise_reg)  # refused with its reason, before anything runs
    if s.noise == "auto":
        s = replace(s, noise=resolve_noise(G, s.noise, s.optimizer, s.noise_reg))
    noise_steps = 0
    if s.noise == "after":
        noise_steps = s.noise_steps if s.noise_steps is not None else s.steps // 2
    rows = n_images * s.restarts
    noise_grad = s.noise in ("joint", "after")
    chunk = s.batch_size or auto_batch_size(G, rows, space=space, noise_grad=noise_grad)
    extra = int(getattr(s, "polish_steps", 0) or 0) + noise_steps + tune_steps  # phases after the latent one
    coarse = s.coarse
    if method == "hybrid" and float(options.get("domain", 0) or 0) > 0:
        coarse = None  # the domain regulariser reads the full image: the engine runs no coarse stages
    stages = parse_stages(G, coarse, loss=s.loss, noise=s.noise)
    plan_coarse = []
    for k, r in enumerate(stages):
        rows_r = rows if k == 0 else n_images
        view = CoarseView(G, r)
        chunk_r = s.batch_size or auto_batch_size(view, rows_r, space=space)
        plan_coarse.append((f"coarse {r}px", coarse_steps(s.steps, s.coarse_steps), math.ceil(rows_r / chunk_r)))
    if stages:
        rows = n_images  # the full-resolution run starts from the coarse latent, one row per image
        chunk = s.batch_size or auto_batch_size(G, rows, space=space, noise_grad=noise_grad)
    return _Plan(steps=s.steps, extra_steps=extra, restarts=1 if stages else s.restarts,
                 chunks=math.ceil(rows / chunk), coarse=tuple(plan_coarse))


# ----------------------------------------------------------------------------------------------------------
# The shared core
# ----------------------------------------------------------------------------------------------------------

def _num(value: Any, digits: int = 6) -> float | None:
    """A finite float rounded for JSON, or None."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def run_inversion(G: Generator, model_name: str, targets: list[Target], out_dir: Path, *,
                  options: dict[str, Any] | None = None, preset: str | None = None,
                  discriminator: nn.Module | None = None, video: Path | None = None, classifier: bool = True,
                  failures: list[dict[str, str]] | None = None, title: str | None = None,
                  method: str = "optimize", method_options: dict[str, Any] | None = None,
                  encoder: Any = None, latent_format: str = "ganinv",
                  paste: PasteSettings | None = None, pose: bool = False) -> InvertOutcome:
    """Invert ``targets`` with one :func:`ganinv.inverters.invert` call and write everything to ``out_dir``.

    Args:
        G: the generator (on the device to use).
        model_name: shown in the table and recorded in ``summary.json``.
        targets: images (``[C, H, W]`` for ``G``) with their output stems (unique).
        out_dir: created if missing; existing files other than the ones written are left alone.
        options: engine options the user chose (``OptimizeSettings`` field names); nothing else is passed.
        preset: a reference schedule the options override.
        discriminator: for the ``dfeat`` loss.
        video: write an animation of the optimisation there (``.gif`` or ``.mp4``).
        classifier: score class preservation with the bundled digit classifier (1-channel 32×32 generators only).
        failures: inputs that could not be read (recorded in ``summary.json``).
        title: table title.
        method: ``optimize``, ``encoder``, ``hybrid``, ``pti``, ``multicode`` or ``hyper``.
        method_options: the method's own settings (e.g. ``passes``, ``domain``, ``rank``); ``options`` go to its
            optimisation phase (hybrid) or pivot (pti).
        encoder: encoder module / folder / bundled name for ``encoder`` and ``hybrid`` (None: the bundled one);
            for ``hyper``, the hypernetwork (module / folder / bundled name; None: the bundled one).
        latent_format: also write the codes in another tool's format (:data:`ganinv.latentfiles.LATENT_FORMATS`:
            ``e4e``, ``restyle``, ``rosinality``, ``pti``); ``ganinv`` / ``nvidia`` write only the ``.npz``.
        paste: write ``<group>.pasted.png`` per photo, its targets' reconstructions pasted back (targets framed by
            ``--align``; the others are left out).
        pose: ``optimize`` on a StyleGAN3 only: optimise each image's input translation and rotation with its code
            (:func:`ganinv.inverters.pose.invert_pose`); the ``.npz`` records ``pose`` and ``transform``.
    """
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from ganinv.memory import human_bytes, in_use

    from ganinv import metrics as M
    from ganinv.inverters import invert
    from ganinv.io import plot_loss_curves, save_comparison, save_video
    from ganinv.modelfile import atomic_write

    options = dict(options or {})
    method_options = dict(method_options or {})
    failures = list(failures or [])
    if not targets:
        raise InputError("no images to invert")
    check_out_dir(out_dir)
    check_video_path(video)
    if video is not None and method not in ("optimize", "hybrid", "multicode"):
        raise InputError(f"--video shows an optimisation: use it with --method optimize or hybrid, not {method}")
    B = len(targets)
    y = torch.stack([t.image for t in targets])
    plan_opts = {**options, **({"pti_steps": method_options["steps"]} if method == "pti" and "steps" in
                               method_options else {}), **(method_options if method == "multicode" else {})}
    plan = plan_for(G, B, plan_opts, preset, method)
    total = plan.coarse_total + plan.per_chunk * plan.chunks
    noun = "image" if B == 1 else "images"
    base_desc = f"inverting {B} {noun}"

    n_video = min(B, VIDEO_MAX_IMAGES)
    frames: list[Tensor] = []
    canvas = torch.zeros((n_video, *y.shape[1:])) if video is not None else None
    # progress: chunks run one after the other, each through its phases (latent, then e.g. polish / noise maps)
    chunk_no, per_chunk = 0, plan.per_chunk
    phase_name, phase_start, phase_len = "", 0, 0
    coarse_chunks: dict[str, int] = {}
    started = False

    # the bar starts with the first step, so an option the engine refuses leaves no empty bar behind
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]} · {task.fields[rows]} rows · {task.fields[mem]}"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
    task = progress.add_task(base_desc, total=total, loss="–", rows="–", mem="–", start=False)
    try:
        def callback(step: int, state: Any) -> None:
            nonlocal chunk_no, total, per_chunk, phase_name, phase_start, phase_len, started
            if not started:
                started = True
                progress.start()
                progress.start_task(task)
            if state.phase.startswith("coarse "):  # a coarse-to-fine stage: its own steps, chunk by chunk
                before, steps_c, chunks_c = plan.coarse_offset(state.phase)
                if step == 0:
                    coarse_chunks[state.phase] = coarse_chunks.get(state.phase, 0) + 1
                # (a lagging image's rerun is one more chunk: the bar waits at the stage's end)
                done = before + min((coarse_chunks[state.phase] - 1) * steps_c + step + 1, steps_c * chunks_c)
                progress.update(task, completed=done, description=f"{base_desc} · {state.phase}",
                                loss=f"{float(state.loss.mean()):.4g}", rows=str(int(state.active.sum())),
                                mem=human_bytes(in_use(G.device)))
                return
            if state.phase == "latent" and step == 0 and phase_name != "tune":  # a new chunk starts
                if chunk_no:
                    per_chunk = max(per_chunk, phase_start + phase_len)
                chunk_no += 1
                phase_name, phase_start, phase_len = state.phase, 0, state.total_steps
            elif state.phase != phase_name:  # the chunk's next phase
                phase_name, phase_start, phase_len = state.phase, phase_start + phase_len, state.total_steps
            done = plan.coarse_total + (chunk_no - 1) * per_chunk + phase_start + step + 1
            if done > total:
                total = done
                progress.update(task, total=total)
            desc = base_desc + (f" · chunk {chunk_no}/{plan.chunks}" if plan.chunks > 1 else "") + \
                (f" · {state.phase}" if state.phase != "latent" else "")
            active = int(state.active.sum()) if state.active is not None else int(state.loss.shape[0])
            progress.update(task, completed=done, description=desc, loss=f"{float(state.loss.mean()):.4g}",
                            rows=str(active), mem=human_bytes(in_use(G.device)))
            if canvas is not None:
                every = max(1, state.total_steps // VIDEO_FRAMES)
                if step % every == 0 or step == state.total_steps - 1:
                    rows = state.rows.cpu()
                    image_idx = rows // plan.restarts
                    keep = (rows % plan.restarts == 0) & (image_idx < n_video)
                    if keep.any():
                        canvas[image_idx[keep]] = state.image[keep.to(state.image.device)].detach().cpu().clamp(0, 1)
                    frames.append(canvas.clone())

        extra: dict[str, Any] = {"encoder": encoder} if method in ("encoder", "hybrid") else {}
        if method == "optimize" and pose:
            from ganinv.inverters.pose import invert_pose

            result = invert_pose(G, y, callback=callback, **options)
        elif method == "optimize":
            result = invert(G, y, preset=preset, discriminator=discriminator, callback=callback, **options)
        elif method == "encoder":
            result = invert(G, y, method=method, **extra, **method_options)
        elif method == "hyper":  # --encoder names the hypernetwork; its recorded pivot encoder makes the codes
            result = invert(G, y, method=method, hyper=encoder, **method_options)
        elif method == "multicode":
            result = invert(G, y, method=method, callback=callback, **method_options, **options)
        elif method == "pti":  # the optimisation options make the pivot; --pti-steps/--rank the tuning
            result = invert(G, y, method=method, callback=callback, pivot=options, **method_options)
        else:
            result = invert(G, y, method=method, discriminator=discriminator if method == "hybrid" else None,
                            callback=callback, **extra, **method_options, **options)
        progress.update(task, completed=total, description=base_desc)
    finally:
        if started:
            progress.stop()
    from ganinv.cli.classes import record_classes

    record_classes(G, result, [t.stem for t in targets], console)  # class-conditional models: the class, recorded

    image = result.image.detach().cpu()
    m = {k: v.detach().cpu() for k, v in result.metrics.items()}
    if "pose" in result.extra:  # --pose: (dx, dy) in image widths, angle in degrees
        for t, (dx, dy, deg) in zip(targets, result.extra["pose"].tolist()):
            console.print(f"{escape(t.stem)}: pose shift ({dx:+.3f}, {dy:+.3f}) widths, rotation {deg:+.2f}°")
    for note in result.notes:  # "target i: ..." → the image's stem
        idx, _, text = note.partition(": ")
        who = targets[int(idx.split()[-1])].stem if idx.startswith("target ") and idx.split()[-1].isdigit() else idx
        console.print(f"[yellow]note:[/] {escape(who)}: {escape(text or note)}")
    psnr = m["psnr"] if "psnr" in m else M.psnr(image, y)
    ssim = m["ssim"] if "ssim" in m else M.ssim(image, y)
    lpips = M.lpips(image, y, net="alex")
    from ganinv.losses.identity import weights_available

    identity = (M.identity_similarity(image.to(G.device), y.to(G.device)).cpu()  # "ID": only with ArcFace weights
                if image.shape[1] == 3 and weights_available() else None)
    class_kept = None
    if classifier and tuple(G.image_shape) == (1, 32, 32):
        from ganinv import zoo

        if zoo.DEFAULT_CLASSIFIER in zoo.available():
            class_kept = M.class_preservation(zoo.load_classifier(), y, image)

    # ----- write
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = [t.stem for t in targets]
    result.save(out_dir, stems, num_ws=getattr(G, "num_ws", None))
    from ganinv.io import save_npz

    for i, t in enumerate(targets):  # the framing travels with the code
        if t.alignment is not None and t.photo is not None:
            save_npz(out_dir / f"{t.stem}.npz", {**result.npz_arrays(i, getattr(G, "num_ws", None)),
                                                 **alignment_arrays(t.alignment, t.photo)})
    files: dict[str, str] = {}
    pasted: dict[str, str] = {}  # target stem → its photo's pasted file name
    if paste is not None:
        by_photo: dict[str, list[int]] = {}
        for i, t in enumerate(targets):
            if t.alignment is not None and t.photo is not None:
                by_photo.setdefault(t.group or t.stem, []).append(i)
        for group, idx in by_photo.items():
            photo = targets[idx[0]].photo
            assert photo is not None
            out_img = paste_into_photo(photo, [(image[i], targets[i].alignment) for i in idx  # type: ignore[misc]
                                               ], paste)
            name = save_pil(out_img, out_dir / f"{group}.pasted.png").name
            for i in idx:
                pasted[targets[i].stem] = name
    foreign: list[Path] = []
    if latent_format not in ("ganinv", "nvidia"):  # the field's formats, beside the .npz files
        from ganinv.latentfiles import LatentBatch, write_latents

        batch = LatentBatch.from_generator(G, stems, [t.source for t in targets], result.latent, result.space,
                                           result.noise, image)
        foreign = write_latents(latent_format, out_dir, batch)
    shown = min(B, COMPARISON_MAX_IMAGES)
    scale = 4 if shown <= 16 else (2 if shown <= 64 else 1)
    files["comparison"] = str(save_comparison(y[:shown], image[:shown], out_dir / "comparison.png", scale=scale))
    try:
        files["loss"] = str(plot_loss_curves(result.history, out_dir / "loss.png",
                                             title=f"{model_name} · {result.space} · {B} {noun}"))
    except InputError as exc:  # e.g. a history without finite values: the rest is still worth having
        console.print(f"[yellow]note:[/] loss.png not written: {escape(str(exc))}")
    if canvas is not None and video is not None:
        frames.append(image[:n_video].clone())
        vscale = max(1, min(4, 128 // max(1, G.resolution)))
        files["video"] = str(save_video(frames, video, fps=10, scale=vscale))

    seconds = result.seconds / B
    records: list[dict[str, Any]] = []
    for i, t in enumerate(targets):
        records.append({
            "input": t.source, "stem": t.stem, "reconstruction": f"{t.stem}.png", "latent": f"{t.stem}.npz",
            "method": result.method, "space": result.space,
            **({"deltas": f"{t.stem}.deltas.safetensors"} if result.deltas is not None else {}),
            "steps": int(m["steps"][i]) if "steps" in m else None,
            "restart": int(m["restart"][i]) if "restart" in m else None,
            "loss": _num(m["loss"][i]) if "loss" in m else None,
            "psnr": _num(psnr[i], 4), "ssim": _num(ssim[i]),
            "lpips": _num(lpips[i]) if lpips is not None else None,
            **({"id": _num(identity[i])} if identity is not None else {}),
            "class_kept": bool(class_kept[i]) if class_kept is not None else None,
            "seconds": _num(seconds, 4), "notes": t.notes,
            **({"diverged": bool(m["diverged"][i])} if "diverged" in m else {}),
            **({"photo": t.photo, "alignment": json.loads(t.alignment.to_json())} if t.alignment is not None else {}),
            **({"pasted": pasted[t.stem]} if t.stem in pasted else {}),
        })

    def mean(key: str) -> float | None:
        vals = [float(r[key]) for r in records if r[key] is not None]
        return sum(vals) / len(vals) if vals else None

    means = {key: mean(key) for key in ("psnr", "ssim", "lpips", *(["id"] if identity is not None else []),
                                        "class_kept", "steps", "loss")}
    summary = {
        "model": model_name, "method": result.method, "space": result.space, "num_images": B,
        "device": str(G.device), "preset": preset,
        "options": {**{k: "tensor" if isinstance(v, torch.Tensor) else v for k, v in options.items()},
                    **method_options},
        "settings": result.settings,
        "seconds": _num(result.seconds, 3), "mean": {k: _num(v) for k, v in means.items()},
        "records": records, "failures": failures, "files": files, "latent_format": latent_format,
        **({"paste": {"mask": paste.mask_path, "color_match": paste.color_match}} if paste is not None else {}),
        **({"latent_files": [str(p.relative_to(out_dir)) for p in foreign]} if foreign else {}),
    }
    atomic_write(out_dir / "summary.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, default=str) + "\n"))
    files["summary"] = str(out_dir / "summary.json")

    # ----- report
    show_lpips, show_cls = lpips is not None, class_kept is not None
    table = Table(title=title or f"{model_name} · {result.method} in {result.space} · {B} {noun} "
                                 f"({result.seconds:.1f} s)")
    table.add_column("image", overflow="fold")
    for header in ("psnr (dB)", "ssim", *(["lpips"] if show_lpips else []), *(["ID"] if identity is not None else []),
                   *(["class kept"] if show_cls else []), "steps"):
        table.add_column(header, justify="right")
    for r in records:
        cells = [r["stem"], _fmt(r["psnr"], 2), _fmt(r["ssim"], 4)]
        if show_lpips:
            cells.append(_fmt(r["lpips"], 4))
        if identity is not None:
            cells.append(_fmt(r["id"], 4))
        if show_cls:
            cells.append("yes" if r["class_kept"] else "no")
        cells.append(str(r["steps"]) if r["steps"] is not None else "—")
        table.add_row(*cells)
    table.add_section()
    mean_cells = ["mean", _fmt(means["psnr"], 2), _fmt(means["ssim"], 4)]
    if show_lpips:
        mean_cells.append(_fmt(means["lpips"], 4))
    if identity is not None:
        mean_cells.append(_fmt(means["id"], 4))
    if show_cls:
        mean_cells.append(_fmt(None if means["class_kept"] is None else 100 * means["class_kept"], 1) + "%")
    mean_cells.append(_fmt(means["steps"], 1))
    table.add_row(*mean_cells, style="bold")
    print_table(table)
    extras = ", ".join(Path(files[k]).name for k in ("comparison", "loss") if k in files)
    deltas = " and generator deltas (.deltas.safetensors)" if result.deltas is not None else ""
    console.print(f"wrote {B} reconstruction{'s' if B != 1 else ''} (.png), latent{'s' if B != 1 else ''} "
                  f"(.npz){deltas} to {escape(str(out_dir))}/ with summary.json, {extras}")
    if foreign:
        shown_files = ", ".join(str(p.relative_to(out_dir)) for p in foreign[:3]) + (" …" if len(foreign) > 3 else "")
        console.print(f"wrote the codes in {latent_format}'s format: {escape(shown_files)}")
    if pasted:
        n_p = len(set(pasted.values()))
        console.print(f"wrote {n_p} photo{'s' if n_p != 1 else ''} with the reconstructions pasted back (.pasted.png)")
    if "video" in files:
        console.print(f"wrote the optimisation video to {escape(files['video'])}")
    if lpips is None:
        console.print("[dim]lpips left out: its AlexNet weights are not in the torch hub cache[/]")
    return InvertOutcome(result, records, failures, out_dir, files)


def report_failures(failures: list[dict[str, str]]) -> None:
    """Print the inputs that failed, one line each."""
    if not failures:
        return
    n = len(failures)
    console.print(f"[bold red]{n} input{'s' if n != 1 else ''} failed:[/]")
    for f in failures:
        console.print(f"  {escape(f['input'])}: {escape(f['error'])}")


# ----------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------

def invert(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images (not recursive).",
                                                 show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing; other files in "
                                          "it are left alone).", show_default=False)],
    method: Annotated[str, typer.Option(help="optimize, encoder (one pass + --passes refinement), hybrid "
                                        "(encoder start, then optimisation), pti (pivot + generator tuning, "
                                        "saved as weight deltas), multicode (N codes blended at a layer, "
                                        "mGANprior) or hyper (StyleGAN2: encoder pivot + per-image weight "
                                        "offsets from a hypernetwork, saved as PTI-style deltas).")] = "optimize",
    codes: Annotated[Optional[int], typer.Option(help="multicode: number of codes (10).")] = None,
    layer: Annotated[Optional[int], typer.Option(help="multicode: composition layer, 1-based (default 2 = 8×8).")
                     ] = None,
    encoder: Annotated[Optional[str], typer.Option(help="Encoder folder or bundled name for --method encoder/"
                                                   "hybrid (default: the bundled one for the model); for "
                                                   "--method hyper, the hypernetwork folder (`ganinv "
                                                   "train-encoder --arch hyper --export`).")] = None,
    passes: Annotated[Optional[int], typer.Option(help="Encoder passes (ReStyle refinement; encoder/hybrid), or "
                                                  "hypernetwork passes (hyper; default: as trained).")
                      ] = None,
    domain: Annotated[Optional[float], typer.Option(help="Hybrid: weight of IDInvert's domain regulariser.")
                      ] = None,
    pti_steps: Annotated[Optional[int], typer.Option(help="PTI: maximum generator-tuning steps.")] = None,
    rank: Annotated[Optional[int], typer.Option(help="PTI: rank of each weight delta (0 = full).")] = None,
    prior: Annotated[Optional[float], typer.Option(help="Weight of the latent prior (≥ 0).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop an image after this many steps without "
                                                    "improvement.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Reference schedule: nvidia or rosinality (explicit "
                                                  "options override it).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Rows per optimisation batch "
                                                      "(default: as many as fit in --max-memory).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (same seed, same result).")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="Run the generator through torch.compile.")] = False,
    video: Annotated[Optional[Path], typer.Option(help="Also write the optimisation as a .gif (or .mp4).")] = None,
    no_classifier: Annotated[bool, typer.Option("--no-classifier", help="Skip class preservation (bundled digit "
                                                "classifier).")] = False,
    id_weights: Annotated[Optional[Path], typer.Option(
        "--id-weights", help="ArcFace IR-SE-50 state dict (model_ir_se50.pth, as pSp uses; or CurricularFace's) for "
        "the 'id' loss term and the ID column (identity similarity of RGB faces); default $GANINV_ARCFACE, then "
        "ganinv's weights cache.")] = None,
    pose: Annotated[bool, typer.Option("--pose", help="StyleGAN3: also optimise each image's input translation and "
                                       "rotation (for unaligned images); the .npz records the pose, and `ganinv edit` "
                                       "renders the code with it.")] = False,
    latent_format: Annotated[str, typer.Option("--latent-format", help="Latent files to write: ganinv (default: "
                                               "<stem>.npz per image, w [1, num_ws, w_dim] or z [1, z_dim], plus "
                                               "optimised noise_<i> maps); nvidia (the same .npz: NVIDIA's "
                                               "projected_w.npz layout); or, beside the .npz files, e4e "
                                               "(latents.pt, one tensor [N, num_ws, w_dim]), restyle (latents.npy, "
                                               "a pickled dict {image name: \\[num_ws, w_dim]}, as ReStyle/HyperStyle "
                                               "write it), rosinality (<first stem>.pt, {image path: {img, latent, "
                                               "noise}} like its projector.py) or pti (<stem>/0.pt, a [1, num_ws, "
                                               "w_dim] pivot per image). The last four hold W/W+ codes.")
                     ] = "ganinv",
    engine: Engine = Engine(),
    framing: Framing = Framing(),
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Invert images into a generator's latent space: reconstructions, latents (.npz), metrics and figures in OUT.

    All images are optimised together in one batched run. Unreadable files (and, with --align face, photos
    without a usable face) are skipped and reported; the exit code is 1 when any input failed.
    """
    from ganinv.io import collect_images

    check_out_dir(out_dir)
    check_video_path(video)
    framing.check()
    if patience is not None and patience < 1:
        raise InputError(f"--patience must be ≥ 1, got {patience}")
    if prior is not None and not (prior >= 0 and math.isfinite(prior)):
        raise InputError(f"--prior must be a finite number ≥ 0, got {prior}")
    from ganinv.losses import identity as id_net

    id_net.set_weights_path(id_weights)
    if id_weights is not None or id_net.weights_available():
        id_net.cached_backbone()  # a missing, corrupt or foreign ArcFace file: one sentence, before anything runs
    loss_terms = check_loss(engine.loss)
    engine.apply_memory()
    dev = runtime.setup()

    given = {**engine.options(method), "prior": prior, "patience": patience, "batch_size": batch_size,
             "seed": seed, "compile": True if compile else None}
    options = {k: v for k, v in given.items() if v is not None}
    method_given = {"encoder": {"passes": passes}, "hybrid": {"passes": passes, "domain": domain},
                    "pti": {"steps": pti_steps, "rank": rank},
                    "multicode": {"codes": codes, "layer": layer}, "hyper": {"passes": passes}}.get(method, {})
    method_options = {k: v for k, v in method_given.items() if v is not None}
    wrong = [flag for flag, value, ok in (("--passes", passes, ("encoder", "hybrid", "hyper")),
                                          ("--domain", domain, ("hybrid",)),
                                          ("--pti-steps", pti_steps, ("pti",)), ("--rank", rank, ("pti",)),
                                          ("--encoder", encoder, NETWORK_METHODS),
                                          ("--codes", codes, ("multicode",)), ("--layer", layer, ("multicode",)))
             if value is not None and method not in ok]
    if wrong:
        raise InputError(f"{', '.join(wrong)} do(es) not apply to --method {method}")
    check_encoder_options(method, options)
    if method != "optimize" and preset is not None:
        raise InputError("--preset is a reference optimisation schedule: use it with --method optimize")
    if pose and (method != "optimize" or preset is not None or latent_format not in ("ganinv", "nvidia")):
        raise InputError("--pose works with --method optimize, without --preset, writing ganinv .npz codes (other "
                         "tools' latent files have no place for the pose)")

    G, name = model.load()
    check_square(G)
    paste = framing.paste_settings(G.resolution)
    from ganinv.latentfiles import check_format

    latent_format = check_format(latent_format, space=options.get("space", G.default_space), method=method)
    discriminator = load_discriminator_for(model.model, model.generator, G) if "dfeat" in loss_terms else None
    G = G.to(dev)
    if discriminator is not None:
        discriminator = discriminator.to(dev)
    from ganinv.cli.classes import planning_view

    # unknown preset/method, missing space/noise maps: fail early (a conditional model without --class: as inferred)
    plan_for(planning_view(G), 1, options, preset, method)
    if pose:
        from ganinv.inverters.pose import PosedGenerator

        PosedGenerator(G, options.get("space", "w+"))  # a StyleGAN3, in w or w+: else one sentence
    enc = method_network(method, encoder, G)

    paths, problems = collect_images(inputs)
    failures = [{"input": str(p), "error": why} for p, why in problems]
    for f in failures:
        console.print(f"[yellow]skipped:[/] {escape(f['input'])}: {escape(f['error'])}")
    targets, load_failures = load_targets(paths, G, out_dir, framing.align)
    failures += load_failures
    if not targets:
        could = "could be read" if framing.align == "none" else "could be read and framed"
        raise InputError(f"none of the {len(paths)} input file(s) {could}: "
                         + "; ".join(f["error"] for f in failures[:3]) + (" …" if len(failures) > 3 else ""))
    from ganinv.cli.classes import prepare_inference

    # a class-conditional model without --class: each image's class is inferred (and recorded)
    G = prepare_inference(G, [t.image for t in targets], options, method)
    run_inversion(G, name, targets, out_dir, options=options, preset=preset, discriminator=discriminator,
                  video=video, classifier=not no_classifier, failures=failures, method=method,
                  method_options=method_options, encoder=enc, latent_format=latent_format, paste=paste, pose=pose)
    report_failures(failures)
    if failures:
        raise typer.Exit(1)
