"""ganinv's own model folders: round trips, strict keys, corrupt files; the zoo registry."""

from __future__ import annotations

import json

import pytest
import torch

from ganinv import zoo
from ganinv.errors import CheckpointError, UnknownModelError
from ganinv.generators.dcgan import DCGANGenerator
from ganinv.modelfile import load_pretrained, load_state_strict, read_config, save_pretrained


def test_round_trip_stylegan2_keeps_w_avg(tiny_sg2, tmp_path):
    save_pretrained(tiny_sg2, tmp_path / "m", name="m", kind="generator", meta={"note": "x"})
    G = load_pretrained(tmp_path / "m")
    assert G.config() == tiny_sg2.config()
    torch.testing.assert_close(G.w_avg, tiny_sg2.w_avg)
    w = tiny_sg2.sample_latent(2, "w", seed=0)
    assert torch.equal(G.synthesize(w, "w"), tiny_sg2.synthesize(w, "w"))
    assert not any(p.requires_grad for p in G.parameters()) and not G.training
    assert read_config(tmp_path / "m")["meta"] == {"note": "x"}
    assert not list((tmp_path / "m").glob("*.tmp"))  # atomic writes leave no temporaries


def test_strict_loading_lists_missing_and_unexpected(tiny_sg2):
    state = dict(tiny_sg2.state_dict())
    state.pop("conv1.conv.weight")
    state["extra.weight"] = torch.zeros(1)
    state["input.input"] = torch.zeros(1, 3, 4, 4)
    with pytest.raises(CheckpointError) as err:
        load_state_strict(tiny_sg2, state, "ckpt")
    msg = str(err.value)
    assert "missing keys (1): conv1.conv.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "input.input: checkpoint [1, 3, 4, 4] vs model [1, 16, 4, 4]" in msg


def test_nan_weights_refused(tiny_dcgan):
    state = {k: v.clone() for k, v in tiny_dcgan.state_dict().items()}
    state["net.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        load_state_strict(tiny_dcgan, state, "ckpt")


def test_corrupt_and_foreign_model_folders(tmp_path, tiny_dcgan):
    folder = save_pretrained(tiny_dcgan, tmp_path / "d", name="d", kind="generator")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a ganinv model config"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"format": "ganinv", "config": {"arch": "biggan"}}))
    with pytest.raises(CheckpointError, match="unknown architecture 'biggan'"):
        load_pretrained(folder)
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_pretrained(tmp_path / "nowhere")
    # weights of another architecture under a valid config
    other = DCGANGenerator(resolution=16, z_dim=8, width=4)
    save_pretrained(other, tmp_path / "o", name="o", kind="generator")
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    cfg["config"]["width"] = 8
    (tmp_path / "o" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_pretrained(tmp_path / "o")


def test_zoo_lists_bundled_models_and_rejects_unknown():
    names = zoo.available()
    assert {"mnist-stylegan2", "mnist-dcgan", "mnist-classifier"} <= set(names)
    with pytest.raises(UnknownModelError, match="bundled models: .*mnist-dcgan"):
        zoo.model_dir("mnist-biggan")
    with pytest.raises(UnknownModelError):
        zoo.model_dir("../zoo")
