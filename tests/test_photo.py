"""Photo pipeline: MTCNN detection, FFHQ alignment, centred framing, paste-back (ganinv.photo)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

skdata = pytest.importorskip("skimage.data")

from ganinv.errors import GaninvError, InputError, MissingWeightsError  # noqa: E402
from ganinv.photo import (  # noqa: E402
    Alignment,
    Face,
    FaceTooSmallError,
    MaskSizeError,
    NoFaceError,
    align_center,
    align_face,
    align_none,
    detect_faces,
    ffhq_quad,
    paste_back,
    paste_many,
)
from ganinv.photo import mtcnn  # noqa: E402
from ganinv.photo.detect import get_detector  # noqa: E402
from ganinv.photo.dlib68 import dlib_available, five_from_68  # noqa: E402
from ganinv.photo.errors import DetectorWeightsError  # noqa: E402


@pytest.fixture(scope="module")
def detector():
    try:
        return get_detector("mtcnn")
    except DetectorWeightsError as exc:
        pytest.skip(f"MTCNN weights not installed ({mtcnn.PIP_COMMAND}): {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """The astronaut photo cut off-square (400 × 460), face well inside."""
    return Image.fromarray(skdata.astronaut()[20:480, 60:460])


@pytest.fixture(scope="module")
def astro_face(detector, astronaut) -> Face:
    faces = detect_faces(astronaut, detector)
    assert len(faces) == 1
    return faces[0]


class FixedDetector:
    """A Detector backend returning fixed faces (for tests that need no weights)."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


ASTRO_LANDMARKS = np.array([[144.3, 81.2], [186.4, 83.2], [164.1, 108.6], [141.0, 119.0], [184.9, 121.6]])


def _angle_deg(p, q) -> float:
    return math.degrees(math.atan2(q[1] - p[1], q[0] - p[0]))


