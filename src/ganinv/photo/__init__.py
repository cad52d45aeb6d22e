"""Photos in, photos out: face detection, FFHQ-style alignment (or any-domain framing) and paste-back.

Typical use::

    from ganinv.photo import align_face, paste_back
    aligned, alignment = align_face(photo, None, 256)      # detect, take the largest face, align
    result = paste_back(photo, edited_aligned, alignment)  # back into the full photo

Images are PIL images, float tensors ``[C, H, W]`` in [0, 1], or uint8 arrays ``[H, W, 3]``; functions
return a tensor for a tensor input, a PIL RGB image otherwise. Coordinates are photo pixels, x right,
y down, pixel ``(i, j)`` centred on ``(i, j)``. The MTCNN detector's weights come from
``pip install --no-deps facenet-pytorch==2.6.0`` (or ``$GANINV_MTCNN_WEIGHTS``); see :mod:`ganinv.photo.mtcnn`.
"""

from ganinv.photo.align import Alignment, align_center, align_face, align_faces, align_none, ffhq_quad
from ganinv.photo.detect import LANDMARK_NAMES, Detector, Face, detect_faces, get_detector
from ganinv.photo.errors import DetectorWeightsError, FaceTooSmallError, MaskSizeError, NoFaceError
from ganinv.photo.paste import paste_back, paste_many

__all__ = ["Alignment", "Detector", "DetectorWeightsError", "Face", "FaceTooSmallError", "LANDMARK_NAMES",
           "MaskSizeError", "NoFaceError", "align_center", "align_face", "align_faces", "align_none", "detect_faces",
           "ffhq_quad", "get_detector", "paste_back", "paste_many"]
