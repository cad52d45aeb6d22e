"""Losses: per-sample shapes, zero at identity, gradient flow, spec parsing, LPIPS offline behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganinv.errors import CheckpointError, InputError, MissingWeightsError
from ganinv.generators.dcgan import DCGANDiscriminator
from ganinv.losses import (
    LOSS_NAMES,
    CombinedLoss,
    DiscriminatorFeatureLoss,
    LPIPSLoss,
    backbone_path,
    l1,
    lpips_available,
    ms_ssim_loss,
    mse,
    parse_loss_spec,
    pixel,
    ssim_loss,
)
from ganinv.losses.perceptual import BACKBONES

PIXEL_LOSSES = [mse, l1, ssim_loss, ms_ssim_loss]


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g)
    pred = (target + 0.15 * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred, target


def _grad_of(loss_fn, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = pred.clone().requires_grad_(True)
    value = loss_fn(pred, target)
    assert value.shape == (pred.shape[0],)
    value.sum().backward()
    return pred.grad


# ---------------------------------------------------------------- pixel losses

@pytest.mark.parametrize("loss_fn", PIXEL_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3, 1, 32, 32), (2, 3, 24, 20), (2, 1, 16, 16)])
def test_pixel_losses_are_per_sample_zero_at_identity_and_differentiable(loss_fn, shape):
    pred, target = _pair(shape)
    assert loss_fn(target, target).shape == (shape[0],)
    assert torch.allclose(loss_fn(target, target), torch.zeros(shape[0]), atol=1e-6)
    value = loss_fn(pred, target)
    assert (value > 0).all()
    grad = _grad_of(loss_fn, pred, target)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_pixel_losses_are_per_sample_independent():
    pred, target = _pair((4, 1, 32, 32))
    for loss_fn in PIXEL_LOSSES:
        full = loss_fn(pred, target)
        assert torch.allclose(full[1:2], loss_fn(pred[1:2], target[1:2]), atol=1e-6), loss_fn.__name__


def test_mse_and_l1_known_values():
    target = torch.zeros(2, 1, 4, 4)
    pred = torch.full((2, 1, 4, 4), 0.5)
    pred[1] = 0.25
    assert torch.allclose(mse(pred, target), torch.tensor([0.25, 0.0625]))
    assert torch.allclose(l1(pred, target), torch.tensor([0.5, 0.25]))


def test_shape_mismatch_is_input_error():
    with pytest.raises(InputError, match="same shape"):
        mse(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 9))
    with pytest.raises(InputError, match="same shape"):
        l1(torch.rand(2), torch.rand(2))  # a batch of scalars is not a batch of observations
    assert mse(torch.zeros(3, 5), torch.ones(3, 5)).tolist() == [1.0, 1.0, 1.0]  # measurement vectors
    with pytest.raises(InputError, match=r"\[B, C, H, W\]"):
        ssim_loss(torch.rand(1, 8, 8), torch.rand(1, 8, 8))


@pytest.mark.parametrize("side, expected", [(13, (2, 7)), (16, (2, 7)), (28, (3, 7)), (32, (3, 7)), (64, (4, 7)),
                                            (150, (5, 9)), (161, (5, 11)), (256, (5, 11))])
def test_ms_ssim_scales_and_window_follow_the_image_size(side, expected):
    assert pixel.ms_ssim_config(side, side + 5) == expected
    scales, _ = expected
    assert sum(pixel.ms_ssim_weights(scales)) == pytest.approx(1.0)


def test_ms_ssim_refuses_images_too_small_for_two_scales():
    with pytest.raises(InputError, match="too small for MS-SSIM.*13×13"):
        ms_ssim_loss(torch.rand(1, 1, 12, 40), torch.rand(1, 1, 12, 40))


def test_ms_ssim_multiscale_matches_pytorch_msssim_at_full_size():
    from pytorch_msssim import ms_ssim

    pred, target = _pair((2, 3, 176, 168))
    pred, target = pred.double(), target.double()
    ours = pixel.ms_ssim_multiscale(pred, target, scales=5, win=11)
    ref = ms_ssim(pred, target, data_range=1, size_average=False)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert torch.allclose(1 - ms_ssim_loss(pred, target), ref, atol=1e-10)


def test_ms_ssim_loss_gradient_stays_finite_for_anticorrelated_images():
    target = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    grad = _grad_of(ms_ssim_loss, 1 - target, target)
    assert torch.isfinite(grad).all()


def test_ssim_handles_images_smaller_than_the_window():
    pred, target = _pair((2, 1, 8, 9))
    assert pixel.ssim_window(8, 9) == 7
    assert ssim_loss(pred, target).shape == (2,)
    with pytest.raises(InputError, match="too small for SSIM"):
        ssim_loss(torch.rand(1, 1, 2, 8), torch.rand(1, 1, 2, 8))


# ---------------------------------------------------------------- loss specs

@pytest.mark.parametrize("spec, expected", [
    ("mse=1,lpips=0.8", {"mse": 1.0, "lpips": 0.8}),
    ("mse", {"mse": 1.0}),
    (" MSE = 2 , ms-ssim , l1=0 ", {"mse": 2.0, "ms_ssim": 1.0, "l1": 0.0}),
    ("ssim=1e-1,lpips_alex=3,dfeat=0.05", {"ssim": 0.1, "lpips_alex": 3.0, "dfeat": 0.05}),
])
def test_parse_loss_spec(spec, expected):
    assert parse_loss_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "empty loss spec"),
    ("mse=1,", "empty term"),
    ("=1", "missing loss name"),
    ("mse=abc", "must be a number"),
    ("mse=-1", "≥ 0"),
    ("mse=nan", "≥ 0"),
    ("mse=inf", "≥ 0"),
    ("perceptual=1", "unknown loss 'perceptual'"),
    ("mse=1,mse=2", "given twice"),
    ("lpips=1,lpips_vgg=1", "same loss"),
])
def test_parse_loss_spec_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_loss_spec(spec)


def test_every_documented_name_is_accepted():
    assert set(LOSS_NAMES) == {"mse", "l1", "ssim", "ms_ssim", "lpips", "lpips_vgg", "lpips_alex", "dfeat", "id"}


def test_combined_loss_is_the_weighted_sum_and_logs_terms():
    pred, target = _pair((3, 1, 32, 32))
    loss = CombinedLoss.from_spec("mse=2,ssim=0.5,l1=0")
    assert loss.names == ["mse", "ssim"]
    pred = pred.requires_grad_(True)
    total = loss(pred, target)
    expected = 2 * mse(pred, target) + 0.5 * ssim_loss(pred, target)
    assert total.shape == (3,) and torch.allclose(total, expected)
    assert set(loss.last_terms) == {"mse", "ssim"}
    assert torch.allclose(loss.last_terms["mse"], mse(pred, target))
    assert not loss.last_terms["mse"].requires_grad
    total.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert torch.allclose(CombinedLoss.from_spec({"mse": 2.0, "ssim": 0.5})(pred, target), expected)


def test_combined_loss_errors():
    with pytest.raises(InputError, match="non-zero weight"):
        CombinedLoss.from_spec("mse=0,l1=0")
    with pytest.raises(InputError, match="needs a discriminator"):
        CombinedLoss.from_spec("mse=1,dfeat=0.1")
    with pytest.raises(InputError, match="unknown loss"):
        CombinedLoss.from_spec({"vgg": 1.0})


# ---------------------------------------------------------------- discriminator features

def _tiny_d() -> DCGANDiscriminator:
    torch.manual_seed(0)
    return DCGANDiscriminator(resolution=16, width=8, norm="none")


def test_discriminator_feature_loss():
    D = _tiny_d()
    D.train()
    loss = DiscriminatorFeatureLoss(D).train()
    assert not D.training and not any(p.requires_grad for p in D.parameters())
    pred, target = _pair((3, 1, 16, 16))
    assert torch.allclose(loss(target, target), torch.zeros(3))
    value = loss(pred, target)
    assert value.shape == (3,) and (value > 0).all()
    grad = _grad_of(loss, pred, target)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(InputError, match="16×16"):
        loss(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(InputError, match="features"):
        DiscriminatorFeatureLoss(torch.nn.Linear(2, 2))


def test_discriminator_feature_blocks_are_balanced():
    """Scaling one block's activations (e.g. a larger layer) must not change its share of the loss."""
    loss = DiscriminatorFeatureLoss(_tiny_d())
    pred, target = _pair((2, 1, 16, 16))
    base = loss(pred, target)
    original = loss.discriminator.features
    loss.discriminator.features = lambda x: [f * (1000.0 if i == 0 else 1.0) for i, f in enumerate(original(x))]
    assert torch.allclose(loss(pred, target), base, rtol=1e-4)