def _inside(alignment: Alignment, shape, lo: float, hi: float) -> np.ndarray:
    """Boolean [H, W]: original pixels whose normalised aligned coordinates lie in [lo, hi]²."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    st = (alignment.to_aligned(np.stack([xs.ravel(), ys.ravel()], 1)) + 0.5) / alignment.output_size
    return ((st >= lo) & (st <= hi)).all(1).reshape(h, w)


# ----- detection --------------------------------------------------------------------------------------

def test_weights_load_safely_into_our_networks(detector):
    folder = mtcnn.find_weights()
    for name, net in (("pnet", mtcnn.PNet()), ("rnet", mtcnn.RNet()), ("onet", mtcnn.ONet())):
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        assert net.load_state_dict(state, strict=True).missing_keys == []
    reg, marks, prob = detector.onet(torch.zeros(2, 3, 48, 48))
    assert reg.shape == (2, 4) and marks.shape == (2, 10) and prob.shape == (2,)


def test_astronaut_one_face_with_sane_landmarks(astro_face):
    f = astro_face
    assert f.score > 0.95
    x0, y0, x1, y1 = f.box
    assert 60 < x1 - x0 < 140 and 60 < y1 - y0 < 160
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = f.landmarks
    assert all(x0 - 5 <= x <= x1 + 5 and y0 - 5 <= y <= y1 + 5 for x, y in f.landmarks)
    assert lx < nx < rx and mlx < mrx  # left/right as seen in the image
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above nose above mouth
    assert np.abs(np.array(f.landmarks) - ASTRO_LANDMARKS).max() < 3  # the cascade is deterministic


def test_aligned_face_has_level_eyes(detector, astronaut, astro_face):
    aligned, al = align_face(astronaut, astro_face, 256)
    assert isinstance(aligned, Image.Image) and aligned.size == (256, 256)
    assert al.kind == "ffhq" and al.original_size == astronaut.size
    eyes = al.to_aligned(np.array(astro_face.landmarks[:2]))
    assert abs(_angle_deg(eyes[0], eyes[1])) < 3
    # FFHQ framing: eyes a quarter of the width apart, centred, a little above the middle.
    assert 0.2 < (eyes[1, 0] - eyes[0, 0]) / 256 < 0.3
    assert abs((eyes[0, 0] + eyes[1, 0]) / 2 - 128) < 8 and 0.4 < eyes[:, 1].mean() / 256 < 0.55
    # Detecting again on the aligned image agrees.
    again = detect_faces(aligned, detector)
    assert len(again) == 1
    l2, r2 = again[0].landmarks[:2]
    assert abs(_angle_deg(l2, r2)) < 3
    assert np.abs(np.array([l2, r2]) - eyes).max() < 4


def test_photo_without_face_gives_clear_error_and_center_works(detector):
    coffee = skdata.coffee()
    assert detect_faces(coffee, detector) == []
    with pytest.raises(NoFaceError, match="--align center") as info:
        align_face(coffee, None, 256, detector=detector)
    assert isinstance(info.value, InputError) and isinstance(info.value, GaninvError)
    for mode in ("crop", "pad"):
        framed, al = align_center(coffee, 256, mode)
        assert framed.size == (256, 256) and al.kind == f"center-{mode}"


# ----- FFHQ geometry (no weights needed) ---------------------------------------------------------------

def test_ffhq_quad_by_hand():
    # Eyes (40, 50), (60, 50); mouth corners (42, 70), (58, 70): eye_to_eye (20, 0), eye_to_mouth (0, 20),
    # x = (20, 0) − (−20, 0) → unit (1, 0) × max(2·20, 1.8·20) = (40, 0); y = (0, 40); c = (50, 50) + (0, 2).
    lm5 = [(40, 50), (60, 50), (50, 60), (42, 70), (58, 70)]
    np.testing.assert_allclose(ffhq_quad(lm5), [[10, 12], [10, 92], [90, 92], [90, 12]])
    lm68 = np.zeros((68, 2))
    lm68[36:42] = [(38, 50), (42, 49), (41, 51), (39, 50), (40, 49), (40, 51)]  # mean (40, 50)
    lm68[42:48] = (60, 50)
    lm68[48], lm68[54] = (42, 70), (58, 70)
    np.testing.assert_allclose(ffhq_quad(lm68), ffhq_quad(lm5))
    np.testing.assert_allclose(five_from_68(lm68)[0], (40, 50))
    with pytest.raises(InputError, match=r"\[5, 2\]"):
        ffhq_quad([(1, 2), (3, 4)])


def test_alignment_quad_maps_corners_and_pixel_centres(astronaut):
    _, al = align_face(astronaut, ASTRO_LANDMARKS, 128)
    np.testing.assert_allclose(al.quad, al.quad_nominal, atol=1e-9)  # no shrink: exactly FFHQ's quad
    np.testing.assert_allclose(al.to_original([[-0.5, -0.5], [127.5, 127.5]]), [al.quad[0], al.quad[2]], atol=1e-9)
    pts = np.array([[10.0, 20.0], [100.0, 50.0]])
    np.testing.assert_allclose(al.to_original(al.to_aligned(pts)), pts, atol=1e-9)


def test_identity_round_trip(astronaut):
    aligned, al = align_face(astronaut, ASTRO_LANDMARKS, 256)
    back = paste_back(astronaut, aligned, al, feather=0.0)
    a, b = np.asarray(astronaut).astype(int), np.asarray(back).astype(int)
    diff = np.abs(a - b).max(axis=2)
    inner = _inside(al, diff.shape, 0.05, 0.95)
    assert inner.sum() > 10_000
    # Within the quad only resampling remains (the 171 px face is aligned at 256 px and warped back).
    assert np.median(diff[inner]) <= 2 and diff[inner].mean() < 3 and np.percentile(diff[inner], 99) <= 12
    assert np.array_equal(a[~_inside(al, diff.shape, -0.01, 1.01)], b[~_inside(al, diff.shape, -0.01, 1.01)])


def test_center_round_trip_at_native_size_is_exact():
    coffee = Image.fromarray(skdata.coffee())  # 600 × 400
    framed, al = align_center(coffee, 400, "crop")
    assert np.array_equal(np.asarray(framed), np.asarray(coffee)[:, 100:500])
    assert np.array_equal(np.asarray(paste_back(coffee, framed, al, feather=0.0)), np.asarray(coffee))
    padded, alp = align_center(coffee, 600, "pad", fill=(0, 0, 0))
    assert np.array_equal(np.asarray(padded)[100:500], np.asarray(coffee)) and not np.asarray(padded)[:100].any()
    assert np.array_equal(np.asarray(paste_back(coffee, padded, alp, feather=0.0)), np.asarray(coffee))
    flat, aln = align_none(coffee, 64)
    assert flat.size == (64, 64) and aln.kind == "none" and aln.original_size == (600, 400)


def test_pasting_a_different_image_changes_only_the_face_region(astronaut):
    aligned, al = align_face(astronaut, ASTRO_LANDMARKS, 256)
    other = Image.fromarray(255 - np.asarray(aligned))
    out = paste_back(astronaut, other, al)
    a, b = np.asarray(astronaut).astype(int), np.asarray(out).astype(int)
    centre = _inside(al, a.shape[:2], 0.3, 0.7)
    assert np.abs(a - b)[centre].mean() > 60
    far = ~_inside(al, a.shape[:2], -0.02, 1.02)
    assert far.sum() > 50_000 and np.array_equal(a[far], b[far])


def test_tensor_in_tensor_out(astronaut):
    t = torch.from_numpy(np.asarray(astronaut).copy()).permute(2, 0, 1).float() / 255
    aligned, al = align_face(t, ASTRO_LANDMARKS, 64)
    assert isinstance(aligned, torch.Tensor) and aligned.shape == (3, 64, 64)
    assert 0 <= aligned.min() <= aligned.max() <= 1
    t = t + 0.001  # not on the 8-bit grid: untouched pixels must come back bit-for-bit anyway
    out = paste_back(t, torch.zeros(3, 64, 64), al)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    far = torch.from_numpy(~_inside(al, t.shape[1:], -0.02, 1.02))
    assert torch.equal(out[:, far], t[:, far]) and not torch.equal(out, t)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        align_face(t * 255, ASTRO_LANDMARKS, 64)


def test_paste_many_faces_into_one_photo():
    photo = Image.fromarray(np.full((200, 400, 3), 128, np.uint8))
    left = [(60, 80), (100, 80), (80, 100), (65, 120), (95, 120)]
    right = [(x + 220, y) for x, y in left]
    detector = FixedDetector([Face((40, 60, 120, 140), 0.9, tuple(left)),
                              Face((240, 40, 340, 160), 0.99, tuple(right))])
    faces = detect_faces(photo, detector)
    assert [f.box[0] for f in faces] == [240, 40]  # largest first
    pastes = [(Image.new("RGB", (64, 64), (255, 0, 0)), align_face(photo, f, 64, max_upscale=None)[1]) for f in faces]
    out = np.asarray(paste_many(photo, pastes))
    assert tuple(out[100, 80]) == (255, 0, 0) and tuple(out[100, 300]) == (255, 0, 0)
    assert tuple(out[5, 200]) == (128, 128, 128) and tuple(out[195, 5]) == (128, 128, 128)


def test_color_match_pulls_colours_to_the_photo(astronaut):
    aligned, al = align_face(astronaut, ASTRO_LANDMARKS, 128)
    arr = np.asarray(aligned).astype(float)
    tinted = Image.fromarray(np.clip(arr * 0.6 + [80, 0, 40], 0, 255).astype(np.uint8))
    a = np.asarray(astronaut).astype(float)
    centre = _inside(al, a.shape[:2], 0.3, 0.7)
    plain = np.abs(np.asarray(paste_back(astronaut, tinted, al)) - a)[centre].mean()
    matched = np.abs(np.asarray(paste_back(astronaut, tinted, al, color_match=True)) - a)[centre].mean()
    assert matched < plain / 2


def test_user_mask_size_checked_and_used(astronaut):
    aligned, al = align_face(astronaut, ASTRO_LANDMARKS, 128)
    other = Image.new("RGB", (128, 128), (0, 255, 0))
    with pytest.raises(MaskSizeError, match="64×64 px but the aligned image is 128×128") as info:
        paste_back(astronaut, other, al, mask=np.ones((64, 64), np.float32))
    assert isinstance(info.value, InputError)
    zero = paste_back(astronaut, other, al, mask=torch.zeros(128, 128))
    assert np.array_equal(np.asarray(zero), np.asarray(astronaut))
    half = np.zeros((128, 128), np.float32)
    half[:, 64:] = 1  # only the aligned image's right half
    out = np.asarray(paste_back(astronaut, other, al, mask=half, feather=0.0)).astype(int)
    r = al.to_original([[100, 64]])[0].round().astype(int)
    lft = al.to_original([[28, 64]])[0].round().astype(int)
    assert tuple(out[r[1], r[0]]) == (0, 255, 0)
    assert tuple(out[lft[1], lft[0]]) == tuple(np.asarray(astronaut)[lft[1], lft[0]])
    with pytest.raises(InputError, match="original is"):
        paste_back(Image.new("RGB", (10, 10)), other, al)


def test_alignment_json_round_trip(astronaut):
    for _, al in (align_face(astronaut, ASTRO_LANDMARKS, 64), align_center(astronaut, 32, "pad"),
                  align_none(astronaut, 16)):
        text = al.to_json()
        assert json.loads(text)["format"] == "ganinv.alignment/1"
        assert Alignment.from_json(text) == al
    for bad in ("{", "[]", json.dumps({"format": "x"}), text.replace('"kind": "none"', '"kind": "warp"'),
                text.replace('"quad": [', '"quad": [[1, 2], ')):
        with pytest.raises(InputError):
            Alignment.from_json(bad)


def test_face_too_small_error(astronaut):
    with pytest.raises(FaceTooSmallError, match=r"square is 16\d px across .* output is 1024 px"):
        align_face(astronaut, ASTRO_LANDMARKS, 1024)


def test_shrink_and_padding_paths(astronaut):
    corner = Image.fromarray(np.asarray(astronaut)[40:280, 110:340])
    aligned, al = align_face(corner, ASTRO_LANDMARKS - [110, 40], 32, transform_size=128)
    assert aligned.size == (32, 32) and al.shrink == 2 and min(al.pad) > 0
    np.testing.assert_allclose(al.quad, al.quad_nominal, atol=1.0)  # the shrink's rounding: under a pixel
    far = ~_inside(al, (240, 230), -0.02, 1.02)
    out = paste_back(corner, Image.new("RGB", (32, 32)), al)
    assert np.array_equal(np.asarray(out)[far], np.asarray(corner)[far])


# ----- weights and backends -----------------------------------------------------------------------------

def test_missing_weights_error_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv(mtcnn.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(DetectorWeightsError, match="lacks pnet.pt"):
        mtcnn.find_weights()
    monkeypatch.delenv(mtcnn.WEIGHTS_ENV)
    monkeypatch.setattr(mtcnn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DetectorWeightsError) as info:
        mtcnn.MTCNNDetector()
    assert "pip install --no-deps facenet-pytorch==2.6.0" in str(info.value) and "--align center" in str(info.value)
    assert isinstance(info.value, MissingWeightsError)


def test_weights_folder_argument(detector, tmp_path):
    for name in ("pnet.pt", "rnet.pt", "onet.pt"):
        (tmp_path / name).write_bytes((detector.weights_dir / name).read_bytes())
    assert mtcnn.find_weights(tmp_path) == tmp_path
    (tmp_path / "onet.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GaninvError, match="onet.pt"):
        mtcnn.MTCNNDetector(tmp_path)


@pytest.mark.skipif(not dlib_available() or not os.environ.get("GANINV_DLIB_PREDICTOR"),
                    reason="dlib is not installed or GANINV_DLIB_PREDICTOR (68-point predictor file) is not set")
def test_dlib_backend(astronaut):
    faces = detect_faces(astronaut, get_detector("dlib", predictor_path=os.environ["GANINV_DLIB_PREDICTOR"]))
    assert len(faces) == 1 and faces[0].landmarks68 is not None
    assert np.abs(np.array(faces[0].landmarks) - ASTRO_LANDMARKS)[[0, 1, 3, 4]].max() < 8
