"""Clipped target pixels (``ganinv.losses.saturation``) and the engine's use of them for reconstruction."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_stylegan2
from ganinv.errors import InputError
from ganinv.inverters import OptimizeSettings, optimize
from ganinv.losses import CombinedLoss, match_saturation


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_match_saturation_clips_only_at_the_targets_bounds_and_only_on_the_far_side():
    pred = torch.tensor([1.3, 0.7, -0.2, 0.1, 0.9, 1.2, -0.3], requires_grad=True)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5, 1.4, -0.1])  # last two: out of range, not a clipped display
    out = match_saturation(pred, target)
    assert out.tolist() == pytest.approx([1.0, 0.7, 0.0, 0.1, 0.9, 1.2, -0.3])
    out.sum().backward()
    assert pred.grad.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]


def _clipping_generator():
    """A tiny StyleGAN2 whose samples go well beyond [0, 1] (its ToRGB weights scaled up)."""
    G = make_tiny_stylegan2(img_channels=1, seed=3)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "to_rgb" in name and name.endswith("weight"):
                p.mul_(2.0)
    return G


def test_the_true_latent_of_a_clipped_sample_has_zero_loss_only_with_saturation():
    G = _clipping_generator()
    w = G.convert(G.sample_latent(4, "w", seed=1), "w", "w+")
    with torch.no_grad():
        raw = G.synthesize(w, "w+")
    target = raw.clamp(0, 1)
    clipped = float(((raw < 0) | (raw > 1)).float().mean())
    assert clipped > 0.2  # the premise: many pixels are clipped
    loss = CombinedLoss.from_spec("mse,ssim=0.5")
    plain = loss(raw, target)
    loss.saturation = True
    aware = loss(raw, target)
    assert (plain > 1e-3).all()
    assert aware.abs().max() < 1e-6


def test_recovery_of_clipped_samples_gains_with_saturation():
    G = _clipping_generator()
    w = G.convert(G.sample_latent(4, "w", seed=2), "w", "w+")
    with torch.no_grad():
        target = G.synthesize(w, "w+").clamp(0, 1)
    psnr = {}
    for flag in (True, False):
        r = optimize(G, target, None, OptimizeSettings(space="w+", steps=150, saturation=flag, seed=0))
        psnr[flag] = r.metrics["psnr"]
        assert r.settings["saturation"] is flag
    assert float(psnr[True].mean()) > float(psnr[False].mean()) + 3, psnr


def test_saturation_is_off_under_physics_and_validated():
    G = make_tiny_stylegan2(img_channels=1, seed=4)
    w = G.sample_latent(2, "w", seed=3)
    with torch.no_grad():
        y = G.synthesize(w, "w").clamp(0, 1)[:, :, ::2, ::2]  # a subsampled observation with values at 0 and 1

    def physics(x):
        return x[:, :, ::2, ::2]

    runs = [optimize(G, y, physics, OptimizeSettings(space="w", steps=5, saturation=flag)) for flag in (True, False)]
    assert torch.equal(runs[0].latent, runs[1].latent)
    with pytest.raises(InputError, match="saturation is True or False"):
        optimize(G, y.new_zeros(1, *G.image_shape), None, OptimizeSettings(space="w", steps=2, saturation="yes"))
