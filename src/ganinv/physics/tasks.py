"""Restoration tasks: a degradation ``y = A(x) + n`` with sensible defaults, built on deepinv physics.

Each builder validates its options (one clear :class:`~ganinv.errors.InputError` per mistake) and
returns a :class:`Task`: the deepinv physics object (``.A`` the noiseless operator, calling it adds
the noise), the options as given (JSON-able, enough to rebuild the same operator — the random
mask or measurement matrix is drawn from ``seed``), and helpers to simulate, score and show
observations.

========== =========================================== ===================================================
task       operator (deepinv)                          options (defaults)
========== =========================================== ===================================================
inpaint    ``Inpainting`` (mask · x)                   one of ``mask`` (file/array, 1 = observed), ``box``
                                                       ``(x, y, w, h)``, ``ratio`` (fraction of pixels kept,
                                                       random, seeded); default: a centred box of half size
sr         ``Downsampling`` (bicubic, edge padding)    ``factor`` 2, 4 (default) or 8
deblur     ``BlurFFT`` (circular convolution)          ``sigma`` of a Gaussian (1.5 px) or ``kernel`` file
denoise    ``Denoising``                               ``sigma`` of the Gaussian noise (0.2)
colorize   ``Decolorize`` (ITU-R 601 luma)             — (RGB models only)
cs         ``CompressedSensing`` (Gaussian, N(0, 1/m)) ``m`` measurements (100), ``seed`` of the matrix
phase      :mod:`ganinv.physics.phase` (ours)          ``oversampling`` 2
========== =========================================== ===================================================

Every task takes ``noise_sigma``: the std of additive Gaussian measurement noise (default 0, except
``deblur`` and ``cs``: 0.01, following Bora et al.'s noisy compressed sensing; ``denoise`` uses its
``sigma``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganinv.errors import InputError

TASK_NAMES = ("inpaint", "sr", "deblur", "denoise", "colorize", "cs", "phase")


@dataclass
class Task:
    """A degradation and what restoration needs to know about it.

    Attributes:
        name: one of :data:`TASK_NAMES` (or ``"custom"`` for a user's physics).
        physics: a deepinv physics object; ``physics.A(x)`` maps ``[B, C, H, W]`` in [0, 1] to
            observations ``[B, *observation_shape]`` without noise.
        image_shape: the clean images' ``(C, H, W)``.
        observation_shape: per-sample shape of ``y``.
        noise_sigma: std of the additive Gaussian noise that :meth:`simulate` adds.
        options: the options that rebuild this task with :func:`make_task` (JSON-able).
        mask: inpainting only: ``[1 or C, H, W]``, 1 where a pixel is observed.
    """

    name: str
    physics: Any
    image_shape: tuple[int, int, int]
    observation_shape: tuple[int, ...]
    noise_sigma: float
    options: dict[str, Any] = field(default_factory=dict)
    mask: Tensor | None = None

    @property
    def observation_is_image(self) -> bool:
        """True when ``y`` is an image ``[C', H', W']`` that can be saved as a PNG."""
        return len(self.observation_shape) == 3 and self.name != "phase"

    def to(self, device: torch.device | str) -> Task:
        """Move the operator (and mask) to ``device``; returns self."""
        if hasattr(self.physics, "to"):
            self.physics.to(device)
        if self.mask is not None:
            self.mask = self.mask.to(device)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """The noiseless operator ``A(x)`` as one tensor ``[B, *observation_shape]`` (differentiable)."""
        from ganinv.inverters.optimize import _operator

        return _operator(self.physics)(x)

    def simulate(self, x: Tensor, seed: int = 0) -> Tensor:
        """Degrade clean images ``x`` ``[B, C, H, W]`` in [0, 1]: ``A(x) + σ·ε`` with ε seeded."""
        check_images(x, self.image_shape, "clean images")
        with torch.no_grad():
            y = self.forward(x)
            if self.noise_sigma > 0:
                gen = torch.Generator().manual_seed(int(seed))
                y = y + self.noise_sigma * torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
        return y

    def check_observation(self, y: Tensor) -> Tensor:
        """``y`` as ``[B, *observation_shape]`` float, or a clear error."""
        if not isinstance(y, Tensor) and hasattr(y, "x"):  # a deepinv TensorList
            from ganinv.inverters.optimize import as_observation

            y = as_observation(y)
        if not isinstance(y, Tensor):
            raise InputError(f"observation must be a tensor, got {type(y).__name__}")
        if y.dim() == len(self.observation_shape):
            y = y.unsqueeze(0)
        if tuple(y.shape[1:]) != tuple(self.observation_shape):
            raise InputError(f"task {self.name!r} expects observations of shape {list(self.observation_shape)} per "
                             f"image, got {list(y.shape[1:])}")
        if not torch.isfinite(y).all():
            raise InputError("observation contains NaN or Inf")
        return y.float()

    def data_fit(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean squared residual ``‖A(x) − y‖² / numel(y)`` per sample ``[B]``."""
        from ganinv.losses.pixel import mse

        with torch.no_grad():
            return mse(self.forward(x), y)

    def preview(self, y: Tensor) -> Tensor | None:
        """Observations as displayable images ``[B, C', H', W']`` in [0, 1], or None (cs).

        Inpainting shows missing pixels as mid-gray; phase retrieval shows the centred
        log-magnitude spectrum.
        """
        if self.name == "phase":
            mag = torch.fft.fftshift(y, dim=(-2, -1)).clamp_min(0)
            logm = torch.log1p(mag * 50)
            return logm / logm.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
        if not self.observation_is_image:
            return None
        if self.mask is not None:
            return torch.where(self.mask.bool(), y, torch.full_like(y, 0.5)).clamp(0, 1)
        return y.clamp(0, 1)

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items() if k != "mask")
        return f"{self.name}({opts})" if opts else self.name

    def to_json(self) -> str:
        return json.dumps({"task": self.name, "options": self.options})


def check_images(x: Tensor, image_shape: tuple[int, ...], what: str = "images") -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"{what} must be [B, {', '.join(map(str, image_shape))}], got {got}")


# ----- option validation -------------------------------------------------------------------------
def _number(name: str, value: Any, *, lo: float | None = None, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise InputError(f"{name} must be {'>' if lo_open else '≥'} {lo:g}, got {value:g}")
    return float(value)


def _whole(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"≥ {lo}"
        raise InputError(f"{name} must be {bound}, got {value}")
    return int(value)


def _noise_model(sigma: float) -> Any:
    import deepinv

    return deepinv.physics.GaussianNoise(sigma) if sigma > 0 else deepinv.physics.ZeroNoise()


def _load_array(path: str | Path, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    from ganinv.io import _open_image, load_npy

    if p.suffix.lower() == ".npy":
        arr = load_npy(p)  # header checked first: no pickles, no huge or truncated arrays
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"{what} file {p} must hold numbers, got dtype {arr.dtype}")
        return np.asarray(arr, dtype=np.float64)
    try:
        img, _ = _open_image(p)  # decompression bombs and corrupt files → InputError
    except InputError as exc:
        raise InputError(f"{what} file {p} is neither a .npy array nor an image Pillow can read ({exc})") from None
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


# ----- builders ------------------------------------------------------------------------------------
def inpaint(image_shape: tuple[int, int, int], *, mask: Tensor | np.ndarray | str | Path | None = None,
            box: tuple[int, int, int, int] | None = None, ratio: float | None = None, seed: int = 0,
            noise_sigma: float = 0.0) -> Task:
    """Inpainting: ``y = m ⊙ x``. Give one of ``mask`` (``[H, W]``, ``[1, H, W]`` or ``[C, H, W]``
    array or a .npy/image file; values > 0.5 are observed), ``box`` (``x, y, w, h`` in pixels: the
    missing rectangle) or ``ratio`` (fraction of pixels *kept*, drawn at random from ``seed``).
    Default: a centred missing box of half the image side."""
    import deepinv

    c, h, w = image_shape
    given = sum(v is not None for v in (mask, box, ratio))
    if given > 1:
        raise InputError("inpaint takes one of mask, box or ratio, not several")
    options: dict[str, Any] = {}
    if mask is not None:
        if isinstance(mask, str | Path):
            options["mask"] = str(mask)
            mask = _load_array(mask, "mask")
        arr = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        if arr.dim() == 2:
            arr = arr.unsqueeze(0)
        if arr.dim() != 3 or tuple(arr.shape[1:]) != (h, w) or arr.shape[0] not in (1, c):
            raise InputError(f"mask must be {h}×{w} pixels (the model's image size), got shape {list(arr.shape)}")
        if not torch.isfinite(arr).all():
            raise InputError("mask contains NaN or Inf")
        m = (arr > 0.5).float()
        options.setdefault("mask", "array")
    elif ratio is not None:
        ratio = _number("ratio", ratio)
        if not 0 < ratio <= 1:
            raise InputError(f"ratio (fraction of pixels kept) must be in (0, 1], got {ratio:g}")
        seed = _whole("seed", seed, 0, 2**63 - 1)
        gen = torch.Generator().manual_seed(seed)
        m = (torch.rand((1, h, w), generator=gen) < ratio).float()
        options.update(ratio=ratio, seed=seed)
    else:
        if box is None:
            box = (w // 4, h // 4, w // 2, h // 2)
        if len(box) != 4:
            raise InputError(f"box must be x,y,w,h (4 numbers), got {box!r}")
        bx, by, bw, bh = (_whole(f"box {n}", v, 0) for n, v in zip("xywh", box))
        if bw < 1 or bh < 1 or bx + bw > w or by + bh > h:
            raise InputError(f"box {bx},{by},{bw},{bh} (x,y,w,h) must lie inside the {w}×{h} image and be non-empty")
        m = torch.ones((1, h, w))
        m[:, by:by + bh, bx:bx + bw] = 0
        options["box"] = [bx, by, bw, bh]
    if m.sum() == 0:
        raise InputError("the mask observes no pixel at all")
    sigma = _number("noise_sigma", noise_sigma, lo=0)
    options["noise_sigma"] = sigma
    physics = deepinv.physics.Inpainting(img_size=(m.shape[0], h, w), mask=m, noise_model=_noise_model(sigma))
    return Task("inpaint", physics, (c, h, w), (c, h, w), sigma, options, mask=m)


def sr(image_shape: tuple[int, int, int], *, factor: int = 4, noise_sigma: float = 0.0) -> Task:
    """Super-resolution: ``y`` = bicubic-filtered ``factor``× downsampling (2, 4 or 8)."""
    import deepinv

    c, h, w = image_shape
    factor = _whole("factor", factor, 2)
    if factor not in (2, 4, 8):
        raise InputError(f"super-resolution factor must be 2, 4 or 8, got {factor}")
    if h % factor or w % factor:
        raise InputError(f"the image size {h}×{w} is not divisible by the factor {factor}")
    sigma = _number("noise_sigma", noise_sigma, lo=0)
    physics = deepinv.physics.Downsampling(img_size=(c, h, w), filter="bicubic", factor=factor, padding="replicate",
                                           noise_model=_noise_model(sigma))
    return Task("sr", physics, (c, h, w), (c, h // factor, w // factor), sigma,
                {"factor": factor, "noise_sigma": sigma})


def blur_kernel(sigma: float | None = None, kernel: Tensor | np.ndarray | str | Path | None = None,
                max_size: int | None = None) -> Tensor:
    """A normalised blur kernel ``[1, 1, k, k]``: Gaussian of std ``sigma`` px (deepinv's
    ``gaussian_blur``) or the given 2-D ``kernel`` (array or .npy/image file), scaled to sum 1."""

    if kernel is not None:
        arr = _load_array(kernel, "kernel") if isinstance(kernel, str | Path) else np.asarray(kernel, np.float64)
        arr = np.squeeze(arr)
        if arr.ndim != 2:
            raise InputError(f"a blur kernel must be a 2-D array, got shape {list(arr.shape)}")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise InputError("a blur kernel must hold finite, non-negative values")
        if arr.sum() <= 0:
            raise InputError("a blur kernel must have a positive sum")
        if max_size is not None and max(arr.shape) > max_size:
            raise InputError(f"the blur kernel ({arr.shape[0]}×{arr.shape[1]}) is larger than the image "
                             f"({max_size} px)")
        k = torch.as_tensor(arr / arr.sum(), dtype=torch.float32)
        return k.view(1, 1, *k.shape)
    sigma = _number("sigma", 1.5 if sigma is None else sigma, lo=0, lo_open=True)
    from deepinv.physics.functional.blur import gaussian_blur

    return gaussian_blur(sigma=(sigma, sigma)).float()


def deblur(image_shape: tuple[int, int, int], *, sigma: float | None = None,
           kernel: Tensor | np.ndarray | str | Path | None = None, noise_sigma: float = 0.01) -> Task:
    """Deblurring: ``y = k ∗ x`` (circular convolution), ``k`` Gaussian (``sigma`` px, default 1.5)
    or a user kernel (``kernel``)."""
    import deepinv

    c, h, w = image_shape
    if sigma is not None and kernel is not None:
        raise InputError("deblur takes either sigma (a Gaussian kernel) or kernel (a file), not both")
    k = blur_kernel(sigma, kernel, max_size=min(h, w))
    ns = _number("noise_sigma", noise_sigma, lo=0)
    physics = deepinv.physics.BlurFFT(img_size=(c, h, w), filter=k, noise_model=_noise_model(ns))
    options: dict[str, Any] = {"noise_sigma": ns}
    if kernel is not None:
        options["kernel"] = str(kernel) if isinstance(kernel, str | Path) else "array"
    else:
        options["sigma"] = 1.5 if sigma is None else float(sigma)
    task = Task("deblur", physics, (c, h, w), (c, h, w), ns, options)
    task.kernel = k  # type: ignore[attr-defined]
    return task


def denoise(image_shape: tuple[int, int, int], *, sigma: float = 0.2) -> Task:
    """Denoising: ``y = x + σ·ε`` (Gaussian, σ in [0, 1] image units)."""
    import deepinv

    c, h, w = image_shape
    sigma = _number("sigma", sigma, lo=0)
    physics = deepinv.physics.Denoising(noise_model=_noise_model(sigma))
    return Task("denoise", physics, (c, h, w), (c, h, w), sigma, {"sigma": sigma})


def colorize(image_shape: tuple[int, int, int], *, noise_sigma: float = 0.0) -> Task:
    """Colorization: ``y`` = the luma (ITU-R BT.601) of an RGB image."""
    import deepinv

    c, h, w = image_shape
    if c != 3:
        raise InputError(f"colorize needs an RGB model (3 channels); this model's images have {c} channel(s)")
    sigma = _number("noise_sigma", noise_sigma, lo=0)
    physics = deepinv.physics.Decolorize(channels=3, noise_model=_noise_model(sigma))
    return Task("colorize", physics, (c, h, w), (1, h, w), sigma, {"noise_sigma": sigma})


def cs(image_shape: tuple[int, int, int], *, m: int = 100, seed: int = 0, noise_sigma: float = 0.01) -> Task:
    """Compressed sensing: ``y = A·vec(x)`` with ``A`` ``[m, C·H·W]`` i.i.d. N(0, 1/m), drawn from ``seed``."""
    import deepinv

    c, h, w = image_shape
    n = c * h * w
    m = _whole("m (measurements)", m, 1)
    if m > n:
        raise InputError(f"m = {m} measurements is more than the {n} pixels of a {c}×{h}×{w} image")
    sigma = _number("noise_sigma", noise_sigma, lo=0)
    seed = _whole("seed", seed, 0, 2**63 - 1)
    gen = torch.Generator().manual_seed(seed)
    physics = deepinv.physics.CompressedSensing(m=m, img_size=(c, h, w), rng=gen, noise_model=_noise_model(sigma))
    return Task("cs", physics, (c, h, w), (m,), sigma, {"m": m, "seed": seed, "noise_sigma": sigma})


def phase(image_shape: tuple[int, int, int], *, oversampling: int = 2, noise_sigma: float = 0.0) -> Task:
    """Fourier phase retrieval: ``y = |fft2(pad(x))|`` (see :mod:`ganinv.physics.phase`)."""
    from ganinv.physics.phase import make_fourier_phase_retrieval

    c, h, w = image_shape
    sigma = _number("noise_sigma", noise_sigma, lo=0)
    physics = make_fourier_phase_retrieval((c, h, w), oversampling, noise_model=_noise_model(sigma))
    s = physics.oversampling
    return Task("phase", physics, (c, h, w), (c, s * h, s * w), sigma, {"oversampling": s, "noise_sigma": sigma})


BUILDERS: dict[str, Callable[..., Task]] = {"inpaint": inpaint, "sr": sr, "deblur": deblur, "denoise": denoise,
                                             "colorize": colorize, "cs": cs, "phase": phase}


def task_options(name: str) -> list[str]:
    """The option names task ``name`` accepts."""
    import inspect

    return [p for p in inspect.signature(BUILDERS[name]).parameters if p != "image_shape"]


def make_task(name: str, image_shape: tuple[int, int, int], **options: Any) -> Task:
    """Build task ``name`` (one of :data:`TASK_NAMES`) for images of ``image_shape``; options
    that are None take the task's default."""
    if name not in BUILDERS:
        raise InputError(f"unknown task {name!r}; available: {', '.join(TASK_NAMES)}")
    valid = task_options(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise InputError(f"task {name!r} does not take {', '.join(unknown)}; its options: {', '.join(valid)}")
    if len(image_shape) != 3:
        raise InputError(f"image_shape must be (C, H, W), got {image_shape!r}")
    return BUILDERS[name](tuple(int(v) for v in image_shape), **given)


def custom_task(physics: Any, image_shape: tuple[int, int, int], observation_shape: tuple[int, ...] | None = None,
                ) -> Task:
    """Wrap any deepinv physics (or callable ``A``) as a :class:`Task` (name ``"custom"``); the
    observation shape is probed with a zero image when not given."""
    from ganinv.inverters.optimize import _operator

    if observation_shape is None:
        with torch.no_grad():
            observation_shape = tuple(_operator(physics)(torch.zeros((1, *image_shape))).shape[1:])
    noise = getattr(getattr(physics, "noise_model", None), "sigma", 0.0)
    scalar = isinstance(noise, int | float) or (isinstance(noise, Tensor) and noise.numel() == 1)
    sigma = float(noise) if scalar else 0.0
    return Task("custom", physics, tuple(image_shape), tuple(observation_shape), sigma, {})


__all__ = ["BUILDERS", "TASK_NAMES", "Task", "blur_kernel", "colorize", "cs", "custom_task", "deblur", "denoise",
           "inpaint", "make_task", "phase", "sr", "task_options"]
