"""``ganinv invert-video`` / ``ganinv edit-video`` and :mod:`ganinv.video`: tiny videos made here with PyAV, the
bundled 32 px model (digits, ``--align center``) and a 32 px random-weight RGB StyleGAN2 (faces, ``--align face``)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_tiny_stylegan2

from ganinv.cli.app import app
from ganinv.io import load_npz
from ganinv.modelfile import save_pretrained
from ganinv.video.frames import decode_all
from ganinv.video.smooth import fill_gaps, gaussian_smooth, jitter, smooth_landmarks, smooth_latents

try:
    import av
except ImportError:  # the smoothing tests run without PyAV; the video tests need it
    av = None
needs_av = pytest.mark.skipif(av is None, reason="PyAV (pip install av) is not installed")

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ("--steps", 4, "--device", "cpu", "--threads", 1, "--init", "mean")

pytestmark = pytest.mark.usefixtures("offline_torch_home")


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(result) -> None:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert "Traceback" not in text and text.count("error:") == 1, result.output
    return " ".join(text.split())


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, rotation: int = 0) -> Path:
    """``frames`` encoded as stored; ``rotation``: the display-matrix angle a phone writes (ffprobe's "rotation")."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264" if _has("libx264") else "mpeg4", rate=Fraction(fps))
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    if rotation:
        stream.set_display_rotation(rotation)
    for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def _has(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def digit_video(tmp_path_factory) -> Path:
    """8 frames 48×40 at 10 fps: a digit sliding right by one pixel per frame."""
    digit = np.asarray(Image.open(EXAMPLES / "digit_3.png").convert("RGB").resize((40, 40)))
    frames = []
    for t in range(8):
        canvas = np.zeros((40, 48, 3), np.uint8)
        canvas[:, t:t + 40] = digit
        frames.append(canvas)
    return write_video(tmp_path_factory.mktemp("video") / "digits.mp4", frames)


@pytest.fixture(scope="module")
def inverted(digit_video, tmp_path_factory) -> Path:
    """``invert-video --align center --paste-back`` of the digit video on the bundled model."""
    out = tmp_path_factory.mktemp("inv") / "out"
    ok(run("invert-video", digit_video, "-o", out, "--align", "center", "--paste-back", "--batch-frames", 4,
           "--smooth", 1, *FAST))
    return out


# ----- smoothing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_landmark_smoothing_reduces_jitter(seed):
    """A face moving smoothly, detected with 1.5 px of per-frame noise: smoothing cuts the jitter by more than half
    and stays near the true path."""
    rng = np.random.default_rng(seed)
    T = 60
    t = np.arange(T)[:, None, None]
    base = np.array([[100, 120], [140, 120], [120, 140], [105, 160], [135, 160]], dtype=np.float64)[None]
    truth = base + np.concatenate([2.0 * t + 10 * np.sin(t / 9.0), 0.5 * t], axis=2)
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    smoothed = smooth_landmarks(noisy, 2.0)
    assert smoothed.shape == noisy.shape
    assert jitter(smoothed) < 0.5 * jitter(noisy)
    inner = slice(8, T - 8)
    assert np.abs(smoothed[inner] - truth[inner]).mean() < np.abs(noisy[inner] - truth[inner]).mean()


def test_smoothing_keeps_still_and_steady_tracks():
    still = np.tile(np.array([[3.0, 4.0]]), (10, 1))
    assert np.array_equal(gaussian_smooth(still, 3.0), still)
    line = np.arange(30, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])
    assert np.allclose(gaussian_smooth(line, 2.0)[10:20], line[10:20])
    assert jitter(line) == pytest.approx(0.0)
    assert np.array_equal(gaussian_smooth(line, 0), line)


def test_fill_gaps_interpolates_missing_frames():
    track = np.array([[0.0, 0.0], [np.nan, np.nan], [2.0, 4.0], [np.nan, np.nan]])
    assert np.allclose(fill_gaps(track), [[0, 0], [1, 2], [2, 4], [2, 4]])


def test_smooth_latents_is_temporal_only():
    import torch

    codes = torch.randn(12, 4, 8)
    assert smooth_latents(codes, 0) is codes
    out = smooth_latents(codes, 1.5)
    assert out.shape == codes.shape and out.dtype == codes.dtype
    assert torch.allclose(out.mean(0), codes.mean(0), atol=0.15)
    flat = torch.ones(5, 3).mul(0.7)
    assert torch.allclose(smooth_latents(flat, 2.0), flat)


# ----- invert-video -----------------------------------------------------------------------------------------

@needs_av
def test_invert_video_writes_videos_codes_and_summary(inverted, digit_video):
    recon = decode_all(inverted / "reconstruction.mp4")
    assert len(recon) == 8 and recon[0].shape == (32, 32, 3)
    pasted = decode_all(inverted / "reconstruction.pasted.mp4")
    assert len(pasted) == 8 and pasted[0].shape == (40, 48, 3)
    summary = json.loads((inverted / "summary.json").read_text())
    assert summary["complete"] and summary["num_frames"] == 8 and summary["fps"] == pytest.approx(10)
    assert [r["frame"] for r in summary["records"]] == list(range(8))
    assert all(r["psnr"] is not None and r["psnr"] > 10 for r in summary["records"])
    assert summary["files"]["pasted"] == "reconstruction.pasted.mp4"
    arrays = load_npz(inverted / "codes.npz")
    assert arrays["w"].shape == (8, 8, 128) and list(arrays["frame_index"]) == list(range(8))
    frame = load_npz(inverted / "frames" / "000003.npz")
    assert frame["w"].shape == (1, 8, 128) and int(frame["frame_index"]) == 3 and "frame_alignment_json" in frame
    assert (inverted / "aligned" / "000003.png").is_file()
    # a per-frame code is an ordinary ganinv latent file
    res = run("edit", inverted / "frames" / "000003.npz", "-d", "pca:0", "--strengths", "0,1", "-o",
              inverted.parent / "edit-one", "--device", "cpu")
    ok(res)


@needs_av
def test_resume_skips_finished_frames(digit_video, tmp_path, monkeypatch):
    import ganinv.inverters as inverters

    out = tmp_path / "out"
    real = inverters.invert
    calls: list[int] = []

    def interrupt_second_chunk(G, y, *a, **k):
        calls.append(y.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second chunk
        return real(G, y, *a, **k)

    monkeypatch.setattr(inverters, "invert", interrupt_second_chunk)
    args = ("invert-video", digit_video, "-o", out, "--align", "center", "--batch-frames", 3, *FAST)
    res = run(*args)
    assert res.exit_code == 130, res.output
    done = sorted((out / "frames").glob("*.npz"))
    assert [p.name for p in done] == ["000000.npz", "000001.npz", "000002.npz"]
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in done}
    assert not (out / "reconstruction.mp4").exists() and not list(out.glob(".*.tmp"))

    calls.clear()
    monkeypatch.setattr(inverters, "invert", lambda G, y, *a, **k: calls.append(y.shape[0]) or real(G, y, *a, **k))
    res = run(*args)
    ok(res)
    assert "resuming" in res.output and "skipped 3 frame(s)" in res.output
    assert calls == [3, 2]  # frames 3–5 and 6–7 only
    for p in done:
        assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p.name]
    assert len(decode_all(out / "reconstruction.mp4")) == 8
    # a third run has nothing left to invert
    calls.clear()
    ok(run(*args))
    assert calls == []


