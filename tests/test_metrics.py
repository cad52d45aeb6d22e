"""Metrics: checked against scikit-image on real images, known values, per-sample shapes, offline LPIPS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv import metrics
from ganinv.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _digits() -> np.ndarray:
    """The ten bundled example digits, ``[10, 32, 32]`` float64 in [0, 1]."""
    return np.stack([np.asarray(Image.open(EXAMPLES / f"digit_{i}.png").convert("L"), dtype=np.float64) / 255
                     for i in range(10)])


def _degrade(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if kind == "noise":
        return np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1)
    if kind == "blur":
        sigma = (1.2, 1.2, 0) if img.ndim == 3 else 1.2
        return gaussian_filter(img, sigma)
    if kind == "dark":
        return img * 0.6
    raise ValueError(kind)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=-1 if a.ndim == 3 else None)


def _photos() -> list[np.ndarray]:
    """Real photos from scikit-image, resized small (RGB HWC and greyscale HW), float64 in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    return [resize(data.astronaut(), (64, 64), anti_aliasing=True),
            resize(data.coffee(), (40, 56), anti_aliasing=True),
            resize(data.camera(), (48, 37), anti_aliasing=True),
            resize(data.chelsea(), (33, 45), anti_aliasing=True)]


def _tensor(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img))
    return (t.permute(2, 0, 1) if t.dim() == 3 else t[None])[None]


@pytest.mark.parametrize("kind", ["noise", "blur", "dark"])
def test_ssim_matches_skimage_on_digits(kind):
    rng = np.random.default_rng(0)
    real = _digits()
    recon = np.stack([_degrade(d, kind, rng) for d in real])
    ours = metrics.ssim(torch.from_numpy(real)[:, None].float(), torch.from_numpy(recon)[:, None].float())
    ref = torch.tensor([_skimage_ssim(a, b) for a, b in zip(real, recon)], dtype=torch.float32)
    assert ours.shape == (10,)
    assert torch.allclose(ours, ref, atol=1e-3), (ours - ref).abs().max()


def test_ssim_matches_skimage_on_different_digits():
    real = _digits()
    other = np.roll(real, 1, axis=0)
    ours = metrics.ssim(torch.from_numpy(real)[:, None], torch.from_numpy(other)[:, None])
    ref = torch.tensor([_skimage_ssim(a, b) for a, b in zip(real, other)], dtype=torch.float32)
    assert torch.allclose(ours, ref, atol=1e-3)


@pytest.mark.parametrize("kind", ["noise", "blur", "dark"])
def test_ssim_matches_skimage_on_photos(kind):
    rng = np.random.default_rng(1)
    for photo in _photos():
        degraded = _degrade(photo, kind, rng)
        ours = metrics.ssim(_tensor(photo).float(), _tensor(degraded).float())
        assert ours.shape == (1,)
        assert abs(float(ours[0]) - _skimage_ssim(photo, degraded)) < 1e-3, photo.shape


def test_psnr_known_values():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 → 20 dB
    y[1, :, :4] += 0.2  # MSE 0.04 / 2 = 0.02 → 10·log10(50)
    assert torch.allclose(metrics.psnr(x, y), torch.tensor([20.0, 10 * np.log10(50)], dtype=torch.float32), atol=1e-4)
    assert torch.allclose(metrics.psnr(x * 255, y * 255, data_range=255), metrics.psnr(x, y), atol=1e-4)


def test_psnr_is_capped_for_identical_images_and_inputs_are_clamped():
    x = torch.rand(3, 1, 16, 16)
    assert torch.equal(metrics.psnr(x, x), torch.full((3,), metrics.PSNR_CAP))
    assert torch.equal(metrics.psnr(x + 2.0, torch.ones_like(x)), torch.full((3,), metrics.PSNR_CAP))
    assert (metrics.psnr(x, x + 1e-4) <= metrics.PSNR_CAP).all()


