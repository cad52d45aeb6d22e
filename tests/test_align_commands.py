"""``--align`` (and ``--paste-back``) beyond invert and edit: restore, interpolate and mix on photos (tiny RGB model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

skdata = pytest.importorskip("skimage.data")

from test_align_cli import (RES, _far_from_face, astronaut_png, coffee_png, detector, model_dir,  # noqa: E402,F401
                            one_error_line, run)

from ganinv.io import load_npz  # noqa: E402
from ganinv.photo import Alignment  # noqa: E402


def test_restore_simulate_align_face_pastes_back(detector, model_dir, astronaut_png, tmp_path):
    out = tmp_path / "o"
    res = run("restore", astronaut_png, "--task", "inpaint", "--simulate", "--model", model_dir, "--out", out,
              "--steps", 2, "--device", "cpu", "--align", "face", "--paste-back", "--no-baseline")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    (record,) = summary["records"]
    assert record["photo"] == str(astronaut_png.resolve()) and record["pasted"] == "astro.pasted.png"
    alignment = Alignment.from_json(str(load_npz(out / "astro.npz")["alignment_json"][()]))
    assert alignment.kind == "ffhq" and alignment.output_size == RES
    original = np.asarray(Image.open(astronaut_png).convert("RGB"))
    pasted = np.asarray(Image.open(out / "astro.pasted.png").convert("RGB"))
    assert pasted.shape == original.shape
    far = _far_from_face(alignment, original.shape[:2])
    assert far.mean() > 0.3 and np.array_equal(pasted[far], original[far])
    assert not np.array_equal(pasted[~far], original[~far])


def test_restore_sr_frames_observed_photos_at_the_observation_size(model_dir, coffee_png, tmp_path):
    """Super-resolution of a photo: framed to the low-resolution observation's side, the restoration (model size)
    pasted back over the same square."""
    out = tmp_path / "o"
    res = run("restore", coffee_png, "--task", "sr", "--factor", 4, "--model", model_dir, "--out", out, "--steps", 2,
              "--device", "cpu", "--align", "center", "--paste-back", "--no-baseline")
    assert res.exit_code == 0, res.output
    alignment = Alignment.from_json(str(load_npz(out / "coffee.npz")["alignment_json"][()]))
    assert alignment.output_size == RES // 4 and alignment.crop_box == (100, 0, 500, 400)
    original = np.asarray(Image.open(coffee_png).convert("RGB"))
    pasted = np.asarray(Image.open(out / "coffee.pasted.png").convert("RGB"))
    assert pasted.shape == original.shape
    assert np.array_equal(pasted[:, :90], original[:, :90]) and not np.array_equal(pasted[:, 150:450],
                                                                                   original[:, 150:450])
    assert Image.open(out / "coffee.png").size == (RES, RES)


def test_restore_align_refuses_what_it_cannot_frame(model_dir, coffee_png, tmp_path):
    text = one_error_line(run("restore", coffee_png, "--task", "cs", "--model", model_dir, "--out", tmp_path / "o",
                              "--device", "cpu", "--align", "center"))
    assert "not a square image" in text and "--simulate" in text
    text = one_error_line(run("restore", coffee_png, "--task", "inpaint", "--simulate", "--model", model_dir,
                              "--out", tmp_path / "p", "--device", "cpu", "--paste-back"))
    assert "--align" in text


def test_interpolate_and_mix_take_align(model_dir, coffee_png, astronaut_png, tmp_path):
    res = run("interpolate", coffee_png, astronaut_png, "--model", model_dir, "--out", tmp_path / "i", "--steps", 3,
              "--inversion-steps", 2, "--device", "cpu", "--align", "center")
    assert res.exit_code == 0, res.output
    inverted = tmp_path / "i" / "inverted"
    assert "alignment_json" in load_npz(inverted / "coffee.npz")
    res = run("mix", coffee_png, astronaut_png, "--layers", "2-3", "--model", model_dir, "--out", tmp_path / "m",
              "--steps", 2, "--device", "cpu", "--align", "center")
    assert res.exit_code == 0, res.output
    text = one_error_line(run("mix", coffee_png, astronaut_png, "--layers", "2-3", "--model", model_dir, "--out",
                              tmp_path / "n", "--device", "cpu", "--align", "sideways"))
    assert "--align must be one of" in text


def test_a_photo_with_two_faces_is_refused_where_one_code_per_input(detector, model_dir, astronaut_png, tmp_path):
    face = skdata.astronaut()[20:300, 60:360]
    pair = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).save(pair)
    text = one_error_line(run("interpolate", pair, astronaut_png, "--model", model_dir, "--out", tmp_path / "i",
                              "--inversion-steps", 2, "--device", "cpu", "--align", "face"))
    assert "2 faces" in text and "one image per input" in text


def test_invert_dataset_frames_photos_and_keeps_the_alignment(detector, model_dir, astronaut_png, coffee_png,
                                                              tmp_path):
    from safetensors import safe_open

    from ganinv.dataset.store import read_manifest

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in (astronaut_png, coffee_png):
        (photos / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "o"
    res = run("invert-dataset", photos, "--model", model_dir, "--out", out, "--steps", 2, "--device", "cpu",
              "--align", "face")
    assert res.exit_code == 1, res.output  # the coffee has no face: one failed image, the run goes on
    rows = {r["key"]: r for r in read_manifest(out).to_pylist()}
    assert sorted(rows) == ["photos/astro.png", "photos/coffee.png"]
    assert rows["photos/coffee.png"]["status"] == "error" and "no face" in rows["photos/coffee.png"]["error"]
    assert rows["photos/astro.png"]["status"] == "ok"
    with safe_open(out / rows["photos/astro.png"]["shard"], "pt") as f:
        alignment = Alignment.from_json(f.metadata()["alignment:photos/astro.png"])
    assert alignment.kind == "ffhq" and alignment.original_size == Image.open(astronaut_png).size
    assert '"align": "face"' in (out / "run.json").read_text()
    text = one_error_line(run("invert-dataset", photos, "--model", model_dir, "--out", out, "--steps", 2,
                              "--device", "cpu", "--align", "center"))
    assert "other settings" in text  # a resume must frame the same way