@needs_av
def test_other_settings_on_the_same_folder_are_refused(inverted, digit_video):
    before = {p: p.stat().st_mtime_ns for p in inverted.rglob("*") if p.is_file()}
    msg = one_error(run("invert-video", digit_video, "-o", inverted, "--align", "center", "--paste-back",
                        "--batch-frames", 4, "--every", 2, *FAST))
    assert "other settings" in msg and "--every: 1 there, 2 here" in msg
    assert {p: p.stat().st_mtime_ns for p in inverted.rglob("*") if p.is_file()} == before


@needs_av
def test_frame_selection_and_folder_of_frames(digit_video, tmp_path):
    out = tmp_path / "sel"
    ok(run("invert-video", digit_video, "-o", out, "--align", "none", "--every", 2, "--max-frames", 3, *FAST))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["frame"] for r in summary["records"]] == [0, 2, 4] and summary["fps"] == pytest.approx(5)
    assert len(decode_all(out / "reconstruction.mp4")) == 3
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(decode_all(digit_video)[:3]):
        Image.fromarray(f).save(folder / f"f{i}.png")
    out2 = tmp_path / "from-folder"
    ok(run("invert-video", folder, "-o", out2, "--align", "center", "--fps", 6, *FAST))
    assert len(decode_all(out2 / "reconstruction.mp4")) == 3
    assert json.loads((out2 / "summary.json").read_text())["fps"] == pytest.approx(6)


