"""Coarse-to-fine inversion: the coarse view is the generator's own skip image, stages resolve and refuse
clearly, and a staged run recovers a known latent."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny_stylegan2
from ganinv import invert
from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.inverters.coarse import (AUTO_MIN_RESOLUTION, AUTO_STAGE, CoarseView, coarse_loss, downsample,
                                     extend_latent, parse_stages, residual)
from ganinv.inverters.optimize import OptimizeSettings, _validate

pytestmark = pytest.mark.usefixtures("offline_torch_home")


def test_view_renders_what_a_smaller_generator_with_the_same_weights_renders():
    G = make_tiny_stylegan2(img_channels=3, resolution=32)
    small = StyleGAN2Generator(resolution=16, channels={r: c for r, c in G.widths.items() if r <= 16}, z_dim=16,
                               w_dim=16, n_mlp=2, img_channels=3).eval()
    state = G.state_dict()
    missing, unexpected = small.load_state_dict({k: v for k, v in state.items() if k in small.state_dict()},
                                                strict=False)
    assert not missing and not unexpected
    view = CoarseView(G, 16)
    assert view.space("w+").shape == (small.num_ws, 16) == (G.prefix_rows(16), 16)
    assert [tuple(s) for s in view.noise_shapes] == [tuple(s) for s in small.noise_shapes]
    ws = G.sample_latent(3, "w+", seed=1)[:, :view.rows]
    with torch.no_grad():
        torch.testing.assert_close(view.synthesize(ws, "w+"), small.synthesize(ws, "w+"), rtol=0, atol=1e-6)
        w = G.sample_latent(2, "w", seed=2)
        torch.testing.assert_close(view.synthesize(w, "w"), small.synthesize(w, "w"), rtol=0, atol=1e-6)


def test_view_ignores_the_rows_above_its_resolution():
    G = make_tiny_stylegan2(resolution=32)
    view = CoarseView(G, 8)
    full = G.sample_latent(2, "w+", seed=3)
    other = full.clone()
    other[:, view.rows:] += 5.0
    with torch.no_grad():
        a = view.synthesize(full[:, :view.rows], "w+")
        b = view.synthesize(other[:, :view.rows], "w+")
        assert torch.equal(a, b)
        assert not torch.equal(G.synthesize(full, "w+"), G.synthesize(other, "w+"))
    assert view.image_shape == (1, 8, 8)
    assert G.prefix_rows(8) == 4 and G.prefix_noise_layers(8) == 3


def test_residual_closes_the_gap_between_the_view_and_the_downsampled_image():
    G = make_tiny_stylegan2(resolution=32)
    view = CoarseView(G, 16)
    w = G.sample_latent(2, "w+", seed=4)
    with torch.no_grad():
        res = residual(G, view, w, "w+")
        down = downsample(G.synthesize(w, "w+"), 16)
        torch.testing.assert_close(view.synthesize(w[:, :view.rows], "w+") + res, down)
        assert res.abs().max() > 1e-4  # the finer blocks do change the low frequencies


def test_stage_resolution_rules(tiny_sg2, tiny_dcgan):
    G32 = make_tiny_stylegan2(resolution=32)
    assert parse_stages(G32, "auto") == []  # below AUTO_MIN_RESOLUTION
    assert parse_stages(G32, "16, 8") == [8, 16]
    assert parse_stages(G32, [16]) == [16]
    assert parse_stages(G32, "off") == [] and parse_stages(G32, None) == []
    with pytest.raises(InputError, match="no coarse image at 32 px"):
        parse_stages(G32, "32")
    with pytest.raises(InputError, match="coarse resolutions: 8, 16"):
        parse_stages(G32, "12")
    with pytest.raises(InputError, match="forward operator"):
        parse_stages(G32, "8", physics=True)
    with pytest.raises(InputError, match="only at the end"):
        parse_stages(tiny_dcgan, "8")
    with pytest.raises(InputError, match="'auto', 'off' or resolutions"):
        parse_stages(G32, "fast")
    assert coarse_loss("mse=1,lpips=0.8") == {"mse": 1.0}
    assert coarse_loss("lpips") == {"mse": 1.0}
    assert coarse_loss({"l1": 0.5, "ssim": 1.0}) == {"l1": 0.5}


def test_auto_picks_one_stage_for_a_real_size_reconstruction_only():
    big = StyleGAN2Generator(resolution=AUTO_MIN_RESOLUTION, channels={r: 4 for r in (4, 8, 16, 32, 64, 128, 256)},
                             z_dim=8, w_dim=8, n_mlp=1, img_channels=3)
    assert _validate(big, OptimizeSettings()).coarse == [AUTO_STAGE]
    assert _validate(big, OptimizeSettings(coarse="off")).coarse is None
    assert _validate(big, OptimizeSettings(loss="mse,lpips")).coarse is None  # a perceptual loss: full size
    assert _validate(big, OptimizeSettings(optimizer="adam")).coarse is None  # Adam: joint noise maps
    assert _validate(big, OptimizeSettings(), physics_given=True).coarse is None
    assert _validate(big, OptimizeSettings(), extra_terms=True).coarse is None
    with pytest.raises(InputError, match="coarse_steps"):
        _validate(big, OptimizeSettings(coarse_steps=0))


def test_extend_latent_copies_the_last_optimised_row():
    coarse = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    full = extend_latent(coarse, 6, "w+")
    assert full.shape == (2, 6, 2)
    assert torch.equal(full[:, :3], coarse) and torch.equal(full[:, 3:], coarse[:, 2:3].expand(-1, 3, -1))
    w = torch.ones(2, 4)
    assert extend_latent(w, 6, "w") is w


def test_staged_run_recovers_a_known_latent_and_reports_its_stages():
    G = make_tiny_stylegan2(resolution=32)
    w = G.sample_latent(2, "w", seed=11)
    with torch.no_grad():
        y = G.synthesize(G.convert(w, "w", "w+"), "w+").clamp(0, 1)
    phases: dict[str, set] = {}

    def seen(step, state):
        phases.setdefault(state.phase, set()).add(tuple(state.image.shape[-2:]))

    r = invert(G, y, steps=150, coarse="8,16", seed=3, callback=seen)
    assert r.latent.shape == (2, G.num_ws, G.w_dim) and r.image.shape == y.shape
    assert r.settings["coarse"] == [8, 16] and [s["resolution"] for s in r.settings["coarse_stages"]] == [8, 16]
    assert r.settings["init"] == "auto"
    assert phases["coarse 8px"] == {(8, 8)} and phases["coarse 16px"] == {(16, 16)}
    assert phases["latent"] == {(32, 32)}
    stage_steps = sum(s["steps"] for s in r.settings["coarse_stages"])
    assert int(r.metrics["steps"].sum()) > stage_steps  # the full-resolution stage ran too
    assert float(r.metrics["psnr"].min()) > 20.0  # (this tiny model reaches ~24 dB without stages)
    again = invert(G, y, steps=150, coarse="8,16", seed=3)
    assert torch.equal(again.latent, r.latent)  # deterministic


def test_cli_takes_coarse_stages_and_refuses_bad_ones(digits, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["invert", str(digits / "digit_0.png"), "--out", str(out), "--steps", "20",
                              "--coarse", "16", "--coarse-steps", "10", "--no-classifier"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    settings = json.dumps(summary)
    assert '"coarse": [16]' in settings or '"coarse": [\n' in settings
    for bad, msg in (("20", "no coarse image at 20 px"), ("quick", "--coarse takes")):
        res = runner.invoke(app, ["invert", str(digits / "digit_0.png"), "--out", str(tmp_path / f"bad{bad}"),
                                  "--steps", "5", "--coarse", bad, "--no-classifier"])
        assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output
