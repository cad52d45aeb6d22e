"""Shared fixtures: tiny real-architecture models with random weights (fast, offline)."""

from __future__ import annotations

import os

os.environ.setdefault("COLUMNS", "200")  # wide rich tables in CLI output captured by tests
os.environ["GANINV_OFFLINE"] = "1"  # never download weights (tests/test_weights.py serves its own on 127.0.0.1)

import pytest  # noqa: E402
import torch  # noqa: E402

from ganinv.generators.dcgan import DCGANGenerator
from ganinv.generators.stylegan2 import StyleGAN2Generator


def make_tiny_stylegan2(img_channels: int = 1, seed: int = 0, resolution: int = 16) -> StyleGAN2Generator:
    """A 16 px StyleGAN2 with the real layer structure and a few thousand parameters."""
    torch.manual_seed(seed)
    widths = {4: 16, 8: 16, 16: 8, 32: 8}
    G = StyleGAN2Generator(resolution=resolution, channels={r: widths[r] for r in widths if r <= resolution},
                           z_dim=16, w_dim=16, n_mlp=2, img_channels=img_channels)
    with torch.no_grad():  # non-zero noise strengths and biases so every parameter matters
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                p.normal_(0, 0.1)
    G.estimate_w_avg(1000)
    return G.eval().requires_grad_(False)


def make_tiny_stylegan3(cfg: str = "t", seed: int = 3, w_avg_samples: int = 0):
    """A 16 px StyleGAN3-T (``cfg="t"``) or -R (``"r"``) with random weights; ``w_avg_samples`` > 0 estimates its
    mean w from that many samples (else it stays zero)."""
    from ganinv.generators.stylegan3 import StyleGAN3Generator, stylegan3_r_config

    torch.manual_seed(seed)
    config = (stylegan3_r_config(16, z_dim=16, w_dim=16, channel_base=512, channel_max=32) if cfg == "r" else
              dict(resolution=16, z_dim=16, w_dim=16, channel_base=256, channel_max=16))
    G = StyleGAN3Generator(**config).eval().requires_grad_(False)
    if w_avg_samples:
        G.estimate_w_avg(w_avg_samples)
    return G


@pytest.fixture
def offline_torch_home(monkeypatch, tmp_path):
    """An empty torch hub cache: LPIPS is unavailable and nothing is downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


@pytest.fixture
def tiny_sg2() -> StyleGAN2Generator:
    return make_tiny_stylegan2()


@pytest.fixture
def tiny_sg2_rgb() -> StyleGAN2Generator:
    return make_tiny_stylegan2(img_channels=3)


@pytest.fixture
def tiny_dcgan() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(resolution=16, z_dim=8, width=8, img_channels=1).eval().requires_grad_(False)


@pytest.fixture
def digits(tmp_path):
    """A folder with two of the example digits (a test module may define its own ``digits``)."""
    import shutil
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples"
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(2):
        shutil.copy(examples / f"digit_{i}.png", folder / f"digit_{i}.png")
    return folder
