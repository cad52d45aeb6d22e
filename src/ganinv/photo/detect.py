"""Face detection: a :class:`Face` record, the :class:`Detector` protocol and :func:`detect_faces`.

A backend is a module with a class that has ``detect(image) -> list[Face]``; two ship:

* ``"mtcnn"`` (:class:`ganinv.photo.mtcnn.MTCNNDetector`, the default): five landmarks; weights from an
  installed ``facenet-pytorch`` (``pip install --no-deps facenet-pytorch==2.6.0``) or a folder.
* ``"dlib"`` (:class:`ganinv.photo.dlib68.Dlib68Detector`): dlib's 68-point predictor, the landmarks FFHQ
  itself was aligned with; needs ``dlib`` importable and a user-given ``shape_predictor_68_face_landmarks.dat``.

Coordinates are pixel coordinates of the input image: x to the right, y down, pixel ``(i, j)`` centred
on ``(i, j)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ganinv.errors import InputError
from ganinv.photo._image import ImageLike

Point = tuple[float, float]

#: Names of the five landmarks, in the order of :attr:`Face.landmarks`. "left"/"right" are the image's sides.
LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in pixels of the photo.
        score: detector confidence in [0, 1].
        landmarks: five ``(x, y)`` points in pixels, in :data:`LANDMARK_NAMES` order (eye centres, nose tip,
            mouth corners).
        landmarks68: dlib's 68 points when the backend provides them (then used for FFHQ alignment), else None.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[Point, ...]
    landmarks68: tuple[Point, ...] | None = None

    @property
    def size(self) -> float:
        """The box's side: the geometric mean of its width and height, in pixels."""
        w, h = max(self.box[2] - self.box[0], 0.0), max(self.box[3] - self.box[1], 0.0)
        return float((w * h) ** 0.5)


@runtime_checkable
class Detector(Protocol):
    """A face-detection backend."""

    def detect(self, image: ImageLike) -> list[Face]:
        """Faces in ``image`` (PIL, float tensor ``[C, H, W]`` in [0, 1], or uint8 array ``[H, W, 3]``)."""
        ...


_DEFAULTS: dict[tuple[str, tuple[tuple[str, Any], ...]], Detector] = {}


def get_detector(name: str = "mtcnn", **options: Any) -> Detector:
    """The backend called ``name`` (``"mtcnn"`` or ``"dlib"``), built once per set of ``options`` and cached.

    ``options`` go to the backend's constructor (e.g. ``weights_dir=`` for MTCNN, ``predictor_path=`` for dlib).
    """
    key = (name, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _DEFAULTS:
        if name == "mtcnn":
            from ganinv.photo.mtcnn import MTCNNDetector

            _DEFAULTS[key] = MTCNNDetector(**options)
        elif name == "dlib":
            from ganinv.photo.dlib68 import Dlib68Detector

            _DEFAULTS[key] = Dlib68Detector(**options)
        else:
            raise InputError(f"unknown face detector {name!r}: use 'mtcnn' or 'dlib'")
    return _DEFAULTS[key]


def detect_faces(image: ImageLike, detector: Detector | str | None = None) -> list[Face]:
    """All faces in ``image``, largest first (ties: more confident first).

    Args:
        image: PIL image, float tensor ``[C, H, W]`` in [0, 1], or uint8 array ``[H, W, 3]``.
        detector: a :class:`Detector`, a backend name, or None for the default (MTCNN).

    Returns:
        A possibly empty list of :class:`Face`; finding nothing is not an error here
        (:func:`ganinv.photo.align.align_face` raises :class:`~ganinv.photo.errors.NoFaceError`).
    """
    det = get_detector(detector or "mtcnn") if detector is None or isinstance(detector, str) else detector
    faces = list(det.detect(image))
    return sorted(faces, key=lambda f: (-f.size, -f.score))


__all__ = ["Face", "Detector", "LANDMARK_NAMES", "detect_faces", "get_detector"]
