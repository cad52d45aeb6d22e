"""Sample-quality figures: the Fréchet distance against scipy's matrix square root."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from ganinv.train.quality import Quality, frechet_distance


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_reference_and_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 1.0
    assert frechet_distance(a, b) == pytest.approx(reference_fd(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    # a shifted copy: only the mean term remains
    assert frechet_distance(a, a + 2.0) == pytest.approx(6 * 4.0, rel=1e-6)


def test_frechet_distance_is_stable_with_dead_features():
    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(size=(300, 8)), 0)
    a[:, :3] = 0  # dead ReLU units: singular covariance
    b = np.maximum(rng.normal(size=(300, 8)) + 0.1, 0)
    b[:, :3] = 0
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd >= 0


def test_quality_floor_rules():
    good = Quality(n_samples=10, confidence=0.95, coverage=[0.1] * 10, fd=1.0, fd_floor=0.5)
    assert good.passes and good.fd_ratio == 2.0
    assert not Quality(10, 0.95, [0.04] + [0.96 / 9] * 9, 1.0, 0.5).passes
    assert not Quality(10, 0.85, [0.1] * 10, 1.0, 0.5).passes
    assert not Quality(10, 0.95, [0.1] * 10, 3.0, 0.5).passes


def test_train_split_distance_is_measured_only_on_request(monkeypatch):
    """``fd_train`` (snapshot selection) compares samples with the train split; the held-out figures are unchanged."""
    import torch

    import ganinv.train.quality as quality
    from ganinv import wrap, zoo
    from ganinv.data import mnist

    small = {split: tuple(t[::8] for t in mnist(split)) for split in ("train", "test")}  # 500 and 125 digits
    monkeypatch.setattr(quality, "mnist", lambda split: small[split])
    train = small["train"][0]

    class TrainReplay(torch.nn.Module):  # "samples" = train digits picked by the latent: fd_train ≈ 0
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            idx = (z[:, 0].abs() * 1e6).long() % len(train)
            return train[idx]

    G = wrap(TrainReplay(), latent_dim=4, image_shape=(1, 32, 32), output_range=(0, 1))
    clf = zoo.load_classifier()
    plain = quality.generator_quality(G, clf, n=1000)
    both = quality.generator_quality(G, clf, n=1000, with_train=True)
    assert plain.fd_train is None and both.fd == plain.fd
    assert 0 <= both.fd_train < 0.5 * both.fd  # replayed train digits sit much closer to train than to held-out
    assert both.to_dict()["fd_train"] == both.fd_train
