"""``ganinv invert`` (and the demo's inversion): files written, records, failures, determinism, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganinv.cli.app import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


pytestmark = pytest.mark.usefixtures("offline_torch_home")  # the conftest fixture, for every test here


@pytest.fixture
def digits(tmp_path) -> Path:
    """Three example digits; digit_2 as a 64×64 RGB file (converted and resized on load)."""
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(2):
        shutil.copy(EXAMPLES / f"digit_{i}.png", folder / f"digit_{i}.png")
    Image.open(EXAMPLES / "digit_2.png").convert("RGB").resize((64, 64)).save(folder / "digit_2.png")
    return folder


def _assert_ok(result) -> None:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_invert_folder_writes_everything(digits, tmp_path, monkeypatch):
    import ganinv.inverters as inverters

    calls = []
    real_invert = inverters.invert
    monkeypatch.setattr(inverters, "invert", lambda G, y, *a, **k: calls.append(y.shape[0]) or real_invert(G, y, *a,
                                                                                                           **k))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    result = run("invert", digits, "--steps", "5", "--out", out)
    _assert_ok(result)
    assert calls == [3]  # one batched engine call for all images
    assert "digit_2.png: converted RGB → L (luma); resized 64×64 → 32×32" in result.output
    assert "mean" in result.output and "class kept" in result.output and "psnr" in result.output
    assert (out / "keep.txt").read_text() == "unrelated"
    for name in ("comparison.png", "loss.png", "summary.json"):
        assert (out / name).is_file()
    for i in range(3):
        assert Image.open(out / f"digit_{i}.png").size == (32, 32)
        with np.load(out / f"digit_{i}.npz") as npz:
            assert npz["w"].shape == (1, 8, 128) and all(k == "w" or k.startswith("noise_") for k in npz.files)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"] == {"steps": 5}  # only what the user gave
    assert summary["settings"]["steps"] == 5 and summary["space"] == "w+" and summary["failures"] == []
    records = summary["records"]
    assert [r["stem"] for r in records] == ["digit_0", "digit_1", "digit_2"]
    for r in records:
        assert Path(r["input"]).parent == digits
        assert r["method"] == "optimize" and r["space"] == "w+" and r["steps"] == 5
        assert 5 < r["psnr"] < 100 and 0 < r["ssim"] <= 1 and r["loss"] >= 0 and r["seconds"] > 0
        assert r["lpips"] is None and r["class_kept"] in (True, False)
    assert records[2]["notes"] == ["converted RGB → L (luma)", "resized 64×64 → 32×32"]


@pytest.mark.parametrize("model, extra, key, shape", [
    ("mnist-stylegan2", ("--space", "w"), "w", (1, 8, 128)),
    ("mnist-dcgan", (), "z", (1, 64)),
])
def test_latent_layout_and_no_classifier(digits, tmp_path, model, extra, key, shape):
    out = tmp_path / "out"
    result = run("invert", digits / "digit_0.png", "--model", model, *extra, "--steps", "3", "--no-classifier",
                 "--out", out)
    _assert_ok(result)
    assert "class kept" not in result.output
    with np.load(out / "digit_0.npz") as npz:
        assert npz[key].shape == shape and npz[key].dtype == np.float32
        assert all(k == key or k.startswith("noise_") for k in npz.files)  # noise maps when they were optimised
    record = json.loads((out / "summary.json").read_text())["records"][0]
    assert record["class_kept"] is None and record["space"] == (key if key == "z" else "w")


def test_corrupt_file_is_skipped_and_reported(digits, tmp_path):
    (digits / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    result = run("invert", digits, tmp_path / "missing.png", "--model", "mnist-dcgan", "--steps", "3", "--out", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "2 inputs failed" in result.output and "broken.png" in result.output and "missing.png" in result.output
    for i in range(3):
        assert (out / f"digit_{i}.png").is_file() and (out / f"digit_{i}.npz").is_file()
    assert not (out / "broken.npz").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["records"]) == 3
    assert sorted(Path(f["input"]).name for f in summary["failures"]) == ["broken.png", "missing.png"]


def test_same_seed_same_latents(digits, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for out, seed in zip(outs, (7, 7, 8), strict=True):
        _assert_ok(run("invert", digits, "--init", "random", "--steps", "4", "--seed", str(seed), "--out", out))
    same = [np.load(outs[0] / f"digit_{i}.npz")["w"] for i in range(3)]
    again = [np.load(outs[1] / f"digit_{i}.npz")["w"] for i in range(3)]
    other = np.load(outs[2] / "digit_0.npz")["w"]
    for x, y in zip(same, again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(same[0], other)


def test_stem_collisions_get_suffixes_and_chunks_progress(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(EXAMPLES / "digit_3.png", a / "x.png")
    shutil.copy(EXAMPLES / "digit_4.png", b / "x.png")
    shutil.copy(EXAMPLES / "digit_5.png", b / "loss.png")  # would clash with the loss-curve figure
    out = tmp_path / "out"
    result = run("invert", a, b, "--model", "mnist-dcgan", "--init", "random", "--steps", "3", "--batch-size", "2",
                 "--out", out)
    _assert_ok(result)
    summary = json.loads((out / "summary.json").read_text())
    assert [(Path(r["input"]).parent.name, r["stem"]) for r in summary["records"]] == [
        ("a", "x"), ("b", "loss-1"), ("b", "x-1")]
    for stem in ("x", "x-1", "loss-1"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.npz").is_file()
    # the two x's were inverted to different reconstructions, not one overwriting the other
    assert not np.array_equal(np.load(out / "x.npz")["z"], np.load(out / "x-1.npz")["z"])
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_video_gif(digits, tmp_path):
    out = tmp_path / "out"
    video = tmp_path / "movie" / "opt.gif"
    result = run("invert", digits, "--model", "mnist-dcgan", "--steps", "6", "--restarts", "2", "--video", video,
                 "--out", out)
    _assert_ok(result)
    with Image.open(video) as gif:
        assert gif.format == "GIF" and gif.n_frames >= 2


def test_preset_with_explicit_override(digits, tmp_path):
    out = tmp_path / "out"
    result = run("invert", digits / "digit_1.png", "--preset", "nvidia", "--steps", "3", "--out", out)
    _assert_ok(result)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"] == "nvidia" and summary["options"] == {"steps": 3}
    s = summary["settings"]
    assert (s["space"], s["steps"], s["noise"]) == ("w", 3, "joint")
    with np.load(out / "digit_1.npz") as npz:
        assert npz["w"].shape == (1, 8, 128) and any(k.startswith("noise_") for k in npz.files)


@pytest.mark.parametrize("args, fragments", [
    (("--model", "mnist-biggan"), ("mnist-biggan",)),
    (("--loss", "mse=1,foo=2"), ("unknown loss 'foo'",)),
    (("--model", "mnist-dcgan", "--space", "w+"), ("no latent space 'w+'",)),
    (("--model", "mnist-dcgan", "--noise", "joint"), ("noise maps", "dcgan")),
    (("--loss", "mse=1,lpips=0.5"), ("LPIPS", "vgg16")),
    (("--steps", "0"), ("--steps must be ≥ 1",)),
    (("--video", "clip.avi"), ("clip.avi", ".gif")),
])
def test_errors_are_one_clear_line(digits, tmp_path, args, fragments):
    out = tmp_path / "out"
    result = run("invert", digits, *args, "--steps", "2", "--out", out) if "--steps" not in args else \
        run("invert", digits, *args, "--out", out)
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not out.exists()  # nothing written


def test_no_inputs_and_out_is_a_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    result = run("invert", empty, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "error:" in result.output and "no images found" in result.output
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = run("invert", EXAMPLES / "digit_0.png", "--out", blocker)
    assert result.exit_code == 1 and "existing file" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "x"
    # every input unreadable: one error, exit 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    result = run("invert", bad, "--out", tmp_path / "out2")
    assert result.exit_code == 1 and "could be read" in result.output and "Traceback" not in result.output


def test_demo_inverts_example_digits(tmp_path, monkeypatch):
    import ganinv.cli.demo as demo

    monkeypatch.setattr(demo, "DEMO_OPTIONS", {"steps": 3})  # the real demo uses the engine's defaults
    monkeypatch.setattr(demo, "DEMO_RESTORE", {**demo.DEMO_RESTORE, "steps": 3})
    result = run("demo", "--out", tmp_path, "-n", "4")
    _assert_ok(result)
    restored = json.loads((tmp_path / "restore" / "summary.json").read_text())
    assert restored["task"] == "inpaint" and len(restored["records"]) == 10
    assert len(restored["records"][0]["hypotheses"]) == 3 and (tmp_path / "restore" / "grid.png").is_file()
    assert (tmp_path / "mnist-stylegan2_samples.png").is_file()
    summary = json.loads((tmp_path / "invert" / "summary.json").read_text())
    assert [r["stem"] for r in summary["records"]] == [f"digit_{i}" for i in range(10)]
    assert summary["model"] == "mnist-stylegan2" and (tmp_path / "invert" / "comparison.png").is_file()
    assert "digits inverted" in result.output and "mean" in result.output


def test_demo_falls_back_to_heldout_digits(tmp_path, monkeypatch):
    import ganinv.cli.demo as demo
    from ganinv import zoo

    monkeypatch.setattr(demo, "example_digits", lambda: [])
    targets, failures, what = demo.demo_targets(zoo.load(zoo.DEFAULT_MODEL), tmp_path)
    assert failures == [] and "held-out" in what
    assert [t.stem for t in targets] == [f"digit_{i}" for i in range(10)]
    assert all(t.image.shape == (1, 32, 32) for t in targets)


def test_dfeat_uses_the_discriminator_of_an_nvidia_pickle(tmp_path):
    """``--loss …,dfeat`` reads D from any checkpoint that holds one (here NVIDIA's ``D``, never running the
    pickle's code); a pickle without a real D is one clear sentence saying so."""
    import torch

    from conftest import make_tiny_stylegan2
    from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
    from nvidia_pkl import write_nvidia_pkl

    G = make_tiny_stylegan2()
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(resolution=16, channels={"16": 8, "8": 8, "4": 8}, img_channels=1)
    with_d = write_nvidia_pkl(G, tmp_path / "with_d.pkl", D=D)
    without = write_nvidia_pkl(G, tmp_path / "without.pkl", include_d=False)
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    args = ["invert", str(tmp_path / "x.png"), "--steps", "2", "--no-classifier", "--loss", "mse=1,dfeat=0.1"]
    r = runner.invoke(app, [*args, "--model", str(with_d), "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["options"]["loss"] == "mse=1,dfeat=0.1"
    r = runner.invoke(app, [*args, "--model", str(without), "--out", str(tmp_path / "b")])
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and text.count("error:") == 1, r.output
    assert "needs the model's discriminator" in text and "drop 'dfeat'" in text
