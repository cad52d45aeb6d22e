"""Model folders describe themselves without torch: the recorded summary, and `ganinv models` built on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ganinv import zoo
from ganinv.modelconfig import SUMMARY_KEY, module_summary, read_config, read_summary


@pytest.mark.parametrize("name", zoo.available())
def test_bundled_summaries_match_the_models(name: str) -> None:
    """The recorded summary is what building the model says (a stale config.json fails here)."""
    assert read_summary(zoo.describe(name), generator=zoo.describe(name)["kind"] == "generator") is not None
    assert zoo.summary(name) == module_summary(zoo.load(name))


def test_save_pretrained_records_a_generator_summary(tmp_path: Path) -> None:
    from ganinv.generators.stylegan2 import StyleGAN2Generator
    from ganinv.modelfile import save_pretrained

    G = StyleGAN2Generator(resolution=16, z_dim=8, w_dim=8, n_mlp=1, channels={4: 8, 8: 8, 16: 8}, img_channels=3)
    save_pretrained(G, tmp_path / "g", name="tiny", kind="generator")
    s = read_summary(read_config(tmp_path / "g"), generator=True)
    assert s is not None
    assert s["latent_spaces"] == {name: list(sp.shape) for name, sp in G.latent_spaces.items()}
    assert s["image_shape"] == [3, 16, 16] and s["noise_maps"] == len(G.noise_shapes)
    assert s["parameters"] == sum(p.numel() for p in G.parameters())


@pytest.mark.parametrize("bad", [None, "text", {"parameters": "many"},
                                 {"parameters": 3, "latent_spaces": {"z": "x"}, "noise_maps": 0,
                                  "image_shape": [1, 2, 2]},
                                 {"parameters": 3, "latent_spaces": {}, "noise_maps": 0, "image_shape": [1, 2, 2]},
                                 {"parameters": 3, "latent_spaces": {"z": [4]}, "noise_maps": 0,
                                  "image_shape": [2, 2]}])
def test_a_malformed_summary_is_ignored(bad: object) -> None:
    assert read_summary({SUMMARY_KEY: bad}, generator=True) is None


def test_summary_without_one_builds_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder written before summaries existed is still described (by loading it)."""
    import shutil

    src = zoo.model_dir("mnist-dcgan")
    dst = tmp_path / "zoo" / "mnist-dcgan"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    del cfg[SUMMARY_KEY]
    (dst / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "zoo")
    assert zoo.summary("mnist-dcgan") == module_summary(zoo.load("mnist-dcgan"))


def test_models_lists_without_importing_torch() -> None:
    code = ("import sys; from typer.testing import CliRunner; from ganinv.cli.app import app; "
            "r = CliRunner().invoke(app, ['models']); "
            "print(r.exit_code, 'torch' in sys.modules, 'mnist-stylegan2' in r.output, 'w+ 8×128' in r.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"COLUMNS": "200", "PATH": "", "GANINV_OFFLINE": "1"}).stdout
    assert out.split() == ["0", "False", "True", "True"]