@needs_av
@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotated_phone_video_is_read_upright(tmp_path, rotation):
    """Phones store portrait video landscape with a display rotation (ffprobe: "rotation of -90.00 degrees" =
    turn a quarter clockwise to show it). Frames are read as shown, and the size recorded is the shown one."""
    from ganinv.video.frames import open_source

    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:8, :12] = 255  # a white block in the stored frame's top-left corner
    stored[24:, 36:, 0] = 200  # a red one in the bottom-right
    path = write_video(tmp_path / "phone.mp4", [stored] * 3, rotation=rotation)
    shown = np.rot90(stored, k=rotation // 90)  # what a player shows (ffmpeg's autorotate)
    src = open_source(path)
    assert (src.info.width, src.info.height) == (shown.shape[1], shown.shape[0])
    assert src.info.rotation == rotation % 360
    frames = decode_all(path)
    assert len(frames) == 3 and frames[0].shape == shown.shape
    assert np.abs(frames[0].astype(int) - shown.astype(int)).mean() < 8
    if rotation == -90:  # and through the command: pasted back into upright frames of the shown size
        out = tmp_path / "out"
        ok(run("invert-video", path, "-o", out, "--align", "center", "--paste-back", "--max-frames", 1, *FAST))
        assert decode_all(out / "reconstruction.pasted.mp4")[0].shape == (48, 32, 3)
        assert json.loads((out / "manifest.json").read_text())["source"]["rotation"] == 270


# ----- edit-video -------------------------------------------------------------------------------------------

@needs_av
def test_edit_video_strength_zero_reproduces_the_reconstruction(inverted):
    ok(run("edit-video", inverted, "-d", "pca:0", "--strength", 0, "-o", inverted, "--name", "zero",
           "--paste-back", "--device", "cpu"))
    assert np.array_equal(load_npz(inverted / "zero.npz")["w"], load_npz(inverted / "codes.npz")["w"])
    recon, edited = decode_all(inverted / "reconstruction.mp4"), decode_all(inverted / "zero.mp4")
    assert len(edited) == len(recon) == 8
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(recon, edited, strict=True)) <= 2
    assert len(decode_all(inverted / "zero.pasted.mp4")) == 8


@needs_av
def test_edit_video_ramp_changes_the_frames(inverted, tmp_path):
    out = tmp_path / "edit"
    ok(run("edit-video", inverted, "-d", "pca:0", "--strength", "0:3", "-o", out, "--device", "cpu"))
    arrays = load_npz(out / "edit.npz")
    assert np.allclose(arrays["strengths"], np.linspace(0, 3, 8))
    codes = load_npz(inverted / "codes.npz")["w"]
    assert np.allclose(arrays["w"][0], codes[0]) and not np.allclose(arrays["w"][-1], codes[-1])
    record = json.loads((out / "edit.json").read_text())
    assert record["strength"] == [0.0, 3.0] and record["num_frames"] == 8
    assert len(decode_all(out / "edit.mp4")) == 8


