"""The web app's work without a browser: safe uploads, inversion, restoration and edits on tiny models."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv.errors import InputError
from ganinv.web.backend import Code, Limits, Workbench, card_markdown, describe_metrics, error_map, to_display


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny, valid-looking PNG whose header claims ``width × height`` (a decompression bomb's signature)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def wb(tiny_sg2, tmp_path) -> Workbench:
    return Workbench(tiny_sg2, "tiny", tmp_path / "work", Limits(max_upload_mb=0.01, max_pixels=512 * 512,
                                                                 max_steps=50, max_hypotheses=3))


def digit_png(path: Path, size: int = 16) -> Path:
    arr = np.zeros((size, size), np.uint8)
    arr[size // 4: 3 * size // 4, size // 2 - 1: size // 2 + 1] = 255
    Image.fromarray(arr).save(path)
    return path


def test_display_images_are_enlarged_rgb_uint8():
    img = to_display(torch.rand(1, 1, 16, 16))
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert np.array_equal(img[:16, :16], np.broadcast_to(img[0, 0], (16, 16, 3)))  # nearest: crisp pixels
    assert to_display(torch.rand(3, 300, 300)).shape == (300, 300, 3)
    emap = error_map(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8))
    assert emap.shape == (256, 256, 3) and emap.max() > 200  # maximal error is bright


def test_read_image_converts_and_reports(wb, tmp_path):
    rgb = tmp_path / "colour.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)).save(rgb)
    x, notes = wb.read_image(rgb, "colour.png")
    assert x.shape == (1, 1, 16, 16) and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert any("RGB → L" in n for n in notes) and any("16×16" in n for n in notes)


@pytest.mark.parametrize("case", ["not-image", "truncated", "too-big", "bomb", "huge", "missing", "none"])
def test_read_image_refuses_bad_uploads_with_the_users_name(wb, tmp_path, case):
    path = tmp_path / "server-side-name.png"
    if case == "not-image":
        path.write_bytes(b"%PDF-1.4 definitely not an image")
        match = "is not an image file"
    elif case == "truncated":
        digit_png(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        match = "could not be decoded|not an image file"
    elif case == "too-big":
        path.write_bytes(b"\x00" * 20_000)  # over the 0.01 MB limit of this workbench
        match = "the limit is 0.01 MB"
    elif case == "bomb":
        png_header_only(path, 100_000, 100_000)
        match = "too large to decode safely"  # Pillow itself calls this a decompression bomb
    elif case == "huge":
        png_header_only(path, 1000, 1000)  # within Pillow's limit, over this server's
        match = "too large to decode safely.*1000×1000 pixels"
    elif case == "missing":
        path = tmp_path / "gone.png"
        match = "the upload is gone"
    else:
        path = None
        match = "no image yet"
    with pytest.raises(InputError, match=match) as info:
        wb.read_image(path, "my photo.png")
    assert "server-side-name" not in str(info.value)  # the page names the user's file, never the server's path
    if case not in ("none",):
        assert "my photo.png" in str(info.value)


def test_invert_outcome_has_everything_the_tab_shows(wb, tmp_path):
    x, _ = wb.read_image(digit_png(tmp_path / "d.png"), "d.png")
    seen = []
    out = wb.invert(x, method="optimize", space="w+", steps=6, progress=lambda f, msg: seen.append(f))
    assert out.reconstruction.shape == out.target.shape == out.error_map.shape == (256, 256, 3)
    assert out.metrics["space"] == "w+" and out.metrics["steps"] == 6 and 0 < out.metrics["PSNR (dB)"] < 100
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    assert out.curve is not None and out.curve.is_file()
    assert [p.suffix for p in out.files] == [".npz"] and out.files[0].parent.parent == wb.work_dir
    with np.load(out.files[0]) as data:
        assert data["w"].shape == (1, *wb.G.space("w+").shape)  # the field's projected_w.npz layout
    assert out.code.latent.shape == (1, *wb.G.space("w+").shape)
    assert out.code.noise is None  # the default optimiser (L-BFGS) keeps the generator's stored noise maps
    with pytest.raises(InputError, match="steps must be between 1 and 50"):
        wb.invert(x, steps=51)
    with pytest.raises(InputError, match="method 'encoder' is not available"):
        wb.invert(x, method="encoder")  # no bundled encoder was trained for a random tiny model
    with pytest.raises(InputError, match="space 'q' does not exist"):
        wb.invert(x, space="q", steps=2)


def test_pti_download_carries_its_deltas(wb, tmp_path):
    x, _ = wb.read_image(digit_png(tmp_path / "d.png"), "d.png")
    out = wb.invert(x, method="pti", steps=3)
    assert sorted(p.name for p in out.files) == ["latent.deltas.safetensors", "latent.npz"]


def test_the_bundled_hypernetwork_is_offered_for_its_generator(tmp_path):
    from ganinv import zoo

    G = zoo.load("mnist-stylegan2")
    wb = Workbench(G, "mnist-stylegan2", tmp_path / "work", Limits())
    assert "hyper" in wb.methods and "hyper" not in wb.edit_methods  # its codes render with their own deltas
    x, _ = wb.read_image(digit_png(tmp_path / "d.png", size=32), "d.png")
    out = wb.invert(x, method="hyper")
    assert out.metrics["method"] == "hyper" and out.metrics["PSNR (dB)"] > 10
    assert sorted(p.name for p in out.files) == ["latent.deltas.safetensors", "latent.npz"]
    other = Workbench(zoo.load("mnist-dcgan"), "mnist-dcgan", tmp_path / "work2", Limits())
    assert "hyper" not in other.methods


def test_restore_simulated_and_real_observations(wb, tmp_path):
    x, _ = wb.read_image(digit_png(tmp_path / "d.png"), "d.png")
    out = wb.restore(x, task="inpaint", options={"box": (4, 4, 8, 8)}, hypotheses=2, steps=4)
    assert len(out.hypotheses) == 2 and out.observation.shape == (256, 256, 3)
    fits = [float(c.split("data fit ")[1].split(" ")[0]) for _, c in out.hypotheses]
    assert fits == sorted(fits) and "PSNR" in out.hypotheses[0][1]
    assert out.baseline is not None and out.baseline[1].startswith("TV inpainting")
    assert out.metrics["best PSNR"] is not None and out.observation_file.is_file()
    cs = wb.restore(x, task="cs", options={"m": 20}, hypotheses=1, steps=3)
    assert cs.observation is None and cs.metrics["task"].startswith("cs(")
    # a real low-resolution image is the observation of sr ×4 (16 px model → 4 px)
    small = tmp_path / "small.png"
    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(small)
    sr = wb.restore(None, task="sr", options={"factor": 4}, simulate=False, observation_path=small,
                    shown="small.png", hypotheses=1, steps=3)
    assert "best PSNR" not in sr.metrics and len(sr.hypotheses) == 1
    with pytest.raises(InputError, match="small.png is 4×4 px, but a sr.*switch on 'simulate degradation'"):
        wb.restore(None, task="sr", options={"factor": 2}, simulate=False, observation_path=small,
                   shown="small.png", steps=3)
    with pytest.raises(InputError, match="a cs observation is not an image"):
        wb.restore(None, task="cs", options={}, simulate=False, observation_path=small, steps=3)
    with pytest.raises(InputError, match="hypotheses must be between 1 and 3"):
        wb.restore(x, task="denoise", options={}, hypotheses=4, steps=3)
    with pytest.raises(InputError, match="unknown task 'colorize'"):
        wb.restore(x, task="colorize", options={}, steps=3)  # gray model: colorize is not offered


def test_edits_move_the_image_and_zero_strength_is_the_code(wb):
    G = wb.G
    w = G.convert(G.sample_latent(2, "z", seed=3), "z", "w")
    a, b = Code(w[:1], "w"), Code(w[1:], "w")
    base = wb.code_render(a)
    assert np.array_equal(wb.edit(a, "pca", 0, 0.0), base)
    moved = wb.edit(a, "pca", 0, 3.0)
    assert not np.array_equal(moved, base)
    kept = wb.edited_code(a, "pca", 0, 3.0)  # "keep this edit": the next slider moves from here
    assert kept.space == "w+" and np.array_equal(wb.code_render(kept), moved)
    assert not np.array_equal(wb.edit(a, "sefa", 1, 3.0, 0, 1), base)
    # only the first two layers moved vs all layers: different images
    assert not np.array_equal(wb.edit(a, "pca", 0, 3.0, 0, 1), moved)
    assert np.array_equal(wb.interpolate(a, b, 0.0), base)
    assert np.array_equal(wb.interpolate(a, b, 1.0), wb.code_render(b))
    assert np.array_equal(wb.mix(a, b, 0), wb.code_render(b))  # every layer from B
    with pytest.raises(InputError, match="invert an image first"):
        wb.edit(None, "pca", 0, 1.0)
    with pytest.raises(InputError, match="layers must satisfy"):
        wb.edit(a, "pca", 0, 1.0, 3, 1)
    with pytest.raises(InputError, match="this model does not make 32×32 digits"):
        wb.edit(a, "towards", 3, 1.0)
    with pytest.raises(InputError, match="unknown direction family"):
        wb.edit(a, "nope", 0, 1.0)
    with pytest.raises(InputError, match="finite"):
        wb.edit(a, "pca", 0, float("nan"))


def test_z_only_generator_has_no_layers_or_mixing(tiny_dcgan, tmp_path):
    wb = Workbench(tiny_dcgan, "tiny-dcgan", tmp_path)
    assert wb.spaces == ["z"] and wb.num_ws is None and "pti" not in wb.methods
    z = tiny_dcgan.sample_latent(2, "z", seed=0)
    a, b = Code(z[:1], "z"), Code(z[1:], "z")
    assert "pca" not in wb.families and "sefa" not in wb.families
    assert wb.interpolate(a, b, 0.5).shape == (256, 256, 3)
    with pytest.raises(InputError, match="style mixing needs a generator with w\\+ layers"):
        wb.mix(a, b, 0)
    with pytest.raises(InputError, match="need a W space"):
        wb.edit(a, "pca", 0, 1.0)
    with pytest.raises(InputError, match="SeFa factorises style modulations"):
        wb.edit(a, "sefa", 0, 1.0)


def test_multicode_is_offered_only_for_generators_with_intermediate_features(tiny_dcgan, tmp_path):
    from ganinv.generators.wrap import wrap

    assert "multicode" in Workbench(tiny_dcgan, "tiny-dcgan", tmp_path).methods
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 3 * 16 * 16), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, 16, 16)))
    G = wrap(mlp, latent_dim=4, image_shape=(3, 16, 16), output_range=(0, 1))
    assert "multicode" not in Workbench(G, "mlp", tmp_path).methods


def test_model_card_and_markdown(wb):
    card = wb.model_card()
    assert card["latent spaces"]["w+"] == list(wb.G.space("w+").shape) and card["methods"][0] == "optimize"
    text = card_markdown(card)
    assert "`w+`" in text and "| parameters |" in text
    assert describe_metrics({"psnr": 30.0, "x": None}).splitlines()[-1] == "| x | – |"


def test_serve_cli_refuses_bad_models_and_settings_before_starting(tmp_path):
    from typer.testing import CliRunner

    from ganinv.cli.app import app

    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--model", "no-such-model", "--work-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no-such-model" in r.output and "mnist-stylegan2" in r.output
    r = runner.invoke(app, ["serve", "--port", "0"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "--concurrency" in r.output and "--max-upload-mb" in r.output


# ----------------------------------------------------------------------------------------------------------
# The Photo tab: photo → framed faces → invert → edit → pasted back
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """The astronaut cut off-square (400 × 460, one face well inside) and the coffee cup (no face), as PNGs."""
    skdata = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skdata.astronaut()[20:480, 60:460]).save(folder / "astro.png")
    Image.fromarray(skdata.coffee()[:200, :300]).save(folder / "coffee.png")
    return folder / "astro.png", folder / "coffee.png"


@pytest.fixture(scope="module")
def face_wb(tmp_path_factory):
    """A 32 px random-weight RGB StyleGAN2 whose workbench has the MTCNN detector loaded."""
    from conftest import make_tiny_stylegan2

    from ganinv.photo.errors import DetectorWeightsError

    wb = Workbench(make_tiny_stylegan2(img_channels=3, resolution=32), "tiny-rgb", tmp_path_factory.mktemp("work"))
    try:
        wb.face_detector()
    except DetectorWeightsError as exc:
        pytest.skip(f"MTCNN weights not installed: {str(exc).splitlines()[0]}")
    return wb


@pytest.fixture(scope="module")
def astro_face(face_wb, photo_files):
    """The astronaut read, its face framed and inverted (3 steps): (job, outcome)."""
    job = face_wb.read_photo(photo_files[0], "astro.png")
    face_wb.detect_faces(job, "face")
    return job, face_wb.invert_face(job, 0, steps=3)


def _far_from(alignment, shape):
    """Boolean [H, W]: photo pixels well outside the aligned square."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    st = (alignment.to_aligned(np.stack([xs.ravel(), ys.ravel()], 1)) + 0.5) / alignment.output_size
    return ((st < -0.05) | (st > 1.05)).any(1).reshape(h, w)