def test_combined_loss_with_dfeat():
    D = _tiny_d()
    loss = CombinedLoss.from_spec("mse=1,dfeat=0.5", discriminator=D)
    pred, target = _pair((2, 1, 16, 16))
    assert torch.allclose(loss(pred, target), mse(pred, target) + 0.5 * DiscriminatorFeatureLoss(D)(pred, target))


# ---------------------------------------------------------------- LPIPS, offline

@pytest.fixture(scope="module")
def torch_home_with_random_backbones(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds VGG16 and AlexNet checkpoints of random weights, under their real names."""
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), checkpoints / "vgg16-397923af.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    return home


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"attempted a download: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def offline_home(monkeypatch, torch_home_with_random_backbones, no_downloads) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(torch_home_with_random_backbones))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # no earlier torch.hub.set_dir() may override TORCH_HOME
    assert Path(torch.hub.get_dir()) == torch_home_with_random_backbones / "hub"
    return torch_home_with_random_backbones


@pytest.fixture
def empty_home(monkeypatch, tmp_path, no_downloads) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "empty_torch_home"


def test_backbone_urls_are_torchvisions():
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    assert BACKBONES["vgg"][1] == VGG16_Weights.IMAGENET1K_V1.url
    assert BACKBONES["alex"][1] == AlexNet_Weights.IMAGENET1K_V1.url
    for file_name, url in BACKBONES.values():
        assert url.endswith("/" + file_name)


def test_missing_backbone_is_one_clear_error(empty_home):
    assert not lpips_available("vgg") and not lpips_available("alex") and not lpips_available("squeeze")
    for net, (file_name, url) in BACKBONES.items():
        expected = empty_home / "hub" / "checkpoints" / file_name
        assert backbone_path(net) == expected
        with pytest.raises(MissingWeightsError) as info:
            LPIPSLoss(net)
        message = str(info.value)
        assert file_name in message and str(expected) in message and url in message
        assert "--loss" in message and "\n" not in message
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        CombinedLoss.from_spec("mse=1,lpips=0.5")
    with pytest.raises(InputError, match="unknown LPIPS network"):
        LPIPSLoss("squeeze")


def test_lpips_vgg_runs_the_real_lpips_code_offline(offline_home, monkeypatch):
    assert lpips_available("vgg")
    loss = LPIPSLoss("vgg")
    loss.train()
    assert not loss.training and not loss.model.training
    assert not any(p.requires_grad for p in loss.parameters())
    pred, target = _pair((2, 1, 16, 16))  # 1 channel, tiny: repeated to RGB and upsampled to 64 px
    assert torch.allclose(loss(target, target), torch.zeros(2), atol=1e-6)
    value = loss(pred, target)
    assert value.shape == (2,) and (value > 0).all()
    grad = _grad_of(loss, pred, target)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0

    import ganinv.losses

    asked = []
    monkeypatch.setattr(ganinv.losses, "LPIPSLoss", lambda net: asked.append(net) or loss)  # reuse: keeps it fast
    combined = CombinedLoss.from_spec("mse=1,lpips=0.5")
    assert asked == ["vgg"]
    total = combined(pred, target)
    assert torch.allclose(total, mse(pred, target) + 0.5 * value, atol=1e-6)
    assert set(combined.last_terms) == {"mse", "lpips"}


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_lpips_alex_equals_lpips_package_reading_the_hub_cache(offline_home):
    import lpips

    ours = LPIPSLoss("alex")
    reference = lpips.LPIPS(net="alex", verbose=False)  # torchvision's pretrained path, from the hub cache
    pred, target = _pair((3, 3, 64, 64))
    with torch.no_grad():
        assert torch.allclose(ours(pred, target), reference(pred * 2 - 1, target * 2 - 1).flatten(), atol=1e-6)
    rgb_value = ours(pred[:, :1].expand(-1, 3, -1, -1), target[:, :1].expand(-1, 3, -1, -1))
    assert torch.allclose(ours(pred[:, :1], target[:, :1]), rgb_value)


def test_corrupt_backbone_is_a_checkpoint_error(empty_home):
    checkpoints = empty_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "alexnet-owt-7be5be79.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth"):
        LPIPSLoss("alex")
    torch.save({"features.0.weight": torch.zeros(1)}, checkpoints / "alexnet-owt-7be5be79.pth")
    with pytest.raises(CheckpointError, match="do not match"):
        LPIPSLoss("alex")


def test_lpips_loss_runs_at_most_256_px_and_the_metric_at_full_size(offline_home):
    loss = LPIPSLoss("alex")
    assert loss.max_size == 256
    assert tuple(loss.prepare(torch.rand(1, 3, 512, 1024)).shape) == (1, 3, 256, 512)  # area, aspect kept
    assert tuple(loss.prepare(torch.rand(1, 3, 256, 256)).shape) == (1, 3, 256, 256)
    x = torch.rand(1, 3, 512, 512)
    assert torch.allclose(loss.prepare(x), torch.nn.functional.avg_pool2d(x, 2) * 2 - 1, atol=1e-6)
    full = LPIPSLoss("alex", max_size=None)
    assert tuple(full.prepare(torch.rand(1, 3, 512, 512)).shape) == (1, 3, 512, 512)
    from ganinv import metrics

    assert metrics._lpips_model("alex").max_size is None
