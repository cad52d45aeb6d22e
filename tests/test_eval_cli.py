"""``ganinv eval``: pairs by file stem, a table and a JSON report; clear one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from ganinv.cli.app import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


pytestmark = pytest.mark.usefixtures("offline_torch_home")  # the conftest fixture, for every test here


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    """Real digits 0–5; reconstructions of 0–3 (blurred) plus files that have no partner."""
    real, recon = tmp_path / "real", tmp_path / "recon"
    real.mkdir()
    recon.mkdir()
    for i in range(6):
        shutil.copy(EXAMPLES / f"digit_{i}.png", real / f"digit_{i}.png")
    for i in range(4):
        Image.open(EXAMPLES / f"digit_{i}.png").filter(ImageFilter.GaussianBlur(0.8)).save(recon / f"digit_{i}.png")
    Image.new("RGB", (90, 30), "white").save(recon / "comparison.png")
    Image.new("RGB", (60, 40), "white").save(recon / "loss.png")
    (recon / "summary.json").write_text("{}")
    return real, recon


def test_eval_happy_path(dirs, tmp_path):
    real, recon = dirs
    out = tmp_path / "reports" / "scores.json"
    result = run("eval", real, recon, "--json", out)
    assert result.exit_code == 0, result.output
    for i in range(4):
        assert f"digit_{i}" in result.output
    assert "mean" in result.output and "class kept" in result.output
    assert "2 in" in result.output and "comparison" in result.output  # unmatched, reported
    assert "lpips left out" in result.output

    report = json.loads(out.read_text())
    assert report["num_pairs"] == 4 and list(report["pairs"]) == [f"digit_{i}" for i in range(4)]
    assert report["unmatched"] == {"real": ["digit_4", "digit_5"], "reconstruction": ["comparison", "loss"]}
    assert report["lpips_net"] is None
    for row in report["pairs"].values():
        assert 10 < row["psnr"] < 100 and 0 < row["ssim"] < 1 and 0 < row["ms_ssim"] < 1
        assert row["lpips"] is None and row["class_kept"] in (True, False)
        assert (row["channels"], row["height"], row["width"]) == (1, 32, 32)
    mean_psnr = sum(row["psnr"] for row in report["pairs"].values()) / 4
    assert report["mean"]["psnr"] == pytest.approx(mean_psnr, abs=1e-4)
    assert 0 <= report["mean"]["class_kept"] <= 1


def test_eval_default_json_and_no_classifier(dirs):
    real, recon = dirs
    result = run("eval", real, recon, "--no-classifier")
    assert result.exit_code == 0, result.output
    assert "class kept" not in result.output
    report = json.loads((recon / "eval.json").read_text())
    assert report["mean"]["class_kept"] is None
    # the report left in RECON_DIR is not an image: a second run sees the same pairs
    assert run("eval", real, recon, "--no-classifier").exit_code == 0


def test_eval_colour_and_grey_pairs_skip_the_classifier(tmp_path):
    real, recon = tmp_path / "real", tmp_path / "recon"
    real.mkdir()
    recon.mkdir()
    for i in range(2):
        colour = Image.open(EXAMPLES / f"digit_{i}.png").convert("RGB").resize((40, 40))
        colour.save(real / f"img{i}.png")
        colour.convert("L").save(recon / f"img{i}.jpg")  # mode and format differ: converted to match
    result = run("eval", real, recon)
    assert result.exit_code == 0, result.output
    assert "class preservation skipped for 2" in result.output
    report = json.loads((recon / "eval.json").read_text())
    assert all(row["channels"] == 3 and row["class_kept"] is None for row in report["pairs"].values())
    assert all(row["ssim"] > 0.9 for row in report["pairs"].values())


def _assert_clear_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_eval_missing_dir(dirs, tmp_path):
    real, _ = dirs
    _assert_clear_error(run("eval", real, tmp_path / "nowhere"), "not found", "nowhere")


def test_eval_empty_dir(dirs, tmp_path):
    real, _ = dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    _assert_clear_error(run("eval", empty, real), "no images", "empty")


def test_eval_no_pairs(dirs, tmp_path):
    real, _ = dirs
    other = tmp_path / "other"
    other.mkdir()
    Image.new("L", (32, 32)).save(other / "unrelated.png")
    _assert_clear_error(run("eval", real, other), "same file name", "unrelated")


def test_eval_corrupt_image(dirs):
    real, recon = dirs
    (recon / "digit_2.png").write_bytes(b"\x89PNG\r\n\x1a\n definitely not a png")
    _assert_clear_error(run("eval", real, recon), "cannot read image", "digit_2.png")


def test_eval_size_mismatch(dirs):
    real, recon = dirs
    Image.new("L", (28, 28)).save(recon / "digit_1.png")
    _assert_clear_error(run("eval", real, recon), "differ in size", "digit_1", "28×28")


def test_eval_is_listed_in_help():
    result = run("--help")
    assert result.exit_code == 0 and "eval" in result.output
