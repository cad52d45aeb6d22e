"""StyleGAN2's residual discriminator: shapes, the two blur forms, equalised learning rate, R1's double
backward, config round-trip, refusals; and its use by the GAN trainer (--discriminator residual, --d-warmup)."""

from __future__ import annotations

import pytest
import torch

import ganinv.train.gan as gan
from ganinv.errors import InputError
from ganinv.generators.stylegan2 import make_kernel, upfirdn2d
from ganinv.generators.stylegan2_discriminator import (
    EqualConv2d,
    StyleGAN2Discriminator,
    blur,
    blur_separable,
)
from ganinv.modelfile import build, load_pretrained, save_pretrained
from ganinv.train.gan import GanTrainConfig, GanTrainer

TINY = {"32": 8, "16": 16, "8": 16, "4": 16}
TINY_G = {"arch": "dcgan", "resolution": 32, "z_dim": 8, "width": 4, "img_channels": 1}


def test_blur_forms_agree_with_upfirdn2d_for_an_asymmetric_kernel():
    kernel = make_kernel([1.0, 2.0, 4.0, 1.0])  # asymmetric: catches a missing flip
    x = torch.randn(2, 3, 9, 11)
    ref = upfirdn2d(x, kernel, pad=(2, 1))
    padded = torch.nn.functional.pad(x, [2, 1, 2, 1])
    torch.testing.assert_close(blur(x, kernel, (2, 1)), ref)
    torch.testing.assert_close(blur_separable(padded, kernel), ref, atol=1e-6, rtol=1e-5)


def test_shapes_features_and_config_round_trip(tmp_path):
    D = StyleGAN2Discriminator(resolution=32, channels=TINY, img_channels=3, mbstd_group=2)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert D(x).shape == (4,)
    assert [f.shape[1:] for f in D.features(x)] == [(8, 32, 32), (16, 16, 16), (16, 8, 8), (16, 4, 4)]
    rebuilt = build(D.config())
    rebuilt.load_state_dict(D.state_dict())
    torch.testing.assert_close(rebuilt(x), D(x))
    save_pretrained(D, tmp_path / "d", name="d", kind="discriminator")
    torch.testing.assert_close(load_pretrained(tmp_path / "d")(x), D(x))


def test_equalised_lr_keeps_activations_of_order_one():
    torch.manual_seed(0)
    conv = EqualConv2d(64, 64, 3)
    x = torch.randn(16, 64, 16, 16)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.05)  # stored ~N(0, 1), scaled at run time
    # lrelu(·)·√2 after a fan-in-scaled conv keeps the second moment near the input's (He init)
    assert conv(x).square().mean().item() == pytest.approx(1.0, rel=0.2)
    down = EqualConv2d(64, 64, 3, downsample=True)
    assert down(x).shape == (16, 64, 8, 8)


def test_r1_double_backward_reaches_every_parameter():
    D = StyleGAN2Discriminator(resolution=16, channels={"16": 8, "8": 8, "4": 8}, mbstd_group=4)
    x = (torch.rand(8, 1, 16, 16) * 2 - 1).requires_grad_(True)
    logits = D(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    # R1 alone reaches every weight (not the last bias: ∂logit/∂x does not depend on it)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for name, p in D.named_parameters() if "weight" in name)
    assert D.head.bias.grad is None


def test_refuses_missing_widths_and_tiny_resolution():
    with pytest.raises(InputError, match="lack resolution"):
        StyleGAN2Discriminator(resolution=32, channels={"32": 8, "16": 8, "4": 8})
    with pytest.raises(InputError, match="resolution ≥ 8"):
        StyleGAN2Discriminator(resolution=4)


def test_trainer_with_residual_discriminator_and_d_warmup(tmp_path, monkeypatch):
    residual = {**gan.DISCRIMINATORS["residual"], "channels": TINY}
    monkeypatch.setitem(gan.DISCRIMINATORS, "residual", residual)
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": TINY_G})
    base = dict(arch="dcgan", iterations=2, batch_size=8, sample_every=100, eval_every=100, checkpoint_every=100)
    first = GanTrainer(tmp_path / "a", GanTrainConfig(**base), classifier=None)
    first.train()
    first.export(tmp_path / "model", name="model")
    # the same generator, warm-started against a fresh residual discriminator that trains alone for 2 steps
    cfg = GanTrainConfig(**{**base, "iterations": 3}, discriminator="residual", d_warmup=2,
                         init_from=str(tmp_path / "model"))
    second = GanTrainer(tmp_path / "b", cfg, classifier=None)
    assert isinstance(second.D, StyleGAN2Discriminator) and "starts afresh" in second.init_note
    g0 = {k: v.clone() for k, v in second.G.named_parameters()}  # (BatchNorm running stats may move)
    ema0 = {k: v.clone() for k, v in second.G_ema.named_parameters()}
    d0 = {k: v.clone() for k, v in second.D.state_dict().items()}
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    for _ in range(2):
        second.step(real)
        second.iteration += 1
    params = dict(second.G.named_parameters())
    assert all(torch.equal(v, params[k]) for k, v in g0.items())  # G and its EMA frozen during warm-up
    assert all(torch.equal(v, dict(second.G_ema.named_parameters())[k]) for k, v in ema0.items())
    assert any(not torch.equal(v, second.D.state_dict()[k]) for k, v in d0.items())
    second.step(real)
    assert any(not torch.equal(v, params[k]) for k, v in g0.items())
    with pytest.raises(InputError, match="unknown --discriminator"):
        GanTrainConfig(arch="dcgan", discriminator="bogus").resolved()
