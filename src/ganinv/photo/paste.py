"""Paste an aligned (e.g. inverted or edited) image back into the photo it was cut from.

The aligned square is warped back with the inverse of its :class:`~ganinv.photo.align.Alignment`'s
homography (``torch.nn.functional.grid_sample``, bicubic) and blended in with a soft mask: by default
the whole square, faded to zero over its outer ``feather`` fraction; or a user mask in aligned space.
Pixels where the mask is zero — everything outside the square — are returned bit-for-bit unchanged.

Images: PIL images, float tensors ``[C, H, W]`` in [0, 1], or uint8 arrays ``[H, W, 3]``. The result has
the original photo's size and kind (a tensor ``[3, H, W]`` in [0, 1] for a tensor, PIL RGB otherwise).
Masks: float tensors ``[H, W]`` / ``[1, H, W]`` or arrays ``[H, W]`` in [0, 1] (uint8 arrays and PIL
images: 0..255), the size of the aligned image.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganinv.errors import InputError
from ganinv.photo._image import ImageLike, image_size, to_rgb_array
from ganinv.photo.align import Alignment
from ganinv.photo.errors import MaskSizeError


def _as_float_image(image: ImageLike, name: str) -> Tensor:
    """→ float tensor ``[3, H, W]`` in [0, 1] (a float tensor input is kept at full precision)."""
    if isinstance(image, Tensor) and image.ndim == 3 and image.is_floating_point():
        to_rgb_array(image, name)  # validation
        t = image.detach().cpu().float()
        return t[:3] if t.shape[0] >= 3 else t.expand(3, -1, -1).clone()
    return torch.from_numpy(to_rgb_array(image, name)).permute(2, 0, 1).float() / 255.0


def _as_mask(mask: Any, size: tuple[int, int]) -> Tensor:
    """User mask → float tensor ``[H, W]`` in [0, 1]; ``size`` is the aligned image's ``(width, height)``."""
    if isinstance(mask, Image.Image):
        m = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
    elif isinstance(mask, Tensor):
        m = mask.detach().cpu()
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        m = m.float() / 255.0 if m.dtype == torch.uint8 else m.float()
    elif isinstance(mask, np.ndarray):
        a = mask[:, :, 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
        m = torch.from_numpy(a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0))
    else:
        raise InputError(f"mask: expected a PIL image, tensor or array, got {type(mask).__name__}")
    if m.ndim != 2:
        raise MaskSizeError(f"mask must be one channel [H, W] (or [1, H, W]), got shape {tuple(mask.shape)}")
    if (m.shape[1], m.shape[0]) != size:
        raise MaskSizeError(f"mask is {m.shape[1]}×{m.shape[0]} px but the aligned image is {size[0]}×{size[1]} px: "
                            "give a mask of the aligned image's size")
    if not torch.isfinite(m).all() or m.min() < -1e-3 or m.max() > 1 + 1e-3:
        raise InputError("mask values must lie in [0, 1]")
    return m.clamp(0, 1)


def _border_ramp(s: Tensor, t: Tensor, feather: float) -> Tensor:
    """1 well inside the unit square, smoothly 0 at and beyond its edges (fade width ``feather``)."""
    d = torch.minimum(torch.minimum(s, 1 - s), torch.minimum(t, 1 - t))
    if feather <= 0:
        return (d > 0).float()
    r = (d / feather).clamp(0, 1)
    return r * r * (3 - 2 * r)


