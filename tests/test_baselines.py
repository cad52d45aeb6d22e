"""Classical restoration baselines (:mod:`ganinv.physics.baselines`): small synthetic images, offline, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinv.errors import InputError
from ganinv.metrics import psnr
from ganinv.physics import baselines as bl


def blocks(n: int = 3, size: int = 32) -> torch.Tensor:
    """Piecewise-constant test images ``[n, 1, size, size]`` in [0, 1] (seeded rectangles)."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, 1, size, size), 0.1)
    for i in range(n):
        for _ in range(4):
            r0, c0 = torch.randint(0, size - 8, (2,), generator=g).tolist()
            h, w = torch.randint(5, 14, (2,), generator=g).tolist()
            x[i, 0, r0:r0 + h, c0:c0 + w] = float(torch.rand(1, generator=g)) * 0.8 + 0.2
    return x


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean())


# ---------------------------------------------------------------------------- SR, colorization


def test_bicubic_keeps_constants_and_scales_shape():
    y = torch.full((2, 3, 8, 6), 0.3)
    out = bl.bicubic_upsample(y, 4)
    assert out.shape == (2, 3, 32, 24)
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)
    assert torch.equal(bl.bicubic_upsample(y, 1), y)
    x = blocks(2, 16)
    up = bl.bicubic_upsample(x, 2)
    assert up.min() >= 0 and up.max() <= 1  # overshoot clamped


def test_gray_to_rgb_replicates_the_channel():
    y = torch.rand(2, 1, 5, 5)
    out = bl.gray_to_rgb(y)
    assert out.shape == (2, 3, 5, 5) and all(torch.equal(out[:, c], y[:, 0]) for c in range(3))


# ---------------------------------------------------------------------------- inpainting