@needs_av
def test_edit_video_of_a_video_inverts_first(digit_video, tmp_path):
    out = tmp_path / "ev"
    ok(run("edit-video", digit_video, "-d", "pca:1", "--strength", 1, "-o", out, "--align", "center",
           "--max-frames", 3, *FAST))
    assert len(decode_all(out / "reconstruction.mp4")) == 3 and len(decode_all(out / "edit.mp4")) == 3


# ----- refusals ---------------------------------------------------------------------------------------------

@needs_av
def test_refusals(inverted, digit_video, tmp_path):
    msg = one_error(run("invert-video", tmp_path / "nope.mp4", "-o", tmp_path / "a", *FAST))
    assert "no such video" in msg
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    assert "not a video" in one_error(run("invert-video", fake, "-o", tmp_path / "b", "--align", "center", *FAST))
    msg = one_error(run("edit-video", inverted, "-d", "nonsense-direction.npy", "-o", tmp_path / "c",
                        "--device", "cpu"))
    assert "nonsense-direction.npy" in msg
    assert "--every" in one_error(run("edit-video", inverted, "-d", "pca:0", "-o", tmp_path / "d", "--every", 2))
    assert "--paste-back" in one_error(run("invert-video", digit_video, "-o", tmp_path / "e", "--align", "none",
                                           "--paste-back", *FAST))
    assert "--strength" in one_error(run("edit-video", inverted, "-d", "pca:0", "--strength", "a:b", "-o",
                                         tmp_path / "f"))
    for name in ("a", "b", "e"):
        assert not (tmp_path / name).exists()


@needs_av
def test_a_folder_from_another_model_is_refused(inverted, tmp_path):
    G = make_tiny_stylegan2(img_channels=3, resolution=32)
    model = save_pretrained(G, tmp_path / "tiny", name="tiny", kind="generator")
    msg = one_error(run("edit-video", inverted, "-d", "pca:0", "-o", tmp_path / "x", "--model", model,
                        "--device", "cpu"))
    assert "another model" in msg and "mnist-stylegan2" in msg


def test_the_class_of_a_conditional_model_is_recorded_and_bound_again(digit_video, tmp_path):
    from nvidia_pkl import write_nvidia_pkl
    from test_conditional import make_sg2

    pkl = write_nvidia_pkl(make_sg2(z_scale=0.1), tmp_path / "cond.pkl")
    out = tmp_path / "out"
    ok(run("invert-video", digit_video, "-o", out, "--model", pkl, "--class", 2, "--align", "center",
           "--max-frames", 2, *FAST))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["class"] == 2
    # resuming without --class names the missing option (not "other weights")
    msg = one_error(run("invert-video", digit_video, "-o", out, "--model", pkl, "--align", "center",
                        "--max-frames", 2, *FAST))
    assert "--class: 2 there, null here" in msg and "the model differs" not in msg
    # edit-video on the folder binds the recorded class: no --model, no --class needed
    ok(run("edit-video", out, "-d", "pca:0", "-o", out, "--strength", 0, "--device", "cpu"))
    assert (out / "edit.mp4").is_file()
    # another class is another model for these codes
    msg = one_error(run("edit-video", out, "-d", "pca:0", "-o", out, "--class", 1, "--device", "cpu"))
    assert "another model" in msg and "--class 2" in msg


def test_without_pyav_the_commands_say_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # import av → ImportError
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    msg = one_error(run("invert-video", video, "-o", tmp_path / "o", "--align", "center", *FAST))
    assert "PyAV" in msg and "pip install av" in msg
    assert not (tmp_path / "o").exists()


