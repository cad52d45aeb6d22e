"""The command line: each subcommand's happy path and its clear errors (one line, non-zero exit)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.modelfile import save_pretrained

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("models", "sample", "info", "demo", "invert", "restore", "train-gan", "train-classifier",
                "train-encoder"):
        assert cmd in result.output


def test_models_lists_three_bundled_models():
    result = run("models")
    assert result.exit_code == 0, result.output
    for name in ("mnist-stylegan2", "mnist-dcgan", "mnist-classifier", "mnist-stylegan2-encoder",
                 "mnist-dcgan-encoder"):
        assert name in result.output
    assert "w+ 8×128" in result.output
    assert "→ w+ of mnist-stylegan2" in result.output  # an encoder names the generator it inverts


def test_sample_from_model_folder(tiny_sg2, tmp_path):
    folder = save_pretrained(tiny_sg2, tmp_path / "tiny", name="tiny", kind="generator")
    out = tmp_path / "grid.png"
    result = run("sample", "--model", str(folder), "-n", "9", "--seed", "3", "--out", str(out), "--scale", "1")
    assert result.exit_code == 0, result.output
    img = Image.open(out)
    assert img.size == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)
    # same seed, same grid
    out2 = tmp_path / "grid2.png"
    run("sample", "--model", str(folder), "-n", "9", "--seed", "3", "--out", str(out2), "--scale", "1")
    assert out.read_bytes() == out2.read_bytes()


def test_sample_byo_mlp_generator_from_file(tmp_path):
    out = tmp_path / "byo.png"
    result = run("sample", "--generator", f"{REPO / 'examples' / 'byo_mlp.py'}:MLPGenerator", "-n", "4",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 28


@pytest.mark.parametrize(
    "args, message",
    [
        (("sample", "--model", "mnist-biggan"), "'mnist-biggan'; bundled models: "),
        (("sample", "--model", "mnist-dcgan", "--generator", "x.py:G"), "either --model or --generator"),
        (("sample", "--generator", "missing_file.py:G"), "missing_file.py"),
        (("info", "does/not/exist.pt"), "not"),
    ],
)
def test_bad_input_is_one_clear_error(args, message):
    result = run(*args)
    assert result.exit_code == 1
    assert "error:" in result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_corrupt_and_malicious_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a torch file")
    result = run("sample", "--model", str(corrupt), "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 1 and "error:" in result.output
    assert not (tmp_path / "x.png").exists()

    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('owned')",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": Payload()}))
    for cmd in (("sample", "--model", str(evil)), ("info", str(evil))):
        result = run(*cmd)
        assert result.exit_code == 1, result.output
        assert "error:" in result.output
        assert not marker.exists()


def test_info_describes_bundled_and_rosinality(tiny_sg2, tmp_path):
    from ganinv.generators.checkpoints import save_rosinality

    path = tmp_path / "g.pt"
    save_rosinality(tiny_sg2, path)
    result = run("info", str(path))
    assert result.exit_code == 0, result.output
    assert "stylegan2" in result.output.lower() and "16" in result.output
    result = run("info", "mnist-stylegan2")
    assert result.exit_code == 0, result.output
    assert "32" in result.output


def test_write_error_is_clear(tiny_dcgan, tmp_path):
    folder = save_pretrained(tiny_dcgan, tmp_path / "d", name="d", kind="generator")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("sample", "--model", str(folder), "--out", str(blocker / "grid.png"))
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output


def test_a_bug_is_one_line_a_saved_traceback_and_its_own_exit_status(tmp_path, monkeypatch):
    """An exception no input check anticipated: one line naming it, the traceback in a file, exit 70;
    GANINV_DEBUG=1 lets it propagate. Exits and GaninvErrors keep their own handling."""
    import tempfile

    import typer

    from ganinv.cli.common import INTERNAL_ERROR_EXIT, friendly_errors
    from ganinv.errors import InputError

    def boom(kind: str = "bug") -> None:
        if kind == "bug":
            raise ValueError("something inside\nsecond line")
        if kind == "input":
            raise InputError("that file is not an image")
        raise typer.Exit(3)

    cli = typer.Typer()
    cli.command()(friendly_errors(boom))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GANINV_DEBUG", raising=False)
    r = runner.invoke(cli, [])
    assert r.exit_code == INTERNAL_ERROR_EXIT, r.output
    text = " ".join(r.output.split())
    assert "internal error: ValueError: something inside" in text and "second line" not in text
    saved = list(tmp_path.glob("ganinv-crash-*.txt"))
    assert len(saved) == 1 and saved[0].name in "".join(r.output.split())  # (rich may wrap the path)
    trace = saved[0].read_text()
    assert "Traceback" in trace and "in boom" in trace and "second line" in trace
    r = runner.invoke(cli, ["--kind", "input"])
    assert r.exit_code == 1 and "error: that file is not an image" in r.output and "internal" not in r.output
    assert runner.invoke(cli, ["--kind", "exit"]).exit_code == 3
    monkeypatch.setenv("GANINV_DEBUG", "1")
    r = runner.invoke(cli, [])
    assert isinstance(r.exception, ValueError) and "internal error" not in r.output


def test_train_gan_runs_and_resumes(tmp_path, monkeypatch):
    import ganinv.train.gan as gan
    import ganinv.train.quality as quality
    from ganinv.data import mnist

    # the real quality path, on 300 digits per split instead of 5,000 to keep the test fast
    monkeypatch.setattr(quality, "mnist", lambda split: tuple(t[::10 if split == "test" else 13] for t in mnist(split)))
    quality._FLOOR_CACHE.clear()

    tiny = {"arch": "dcgan", "resolution": 32, "z_dim": 8, "width": 4, "img_channels": 1}
    tiny_d = {"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1}
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": tiny, "d": tiny_d})
    out = tmp_path / "run"
    args = ("train-gan", "--arch", "dcgan", "--out", str(out), "--sample-every", "2", "--eval-every", "1000",
            "--checkpoint-every", "2", "--batch-size", "8", "--eval-samples", "100")
    assert run(*args, "--iterations", "4").exit_code == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["iteration"] == 4
    result = run(*args, "--iterations", "6", "--export", str(tmp_path / "model"), "--final-eval-samples", "200")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 6
    assert (out / "samples" / "iter_000006.png").exists() and (out / "curves.png").exists()
    from ganinv.modelfile import load_pretrained, read_config

    G = load_pretrained(tmp_path / "model")
    assert G.sample(2).shape == (2, 1, 32, 32)
    cfg = read_config(tmp_path / "model")
    assert cfg["discriminator"]["arch"] == "dcgan-d" and cfg["meta"]["iterations"] == 6
    assert 0 <= cfg["meta"]["quality"]["confidence"] <= 1
    quality._FLOOR_CACHE.clear()
