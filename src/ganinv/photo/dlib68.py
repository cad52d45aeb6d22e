"""Optional backend: dlib's frontal face detector and 68-point shape predictor (the landmarks of FFHQ).

ganinv does not install dlib; this backend works only where ``import dlib`` does, with a predictor file
the user supplies (``shape_predictor_68_face_landmarks.dat``). Its :class:`~ganinv.photo.detect.Face`
carries all 68 points, so FFHQ alignment uses the exact recipe (eye centres = means of the six eye
contour points); its five landmarks are those eye means, the nose tip (30) and the mouth corners (48, 54).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganinv.errors import InputError
from ganinv.photo._image import ImageLike, to_rgb_array
from ganinv.photo.detect import Face
from ganinv.photo.errors import DetectorWeightsError


def dlib_available() -> bool:
    """Whether ``import dlib`` works here."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


def five_from_68(points: Any) -> tuple[tuple[float, float], ...]:
    """dlib's 68 points ``[68, 2]`` → the five landmarks (eye means, nose tip, mouth corners)."""
    pts = [(float(x), float(y)) for x, y in points]
    if len(pts) != 68:
        raise InputError(f"expected 68 landmarks, got {len(pts)}")

    def mean(a: int, b: int) -> tuple[float, float]:
        xs, ys = zip(*pts[a:b])
        return sum(xs) / len(xs), sum(ys) / len(ys)

    return mean(36, 42), mean(42, 48), pts[30], pts[48], pts[54]


class Dlib68Detector:
    """Face detector backed by dlib (HOG detector + 68-point predictor at ``predictor_path``)."""

    def __init__(self, predictor_path: str | Path, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise DetectorWeightsError("the dlib backend needs the dlib package, which is not installed "
                                       "(ganinv does not install it); use the default MTCNN detector") from exc
        path = Path(predictor_path).expanduser()
        if not path.is_file():
            raise DetectorWeightsError(f"dlib shape predictor {str(path)!r} not found "
                                       "(give the path of shape_predictor_68_face_landmarks.dat)")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.upsample = int(upsample)

    def detect(self, image: ImageLike) -> list[Face]:
        """Faces in ``image`` (PIL, tensor ``[C, H, W]`` in [0, 1], or uint8 array) with 68 landmarks each."""
        arr = to_rgb_array(image)
        faces = []
        for rect in self._detector(arr, self.upsample):
            shape = self._predictor(arr, rect)
            pts = tuple((float(p.x), float(p.y)) for p in shape.parts())
            faces.append(Face(box=(float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom())),
                              score=1.0, landmarks=five_from_68(pts), landmarks68=pts))
        return faces


__all__ = ["Dlib68Detector", "dlib_available", "five_from_68"]