# ----- faces ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector():
    from ganinv.photo import get_detector
    from ganinv.photo.errors import DetectorWeightsError

    try:
        return get_detector("mtcnn")
    except DetectorWeightsError as exc:
        pytest.skip(f"MTCNN weights not installed: {str(exc).splitlines()[0]}")


@needs_av
def test_face_video_aligns_smoothly_and_pastes_back(detector, tmp_path):
    skdata = pytest.importorskip("skimage.data")
    photo = skdata.astronaut()
    frames = [photo[10 + t:250 + t, 60 + 4 * t:316 + 4 * t] for t in range(6)]  # a 256×240 pan
    video = write_video(tmp_path / "astro.mp4", frames)
    G = make_tiny_stylegan2(img_channels=3, resolution=32)
    model = save_pretrained(G, tmp_path / "tiny", name="tiny", kind="generator")
    out = tmp_path / "out"
    ok(run("invert-video", video, "-o", out, "--model", model, "--paste-back", "--batch-frames", 3, *FAST))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["framing"]["align"] == "face" and summary["frames_with_face"] == 6
    assert len(decode_all(out / "reconstruction.mp4")) == 6
    pasted = decode_all(out / "reconstruction.pasted.mp4")
    assert len(pasted) == 6 and pasted[0].shape == (240, 256, 3)
    track = json.loads((out / "track.json").read_text())
    raw = np.array([f["landmarks"] for f in track["frames"]], dtype=float)
    smoothed = np.array([f["smoothed"] for f in track["frames"]], dtype=float)
    # the camera pans 4 px right and 1 px down per frame: the face moves the other way
    assert np.allclose(np.diff(raw[:, :, 0].mean(1)), -4, atol=2.0)
    assert jitter(smoothed) <= jitter(raw) + 1e-9
    # eyes level in the alignment
    al = summary["records"][0]["alignment"]
    q = np.array(al["quad"])
    assert abs(np.degrees(np.arctan2(*(q[3] - q[0])[::-1]))) < 10
    # edit the face video
    ok(run("edit-video", out, "-d", "pca:0", "--strength", 2, "-o", out, "--paste-back", "--device", "cpu"))
    assert len(decode_all(out / "edit.pasted.mp4")) == 6


@needs_av
def test_a_video_without_a_face_is_one_clear_error(detector, digit_video, tmp_path):
    G = make_tiny_stylegan2(img_channels=3, resolution=32)
    model = save_pretrained(G, tmp_path / "tiny", name="tiny", kind="generator")
    msg = one_error(run("invert-video", digit_video, "-o", tmp_path / "o", "--model", model, *FAST))
    assert "no face" in msg and "--align center" in msg


def test_resuming_across_a_change_of_orientation_is_refused(tmp_path):
    """A run on a rotated video made before display rotations were read (no ``source.rotation``) read its
    frames as stored: resuming it now would mix orientations. An unrotated video resumes as before."""
    from ganinv.errors import InputError
    from ganinv.video.runner import FORMAT, MANIFEST, check_manifest

    def manifest(**source):
        return {"format": FORMAT, "source": {"kind": "video", "size_bytes": 10, "digest": "ab", **source}}

    for old, new, resumes in (({}, {"rotation": 0}, True), ({"rotation": 0}, {"rotation": 0}, True),
                              ({}, {"rotation": 90}, False), ({"rotation": 90}, {"rotation": 270}, False)):
        out = tmp_path / f"{old}-{new}".replace(" ", "")
        out.mkdir()
        (out / MANIFEST).write_text(json.dumps(manifest(**old)))
        before = (out / MANIFEST).read_bytes()
        if resumes:
            assert check_manifest(out, manifest(**new)) is True
        else:
            with pytest.raises(InputError, match="orientation differs") as exc:
                check_manifest(out, manifest(**new))
            assert f"{new['rotation']}° here" in str(exc.value)
            assert ("did not read display rotations" in str(exc.value)) == ("rotation" not in old)
        assert (out / MANIFEST).read_bytes() == before