def test_photo_faces_are_framed_at_the_models_size(face_wb, astro_face):
    job, _ = astro_face
    assert job.photo.size == (400, 460) and len(job.faces) == 1
    face = job.faces[0]
    assert face.target.shape == (1, 3, 32, 32) and 0 <= float(face.target.min()) <= float(face.target.max()) <= 1
    assert tuple(face.alignment.original_size) == (400, 460) and "FFHQ" in face.note
    assert face.preview.shape == (256, 256, 3) and face.preview.dtype == np.uint8


def test_photo_edit_pastes_into_the_full_photo(face_wb, astro_face):
    from ganinv.web.photo import paste_face

    job, out = astro_face
    original = np.asarray(job.photo).astype(int)
    zero = face_wb.edit_and_paste(job, 0, out.code, "pca", 0, 0.0)
    assert zero.size == job.photo.size
    reconstruction = paste_face(job, 0, face_wb.render_code(out.code))
    assert np.abs(np.asarray(zero).astype(int) - np.asarray(reconstruction).astype(int)).max() <= 1
    edited = np.asarray(face_wb.edit_and_paste(job, 0, out.code, "pca", 0, 4.0)).astype(int)
    far = _far_from(job.faces[0].alignment, original.shape[:2])
    assert far.mean() > 0.3 and np.array_equal(edited[far], original[far])  # only the face changes
    assert np.abs(edited - np.asarray(zero).astype(int))[~far].max() > 0  # …and the edit shows there
    path = face_wb.save_photo(zero)
    assert path.suffix == ".png" and path.parent.parent == face_wb.work_dir
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(zero))


