"""``--align`` / ``--paste-back`` on ``ganinv invert`` and ``ganinv edit``: photos in, photos out (tiny RGB model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

skdata = pytest.importorskip("skimage.data")

from conftest import make_tiny_stylegan2  # noqa: E402

from ganinv.cli.app import app  # noqa: E402
from ganinv.io import load_npz  # noqa: E402
from ganinv.modelfile import save_pretrained  # noqa: E402
from ganinv.photo import Alignment  # noqa: E402
from ganinv.photo.errors import DetectorWeightsError  # noqa: E402

runner = CliRunner()
RES = 32


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    """The one error message (rich may wrap it), after exit code 1."""
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text and text.count("error:") == 1, result.output
    return " ".join(text.split())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A 32 px random-weight RGB StyleGAN2 as a ganinv model folder."""
    G = make_tiny_stylegan2(img_channels=3, resolution=RES)
    return save_pretrained(G, tmp_path_factory.mktemp("model") / "tiny", name="tiny", kind="generator")


@pytest.fixture(scope="module")
def detector():
    from ganinv.photo import get_detector

    try:
        return get_detector("mtcnn")
    except DetectorWeightsError as exc:
        pytest.skip(f"MTCNN weights not installed: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    """The astronaut photo cut off-square (400 × 460), face well inside, as a PNG."""
    path = tmp_path_factory.mktemp("photos") / "astro.png"
    Image.fromarray(skdata.astronaut()[20:480, 60:460]).save(path)
    return path


@pytest.fixture(scope="module")
def coffee_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "coffee.png"
    Image.fromarray(skdata.coffee()).save(path)  # 600 × 400, no face
    return path


@pytest.fixture(scope="module")
def inverted(detector, model_dir, astronaut_png, tmp_path_factory):
    """``invert --align face --paste-back`` of the astronaut: (out folder, result)."""
    out = tmp_path_factory.mktemp("inv")
    result = run("invert", astronaut_png, "--model", model_dir, "--out", out, "--steps", 2, "--device", "cpu",
                 "--align", "face", "--paste-back")
    return out, result


def _far_from_face(alignment: Alignment, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [H, W]: photo pixels well outside the aligned square (normalised coordinates beyond [-0.05, 1.05])."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    st = (alignment.to_aligned(np.stack([xs.ravel(), ys.ravel()], 1)) + 0.5) / alignment.output_size
    return ((st < -0.05) | (st > 1.05)).any(1).reshape(h, w)


def test_invert_align_face_paste_back(inverted, astronaut_png):
    out, result = inverted
    assert result.exit_code == 0, result.output
    original = np.asarray(Image.open(astronaut_png).convert("RGB"))
    pasted = np.asarray(Image.open(out / "astro.pasted.png").convert("RGB"))
    assert pasted.shape == original.shape  # the photo's own size (460 × 400)
    arrays = load_npz(out / "astro.npz")
    alignment = Alignment.from_json(str(arrays["alignment_json"][()]))
    assert alignment.kind == "ffhq" and alignment.output_size == RES
    assert alignment.original_size == (original.shape[1], original.shape[0])
    assert str(arrays["photo_path"][()]) == str(astronaut_png.resolve())
    assert arrays["w"].shape[0] == 1
    far = _far_from_face(alignment, original.shape[:2])
    assert far.mean() > 0.5
    assert np.array_equal(pasted[far], original[far])
    assert not np.array_equal(pasted, original)  # the face was replaced
    record = json.loads((out / "summary.json").read_text())["records"][0]
    assert record["stem"] == "astro" and record["pasted"] == "astro.pasted.png"
    assert record["photo"] == str(astronaut_png.resolve())
    assert Alignment.from_json(json.dumps(record["alignment"])) == alignment


def test_edit_npz_pastes_back_from_recorded_alignment(inverted, model_dir, tmp_path):
    out, result = inverted
    assert result.exit_code == 0, result.output
    res = run("edit", out / "astro.npz", "--model", model_dir, "--direction", "pca:0", "--strengths", "-2,0,2",
              "--out", tmp_path / "ed", "--paste-back", "--device", "cpu")
    assert res.exit_code == 0, res.output
    strip = Image.open(tmp_path / "ed" / "astro_edit_pasted.png")
    assert strip.size[1] >= 460 and strip.size[0] >= 3 * 400  # three full-size photos side by side
    assert (tmp_path / "ed" / "astro_edit_pasted.gif").is_file()
    assert (tmp_path / "ed" / "astro_edit.png").is_file()  # the usual strip too
    rec = json.loads((tmp_path / "ed" / "edit.json").read_text())["records"][0]
    assert rec["pasted_strip"] == "astro_edit_pasted.png" and rec["alignment"]["kind"] == "ffhq"


def test_edit_image_with_align_face_pastes_back(detector, model_dir, astronaut_png, tmp_path):
    res = run("edit", astronaut_png, "--model", model_dir, "--direction", "pca:0", "--strengths", "0,2",
              "--out", tmp_path / "ed", "--align", "face", "--paste-back", "--steps", 2, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "ed" / "astro_edit_pasted.png").size[1] >= 460
    assert "alignment_json" in load_npz(tmp_path / "ed" / "inverted" / "astro.npz")


def test_no_face_is_one_clear_error(detector, model_dir, coffee_png, tmp_path):
    res = run("invert", coffee_png, "--model", model_dir, "--out", tmp_path / "o", "--steps", 2, "--device", "cpu",
              "--align", "face")
    msg = one_error_line(res)
    assert "coffee.png" in msg and "no face" in msg and "--align center" in msg


def test_no_face_in_a_batch_is_a_failure(detector, model_dir, coffee_png, astronaut_png, tmp_path):
    res = run("invert", coffee_png, astronaut_png, "--model", model_dir, "--out", tmp_path / "o", "--steps", 2,
              "--device", "cpu", "--align", "face")
    assert res.exit_code == 1 and "Traceback" not in res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [r["stem"] for r in summary["records"]] == ["astro"]
    assert summary["failures"][0]["input"] == str(coffee_png) and "no face" in summary["failures"][0]["error"]


def test_align_center_works_without_a_face(model_dir, coffee_png, tmp_path):
    out = tmp_path / "o"
    res = run("invert", coffee_png, "--model", model_dir, "--out", out, "--steps", 2, "--device", "cpu",
              "--align", "center", "--paste-back", "--color-match")
    assert res.exit_code == 0, res.output
    original = np.asarray(Image.open(coffee_png).convert("RGB"))
    pasted = np.asarray(Image.open(out / "coffee.pasted.png").convert("RGB"))
    assert pasted.shape == original.shape
    alignment = Alignment.from_json(str(load_npz(out / "coffee.npz")["alignment_json"][()]))
    assert alignment.kind == "center-crop" and alignment.crop_box == (100, 0, 500, 400)
    assert np.array_equal(pasted[:, :90], original[:, :90]) and np.array_equal(pasted[:, 510:], original[:, 510:])


def test_paste_back_needs_an_alignment(model_dir, coffee_png, tmp_path):
    msg = one_error_line(run("invert", coffee_png, "--model", model_dir, "--out", tmp_path / "o", "--paste-back"))
    assert "--paste-back" in msg and "--align" in msg
    code = tmp_path / "code.npz"
    np.savez(code, w=np.zeros((1, 8, 16), np.float32))
    msg = one_error_line(run("edit", code, "--model", model_dir, "--direction", "pca:0", "--out", tmp_path / "e",
                             "--paste-back"))
    assert "code.npz" in msg and "no alignment" in msg
    msg = one_error_line(run("edit", coffee_png, "--model", model_dir, "--direction", "pca:0", "--out",
                             tmp_path / "e", "--paste-back"))
    assert "--align" in msg
    msg = one_error_line(run("invert", coffee_png, "--model", model_dir, "--out", tmp_path / "o",
                             "--color-match"))
    assert "--paste-back" in msg


def test_wrong_size_mask_is_one_clear_error(model_dir, coffee_png, tmp_path):
    mask = tmp_path / "mask.png"
    Image.new("L", (RES * 2, RES * 2), 255).save(mask)
    res = run("invert", coffee_png, "--model", model_dir, "--out", tmp_path / "o", "--steps", 2, "--device", "cpu",
              "--align", "center", "--paste-back", "--paste-mask", mask)
    msg = one_error_line(res)
    assert "mask.png" in msg and f"{RES * 2}×{RES * 2}" in msg and f"{RES}×{RES}" in msg
    assert not (tmp_path / "o" / "coffee.npz").exists()  # refused before anything ran


def test_paste_mask_of_the_right_size(model_dir, coffee_png, tmp_path):
    mask = tmp_path / "mask.png"
    Image.new("L", (RES, RES), 0).save(mask)  # paste nothing
    out = tmp_path / "o"
    res = run("invert", coffee_png, "--model", model_dir, "--out", out, "--steps", 2, "--device", "cpu",
              "--align", "center", "--paste-back", "--paste-mask", mask)
    assert res.exit_code == 0, res.output
    original = np.asarray(Image.open(coffee_png).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out / "coffee.pasted.png").convert("RGB")), original)


def test_bad_align_value(model_dir, coffee_png, tmp_path):
    msg = one_error_line(run("invert", coffee_png, "--model", model_dir, "--out", tmp_path / "o", "--align", "faces"))
    assert "--align" in msg and "face" in msg


def test_two_faces_give_two_targets_and_one_pasted_photo(detector, model_dir, tmp_path):
    face = skdata.astronaut()[20:300, 60:360]
    path = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).save(path)  # 600 × 280, two faces
    out = tmp_path / "o"
    res = run("invert", path, "--model", model_dir, "--out", out, "--steps", 2, "--device", "cpu",
              "--align", "face", "--paste-back")
    assert res.exit_code == 0, res.output
    records = json.loads((out / "summary.json").read_text())["records"]
    assert [r["stem"] for r in records] == ["pair_face0", "pair_face1"]
    assert {r["pasted"] for r in records} == {"pair.pasted.png"}
    assert Image.open(out / "pair.pasted.png").size == (600, 280)
    centres = [np.mean(Alignment.from_json(str(load_npz(out / f"pair_face{k}.npz")["alignment_json"][()])).quad,
                       axis=0)[0] for k in range(2)]
    assert min(centres) < 300 < max(centres)  # one face on each side
