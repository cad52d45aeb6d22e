"""Images, latents and figures in and out (ganinv.io): fast, offline, deterministic."""

from __future__ import annotations

import io as stdio
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv.errors import GaninvError, InputError
from ganinv.io import (
    collect_images,
    comparison_image,
    load_latent_npz,
    load_target,
    plot_loss_curves,
    save_comparison,
    save_latent_npz,
    save_video,
)


def _gradient(w: int, h: int) -> np.ndarray:
    """Deterministic ``[h, w]`` uint8 gradient (no flat regions)."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 13) % 256).astype(np.uint8)


def _rgb(w: int, h: int) -> np.ndarray:
    g = _gradient(w, h)
    return np.stack([g, 255 - g, (g // 2)], axis=2)


def _save(img: Image.Image, path: Path, fmt: str = "PNG") -> Path:
    img.save(path, format=fmt)
    return path


def _check(t: torch.Tensor, channels: int, res: int) -> None:
    assert t.shape == (channels, res, res)
    assert t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


# ----------------------------------------------------------------------------- load_target: modes

def test_grey_exact_size_no_notes(tmp_path: Path) -> None:
    arr = _gradient(16, 16)
    t, notes = load_target(_save(Image.fromarray(arr, mode="L"), tmp_path / "a.png"), 1, 16)
    _check(t, 1, 16)
    assert notes == []
    assert torch.allclose(t[0], torch.from_numpy(arr).float() / 255)


def test_rgb_to_grey_uses_luma(tmp_path: Path) -> None:
    arr = _rgb(16, 16)
    t, notes = load_target(_save(Image.fromarray(arr, mode="RGB"), tmp_path / "a.png"), 1, 16)
    _check(t, 1, 16)
    assert any(n.startswith("converted RGB → L") for n in notes)
    pil_luma = np.asarray(Image.fromarray(arr, mode="RGB").convert("L"), dtype=np.float32) / 255
    assert np.abs(t[0].numpy() - pil_luma).max() <= 1 / 255 + 1e-6  # Pillow's weights, float instead of rounded


def test_grey_to_rgb_repeats(tmp_path: Path) -> None:
    t, notes = load_target(_save(Image.fromarray(_gradient(16, 16), mode="L"), tmp_path / "a.png"), 3, 16)
    _check(t, 3, 16)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    assert any("converted L → RGB" in n for n in notes)


def test_rgb_kept(tmp_path: Path) -> None:
    arr = _rgb(16, 16)
    t, notes = load_target(_save(Image.fromarray(arr, mode="RGB"), tmp_path / "a.png"), 3, 16)
    _check(t, 3, 16)
    assert notes == []
    assert torch.allclose(t.permute(1, 2, 0), torch.from_numpy(arr).float() / 255)


@pytest.mark.parametrize("background", [0.0, 1.0])
def test_rgba_composited_over_background(tmp_path: Path, background: float) -> None:
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., :3] = 200
    arr[:4, :, 3] = 255  # top half opaque, bottom half fully transparent
    path = _save(Image.fromarray(arr, mode="RGBA"), tmp_path / "a.png")
    t, notes = load_target(path, 3, 8, background=background)
    _check(t, 3, 8)
    assert torch.allclose(t[:, :4], torch.full((3, 4, 8), 200 / 255))
    assert torch.allclose(t[:, 4:], torch.full((3, 4, 8), background))
    assert any("composited transparent pixels over " + ("black" if background == 0 else "white") in n
               for n in notes)
    assert any("converted RGBA → RGB" in n for n in notes)


def test_default_alpha_background_is_black(tmp_path: Path) -> None:
    arr = np.zeros((8, 8, 2), np.uint8)
    arr[..., 0] = 255
    arr[2:6, 2:6, 1] = 255  # white digit stroke on a transparent background
    t, notes = load_target(_save(Image.fromarray(arr, mode="LA"), tmp_path / "a.png"), 1, 8)
    _check(t, 1, 8)
    assert float(t[0, 0, 0]) == 0.0 and float(t[0, 3, 3]) == 1.0
    assert any("converted LA → L" in n for n in notes)


def test_opaque_alpha_dropped(tmp_path: Path) -> None:
    arr = np.dstack([_rgb(8, 8), np.full((8, 8), 255, np.uint8)])
    t, notes = load_target(_save(Image.fromarray(arr, mode="RGBA"), tmp_path / "a.png"), 3, 8)
    assert torch.allclose(t.permute(1, 2, 0), torch.from_numpy(arr[..., :3]).float() / 255)
    assert any("dropped the (fully opaque) alpha channel" in n for n in notes)


def test_palette_image(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb(16, 16), mode="RGB").quantize(16)
    assert img.mode == "P"
    path = _save(img, tmp_path / "a.png")
    t, notes = load_target(path, 3, 16)
    _check(t, 3, 16)
    expected = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    assert np.allclose(t.permute(1, 2, 0).numpy(), expected)
    assert any("converted P → RGB" in n for n in notes)
    t1, notes1 = load_target(path, 1, 16)
    _check(t1, 1, 16)
    assert any("converted P → L" in n for n in notes1)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.info["transparency"] = 1  # the whole image is the transparent index
    path = tmp_path / "a.png"
    img.save(path, transparency=1)
    t, notes = load_target(path, 1, 8)
    assert float(t.max()) == 0.0  # transparent white → black background
    assert any("composited" in n for n in notes)


def test_16bit_scaled(tmp_path: Path) -> None:
    arr = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    t, notes = load_target(_save(img, tmp_path / "a.png"), 1, 8)
    _check(t, 1, 8)
    assert np.allclose(t[0].numpy(), arr / 65535.0, atol=1e-6)
    assert any(n.startswith("converted I;16 → L") and "16-bit" in n for n in notes)
    t3, _ = load_target(tmp_path / "a.png", 3, 8)
    _check(t3, 3, 8)


def test_int32_and_float_modes(tmp_path: Path) -> None:
    i32 = Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.int32), mode="I")
    t, notes = load_target(_save(i32, tmp_path / "i.tif", "TIFF"), 1, 8)
    _check(t, 1, 8)
    assert abs(float(t.max()) - 63000 / 65535) < 1e-5
    f = Image.fromarray(np.linspace(-2, 6, 64, dtype=np.float32).reshape(8, 8), mode="F")
    t, notes = load_target(_save(f, tmp_path / "f.tif", "TIFF"), 1, 8)
    _check(t, 1, 8)
    assert float(t.min()) == 0.0 and abs(float(t.max()) - 1.0) < 1e-6
    assert any("rescaled from [-2, 6]" in n for n in notes)


def test_one_bit(tmp_path: Path) -> None:
    arr = _gradient(16, 16) > 128
    img = Image.fromarray(arr).convert("1")
    assert img.mode == "1"
    t, notes = load_target(_save(img, tmp_path / "a.png"), 1, 16)
    _check(t, 1, 16)
    assert set(np.unique(t.numpy())) <= {0.0, 1.0}
    assert np.array_equal(t[0].numpy() > 0.5, arr)
    assert any("converted 1 → L" in n for n in notes)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb(16, 16), mode="RGB").convert("CMYK")
    t, notes = load_target(_save(img, tmp_path / "a.jpg", "JPEG"), 3, 16)
    _check(t, 3, 16)
    assert any("converted CMYK → RGB" in n for n in notes)


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("L", (8, 8), v) for v in (0, 255, 128)]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    t, notes = load_target(path, 1, 8)
    assert float(t.max()) == 0.0
    assert "used the first of 3 frames" in notes


# ----------------------------------------------------------------------------- load_target: sizes

def test_smaller_is_upscaled(tmp_path: Path) -> None:
    t, notes = load_target(_save(Image.fromarray(_gradient(8, 8), mode="L"), tmp_path / "a.png"), 1, 32)
    _check(t, 1, 32)
    assert "upscaled 8×8 → 32×32" in notes


def test_larger_is_downscaled(tmp_path: Path) -> None:
    arr = np.zeros((64, 64), np.uint8)
    arr[::2] = 255  # fine stripes: antialiased downscaling averages them to grey
    t, notes = load_target(_save(Image.fromarray(arr, mode="L"), tmp_path / "a.png"), 1, 16)
    _check(t, 1, 16)
    assert "resized 64×64 → 16×16" in notes
    assert abs(float(t.mean()) - 0.5) < 0.05 and float(t.std()) < 0.1


def test_non_square_centre_crop(tmp_path: Path) -> None:
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:, :8] = 255  # a white band on the left edge falls outside the centre crop
    arr[:, -8:] = 255
    t, notes = load_target(_save(Image.fromarray(arr, mode="RGB"), tmp_path / "a.png"), 3, 32)
    _check(t, 3, 32)
    assert "resized 64×48 → 32×32 (centre crop)" in notes
    assert float(t.max()) == 0.0
    tall = np.zeros((40, 32), np.uint8)
    t, notes = load_target(_save(Image.fromarray(tall, mode="L"), tmp_path / "b.png"), 1, 32)
    _check(t, 1, 32)
    assert "centre-cropped 32×40 → 32×32" in notes


def test_constant_image_stays_constant(tmp_path: Path) -> None:
    t, _ = load_target(_save(Image.new("RGB", (50, 30), (255, 0, 128)), tmp_path / "a.png"), 3, 16)
    assert torch.allclose(t[:, 3:-3, 3:-3], torch.tensor([1.0, 0.0, 128 / 255]).view(3, 1, 1), atol=1e-4)


# ----------------------------------------------------------------------------- load_target: errors

def test_truncated_png(tmp_path: Path) -> None:
    buf = stdio.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.png could not be decoded \(truncated or corrupt"):
        load_target(path, 1, 16)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, not an image\n")
    with pytest.raises(InputError, match=r"notes\.png is not an image file Pillow can read"):
        load_target(path, 1, 16)


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_target(tmp_path / "nope.png", 1, 16)
    with pytest.raises(InputError, match="is a directory"):
        load_target(tmp_path, 1, 16)
    good = _save(Image.new("L", (4, 4)), tmp_path / "a.png")
    with pytest.raises(InputError, match="channels must be 1"):
        load_target(good, 2, 16)
    with pytest.raises(InputError, match="resolution must be a positive integer"):
        load_target(good, 1, 0)


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("L", (64, 64)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InputError, match=r"big\.png is too large to read safely"):
        load_target(path, 1, 16)


def test_input_error_is_ganinv_error() -> None:
    assert issubclass(InputError, GaninvError)


# ----------------------------------------------------------------------------- collect_images

def test_collect_images_order_dedup_and_problems(tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ["img10.png", "img2.PNG", "img1.jpg", ".hidden.png", "readme.txt", "b.webp"]:
        (d / name).write_bytes(b"x")
    (d / "sub").mkdir()
    (d / "sub" / "deep.png").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    single = tmp_path / "single.png"
    single.write_bytes(b"x")
    missing = tmp_path / "missing.png"

    images, problems = collect_images([single, d, missing, empty, d / "img2.PNG", str(single),
                                       str(d / ".." / "single.png")])
    assert [p.name for p in images] == ["single.png", "b.webp", "img1.jpg", "img2.PNG", "img10.png"]
    assert (missing, "no such file or directory") in problems
    assert [p for p, _ in problems] == [missing, empty]
    assert "no image files" in dict(problems)[empty]
    # stable: same call, same answer
    assert collect_images([single, d, missing, empty])[0] == images


def test_collect_images_nothing_found(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as exc:
        collect_images([empty, tmp_path / "gone.png"])
    msg = str(exc.value)
    assert "no images found" in msg and "empty" in msg and "gone.png: no such file or directory" in msg
    with pytest.raises(InputError, match="no input images given"):
        collect_images([])


# ----------------------------------------------------------------------------- latents

def test_npz_round_trip(tmp_path: Path) -> None:
    w = torch.randn(1, 8, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    path = save_latent_npz(tmp_path / "out" / "latent.npz", "w", w)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["latent.npz"]  # no temp left
    with np.load(path) as data:  # plain NumPy reads it
        assert data.files == ["w"]
        assert data["w"].shape == (1, 8, 128) and data["w"].dtype == np.float32
        assert np.allclose(data["w"], w.numpy().astype(np.float32))
    loaded = load_latent_npz(path)
    assert list(loaded) == ["w"] and loaded["w"].shape == (1, 8, 128)
    z = save_latent_npz(tmp_path / "z.npz", "z", torch.zeros(1, 16))
    assert load_latent_npz(z)["z"].shape == (1, 16)


def test_npz_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="plain name"):
        save_latent_npz(tmp_path / "a.npz", "w/x", torch.zeros(1))
    with pytest.raises(InputError, match="no such latent file"):
        load_latent_npz(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(InputError, match="not an .npz file"):
        load_latent_npz(text)
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(InputError, match="single .npy array"):
        load_latent_npz(npy)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="pickled Python objects"):
        load_latent_npz(pickled)
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    with pytest.raises(InputError, match="contains no arrays"):
        load_latent_npz(empty)
    broken = tmp_path / "broken.npz"
    good = save_latent_npz(tmp_path / "good.npz", "w", torch.randn(1, 8, 128))
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable .npz file"):
        load_latent_npz(broken)


# ----------------------------------------------------------------------------- figures

def test_comparison_image_shape_and_content() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 8, 8, generator=g)
    grid = comparison_image(target, target.clone())
    assert grid.shape == (3, 2 * 10 + 2, 3 * 10 + 2)  # rows = samples, 3 columns, 2 px padding
    assert float(grid.min()) >= 0 and float(grid.max()) <= 1
    assert torch.allclose(grid[:, 2:10, 2:10], target[0].expand(3, -1, -1))  # grey repeated to RGB
    # zero error → the colormap's first colour everywhere in the error tile
    err_tile = grid[:, 2:10, 22:30]
    assert torch.allclose(err_tile, err_tile[:, :1, :1].expand_as(err_tile))
    # maximal error is brighter than no error
    worst = comparison_image(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    assert float(worst[:, 2:10, 22:30].mean()) > float(err_tile.mean())
    # [C, H, W] is accepted as one sample; per-figure scaling also works
    assert comparison_image(torch.rand(3, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g),
                            vmax=None).shape == (3, 12, 32)
    with pytest.raises(InputError, match="same batch size and image size"):
        comparison_image(torch.rand(2, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_save_comparison(tmp_path: Path) -> None:
    path = save_comparison(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), tmp_path / "cmp.png", scale=2)
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == ((3 * 10 + 2) * 2, (2 * 10 + 2) * 2)


def test_plot_loss_curves(tmp_path: Path) -> None:
    history = {"mse": [1.0, 0.5, 0.25, 0.1], "lpips": [0.8, 0.6, 0.5, 0.45]}
    path = plot_loss_curves(history, tmp_path / "loss.png")
    with Image.open(path) as img:
        img.load()
        assert img.width > 100 and img.height > 100
    per_sample = {"total": [[1.0, 2.0], [0.5, 1.5], [0.2, 0.9]], "reg": [[-0.1, 0.1], [0.0, 0.2], [0.1, float("nan")]]}
    path2 = plot_loss_curves(per_sample, tmp_path / "per_sample.png")
    with Image.open(path2) as img:
        img.load()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "per_sample.png"]
    with pytest.raises(InputError, match="nothing to plot"):
        plot_loss_curves({"mse": []}, tmp_path / "none.png")
    with pytest.raises(InputError, match="equal-length per-sample"):
        plot_loss_curves({"mse": [[1.0, 2.0], [1.0]]}, tmp_path / "ragged.png")


def test_save_gif(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(4, 3, 8, 8, generator=g) for _ in range(5)]
    path = save_video(frames, tmp_path / "anim.gif", fps=10, scale=2)
    with Image.open(path) as img:
        assert img.n_frames == 5
        assert img.size == ((2 * 10 + 2) * 2, (2 * 10 + 2) * 2)
        assert img.info.get("loop") == 0
        assert img.info.get("duration") == 100
    grey = [torch.full((1, 8, 8), i / 3) for i in range(4)]
    path = save_video(grey, tmp_path / "grey.gif", scale=1)
    with Image.open(path) as img:
        assert img.n_frames == 4 and img.size == (8, 8)
        img.seek(3)
        assert abs(np.asarray(img.convert("L")).mean() - 255) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.gif", "grey.gif"]


def test_save_video_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="no frames"):
        save_video([], tmp_path / "a.gif")
    with pytest.raises(InputError, match="same size"):
        save_video([torch.rand(1, 8, 8), torch.rand(1, 9, 8)], tmp_path / "a.gif")
    with pytest.raises(InputError, match="use a .gif"):
        save_video([torch.rand(1, 8, 8)], tmp_path / "a.avi")
    import ganinv.io as gio

    monkeypatch.setattr(gio, "_mp4_backend", lambda: None)
    with pytest.raises(InputError, match=r"MP4 needs imageio with an ffmpeg backend.*save as \.gif"):
        save_video([torch.rand(1, 8, 8)], tmp_path / "a.mp4")
    assert os.listdir(tmp_path) == []
