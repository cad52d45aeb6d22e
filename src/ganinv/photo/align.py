"""Framing a photo for a generator: FFHQ face alignment, centred square crop/pad, or no alignment.

Every function returns the framed square image and an :class:`Alignment` that records how to undo it
(:func:`ganinv.photo.paste.paste_back`).

Coordinates: pixel coordinates of the original photo, x to the right, y down, pixel ``(i, j)`` centred
on ``(i, j)`` (the convention of dlib and of the FFHQ alignment code). Inside the aligned square a
point is also given in *normalised* coordinates ``(s, t)`` in [0, 1]², ``(0, 0)`` being the top-left
corner of the square and aligned pixel ``(i, j)`` of an N × N image having its centre at
``((i + 0.5) / N, (j + 0.5) / N)``.

Images: PIL images, float tensors ``[C, H, W]`` in [0, 1], or uint8 arrays ``[H, W, 3]``. A tensor
input gives a tensor ``[3, N, N]`` in [0, 1] (computed on its 8-bit quantisation, as FFHQ's recipe works
on 8-bit images); anything else gives a PIL RGB image.

FFHQ alignment follows the recipe of NVlabs/ffhq-dataset (``recreate_aligned_images``), used by
pSp, e4e and PTI: an oriented square from the eyes and mouth, then shrink, crop, reflect-pad with a
blurred fade, a bilinear QUAD transform to ``transform_size`` and a Lanczos resize to the output size.
With five-point landmarks (MTCNN) the eye centres are the detector's eye points; FFHQ took the mean of
dlib's six eye-contour points. Both estimate the eye centre; no correction is applied between them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.ndimage
from PIL import Image

from ganinv.errors import InputError
from ganinv.photo._image import ImageLike, image_size, like, to_rgb_array, to_rgb_pil
from ganinv.photo.detect import Detector, Face, detect_faces
from ganinv.photo.errors import FaceTooSmallError, NoFaceError

KINDS = ("ffhq", "center-crop", "center-pad", "none")
_FORMAT = "ganinv.alignment/1"


@dataclass(frozen=True)
class Alignment:
    """How a square aligned image was cut out of a photo — everything needed to paste it back.

    Attributes:
        kind: ``"ffhq"``, ``"center-crop"``, ``"center-pad"`` or ``"none"``.
        quad: the aligned square's corners in original pixel coordinates, in the order top-left,
            bottom-left, bottom-right, top-right of the aligned image (PIL's QUAD order), i.e. the
            points with normalised coordinates (0, 0), (0, 1), (1, 1), (1, 0). For ``"ffhq"`` this is
            the quad actually sampled (after the shrink's rounding), within a pixel of :attr:`quad_nominal`.
        output_size: side N of the aligned image, pixels.
        original_size: ``(width, height)`` of the photo, pixels.
        quad_nominal: FFHQ's quad from the landmarks before any processing (``"ffhq"`` only).
        shrink: integer downsampling factor applied before cropping (1: none).
        crop_box: ``(left, top, right, bottom)`` cut from the (shrunk) photo, or None when not cropped;
            for ``"center-*"`` the square in original pixels (negative / beyond the photo when padding).
        pad: ``(left, top, right, bottom)`` padding added after the crop, pixels.
        transform_size: side of the intermediate QUAD-transform image (``"ffhq"`` only).
        landmarks: the landmarks used, original pixel coordinates (``"ffhq"`` only).
    """

    kind: str
    quad: tuple[tuple[float, float], ...]
    output_size: int
    original_size: tuple[int, int]
    quad_nominal: tuple[tuple[float, float], ...] | None = None
    shrink: int = 1
    crop_box: tuple[int, int, int, int] | None = None
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    transform_size: int | None = None
    landmarks: tuple[tuple[float, float], ...] | None = field(default=None)

    # ----- geometry -------------------------------------------------------------------------------------
    def homography(self) -> np.ndarray:
        """3 × 3 matrix H mapping normalised aligned coordinates ``(s, t, 1)`` to original pixels (homogeneous).

        For a parallelogram quad (every kind here) this is affine and equals PIL's bilinear QUAD mapping.
        """
        return homography_from_quad(np.asarray(self.quad, dtype=np.float64))

    def to_original(self, points: Any) -> np.ndarray:
        """Aligned pixel coordinates ``[K, 2]`` (of the N × N output) → original pixel coordinates ``[K, 2]``."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        st = (pts + 0.5) / self.output_size
        return _apply_h(self.homography(), st)

    def to_aligned(self, points: Any) -> np.ndarray:
        """Original pixel coordinates ``[K, 2]`` → aligned pixel coordinates ``[K, 2]`` of the N × N output."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        st = _apply_h(np.linalg.inv(self.homography()), pts)
        return st * self.output_size - 0.5

    @property
    def face_size(self) -> float:
        """Side of the aligned square in original pixels (mean of its two side lengths)."""
        q = np.asarray(self.quad, dtype=np.float64)
        return float((np.hypot(*(q[3] - q[0])) + np.hypot(*(q[1] - q[0]))) / 2)

    # ----- serialisation --------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The record as a JSON string (lossless for :meth:`from_json`)."""
        d = asdict(self)
        d["format"] = _FORMAT
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Alignment":
        """Parse :meth:`to_json`'s output; raises :class:`~ganinv.errors.InputError` on anything else."""
        try:
            d = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise InputError(f"alignment record is not valid JSON: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise InputError(f"not a ganinv alignment record (expected \"format\": \"{_FORMAT}\")")
        try:
            def pts(v: Any, n: int | None) -> tuple[tuple[float, float], ...] | None:
                if v is None:
                    return None
                out = tuple((float(p[0]), float(p[1])) for p in v)
                if (n is not None and len(out) != n) or not all(math.isfinite(c) for p in out for c in p):
                    raise ValueError("bad point list")
                return out

            rec = cls(
                kind=str(d["kind"]), quad=pts(d["quad"], 4) or (), output_size=int(d["output_size"]),
                original_size=(int(d["original_size"][0]), int(d["original_size"][1])),
                quad_nominal=pts(d.get("quad_nominal"), 4), shrink=int(d.get("shrink", 1)),
                crop_box=_ints4(d.get("crop_box")),
                pad=_ints4(d.get("pad", (0, 0, 0, 0))) or (0, 0, 0, 0),
                transform_size=None if d.get("transform_size") is None else int(d["transform_size"]),
                landmarks=pts(d.get("landmarks"), None))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"alignment record is malformed: {exc}") from exc
        if rec.kind not in KINDS or rec.output_size < 1 or min(rec.original_size) < 1:
            raise InputError("alignment record is malformed: bad kind, output_size, original_size or pad")
        return rec


def _ints4(v: Any) -> tuple[int, int, int, int] | None:
    if v is None:
        return None
    a, b, c, d = (int(x) for x in v)
    return a, b, c, d


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    ph = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ h.T
    return ph[:, :2] / ph[:, 2:3]


def homography_from_quad(quad: np.ndarray) -> np.ndarray:
    """The projective map sending the unit square's corners (0,0), (0,1), (1,1), (1,0) to ``quad`` ``[4, 2]``."""
    src = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for k, ((s, t), (x, y)) in enumerate(zip(src, quad)):
        a[2 * k] = [s, t, 1, 0, 0, 0, -s * x, -t * x]
        a[2 * k + 1] = [0, 0, 0, s, t, 1, -s * y, -t * y]
        b[2 * k], b[2 * k + 1] = x, y
    try:
        h = np.linalg.solve(a, b)
    except np.linalg.LinAlgError as exc:
        raise InputError(f"degenerate alignment quad {quad.tolist()}") from exc
    return np.append(h, 1.0).reshape(3, 3)


# ----- FFHQ ---------------------------------------------------------------------------------------------

def _landmark_array(face_or_landmarks: Face | Any) -> np.ndarray:
    if isinstance(face_or_landmarks, Face):
        lm = face_or_landmarks.landmarks68 or face_or_landmarks.landmarks
    else:
        lm = face_or_landmarks
    arr = np.asarray(lm, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] not in (5, 68):
        raise InputError(f"landmarks must be [5, 2] (eyes, nose, mouth corners) or dlib's [68, 2], "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("landmarks hold NaN or infinite values")
    return arr


def _eyes_mouth(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(eye_left, eye_right, mouth_left, mouth_right) from 5 or 68 landmarks."""
    if len(lm) == 68:
        return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[48], lm[54]
    return lm[0], lm[1], lm[3], lm[4]


def ffhq_quad(landmarks: Face | Any) -> np.ndarray:
    """FFHQ's oriented crop square ``[4, 2]`` (top-left, bottom-left, bottom-right, top-right; pixels).

    ``landmarks``: a :class:`Face`, five points ``[5, 2]`` in :data:`~ganinv.photo.detect.LANDMARK_NAMES`
    order, or dlib's 68 points ``[68, 2]``.
    """
    return _ffhq_quad(_landmark_array(landmarks))[0]


def _ffhq_quad(lm: np.ndarray) -> tuple[np.ndarray, float]:
    eye_left, eye_right, mouth_left, mouth_right = _eyes_mouth(lm)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    # x: the square's half-width axis, levelling the eyes and leaning on the eye→mouth direction.
    x = eye_to_eye - eye_to_mouth[::-1] * np.array([-1.0, 1.0])
    norm = float(np.hypot(*x))
    if not norm > 1e-9:
        raise InputError("landmarks are degenerate (eyes and mouth coincide); cannot align the face")
    x = x / norm * max(float(np.hypot(*eye_to_eye)) * 2.0, float(np.hypot(*eye_to_mouth)) * 1.8)
    y = x[::-1] * np.array([-1.0, 1.0])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x)) * 2


def _bbox(quad: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
            int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))


def align_face(image: ImageLike, face_or_landmarks: Face | Any | None, size: int, *,
               transform_size: int | None = None, enable_padding: bool = True,
               max_upscale: float | None = 4.0,
               detector: Detector | str | None = None) -> tuple[ImageLike, Alignment]:
    """Align a face the FFHQ way.

    Args:
        image: the photo (PIL, float tensor ``[C, H, W]`` in [0, 1], or uint8 array ``[H, W, 3]``).
        face_or_landmarks: a :class:`Face`, landmarks ``[5, 2]``/``[68, 2]`` in pixels, or None to detect
            faces and take the largest.
        size: output side N in pixels (the generator's resolution).
        transform_size: side of the intermediate QUAD transform (default 4 N; FFHQ used 4096 for 1024).
        enable_padding: reflect-pad (with FFHQ's blurred fade) where the square leaves the photo.
        max_upscale: raise :class:`FaceTooSmallError` when the face square is smaller than
            ``size / max_upscale`` pixels (None: never).
        detector: backend for ``face_or_landmarks=None``.

    Returns:
        ``(aligned, alignment)``: the N × N face (tensor ``[3, N, N]`` in [0, 1] for a tensor input, PIL RGB
        otherwise) and the :class:`Alignment` that undoes it.
    """
    size = _check_size(size)
    transform_size = 4 * size if transform_size is None else _check_size(transform_size, "transform_size")
    if face_or_landmarks is None:
        faces = detect_faces(image, detector)
        if not faces:
            raise NoFaceError("no face found in the photo. Frame it without a face detector instead: "
                              "--align center (largest centred square) or --align none")
        face_or_landmarks = faces[0]
    lm = _landmark_array(face_or_landmarks)
    img = to_rgb_pil(image)
    width, height = img.size
    quad, qsize = _ffhq_quad(lm)
    quad_nominal = quad.copy()
    if max_upscale is not None and qsize * max_upscale < size:
        raise FaceTooSmallError(
            f"the face is too small: its FFHQ square is {qsize:.0f} px across in the photo, but the output is "
            f"{size} px (×{size / qsize:.1f} upscaling, more than max_upscale = {max_upscale:g}). Use a larger "
            "photo of the face or a lower-resolution model, or allow it (max_upscale=None).")

    # Shrink: integer downsampling when the square is much larger than the output.
    shrink = int(np.floor(qsize / size * 0.5))
    scale_xy = np.array([1.0, 1.0])
    if shrink > 1:
        rsize = (int(np.rint(width / shrink)), int(np.rint(height / shrink)))
        img = img.resize(rsize, Image.LANCZOS)
        scale_xy = np.array([width / rsize[0], height / rsize[1]])
        quad = quad / shrink
        qsize = qsize / shrink
    else:
        shrink = 1

    # Crop to the square's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    b = _bbox(quad)
    crop = (max(b[0] - border, 0), max(b[1] - border, 0),
            min(b[2] + border, img.size[0]), min(b[3] + border, img.size[1]))
    crop_box: tuple[int, int, int, int] | None = None
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - np.array(crop[:2], dtype=np.float64)
        crop_box = crop
    offset = np.array(crop_box[:2] if crop_box else (0, 0), dtype=np.float64)

    # Pad: reflect where the square leaves the photo, blur the padding and fade it to the median colour.
    b = _bbox(quad)
    pad = (max(-b[0] + border, 0), max(-b[1] + border, 0), max(b[2] - img.size[0] + border, 0),
           max(b[3] - img.size[1] + border, 0))
    used_pad = (0, 0, 0, 0)
    if enable_padding and max(pad) > border - 4:
        p = np.maximum(np.array(pad), max(int(np.rint(qsize * 0.3)), 1))
        used_pad = (int(p[0]), int(p[1]), int(p[2]), int(p[3]))
        img = Image.fromarray(_fade_pad(np.asarray(img, dtype=np.float32), used_pad, qsize), "RGB")
        quad = quad + np.array(used_pad[:2], dtype=np.float64)

    # QUAD transform (bilinear, transform_size²), then Lanczos down to the output size.
    out = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR)
    if size != transform_size:
        out = out.resize((size, size), Image.LANCZOS)

    # The quad actually sampled, back in original pixel coordinates.
    in_shrunk = quad - np.array(used_pad[:2], dtype=np.float64) + offset
    quad_orig = (in_shrunk + 0.5) * scale_xy - 0.5
    alignment = Alignment(
        kind="ffhq", quad=_pts(quad_orig), output_size=size, original_size=(width, height),
        quad_nominal=_pts(quad_nominal), shrink=shrink, crop_box=crop_box, pad=used_pad,
        transform_size=transform_size, landmarks=_pts(lm))
    return like(out, image), alignment


def _fade_pad(arr: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """FFHQ's padding: reflect ``arr`` ``[H, W, 3]`` (0..255 floats) by ``pad`` (l, t, r, b, all > 0), blur
    the padding progressively (σ = 2 % of ``qsize``) and fade it towards the median colour; → uint8."""
    left, top, right, bottom = pad
    arr = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = arr.shape
    yy, xx = np.ogrid[:h, :w]
    # 0 inside the photo, rising to 1 at the outer edge of the padding (the larger of the x and y ramps).
    ramp_x = 1.0 - np.minimum(xx.astype(np.float32) / left, (w - 1 - xx).astype(np.float32) / right)
    ramp_y = 1.0 - np.minimum(yy.astype(np.float32) / top, (h - 1 - yy).astype(np.float32) / bottom)
    ramp = np.maximum(ramp_x, ramp_y)[:, :, None]
    sigma = qsize * 0.02
    blurred = scipy.ndimage.gaussian_filter(arr, [sigma, sigma, 0])
    arr = arr + (blurred - arr) * np.clip(ramp * 3.0 + 1.0, 0.0, 1.0)
    arr = arr + (np.median(arr, axis=(0, 1)) - arr) * np.clip(ramp, 0.0, 1.0)
    return np.uint8(np.clip(np.rint(arr), 0, 255))


def align_faces(image: ImageLike, size: int, *, detector: Detector | str | None = None,
                **options: Any) -> list[tuple[ImageLike, Alignment]]:
    """Every face in ``image``, largest first, each aligned as by :func:`align_face` (``options`` go there).

    Raises :class:`NoFaceError` when the detector finds none.
    """
    faces = detect_faces(image, detector)
    if not faces:
        raise NoFaceError("no face found in the photo. Frame it without a face detector instead: "
                          "--align center (largest centred square) or --align none")
    return [align_face(image, f, size, **options) for f in faces]


# ----- any domain ---------------------------------------------------------------------------------------

def align_center(image: ImageLike, size: int, mode: str = "crop", *,
                 fill: str | Sequence[int] = "edge") -> tuple[ImageLike, Alignment]:
    """Frame any photo as a centred square, resized (Lanczos) to ``size`` × ``size``.

    Args:
        image: PIL, float tensor ``[C, H, W]`` in [0, 1], or uint8 array ``[H, W, 3]``.
        size: output side N in pixels.
        mode: ``"crop"``: the largest centred square; ``"pad"``: the whole photo padded to a square.
        fill: padding for ``"pad"``: ``"edge"`` (repeat the border), ``"reflect"``, or an RGB triple 0..255.

    Returns:
        ``(aligned, alignment)`` as for :func:`align_face`.
    """
    size = _check_size(size)
    arr = to_rgb_array(image)
    height, width = arr.shape[:2]
    if mode == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        sq = arr[top:top + side, left:left + side]
        pad = (0, 0, 0, 0)
    elif mode == "pad":
        side = max(width, height)
        pl, pt = (side - width) // 2, (side - height) // 2
        pad = (pl, pt, side - width - pl, side - height - pt)
        left, top = -pl, -pt
        widths = ((pt, pad[3]), (pl, pad[2]), (0, 0))
        if isinstance(fill, str):
            if fill not in ("edge", "reflect"):
                raise InputError(f"fill must be 'edge', 'reflect' or an RGB triple, got {fill!r}")
            sq = np.pad(arr, widths, mode=fill)  # type: ignore[call-overload]
        else:
            colour = [int(c) for c in fill]
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise InputError(f"fill colour must be three integers 0..255, got {fill!r}")
            sq = np.stack([np.pad(arr[:, :, k], widths[:2], constant_values=colour[k]) for k in range(3)], axis=2)
    else:
        raise InputError(f"mode must be 'crop' or 'pad', got {mode!r}")
    out = Image.fromarray(np.ascontiguousarray(sq), "RGB")
    if side != size:
        out = out.resize((size, size), Image.LANCZOS)
    quad = _square_quad(left, top, side, side)
    alignment = Alignment(kind=f"center-{mode}", quad=quad, output_size=size, original_size=(width, height),
                          crop_box=(left, top, left + side, top + side), pad=pad)
    return like(out, image), alignment


def align_none(image: ImageLike, size: int) -> tuple[ImageLike, Alignment]:
    """No framing: the whole photo resized (Lanczos) to ``size`` × ``size`` (a non-square photo is stretched).

    ``image``: PIL, float tensor ``[C, H, W]`` in [0, 1], or uint8 array. Returns ``(aligned, alignment)``.
    """
    size = _check_size(size)
    width, height = image_size(image)
    img = to_rgb_pil(image)
    out = img.resize((size, size), Image.LANCZOS) if img.size != (size, size) else img.copy()
    alignment = Alignment(kind="none", quad=_square_quad(0, 0, width, height), output_size=size,
                          original_size=(width, height))
    return like(out, image), alignment


def _square_quad(left: float, top: float, w: float, h: float) -> tuple[tuple[float, float], ...]:
    """Corners (TL, BL, BR, TR) in pixel-centre coordinates of the pixel block [left, left + w) × [top, top + h)."""
    x0, y0, x1, y1 = left - 0.5, top - 0.5, left + w - 0.5, top + h - 0.5
    return ((x0, y0), (x0, y1), (x1, y1), (x1, y0))


def _pts(a: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in np.asarray(a, dtype=np.float64).reshape(-1, 2))


def _check_size(size: Any, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= int(size) <= 16384:
        raise InputError(f"{name} must be an integer number of pixels in 1..16384, got {size!r}")
    return int(size)


__all__ = ["Alignment", "KINDS", "align_center", "align_face", "align_faces", "align_none", "ffhq_quad",
           "homography_from_quad"]
