"""Images in and out.

Images are float tensors ``[B, C, H, W]`` in [0, 1]. Every file is written through a
temporary name and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import math
import os
import re
import struct
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ganinv.errors import InputError
from ganinv.modelfile import atomic_write


def to_pil(image: Tensor) -> Image.Image:
    """One image ``[C, H, W]`` in [0, 1] (C = 1 or 3) → PIL image (L or RGB)."""
    arr = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0].numpy(), mode="L")
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Tile ``[B, C, H, W]`` images into one ``[C, H', W']`` image (``nrow`` per row, default ≈ √B)."""
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y:y + h, x:x + w] = images[i].detach().cpu().clamp(0, 1)
    return grid


def save_image(image: Tensor, path: str | Path, scale: int = 1) -> Path:
    """Save one ``[C, H, W]`` image in [0, 1] as PNG (nearest-neighbour ``scale``-× enlargement)."""
    path = Path(path)
    pil = to_pil(image)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    fmt = (path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))
    return path


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Save ``[B, C, H, W]`` images in [0, 1] as one grid image."""
    return save_image(make_grid(images, nrow=nrow), path, scale=scale)


def _fitting_font(draw: Any, text: str, width: int, size: int) -> Any:
    """The default font at the largest size ≤ ``size`` (≥ 8) at which ``text`` is at most ``width`` px wide."""
    from PIL import ImageFont

    for s in range(size, 7, -1):
        font = ImageFont.load_default(size=s)
        if draw.textlength(text, font=font) <= width:
            return font
    return ImageFont.load_default(size=8)


def save_labeled_grid(images: Tensor, labels: Sequence[str], path: str | Path, scale: int = 1,
                      padding: int = 2) -> Path:
    """Save ``[B, C, H, W]`` images in [0, 1] as a grid of ``len(labels)`` columns under a header strip that
    names each column (``labels[j]`` centred above column j; text shrinks to fit, a label too long for its
    column even at 8 px is cut with "…"). Returns ``path``."""
    from PIL import ImageDraw

    path = Path(path)
    ncol = len(labels)
    if ncol == 0 or images.shape[0] % ncol:
        raise ValueError(f"{images.shape[0]} images do not fill rows of {ncol} labelled columns")
    grid = to_pil(make_grid(images, nrow=ncol, padding=padding))
    if scale > 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    pitch, offset = (images.shape[-1] + padding) * scale, padding * scale
    cell = images.shape[-1] * scale
    size = max(10, min(28, cell // 9))
    header_h = size + 2 * max(3, size // 3)
    canvas = Image.new(grid.mode, (grid.width, grid.height + header_h), 255 if grid.mode == "L" else (255,) * 3)
    canvas.paste(grid, (0, header_h))
    draw = ImageDraw.Draw(canvas)
    ink = 0 if grid.mode == "L" else (0, 0, 0)
    for j, label in enumerate(labels):
        text = str(label)
        font = _fitting_font(draw, text, cell - 2, size)
        while len(text) > 1 and draw.textlength(text, font=font) > cell - 2:
            text = text[:-2] + "…"
        x = offset + j * pitch + cell / 2
        draw.text((x, header_h / 2), text, fill=ink, font=font, anchor="mm")
    fmt = (path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    atomic_write(path, lambda tmp: canvas.save(tmp, format=fmt))
    return path


def image_to_tensor(pil: Image.Image, channels: int) -> Tensor:
    """PIL image → ``[C, H, W]`` float in [0, 1], converted to ``channels`` (1 → L, 3 → RGB)."""
    mode = {1: "L", 3: "RGB"}[channels]
    arr = np.asarray(pil.convert(mode), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------
# Finding and reading target images
# --------------------------------------------------------------------------------------

#: File extensions (lower case) that :func:`collect_images` picks up from directories.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})

# ITU-R 601-2 luma, the weights Pillow's ``convert("L")`` uses (applied here in float).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key that orders ``img2`` before ``img10`` (ties broken by the plain name)."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and directories into a list of image files.

    Each input is taken in the order given. A file is kept as named (whatever its extension:
    :func:`load_target` decides whether it is readable). A directory contributes its
    non-hidden files with an image extension (:data:`IMAGE_EXTENSIONS`, case-insensitive),
    non-recursively, in natural order (``2.png`` before ``10.png``). A path reached twice
    (same file after resolving) appears once, at its first position.

    Returns ``(images, problems)``; ``problems`` holds ``(path, reason)`` for missing paths,
    directories without image files and unreadable directories. Raises :class:`InputError`
    listing the problems when no image is found at all.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    images: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            images.append(p)

    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            try:
                entries = [e for e in p.iterdir()
                           if not e.name.startswith(".") and e.suffix.lower() in IMAGE_EXTENSIONS and e.is_file()]
            except OSError as exc:
                problems.append((p, f"cannot list directory ({exc.strerror or exc})"))
                continue
            if not entries:
                problems.append((p, "directory contains no image files ("
                                 + " ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)) + ")"))
            for e in sorted(entries, key=lambda e: _natural_key(e.name)):
                add(e)
        elif p.is_file():
            add(p)
        elif p.exists():
            problems.append((p, "not a regular file or directory"))
        else:
            problems.append((p, "no such file or directory"))
    if not images:
        if not problems:
            raise InputError("no input images given: pass one or more image files or directories")
        listing = "; ".join(f"{p}: {why}" for p, why in problems)
        raise InputError(f"no images found in the inputs ({listing}); pass image files or directories holding them")
    return images, problems


#: Largest image (width × height) that is decoded; Pillow's own limit only warns between 1× and 2× of it.
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default ``Image.MAX_IMAGE_PIXELS`` (≈ 0.25 GB of 24-bit pixels)

# What Pillow's format plugins raise on truncated or corrupt files, besides OSError (found by fuzzing: e.g. a
# truncated GIF raises IndexError, a damaged PNG header SyntaxError or ValueError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError, AttributeError, OverflowError, NotImplementedError, AssertionError,
                  RecursionError, MemoryError, zlib.error)


def _open_image(path: Path) -> tuple[Image.Image, list[str]]:
    """Open and fully decode the first frame of ``path``; every failure → :class:`InputError`.

    An image whose header declares more than :data:`MAX_IMAGE_PIXELS` is refused before any pixel is
    decoded (a decompression bomb: a few KB of PNG can declare gigapixels)."""
    notes: list[str] = []
    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
    too_big = f"{path} is too large to read safely (over {limit:,} pixels); downscale it first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size  # the header only: no pixel is decoded yet
                if w * h > limit:
                    raise InputError(f"{too_big.removesuffix('; downscale it first')}: it declares {w}×{h} pixels; "
                                     "downscale it first")
                n_frames = int(getattr(img, "n_frames", 1) or 1)
                if n_frames > 1:
                    img.seek(0)
                    notes.append(f"used the first of {n_frames} frames")
                img.load()
                if img.getexif().get(0x0112, 1) in (2, 3, 4, 5, 6, 7, 8):  # EXIF Orientation says "rotate/flip"
                    img = ImageOps.exif_transpose(img)
                    notes.append("applied EXIF orientation")
                else:
                    img = img.copy()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an image file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; check the file's permissions") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(too_big) from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image file Pillow can read (unknown or corrupt format); "
                         "use PNG, JPEG, BMP, GIF, TIFF, WebP or PGM/PPM") from None
    except _DECODE_ERRORS as exc:
        raise InputError(f"{path} could not be decoded (truncated or corrupt file: {type(exc).__name__}: "
                         f"{str(exc)[:160]}); re-export or re-download it") from None
    return img, notes


def _to_float_array(img: Image.Image) -> tuple[np.ndarray, bool, str]:
    """PIL image of any mode → (``[H, W, K]`` float32 in [0, 1] with K ∈ {1, 3} (+1 alpha), has_alpha, extra note)."""
    mode = img.mode
    note = ""
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")

    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
        note = "16-bit values scaled to [0, 1]"
    elif mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("the image holds NaN or infinite values")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if mode == "I" and lo >= 0 and hi <= 65535:
            arr = arr / 65535.0
            note = "integer values scaled from 16-bit to [0, 1]"
        elif mode == "F" and lo >= 0 and hi <= 1:
            pass
        else:
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
            note = f"values rescaled from [{lo:g}, {hi:g}] to [0, 1]"
        arr = arr.astype(np.float32)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(img).astype(np.float32) / 255.0
    else:  # CMYK, YCbCr, LAB, HSV, ... → Pillow's own conversion to RGB
        arr = np.asarray(img.convert("RGB")).astype(np.float32) / 255.0
        mode = "RGB"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr, mode in ("LA", "RGBA"), note


def _shrink_large(img: Image.Image, resolution: int) -> Image.Image:
    """A very large image, centre-cropped and box-averaged in its own 8/32-bit mode to about 4–8× the target
    side before the float conversion: the result is the same up to rounding (a box average is itself an
    antialiasing filter and Lanczos still does the last step), but a 45 MPx image no longer takes ~0.9 GB as
    float RGB (a 500-byte GIF can declare that many pixels; found by fuzzing)."""
    w, h = img.size
    side = min(w, h)
    factor = side // (4 * resolution)
    if factor >= 2 and img.mode == "P" and "transparency" not in img.info:
        img = img.convert("RGB")  # what _to_float_array does to an opaque palette image anyway
    elif factor >= 2 and img.mode == "1":
        img = img.convert("L")
    if factor < 2 or img.mode not in ("L", "RGB", "I", "F"):
        return img
    kept = factor * (side // factor)
    left, top = (w - kept) // 2, (h - kept) // 2
    return img.reduce(factor, box=(left, top, left + kept, top + kept))


def _resize_square(arr: np.ndarray, resolution: int,
                   original: tuple[int, int] | None = None) -> tuple[np.ndarray, str]:
    """Centre-crop ``[H, W, K]`` to a square and resize to ``resolution`` (Lanczos, antialiased); the note
    names the ``original`` ``(W, H)`` when the array was already shrunk (:func:`_shrink_large`)."""
    h, w = arr.shape[:2]
    side = min(h, w)
    if h == w == resolution and original in (None, (w, h)):
        return arr, ""
    left, top = (w - side) // 2, (h - side) // 2
    arr = arr[top:top + side, left:left + side]  # crop first: the filter never sees pixels outside the crop
    if side == resolution:
        out = arr
    else:
        out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(arr[:, :, k]), mode="F")
                                   .resize((resolution, resolution), Image.Resampling.LANCZOS))
                        for k in range(arr.shape[2])], axis=2)
    if original is not None:
        w, h = original
    crop = " (centre crop)" if h != w else ""
    if side == resolution and min(w, h) == resolution:
        note = f"centre-cropped {w}×{h} → {resolution}×{resolution}"
    else:
        verb = "upscaled" if side < resolution else "resized"
        note = f"{verb} {w}×{h} → {resolution}×{resolution}{crop}"
    return np.clip(out, 0.0, 1.0), note


def _composite(arr: np.ndarray, background: float, notes: list[str], *, note_opaque: bool) -> np.ndarray:
    """``[H, W, C+1]`` colour + alpha in [0, 1] → ``[H, W, C]`` composited over the grey level ``background``;
    says so in ``notes`` (and, with ``note_opaque``, that a fully opaque alpha channel was dropped)."""
    colour, alpha = arr[:, :, :-1], arr[:, :, -1:]
    if float(alpha.min()) < 1.0:
        bg = {0.0: "black", 1.0: "white"}.get(background, f"grey {background:g}")
        notes.append(f"composited transparent pixels over {bg}")
        return colour * alpha + background * (1.0 - alpha)
    if note_opaque:
        notes.append("dropped the (fully opaque) alpha channel")
    return colour


def load_target(path: str | Path, channels: int, resolution: int, *,
                background: float = 0.0) -> tuple[Tensor, list[str]]:
    """Read an image file as a model target: ``[C, H, W]`` float32 in [0, 1], C = ``channels``, H = W = ``resolution``.

    Anything Pillow reads is accepted (first frame of animations; EXIF orientation applied):

    * 1-bit, L, P (palette) and RGB: Pillow's decoding, scaled by 1/255.
    * 16-bit (``I;16*``): scaled by 1/65535. 32-bit ``I``: by 1/65535 when within [0, 65535],
      otherwise min–max rescaled. ``F``: kept when within [0, 1], otherwise min–max rescaled.
    * Alpha (RGBA, LA, PA, transparent palettes): composited over ``background`` (default 0 =
      black, the background of white-on-black digit models such as MNIST). A fully opaque
      alpha channel is simply dropped.
    * Colour → grey (``channels=1``): ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, the
      weights of Pillow's ``convert("L")``), in float. Grey → colour: the channel is repeated.
    * Size: centre-cropped to a square (shorter side) and resized to ``resolution`` with
      Lanczos filtering (antialiased when downscaling, i.e. area-like averaging).

    Returns ``(image, notes)``: ``notes`` are short human sentences describing each change
    (e.g. ``"converted RGB → L"``, ``"resized 64×48 → 32×32 (centre crop)"``); empty when the
    file already matched. An unreadable, non-image or truncated file raises :class:`InputError`
    naming the file.
    """
    path = Path(path)
    if channels not in (1, 3):
        raise InputError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not isinstance(resolution, int) or resolution < 1:
        raise InputError(f"resolution must be a positive integer, got {resolution!r}")
    if not 0.0 <= background <= 1.0:
        raise InputError(f"background must be in [0, 1], got {background}")
    img, notes = _open_image(path)
    src_mode = img.mode
    size = img.size
    img = _shrink_large(img, resolution)
    try:
        arr, has_alpha, note = _to_float_array(img)
    except ValueError as exc:
        raise InputError(f"{path} cannot be used as an image: {exc}") from None

    if has_alpha:
        arr = _composite(arr, background, notes, note_opaque=True)

    target = "L" if channels == 1 else "RGB"
    how = ""
    if arr.shape[2] == 3 and channels == 1:
        arr = (arr @ _LUMA)[:, :, None]
        how = " (luma)"
    elif arr.shape[2] == 1 and channels == 3:
        arr = np.repeat(arr, 3, axis=2)
        how = " (grey repeated)"
    if src_mode != target:
        notes.append(f"converted {src_mode} → {target}{how}" + (f", {note}" if note else ""))

    arr, size_note = _resize_square(arr, resolution, size)
    if size_note:
        notes.append(size_note)
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)).clamp_(0.0, 1.0)
    return tensor, notes


def load_photo(path: str | Path, *, background: float = 0.0) -> tuple[Image.Image, list[str]]:
    """Read an image file at its full size as an 8-bit RGB photo (for face detection, alignment and paste-back).

    Decoding, EXIF orientation and the safety limits are those of :func:`load_target`; alpha is composited over
    ``background`` (0 = black … 1 = white), grey is repeated to three channels, 16-bit / float values are scaled
    as there and rounded to 0..255. Returns ``(photo, notes)``: a PIL ``RGB`` image of the file's ``(width,
    height)`` and short sentences about the conversion. An unreadable file raises :class:`InputError` naming it.
    """
    path = Path(path)
    if not 0.0 <= background <= 1.0:
        raise InputError(f"background must be in [0, 1], got {background}")
    img, notes = _open_image(path)
    if img.mode == "RGB":
        return img, notes
    try:
        arr, has_alpha, note = _to_float_array(img)
    except ValueError as exc:
        raise InputError(f"{path} cannot be used as an image: {exc}") from None
    if has_alpha:
        arr = _composite(arr, background, notes, note_opaque=False)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if note:
        notes.append(note)
    rgb = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB"), notes


# --------------------------------------------------------------------------------------
# Latents
# --------------------------------------------------------------------------------------

def save_npz(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` (plain NumPy arrays, no pickles) to an ``.npz`` file at ``path``, atomically:
    a reader sees the old file or the new one, never half of one. Returns ``path``."""
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    atomic_write(path, write)
    return path