def test_photo_without_a_face_says_use_center(face_wb, photo_files):
    job = face_wb.read_photo(photo_files[1], "coffee.png")
    with pytest.raises(InputError, match="no face found in coffee.png.*'center' framing"):
        face_wb.detect_faces(job, "face")
    faces = face_wb.detect_faces(job, "center")
    assert len(faces) == 1 and faces[0][0].shape == (1, 3, 32, 32)


def test_photo_center_framing_with_a_bundled_digit_model(photo_files, tmp_path):
    from ganinv import zoo

    wb = Workbench(zoo.load(zoo.DEFAULT_MODEL), zoo.DEFAULT_MODEL, tmp_path / "work")
    job = wb.read_photo(photo_files[1], "coffee.png")
    faces = wb.detect_faces(job, "center")
    assert len(faces) == 1 and faces[0][0].shape == (1, 1, 32, 32)
    assert "centred 200×200 square of 300×200" in job.faces[0].note
    out = wb.invert_face(job, 0, method="encoder")  # one forward pass (optimize loads its losses: slow here)
    pasted = wb.edit_and_paste(job, 0, out.code, "pca", 0, 1.0)
    assert pasted.size == (300, 200) and pasted.mode == "RGB"
    with pytest.raises(InputError, match="choose a face"):
        wb.invert_face(job, None)
    with pytest.raises(InputError, match="invert a face first"):
        wb.edit_and_paste(job, 0, None, "pca", 0, 1.0)
    with pytest.raises(InputError, match="framing must be one of"):
        wb.detect_faces(job, "eyes")


def test_photo_upload_limits_apply(wb, tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 1000, 1000)
    with pytest.raises(InputError, match="bomb.png is too large to decode safely"):
        wb.read_photo(path, "bomb.png")
    with pytest.raises(InputError, match="no image yet"):
        wb.read_photo(None)
