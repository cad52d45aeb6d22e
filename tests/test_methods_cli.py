"""``ganinv invert --method encoder|hybrid|pti`` and ``ganinv train-encoder``: files, records, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganinv import zoo
from ganinv.cli.app import app
from ganinv.encoders import generator_fingerprint
from ganinv.modelfile import save_pretrained
from ganinv.train.encoder import EncoderTrainConfig, build_encoder

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("offline_torch_home")


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def encoder_folder(tmp_path: Path, model: str) -> Path:
    """An (untrained) encoder saved for bundled ``model``, exactly as train-encoder writes one."""
    G = zoo.load(model)
    torch.manual_seed(0)
    enc = build_encoder(G, EncoderTrainConfig(model=model, width=8, max_width=16))
    folder = tmp_path / f"{model}-enc"
    save_pretrained(enc, folder, name=folder.name, kind="encoder",
                    meta={"generator": {"name": model, "fingerprint": generator_fingerprint(G), "space": "w+"}})
    return folder


def test_encoder_and_hybrid_methods_write_results(digits, tmp_path):
    enc = encoder_folder(tmp_path, "mnist-stylegan2")
    out = tmp_path / "enc"
    result = run("invert", digits, "--method", "encoder", "--encoder", enc, "--passes", "2", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "encoder" and summary["space"] == "w+"
    assert summary["options"] == {"passes": 2}
    assert np.load(out / "digit_0.npz")["w"].shape == (1, 8, 128)
    out2 = tmp_path / "hyb"
    result = run("invert", digits, "--method", "hybrid", "--encoder", enc, "--steps", "4", "--out", out2)
    assert result.exit_code == 0, result.output
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["method"] == "hybrid" and all(r["steps"] == 4 for r in summary["records"])
    out3 = tmp_path / "hyb-p"
    result = run("invert", digits, "--method", "hybrid", "--encoder", enc, "--steps", "2", "--lbfgs-precondition",
                 "0.5", "--out", out3)
    assert result.exit_code == 0, result.output
    assert json.loads((out3 / "summary.json").read_text())["options"]["lbfgs_precondition"] == 0.5
    out4 = tmp_path / "hyb-h"
    result = run("invert", digits, "--method", "hybrid", "--encoder", enc, "--steps", "2", "--lbfgs-history",
                 "7", "--no-saturation", "--out", out4)
    assert result.exit_code == 0, result.output
    options = json.loads((out4 / "summary.json").read_text())["options"]
    assert options["lbfgs_history"] == 7 and options["saturation"] is False


def test_lbfgs_options_reach_the_default_optimizer(digits, tmp_path):
    # without --optimizer, reconstruction runs L-BFGS (auto): its options are accepted and recorded
    out = tmp_path / "opt"
    result = run("invert", digits, "--steps", "3", "--lbfgs-history", "20", "--lbfgs-precondition", "0.5",
                 "--warmup", "0.34", "--out", out)
    assert result.exit_code == 0, result.output
    options = json.loads((out / "summary.json").read_text())["options"]
    assert options["lbfgs_history"] == 20 and options["lbfgs_precondition"] == 0.5 and options["warmup"] == 0.34


def test_pti_method_writes_deltas_that_reproduce_the_reconstruction(digits, tmp_path):
    from ganinv.inverters.pti import apply_deltas, load_deltas

    out = tmp_path / "pti"
    result = run("invert", digits, "--method", "pti", "--steps", "5", "--pti-steps", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "generator deltas" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "pti" and summary["space"] == "w"
    rec = summary["records"][0]
    assert rec["deltas"] == "digit_0.deltas.safetensors"
    G = zoo.load("mnist-stylegan2")
    delta = load_deltas(out / rec["deltas"], G)
    w = torch.from_numpy(np.load(out / "digit_0.npz")["w"])[:, 0]  # W code broadcast to [1, num_ws, w_dim]
    tuned = apply_deltas(G, delta)
    with torch.no_grad():
        img = tuned.to_display(tuned.synthesize(w, "w")).clamp(0, 1)
    from ganinv.io import load_target

    saved, _ = load_target(out / "digit_0.png", 1, 32)
    assert torch.allclose(img[0], saved, atol=1 / 255 + 1e-6)  # the PNG is the 8-bit rendering of the same image
    size = (out / rec["deltas"]).stat().st_size
    assert size < (zoo.model_dir("mnist-stylegan2") / "model.safetensors").stat().st_size / 10


def test_encoder_for_another_model_is_refused(digits, tmp_path):
    enc = encoder_folder(tmp_path, "mnist-dcgan")
    result = run("invert", digits, "--method", "encoder", "--encoder", enc, "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "was trained for generator 'mnist-dcgan'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--method", "bogus"], "unknown method"),
    (["--method", "optimize", "--passes", "2"], "--passes do(es) not apply"),
    (["--method", "encoder", "--steps", "3"], "runs no optimisation"),
    (["--method", "pti", "--preset", "nvidia"], "--preset is a reference"),
    (["--method", "pti", "--video", "v.gif"], "--video shows an optimisation"),
    (["--method", "hybrid", "--lr", "0.1"], "L-BFGS (the hybrid's default) has none"),
    (["--method", "optimize", "--optimizer", "lbfgs", "--lr", "0.1"], "--lr sets Adam's learning rate"),
    (["--method", "optimize", "--lr", "0.1", "--lbfgs-precondition", "0.5"], "add --optimizer lbfgs"),
    (["--method", "optimize", "--warmup", "1.5"], "--warmup is the fraction of --steps"),
    (["--method", "optimize", "--optimizer", "adam", "--warmup", "0.1"], "uses Adam throughout"),
    (["--method", "hybrid", "--lr", "0.1", "--optimizer", "adam", "--warmup", "0.1"], "uses Adam throughout"),
    (["--method", "optimize", "--optimizer", "adam", "--lbfgs-history", "20"], "add --optimizer lbfgs"),
    (["--method", "hybrid", "--lbfgs-history", "0"], "curvature pairs ≥ 1, got 0"),
    (["--method", "hybrid", "--lbfgs-precondition", "3"], "lbfgs_precondition is an exponent in [0, 2]"),
])
def test_method_option_errors(digits, tmp_path, args, message):
    result = run("invert", digits, *args, "--out", tmp_path / "o")
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_train_encoder_cli_runs_resumes_and_exports(tmp_path):
    # a short run on the bundled DCGAN (small batch, small validation) through the real CLI
    out, export = tmp_path / "run", tmp_path / "export"
    args = ["train-encoder", "--model", "mnist-dcgan", "--out", out, "--batch-size", "4", "--val-every", "2",
            "--width", "8", "--max-width", "24", "--w-latent", "0.02", "--val-images", "20"]
    result = run(*args, "--iterations", "2")
    assert result.exit_code == 0, result.output
    result = run(*args, "--iterations", "3", "--export", export)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "exported" in result.output
    cfg = json.loads((export / "config.json").read_text())
    assert cfg["kind"] == "encoder" and cfg["meta"]["generator"]["name"] == "mnist-dcgan"
    assert cfg["meta"]["iterations"] == 3
    # the architecture and loss options reach the network and the recorded recipe
    assert (cfg["config"]["width"], cfg["config"]["max_width"]) == (8, 24)
    assert cfg["meta"]["recipe"]["w_latent"] == 0.02
    result = run("train-encoder", "--model", "nope", "--out", tmp_path / "n")
    assert result.exit_code == 1 and "unknown model 'nope'" in result.output
