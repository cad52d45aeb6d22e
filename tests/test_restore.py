"""Restoration with a GAN prior: the library call (any generator, any deepinv operator, hypotheses)
and the ``ganinv restore`` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.generators.wrap import wrap
from ganinv.physics import make_task
from ganinv.restore import pairwise_rmse, restore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def _vae_decoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 256), torch.nn.Sigmoid())


def test_csgm_with_a_flat_vae_decoder_recovers_the_latent():
    """Bora et al.'s setting: a decoder emitting a flat vector in [0, 1] is the prior for compressed sensing."""
    G = wrap(_vae_decoder(), latent_dim=4, image_shape=(1, 16, 16), output_range=(0, 1))
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    x = G.synthesize(z, "z")
    task = make_task("cs", (1, 16, 16), m=20, noise_sigma=0.0, seed=3)
    res = restore(G, task.simulate(x), task, steps=150, restarts=2, lr=0.1, prior=0.0)  # noiseless: no prior
    assert res.images.shape == (3, 1, 1, 16, 16)
    assert float((res.best - x).abs().max()) < 0.02  # 20 measurements of 256 pixels suffice
    assert float(res.data_fit.max()) < 1e-5
    latent = res.results[0].latent
    assert float((latent - z).norm(dim=1).max()) < 0.2


def test_any_deepinv_operator_works_when_passed_in_python(tiny_sg2_rgb):
    import deepinv

    G = tiny_sg2_rgb
    physics = deepinv.physics.Demosaicing(img_size=G.image_shape)  # a Bayer pattern: no task of ours
    x = G.synthesize(G.sample_latent(2, "w", seed=2), "w").clamp(0, 1)
    res = restore(G, physics.A(x), physics, steps=60, restarts=1)
    start = (physics.A(G.synthesize(G.mean_latent("w"), "w").clamp(0, 1)) - physics.A(x)).square().mean()
    assert res.task.name == "custom" and float(res.data_fit.max()) < float(start)


def test_hypotheses_are_ranked_by_data_fit_with_their_diversity(tiny_dcgan):
    G = tiny_dcgan
    x = G.synthesize(G.sample_latent(2, "z", seed=5), "z").clamp(0, 1)
    task = make_task("inpaint", G.image_shape, box=(0, 0, 16, 10))  # most of the image missing: ambiguous
    res = restore(G, task.simulate(x), task, hypotheses=3, steps=30, restarts=1)
    assert res.images.shape == (2, 3, *G.image_shape)
    assert torch.all(res.data_fit[:, 1:] >= res.data_fit[:, :-1])
    assert sorted(res.rank[0].tolist()) == [0, 1, 2]
    best_run = res.hypothesis_result(1, 0)  # the run behind observation 1's best hypothesis, that target only
    assert len(best_run) == 1 and torch.equal(best_run.image[0].cpu(), res.images[1, 0])
    assert torch.all(res.diversity > 0)
    single = restore(G, task.simulate(x), task, steps=5, restarts=1)
    assert torch.equal(single.diversity, torch.zeros(2))
    assert torch.allclose(pairwise_rmse(torch.stack([x, x], 1)), torch.zeros(2))


def test_restore_errors(tiny_dcgan):
    task = make_task("sr", (1, 32, 32), factor=2)
    with pytest.raises(InputError, match="built for \\[1, 32, 32\\] images"):
        restore(tiny_dcgan, torch.rand(1, 1, 16, 16), task)
    task = make_task("sr", tiny_dcgan.image_shape, factor=2)
    with pytest.raises(InputError, match="hypotheses must be"):
        restore(tiny_dcgan, torch.rand(1, 1, 8, 8), task, hypotheses=0)
    with pytest.raises(InputError, match="restoration needs a method"):
        restore(tiny_dcgan, torch.rand(1, 1, 8, 8), task, method="encoder")
    with pytest.raises(InputError, match="NaN"):
        restore(tiny_dcgan, torch.full((1, 1, 8, 8), float("nan")), task)