#: Largest array ganinv reads from an ``.npy``/``.npz`` file, in bytes (latents, masks, kernels and observations are
#: far smaller). An array whose header declares more is refused before anything is allocated.
MAX_ARRAY_BYTES = 256 * 2**20
#: Most arrays read from one ``.npz`` archive.
MAX_NPZ_MEMBERS = 1024

# What NumPy's .npy/.npz parsing raises on damaged bytes (the header is a Python literal, read with tokenize).
_NPY_ERRORS = (ValueError, TypeError, SyntaxError, tokenize.TokenError, UnicodeDecodeError, OSError, EOFError,
               zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, KeyError, struct.error, NotImplementedError,
               OverflowError, MemoryError, RecursionError)


def _read_npy(fh: Any, available: int, where: str) -> np.ndarray:
    """Read one ``.npy`` stream of ``available`` bytes, checking its header before reading any data: plain
    numbers or text only (no pickles), at most :data:`MAX_ARRAY_BYTES`, and no more data than the stream holds
    (so a lying header can neither make NumPy allocate nor inflate a zip bomb)."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        header_len = fh.tell()
    except _NPY_ERRORS as exc:
        raise InputError(f"{where} is not a readable .npy array (damaged header: "
                         f"{type(exc).__name__}: {str(exc)[:120]})") from None
    if dtype.hasobject:
        raise InputError(f"{where} contains pickled Python objects, which are refused for safety; store plain "
                         "numeric arrays")
    if dtype.kind not in "biufcSU" or dtype.itemsize == 0:
        raise InputError(f"{where} holds an array of dtype {dtype}; ganinv reads numbers (or text) only")
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise InputError(f"{where} declares an array of shape {list(shape)} ({nbytes / 2**20:,.0f} MB), more than "
                         f"the {MAX_ARRAY_BYTES // 2**20} MB ganinv reads from an array file; refusing it")
    if nbytes > available - header_len:
        raise InputError(f"{where} is truncated: its header declares {nbytes:,} bytes of data "
                         f"(shape {list(shape)}) but the file holds {max(0, available - header_len):,}; re-create it")
    try:
        data = fh.read(nbytes)
        if len(data) != nbytes:
            raise EOFError(f"{len(data):,} of {nbytes:,} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
    except _NPY_ERRORS as exc:
        raise InputError(f"{where} is not a readable .npy array ({type(exc).__name__}: {str(exc)[:120]})") from None


def load_npy(path: str | Path) -> np.ndarray:
    """Read a plain ``.npy`` array (``allow_pickle=False``: nothing in the file runs); a pickled, damaged, truncated
    or oversized (> :data:`MAX_ARRAY_BYTES`) file is one clear :class:`InputError` naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read_npy(fh, os.fstat(fh.fileno()).st_size, str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an .npy file") from None
    except OSError as exc:
        raise InputError(f"{path} is not a readable .npy file ({exc.strerror or exc})") from None


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive into ``{key: array}``, each checked as :func:`load_npy` does
    (no pickles, no array over :data:`MAX_ARRAY_BYTES`, no header that claims more data than its member holds:
    a zip bomb is refused before it is inflated). Members that are not ``.npy`` arrays are skipped."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            if len(members) > MAX_NPZ_MEMBERS:
                raise InputError(f"{path} holds {len(members):,} arrays; ganinv reads at most {MAX_NPZ_MEMBERS}")
            total = 0
            for info in members:
                where = f"{path} (array {info.filename[:-4]!r})"
                with zf.open(info) as fh:
                    arr = _read_npy(fh, info.file_size, where)
                total += arr.nbytes
                if total > MAX_ARRAY_BYTES:
                    raise InputError(f"{path} holds more than {MAX_ARRAY_BYTES // 2**20} MB of arrays; refusing it")
                out[info.filename[:-4]] = arr
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except _NPY_ERRORS as exc:
        raise InputError(f"{path} is not a readable .npz file ({type(exc).__name__}: {str(exc)[:120]}); "
                         "re-create it with np.savez") from None
    return out


def save_latent_npz(path: str | Path, key: str, latent: Tensor | np.ndarray) -> Path:
    """Write ``latent`` as float32 under ``key`` in an ``.npz`` file, atomically.

    The invert CLI writes ``"w"`` with shape ``[1, num_ws, w_dim]`` (as NVIDIA's projector
    does) or ``"z"`` with shape ``[1, z_dim]``. Read it back with :func:`load_latent_npz` or
    ``np.load(path)[key]``.
    """
    path = Path(path)
    if not isinstance(key, str) or not key.isidentifier():
        raise InputError(f"npz key must be a plain name such as 'w' or 'z', got {key!r}")
    if isinstance(latent, Tensor):
        arr = latent.detach().to("cpu", torch.float32).numpy()
    else:
        arr = np.asarray(latent, dtype=np.float32)
    return save_npz(path, {key: np.ascontiguousarray(arr)})


def load_latent_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` latent file into a dict ``{key: array}`` (pickles, damaged and oversized
    files refused, see :func:`load_npz`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such latent file; check the path")
    if not path.is_file():
        raise InputError(f"{path} is not a file; pass the .npz file written by `ganinv invert`")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputError(f"{path} is not a readable .npz file ({exc.strerror or exc})") from None
    if magic == b"\x93NUMPY":
        raise InputError(f"{path} holds a single .npy array, not an .npz archive; "
                         "save it with np.savez(path, w=array)")
    if not magic.startswith(b"PK"):
        raise InputError(f"{path} is not an .npz file (no zip signature); pass the .npz written by "
                         "`ganinv invert` or np.savez")
    out = load_npz(path)
    if not out:
        raise InputError(f"{path} contains no arrays; expected a latent under 'w' or 'z'")
    return out


# --------------------------------------------------------------------------------------
# Figures: comparisons, loss curves, videos
# --------------------------------------------------------------------------------------

def _as_batch(images: Tensor, name: str) -> Tensor:
    """Accept ``[C, H, W]`` or ``[B, C, H, W]`` with C ∈ {1, 3}; return ``[B, C, H, W]`` float on CPU."""
    if not isinstance(images, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise InputError(f"{name} must have shape [B, C, H, W] or [C, H, W] with C = 1 or 3, "
                         f"got {list(images.shape)}")
    return images.detach().to("cpu", torch.float32)


def _to_rgb(images: Tensor) -> Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _colormap(values: Tensor, name: str = "inferno") -> Tensor:
    """``[B, H, W]`` in [0, 1] → ``[B, 3, H, W]`` RGB through a matplotlib colormap (256-entry lookup)."""
    from matplotlib import colormaps

    lut = torch.from_numpy(colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3].astype(np.float32))
    idx = (values.clamp(0, 1) * 255).round().long()
    return lut[idx].permute(0, 3, 1, 2).contiguous()


def error_colors(target: Tensor, recon: Tensor, *, vmax: float | None = 1.0) -> Tensor:
    """Error maps ``[B, 3, H, W]``: the absolute error of ``target`` vs ``recon`` (``[B, C, H, W]`` or ``[C, H, W]``
    in [0, 1], clamped) averaged over channels, in matplotlib's 'inferno' colours on ``[0, vmax]`` (None: this
    batch's largest error)."""
    t, r = _to_rgb(_as_batch(target, "target")).clamp(0, 1), _to_rgb(_as_batch(recon, "recon")).clamp(0, 1)
    if t.shape != r.shape:
        raise InputError(f"target {list(target.shape)} and reconstruction {list(recon.shape)} must have the "
                         "same batch size and image size")
    err = (t - r).abs().mean(dim=1)
    scale = float(err.max()) if vmax is None else float(vmax)
    if scale <= 0:
        scale = 1.0
    return _colormap(err / scale)


def comparison_image(target: Tensor, recon: Tensor, *, vmax: float | None = 1.0, padding: int = 2) -> Tensor:
    """One RGB grid ``[3, H', W']``: a row per sample, columns target | reconstruction | error map.

    ``target`` and ``recon`` are ``[B, C, H, W]`` (or ``[C, H, W]``) in [0, 1] with the same B,
    H and W; grey images are repeated to RGB. The error map is the absolute error averaged over
    channels, shown with matplotlib's 'inferno' colormap on the fixed range ``[0, vmax]``
    (default 1: black = exact, bright yellow = maximally wrong, comparable across figures);
    ``vmax=None`` scales to this figure's largest error instead.
    """
    t, r = _to_rgb(_as_batch(target, "target")).clamp(0, 1), _to_rgb(_as_batch(recon, "recon")).clamp(0, 1)
    emap = error_colors(target, recon, vmax=vmax)
    tiles = torch.stack([t, r, emap], dim=1).reshape(-1, 3, *t.shape[2:])
    return make_grid(tiles, nrow=3, padding=padding)


def save_comparison(target: Tensor, recon: Tensor, path: str | Path, scale: int = 4, *,
                    vmax: float | None = 1.0) -> Path:
    """Save :func:`comparison_image` of ``target`` vs ``recon`` as an image (``scale``-× nearest enlargement)."""
    return save_image(comparison_image(target, recon, vmax=vmax), path, scale=scale)


def _series(name: str, values: Any) -> np.ndarray:
    """A history entry → float array ``[T]`` or ``[T, B]`` (non-finite values become NaN)."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"loss history '{name}' must be a list of numbers or of equal-length per-sample "
                         "lists") from None
    if arr.ndim not in (1, 2):
        raise InputError(f"loss history '{name}' must be 1-D (per step) or 2-D (per step, per sample), "
                         f"got shape {list(arr.shape)}")
    return np.where(np.isfinite(arr), arr, np.nan)


def plot_loss_curves(history: Mapping[str, Sequence[float]] | Mapping[str, Sequence[Sequence[float]]],
                     path: str | Path, *, title: str = "Loss curves") -> Path:
    """Plot one line per loss term against the step and save it (PNG, or PDF/SVG by extension), atomically.

    ``history[name]`` is a list of values per step, or a list of per-sample lists per step
    (then the mean is drawn with a shaded min–max band). The y axis is logarithmic when every
    value is positive. Non-finite values are left out of the plot.
    """
    path = Path(path)
    fmt = (path.suffix.lstrip(".") or "png").lower()
    series = {name: _series(name, vals) for name, vals in history.items()}
    series = {name: arr for name, arr in series.items() if arr.size and np.isfinite(arr).any()}
    if not series:
        raise InputError("the loss history is empty (no finite values): nothing to plot")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positive = all(np.nanmin(arr) > 0 for arr in series.values())
    for name, arr in series.items():
        steps = np.arange(arr.shape[0])
        marker = "o" if arr.shape[0] == 1 else None
        if arr.ndim == 2:
            with warnings.catch_warnings():  # all-NaN rows are fine: they are simply not drawn
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, lo, hi = np.nanmean(arr, axis=1), np.nanmin(arr, axis=1), np.nanmax(arr, axis=1)
            (line,) = ax.plot(steps, mean, label=f"{name} (mean, min–max)", marker=marker)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        else:
            ax.plot(steps, arr, label=name, marker=marker)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)" if positive else "loss")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt))
    except ValueError as exc:
        raise InputError(f"cannot save a plot as '{path.suffix}' ({exc}); use .png, .pdf or .svg") from None
    return path


def _video_frames(frames: Sequence[Tensor], scale: int) -> list[np.ndarray]:
    """Frames (``[B, C, H, W]`` → grid, or ``[C, H, W]``) → list of ``[H, W, C]`` uint8 arrays of one size."""
    if len(frames) == 0:
        raise InputError("no frames to write: pass at least one image tensor")
    if scale < 1:
        raise InputError(f"scale must be a positive integer, got {scale}")
    images = []
    for i, f in enumerate(frames):
        if not isinstance(f, Tensor) or f.dim() not in (3, 4) or f.shape[-3] not in (1, 3):
            shape = list(f.shape) if isinstance(f, Tensor) else type(f).__name__
            raise InputError(f"frame {i} must be a [B, C, H, W] or [C, H, W] tensor with C = 1 or 3, got {shape}")
        images.append(make_grid(f) if f.dim() == 4 else f.detach().cpu().clamp(0, 1))
    sizes = {tuple(img.shape[1:]) for img in images}
    if len(sizes) > 1:
        raise InputError(f"all video frames must have the same size, got {sorted(sizes)}")
    rgb = any(img.shape[0] == 3 for img in images)
    out = []
    for img in images:
        if rgb and img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        arr = (img.float() * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        if scale > 1:
            arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
        out.append(np.ascontiguousarray(arr))
    return out


def _mp4_backend() -> str | None:
    """The imageio plugin able to write MP4 here ("FFMPEG" or "pyav"), or None."""
    import importlib.util

    if importlib.util.find_spec("imageio") is None:
        return None
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        return "FFMPEG"
    if importlib.util.find_spec("av") is not None:
        return "pyav"
    return None


def save_video(frames: Sequence[Tensor], path: str | Path, fps: float = 10, scale: int = 4) -> Path:
    """Write an animation, one frame per tensor, atomically.

    Each frame is ``[B, C, H, W]`` (tiled into one grid with :func:`make_grid`) or ``[C, H, W]``,
    in [0, 1]; all frames must give the same size. Frames are enlarged ``scale``-× (nearest).

    * ``.gif`` (Pillow): loops forever. Grey frames are stored exactly (256 grey levels); colour
      frames share one 256-colour palette computed from (up to 32 of) the frames, without
      dithering, so colours do not flicker between frames. Pillow merges identical
      consecutive frames into one longer frame.
    * ``.mp4``: needs ``imageio`` with an ffmpeg backend (``imageio-ffmpeg`` or ``av``); H.264,
      yuv420p (frames are padded to even sizes). Without one, an :class:`InputError` says to
      use ``.gif``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not fps or fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"cannot write video '{path.name}': use a .gif (or .mp4) file name")
    backend = _mp4_backend() if suffix == ".mp4" else None
    if suffix == ".mp4" and backend is None:
        raise InputError(f"cannot write {path.name}: MP4 needs imageio with an ffmpeg backend "
                         "(imageio-ffmpeg or av), which is not installed; save as .gif instead")
    arrays = _video_frames(frames, scale)

    if suffix == ".gif":
        pil = [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, mode="L" if a.shape[2] == 1 else "RGB")
               for a in arrays]
        if pil[0].mode == "RGB":
            pick = np.unique(np.linspace(0, len(pil) - 1, min(len(pil), 32)).round().astype(int))
            sample = np.concatenate([arrays[i] for i in pick], axis=0)
            palette = Image.fromarray(sample, mode="RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
            pil = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in pil]
        duration = max(10, round(1000.0 / fps))
        atomic_write(path, lambda tmp: pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:],
                                                   duration=duration, loop=0, optimize=False))
        return path

    import imageio.v3 as iio

    h, w = arrays[0].shape[:2]
    ph, pw = h % 2, w % 2
    video = np.stack([np.pad(a if a.shape[2] == 3 else np.repeat(a, 3, axis=2), ((0, ph), (0, pw), (0, 0)),
                             mode="edge") for a in arrays])

    def write(tmp: str) -> None:
        named = tmp + ".mp4"  # ffmpeg chooses the container from the file extension
        try:
            if backend == "FFMPEG":
                iio.imwrite(named, video, plugin="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1)
            else:
                iio.imwrite(named, video, plugin="pyav", fps=round(fps), codec="libx264",
                            out_pixel_format="yuv420p")
            os.replace(named, tmp)
        finally:
            Path(named).unlink(missing_ok=True)

    atomic_write(path, write)
    return path
