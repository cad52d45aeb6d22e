"""Semantic directions in a generator's latent space: GANSpace, SeFa and InterFaceGAN.

Every direction lives in the generator's *edit space* (:func:`~ganinv.editing.codes.edit_space`): ``w`` for
StyleGAN, ``z`` for a z-only generator such as the DCGAN. A :class:`Direction` carries a unit vector and
``sigma``, the standard deviation of the generator's codes along it, so that a strength can be given in
units of that spread (``units="sigma"``: strength 3 = 3σ, which for a Gaussian z is exactly InterFaceGAN's
raw ±3) or in raw latent units (``units="raw"``).

File formats (REFERENCE.md; both load in plain NumPy):

* GANSpace and SeFa components: ``.npz`` with ``lat_comp`` ``[K, 1, D]`` (unit rows), ``lat_mean`` ``[1, D]``,
  ``lat_stdev`` ``[K]`` — GANSpace's keys and shapes — plus ``var_ratio`` (PCA) or ``eigenvalues`` (SeFa)
  ``[K]``, and ``space`` / ``method`` / ``generator`` strings.
* InterFaceGAN boundary: ``.npy`` ``[1, D]`` float32 unit normal, with a side file ``<name>.npy.json``
  recording the space, the generator's fingerprint and the SVM's validation accuracy.
* e4e / SFE InterFaceGAN directions, ``editings/interfacegan_directions/*.pt``: a ``torch.save`` d tensor
  ``[1, 512]`` (``age.pt``, ``smile.pt``; unit norm) or ``[1, num_ws, 512]`` with every row the same
  (``pose.pt``); e4e applies them as ``latent + factor * direction``, i.e. to every W+ row (ours: unless
  ``--layers`` picks rows).
* e4e / SFE GANSpace components, ``editings/ganspace_pca/*_pca.pt``: ``{"comp": [K, 1, 512], "mean": [1, 512],
  "std": [K]}`` (GANSpace's ``lat_comp``/``lat_mean``/``lat_stdev`` under other names). e4e's
  ``ganspace.edit(latents, pca, [(pca_idx, start, end, strength)])`` moves rows ``start…end−1`` of each W+ code to
  coordinate ``strength`` (in ``std`` units) along ``comp[pca_idx]``; here component ``K`` is the direction
  ``comp[K]`` with ``sigma = std[K]``, applied as a relative step (``--strengths`` in σ, ``--layers start-(end−1)``).

Torch files are read with ``torch.load(weights_only=True)`` (:func:`ganinv.latentfiles.safe.load_torch`).

A direction whose dimension differs from the generator's edit space is refused with an
:class:`~ganinv.errors.InputError` when it is loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganinv.editing.codes import edit_space, read_latent_file, to_space
from ganinv.errors import InputError
from ganinv.generators.base import Generator

#: Codes sampled to measure a direction's spread (``sigma``) and for PCA.
SIGMA_SAMPLES = 10_000
PCA_SAMPLES = 20_000
UNITS = ("sigma", "raw")


# ----------------------------------------------------------------------------------------------------------
# The objects
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Direction:
    """One editing direction.

    Attributes:
        vector: unit vector ``[D]`` in ``space``.
        space: ``"w"`` or ``"z"``.
        sigma: standard deviation of the generator's codes along ``vector`` (> 0).
        name: for people and file names (``"pca:0"``, ``"towards-7"``, a file name).
    """

    vector: Tensor
    space: str
    sigma: float
    name: str = "direction"

    def step(self, units: str = "sigma") -> Tensor:
        """The change of code for strength 1: ``vector · sigma`` (``units="sigma"``) or ``vector`` (``"raw"``)."""
        if units not in UNITS:
            raise InputError(f"unknown strength units {units!r}; use sigma or raw")
        return self.vector * (self.sigma if units == "sigma" else 1.0)


@dataclass
class Components:
    """Orthonormal directions from GANSpace (PCA of W) or SeFa (closed-form factorisation).

    Attributes:
        vectors: ``[K, D]`` orthonormal rows, most important first.
        mean: ``[D]`` mean code (PCA: of the samples; SeFa: the generator's mean ``w``).
        stdev: ``[K]`` standard deviation of sampled codes along each row.
        weights: ``[K]`` explained-variance ratio (PCA) or eigenvalue (SeFa).
        method: ``"pca"`` or ``"sefa"``.
        space: the edit space (``"w"``).
        generator: fingerprint of the generator they were computed for (``""`` when unknown).
    """

    vectors: Tensor
    mean: Tensor
    stdev: Tensor
    weights: Tensor
    method: str
    space: str = "w"
    generator: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def direction(self, k: int) -> Direction:
        """Component ``k`` (0-based) as a :class:`Direction`."""
        if not 0 <= k < len(self):
            raise InputError(f"component {k} does not exist: this file has components 0…{len(self) - 1}")
        return Direction(self.vectors[k].clone(), self.space, float(self.stdev[k]), f"{self.method}:{k}")

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``.npz`` contents (GANSpace's keys and shapes, plus ours)."""
        k, d = self.vectors.shape
        extra = "var_ratio" if self.method == "pca" else "eigenvalues"
        return {
            "lat_comp": self.vectors.detach().cpu().float().numpy().reshape(k, 1, d),
            "lat_mean": self.mean.detach().cpu().float().numpy().reshape(1, d),
            "lat_stdev": self.stdev.detach().cpu().float().numpy().reshape(k),
            extra: self.weights.detach().cpu().float().numpy().reshape(k),
            "method": np.array(self.method), "space": np.array(self.space), "generator": np.array(self.generator),
        }

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` atomically; returns the path."""
        return _save_npz(Path(path), self.arrays())


@dataclass
class Boundary:
    """An InterFaceGAN boundary: the unit normal of a linear SVM separating labelled codes.

    Attributes:
        vector: ``[D]`` unit normal, pointing towards the positive class.
        space: ``"w"`` or ``"z"``.
        accuracy: the SVM's accuracy on a held-out fifth of the codes (NaN when too few to hold out).
        positives, negatives: codes of each label used.
        generator: fingerprint of the generator (``""`` when unknown).
        info: anything else worth recording (target class, label source...).
    """

    vector: Tensor
    space: str
    accuracy: float
    positives: int
    negatives: int
    generator: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write ``[1, D]`` float32 to ``path`` (``.npy``) and the metadata to ``path + ".json"``."""
        path = Path(path)
        if path.suffix.lower() != ".npy":
            raise InputError(f"an InterFaceGAN boundary is saved as .npy; got {path.name!r}")
        from ganinv.modelfile import atomic_write

        arr = self.vector.detach().cpu().float().numpy().reshape(1, -1)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a name
                np.save(fh, np.ascontiguousarray(arr))

        atomic_write(path, write)
        meta = {"format": "interfacegan-boundary", "space": self.space, "dim": int(arr.shape[1]),
                "generator": self.generator, "accuracy": None if math.isnan(self.accuracy) else self.accuracy,
                "positives": self.positives, "negatives": self.negatives, **self.info}
        side = path.with_name(path.name + ".json")
        atomic_write(side, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
        return path


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    from ganinv.io import save_npz

    if path.suffix.lower() != ".npz":
        raise InputError(f"components are saved as .npz; got {path.name!r}")
    return save_npz(path, arrays)


def _fingerprint(G: Generator) -> str:
    from ganinv.encoders import generator_fingerprint

    return generator_fingerprint(G)


def _fix_signs(vectors: Tensor) -> Tensor:
    """Deterministic signs: each row's largest-magnitude entry is positive."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(vectors.gather(1, idx))
    sign[sign == 0] = 1
    return vectors * sign


def _name(G: Generator) -> str:
    return getattr(G, "name", None) or G.arch


@torch.no_grad()
def sample_codes(G: Generator, n: int, seed: int = 0, batch_size: int = 4096) -> Tensor:
    """``n`` codes ``[n, D]`` of the edit space, mapped from standard-normal z (deterministic for ``seed``).

    A class-conditional model with no class bound (its W / W+ codes render without one, and SeFa, GANSpace or a
    direction's σ describe the whole model): each sample's class is drawn uniformly, so the codes cover every
    class. A class-bound model samples its own class."""
    from ganinv.generators.conditional import for_whole_model

    space = edit_space(G)
    if space != "z":
        G = for_whole_model(G)
    gen = torch.Generator().manual_seed(int(seed))
    z_shape = G.space("z").shape
    out = []
    for start in range(0, n, batch_size):
        z = torch.randn((min(batch_size, n - start), *z_shape), generator=gen).to(G.device)
        out.append(G.convert(z, "z", space) if space != "z" else z)
    return torch.cat(out).float()


def direction_sigma(G: Generator, vector: Tensor, samples: int = SIGMA_SAMPLES, seed: int = 1) -> float:
    """Standard deviation of the generator's codes along ``vector`` ``[D]`` (normalised first); 1 in z."""
    if edit_space(G) == "z":
        return 1.0
    v = vector.reshape(-1).to(G.device, torch.float32)
    v = v / v.norm().clamp_min(1e-12)
    proj = sample_codes(G, samples, seed) @ v
    return float(proj.std())


# ----------------------------------------------------------------------------------------------------------
# GANSpace
# ----------------------------------------------------------------------------------------------------------

@torch.no_grad()
def ganspace(G: Generator, k: int = 20, samples: int = PCA_SAMPLES, seed: int = 0) -> Components:
    """GANSpace: principal components of sampled W codes.

    Args:
        G: a generator with a W space (StyleGAN). A z-only generator is refused: its z is an isotropic
            Gaussian, so every direction has the same variance and PCA finds nothing.
        k: components to keep (≤ w_dim).
        samples: codes sampled (mapped from z) for the PCA.
        seed: of the z draws.

    Returns:
        :class:`Components` with unit ``vectors`` ``[k, w_dim]`` by decreasing variance, the sample ``mean``,
        ``stdev`` (square roots of the top eigenvalues) and explained-variance ratios as ``weights``.
    """
    if "w" not in G.latent_spaces:
        raise InputError(f"PCA directions (GANSpace) need a W space, and this {G.arch} generator has only z: z is an "
                         "isotropic Gaussian, so every direction has the same variance and PCA finds nothing; "
                         "use --method interfacegan (trained in z) instead")
    d = G.space("w").shape[0]
    if not 1 <= k <= d:
        raise InputError(f"--k must be between 1 and w_dim = {d}, got {k}")
    if samples < 2 * d:
        raise InputError(f"PCA of a {d}-d W needs at least {2 * d} samples, got {samples}")
    w = sample_codes(G, samples, seed).double()
    mean = w.mean(0)
    cov = (w - mean).T @ (w - mean) / (samples - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    vectors = _fix_signs(evecs.T[:k].contiguous())
    return Components(vectors.float(), mean.float(), evals[:k].sqrt().float(), (evals[:k] / evals.sum()).float(),
                      "pca", "w", _fingerprint(G), {"samples": samples, "seed": seed})


# ----------------------------------------------------------------------------------------------------------
# SeFa
# ----------------------------------------------------------------------------------------------------------

def modulation_layers(G: Generator, include_rgb: bool = False) -> list[tuple[int, str, nn.Module]]:
    """The style-modulation affine layers of a StyleGAN2 or StyleGAN3 generator as ``(w+ row, name, layer)``.

    The layer's effective weight is ``layer.weight · layer.scale`` ``[channels, w_dim]`` (StyleGAN3:
    ``weight_gain``). StyleGAN3: ``layers.i`` reads row i + 1, the last one is its toRGB. Row ``r`` is the
    ``w+`` row the layer reads (``conv1`` → 0, ``convs[2j]`` → 2j+1, ``convs[2j+1]`` → 2j+2, ``to_rgbs[j]``
    → 2j+3, ``to_rgb1`` → 1). ``include_rgb`` adds the toRGB layers (SeFa uses the convolutions).
    """
    if G.arch == "stylegan3":  # layer i reads w+ row i + 1 (row 0 drives the Fourier input's transform)
        return [(i + 1, f"layers.{i}", layer.affine) for i, layer in enumerate(G.layers)  # type: ignore[attr-defined]
                if include_rgb or not layer.spec.is_torgb]
    if not (hasattr(G, "conv1") and hasattr(G, "convs") and hasattr(G, "to_rgbs")):
        raise InputError(f"SeFa factorises StyleGAN's style-modulation weights, and this {G.arch} generator has "
                         "none; use --method interfacegan (works in z) instead")
    found: list[tuple[int, str, nn.Module]] = [(0, "conv1", G.conv1.conv.modulation)]
    if include_rgb:
        found.append((1, "to_rgb1", G.to_rgb1.conv.modulation))
    for i, conv in enumerate(G.convs):
        found.append((i + 1, f"convs.{i}", conv.conv.modulation))
    if include_rgb:
        for j, rgb in enumerate(G.to_rgbs):
            found.append((2 * j + 3, f"to_rgbs.{j}", rgb.conv.modulation))
    return sorted(found, key=lambda t: t[0])


@torch.no_grad()
def sefa(G: Generator, k: int = 20, layers: Sequence[int] | None = None, include_rgb: bool = False,
         samples: int = SIGMA_SAMPLES, seed: int = 1) -> Components:
    """SeFa: closed-form directions, the top eigenvectors of ``AᵀA`` for the modulation weights ``A``.

    ``A`` ``[Σ channels, w_dim]`` stacks the effective modulation weights of the layers reading the chosen
    ``w+`` rows, each output channel's row normalised to unit length; a direction ``n`` with large
    ``‖A n‖`` changes the styles the most. No sampling is needed for the directions themselves; ``samples``
    W codes only measure each direction's spread (``stdev``).

    Args:
        G: a StyleGAN2 generator (a z-only generator has no modulation weights and is refused).
        k: directions to keep (≤ w_dim).
        layers: ``w+`` rows whose layers to factorise (None: all).
        include_rgb: also use the toRGB layers.

    Returns:
        :class:`Components` with unit ``vectors`` ``[k, w_dim]`` by decreasing eigenvalue (``weights``).
    """
    found = modulation_layers(G, include_rgb)
    d = G.space("w").shape[0]
    if not 1 <= k <= d:
        raise InputError(f"--k must be between 1 and w_dim = {d}, got {k}")
    if layers is not None:
        rows = {int(r) for r in layers}
        found = [f for f in found if f[0] in rows]
        if not found:
            raise InputError(f"no modulated layer reads w+ rows {sorted(rows)}")
    blocks = []
    for _, _, layer in found:
        gain = layer.scale if hasattr(layer, "scale") else layer.weight_gain
        a = (layer.weight * gain).detach().double()  # [channels, w_dim]
        blocks.append(a / a.norm(dim=1, keepdim=True).clamp_min(1e-12))
    A = torch.cat(blocks)
    evals, evecs = torch.linalg.eigh(A.T @ A)
    evals, evecs = evals.flip(0), evecs.flip(1)
    vectors = _fix_signs(evecs.T[:k].contiguous()).float()
    w = sample_codes(G, samples, seed)
    stdev = ((w - w.mean(0)) @ vectors.T.to(w)).std(0)
    mean = G.mean_latent("w").reshape(-1).float() if hasattr(G, "w_avg") else w.mean(0)
    return Components(vectors.cpu(), mean.cpu(), stdev.cpu(), evals[:k].float().cpu(), "sefa", "w", _fingerprint(G),
                      {"layers": [f[1] for f in found]})


# ----------------------------------------------------------------------------------------------------------
# InterFaceGAN
# ----------------------------------------------------------------------------------------------------------

def train_boundary(latents: Tensor, labels: Tensor, *, C: float = 1.0, val_fraction: float = 0.2,
                   seed: int = 0) -> tuple[Tensor, float]:
    """Fit a linear SVM (scikit-learn ``LinearSVC``, class-balanced) to labelled codes.

    Args:
        latents: ``[N, D]`` codes.
        labels: ``[N]`` bool (or 0/1): True = has the attribute.
        C: SVM regularisation (smaller = wider margin).
        val_fraction: share of the codes held out to measure accuracy (then the SVM is refit on all).
        seed: of the hold-out split.

    Returns:
        ``(normal, accuracy)``: the unit normal ``[D]`` pointing to the positive side, and the held-out
        accuracy (NaN when there are too few codes to hold any out).
    """
    from sklearn.svm import LinearSVC

    x = latents.detach().reshape(latents.shape[0], -1).cpu().double().numpy()
    y = labels.detach().reshape(-1).cpu().numpy().astype(bool)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{x.shape[0]} latents but {y.shape[0]} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos < 2 or n_neg < 2:
        raise InputError(f"a boundary needs at least 2 codes on each side; got {n_pos} positive, {n_neg} negative")

    def fit(xs: np.ndarray, ys: np.ndarray) -> Any:
        svm = LinearSVC(C=C, class_weight="balanced", dual=xs.shape[0] <= xs.shape[1], max_iter=20_000,
                        random_state=seed)
        return svm.fit(xs, ys)

    accuracy = float("nan")
    rng = np.random.default_rng(seed)
    order = rng.permutation(x.shape[0])
    n_val = int(round(val_fraction * x.shape[0]))
    train, val = order[n_val:], order[:n_val]
    if n_val >= 2 and y[train].any() and (~y[train]).any() and y[val].any() and (~y[val]).any():
        svm = fit(x[train], y[train])
        pred = svm.predict(x[val])
        # balanced accuracy: the mean of the per-class recalls (positives are rare in one-vs-rest labels)
        accuracy = float(0.5 * ((pred[y[val]]).mean() + (~pred[~y[val]]).mean()))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm = fit(x, y)
    normal = torch.from_numpy(svm.coef_.reshape(-1)).float()
    norm = normal.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise InputError("the SVM found no separating direction (the labels do not depend linearly on the codes)")
    return normal / norm, accuracy


@torch.no_grad()
def classifier_labels(G: Generator, classifier: nn.Module, target_class: int, samples: int = 10_000,
                      seed: int = 0, batch_size: int = 500, min_confidence: float = 0.0,
                      progress: Callable[[int, int], None] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Sample codes, render them and label each by the classifier: "is it ``target_class``?" (one-vs-rest).

    Args:
        G: generator; codes are drawn in its edit space (W for StyleGAN, z otherwise).
        classifier: maps ``[B, C, H, W]`` images in [0, 1] to ``[B, classes]`` logits.
        target_class: the class of the positive side.
        samples: codes to draw.
        min_confidence: drop codes whose prediction is less confident than this (label noise).
        progress: ``progress(done, total)`` after each batch.

    Returns:
        ``(latents [n, D], labels [n] bool, predicted class [n])`` for the ``n ≤ samples`` codes kept.
    """
    num_classes = getattr(classifier, "num_classes", None)
    if num_classes is not None and not 0 <= target_class < num_classes:
        raise InputError(f"--target-class must be 0…{num_classes - 1}, got {target_class}")
    space = edit_space(G)
    codes = sample_codes(G, samples, seed)
    dev = next(classifier.parameters()).device
    preds, confs = [], []
    for start in range(0, samples, batch_size):
        chunk = codes[start:start + batch_size]
        images = G.to_display(G.synthesize(chunk.to(G.device), space)).to(dev)
        probs = classifier(images).softmax(1)
        conf, cls = probs.max(1)
        preds.append(cls.cpu())
        confs.append(conf.cpu())
        if progress is not None:
            progress(min(start + batch_size, samples), samples)
    pred, conf = torch.cat(preds), torch.cat(confs)
    keep = conf >= min_confidence
    return codes[keep].cpu(), (pred[keep] == target_class), pred[keep]


@dataclass
class Whitening:
    """PCA whitening of a latent distribution: ``x' = ((x - mean) @ basis) / scale``, so that ``x'`` has identity
    covariance (like a standard-normal z).

    Attributes:
        mean: ``[D]``; basis: ``[D, D]`` orthonormal columns (principal axes); scale: ``[D]`` spread along each.
    """

    mean: Tensor
    basis: Tensor
    scale: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """Whiten codes ``[N, D]``."""
        return ((x.to(self.mean) - self.mean) @ self.basis) / self.scale

    def step(self, v: Tensor) -> Tensor:
        """The change of code ``[D]`` that moves the whitened code by ``v`` ``[D]``."""
        return self.basis @ (self.scale * v.to(self.mean))


def generator_whitening(G: Generator, samples: int = PCA_SAMPLES, seed: int = 2) -> Whitening:
    """:class:`Whitening` of ``G``'s edit-space codes, from ``samples`` mapped z."""
    x = sample_codes(G, samples, seed).double().cpu()
    mean = x.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    scale = evals.clamp_min(evals.max() * 1e-8).sqrt()
    return Whitening(mean.float(), evecs.float(), scale.float())


def interfacegan(G: Generator, latents: Tensor, labels: Tensor, *, C: float = 1.0, seed: int = 0,
                 whiten: bool = True, info: dict[str, Any] | None = None) -> Boundary:
    """An InterFaceGAN boundary for ``G`` from codes ``[N, D]`` in its edit space and labels ``[N]``.

    InterFaceGAN assumes an isotropic latent (a standard-normal z), where the SVM's unit normal is also the
    most efficient way to cross the boundary. StyleGAN's W is far from isotropic, and a raw-W SVM normal leans
    into directions along which the codes barely vary (and which change the image little). With ``whiten``
    (the default; a no-op in z), the SVM is trained on PCA-whitened codes (:func:`generator_whitening`, the
    generator's own distribution), and the saved direction is the W-space step that moves along the whitened
    normal — InterFaceGAN carried out in coordinates where W looks like z. ``whiten=False`` is the plain SVM
    normal in W.

    Returns:
        :class:`Boundary` whose ``vector`` ``[D]`` is the unit editing direction in the edit space.
    """
    space = edit_space(G)
    d = G.space(space).shape[0]
    if latents.dim() != 2 or latents.shape[1] != d:
        raise InputError(f"InterFaceGAN needs {space} codes [N, {d}] for this generator, got {list(latents.shape)}")
    whiten = whiten and space != "z"
    if whiten:
        wh = generator_whitening(G)
        normal_white, acc = train_boundary(wh(latents.cpu()), labels, C=C, seed=seed)
        step = wh.step(normal_white)
        normal = step / step.norm()
    else:
        normal, acc = train_boundary(latents, labels, C=C, seed=seed)
    y = labels.reshape(-1).bool()
    return Boundary(normal, space, acc, int(y.sum()), int((~y).sum()), _fingerprint(G),
                    {**(info or {}), "whitened": whiten})


def read_scores_csv(path: str | Path, G: Generator) -> tuple[Tensor, Tensor, list[str]]:
    """Read a ``latent_file,score`` CSV (an optional header row is skipped) for ``G``.

    Latent files are paths relative to the CSV's folder (or absolute), read with
    :func:`~ganinv.editing.codes.read_latent_file` and converted to the edit space (a W+ code becomes the mean of
    its rows). Scores are numbers.

    Returns:
        ``(latents [N, D], scores [N] float, notes)``.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such labels file; give a CSV of latent_file,score rows")
    space = edit_space(G)
    latents, scores, notes = [], [], []
    averaged = 0
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    for i, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(f"{path}, line {i}: expected latent_file,score, got {','.join(row)!r}")
        name, raw = row[0].strip(), row[1].strip()
        try:
            score = float(raw)
        except ValueError:
            if i == 1:
                continue  # a header
            raise InputError(f"{path}, line {i}: score {raw!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(f"{path}, line {i}: score {raw!r} is not finite")
        file = Path(name) if Path(name).is_absolute() else path.parent / name
        code = read_latent_file(file, G)
        if code.space == "w+":
            averaged += 1
        latents.append(to_space(code.latent.to(G.device), code.space, space, G).reshape(-1).cpu())
        scores.append(score)
    if not latents:
        raise InputError(f"{path} has no latent_file,score rows")
    if averaged:
        notes.append(f"{averaged} W+ code(s) were reduced to the mean of their rows")
    return torch.stack(latents), torch.tensor(scores), notes


def binarize_scores(scores: Tensor, threshold: float | None = None) -> tuple[Tensor, float]:
    """Labels from scores: two distinct values → the larger one is positive; otherwise
    ``score > threshold`` (default: the median). Returns ``(labels [N] bool, threshold used)``."""
    values = torch.unique(scores)
    if threshold is None:
        threshold = float(values.min()) if len(values) == 2 else float(scores.double().quantile(0.5))
    return scores > threshold, float(threshold)


# ----------------------------------------------------------------------------------------------------------
# Loading and resolving
# ----------------------------------------------------------------------------------------------------------

def _check_dim(d: int, G: Generator, source: str) -> str:
    space = edit_space(G)
    want = G.space(space).shape[0]
    if d != want:
        label = "w_dim" if space == "w" else "z_dim"
        raise InputError(f"{source}: this direction has dimension {d}, but this {_name(G)} generator edits a "
                         f"{space} space of {label} {want}; it was made for another model — compute one for this "
                         "model with `ganinv directions`")
    return space


def _note_foreign(meta_fp: str, G: Generator, source: str, notes: list[str]) -> None:
    if meta_fp and meta_fp != _fingerprint(G):
        notes.append(f"{source} was computed for another generator (fingerprint {meta_fp}) with the same latent "
                     "size; applying it anyway")


def load_components(path: str | Path, G: Generator, notes: list[str] | None = None) -> Components:
    """Read a GANSpace/SeFa ``.npz`` for ``G`` (dimension checked; a foreign fingerprint adds a note)."""
    from ganinv.io import load_latent_npz

    path = Path(path)
    arrays = load_latent_npz(path)
    if "lat_comp" not in arrays:
        raise InputError(f"{path} has no 'lat_comp' array; a components file holds lat_comp, lat_mean, lat_stdev "
                         "(GANSpace's format, written by `ganinv directions --method pca|sefa`)")
    return _components_from(arrays, G, path, notes)


def _components_from(arrays: dict[str, np.ndarray], G: Generator, path: Path,
                     notes: list[str] | None) -> Components:
    """:class:`Components` from GANSpace's arrays: ``lat_comp`` ``[K, 1, D]`` (or ``[K, D]``), optional
    ``lat_mean`` ``[1, D]``, ``lat_stdev`` ``[K]`` (measured on ``G`` when absent)."""
    comp = np.asarray(arrays["lat_comp"], dtype=np.float32)
    if comp.ndim == 3 and comp.shape[1] == 1:
        comp = comp[:, 0]
    if comp.ndim != 2:
        raise InputError(f"{path}: lat_comp must be [K, 1, D] or [K, D], got {list(arrays['lat_comp'].shape)}")
    space = _check_dim(comp.shape[1], G, str(path))
    k, d = comp.shape
    vectors = torch.from_numpy(comp)
    if not torch.isfinite(vectors).all() or bool((vectors.norm(dim=1) == 0).any()):
        raise InputError(f"{path}: the components contain a zero row or NaN/Inf")
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    mean = torch.from_numpy(np.asarray(arrays.get("lat_mean", np.zeros((1, d))), dtype=np.float32)).reshape(-1)
    if mean.shape[0] != d:
        raise InputError(f"{path}: the mean has {mean.shape[0]} entries for components of dimension {d}")
    if "lat_stdev" in arrays:
        stdev = torch.from_numpy(np.asarray(arrays["lat_stdev"], dtype=np.float32)).reshape(-1)
        if stdev.shape[0] != k:
            raise InputError(f"{path}: lat_stdev has {stdev.shape[0]} entries for {k} components")
        if not torch.isfinite(stdev).all() or bool((stdev <= 0).any()):
            raise InputError(f"{path}: the standard deviations must be finite and > 0")
    else:
        stdev = torch.tensor([direction_sigma(G, v) for v in vectors])
    method = str(arrays["method"]) if "method" in arrays else "pca"
    weights = arrays.get("var_ratio", arrays.get("eigenvalues", np.full(k, np.nan)))
    fp = str(arrays["generator"]) if "generator" in arrays else ""
    if notes is not None:
        _note_foreign(fp, G, str(path), notes)
    return Components(vectors, mean, stdev, torch.from_numpy(np.asarray(weights, dtype=np.float32)).reshape(-1),
                      method, space, fp)


def _torch_direction(path: Path, G: Generator, component: int | None,
                     notes: list[str] | None) -> Direction:
    """An e4e/SFE direction ``.pt``: an InterFaceGAN tensor or a ``ganspace_pca`` dict (see the module notes)."""
    from ganinv.latentfiles.safe import load_torch

    obj = load_torch(path, "direction file")
    if isinstance(obj, dict) and {"comp", "mean", "std"} <= set(obj):
        arrays = {}
        for ours, theirs in (("lat_comp", "comp"), ("lat_mean", "mean"), ("lat_stdev", "std")):
            value = obj[theirs]
            if not isinstance(value, Tensor) or not value.is_floating_point():
                raise InputError(f"{path}: {theirs!r} is not a float tensor")
            arrays[ours] = value.detach().cpu().float().numpy()
        comps = _components_from(arrays, G, path, notes)
        k = 0 if component is None else component
        d = comps.direction(k)
        d.name = f"{path.stem}:{k}"
        return d
    if isinstance(obj, dict):
        keys = ", ".join(map(repr, list(obj)[:8]))
        raise InputError(f"{path} holds a dict with keys {keys}; a direction .pt is a tensor [1, D] (e4e "
                         "interfacegan_directions) or {'comp', 'mean', 'std'} (e4e ganspace_pca)")
    if not isinstance(obj, Tensor) or not obj.is_floating_point():
        raise InputError(f"{path} holds a {type(obj).__name__}; a direction .pt is a float tensor [1, D] or an "
                         "e4e ganspace_pca dict")
    if component is not None:
        raise InputError(f"{path} is a single direction; a component number applies to .npz and *_pca.pt files")
    arr = obj.detach().cpu().float()
    shape = list(arr.shape)
    if arr.dim() == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.dim() == 2 and arr.shape[0] > 1:  # one row per W+ layer (e4e's pose.pt): the same row everywhere
        if not torch.allclose(arr, arr[:1].expand_as(arr), rtol=1e-5, atol=1e-6):
            raise InputError(f"{path}: this direction has {arr.shape[0]} different rows (shape {shape}); ganinv "
                             "applies one [D] vector to the rows --layers picks, so give a [1, D] direction")
        arr = arr[:1]
    return _vector_direction(arr.numpy(), shape, path, G, notes)


def _vector_direction(arr: np.ndarray, shape: list[int], path: Path, G: Generator,
                      notes: list[str] | None) -> Direction:
    """A unit :class:`Direction` from a ``[1, D]`` / ``[D]`` array (InterFaceGAN's layout)."""
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: a boundary must be a [1, D] or [D] numeric array, got shape {shape}")
    space = _check_dim(arr.shape[0], G, str(path))
    v = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not torch.isfinite(v).all() or v.norm() == 0:
        raise InputError(f"{path}: the boundary is zero or contains NaN/Inf")
    v = v / v.norm()
    side = path.with_name(path.name + ".json")
    if side.is_file() and notes is not None:
        try:
            meta = json.loads(side.read_text())
            _note_foreign(str(meta.get("generator", "")), G, str(path), notes)
        except (OSError, ValueError):
            notes.append(f"{side.name} is unreadable; ignored")
    return Direction(v, space, direction_sigma(G, v), path.stem)


DIRECTION_SUFFIXES = (".npy", ".npz", ".pt", ".pth")


def load_direction(path: str | Path, G: Generator, component: int | None = None,
                   notes: list[str] | None = None) -> Direction:
    """Read a direction for ``G`` from a file.

    * ``.npy``: an InterFaceGAN boundary ``[1, D]`` or ``[D]`` (normalised to unit length);
    * ``.npz``: GANSpace/SeFa components; ``component`` picks one (default 0);
    * ``.pt`` / ``.pth``: an e4e/SFE InterFaceGAN direction ``[1, D]`` (or ``[1, num_ws, D]`` with equal rows), or
      an e4e ``ganspace_pca`` dict ``{"comp": [K, 1, D], "mean": [1, D], "std": [K]}`` (``component`` picks one).

    A dimension different from ``G``'s edit space is refused (:class:`InputError`); a direction computed
    for another generator of the same size is applied with a note appended to ``notes``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such direction file; give a .npy boundary, a .npz of components, an e4e "
                         ".pt direction, pca:K or sefa:K")
    if not path.is_file():
        raise InputError(f"{path} is not a file; give a .npy boundary, a .npz of components or an e4e .pt")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        comps = load_components(path, G, notes)
        d = comps.direction(0 if component is None else component)
        d.name = f"{path.stem}:{0 if component is None else component}"
        return d
    if suffix in (".pt", ".pth"):
        return _torch_direction(path, G, component, notes)
    if suffix != ".npy":
        raise InputError(f"{path}: a direction file is .npy (InterFaceGAN boundary), .npz (GANSpace/SeFa) or .pt "
                         "(e4e/SFE interfacegan_directions, ganspace_pca)")
    if component is not None:
        raise InputError(f"{path} is a single boundary; a component number applies to .npz and *_pca.pt files")
    from ganinv.io import load_npy

    arr = np.asarray(load_npy(path))
    return _vector_direction(arr, list(arr.shape), path, G, notes)


def resolve_direction(spec: str, G: Generator, *, component: int | None = None,
                      layers: Sequence[int] | None = None, notes: list[str] | None = None) -> Direction:
    """Turn ``FILE`` (``.npy``/``.npz``/``.pt``), ``FILE.npz:K`` / ``FILE_pca.pt:K``, ``pca:K`` or ``sefa:K`` into a
    :class:`Direction` for ``G``.

    ``pca:K`` / ``sefa:K`` compute the components on the fly (K 0-based); ``layers`` restricts SeFa's
    factorisation to the layers reading those ``w+`` rows.
    """
    spec = spec.strip()
    head, _, tail = spec.rpartition(":")
    if head.lower() in ("pca", "sefa"):
        try:
            k = int(tail)
        except ValueError:
            raise InputError(f"bad direction {spec!r}: write {head}:K with K a component number (0 = first)") from None
        if k < 0:
            raise InputError(f"bad direction {spec!r}: the component number must be ≥ 0")
        d = G.space(edit_space(G)).shape[0]
        if k >= d:
            raise InputError(f"bad direction {spec!r}: this generator has {d} components (0…{d - 1})")
        comps = ganspace(G, k=k + 1) if head.lower() == "pca" else sefa(G, k=k + 1, layers=layers)
        return comps.direction(k)
    if head and not Path(spec).exists() and Path(head).suffix.lower() in (".npz", ".pt", ".pth") and tail.isdigit():
        if component is not None and component != int(tail):
            raise InputError(f"{spec!r} names component {tail} but --component says {component}")
        return load_direction(head, G, int(tail), notes)
    return load_direction(spec, G, component, notes)
