"""Smoothing over time: face landmarks (so that the aligned crop does not jitter) and latent codes.

A *track* is an array ``[T, ...]``: one row per selected frame, in order (e.g. landmarks ``[T, 5, 2]`` in pixels,
or codes ``[T, num_ws, w_dim]``). Frames where the detector found nothing are rows of NaN; :func:`fill_gaps`
interpolates them from their neighbours before smoothing.

The smoother is a Gaussian over frames (``sigma`` in frames; edges held, i.e. the first and last rows are
repeated outside the track), the filter STIT (Tzaban et al. 2022) uses on the alignment of every frame. Its
effect on independent per-frame noise of standard deviation ``s`` is a standard deviation of about
``s / sqrt(2·sqrt(pi)·sigma)`` (0.38 · s for ``sigma = 2``), while a steady motion passes through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ganinv.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

    from ganinv.photo import Face


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise InputError(f"a smoothing sigma must be a number of frames ≥ 0, got {sigma}")
    return sigma


def fill_gaps(track: np.ndarray) -> np.ndarray:
    """Rows of NaN (frames without a detection) replaced by linear interpolation in time between the nearest
    rows that have values; before the first and after the last such row, those rows are repeated.

    ``track``: ``[T, ...]`` floats, each row all-finite or all-NaN. Returns a new ``[T, ...]`` float64 array.
    Raises :class:`InputError` when no row has values.
    """
    arr = np.asarray(track, dtype=np.float64)
    flat = arr.reshape(arr.shape[0], -1)
    good = np.isfinite(flat).all(axis=1)
    if not good.any():
        raise InputError("no frame has values to interpolate from")
    if good.all():
        return arr.copy()
    t = np.arange(arr.shape[0])
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, t[good], flat[good, j])
    return out.reshape(arr.shape)


def gaussian_smooth(track: np.ndarray, sigma: float) -> np.ndarray:
    """A track ``[T, ...]`` smoothed over its first axis by a Gaussian of ``sigma`` frames (0: a copy).

    The ends are held (scipy's ``mode="nearest"``), so a still track stays exactly still and the smoothed track
    has the input's shape. Rows must be finite (see :func:`fill_gaps`). Returns float64.
    """
    import scipy.ndimage

    sigma = _check_sigma(sigma)
    arr = np.asarray(track, dtype=np.float64)
    if arr.shape[0] == 0:
        raise InputError("cannot smooth an empty track")
    if not np.isfinite(arr).all():
        raise InputError("the track holds NaN or infinite values; fill the gaps first")
    if sigma == 0 or arr.shape[0] == 1:
        return arr.copy()
    return scipy.ndimage.gaussian_filter1d(arr, sigma, axis=0, mode="nearest", truncate=4.0)


def smooth_latents(latents: Tensor, sigma: float) -> Tensor:
    """Codes ``[T, *shape]`` smoothed over time by a Gaussian of ``sigma`` frames (0: unchanged), same dtype and
    device. Averaging W / W+ codes of neighbouring frames stays in the space (it is linear)."""
    import torch

    sigma = _check_sigma(sigma)
    if sigma == 0 or latents.shape[0] < 2:
        return latents
    smoothed = gaussian_smooth(latents.detach().cpu().double().numpy(), sigma)
    return torch.from_numpy(smoothed).to(device=latents.device, dtype=latents.dtype)


def jitter(track: np.ndarray) -> float:
    """How much a track shakes: the root-mean-square of its second difference over time (frame-to-frame change of
    velocity), in the track's units (pixels for landmarks); 0 for a still or steadily moving track. NaN rows are
    left out. A track of fewer than 3 rows has jitter 0."""
    arr = np.asarray(track, dtype=np.float64)
    if arr.shape[0] < 3:
        return 0.0
    acc = (arr[2:] - 2 * arr[1:-1] + arr[:-2]).reshape(arr.shape[0] - 2, -1)
    acc = acc[np.isfinite(acc).all(axis=1)]
    return float(np.sqrt((acc ** 2).mean())) if acc.size else 0.0


def follow_face(faces_per_frame: list[list[Face]]) -> list[Face | None]:
    """One face per frame, followed through the video: in the first frame with a face, the largest (the list is
    largest first, as :func:`ganinv.photo.detect_faces` returns it); in each later frame, the face whose five
    landmarks lie nearest, on average, to the last chosen ones. Frames without faces give None."""
    chosen: list[Face | None] = []
    last: np.ndarray | None = None
    for faces in faces_per_frame:
        pick = choose_face(faces, last)
        if pick is not None:
            last = np.asarray(pick.landmarks, dtype=np.float64)[:5]
        chosen.append(pick)
    return chosen


def choose_face(faces: list[Face], last: np.ndarray | None) -> Face | None:
    """The face of ``faces`` (largest first) to follow: the first one when ``last`` (the previous frame's five
    landmarks ``[5, 2]``, pixels) is None, else the one whose landmarks lie nearest to ``last`` on average; None
    for no faces."""
    if not faces:
        return None
    if last is None:
        return faces[0]
    return min(faces, key=lambda f: float(np.linalg.norm(np.asarray(f.landmarks)[:5] - last, axis=1).mean()))


def landmark_track(faces: list[Face | None]) -> np.ndarray:
    """Five landmarks per frame ``[T, 5, 2]`` (pixels; NaN where the frame has no face)."""
    out = np.full((len(faces), 5, 2), np.nan)
    for t, f in enumerate(faces):
        if f is not None:
            out[t] = np.asarray(f.landmarks, dtype=np.float64)[:5]
    return out


def smooth_landmarks(track: np.ndarray, sigma: float) -> np.ndarray:
    """Landmarks ``[T, K, 2]`` with NaN rows (no face) → gaps filled, then smoothed over time (``sigma`` frames).
    Raises :class:`InputError` when no frame has a face."""
    try:
        filled = fill_gaps(track)
    except InputError:
        raise InputError("no face found in any frame of the video; frame it without the face detector instead: "
                         "--align center (the largest centred square) or --align none") from None
    return gaussian_smooth(filled, sigma)


def as_lists(track: Any) -> list[list[list[float]] | None]:
    """A ``[T, K, 2]`` track as JSON-ready nested lists (a NaN row → None)."""
    arr = np.asarray(track, dtype=np.float64)
    return [None if not np.isfinite(row).all() else [[round(float(x), 3), round(float(y), 3)] for x, y in row]
            for row in arr]


def from_lists(rows: list[Any], k: int = 5) -> np.ndarray:
    """The inverse of :func:`as_lists`: ``[T, k, 2]`` with NaN rows for None."""
    out = np.full((len(rows), k, 2), np.nan)
    for t, row in enumerate(rows):
        if row is not None:
            out[t] = np.asarray(row, dtype=np.float64).reshape(k, 2)
    return out


__all__ = ["as_lists", "choose_face", "fill_gaps", "follow_face", "from_lists", "gaussian_smooth", "jitter",
           "landmark_track", "smooth_landmarks", "smooth_latents"]
