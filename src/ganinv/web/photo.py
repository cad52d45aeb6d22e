"""The Photo tab's work, without gradio: a photo → its framed faces → one inverted → edited → pasted back.

Framing, paste-back and colour matching are those of ``ganinv invert --align face|center --paste-back``
(:func:`ganinv.cli.invert.frame_photo`, :func:`~ganinv.cli.invert.paste_into_photo`); this module only keeps
what the page needs between clicks in a :class:`PhotoJob`. The :class:`~ganinv.web.backend.Workbench` methods
``read_photo``, ``detect_faces``, ``invert_face``, ``edit_and_paste`` and ``save_photo`` call these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from ganinv.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

    from ganinv.photo import Alignment
    from ganinv.web.backend import Code, InvertOutcome, Progress, Workbench

#: Framings of the Photo tab: FFHQ face alignment (face models) or the largest centred square (any model).
FRAMINGS = ("face", "center")
#: File name of the downloadable photo (the user's own file name is used for messages alone).
PASTED_NAME = "photo-edited.png"


@dataclass
class PhotoFace:
    """One framed face: ``target`` ``[1, C, N, N]`` in [0, 1] at the model's size, its :class:`Alignment` in the
    photo, the framing's note, and a display image ``[H, W, 3]`` uint8 for the gallery."""

    target: Tensor
    alignment: Alignment
    note: str
    preview: np.ndarray


@dataclass
class PhotoJob:
    """An uploaded photo (full size, 8-bit RGB) with its display name, framing and framed faces."""

    photo: Image.Image
    name: str
    framing: str = "face"
    faces: list[PhotoFace] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def face(self, index: int | None) -> PhotoFace:
        """Face ``index`` (0 = the largest), with one clear message when there is none."""
        if not self.faces:
            raise InputError("no face framed yet: press 'Find faces' first")
        if index is None:
            raise InputError("choose a face in the gallery first")
        index = int(index)
        if not 0 <= index < len(self.faces):
            raise InputError(f"face {index + 1} does not exist: the photo has {len(self.faces)} framed")
        return self.faces[index]


def read_photo(wb: Workbench, path: str | Path | None, shown: str = "the upload") -> PhotoJob:
    """The uploaded photo at ``path`` at its full size, after the Workbench's upload checks."""
    from ganinv.io import load_photo

    path = wb.check_upload(path, shown)
    try:
        photo, notes = load_photo(path)
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), shown)) from None
    return PhotoJob(photo, shown, notes=list(notes))


def detect_faces(wb: Workbench, job: PhotoJob | None, framing: str = "face") -> list[tuple[Tensor, Alignment]]:
    """Frame ``job``'s photo for ``wb``'s generator; fills ``job.faces`` (largest face first) and returns
    ``[(aligned face [1, C, N, N], Alignment)]``. ``framing``: ``face`` (MTCNN + FFHQ alignment) or ``center``
    (the largest centred square: photos without a face, models that do not make faces)."""
    from ganinv.cli.invert import _photo_tensor, check_square, frame_photo
    from ganinv.photo import NoFaceError
    from ganinv.web.backend import to_display

    if job is None:
        raise InputError("no photo yet: upload one first")
    if framing not in FRAMINGS:
        raise InputError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    check_square(wb.G)
    C, N = wb.G.channels, wb.G.resolution
    detector = wb.face_detector() if framing == "face" else None
    try:
        framed = frame_photo(job.photo, framing, N, detector)
    except NoFaceError:
        raise InputError(f"no face found in {job.name}: choose the 'center' framing (the largest centred "
                         "square) instead") from None
    job.framing = framing
    job.faces = []
    for aligned, alignment, note in framed:
        target = _photo_tensor(aligned, C).unsqueeze(0)
        job.faces.append(PhotoFace(target, alignment, note, to_display(target)))
    return [(f.target, f.alignment) for f in job.faces]


def invert_face(wb: Workbench, job: PhotoJob | None, index: int | None, *, method: str = "optimize",
                steps: int = 200, seed: int = 0, prior: float | None = None,
                progress: Progress | None = None) -> InvertOutcome:
    """Face ``index`` of ``job`` inverted by :meth:`Workbench.invert` (its ``code`` is what the edits move)."""
    if job is None:
        raise InputError("no photo yet: upload one first")
    face = job.face(index)
    if method not in wb.edit_methods:
        raise InputError(f"method {method!r} cannot be edited here; choose one of {', '.join(wb.edit_methods)}")
    stem = Path(job.name).stem or "photo"
    return wb.invert(face.target, method=method, steps=steps, seed=seed, prior=prior, progress=progress,
                     name=f"{stem}_face{int(index or 0)}")


def paste_face(job: PhotoJob | None, index: int | None, image: Tensor, *, color_match: bool = False) -> Image.Image:
    """``image`` (``[C, N, N]`` or ``[1, C, N, N]`` in [0, 1], the aligned size) pasted into ``job``'s photo where
    face ``index`` was cut from → the full photo (PIL RGB, the photo's own size)."""
    from ganinv.cli.invert import PasteSettings, paste_into_photo

    if job is None:
        raise InputError("no photo yet: upload one first")
    face = job.face(index)
    if image.dim() == 4:
        image = image[0]
    return paste_into_photo(job.name, [(image, face.alignment)], PasteSettings(color_match=bool(color_match)),
                            photo=job.photo)


def edit_and_paste(wb: Workbench, job: PhotoJob | None, index: int | None, code: Code | None, family: str | None,
                   k: int, strength: float, first: int = 0, last: int | None = None, *,
                   color_match: bool = False) -> Image.Image:
    """``code`` (face ``index`` inverted) moved by :meth:`Workbench.edited_code`, rendered and pasted back into
    the full photo → PIL RGB image at the photo's own size. Without a ``family`` (a generator with no edit
    directions) the reconstruction itself is pasted back."""
    if code is None:
        raise InputError("invert a face first (the edit moves its code)")
    edited = wb.edited_code(code, family, k, strength, first, last) if family else code
    return paste_face(job, index, wb.render_code(edited), color_match=color_match)


def save_photo(wb: Workbench, image: Image.Image | None) -> Path:
    """``image`` written as a PNG in a fresh job folder, for download."""
    from ganinv.cli.invert import save_pil

    if image is None:
        raise InputError("nothing to download yet: invert a face first")
    return save_pil(image, wb.new_job() / PASTED_NAME)


def describe_faces(job: PhotoJob) -> list[tuple[np.ndarray, str]]:
    """The gallery's items: each face's display image with a caption."""
    return [(f.preview, f"#{k + 1}: {f.note}") for k, f in enumerate(job.faces)]


def as_array(image: Any) -> np.ndarray:
    """A PIL image → ``[H, W, 3]`` uint8 array (what the page shows)."""
    return np.asarray(image.convert("RGB"))


__all__ = ["FRAMINGS", "PASTED_NAME", "PhotoFace", "PhotoJob", "as_array", "describe_faces", "detect_faces",
           "edit_and_paste", "invert_face", "paste_face", "read_photo", "save_photo"]
