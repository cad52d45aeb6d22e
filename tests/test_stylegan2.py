"""StyleGAN2 building blocks on their known invariants, and the generator interface."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganinv.errors import InputError
from ganinv.generators.stylegan2 import (EqualLinear, ModulatedConv2d, StyleGAN2Generator, Upsample, make_kernel,
                                         upfirdn2d)


def test_state_dict_keys_match_rosinality_layout():
    G = StyleGAN2Generator(resolution=32, channels={4: 8, 8: 8, 16: 8, 32: 8}, z_dim=8, w_dim=8, n_mlp=3,
                           img_channels=3)
    keys = set(G.state_dict())
    L = 5
    expected = {"input.input", "conv1.conv.weight", "conv1.conv.modulation.weight", "conv1.conv.modulation.bias",
                "conv1.noise.weight", "conv1.activate.bias", "to_rgb1.conv.weight", "to_rgb1.conv.modulation.weight",
                "to_rgb1.conv.modulation.bias", "to_rgb1.bias"}
    expected |= {f"style.{i}.{p}" for i in range(1, 4) for p in ("weight", "bias")}
    for k in range(L - 2):
        for j in (2 * k, 2 * k + 1):
            expected |= {f"convs.{j}.conv.weight", f"convs.{j}.conv.modulation.weight",
                         f"convs.{j}.conv.modulation.bias", f"convs.{j}.noise.weight", f"convs.{j}.activate.bias"}
        expected |= {f"convs.{2 * k}.conv.blur.kernel", f"to_rgbs.{k}.upsample.kernel", f"to_rgbs.{k}.conv.weight",
                     f"to_rgbs.{k}.conv.modulation.weight", f"to_rgbs.{k}.conv.modulation.bias", f"to_rgbs.{k}.bias"}
    expected |= {f"noises.noise_{i}" for i in range(2 * L - 3)}
    assert keys == expected
    sd = G.state_dict()
    assert sd["input.input"].shape == (1, 8, 4, 4)
    assert sd["conv1.conv.weight"].shape == (1, 8, 8, 3, 3)
    assert sd["to_rgb1.conv.weight"].shape == (1, 3, 8, 1, 1)
    assert sd["to_rgb1.bias"].shape == (1, 3, 1, 1)
    assert sd["convs.0.conv.blur.kernel"].shape == (4, 4)
    for i in range(2 * L - 3):
        r = 2 ** ((i + 5) // 2)
        assert sd[f"noises.noise_{i}"].shape == (1, 1, r, r)
    assert G.num_ws == 2 * L - 2 and G.num_layers == 2 * L - 3
    assert "w_avg" not in sd  # kept out so the keys are exactly rosinality's


def test_demodulation_keeps_unit_output_variance():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, style_dim=32)
    x = torch.randn(8, 64, 16, 16)
    for scale in (0.1, 1.0, 10.0):  # whatever the style magnitude, outputs stay at unit variance
        style = torch.randn(8, 32) * scale
        with torch.no_grad():
            y = conv(x, style)[:, :, 1:-1, 1:-1]  # ignore the zero-padded border
        assert y.var().item() == pytest.approx(1.0, rel=0.1)


def test_nonfused_modulated_conv_equals_grouped_reference():
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(6, 5, 3, style_dim=4, upsample=upsample)
        x, style = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
        with torch.no_grad():
            ours = conv(x, style)
            # the textbook grouped form: modulate + demodulate per-sample weights
            s = conv.modulation(style).view(3, 1, 6, 1, 1)
            w = conv.scale * conv.weight * s
            w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(3, 5, 1, 1, 1)
            if upsample:
                w = w.transpose(1, 2).reshape(3 * 6, 5, 3, 3)
                ref = F.conv_transpose2d(x.view(1, 18, 8, 8), w, stride=2, groups=3).view(3, 5, 17, 17)
                ref = conv.blur(ref)
            else:
                ref = F.conv2d(x.view(1, 18, 8, 8), w.view(15, 6, 3, 3), padding=1, groups=3).view(3, 5, 8, 8)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_equalized_learning_rate_and_mapping_multiplier():
    torch.manual_seed(0)
    layer = EqualLinear(256, 256, lr_mul=0.01)
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.05)  # stored as randn / lr_mul
    x = torch.randn(4096, 256)
    with torch.no_grad():
        y = layer(x)
    assert y.var().item() == pytest.approx(1.0, rel=0.1)  # runtime scale keeps unit variance
    # the effective weight is weight * lr_mul / sqrt(in): gradients to the stored weight shrink by that factor
    layer.weight.grad = None
    layer(x[:1]).sum().backward()
    expected = x[:1].sum(0) * 0.01 / 16.0
    torch.testing.assert_close(layer.weight.grad[0], expected, atol=1e-6, rtol=1e-5)


def test_upfirdn2d_shapes_and_dc_gain():
    k = make_kernel([1, 3, 3, 1])
    assert k.sum().item() == pytest.approx(1.0)
    up = Upsample([1, 3, 3, 1])
    x = torch.ones(1, 2, 8, 8)
    y = up(x)
    assert y.shape == (1, 2, 16, 16)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.ones_like(y[..., 2:-2, 2:-2]))  # DC gain 1 inside
    delta = torch.zeros(1, 1, 5, 5)
    delta[0, 0, 2, 2] = 1
    out = upfirdn2d(delta, k, pad=(1, 2))
    assert out.shape == (1, 1, 5, 5)
    assert out.sum().item() == pytest.approx(1.0)


def test_spaces_conversion_and_synthesis(tiny_sg2):
    G = tiny_sg2
    assert list(G.latent_spaces) == ["z", "w", "w+"]
    assert G.space("w+").shape == (G.num_ws, 16)
    z = G.sample_latent(3, "z", seed=1)
    w = G.convert(z, "z", "w")
    wp = G.convert(z, "z", "w+")
    assert w.shape == (3, 16) and wp.shape == (3, G.num_ws, 16)
    a, b, c = G.synthesize(z, "z"), G.synthesize(w, "w"), G.synthesize(wp, "w+")
    assert a.shape == (3, 1, 16, 16)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(b, c)
    # the image adapter maps native [-1, 1] to [0, 1]
    native = G.synthesis(wp, G.stored_noise())
    torch.testing.assert_close(c, (native + 1) / 2)
    with pytest.raises(InputError, match="cannot convert"):
        G.convert(w, "w", "z")
    with pytest.raises(InputError, match=r"shape \[B, 16\]"):
        G.synthesize(torch.zeros(2, 5), "w")
    with pytest.raises(InputError, match="no latent space"):
        G.synthesize(w, "s")
    with pytest.raises(InputError, match="NaN"):
        G.synthesize(torch.full((1, 16), float("nan")), "w")


def test_noise_maps_and_truncation(tiny_sg2):
    G = tiny_sg2
    assert G.noise_shapes == [(1, 1, 4, 4), (1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 16, 16)]
    w = G.sample_latent(2, "w", seed=0)
    noise = [torch.randn(s) for s in G.noise_shapes]
    assert not torch.allclose(G.synthesize(w, "w"), G.synthesize(w, "w", noise=noise))
    torch.testing.assert_close(G.synthesize(w, "w"), G.synthesize(w, "w", noise=G.stored_noise()))
    mean = G.mean_latent("w")
    torch.testing.assert_close(G.truncate(w, 0.0), mean.expand_as(w))
    torch.testing.assert_close(G.truncate(w, 0.5), mean + 0.5 * (w - mean))
    assert G.mean_latent("w+").shape == (1, G.num_ws, 16)
    with pytest.raises(InputError, match="noise maps"):
        G.synthesize(w, "w", noise=noise[:2])


def test_gradient_reaches_latent_not_weights(tiny_sg2):
    G = tiny_sg2
    wp = G.mean_latent("w+").repeat(2, 1, 1).requires_grad_(True)
    G.synthesize(wp, "w+").square().mean().backward()
    assert wp.grad is not None and wp.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.parameters())


def test_sampling_is_deterministic(tiny_sg2):
    a = tiny_sg2.sample(4, seed=3)
    b = tiny_sg2.sample(4, seed=3)
    c = tiny_sg2.sample(4, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_style_mixing_forward_matches_w_plus(tiny_sg2):
    G = tiny_sg2
    z1, z2 = G.sample_latent(2, "z", seed=0), G.sample_latent(2, "z", seed=1)
    torch.manual_seed(0)
    mixed = G.forward_mixed(z1, z2, 3)
    w1, w2 = G.mapping(z1), G.mapping(z2)
    ws = torch.cat([w1.unsqueeze(1).repeat(1, 3, 1), w2.unsqueeze(1).repeat(1, G.num_ws - 3, 1)], 1)
    torch.manual_seed(0)
    ref = G.synthesis(ws, [None] * G.num_layers)
    torch.testing.assert_close(mixed, ref)


def test_config_round_trip_and_validation():
    G = StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8, 16: 4}, z_dim=8, w_dim=8, n_mlp=1, img_channels=1)
    from ganinv.modelfile import build

    G2 = build(G.config())
    assert G2.config() == G.config()
    with pytest.raises(InputError, match="missing"):
        StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8})
    with pytest.raises(InputError, match="power of two"):
        StyleGAN2Generator(resolution=24)
    assert math.log2(G.resolution) == 4
