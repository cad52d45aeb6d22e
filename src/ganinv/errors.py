"""Errors meant for people.

Every failure that a user can cause (a missing file, a corrupt checkpoint, an unknown
model name, a wrong image size) is raised as a :class:`GaninvError` subclass with a
message that says what went wrong and what to do. The CLI prints the message alone
(no traceback) and exits non-zero.
"""

from __future__ import annotations


class GaninvError(Exception):
    """Base class of all user-facing errors raised by ganinv."""


class CheckpointError(GaninvError):
    """A checkpoint file is missing, corrupt, foreign, unsafe or does not match."""


class UnknownModelError(GaninvError):
    """A model name is neither a bundled model nor a readable path."""


class InputError(GaninvError):
    """A user input (image, option, tensor) is invalid."""


class MissingWeightsError(GaninvError):
    """Pretrained weights that a component needs (e.g. LPIPS's backbone) are not on disk and cannot be fetched."""