def paste_back(original: ImageLike, generated_aligned: ImageLike, alignment: Alignment, *,
               mask: Any = None, feather: float = 0.1, color_match: bool = False) -> ImageLike:
    """Warp ``generated_aligned`` back into ``original`` where ``alignment`` cut it out, and blend it in.

    Args:
        original: the photo the alignment was made on (its size must be ``alignment.original_size``).
        generated_aligned: a square image in the aligned frame, any resolution (usually ``alignment.output_size``).
        alignment: the record from :func:`~ganinv.photo.align.align_face` / ``align_center`` / ``align_none``.
        mask: optional soft mask in the aligned frame, the size of ``generated_aligned``, values in [0, 1]
            (e.g. a face-parsing mask); multiplied by the border fade.
        feather: width of the fade at the square's edges, as a fraction of its side (0: a hard edge).
        color_match: shift/scale each channel of the pasted image to the photo's mean and standard deviation
            inside the mask (useful when the generator's colours drift).

    Returns:
        The photo with the image pasted in: same size and kind as ``original``. Pixels with zero mask weight
        are unchanged.
    """
    width, height = image_size(original, "original")
    if (width, height) != tuple(alignment.original_size):
        raise InputError(f"original is {width}×{height} px but the alignment was made on a "
                         f"{alignment.original_size[0]}×{alignment.original_size[1]} px photo")
    gw, gh = image_size(generated_aligned, "generated_aligned")
    if gw != gh:
        raise InputError(f"generated_aligned must be square (the aligned frame), got {gw}×{gh} px")
    if not 0 <= feather <= 0.5:
        raise InputError(f"feather must lie in [0, 0.5], got {feather}")
    user_mask = None if mask is None else _as_mask(mask, (gw, gh))
    base = _as_float_image(original, "original")
    gen = _as_float_image(generated_aligned, "generated_aligned")

    # Only the quad's bounding box (within the photo) can change.
    q = np.asarray(alignment.quad, dtype=np.float64)
    x0, y0 = max(int(np.floor(q[:, 0].min())), 0), max(int(np.floor(q[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(q[:, 0].max())) + 1, width), min(int(np.ceil(q[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return _like_input(base, original)
    hinv = np.linalg.inv(alignment.homography())
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    ph = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ hinv.T
    st = torch.from_numpy(ph[..., :2] / ph[..., 2:3]).float()  # [h, w, 2] normalised aligned coordinates
    s, t = st[..., 0], st[..., 1]

    # A generated image over 3× larger than its footprint is first brought (antialiased) to 2× that size,
    # so the bicubic warp neither aliases nor resamples twice at the output scale.
    side = alignment.face_size
    if gw > 3 * side and side >= 8:
        n = int(round(2 * side))
        gen = F.interpolate(gen[None], size=(n, n), mode="bilinear", antialias=True, align_corners=False)[0]
    grid = (st * 2 - 1)[None]
    warped = F.grid_sample(gen[None], grid, mode="bicubic", padding_mode="border", align_corners=False)[0].clamp(0, 1)
    weight = _border_ramp(s, t, feather)
    if user_mask is not None:
        weight = weight * F.grid_sample(user_mask[None, None], grid, mode="bilinear", padding_mode="zeros",
                                        align_corners=False)[0, 0]
    region = base[:, y0:y1, x0:x1]
    if color_match:
        sel = weight > 0.5
        if sel.sum() >= 2:
            w_px, o_px = warped[:, sel], region[:, sel]
            scale = o_px.std(dim=1) / w_px.std(dim=1).clamp(min=1e-4)
            warped = ((warped - w_px.mean(dim=1)[:, None, None]) * scale[:, None, None]
                      + o_px.mean(dim=1)[:, None, None]).clamp(0, 1)
    blended = region + weight[None] * (warped - region)
    out = base.clone()
    out[:, y0:y1, x0:x1] = torch.where(weight[None] > 0, blended, region)
    return _like_input(out, original)


def _like_input(result: Tensor, original: ImageLike) -> ImageLike:
    if isinstance(original, Tensor):
        return result
    arr = (result.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def paste_many(original: ImageLike, pastes: Sequence[tuple[ImageLike, Alignment] | tuple[ImageLike, Alignment, Any]],
               **options: Any) -> ImageLike:
    """Paste several aligned images (several faces) into one photo, in order (later ones on top).

    ``pastes``: ``(generated_aligned, alignment)`` or ``(generated_aligned, alignment, mask)`` tuples;
    ``options`` (``feather``, ``color_match``) go to :func:`paste_back`. Returns the kind of ``original``.
    """
    out: ImageLike = original
    for k, item in enumerate(pastes):
        if len(item) not in (2, 3):
            raise InputError(f"pastes[{k}] must be (image, alignment) or (image, alignment, mask)")
        gen, al = item[0], item[1]
        m = item[2] if len(item) == 3 else None  # type: ignore[misc]
        out = paste_back(out, gen, al, mask=m, **options)
    return out


__all__ = ["paste_back", "paste_many"]
