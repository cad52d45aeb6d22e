"""End-to-end checks on the bundled trained models (real weights, still fast)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganinv import zoo
from ganinv.cli.app import app
from ganinv.data import mnist
from ganinv.generators.base import Generator
from ganinv.generators.stylegan2 import StyleGAN2Generator

sys.path.insert(0, str(Path(__file__).parent))
from nvidia_pkl import write_nvidia_pkl  # noqa: E402

GENERATORS = ["mnist-stylegan2", "mnist-dcgan"]
runner = CliRunner()


@pytest.fixture(scope="module")
def classifier():
    return zoo.load_classifier()


def test_classifier_is_accurate_on_heldout_split(classifier):
    x, y = mnist("test")
    pred, _ = classifier.predict(x)
    assert (pred == y).float().mean().item() >= 0.98


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_generator_samples_are_recognisable_digits(name, classifier):
    G = zoo.load(name)
    assert isinstance(G, Generator) and G.image_shape == (1, 32, 32)
    images = G.sample(1000, seed=123)
    cls, conf = classifier.predict(images)
    counts = torch.bincount(cls, minlength=10).float() / len(cls)
    assert conf.mean().item() >= 0.85, f"mean confidence {conf.mean():.3f}"
    assert counts.min().item() >= 0.03, f"class fractions {counts.tolist()}"
    assert counts.max().item() <= 0.2, f"class fractions {counts.tolist()}"


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_discriminator_scores_images(name):
    D = zoo.load_discriminator(name)
    x, _ = mnist("test")
    assert D(x[:8] * 2 - 1).shape == (8,)


def test_sample_cli_writes_a_grid_of_recognisable_digits(tmp_path, classifier):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", "--model", "mnist-stylegan2", "-n", "16", "--seed", "5", "--out", str(out),
                                 "--scale", "1"])
    assert result.exit_code == 0, result.output
    grid = torch.from_numpy(__import__("numpy").asarray(Image.open(out).convert("L"), dtype="float32") / 255)
    cells = torch.stack([grid[2 + r * 34: 34 + r * 34, 2 + c * 34: 34 + c * 34] for r in range(4) for c in range(4)])
    _, conf = classifier.predict(cells.unsqueeze(1))
    assert conf.mean().item() >= 0.8


def test_bundled_stylegan2_through_rosinality_and_nvidia_formats(tmp_path):
    """One set of weights written as rosinality .pt and NVIDIA .pkl renders identical images."""
    from ganinv.generators.checkpoints import load_generator, save_rosinality

    G = zoo.load("mnist-stylegan2")
    assert isinstance(G, StyleGAN2Generator)
    # the formats cannot carry the bundled model's tanh output: compare the raw synthesis network
    raw = StyleGAN2Generator(**{k: v for k, v in G.config().items() if k not in ("arch", "output_activation")})
    raw.load_state_dict(G.state_dict())
    raw.w_avg.copy_(G.w_avg)
    save_rosinality(raw, tmp_path / "g.pt")
    write_nvidia_pkl(raw, tmp_path / "g.pkl")
    from_pt, _ = load_generator(str(tmp_path / "g.pt"))
    from_pkl, _ = load_generator(str(tmp_path / "g.pkl"))
    w = raw.sample_latent(8, "w", seed=0)
    assert torch.equal(from_pt.synthesize(w, "w"), from_pkl.synthesize(w, "w"))
    assert torch.equal(from_pt.synthesize(w, "w"), raw.synthesize(w, "w"))
    torch.testing.assert_close(torch.tanh(raw.synthesis(G.convert(w, "w", "w+"), G.stored_noise())),
                               G.synthesize(w, "w") * 2 - 1)
    outs = []
    for path in (tmp_path / "g.pt", tmp_path / "g.pkl"):
        out = tmp_path / f"{path.suffix[1:]}.png"
        result = runner.invoke(app, ["sample", "--model", str(path), "-n", "16", "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_demo_samples_every_bundled_generator(tmp_path, monkeypatch):
    import ganinv.cli.demo as demo

    # the inversion and restore parts have their own test (tests/test_invert_cli.py::test_demo_inverts_example_digits)
    monkeypatch.setattr(demo, "DEMO_OPTIONS", {"steps": 3})
    monkeypatch.setattr(demo, "DEMO_RESTORE", {**demo.DEMO_RESTORE, "steps": 3})
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "-n", "16"])
    assert result.exit_code == 0, result.output
    for name in GENERATORS:
        assert (tmp_path / f"{name}_samples.png").is_file()
        assert name in result.output
