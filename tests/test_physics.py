"""Restoration tasks over deepinv physics: shapes, adjoints, gradients, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinv.errors import InputError
from ganinv.physics import TASK_NAMES, custom_task, make_task, task_options
from ganinv.physics.phase import fourier_magnitude

GRAY = (1, 16, 16)
RGB = (3, 16, 16)

CASES = [
    ("inpaint", GRAY, {}, (1, 16, 16)),
    ("inpaint", GRAY, {"ratio": 0.3, "seed": 2}, (1, 16, 16)),
    ("inpaint", GRAY, {"box": (2, 3, 4, 5)}, (1, 16, 16)),
    ("sr", GRAY, {"factor": 2}, (1, 8, 8)),
    ("sr", GRAY, {"factor": 8}, (1, 2, 2)),
    ("deblur", GRAY, {"sigma": 1.0}, (1, 16, 16)),
    ("denoise", GRAY, {"sigma": 0.1}, (1, 16, 16)),
    ("colorize", RGB, {}, (1, 16, 16)),
    ("cs", GRAY, {"m": 40}, (40,)),
    ("phase", GRAY, {}, (1, 32, 32)),
    ("phase", GRAY, {"oversampling": 3}, (1, 48, 48)),
]


@pytest.mark.parametrize("name,shape,opts,obs", CASES)
def test_task_shapes_gradients_and_determinism(name, shape, opts, obs):
    task = make_task(name, shape, **opts)
    assert task.observation_shape == obs
    x = torch.rand(3, *shape, requires_grad=True)
    y = task.forward(x)
    assert tuple(y.shape) == (3, *obs)
    y.square().sum().backward()  # gradients flow back to the image through every operator
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        y1, y2 = task.simulate(x.detach(), seed=5), task.simulate(x.detach(), seed=5)
    assert torch.equal(y1, y2)
    assert task.check_observation(y1).shape == y1.shape
    rebuilt = make_task(name, shape, **{k: v for k, v in task.options.items() if k != "mask" or v != "array"})
    assert torch.allclose(rebuilt.forward(x.detach()), y.detach())  # options rebuild the same operator


@pytest.mark.parametrize("name,shape,opts", [(n, s, o) for n, s, o, _ in CASES if n not in ("phase", "denoise")])
def test_linear_operators_are_adjoint(name, shape, opts):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for every linear task (deepinv's own adjointness test)."""
    task = make_task(name, shape, **opts)
    gap = task.physics.adjointness_test(torch.rand(1, *shape)).abs().item()
    assert gap < 1e-4


def test_noise_is_added_with_the_stated_sigma():
    task = make_task("denoise", (1, 64, 64), sigma=0.2)
    x = torch.full((4, 1, 64, 64), 0.5)
    y = task.simulate(x, seed=0)
    assert abs(float((y - x).std()) - 0.2) < 0.01
    assert not torch.equal(task.simulate(x, seed=1), y)
    assert make_task("cs", GRAY).noise_sigma == 0.01 and make_task("sr", GRAY).noise_sigma == 0.0


def test_inpaint_mask_from_file_and_preview(tmp_path):
    m = np.ones((16, 16), dtype=np.float32)
    m[4:8, :] = 0
    np.save(tmp_path / "mask.npy", m)
    task = make_task("inpaint", GRAY, mask=str(tmp_path / "mask.npy"))
    x = torch.rand(2, *GRAY)
    y = task.simulate(x)
    assert torch.equal(y[:, :, 4:8], torch.zeros(2, 1, 4, 16))
    assert torch.equal(y[:, :, 8:], x[:, :, 8:])
    preview = task.preview(y)
    assert torch.all(preview[:, :, 4:8] == 0.5)  # missing pixels are shown grey, not black


def test_phase_magnitudes_keep_norm_and_hide_the_twin_image():
    x = torch.rand(2, 1, 8, 8)
    mag = fourier_magnitude(x, 2)
    assert torch.allclose(mag.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), atol=1e-5)  # orthonormal DFT
    twin = torch.flip(x, dims=(-2, -1))
    assert torch.allclose(fourier_magnitude(twin, 2), mag, atol=1e-5)
    assert not torch.allclose(fourier_magnitude(x.roll(1, -1) * 0.5, 2), mag, atol=1e-3)


@pytest.mark.parametrize("name,opts,message", [
    ("cs", {"m": 257}, "more than the 256 pixels"),
    ("cs", {"m": 0}, "m (measurements) must be"),
    ("denoise", {"sigma": -0.1}, "sigma must be ≥ 0"),
    ("deblur", {"sigma": -1.0}, "sigma must be > 0"),
    ("deblur", {"noise_sigma": float("nan")}, "finite"),
    ("sr", {"factor": 3}, "factor must be 2, 4 or 8"),
    ("inpaint", {"ratio": 1.5}, "ratio"),
    ("inpaint", {"box": (10, 10, 10, 10)}, "inside the 16×16 image"),
    ("inpaint", {"mask": np.ones((8, 8))}, "mask must be 16×16"),
    ("inpaint", {"ratio": 0.5, "box": (0, 0, 2, 2)}, "one of mask, box or ratio"),
    ("phase", {"oversampling": 1}, "oversampling must be"),
    ("cs", {"factor": 2}, "does not take factor"),
])
def test_bad_task_options_are_clear_errors(name, opts, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_task(name, GRAY, **opts)


def test_unknown_task_colorize_gray_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="unknown task 'paint'"):
        make_task("paint", GRAY)
    with pytest.raises(InputError, match="colorize needs an RGB model"):
        make_task("colorize", GRAY)
    with pytest.raises(InputError, match="mask file not found"):
        make_task("inpaint", GRAY, mask=tmp_path / "nope.png")
    (tmp_path / "k.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="not a readable .npy"):
        make_task("deblur", GRAY, kernel=tmp_path / "k.npy")
    np.save(tmp_path / "big.npy", np.ones((20, 20)))
    with pytest.raises(InputError, match="larger than the image"):
        make_task("deblur", GRAY, kernel=tmp_path / "big.npy")
    with pytest.raises(InputError, match="expects observations of shape"):
        make_task("sr", GRAY, factor=2).check_observation(torch.rand(1, 1, 16, 16))
    assert set(TASK_NAMES) == {"inpaint", "sr", "deblur", "denoise", "colorize", "cs", "phase"}
    assert "m" in task_options("cs")


def test_custom_task_accepts_any_operator_including_tensorlists():
    import deepinv

    pan = deepinv.physics.Pansharpen(img_size=RGB)  # returns a TensorList of two measurements
    task = custom_task(pan, RGB)
    x = torch.rand(2, *RGB)
    y = task.simulate(x)
    assert y.shape == (2, 3 * 4 * 4 + 16 * 16)
    assert task.data_fit(x, y).abs().max() < 1e-10
    plain = custom_task(lambda v: v[:, :, ::2, ::2], GRAY)
    assert plain.observation_shape == (1, 8, 8)
