"""Classical restoration baselines that the GAN prior is compared against.

Every function takes and returns float images ``[B, C, H, W]`` with values in [0, 1] (results are
clamped to [0, 1] unless a docstring says otherwise), works on the whole batch at once, is
deterministic (seeded where randomness is involved) and raises :class:`~ganinv.errors.InputError`
with one clear message for bad input. deepinv and scikit-learn are imported inside the functions
(``import deepinv`` takes seconds).

==========================  =====================================================================
task                        baseline
==========================  =====================================================================
super-resolution            :func:`bicubic_upsample`
inpainting                  :func:`masked_fill` (trivial), :func:`tv_inpaint` (total variation)
deblurring                  :func:`wiener_deconv` (Wiener–Hunt), :func:`tv_deconv` (total variation)
denoising                   the noisy input itself, :func:`tv_denoise`
colorization                :func:`gray_to_rgb`
compressed sensing          :class:`LassoDCT` (Lasso in an orthonormal 2-D DCT basis)
Fourier phase retrieval     :func:`hio_phase_retrieval` (Fienup HIO + error reduction)
==========================  =====================================================================

:func:`tv_reconstruct` is the generic TV solver behind :func:`tv_inpaint` / :func:`tv_deconv` and
works with any linear deepinv physics. :func:`tune` picks a regularisation weight on validation
images; :func:`align_flip` undoes the twin-image ambiguity of phase retrieval before scoring.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError

DEFAULT_LASSO_ALPHAS: tuple[float, ...] = tuple(float(a) for a in 10.0 ** np.arange(-4.0, 1.01, 0.5))
"""Log grid of Lasso weights λ (objective ``‖y − AΨᵀc‖² + λ‖c‖₁``) that :meth:`LassoDCT.fit_alpha` searches."""


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------

def _check_images(y: Any, name: str = "y") -> Tensor:
    if not isinstance(y, Tensor):
        raise InputError(f"{name} must be a torch.Tensor [B, C, H, W], got {type(y).__name__}")
    if y.dim() != 4:
        raise InputError(f"{name} must be a [B, C, H, W] image batch, got shape {list(y.shape)}")
    if not y.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got {y.dtype}")
    if y.numel() == 0:
        raise InputError(f"{name} is empty (shape {list(y.shape)})")
    return y.detach()


def _check_nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return value


def _check_physics(physics: Any) -> None:
    if not (callable(getattr(physics, "A", None)) and callable(getattr(physics, "A_adjoint", None))):
        raise InputError(f"physics must be a linear deepinv physics (with .A and .A_adjoint), "
                         f"got {type(physics).__name__}")


# ----------------------------------------------------------------------------------------------
# super-resolution, colorization
# ----------------------------------------------------------------------------------------------

def bicubic_upsample(y: Tensor, factor: int) -> Tensor:
    """Bicubic super-resolution baseline: ``[B, C, H, W]`` → ``[B, C, H·factor, W·factor]`` in [0, 1].

    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False)``, then
    clamped to [0, 1] (bicubic overshoots at edges).

    Raises:
        InputError: ``factor`` is not a whole number ≥ 1, or ``y`` is not a float ``[B, C, H, W]`` batch.
    """
    y = _check_images(y)
    factor = _check_count(factor, "the super-resolution factor", minimum=1)
    if factor == 1:
        return y.clamp(0, 1)
    out = F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False, antialias=False)
    return out.clamp(0, 1)


def gray_to_rgb(y: Tensor) -> Tensor:
    """Colorization baseline: a gray observation ``[B, 1, H, W]`` replicated to ``[B, 3, H, W]`` in [0, 1].

    Raises:
        InputError: ``y`` does not have exactly one channel.
    """
    y = _check_images(y)
    if y.shape[1] != 1:
        raise InputError(f"colorization takes a gray [B, 1, H, W] observation, got {y.shape[1]} channels")
    return y.clamp(0, 1).repeat(1, 3, 1, 1)


# ----------------------------------------------------------------------------------------------
# inpainting
# ----------------------------------------------------------------------------------------------

def _check_mask(mask: Any, y: Tensor) -> Tensor:
    if not isinstance(mask, Tensor):
        raise InputError(f"the inpainting mask must be a torch.Tensor, got {type(mask).__name__}")
    m = mask.detach()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[None]
    if m.dim() != 4 or m.shape[-2:] != y.shape[-2:] or m.shape[1] not in (1, y.shape[1]) \
            or m.shape[0] not in (1, y.shape[0]):
        raise InputError(f"the inpainting mask of shape {list(mask.shape)} does not fit observations of shape "
                         f"{list(y.shape)}; give [H, W], [C, H, W] or [B, C, H, W] with H, W = "
                         f"{y.shape[-2]}, {y.shape[-1]} (C and B may be 1)")
    m = m.to(device=y.device, dtype=y.dtype)
    if not bool(((m == 0) | (m == 1)).all()):
        raise InputError("the inpainting mask must hold only 0 (missing) and 1 (observed)")
    return m.expand_as(y)


def masked_fill(y: Tensor, mask: Tensor) -> Tensor:
    """Trivial inpainting baseline: observed pixels kept, missing ones set to the mean of the observed ones.

    Args:
        y: observation ``[B, C, H, W]`` (values at missing pixels are ignored).
        mask: 1 = observed, 0 = missing; ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]`` (C and B may be 1).
    Returns:
        ``[B, C, H, W]`` in [0, 1]; the fill value is the mean of the observed pixels of each image and
        channel (0 where an image channel has no observed pixel).
    Raises:
        InputError: a mask of the wrong shape or with values other than 0/1.
    """
    y = _check_images(y)
    m = _check_mask(mask, y)
    count = m.sum(dim=(2, 3), keepdim=True)
    mean = (y * m).sum(dim=(2, 3), keepdim=True) / count.clamp_min(1)
    return (y * m + (1 - m) * mean).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# total variation (deepinv)
# ----------------------------------------------------------------------------------------------

def tv_reconstruct(y: Tensor, physics: Any, lam: float, iters: int = 100, *, init: Tensor | None = None,
                   stepsize: float = 10.0, inner_iters: int = 10) -> Tensor:
    """TV-regularised reconstruction ``argmin_x ½‖A x − y‖² + lam·TV(x)`` for a linear deepinv physics.

    Douglas–Rachford splitting from :mod:`deepinv.optim` (``optim_builder(iteration="DRS",
    prior=TVPrior(), data_fidelity=L2())``): the data term's prox is exact for decomposable
    operators (``Inpainting``, ``BlurFFT``) and a conjugate-gradient solve otherwise; TV's prox is
    deepinv's :class:`~deepinv.models.TVDenoiser`, warm-started across outer iterations. All
    iteration counts are fixed (no early stop), so each image's result does not depend on the
    rest of the batch. TV is isotropic, per channel, summed over pixels (images in [0, 1]).

    Args:
        y: observation, ``[B, ...]`` in the physics' measurement shape.
        physics: a linear deepinv physics (``.A``, ``.A_adjoint``, ``.prox_l2``).
        lam: TV weight ≥ 0 (≈ 0.01 for noiseless inpainting, ≈ 0.1 for σ = 0.1 noise).
        iters: outer DRS iterations.
        init: start ``[B, C, H, W]``; default ``y`` when it has an image's shape, else ``Aᵀy``.
        stepsize: DRS step γ (the prox of ``γ·½‖Ax − y‖²`` and of ``γ·lam·TV``).
        inner_iters: TV-prox (primal–dual) iterations per outer iteration.
    Returns:
        ``[B, C, H, W]`` clamped to [0, 1].
    """
    if not isinstance(y, Tensor) or y.dim() < 2 or not y.is_floating_point():
        raise InputError("y must be a floating-point observation tensor [B, ...]")
    _check_physics(physics)
    lam = _check_nonneg(lam, "the TV weight lam")
    iters = _check_count(iters, "iters")
    inner_iters = _check_count(inner_iters, "inner_iters")
    stepsize = _check_positive(stepsize, "stepsize")

    from deepinv.optim import optim_builder
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import TVPrior

    y = y.detach()
    with torch.no_grad():
        if init is None:
            x_adj = physics.A_adjoint(y)
            init = y if y.shape == x_adj.shape else x_adj
        init = _check_images(init, "init")
        if lam == 0:
            lam = 1e-12  # deepinv's TV prox divides by the threshold
        solver = optim_builder(iteration="DRS", prior=TVPrior(def_crit=0.0, n_it_max=inner_iters),
                               data_fidelity=L2(), params_algo={"stepsize": stepsize, "lambda": lam},
                               max_iter=iters, early_stop=False)
        x = solver(y, physics, init=(init, init))
    return x.clamp(0, 1)


def tv_inpaint(y: Tensor, physics: Any, lam: float = 0.01, iters: int = 100) -> Tensor:
    """TV inpainting: :func:`tv_reconstruct` with a deepinv ``Inpainting`` physics, started from :func:`masked_fill`.

    Args:
        y: masked observation ``[B, C, H, W]`` (as ``physics(x)`` gives it).
        physics: ``deepinv.physics.Inpainting`` (its ``.mask`` is 1 at observed pixels).
        lam: TV weight ≥ 0; ≈ 0.01 suits noiseless observations of images in [0, 1].
        iters: DRS iterations (10 TV-prox iterations each).
    Returns:
        ``[B, C, H, W]`` in [0, 1].
    Raises:
        InputError: the physics has no ``mask`` fitting ``y``, or ``lam < 0``.
    """
    y = _check_images(y)
    mask = getattr(physics, "mask", None)
    if not isinstance(mask, Tensor):
        raise InputError(f"tv_inpaint needs a deepinv Inpainting physics (with a .mask), got {type(physics).__name__}")
    _check_nonneg(lam, "the TV weight lam")
    return tv_reconstruct(y, physics, lam, iters, init=masked_fill(y, mask))


def tv_deconv(y: Tensor, physics: Any, lam: float = 0.01, iters: int = 100) -> Tensor:
    """TV deconvolution: :func:`tv_reconstruct` with a deepinv ``Blur`` / ``BlurFFT`` physics.

    Args:
        y: blurred observation; ``[B, C, H, W]`` for ``BlurFFT`` and ``Blur(padding="circular" |
            "reflect" | "replicate")``, smaller for ``Blur(padding="valid")`` (deepinv's default).
        physics: the blur physics that produced ``y``.
        lam: TV weight ≥ 0 (≈ 0.002 noiseless, ≈ 0.02 at σ = 0.05 noise).
        iters: DRS iterations.
    Returns:
        ``[B, C, H, W]`` in [0, 1].
    """
    _check_nonneg(lam, "the TV weight lam")
    return tv_reconstruct(y, physics, lam, iters)


def tv_denoise(y: Tensor, lam: float = 0.1, iters: int = 200) -> Tensor:
    """TV denoising ``argmin_x ½‖x − y‖² + lam·TV(x)`` with deepinv's :class:`~deepinv.models.TVDenoiser`.

    A fresh denoiser per call (deepinv's warm-starts from its previous call otherwise) running exactly
    ``iters`` primal–dual iterations (no batch-wide early stop), so results are deterministic and
    per image.

    Args:
        y: noisy images ``[B, C, H, W]``.
        lam: TV weight ≥ 0 (≈ σ/2 for Gaussian noise of std σ on images in [0, 1]).
        iters: primal–dual iterations.
    Returns:
        ``[B, C, H, W]`` in [0, 1].
    """
    y = _check_images(y)
    lam = _check_nonneg(lam, "the TV weight lam")
    iters = _check_count(iters, "iters")
    if lam == 0:
        return y.clamp(0, 1)
    from deepinv.models import TVDenoiser

    with torch.no_grad():
        x = TVDenoiser(n_it_max=iters, crit=0.0)(y, ths=lam)
    return x.clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# deconvolution
# ----------------------------------------------------------------------------------------------

def wiener_deconv(y: Tensor, kernel: Tensor, balance: float = 0.01, prior: str = "laplacian") -> Tensor:
    """Wiener (–Hunt) deconvolution with deepinv's :class:`~deepinv.models.WienerDeconvolution`.

    Solves ``argmin_x ½‖k ⊛ x − y‖² + balance/2·‖L x‖²`` in closed form with FFTs (``L`` the
    discrete Laplacian for ``prior="laplacian"``, the identity for ``"flat"``). The blur is treated
    as circular (deepinv ``BlurFFT(img_size=(C, H, W), filter=kernel)``), so ``y`` must have the
    image's size (a ``BlurFFT`` or same-size padded ``Blur`` observation, not ``padding="valid"``).

    Args:
        y: blurred images ``[B, C, H, W]``.
        kernel: blur kernel ``[kh, kw]``, ``[1, 1, kh, kw]`` or ``[1, C, kh, kw]`` (centred, e.g. deepinv's
            ``gaussian_blur``), smaller than the image.
        balance: regularisation weight ≥ 0 (0 = inverse filter; ≈ 1e-3 noiseless, ≈ 0.05 at σ = 0.05).
        prior: ``"laplacian"`` (smoothness) or ``"flat"`` (Tikhonov).
    Returns:
        ``[B, C, H, W]`` in [0, 1].
    """
    y = _check_images(y)
    balance = _check_nonneg(balance, "the Wiener balance")
    if prior not in ("laplacian", "flat"):
        raise InputError(f"prior must be 'laplacian' or 'flat', got {prior!r}")
    if not isinstance(kernel, Tensor) or not kernel.is_floating_point():
        raise InputError("the blur kernel must be a floating-point torch.Tensor")
    k = kernel.detach()
    if k.dim() == 2:
        k = k[None, None]
    if k.dim() != 4 or k.shape[0] != 1 or k.shape[1] not in (1, y.shape[1]) or k.shape[2] > y.shape[2] \
            or k.shape[3] > y.shape[3]:
        raise InputError(f"the blur kernel of shape {list(kernel.shape)} does not fit images of shape "
                         f"{list(y.shape)}; give [kh, kw] or [1, C, kh, kw] no larger than the image")
    from deepinv.models import WienerDeconvolution
    from deepinv.physics import BlurFFT

    with torch.no_grad():
        physics = BlurFFT(img_size=tuple(y.shape[1:]), filter=k.to(device=y.device, dtype=y.dtype), device=y.device)
        x = WienerDeconvolution(lambda_reg=balance, prior=prior, device=y.device)(y, physics)
    return x.to(y.dtype).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# compressed sensing: Lasso in a DCT basis
# ----------------------------------------------------------------------------------------------

def dct_synthesis_matrix(A: Tensor | np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """``A·Ψᵀ`` as a float64 ``[m, n]`` array: ``A`` ``[m, C·H·W]`` composed with the inverse orthonormal 2-D DCT.

    ``Ψ`` is the per-channel 2-D DCT-II (``scipy.fft.dctn(·, axes=(-2, -1), norm="ortho")``) of an image
    ``(C, H, W)`` flattened C-major, so ``x = Ψᵀc = idctn(c)``. Since Ψ is orthogonal, row ``i`` of
    ``A·Ψᵀ`` is ``dctn`` of row ``i`` of ``A`` viewed as an image — the same numbers as applying
    ``idctn`` to the ``n`` identity basis vectors, at ``m`` transforms instead of ``n``.
    """
    from scipy.fft import dctn

    a = A.detach().cpu().double().numpy() if isinstance(A, Tensor) else np.asarray(A, dtype=np.float64)
    c, h, w = image_shape
    return dctn(a.reshape(a.shape[0], c, h, w), axes=(-2, -1), norm="ortho").reshape(a.shape[0], -1)


class LassoDCT:
    """Compressed-sensing baseline: Lasso on orthonormal 2-D DCT coefficients (Bora et al. 2017's baseline).

    For measurements ``y = A x + noise`` (``A`` ``[m, C·H·W]``, ``y`` ``[B, m]``) it solves, per image,

        ``ĉ = argmin_c ‖y − A Ψᵀ c‖² + λ‖c‖₁``,   ``x̂ = clamp(Ψᵀ ĉ, 0, 1)``

    with scikit-learn's coordinate-descent :class:`~sklearn.linear_model.Lasso` (``fit_intercept=False``,
    one independent Lasso per image; sklearn minimises ``1/(2m)·‖y − Xw‖² + α‖w‖₁``, so ``α = λ / (2m)``).
    Solutions are computed along the λ path — from the largest grid value down, each fit warm-started
    from the previous one, as ``sklearn.linear_model.lasso_path`` does — which converges far faster
    than cold starts at small λ (cold starts stop at ``max_iter`` with an unconverged, differently
    regularised iterate). ``λ`` is chosen on validation images by :meth:`fit_alpha` (or given as
    ``alpha``). ``A``'s rows are turned into the DCT domain once per call (:func:`dct_synthesis_matrix`).

    Attributes:
        alphas: the λ grid :meth:`fit_alpha` searches (ascending).
        alpha: the λ :meth:`reconstruct` uses (``None`` until fitted or given).
        table: after :meth:`fit_alpha`, ``{λ: mean per-pixel squared error on the validation images}``.
    """

    def __init__(self, alphas: Sequence[float] = DEFAULT_LASSO_ALPHAS, alpha: float | None = None,
                 max_iter: int = 2000, tol: float = 1e-4) -> None:
        grid = list(alphas) if isinstance(alphas, (list, tuple, np.ndarray)) else None
        if not grid:
            raise InputError("alphas must be a non-empty list of Lasso weights")
        self.alphas = sorted(_check_positive(a, "each Lasso weight in alphas") for a in grid)
        self.alpha = None if alpha is None else _check_positive(alpha, "the Lasso weight alpha")
        self.max_iter = _check_count(max_iter, "max_iter")
        self.tol = _check_positive(tol, "tol")
        self.table: dict[float, float] = {}

    @staticmethod
    def _check(A: Any, y: Any, image_shape: Any) -> tuple[Tensor, Tensor, tuple[int, int, int]]:
        if not isinstance(A, Tensor) or A.dim() != 2 or not A.is_floating_point():
            raise InputError(f"A must be a float [m, n] measurement matrix, got "
                             f"{list(A.shape) if isinstance(A, Tensor) else type(A).__name__}")
        shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size, np.ndarray)) else ()
        if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
            raise InputError(f"image_shape must be (C, H, W), got {image_shape!r}")
        n = shape[0] * shape[1] * shape[2]
        if A.shape[1] != n:
            raise InputError(f"A has {A.shape[1]} columns but images of shape {shape} have {n} pixels")
        if not isinstance(y, Tensor) or y.dim() != 2 or y.shape[1] != A.shape[0] or not y.is_floating_point():
            raise InputError(f"y must be [B, m] = [B, {A.shape[0]}] measurements, got "
                             f"{list(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
        return A.detach(), y.detach(), (int(shape[0]), int(shape[1]), int(shape[2]))

    def _path(self, design: np.ndarray, y: np.ndarray, lams: Sequence[float]) -> Iterator[tuple[float, np.ndarray]]:
        """Lasso coefficients ``[B, n]`` for each λ of ``lams`` (descending), warm-started along the path."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        m = design.shape[0]
        gram = design.T @ design
        model = Lasso(alpha=1.0, fit_intercept=False, precompute=gram, max_iter=self.max_iter, tol=self.tol,
                      warm_start=True, selection="cyclic")
        for lam in lams:
            model.set_params(alpha=lam / (2 * m))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(design, y.T)  # 2-D targets: one independent Lasso per image
            yield lam, np.asarray(model.coef_).reshape(y.shape[0], -1)

    def _images(self, coef: np.ndarray, shape: tuple[int, int, int], like: Tensor) -> Tensor:
        from scipy.fft import idctn

        x = idctn(coef.reshape(-1, *shape), axes=(-2, -1), norm="ortho")
        return torch.from_numpy(x).to(device=like.device, dtype=like.dtype).clamp(0, 1)

    def reconstruct(self, A: Tensor, y: Tensor, image_shape: Sequence[int], alpha: float | None = None) -> Tensor:
        """Images ``[B, C, H, W]`` in [0, 1] from measurements ``y`` ``[B, m]`` of ``A`` ``[m, C·H·W]``.

        ``alpha`` overrides the fitted / configured λ.

        Raises:
            InputError: shapes of ``A``, ``y``, ``image_shape`` disagree, or no λ is set.
        """
        A, y, shape = self._check(A, y, image_shape)
        lam = self.alpha if alpha is None else _check_positive(alpha, "the Lasso weight alpha")
        if lam is None:
            raise InputError("LassoDCT has no λ yet: call fit_alpha(A, x_val) first or pass alpha=")
        design = dct_synthesis_matrix(A, shape)
        path = [a for a in reversed(self.alphas) if a > lam] + [lam]
        coef = None
        for _, coef in self._path(design, y.cpu().double().numpy(), path):
            pass
        assert coef is not None
        return self._images(coef, shape, y)

    def fit_alpha(self, A: Tensor, x_val: Tensor, noise_sigma: float = 0.0, seed: int = 0) -> float:
        """Pick λ from :attr:`alphas` with the lowest per-pixel MSE on validation images; store and return it.

        Measurements ``y = A·vec(x_val) + noise_sigma·N(0, I)`` are simulated with a generator seeded
        by ``seed``; each λ reconstructs them (clamped to [0, 1]) and is scored by the mean squared
        error per pixel. :attr:`table` records λ → MSE; ties go to the smaller λ.

        Args:
            A: ``[m, C·H·W]`` measurement matrix.
            x_val: clean validation images ``[B, C, H, W]`` in [0, 1].
            noise_sigma: std of the Gaussian measurement noise to simulate (≥ 0).
            seed: seed of the simulated noise.
        """
        x_val = _check_images(x_val, "x_val")
        noise_sigma = _check_nonneg(noise_sigma, "noise_sigma")
        if not isinstance(A, Tensor) or A.dim() != 2:
            raise InputError("A must be a float [m, n] measurement matrix")
        flat = x_val.reshape(x_val.shape[0], -1).to(A.dtype).to(A.device)
        if flat.shape[1] != A.shape[1]:
            raise InputError(f"A has {A.shape[1]} columns but x_val images have {flat.shape[1]} pixels")
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(flat.shape[0], A.shape[0], generator=gen, dtype=torch.float64)
        y = (flat.double().cpu() @ A.detach().double().cpu().T + noise_sigma * noise).to(A.dtype)
        A, y, shape = self._check(A, y, tuple(x_val.shape[1:]))
        design = dct_synthesis_matrix(A, shape)
        y_np = y.double().numpy()
        ref = x_val.detach().double().cpu()
        table: dict[float, float] = {}
        for lam, coef in self._path(design, y_np, list(reversed(self.alphas))):
            table[lam] = float((self._images(coef, shape, ref) - ref).pow(2).mean())
        self.table = dict(sorted(table.items()))
        self.alpha = min(table, key=lambda a: (table[a], a))
        return self.alpha


# ----------------------------------------------------------------------------------------------
# Fourier phase retrieval
# ----------------------------------------------------------------------------------------------

def _magnitude(x: Tensor, oversampling: int) -> Tensor:
    h, w = x.shape[-2:]
    canvas = F.pad(x, (0, (oversampling - 1) * w, 0, (oversampling - 1) * h))
    return torch.fft.fft2(canvas, norm="ortho").abs()


def magnitude_residual(x: Tensor, magnitude: Tensor, oversampling: int = 2) -> Tensor:
    """Relative Fourier-magnitude misfit ``‖|fft2(pad(x))| − magnitude‖ / ‖magnitude‖`` per image, ``[B]`` ≥ 0.

    Same convention as :func:`hio_phase_retrieval` (bottom/right zero padding to ``s·H × s·W``,
    ``norm="ortho"``).
    """
    x = _check_images(x, "x")
    magnitude = _check_images(magnitude, "magnitude")
    oversampling = _check_count(oversampling, "oversampling", minimum=1)
    if magnitude.shape != (*x.shape[:2], oversampling * x.shape[2], oversampling * x.shape[3]):
        raise InputError(f"magnitude of shape {list(magnitude.shape)} does not match images of shape "
                         f"{list(x.shape)} at oversampling {oversampling}")
    diff = (_magnitude(x.double(), oversampling) - magnitude.double()).flatten(1).norm(dim=1)
    return (diff / magnitude.double().flatten(1).norm(dim=1).clamp_min(1e-12)).to(x.dtype)


def hio_phase_retrieval(magnitude: Tensor, image_shape: Sequence[int], oversampling: int = 2, iters: int = 500,
                        beta: float = 0.9, seed: int = 0, restarts: int = 4, er_iters: int = 100) -> Tensor:
    """Fourier phase retrieval by Fienup's hybrid input-output (HIO) followed by error reduction (ER).

    Convention: an image ``x`` ``[B, C, H, W]`` is zero-padded at the bottom and right to the canvas
    ``[B, C, s·H, s·W]`` (``s`` = ``oversampling``) and observed as ``magnitude = |fft2(canvas,
    norm="ortho")|`` (``torch.fft.fft2``) — see :func:`ganinv.physics.phase.fourier_magnitude`.

    Object-domain constraints: support = the top-left ``H × W`` block of the canvas, and
    non-negativity. Each restart starts from uniform random values in the support (scaled to the
    energy ``‖magnitude‖²``, Parseval), runs ``iters`` HIO steps (``g ← g′`` where ``g′`` meets the
    constraints, ``g − beta·g′`` elsewhere, with ``g′`` the Fourier-magnitude projection of ``g``),
    then ``er_iters`` ER steps (``g ← g′`` inside, 0 outside). Channels are independent problems.
    Per image, the restart with the lowest :func:`magnitude_residual` is returned. Computed in
    float64; restarts run batched.

    The solution is unique only up to the twin image (the 180° rotation within the support) and, for
    objects with empty margins, shifts within the support: score with :func:`align_flip`.

    Args:
        magnitude: ``[B, C, s·H, s·W]``; noisy values below 0 are treated as 0 (NaN/Inf are refused).
        image_shape: ``(C, H, W)`` or ``(H, W)`` of the images.
        oversampling: integer ``s`` ≥ 2.
        iters: HIO iterations (≥ 0); er_iters: ER iterations after them (≥ 0).
        beta: HIO feedback in (0, 1].
        seed: seed of the random starts; restarts: number of random starts (≥ 1).
    Returns:
        ``[B, C, H, W]`` in [0, 1].
    """
    magnitude = _check_images(magnitude, "magnitude")
    oversampling = _check_count(oversampling, "oversampling", minimum=2)
    iters = _check_count(iters, "iters", minimum=0)
    er_iters = _check_count(er_iters, "er_iters", minimum=0)
    restarts = _check_count(restarts, "restarts", minimum=1)
    beta = _check_positive(beta, "beta")
    if beta > 1:
        raise InputError(f"beta must be in (0, 1], got {beta}")
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size, np.ndarray)) else ()
    if len(shape) not in (2, 3) or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise InputError(f"image_shape must be (C, H, W) or (H, W), got {image_shape!r}")
    h, w = int(shape[-2]), int(shape[-1])
    b, c, sh, sw = magnitude.shape
    if (sh, sw) != (oversampling * h, oversampling * w) or (len(shape) == 3 and shape[0] != c):
        raise InputError(f"magnitude of shape {list(magnitude.shape)} does not match images {shape} at "
                         f"oversampling {oversampling}: expected [B, C, {oversampling * h}, {oversampling * w}]")
    if not bool(torch.isfinite(magnitude).all()):
        raise InputError("Fourier magnitudes contain NaN or Inf")
    # noisy measurements of a magnitude can dip below 0; the nearest valid magnitude is 0
    mag = magnitude.double().clamp_min(0).repeat(restarts, 1, 1, 1)  # [R·B, C, sH, sW], restart-major
    support = torch.zeros(sh, sw, dtype=torch.bool, device=mag.device)
    support[:h, :w] = True
    gen = torch.Generator().manual_seed(int(seed))
    g = torch.rand(mag.shape, generator=gen, dtype=torch.float64).to(mag.device) * support
    energy = mag.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
    g = g * energy / g.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)

    half = mag[..., : sw // 2 + 1]  # g is real: its spectrum is Hermitian, work on the rfft half

    def project(z: Tensor) -> Tensor:
        spec = torch.fft.rfft2(z, norm="ortho")
        amp = spec.abs()
        spec = torch.where(amp > 1e-30, spec * (half / amp.clamp_min(1e-30)), half.to(spec.dtype))
        return torch.fft.irfft2(spec, s=(sh, sw), norm="ortho")

    with torch.no_grad():
        for _ in range(iters):
            gp = project(g)
            ok = support & (gp >= 0)
            g = torch.where(ok, gp, g - beta * gp)
        for _ in range(er_iters):
            gp = project(g)
            g = torch.where(support & (gp >= 0), gp, torch.zeros_like(gp))
        x = g[..., :h, :w].clamp(0, 1)
        res = magnitude_residual(x, mag, oversampling).view(restarts, b)
        best = res.argmin(dim=0)
        x = x.view(restarts, b, c, h, w)[best, torch.arange(b, device=x.device)]
    return x.to(magnitude.dtype)


def align_flip(x_hat: Tensor, x_ref: Tensor, max_shift: int | None = 0, per_channel: bool = False) -> Tensor:
    """Per image, ``x_hat`` or its 180° rotation, whichever is closer (MSE) to ``x_ref`` — for scoring only.

    Fourier magnitudes cannot tell an image from its twin (the image rotated by 180° within its
    support); this picks the twin that matches the reference. When the object does not fill its
    support (e.g. MNIST digits inside a blank margin), every translation that keeps it inside the
    support has the same magnitudes too: ``max_shift > 0`` also searches integer shifts
    ``|dy|, |dx| ≤ max_shift`` (zero-filled, content shifted out is lost — never wrapped), and
    ``None`` searches all of them. ``per_channel=True`` decides per image channel (independent
    phase-retrieval problems, as :func:`hio_phase_retrieval` solves them).

    Args:
        x_hat, x_ref: ``[B, C, H, W]`` of the same shape.
        max_shift: largest shift tried along each axis (0: flip only; ``None``: any).
    Returns:
        ``[B, C, H, W]``, the best of the candidates (values unchanged, not clamped).
    """
    x_hat = _check_images(x_hat, "x_hat")
    x_ref = _check_images(x_ref, "x_ref")
    if x_hat.shape != x_ref.shape:
        raise InputError(f"x_hat and x_ref must have the same shape, got {list(x_hat.shape)} and {list(x_ref.shape)}")
    b, c, h, w = x_hat.shape
    if max_shift is None:
        sy, sx = h - 1, w - 1
    else:
        sy = sx = _check_count(max_shift, "max_shift", minimum=0)
        sy, sx = min(sy, h - 1), min(sx, w - 1)
    candidates = torch.stack([x_hat, x_hat.flip(-1, -2)])  # [2, B, C, H, W]
    if sy == 0 and sx == 0:
        dims = (3, 4) if per_channel else (2, 3, 4)
        err = (candidates - x_ref).pow(2).sum(dim=dims, keepdim=True)
        return torch.where(err[1] < err[0], candidates[1], candidates[0])
    # ‖shift(x̂) − r‖² = Σ_kept x̂² − 2⟨shift(x̂), r⟩ + ‖r‖² for every shift at once: FFT cross-correlations
    # on a canvas padded by the largest shift (no wrap-around), corr(d) = Σ_v a(v)·b(v + d)
    size = (h + sy, w + sx)
    cand = candidates.double()

    def corr(a: Tensor, b_: Tensor) -> Tensor:
        full = torch.fft.irfft2(torch.fft.rfft2(a, s=size).conj() * torch.fft.rfft2(b_, s=size), s=size)
        rows = torch.cat([full[..., h:, :], full[..., : sy + 1, :]], dim=-2)  # d_y = −sy … sy
        return torch.cat([rows[..., w:], rows[..., : sx + 1]], dim=-1)  # d_x = −sx … sx

    window = torch.ones(h, w, dtype=cand.dtype, device=cand.device)
    err = corr(cand.square(), window) - 2 * corr(cand, x_ref.double())  # [2, B, C, 2sy+1, 2sx+1]
    if not per_channel:
        err = err.sum(dim=2, keepdim=True).expand(2, b, c, 2 * sy + 1, 2 * sx + 1)
    # best (flip, dy, dx) per image (channel); near-ties go to the unflipped candidate, then the smallest shift
    err = err.permute(1, 2, 0, 3, 4)  # [B, C, 2, 2sy+1, 2sx+1]
    dyy, dxx = torch.meshgrid(torch.arange(-sy, sy + 1), torch.arange(-sx, sx + 1), indexing="ij")
    penalty = (dyy.abs() + dxx.abs()).to(err.device, err.dtype) + torch.tensor(
        [0.0, 0.5], dtype=err.dtype, device=err.device)[:, None, None]
    scale = err.abs().amax(dim=(2, 3, 4), keepdim=True).clamp_min(1e-300)
    idx = (err + 1e-12 * scale * penalty).reshape(b, c, -1).argmin(dim=-1)  # [B, C]
    flip, rest = idx // ((2 * sy + 1) * (2 * sx + 1)), idx % ((2 * sy + 1) * (2 * sx + 1))
    dy, dx = rest // (2 * sx + 1) - sy, rest % (2 * sx + 1) - sx  # the candidate is moved by (dy, dx)
    out = torch.empty_like(x_hat)
    src = candidates.permute(1, 2, 0, 3, 4)  # [B, C, 2, H, W]
    for i in range(b):
        for j in range(c):
            img = src[i, j, int(flip[i, j])]
            out[i, j] = _shift(img, int(dy[i, j]), int(dx[i, j]))
    return out


def _shift(img: Tensor, dy: int, dx: int) -> Tensor:
    """``img`` ``[H, W]`` moved down by ``dy`` and right by ``dx`` with zero fill."""
    h, w = img.shape
    out = torch.zeros_like(img)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h - max(dy, 0),
                                                                    max(-dx, 0):w - max(dx, 0)]
    return out


