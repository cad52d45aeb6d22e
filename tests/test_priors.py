"""Latent and noise-map regularisers: ganinv.losses.priors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganinv.errors import InputError
from ganinv.losses.priors import PRIORS, latent_prior, noise_regularization, normalize_noise_, stochastic_clip_


# ----- latent_prior --------------------------------------------------------------------------------------
def test_gaussian_prior_values():
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-3.0, 1.0]])
    expected = torch.tensor([0.5 * (1 + 4) / 2, 0.0, 0.5 * (9 + 1) / 2])
    torch.testing.assert_close(latent_prior(z, "z"), expected)
    torch.testing.assert_close(latent_prior(z, "z", kind="gaussian"), expected)
    assert set(PRIORS) == {"gaussian", "shell"}


def test_shell_prior_values():
    z = torch.tensor([[3.0, 4.0], [1.0, 1.0], [0.0, 0.0]])  # norms 5, √2, 0 in d = 2
    expected = torch.tensor([(5 / math.sqrt(2) - 1) ** 2, 0.0, 1.0])
    torch.testing.assert_close(latent_prior(z, "z", kind="shell"), expected)
    # a typical standard-normal sample sits near the shell: small penalty; the origin is penalised
    big = torch.randn(4, 4096, generator=torch.Generator().manual_seed(0))
    assert (latent_prior(big, "z", kind="shell") < 1e-3).all()
    assert latent_prior(torch.zeros(1, 4096), "z", kind="shell").item() == pytest.approx(1.0)


def test_w_prior_values():
    mean = torch.tensor([[1.0, -1.0]])
    w = torch.tensor([[1.0, -1.0], [3.0, -1.0], [0.0, 0.0]])
    expected = torch.tensor([0.0, 4 / 2, 2 / 2]) / 2.0  # mean squared distance / variance (2)
    torch.testing.assert_close(latent_prior(w, "w", mean=mean, variance=2.0), expected)
    # w+: [B, num_ws, w_dim] against a [1, num_ws, w_dim] mean, averaged over all elements
    wp = torch.zeros(2, 3, 2)
    wp[1, 0] = torch.tensor([2.0, 0.0])
    mean_p = torch.zeros(1, 3, 2)
    torch.testing.assert_close(latent_prior(wp, "w+", mean=mean_p, variance=1.0), torch.tensor([0.0, 4 / 6]))
    # the gaussian/shell kind does not apply outside z
    torch.testing.assert_close(latent_prior(w, "w", mean=mean, variance=2.0, kind="shell"), expected)


def test_w_prior_zero_variance_is_finite():
    out = latent_prior(torch.ones(2, 3), "w", mean=torch.zeros(1, 3), variance=0.0)
    assert torch.isfinite(out).all() and (out > 0).all()


@pytest.mark.parametrize("space, kind", [("z", "gaussian"), ("z", "shell"), ("w", "gaussian"), ("w+", "gaussian")])
def test_prior_gradients(space, kind):
    shape = (3, 4, 5) if space == "w+" else (3, 5)
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    mean = torch.randn(1, *shape[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kw = {} if space == "z" else dict(mean=mean, variance=0.7)

    def fn(t):
        return latent_prior(t, space, kind=kind, **kw)

    assert torch.autograd.gradcheck(fn, (x,))
    out = fn(x)
    assert out.shape == (3,)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # per sample: the penalty of row i depends on row i only
    x2 = x.detach().clone()
    x2[0] += 1.0
    changed = fn(x2) != fn(x.detach())
    assert changed.tolist() == [True, False, False]


def test_prior_errors():
    with pytest.raises(InputError, match="prior"):
        latent_prior(torch.zeros(1, 2), "z", kind="laplace")
    with pytest.raises(InputError, match="mean"):
        latent_prior(torch.zeros(1, 2), "w")


# ----- noise_regularization --------------------------------------------------------------------------------
def test_noise_regularization_hand_computed():
    ones8 = torch.ones(1, 1, 8, 8)
    # lag-1 products are 1 along both axes at one octave (8 px): 1² + 1²
    torch.testing.assert_close(noise_regularization([ones8]), torch.tensor([2.0]))
    # 16 px: two octaves (16, then 8 after 2× average pooling)
    torch.testing.assert_close(noise_regularization([torch.ones(1, 1, 16, 16)]), torch.tensor([4.0]))
    # checkerboard: every lag-1 product is −1 → (−1)² twice; maps are summed
    i = torch.arange(8)
    checker = ((i.view(-1, 1) + i.view(1, -1)) % 2 * 2 - 1).float().view(1, 1, 8, 8)
    torch.testing.assert_close(noise_regularization([checker]), torch.tensor([2.0]))
    torch.testing.assert_close(noise_regularization([checker, ones8]), torch.tensor([4.0]))
    # a 4 px map is below the 8 px floor: still one octave
    torch.testing.assert_close(noise_regularization([torch.ones(1, 1, 4, 4)]), torch.tensor([2.0]))


def test_noise_regularization_white_vs_smooth():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 128, 128, generator=g)
    smooth = F.interpolate(torch.randn(1, 1, 8, 8, generator=g), size=(128, 128), mode="bilinear",
                           align_corners=False)
    ramp = torch.linspace(-1, 1, 128).view(1, 1, 1, 128).expand(1, 1, 128, 128)
    normalize_noise_([white, smooth])
    ramp = ramp.clone()
    normalize_noise_([ramp])
    batch = torch.cat([white, smooth, ramp])
    out = noise_regularization([batch])
    assert out.shape == (3,)
    assert out[0] < 1e-3  # independent pixels: autocorrelation ≈ 0 at every octave
    assert out[1] > 0.5 and out[2] > 0.5  # smooth maps: ≈ 1 per axis and octave
    # per sample: equal to evaluating each sample alone
    alone = torch.cat([noise_regularization([batch[i:i + 1]]) for i in range(3)])
    torch.testing.assert_close(out, alone)


def test_noise_regularization_gradient_and_errors():
    n = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    m = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    n.requires_grad_(True)
    m.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: noise_regularization([a, b]), (n, m))
    with pytest.raises(InputError):
        noise_regularization([])


# ----- normalize_noise_ -------------------------------------------------------------------------------------
def test_normalize_noise_in_place():
    g = torch.Generator().manual_seed(5)
    maps = [torch.randn(3, 1, s, s, generator=g) * torch.tensor([0.1, 2.0, 7.0]).view(3, 1, 1, 1)
            + torch.tensor([5.0, -1.0, 0.0]).view(3, 1, 1, 1) for s in (4, 8, 16)]
    ids = [id(m) for m in maps]
    ptrs = [m.data_ptr() for m in maps]
    assert normalize_noise_(maps) is None
    assert [id(m) for m in maps] == ids and [m.data_ptr() for m in maps] == ptrs
    for m in maps:
        torch.testing.assert_close(m.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(m.square().mean(dim=(1, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)
    # works on leaves that require grad (the optimiser's parameters) and on constant maps (no NaN)
    leaf = torch.full((1, 1, 4, 4), 3.0, requires_grad=True)
    normalize_noise_([leaf])
    assert torch.isfinite(leaf).all() and leaf.abs().max() == 0 and leaf.requires_grad


# ----- stochastic_clip_ -----------------------------------------------------------------------------------
def test_stochastic_clip_resamples_exactly_the_outliers():
    z = torch.tensor([[0.5, -4.0, 2.9, 3.0], [3.1, -3.0, 0.0, -10.0]])
    before = z.clone()
    count = stochastic_clip_(z, 3.0, torch.Generator().manual_seed(0))
    outside = before.abs() > 3.0
    assert count == int(outside.sum()) == 3
    assert torch.equal(z[~outside], before[~outside])  # in-range components untouched (±3.0 included)
    assert (z[outside].abs() <= 3.0).all() and (z[outside] != before[outside]).all()


def test_stochastic_clip_statistics_and_determinism():
    big = torch.randn(200, 64, generator=torch.Generator().manual_seed(1)) * 2
    a, b, c = big.clone(), big.clone(), big.clone()
    n_a = stochastic_clip_(a, 1.5, torch.Generator().manual_seed(7))
    n_b = stochastic_clip_(b, 1.5, torch.Generator().manual_seed(7))
    stochastic_clip_(c, 1.5, torch.Generator().manual_seed(8))
    assert n_a == n_b == int((big.abs() > 1.5).sum()) > 1000
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.5
    # fresh values are N(0, 1) draws clamped to the box: roughly symmetric, not piled at ±threshold
    fresh = a[big.abs() > 1.5]
    assert abs(fresh.mean().item()) < 0.1
    assert (fresh.abs() == 1.5).float().mean() < 0.25


def test_stochastic_clip_nothing_to_do_and_errors():
    z = torch.zeros(2, 3)
    assert stochastic_clip_(z, 1.0) == 0 and torch.equal(z, torch.zeros(2, 3))
    for bad in (0.0, -1.0):
        with pytest.raises(InputError, match="threshold"):
            stochastic_clip_(z, bad)