def test_metrics_are_per_sample_without_grad():
    real = torch.from_numpy(_digits())[:4, None].float()
    recon = (real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    values = metrics.compute_all(real, recon)
    assert set(values) == {"psnr", "ssim", "ms_ssim"}
    for name, v in values.items():
        assert v.shape == (4,) and not v.requires_grad and v.dtype == torch.float32, name
        assert torch.allclose(v[2:3], metrics.compute_all(real[2:3], recon[2:3])[name]), name


def test_ms_ssim():
    real = torch.from_numpy(_digits())[:, None].float()
    assert torch.allclose(metrics.ms_ssim(real, real), torch.ones(10))
    blurred = torch.from_numpy(np.stack([_degrade(d, "blur", None) for d in _digits()]))[:, None]
    noisy = (real + 0.3 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mild, strong = metrics.ms_ssim(real, blurred), metrics.ms_ssim(real, noisy)
    assert ((mild > 0) & (mild < 1)).all() and (strong < mild).all()
    with pytest.raises(InputError, match="too small for MS-SSIM"):
        metrics.ms_ssim(real[:, :, :8, :8], real[:, :, :8, :8])
    assert "ms_ssim" not in metrics.compute_all(real[:, :, :8, :8], real[:, :, :8, :8])


def test_ms_ssim_large_images_use_pytorch_msssim_defaults():
    from pytorch_msssim import ms_ssim

    photo = _photos()[0]
    from skimage.transform import resize

    big = resize(photo, (176, 176))
    noisy = np.clip(big + np.random.default_rng(0).normal(0, 0.05, big.shape), 0, 1)
    ours = metrics.ms_ssim(_tensor(big), _tensor(noisy))
    ref = ms_ssim(_tensor(big).double(), _tensor(noisy).double(), data_range=1, size_average=False).float()
    assert torch.allclose(ours, ref, atol=1e-6)


def test_shape_errors():
    with pytest.raises(InputError, match="same shape"):
        metrics.psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="same shape"):
        metrics.latent_error(torch.rand(2, 8), torch.rand(2, 9))


def test_latent_error_is_rmse_over_non_batch_dims():
    a = torch.zeros(3, 4, 8)
    b = torch.zeros(3, 4, 8)
    b[0] = 2.0
    b[1, 0] = 1.0  # 8 of 32 entries → RMSE 0.5
    assert torch.allclose(metrics.latent_error(a, b), torch.tensor([2.0, 0.5, 0.0]))


def test_class_preservation_with_bundled_classifier():
    from ganinv.zoo import load_classifier

    classifier = load_classifier()
    real = torch.from_numpy(_digits())[:, None].float()
    assert metrics.class_preservation(classifier, real, real).all()
    kept = metrics.class_preservation(classifier, real, real.roll(1, dims=0))
    assert kept.dtype == torch.bool and kept.shape == (10,) and not kept.any()
    values = metrics.compute_all(real, real, classifier=classifier)
    assert values["class_kept"].all()
    with pytest.raises(InputError, match=r"\[B, 1, 32, 32\]"):
        metrics.class_preservation(classifier, real[:, :, :16, :16], real[:, :, :16, :16])


@pytest.fixture
def empty_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("attempted a download"))
    return tmp_path / "torch_home"


def test_lpips_is_none_when_weights_are_missing(empty_torch_home):
    x = torch.rand(2, 1, 32, 32)
    assert metrics.lpips(x, x) is None
    assert metrics.lpips(x, x, net="vgg") is None
    assert "lpips" not in metrics.compute_all(x, x, lpips_net="alex")
    with pytest.raises(InputError, match="unknown LPIPS network"):
        metrics.lpips(x, x, net="resnet")


def test_lpips_with_random_alexnet_weights(empty_torch_home):
    import torchvision

    checkpoints = empty_torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints / "alexnet-owt-7be5be79.pth")
    real = torch.from_numpy(_digits())[:4, None].float()
    recon = torch.from_numpy(np.stack([_degrade(d, "blur", None) for d in _digits()[:4]]))[:, None]
    same = metrics.lpips(real, real)
    assert same is not None and torch.allclose(same, torch.zeros(4), atol=1e-6)
    value = metrics.lpips(real, recon.requires_grad_(True))
    assert value.shape == (4,) and (value > 0).all() and not value.requires_grad
    assert torch.allclose(metrics.compute_all(real, recon, lpips_net="alex")["lpips"], value)
