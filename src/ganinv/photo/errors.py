"""Errors of the photo pipeline (detection, alignment, paste-back), all :class:`~ganinv.errors.GaninvError`."""

from __future__ import annotations

from ganinv.errors import InputError, MissingWeightsError


class NoFaceError(InputError):
    """The face detector found no face in a photo."""


class FaceTooSmallError(InputError):
    """A detected face is too small for the requested output resolution."""


class MaskSizeError(InputError):
    """A user mask does not have the size of the aligned image."""


class DetectorWeightsError(MissingWeightsError):
    """A face detector's weights are not installed or cannot be read."""
