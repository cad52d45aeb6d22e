"""Sample-quality figures for digit generators, measured with the bundled classifier.

* confidence — mean max-softmax over samples (are the samples recognisable digits?);
* coverage — fraction of samples per predicted class (are all classes there, balanced?);
* Fréchet distance in the classifier's feature space between samples and the held-out
  split, next to the same distance between the train and held-out splits (the floor);
* optionally the Fréchet distance between samples and the *train* split, which training uses to
  pick its best snapshot, so that the held-out split only ever measures the chosen model;
* for a class-conditional generator (``c_dim`` = the classifier's classes), sampled with uniform classes:
  class agreement — the share of samples the classifier puts in the class they were drawn for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ganinv.data import mnist
from ganinv.errors import InputError
from ganinv.generators.base import Generator

#: The floor for shipping a model (issue #2): every class 5–15 %, confidence ≥ 0.9, FD ≤ 5× floor.
MIN_CLASS_FRACTION, MAX_CLASS_FRACTION, MIN_CONFIDENCE, MAX_FD_RATIO = 0.05, 0.15, 0.9, 5.0
#: A conditional model also draws the class it is asked for in ≥ 90 % of samples.
MIN_CLASS_AGREEMENT = 0.9


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues → 0)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` ``[N, D]`` and ``b`` ``[M, D]``.

    ``‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2 tr((Σ_a Σ_b)^½)``, with the trace term computed as
    ``Σ √λ_i`` of the symmetric ``Σ_a^½ Σ_b Σ_a^½`` — exact, and stable when the covariances are
    singular (ReLU features often have dead units).
    """
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    r1 = _sqrt_psd(s1)
    middle = r1 @ s2 @ r1
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


@torch.no_grad()
def features(classifier: nn.Module, images: Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Classifier features ``[N, D]`` and softmax probabilities ``[N, 10]`` of images in [0, 1]."""
    feats, probs = [], []
    device = next(classifier.parameters()).device
    for chunk in images.split(batch_size):
        f = classifier.features(chunk.to(device))
        feats.append(f.cpu())
        probs.append(classifier.head(f).softmax(1).cpu())
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


@dataclass
class Quality:
    """Quality figures of a generator (see module docstring)."""

    n_samples: int
    confidence: float
    coverage: list[float]
    fd: float
    fd_floor: float
    fd_train: float | None = None  # samples vs the train split (snapshot selection), when measured
    class_agreement: float | None = None  # conditional models: samples classified as the class they were drawn for

    @property
    def fd_ratio(self) -> float:
        return self.fd / self.fd_floor

    @property
    def passes(self) -> bool:
        """Whether the shipping floor holds."""
        return (min(self.coverage) >= MIN_CLASS_FRACTION and max(self.coverage) <= MAX_CLASS_FRACTION
                and self.confidence >= MIN_CONFIDENCE and self.fd_ratio <= MAX_FD_RATIO
                and (self.class_agreement is None or self.class_agreement >= MIN_CLASS_AGREEMENT))

    def to_dict(self) -> dict:
        return {**asdict(self), "fd_ratio": self.fd_ratio, "passes": self.passes}

    def summary(self) -> str:
        return (f"conf {self.confidence:.3f}  classes {min(self.coverage):.3f}–{max(self.coverage):.3f}  "
                f"FD {self.fd:.2f} ({self.fd_ratio:.2f}× floor {self.fd_floor:.2f})"
                + (f"  FD to train {self.fd_train:.2f}" if self.fd_train is not None else "")
                + (f"  class agreement {self.class_agreement:.3f}" if self.class_agreement is not None else ""))


def meets_sample_floor(record: dict) -> bool:
    """Whether a logged evaluation (keys ``confidence``, ``min_class``, ``max_class``; ``class_agreement`` for a
    conditional model) meets the confidence and class-coverage part of the shipping floor — what snapshot
    selection filters on before ranking by distance."""
    return (record["confidence"] >= MIN_CONFIDENCE and record["min_class"] >= MIN_CLASS_FRACTION
            and record["max_class"] <= MAX_CLASS_FRACTION
            and record.get("class_agreement", 1.0) >= MIN_CLASS_AGREEMENT)


_FLOOR_CACHE: dict[int, tuple[np.ndarray, float]] = {}
_TRAIN_CACHE: dict[int, np.ndarray] = {}


def train_reference(classifier: nn.Module) -> np.ndarray:
    """Train-split features ``[4000, D]`` (cached per classifier)."""
    key = id(classifier)
    if key not in _TRAIN_CACHE:
        _TRAIN_CACHE[key] = features(classifier, mnist("train")[0])[0]
    return _TRAIN_CACHE[key]


def heldout_reference(classifier: nn.Module) -> tuple[np.ndarray, float]:
    """Held-out features and the train-vs-held-out Fréchet distance (cached per classifier)."""
    key = id(classifier)
    if key not in _FLOOR_CACHE:
        f_test, _ = features(classifier, mnist("test")[0])
        _FLOOR_CACHE[key] = (f_test, frechet_distance(train_reference(classifier), f_test))
    return _FLOOR_CACHE[key]


@torch.no_grad()
def generator_quality(G: Generator, classifier: nn.Module, n: int = 10_000, seed: int = 12345,
                      batch_size: int = 500, with_train: bool = False) -> Quality:
    """Measure :class:`Quality` of ``G`` on ``n`` samples (untruncated, stored noise); ``with_train`` adds
    ``fd_train``, the distance to the train split. A class-conditional ``G`` (``c_dim > 0``) is sampled with
    classes drawn uniformly (seeded) and also scored for class agreement; its classes must be the classifier's."""
    classifier.eval()
    f_test, floor = heldout_reference(classifier)
    imgs, drawn = [], []
    gen = torch.Generator().manual_seed(seed)
    z_dim = G.space("z").shape
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    for start in range(0, n, batch_size):
        z = torch.randn((min(batch_size, n - start), *z_dim), generator=gen).to(G.device)
        kw = {}
        if c_dim:
            labels = torch.randint(0, c_dim, (len(z),), generator=gen)
            drawn.append(labels)
            kw["c"] = torch.nn.functional.one_hot(labels, c_dim).float().to(G.device)
        imgs.append(G.to_display(G.synthesize(G.convert(z, "z", G.default_space, **kw), G.default_space)))
    f_gen, probs = features(classifier, torch.cat(imgs))
    cls = probs.argmax(1)
    if c_dim and c_dim != probs.shape[1]:
        raise InputError(f"a conditional generator with {c_dim} classes cannot be scored by a {probs.shape[1]}-class "
                         "classifier")
    agreement = float((cls == torch.cat(drawn).numpy()).mean()) if c_dim else None
    coverage = [float((cls == c).mean()) for c in range(probs.shape[1])]
    return Quality(n_samples=n, confidence=float(probs.max(1).mean()), coverage=coverage,
                   fd=frechet_distance(f_gen, f_test), fd_floor=floor,
                   fd_train=frechet_distance(f_gen, train_reference(classifier)) if with_train else None,
                   class_agreement=agreement)
