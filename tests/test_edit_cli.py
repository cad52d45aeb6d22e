"""The editing commands (directions, edit, interpolate, mix): happy paths on a tiny model, and one clear
error line with a non-zero exit for every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.modelfile import save_pretrained

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def model_dir(tiny_sg2, tmp_path):
    return save_pretrained(tiny_sg2, tmp_path / "tiny", name="tiny", kind="generator")


@pytest.fixture
def codes(tiny_sg2, tmp_path):
    """Two W+ latent files as `ganinv invert` writes them (key w, [1, num_ws, w_dim])."""
    paths = []
    for i in range(2):
        wp = tiny_sg2.convert(tiny_sg2.sample_latent(1, "w", seed=10 + i), "w", "w+")
        path = tmp_path / f"code{i}.npz"
        np.savez(path, w=wp.numpy())
        paths.append(path)
    return paths


def one_error_line(result) -> str:
    """The one error message (rich may wrap it over several terminal lines), after exit code 1."""
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert text.startswith("error:") and text.count("error:") == 1, result.output
    assert "Traceback" not in text
    return " ".join(text.split())


def test_help_lists_the_editing_commands():
    result = run("--help")
    for cmd in ("directions", "edit", "interpolate", "mix"):
        assert cmd in result.output


def test_directions_pca_and_sefa_write_ganspace_npz(model_dir, tmp_path):
    for method in ("pca", "sefa"):
        out = tmp_path / f"{method}.npz"
        extra = ("--samples", 1000) if method == "pca" else ("--layers", "0-3")
        result = run("directions", "--method", method, "--model", model_dir, "--k", 4, *extra, "--out", out,
                     "--preview", tmp_path / f"{method}.png")
        assert result.exit_code == 0, result.output
        with np.load(out) as data:
            assert data["lat_comp"].shape == (4, 1, 16)
            assert data["lat_mean"].shape == (1, 16) and data["lat_stdev"].shape == (4,)
        assert Image.open(tmp_path / f"{method}.png").size[1] > 4 * 16


def test_directions_interfacegan_from_a_labels_csv(model_dir, codes, tiny_sg2, tmp_path):
    rows = []
    for i in range(12):
        w = tiny_sg2.sample_latent(1, "w", seed=i)
        np.save(tmp_path / f"s{i}.npy", w.numpy())
        rows.append(f"s{i}.npy,{float(w[0, 0] > 0)}")
    (tmp_path / "labels.csv").write_text("latent_file,score\n" + "\n".join(rows) + "\n")
    out = tmp_path / "b.npy"
    result = run("directions", "--method", "interfacegan", "--model", model_dir, "--labels", tmp_path / "labels.csv",
                 "--out", out)
    assert result.exit_code == 0, result.output
    arr = np.load(out)
    assert arr.shape == (1, 16) and abs(np.linalg.norm(arr) - 1) < 1e-5
    assert json.loads((tmp_path / "b.npy.json").read_text())["space"] == "w"


@pytest.mark.parametrize("args, message", [
    (("--method", "lda", "--out", "x.npz"), "unknown --method"),
    (("--method", "pca", "--out", "x.npy"), "saved as .npz"),
    (("--method", "interfacegan", "--out", "x.npy"), "needs labels"),
    (("--method", "interfacegan", "--out", "x.npy", "--labels", "missing.csv"), "no such file"),
    (("--method", "pca", "--out", "x.npz", "--target-class", "3"), "interfacegan only"),
])
def test_directions_bad_options_are_one_clear_error(args, message, model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run("directions", "--model", model_dir, *args))
    assert message in line


def test_directions_on_a_dcgan_refuse_pca_and_sefa(tiny_dcgan, tmp_path):
    folder = save_pretrained(tiny_dcgan, tmp_path / "dc", name="dc", kind="generator")
    assert "isotropic Gaussian" in one_error_line(run("directions", "--method", "pca", "--model", folder,
                                                      "--out", tmp_path / "p.npz"))
    assert "style-modulation" in one_error_line(run("directions", "--method", "sefa", "--model", folder,
                                                    "--out", tmp_path / "s.npz"))


def test_edit_latents_with_a_direction_file_and_a_layer_range(model_dir, codes, tiny_sg2, tmp_path):
    comp = tmp_path / "pca.npz"
    assert run("directions", "--method", "pca", "--model", model_dir, "--k", 3, "--samples", 1000,
               "--out", comp).exit_code == 0
    out = tmp_path / "edits"
    result = run("edit", *codes, "--direction", f"{comp}:1", "--strengths", "-2,0,2", "--layers", "0-2",
                 "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    for stem in ("code0", "code1"):
        strip = Image.open(out / f"{stem}_edit.png")
        assert strip.size[0] > 3 * strip.size[1] - 20  # three tiles side by side
        gif = Image.open(out / f"{stem}_edit.gif")
        assert gif.n_frames > 3
        with np.load(out / f"{stem}_edit.npz") as data:
            w, s = data["w"], data["strengths"]
        assert w.shape == (3, 6, 16) and s.tolist() == [-2, 0, 2]
        with np.load(codes[int(stem[-1])]) as data:
            original = data["w"][0]
        np.testing.assert_array_equal(w[1], original)  # strength 0 = the input code
        np.testing.assert_array_equal(w[0, 3:], original[3:])  # rows outside 0-2 untouched
        assert not np.allclose(w[0, :3], original[:3])
    summary = json.loads((out / "edit.json").read_text())
    assert summary["layers"] == "0-2" and len(summary["records"]) == 2


def test_edit_inverts_an_image_first(model_dir, tiny_sg2, tmp_path, offline_torch_home):
    image = tiny_sg2.sample(1, seed=4)[0, 0]
    Image.fromarray((image.numpy() * 255).astype(np.uint8), mode="L").save(tmp_path / "digit.png")
    out = tmp_path / "edits"
    result = run("edit", tmp_path / "digit.png", "--direction", "sefa:0", "--model", model_dir, "--steps", 5,
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "inverted" / "digit.npz").is_file() and (out / "digit_edit.gif").is_file()
    summary = json.loads((out / "inverted" / "summary.json").read_text())
    assert summary["options"]["prior"] == 0.003  # the editing default (docs/editing.md)
    with np.load(out / "digit_edit.npz") as data:
        assert data["w"].shape == (5, 6, 16)


@pytest.mark.parametrize("extra, message", [
    (("--strengths", "1,two"), "is not a number"),
    (("--strengths", ""), "bad --strengths"),
    (("--layers", "5-2"), "bad layer range"),
    (("--layers", "0-9"), "outside this generator's layers 0…5"),
    (("--direction", "wide.npy"), "w_dim 16"),
    (("--direction", "nothere.npy"), "no such direction file"),
    (("--direction", "pca:x"), "component number"),
    (("--units", "furlongs"), "--units"),
    (("--method", "encoder", "--prior", "0.1"), "--method encoder runs no optimisation; drop --prior"),
])
def test_edit_bad_inputs_are_one_clear_error(extra, message, model_dir, codes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "wide.npy", np.ones((1, 128), np.float32))
    args = ["edit", codes[0], "--model", model_dir, "--out", tmp_path / "o"]
    if "--direction" not in extra:
        args += ["--direction", "pca:0"]
    line = one_error_line(run(*args, *extra))
    assert message in line
    assert not (tmp_path / "o").exists()  # nothing ran


def test_edit_missing_input_and_foreign_latent_are_refused(model_dir, tmp_path):
    line = one_error_line(run("edit", tmp_path / "gone.npz", "--direction", "pca:0", "--model", model_dir,
                              "--out", tmp_path / "o"))
    assert "gone.npz" in line
    np.savez(tmp_path / "big.npz", w=np.zeros((1, 8, 128), np.float32))
    line = one_error_line(run("edit", tmp_path / "big.npz", "--direction", "pca:0", "--model", model_dir,
                              "--out", tmp_path / "o"))
    assert "another model" in line


def test_interpolate_two_codes(model_dir, codes, tmp_path):
    out = tmp_path / "interp"
    result = run("interpolate", *codes, "--steps", 5, "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out / "interpolation.npz") as data:
        w = data["w"]
    assert w.shape == (5, 6, 16)
    with np.load(codes[0]) as a, np.load(codes[1]) as b:
        np.testing.assert_allclose(w[0], a["w"][0], atol=1e-6)
        np.testing.assert_allclose(w[-1], b["w"][0], atol=1e-6)
    assert Image.open(out / "interpolation.gif").n_frames == 8  # there and back
    assert "steps must be between" in one_error_line(run("interpolate", *codes, "--steps", 1, "--model", model_dir,
                                                         "--out", out))


def test_mix_takes_the_requested_rows(model_dir, codes, tmp_path):
    out = tmp_path / "mix"
    result = run("mix", *codes, "--layers", "3-5", "--model", model_dir, "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out / "mix.npz") as m, np.load(codes[0]) as a, np.load(codes[1]) as b:
        np.testing.assert_array_equal(m["w"][0, :3], a["w"][0, :3])
        np.testing.assert_array_equal(m["w"][0, 3:], b["w"][0, 3:])
    assert Image.open(out / "mix.png").size[0] > Image.open(out / "mix_only.png").size[0] * 2
    assert "bad layer range" in one_error_line(run("mix", *codes, "--layers", "a-b", "--model", model_dir,
                                                   "--out", out))


def test_mix_on_a_dcgan_is_refused(tiny_dcgan, tmp_path):
    folder = save_pretrained(tiny_dcgan, tmp_path / "dc", name="dc", kind="generator")
    np.savez(tmp_path / "a.npz", z=torch.zeros(1, 8).numpy())
    line = one_error_line(run("mix", tmp_path / "a.npz", tmp_path / "a.npz", "--layers", "0-1", "--model", folder,
                              "--out", tmp_path / "o"))
    assert "only z" in line


def test_edit_on_a_dcgan_works_in_z(tiny_dcgan, tmp_path):
    folder = save_pretrained(tiny_dcgan, tmp_path / "dc", name="dc", kind="generator")
    np.savez(tmp_path / "a.npz", z=torch.randn(1, 8).numpy())
    np.save(tmp_path / "d.npy", np.eye(8, dtype=np.float32)[:1])
    result = run("edit", tmp_path / "a.npz", "--direction", tmp_path / "d.npy", "--strengths", "0,3",
                 "--model", folder, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "o" / "a_edit.npz") as data, np.load(tmp_path / "a.npz") as a:
        np.testing.assert_allclose(data["z"][1] - a["z"][0], [3, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    assert "drop --layers" in one_error_line(run("edit", tmp_path / "a.npz", "--direction", tmp_path / "d.npy",
                                                 "--layers", "0-1", "--model", folder, "--out", tmp_path / "o2"))


@pytest.mark.slow
def test_bundled_boundary_is_refused_on_models_of_another_size(tiny_sg2, tmp_path):
    """End to end on the bundled models: a "towards 1" boundary of mnist-stylegan2 (w_dim 128) is refused by a
    model with w_dim 16 and by the DCGAN (z_dim 64), each with one clear line."""
    boundary = tmp_path / "towards1.npy"
    result = run("directions", "--method", "interfacegan", "--target-class", 1, "--samples", 400,
                 "--model", "mnist-stylegan2", "--out", boundary)
    assert result.exit_code == 0, result.output
    arr = np.load(boundary)
    assert arr.shape == (1, 128) and abs(np.linalg.norm(arr) - 1) < 1e-5
    assert json.loads((tmp_path / "towards1.npy.json").read_text())["target_class"] == 1
    folder = save_pretrained(tiny_sg2, tmp_path / "tiny", name="tiny", kind="generator")
    np.savez(tmp_path / "tiny.npz", w=tiny_sg2.sample_latent(1, "w+", seed=0).numpy())
    line = one_error_line(run("edit", tmp_path / "tiny.npz", "--direction", boundary, "--model", folder,
                              "--out", tmp_path / "o"))
    assert "dimension 128" in line and "w_dim 16" in line and "another model" in line
    np.savez(tmp_path / "dc.npz", z=np.zeros((1, 64), np.float32))
    line = one_error_line(run("edit", tmp_path / "dc.npz", "--direction", boundary, "--model", "mnist-dcgan",
                              "--out", tmp_path / "o"))
    assert "dimension 128" in line and "z_dim 64" in line