# ----------------------------------------------------------------------------------------------
# parameter tuning
# ----------------------------------------------------------------------------------------------

def tune(fn: Callable[[Any, Any], Tensor], grid: Sequence[Hashable], y_val: Any, x_val: Tensor,
         metric: str = "psnr") -> tuple[Any, dict[Any, float]]:
    """Pick the parameter of a baseline on validation images.

    Args:
        fn: ``fn(y_val, param) -> x_hat`` ``[B, C, H, W]`` (e.g. ``lambda y, lam: tv_denoise(y, lam)``).
        grid: candidate parameters (hashable, e.g. floats), tried in order.
        y_val: the validation observations, passed to ``fn`` as they are.
        x_val: the clean validation images ``[B, C, H, W]`` in [0, 1].
        metric: ``"psnr"`` (mean dB, higher is better; :func:`ganinv.metrics.psnr`) or ``"mse"`` (mean
            per-pixel squared error after clamping to [0, 1], lower is better).
    Returns:
        ``(best_param, {param: score})``; ties go to the earlier parameter in ``grid``.
    """
    if metric not in ("psnr", "mse"):
        raise InputError(f"metric must be 'psnr' or 'mse', got {metric!r}")
    x_val = _check_images(x_val, "x_val")
    params = list(grid) if not isinstance(grid, (str, bytes)) else []
    if not params:
        raise InputError("the tuning grid must be a non-empty sequence of parameters")
    from ganinv.metrics import psnr

    table: dict[Any, float] = {}
    for p in params:
        try:
            hash(p)
        except TypeError:
            raise InputError(f"tuning parameters must be hashable (numbers, strings, tuples), got {p!r}") from None
        x_hat = fn(y_val, p)
        if not isinstance(x_hat, Tensor) or x_hat.shape != x_val.shape:
            raise InputError(f"fn must return images of shape {list(x_val.shape)}, got "
                             f"{list(x_hat.shape) if isinstance(x_hat, Tensor) else type(x_hat).__name__}")
        if metric == "psnr":
            table[p] = float(psnr(x_hat, x_val).double().mean())
        else:
            diff = x_hat.detach().double().clamp(0, 1) - x_val.double().clamp(0, 1)
            table[p] = float(diff.pow(2).mean())
    sign = -1.0 if metric == "psnr" else 1.0
    best = min(params, key=lambda p: (sign * table[p], params.index(p)))
    return best, table


__all__ = [
    "DEFAULT_LASSO_ALPHAS", "LassoDCT", "align_flip", "bicubic_upsample", "dct_synthesis_matrix", "gray_to_rgb",
    "hio_phase_retrieval", "magnitude_residual", "masked_fill", "tune", "tv_deconv", "tv_denoise", "tv_inpaint",
    "tv_reconstruct", "wiener_deconv",
]