# ----- the command ------------------------------------------------------------------------------------
@pytest.fixture
def two_digits(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("digit_3.png", "digit_7.png"):
        shutil.copy(EXAMPLES / name, d / name)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("task,opts", [
    ("inpaint", ["--ratio", "0.4"]), ("sr", ["--factor", "4"]), ("deblur", ["--sigma", "1.0"]),
    ("denoise", ["--sigma", "0.3"]), ("cs", ["--m", "50"]), ("phase", []),
])
def test_restore_simulate_every_task_on_the_example_digits(task, opts, two_digits, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["restore", str(two_digits), "--task", task, *opts, "--model", "mnist-dcgan",
                            "--simulate", "--steps", "8", "--out", str(out), "--threads", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == task and len(summary["records"]) == 2
    for rec in summary["records"]:
        assert (out / rec["restoration"]).is_file() and (out / rec["observation"]).is_file()
        assert rec["psnr"] > 5 and 0 <= rec["ssim"] <= 1 and rec["data_fit"] >= 0
        assert rec["baseline"]["psnr"] > 5
    assert (out / "grid.png").is_file()
    # the written observation is itself a valid input: restore it without --simulate
    again = tmp_path / "again"
    r2 = runner.invoke(app, ["restore", str(out / "digit_3.observation.npz"), "--task", task, *opts,
                             "--model", "mnist-dcgan", "--steps", "4", "--no-baseline", "--out", str(again)])
    assert r2.exit_code == 0, r2.output
    rec = json.loads((again / "summary.json").read_text())["records"][0]
    assert rec["stem"] == "digit_3" and "psnr" not in rec


@pytest.mark.slow
def test_restore_hypotheses_and_an_image_observation(two_digits, tmp_path):
    out = tmp_path / "hyp"
    r = runner.invoke(app, ["restore", str(two_digits / "digit_3.png"), "--task", "inpaint", "--model",
                            "mnist-dcgan", "--simulate", "--hypotheses", "3", "--steps", "6", "--method",
                            "multicode", "--codes", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "summary.json").read_text())["records"][0]
    fits = [h["data_fit"] for h in rec["hypotheses"]]
    assert fits == sorted(fits) and rec["diversity"] > 0
    assert all((out / h["image"]).is_file() for h in rec["hypotheses"])
    with np.load(out / "digit_3.npz") as data:
        assert data["codes"].shape[:2] == (1, 3)
    # an 8×8 low-resolution image is an sr ×4 observation for a 32 px model
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "low.png")
    r = runner.invoke(app, ["restore", str(tmp_path / "low.png"), "--task", "sr", "--model", "mnist-dcgan",
                            "--steps", "3", "--out", str(tmp_path / "low")])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,message", [
    (["--task", "cs", "--m", "5000"], "more than the 1024 pixels"),
    (["--task", "denoise", "--sigma", "-1"], "sigma must be ≥ 0"),
    (["--task", "paint"], "unknown task 'paint'"),
    (["--task", "inpaint", "--box", "1,2,3"], "--box must be 4 whole numbers"),
    (["--task", "colorize"], "colorize needs an RGB model"),
    (["--task", "sr", "--codes", "3"], "--codes applies to --method multicode only"),
])
def test_restore_bad_options_are_one_clear_error(args, message, two_digits, tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(app, ["restore", str(two_digits), *args, "--model", "mnist-dcgan", "--simulate",
                            "--out", str(out)])
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()  # nothing written before the options are checked


def test_restore_wrong_mask_size_and_wrong_observation_size(two_digits, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "mask.png")
    r = runner.invoke(app, ["restore", str(two_digits), "--task", "inpaint", "--mask", str(tmp_path / "mask.png"),
                            "--model", "mnist-dcgan", "--simulate", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "mask must be 32×32 pixels" in r.output
    r = runner.invoke(app, ["restore", str(two_digits / "digit_3.png"), "--task", "sr", "--factor", "4",
                            "--model", "mnist-dcgan", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "observation is 8×8" in r.output


def test_colorize_restores_an_rgb_model_from_its_luma(tiny_sg2_rgb):
    G = tiny_sg2_rgb
    x = G.synthesize(G.sample_latent(2, "w", seed=6), "w").clamp(0, 1)
    task = make_task("colorize", G.image_shape)
    y = task.simulate(x)
    assert y.shape == (2, 1, 16, 16)
    res = restore(G, y, task, steps=40, restarts=1)
    assert res.images.shape == (2, 1, 3, 16, 16)
    start = G.synthesize(G.mean_latent("w"), "w").clamp(0, 1).expand(2, -1, -1, -1)
    assert torch.all(res.data_fit[:, 0] < task.data_fit(start, y))
    assert float(res.images[:, 0].std(dim=1).mean()) > 0  # colour images, not the luma repeated
