"""Fourier phase retrieval: only the magnitudes of an oversampled 2-D Fourier transform are observed.

deepinv's :class:`~deepinv.physics.RandomPhaseRetrieval` measures ``|B x|`` for a random complex
``B``; classic (crystallography, coherent diffraction) phase retrieval measures ``|F pad(x)|``
with ``F`` the discrete Fourier transform and ``pad`` zero padding that oversamples the spectrum.
That operator is built here as a deepinv :class:`~deepinv.physics.Physics`, so it plugs into
deepinv solvers and into :func:`ganinv.invert` alike.

Convention (shared with :func:`ganinv.physics.baselines.hio_phase_retrieval`): an image
``[B, C, H, W]`` is zero-padded at the bottom and right to ``[B, C, s·H, s·W]`` (``s`` the
oversampling factor) and the observation is ``|fft2(·, norm="ortho")|`` of that canvas, so
``‖y‖ = ‖x‖``. The trivial ambiguities remain: the 180° rotation of ``x`` within its support (the
"twin image") has the same magnitudes, so does every translation that keeps an object with empty
margins inside its support (a digit on a black background), and so does ``-x`` (excluded for
non-negative images). Score with :func:`ganinv.physics.baselines.align_flip` (``max_shift=None``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError


def fourier_magnitude(x: Tensor, oversampling: int = 2) -> Tensor:
    """``|fft2(pad(x))|`` (orthonormal DFT): ``[B, C, H, W]`` → ``[B, C, s·H, s·W]``, ≥ 0.

    The square root is smoothed at zero (``sqrt(|F|² + ε²)`` with ε = 1e-8) so gradients stay
    finite where a frequency vanishes.
    """
    h, w = x.shape[-2:]
    canvas = F.pad(x, (0, (oversampling - 1) * w, 0, (oversampling - 1) * h))
    spec = torch.fft.fft2(canvas, norm="ortho")
    return (spec.real.square() + spec.imag.square() + 1e-16).sqrt()


def _physics_base() -> type:
    import deepinv

    return deepinv.physics.Physics


def make_fourier_phase_retrieval(image_shape: tuple[int, int, int], oversampling: int = 2,
                                 noise_model: Any = None) -> Any:
    """A deepinv physics ``y = |fft2(pad(x))| + noise`` for images of ``image_shape`` ``(C, H, W)``.

    Args:
        image_shape: the clean images' ``(C, H, W)``.
        oversampling: integer canvas factor ``s`` ≥ 2 (``s = 2`` is the classical sampling bound
            for uniqueness up to the trivial ambiguities).
        noise_model: a deepinv noise model (default: none).
    Returns:
        an instance of a :class:`deepinv.physics.Physics` subclass with ``.A(x)`` the noiseless
        magnitudes ``[B, C, s·H, s·W]`` and ``.A_dagger(y)`` a Fienup hybrid input-output estimate.
    """
    if isinstance(oversampling, bool) or not isinstance(oversampling, int) or oversampling < 2:
        raise InputError(f"phase retrieval oversampling must be a whole number ≥ 2, got {oversampling!r}")
    Physics = _physics_base()

    class FourierPhaseRetrieval(Physics):  # type: ignore[misc, valid-type]
        """``y = |fft2(pad(x), norm="ortho")|`` with ``pad`` to ``oversampling`` × the image size."""

        def __init__(self) -> None:
            super().__init__(A=lambda x, **kw: fourier_magnitude(x, oversampling), noise_model=noise_model)
            self.oversampling = oversampling
            self.img_size = tuple(image_shape)

        def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:  # noqa: N802 (deepinv's name)
            from ganinv.physics.baselines import hio_phase_retrieval

            return hio_phase_retrieval(y, self.img_size, oversampling=self.oversampling)

    return FourierPhaseRetrieval()


__all__ = ["fourier_magnitude", "make_fourier_phase_retrieval"]
