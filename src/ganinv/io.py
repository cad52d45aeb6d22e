"""Images in and out.

Images are float tensors ``[B, C, H, W]`` in [0, 1]. Every file is written through a
temporary name and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

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
    atomic_write(path, lambda tmp: pil.save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")))
    return path


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Save ``[B, C, H, W]`` images in [0, 1] as one grid image."""
    return save_image(make_grid(images, nrow=nrow), path, scale=scale)


def image_to_tensor(pil: Image.Image, channels: int) -> Tensor:
    """PIL image → ``[C, H, W]`` float in [0, 1], converted to ``channels`` (1 → L, 3 → RGB)."""
    mode = {1: "L", 3: "RGB"}[channels]
    arr = np.asarray(pil.convert(mode), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()
