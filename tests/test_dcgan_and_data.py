"""DCGAN generator/discriminator, the fixed MNIST split, and the classifier module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinv.classifier import DigitClassifier
from ganinv.data import heldout_subset, mnist, split_indices
from ganinv.errors import InputError
from ganinv.generators.dcgan import DCGANDiscriminator


def test_dcgan_generator_interface(tiny_dcgan):
    G = tiny_dcgan
    assert list(G.latent_spaces) == ["z"] and G.default_space == "z"
    assert G.noise_shapes == []
    z = G.sample_latent(3, seed=0)
    img = G.synthesize(z)
    assert img.shape == (3, 1, 16, 16)
    assert img.min() >= 0 and img.max() <= 1  # tanh output mapped to [0, 1]
    torch.testing.assert_close(img, (G(z) + 1) / 2)
    z.requires_grad_(True)
    G.synthesize(z).sum().backward()
    assert z.grad.abs().sum() > 0
    with pytest.raises(InputError, match="cannot convert"):
        G.convert(z, "z", "w")
    torch.testing.assert_close(G.mean_latent("z"), torch.zeros(1, 8))


def test_dcgan_discriminator_features():
    D = DCGANDiscriminator(resolution=32, width=8, img_channels=1).eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    feats = D.features(x)
    assert [f.shape[-1] for f in feats] == [16, 8, 4]
    assert D(x).shape == (4,)


def test_mnist_split_is_fixed_and_disjoint():
    train_idx, test_idx = split_indices("train"), split_indices("test")
    assert len(train_idx) == 4000 and len(test_idx) == 1000
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    x, y = mnist("test")
    assert x.shape == (1000, 1, 32, 32) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert np.bincount(y.numpy()).tolist() == [100] * 10
    assert x[:, :, :2].abs().sum() == 0  # padded border
    x28, _ = mnist("test", resolution=28)
    torch.testing.assert_close(x28, x[:, :, 2:-2, 2:-2])
    hx, hy = heldout_subset(200)
    assert hx.shape == (200, 1, 32, 32) and np.bincount(hy.numpy()).tolist() == [20] * 10
    with pytest.raises(InputError):
        mnist("val")


def test_classifier_shapes():
    clf = DigitClassifier().eval()
    x = torch.rand(5, 1, 32, 32)
    assert clf(x).shape == (5, 10)
    assert clf.features(x).shape == (5, 128)
    cls, conf = clf.predict(x)
    assert cls.shape == (5,) and ((conf > 0) & (conf <= 1)).all()