def test_masked_fill_uses_the_mean_of_observed_pixels():
    y = torch.tensor([[1.0, 0.5], [0.0, 0.2]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    y[1] *= 0.5
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    out = bl.masked_fill(y, mask)
    assert out[0, 0, 1, 0] == pytest.approx((1.0 + 0.5 + 0.2) / 3)
    assert out[1, 0, 1, 0] == pytest.approx((1.0 + 0.5 + 0.2) / 6)
    assert torch.equal(out[..., 0, :], y[..., 0, :])
    assert torch.equal(bl.masked_fill(y, mask[None, None]), out)  # [1, 1, H, W] mask works too


def test_tv_inpainting_beats_the_masked_fill_baseline():
    from deepinv.physics import Inpainting

    x = blocks(3)
    physics = Inpainting(tuple(x.shape[1:]), mask=0.5, rng=torch.Generator().manual_seed(1))
    y = physics(x)
    fill = bl.masked_fill(y, physics.mask)
    tv = bl.tv_inpaint(y, physics, lam=0.01, iters=60)
    assert tv.shape == x.shape and tv.min() >= 0 and tv.max() <= 1
    gain = psnr(tv, x) - psnr(fill, x)
    assert (gain > 5).all(), gain  # measured ≈ 13–18 dB
    assert torch.equal(bl.tv_inpaint(y, physics, lam=0.01, iters=60), tv)  # deterministic


# ---------------------------------------------------------------------------- deblurring, denoising


@pytest.fixture(scope="module")
def blurred():
    from deepinv.physics import BlurFFT
    from deepinv.physics.functional import gaussian_blur

    x = blocks(3)
    kernel = gaussian_blur(sigma=(1.0, 1.0))
    physics = BlurFFT(img_size=tuple(x.shape[1:]), filter=kernel)
    y = physics(x) + 0.005 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    return x, y, kernel, physics


def test_wiener_deconvolution_beats_the_blurred_observation(blurred):
    x, y, kernel, _ = blurred
    out = bl.wiener_deconv(y, kernel, balance=1e-3)
    assert out.shape == x.shape
    assert (psnr(out, x) > psnr(y, x) + 3).all()
    assert torch.equal(bl.wiener_deconv(y, kernel[0, 0], balance=1e-3), out)  # a [kh, kw] kernel is the same


def test_tv_deconvolution_beats_the_blurred_observation_with_blur_and_blurfft(blurred):
    from deepinv.physics import Blur

    x, y, kernel, physics = blurred
    fft = bl.tv_deconv(y, physics, lam=0.003, iters=40)
    assert (psnr(fft, x) > psnr(y, x) + 3).all()
    conv = bl.tv_deconv(y, Blur(filter=kernel, padding="circular"), lam=0.003, iters=40)  # CG data prox
    assert (psnr(conv, x) > psnr(y, x) + 3).all()


def test_tv_denoise_reduces_the_error_and_is_deterministic():
    x = blocks(3)
    y = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    out = bl.tv_denoise(y, lam=0.1, iters=100)
    assert mse(out, x) < 0.5 * mse(y, x)
    assert torch.equal(bl.tv_denoise(y, lam=0.1, iters=100), out)
    assert torch.equal(bl.tv_denoise(y[:1], lam=0.1, iters=100), out[:1])  # per image: no batch-wide stop


# ---------------------------------------------------------------------------- compressed sensing


def dct_sparse_images(n: int, shape: tuple[int, int, int], k: int, seed: int) -> torch.Tensor:
    """Images in (0, 1) with exactly ``k`` non-zero orthonormal-DCT coefficients (the DC one among them)."""
    from scipy.fft import idctn

    rng = np.random.default_rng(seed)
    c, h, w = shape
    coef = np.zeros((n, c * h * w))
    for i in range(n):
        coef[i, 0] = 0.5 * np.sqrt(h * w)  # mean 0.5
        idx = rng.choice(np.arange(1, c * h * w), size=k - 1, replace=False)
        coef[i, idx] = rng.choice([-1.0, 1.0], size=k - 1) * rng.uniform(0.5, 1.0, size=k - 1)
    x = idctn(coef.reshape(n, c, h, w), axes=(-2, -1), norm="ortho")
    assert x.min() > 0 and x.max() < 1
    return torch.from_numpy(x).float()


def test_dct_synthesis_matrix_matches_idct_of_the_identity():
    from scipy.fft import idctn

    shape = (2, 4, 3)
    A = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    basis = idctn(np.eye(24).reshape(24, *shape), axes=(-2, -1), norm="ortho").reshape(24, 24).T  # Ψᵀ columns
    assert np.allclose(bl.dct_synthesis_matrix(A, shape), A.double().numpy() @ basis)


def test_lasso_dct_recovers_a_sparse_signal_and_fits_alpha_on_a_grid():
    shape, k = (1, 16, 16), 6
    n = shape[0] * shape[1] * shape[2]
    m = int(4 * k * np.log(n / k))  # 90
    A = torch.randn(m, n, generator=torch.Generator().manual_seed(0)) / m ** 0.5  # N(0, 1/m), as deepinv's
    x = dct_sparse_images(3, shape, k, seed=1)
    y = x.flatten(1) @ A.T
    for tol, bar in [(1e-4, 0.05), (1e-8, 1e-3)]:  # default tolerance (measured ≤ 1.4 %), tight (≤ 0.02 %)
        out = bl.LassoDCT(alpha=1e-3, tol=tol).reconstruct(A, y, shape)
        assert out.shape == x.shape
        rel = (out - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
        assert (rel < bar).all(), (tol, rel)

    lasso = bl.LassoDCT(alphas=[1e-3, 1e-2, 1e-1, 1.0, 10.0])
    best = lasso.fit_alpha(A, dct_sparse_images(4, shape, k, seed=2), noise_sigma=0.01, seed=0)
    assert best in lasso.alphas and lasso.alpha == best
    assert list(lasso.table) == lasso.alphas and all(np.isfinite(v) for v in lasso.table.values())
    assert lasso.table[best] == min(lasso.table.values())
    assert lasso.table[best] < 0.1 * lasso.table[10.0]  # a heavy λ shrinks everything
    assert lasso.reconstruct(A, y, shape).shape == x.shape  # uses the fitted λ


# ---------------------------------------------------------------------------- phase retrieval


def shapes8() -> torch.Tensor:
    """Non-negative 8×8 images whose content touches every side of the support (no shift ambiguity)."""
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ramp = (yy + xx) / 14 * 0.8 + 0.1
    two = torch.zeros(8, 8)
    two[0:5, 0:3] = 0.9
    two[4:8, 3:8] = 0.4
    return torch.stack([ramp, two])[:, None]


def test_hio_recovers_a_small_image_up_to_the_twin_and_the_residual_drops():
    from ganinv.physics.phase import fourier_magnitude

    x = shapes8()
    mag = fourier_magnitude(x, 2)
    assert torch.allclose(mag, bl._magnitude(x, 2), atol=1e-6)  # one convention with the lead's operator
    assert (bl.magnitude_residual(x, mag) < 1e-5).all()
    out = bl.hio_phase_retrieval(mag, (1, 8, 8), iters=200, er_iters=50, restarts=4, seed=0)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (psnr(bl.align_flip(out, x), x) > 40).all()  # measured: exact (100 dB cap)
    early = bl.hio_phase_retrieval(mag, (8, 8), iters=3, er_iters=0, restarts=1, seed=0)
    assert (bl.magnitude_residual(out, mag) < 0.01 * bl.magnitude_residual(early, mag)).all()
    assert torch.equal(bl.hio_phase_retrieval(mag, (1, 8, 8), iters=200, er_iters=50, restarts=4, seed=0), out)


def glyph16() -> torch.Tensor:
    """A digit-like 16×16 stroke with blank margins ``[1, 1, 16, 16]``: it can move within the support."""
    x = torch.zeros(16, 16)
    x[3:5, 4:12] = 1.0
    for r in range(5, 13):
        c = 11 - (r - 5) // 2
        x[r, c - 1:c + 1] = 0.8
    x[8, 6:11] = 0.5
    return x[None, None]


def test_hio_on_a_glyph_with_margins_needs_shift_alignment():
    from ganinv.physics.phase import fourier_magnitude

    x = glyph16()
    mag = fourier_magnitude(x, 2)
    out = bl.hio_phase_retrieval(mag, (1, 16, 16), iters=300, er_iters=100, restarts=2, seed=0)
    assert bl.magnitude_residual(out, mag).item() < 1e-4  # the magnitudes are matched …
    assert psnr(bl.align_flip(out, x), x).item() < 20  # … by a translated copy (measured ≈ 8 dB flip-only)
    assert psnr(bl.align_flip(out, x, max_shift=None), x).item() > 40  # measured: exact


def test_align_flip_undoes_rotation_and_shift():
    x = shapes8()
    twin = x.flip(-1, -2)
    assert torch.equal(bl.align_flip(twin, x), x)
    assert torch.equal(bl.align_flip(x, x), x)
    canvas = torch.zeros(2, 1, 12, 12)
    canvas[:, :, 1:9, 2:10] = x
    moved = torch.zeros_like(canvas)
    moved[:, :, 3:11, 0:8] = x  # shifted by (+2, −2) …
    moved[1] = moved[1].flip(-1, -2)  # … and one of them also rotated
    assert not torch.equal(bl.align_flip(moved, canvas), canvas)  # flip alone is not enough
    assert torch.equal(bl.align_flip(moved, canvas, max_shift=2), canvas)
    assert torch.equal(bl.align_flip(moved, canvas, max_shift=None), canvas)
    rgb = torch.cat([x, x.flip(-1, -2)], dim=1)  # channels flipped independently
    assert torch.equal(bl.align_flip(rgb, torch.cat([x, x], 1), per_channel=True), torch.cat([x, x], 1))


# ---------------------------------------------------------------------------- tuning


def test_tune_picks_the_best_parameter():
    x = blocks(2)
    y = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    grid = [0.0, 0.1, 5.0]
    best, table = bl.tune(lambda obs, lam: bl.tv_denoise(obs, lam, iters=50), grid, y, x)
    assert list(table) == grid and best == 0.1 and table[0.1] == max(table.values())
    best_mse, table_mse = bl.tune(lambda obs, lam: bl.tv_denoise(obs, lam, iters=50), grid, y, x, metric="mse")
    assert best_mse == 0.1 and table_mse[0.1] == min(table_mse.values())


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_are_clear_errors():
    from deepinv.physics import Inpainting

    y = torch.rand(2, 1, 8, 8)
    with pytest.raises(InputError, match="factor"):
        bl.bicubic_upsample(y, 0)
    with pytest.raises(InputError, match="factor"):
        bl.bicubic_upsample(y, 1.5)
    with pytest.raises(InputError, match=r"\[B, C, H, W\]"):
        bl.bicubic_upsample(y[0], 2)
    with pytest.raises(InputError, match="lam"):
        bl.tv_denoise(y, -0.1)
    with pytest.raises(InputError, match="lam"):
        bl.tv_inpaint(y, Inpainting((1, 8, 8), mask=0.5), lam=-1.0)
    with pytest.raises(InputError, match="balance"):
        bl.wiener_deconv(y, torch.ones(3, 3) / 9, balance=-1.0)
    with pytest.raises(InputError, match="kernel"):
        bl.wiener_deconv(y, torch.ones(9, 9) / 81)
    with pytest.raises(InputError, match="mask"):
        bl.masked_fill(y, torch.ones(7, 8))
    with pytest.raises(InputError, match="mask"):
        bl.masked_fill(y, torch.full((8, 8), 0.5))
    with pytest.raises(InputError, match="mask"):
        bl.tv_inpaint(y, object())
    with pytest.raises(InputError, match="channels"):
        bl.gray_to_rgb(torch.rand(1, 3, 4, 4))
    A = torch.randn(10, 64)
    with pytest.raises(InputError, match=r"\[B, m\]"):
        bl.LassoDCT(alpha=0.1).reconstruct(A, torch.randn(2, 11), (1, 8, 8))
    with pytest.raises(InputError, match="columns"):
        bl.LassoDCT(alpha=0.1).reconstruct(A, torch.randn(2, 10), (1, 8, 9))
    with pytest.raises(InputError, match="fit_alpha"):
        bl.LassoDCT().reconstruct(A, torch.randn(2, 10), (1, 8, 8))
    with pytest.raises(InputError, match="alpha"):
        bl.LassoDCT(alphas=[0.1, -1.0])
    with pytest.raises(InputError, match="magnitude"):
        bl.hio_phase_retrieval(torch.rand(1, 1, 16, 15), (1, 8, 8))
    with pytest.raises(InputError, match="oversampling"):
        bl.hio_phase_retrieval(torch.rand(1, 1, 8, 8), (1, 8, 8), oversampling=1)
    with pytest.raises(InputError, match="same shape"):
        bl.align_flip(y, y[:1])
    with pytest.raises(InputError, match="metric"):
        bl.tune(lambda obs, p: obs, [1], y, y, metric="ssim")


def test_hio_accepts_noisy_magnitudes_below_zero():
    """Gaussian noise on magnitudes dips below 0 where a frequency is faint; HIO treats those as 0."""
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1:7, 2:6] = 1.0
    mag = bl._magnitude(x, 2) + 0.05 * torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert bool((mag < 0).any())
    out = bl.hio_phase_retrieval(mag, (1, 8, 8), iters=50, er_iters=10, restarts=1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(InputError, match="NaN or Inf"):
        bl.hio_phase_retrieval(torch.full((1, 1, 16, 16), float("nan")), (1, 8, 8))
