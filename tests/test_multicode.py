"""Multi-code inversion (mGANprior): exact head/tail split, composition, fitting, files, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_stylegan3
from ganinv import invert
from ganinv.errors import InputError
from ganinv.generators.wrap import wrap
from ganinv.inverters import MultiCodeSettings, render_multicode


@pytest.mark.parametrize("fixture", ["tiny_sg2", "tiny_dcgan"])
def test_head_then_tail_is_the_whole_generator_at_every_layer(fixture, request):
    G = request.getfixturevalue(fixture)
    space = "w+" if "w+" in G.latent_spaces else "z"
    lat = G.sample_latent(3, space, seed=1)
    full = G._native(lat, space, None)
    assert len(G.feature_layers()) == 2  # 16 px: 4×4 and 8×8
    for layer in range(1, len(G.feature_layers()) + 1):
        state = G.render_head(lat, space, layer)
        shape = G.tail_shape(layer)
        tail = lat[:, -shape[0]:] if shape is not None else None
        assert torch.allclose(G.render_tail(state, tail, layer), full, atol=1e-6)


@pytest.mark.parametrize("fixture", ["tiny_sg2", "tiny_dcgan"])
def test_one_code_with_unit_importance_renders_like_the_plain_generator(fixture, request):
    G = request.getfixturevalue(fixture)
    space = "w" if "w" in G.latent_spaces else "z"
    lat = G.sample_latent(2, space, seed=3)
    layer = 1
    state = G.render_head(lat, space, layer)
    importance = [torch.ones(2, 1, s.shape[1]) for s in state]
    shape = G.tail_shape(layer)
    tail = G.convert(lat, space, "w+")[:, -shape[0]:] if shape is not None else None
    img = render_multicode(G, lat.unsqueeze(1), importance, tail, space, layer)
    assert torch.allclose(img, G.synthesize(lat, space), atol=1e-6)
    # N identical codes with weights 1/N compose to the same image
    codes = lat.unsqueeze(1).repeat(1, 4, 1)
    imp4 = [torch.full((2, 4, s.shape[1]), 0.25) for s in state]
    assert torch.allclose(render_multicode(G, codes, imp4, tail, space, layer), img, atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_sg2", "tiny_dcgan"])
def test_multicode_fits_better_than_one_code(fixture, request):
    """More codes, more expressiveness: on images the generator did not make, N codes beat one."""
    G = request.getfixturevalue(fixture)
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, *G.image_shape, generator=gen) * 0.6 + 0.2
    space = "w" if "w" in G.latent_spaces else "z"
    one = invert(G, target, space=space, steps=60, init="best-of-16")
    many = invert(G, target, method="multicode", codes=6, steps=60, candidates=16)
    assert many.method == "multicode" and many.latent.shape == (3, 6, *G.space(space).shape)
    assert float(many.metrics["loss"].mean()) < float(one.metrics["loss"].mean())
    assert many.image.min() >= 0 and many.image.max() <= 1
    assert len(many.history["loss"]) == 60


@pytest.mark.parametrize("cfg", ["t", "r"])
def test_stylegan3_head_then_tail_is_the_whole_generator_at_every_layer(cfg):
    G = make_tiny_stylegan3(cfg, seed=5, w_avg_samples=500)
    lat = G.sample_latent(2, "w+", seed=1)
    full = G._native(lat, "w+", None)
    names = G.feature_layers()
    assert names == [layer.spec.nvidia_name for layer in G.layers[:-1]] and len(names) == G.num_ws - 2
    for layer in range(1, len(names) + 1):
        state = G.render_head(lat, "w+", layer)
        shape = G.tail_shape(layer)
        assert shape == (G.num_ws - 1 - layer, G.w_dim)
        assert torch.allclose(G.render_tail(state, lat[:, -shape[0]:], layer), full, atol=1e-6)
    with pytest.raises(InputError, match="StyleGAN3 tail after layer 1 needs codes of shape"):
        G.render_tail(G.render_head(lat, "w+", 1), lat[:, -2:], 1)
    with pytest.raises(InputError, match="composition layer must be one of 1 \\(L0_"):
        G.render_head(lat, "w+", len(names) + 1)


def test_multicode_on_stylegan3_fits_better_than_one_code():
    """mGANprior on StyleGAN3 (features blended after one of its layers, the later layers on their own w+ rows):
    on images it did not make, N codes beat one W code, and the saved state re-renders the result."""
    G = make_tiny_stylegan3("t", seed=5, w_avg_samples=500)
    target = torch.rand(2, *G.image_shape, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    one = invert(G, target, space="w", steps=40, init="best-of-16")
    many = invert(G, target, method="multicode", codes=4, steps=40, candidates=16)
    assert many.settings["layer"] == G.default_feature_layer() == max(1, (G.num_ws - 2) // 4)
    layer = many.settings["layer"]
    assert many.latent.shape == (2, 4, G.w_dim) and many.extra["tail"].shape[1:] == G.tail_shape(layer)
    assert float(many.metrics["loss"].mean()) < float(one.metrics["loss"].mean())
    importance = [many.extra["importance_0"]]
    again = render_multicode(G, many.latent, importance, many.extra["tail"], "w", layer)
    assert torch.allclose(again.clamp(0, 1), many.image, atol=1e-5)


def test_multicode_restores_through_a_physics_and_saves_its_codes(tiny_sg2, tmp_path):
    G = tiny_sg2
    x = G.synthesize(G.sample_latent(2, "w", seed=4), "w").clamp(0, 1)
    A = lambda img: img[:, :, ::2, ::2]  # noqa: E731 — a plain callable is a valid forward operator
    res = invert(G, A(x), A, method="multicode", codes=3, steps=40, candidates=8, seed=1)
    assert res.metrics["data_fit"].shape == (2,) and "psnr" not in res.metrics
    assert float(res.metrics["data_fit"].max()) < float((A(G.synthesize(G.mean_latent("w"), "w")) - A(x))
                                                        .square().mean())
    paths = res.save(tmp_path, ["a", "b"], num_ws=G.num_ws)
    with np.load(tmp_path / "a.npz") as data:
        assert data["codes"].shape == (1, 3, G.w_dim)
        assert str(data["space"]) == "w" and int(data["layer"]) == res.settings["layer"]
        imp = [torch.from_numpy(data[f"importance_{i}"]) for i in range(2)]
        tail = torch.from_numpy(data["tail"])
        codes = torch.from_numpy(data["codes"])
    again = render_multicode(G, codes, imp, tail, "w", int(res.settings["layer"])).clamp(0, 1)
    assert torch.allclose(again, res.image[:1], atol=1e-5)  # the file re-renders the result
    assert len(paths) == 4
    assert res.select(torch.tensor([1])).extra["tail"].shape[0] == 1


def test_multicode_is_deterministic(tiny_dcgan):
    target = torch.rand(2, *tiny_dcgan.image_shape, generator=torch.Generator().manual_seed(2))
    a = invert(tiny_dcgan, target, method="multicode", codes=3, steps=15, seed=4)
    b = invert(tiny_dcgan, target, method="multicode", codes=3, steps=15, seed=4)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.image, b.image)


def test_multicode_errors(tiny_sg2, tiny_dcgan):
    target = torch.rand(1, *tiny_sg2.image_shape)
    with pytest.raises(InputError, match="composition layer must be one of 1 \\(4x4\\), 2 \\(8x8\\)"):
        invert(tiny_sg2, target, method="multicode", layer=5, steps=2)
    with pytest.raises(InputError, match="codes must be a whole number"):
        invert(tiny_sg2, target, method="multicode", codes=0, steps=2)
    with pytest.raises(InputError, match="unknown option"):
        invert(tiny_dcgan, target, method="multicode", restarts=2)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.Sigmoid())
    G = wrap(mlp, latent_dim=4, image_shape=(1, 16, 16), output_range=(0, 1))
    with pytest.raises(InputError, match="exposes no intermediate features; multi-code inversion needs"):
        invert(G, target, method="multicode", steps=2)
    assert MultiCodeSettings().codes == 10


def test_invert_cli_multicode(tmp_path):
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from ganinv.cli.app import app

    src = Path(__file__).resolve().parents[1] / "examples" / "digit_5.png"
    shutil.copy(src, tmp_path / "digit_5.png")
    runner = CliRunner()
    r = runner.invoke(app, ["invert", str(tmp_path / "digit_5.png"), "--method", "multicode", "--codes", "3",
                            "--steps", "4", "--model", "mnist-dcgan", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "out" / "digit_5.npz") as data:
        assert data["codes"].shape == (1, 3, 64) and "importance_0" in data.files
    r = runner.invoke(app, ["invert", str(tmp_path / "digit_5.png"), "--codes", "3", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "--codes do(es) not apply to --method optimize" in r.output
    r = runner.invoke(app, ["invert", str(tmp_path / "digit_5.png"), "--method", "multicode", "--layer", "9",
                            "--model", "mnist-dcgan", "--out", str(tmp_path / "o3")])
    assert r.exit_code == 1 and "composition layer must be one of" in r.output
