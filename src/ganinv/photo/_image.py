"""Conversions between the image kinds the photo functions accept.

Accepted images:

* a PIL image (any mode; converted to RGB),
* a float tensor ``[C, H, W]`` with values in [0, 1] (C = 1, 3 or 4; 1 is repeated, alpha is dropped),
* a numpy array ``[H, W]`` or ``[H, W, C]`` of uint8 in [0, 255] or floats in [0, 1].

Functions return the kind they were given: a tensor for a tensor (``[3, H, W]`` float in [0, 1]),
a PIL RGB image otherwise.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganinv.errors import InputError

ImageLike = Union[Image.Image, Tensor, np.ndarray]


def to_rgb_array(image: ImageLike, name: str = "image") -> np.ndarray:
    """Any accepted image → uint8 array ``[H, W, 3]`` in [0, 255]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise InputError(f"{name}: expected a tensor [C, H, W] with C = 1, 3 or 4, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise InputError(f"{name}: expected a float tensor in [0, 1], got dtype {t.dtype}")
        t = t.float()
        if not torch.isfinite(t).all():
            raise InputError(f"{name}: the tensor holds NaN or infinite values")
        if t.min() < -1e-3 or t.max() > 1 + 1e-3:
            raise InputError(f"{name}: tensor values must lie in [0, 1], got [{t.min():.3g}, {t.max():.3g}]")
        t = t[:3] if t.shape[0] >= 3 else t.expand(3, -1, -1)
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise InputError(f"{name}: expected an array [H, W] or [H, W, C] with C = 1, 3 or 4, got {image.shape}")
        a = a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a, 3, axis=2)
        if a.dtype == np.uint8:
            return np.ascontiguousarray(a)
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all() or a.min() < -1e-3 or a.max() > 1 + 1e-3:
                raise InputError(f"{name}: float arrays must hold finite values in [0, 1]")
            return np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)
        raise InputError(f"{name}: unsupported array dtype {a.dtype} (use uint8 or float in [0, 1])")
    raise InputError(f"{name}: expected a PIL image, a tensor [C, H, W] or a numpy array, got {type(image).__name__}")


def to_rgb_pil(image: ImageLike, name: str = "image") -> Image.Image:
    """Any accepted image → PIL RGB image."""
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    return Image.fromarray(to_rgb_array(image, name), mode="RGB")


def image_size(image: ImageLike, name: str = "image") -> tuple[int, int]:
    """``(width, height)`` of any accepted image (validating its shape)."""
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, Tensor) and image.ndim == 3:
        return int(image.shape[2]), int(image.shape[1])
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return int(image.shape[1]), int(image.shape[0])
    to_rgb_array(image, name)  # raises the precise error
    raise InputError(f"{name}: unsupported image")  # pragma: no cover


def like(result: np.ndarray | Image.Image, reference: ImageLike) -> ImageLike:
    """Return ``result`` (uint8 ``[H, W, 3]`` array or PIL) as the kind of ``reference``.

    Tensor reference → float tensor ``[3, H, W]`` in [0, 1]; anything else → PIL RGB image.
    """
    if isinstance(reference, Tensor):
        arr = np.asarray(result.convert("RGB") if isinstance(result, Image.Image) else result, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
    if isinstance(result, Image.Image):
        return result
    return Image.fromarray(np.asarray(result, dtype=np.uint8), mode="RGB")
