"""Optimisation-based inversion: z* = argmin_z ℓ(A(G(z)), y) + priors, batched and per sample.

Every target is expanded into ``restarts`` rows; all rows of a chunk are optimised together in
one batch (Adam is element-wise, so each row's trajectory is its own), each row keeps the best
latent it has rendered, stops on its own when it plateaus, and at the end every target keeps
its best restart. Rows that have stopped are dropped from the batch, so the remaining rows run
faster. The generator is frozen for the call (no gradients to its weights) and restored after.

Settings follow NVIDIA's projector where that makes sense (learning-rate warm-up and cosine
ramp-down, latent noise that decays over the first 75 % of steps, the noise-map regulariser
with renormalisation) and add what a batch tool needs: restarts, best-of-N initialisation,
per-sample early stopping, L-BFGS, stochastic clipping for z, an optional ``torch.compile``.
"""

from __future__ import annotations

import math
import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult, InversionState
from ganinv.inverters.coarse import parse_stages, run_coarse_to_fine
from ganinv.inverters.lbfgs import BatchedLBFGS
from ganinv.losses import CombinedLoss
from ganinv.losses.priors import PRIORS, latent_prior, noise_regularization, normalize_noise_, stochastic_clip_
from ganinv.memory import RowCost, combine, describe, loss_cost, render_cost, rows_that_fit, run_halving

Callback = Callable[[int, InversionState], None]
ExtraTerms = dict[str, Callable[[Tensor, Tensor], Tensor]]

NOISE_MODES = ("auto", "fixed", "joint", "after")
OPTIMIZERS = ("auto", "adam", "lbfgs")
#: L-BFGS's preconditioner exponent when ``lbfgs_precondition`` is left automatic, per space (others: 0).
AUTO_PRECONDITION = {"w+": 0.75}


@dataclass
class OptimizeSettings:
    """Every knob of :func:`optimize`.

    Attributes:
        space: latent space to optimise (default: the generator's ``default_space``, W+ for StyleGAN2).
        steps: optimisation steps of the latent phase.
        optimizer: ``"adam"``, ``"lbfgs"`` (:class:`~ganinv.inverters.lbfgs.BatchedLBFGS`: every row
            has its own curvature history and line search; ``lr`` is unused) or ``"auto"`` (the default, see
            :func:`resolve_optimizer`): L-BFGS for reconstruction with the options it supports, else Adam.
            On 20 held-out digits L-BFGS reached a higher PSNR than Adam in less time in every space of both
            bundled models (W+: 39.7 dB in 200 steps, 22 s, vs Adam's 39.2 dB in 500 steps, 39 s;
            docs/inversion.md).
        lr: peak Adam learning rate (default 0.2; the reference projectors use 0.1).
        loss: loss spec (``"mse=1,lpips=0.8"``) or mapping name → weight.
        init: ``"auto"`` (= ``"best-of-64"``: on the held-out digits it gained 1.7 dB over the mean
            start for the cost of 64 renderings; in z the mean z = 0 is an atypical point where a
            generator's first layer may be switched off entirely), ``"mean"``,
            ``"random"``, ``"best-of-N"`` (score N random latents, start each target
            from its best; with restarts, restart k starts from the k-th best) or a tensor
            ``[B or 1, *space shape]``.
        restarts: rows per target, optimised side by side; the best is kept. With ``init="mean"``
            or a given tensor, restart 0 starts there and the others from random latents.
        noise: StyleGAN2 noise maps: ``"fixed"`` (the model's stored maps), ``"joint"`` (optimised with
            the latent, NVIDIA) or ``"after"`` (optimised after the latent, Image2StyleGAN++);
            ``"auto"``: joint where the generator has noise maps, else fixed.
        noise_steps: steps of the ``"after"`` noise phase (default: ``steps // 2``).
        noise_reg: weight of the noise autocorrelation penalty (NVIDIA: 1e5).
        noise_lr: peak Adam learning rate of the noise maps (default 0.1, NVIDIA's; None: ``lr``).
        prior: weight of the latent prior (see :func:`ganinv.losses.priors.latent_prior`).
        z_prior: ``"gaussian"`` or ``"shell"`` for the z space.
        stochastic_clip: z only: resample components beyond ± this many σ after each step (None: off).
        polish_steps: per-row L-BFGS iterations after the latent phase, starting from each row's best
            latent (noise maps too with ``noise="joint"`` and no noise penalty; under the penalty L-BFGS stalls
            in the noise coordinates, so the maps stay as the latent phase left them): superlinear convergence
            once in the right basin.
        warmup: fraction of ``steps`` that an L-BFGS run from a random or best-of-N start spends in Adam
            first (its learning-rate schedule over those steps, no per-row stopping except ``stop_loss``), then
            L-BFGS continues from each row's best iterate for the rest (0: L-BFGS from the start; a given
            ``init`` tensor — the hybrid's encoder code, a coarse stage's latent — is refined without it).
            L-BFGS goes to the nearest minimum; Adam's normalised steps of fixed length cross the small
            ones. On a random-weight ResNet generator (SNGAN's CIFAR architecture, z) L-BFGS alone recovered
            2 of 24 of the model's own samples and 20 % Adam first 9 of 24 (benchmarks/unseen.py,
            docs/unseen.md); on 40 held-out digits (W+) the mean went 49.45 → 50.12 dB, the worst
            33.2 → 40.0 dB, at equal time. The fraction scales with ``steps``: 10× the steps is 10× the warm-up.
        lbfgs_first_step: length of an L-BFGS row's first (steepest-descent) step, in latent units
            (default: 0.1 × the latent distribution's total std).
        lbfgs_history: curvature pairs an L-BFGS row keeps (default 100). On the 200 held-out digits the
            default W+ run ended at 49.67 dB with 100 pairs against 45.72 dB with 10 (the worst digit 28.0
            against 21.9 dB) for 1.2× the time; on 10 of them it reached the rosinality projector's final
            38.31 dB after 125 steps instead of 171; on 64 of the DCGAN's own samples (z) it ended higher
            (median 60.0 vs 49.1 dB) in less time (docs/inversion.md). The two-loop recursion costs
            ~16 ms per step for 64 rows of 1,024 dimensions, against ~220 ms for the generator's pass.
        lbfgs_precondition: exponent ``p`` of L-BFGS's diagonal preconditioner (0 = none): the latent is
            rescaled per coordinate by ``h^-p``, where ``h`` is the Gauss-Newton diagonal ``E[(Jᵀv)²]`` of
            the rendering (v ~ N(0, I) over pixels, :func:`latent_curvature`, a property of the generator
            alone, so rows stay independent). In W+ the coarse layers' coordinates are ~40× stiffer than
            the finest ones; the two-loop recursion's scalar initial Hessian cannot express that, so
            unpreconditioned L-BFGS spends its first iterations learning it. None (the default): 0.75 in W+
            (:data:`AUTO_PRECONDITION`; the hybrid's default too, docs/methods.md), 0 elsewhere.
        lr_rampup, lr_rampdown: fractions of the steps for the linear warm-up and cosine ramp-down.
        latent_noise: initial std of the noise added to the latent, as a fraction of the latent
            distribution's total std (NVIDIA: 0.05); it decays quadratically to 0 at
            ``latent_noise_ramp`` of the steps. 0 (the default) turns it off: on the bundled digits it
            cost fidelity at every step budget we tried (docs/inversion.md).
        tol, patience: per-sample early stopping: a row stops once its best objective has not
            improved by a relative ``tol`` for ``patience`` steps (None: never), but not before
            ``min_steps`` (a fraction of ``steps``). ``"auto"`` (the default): ``max(20, steps // 5)`` —
            the loss's own progress decides, so a converged or stuck row leaves the batch and the others
            run faster.
        stop_loss: per-sample tolerance: a target stops (all its restarts) as soon as one of its rows
            has a best objective ≤ this value.
        retries: adaptive restarts: after the run, targets whose best objective is still above
            ``stop_loss`` are run again from fresh random starts — ``restarts · 2^r`` of them in round
            ``r`` — up to this many times; a target keeps its best over all rounds (``metrics["rounds"]``,
            ``metrics["restart"]`` counts rows over all rounds).
        lagging: automatic restarts: after the run (and any ``retries``), a target whose best objective is
            more than this many times its batch's lower quartile (with at least 3 targets;
            :func:`lagging_targets`) is run again from ``2 · restarts`` fresh random starts and keeps the better
            result (None: off). 10× is a PSNR 10 dB below the better quarter of the batch: a poor local minimum,
            not a harder image. The quartile rather than the median, because on some generators most random
            starts end in one poor minimum (a random SNGAN ResNet: 60 % of its own samples at 18 dB, the rest at
            100 dB), and then the median is one of the stuck. An objective ≤ :data:`NEGLIGIBLE_LOSS` (MSE: 40 dB)
            never lags.
        lagging_rounds: how many times that is repeated, with twice the starts each round (``2 · restarts``,
            then ``4 · restarts``, …), for the targets still lagging; 0 is the same as ``lagging=None``.
        saturation: reconstruction only (no physics): a target pixel at 0 or 1 counts as clipped — a photograph's
            blown highlight or crushed shadow, or a generator's sample shown clipped where it drew beyond [0, 1] —
            and the loss sees the render there as the clipped display would (penalised only on the wrong side of
            the bound; :func:`~ganinv.losses.saturation.match_saturation`). False: the plain two-sided loss.
        coarse: coarse-to-fine stages (:mod:`ganinv.inverters.coarse`): resolutions below the output at which
            the latent is first optimised against the downsampled target, rendering only the blocks up to each
            (StyleGAN2; ``"32,64"`` or ``[32, 64]``), ``"off"``, or ``"auto"`` (the default): see
            :func:`~ganinv.inverters.coarse.parse_stages`. Resolved to a list by validation.
        coarse_steps: steps of each coarse stage (None: ``max(50, steps // 5)``; per-row stopping ends a stage
            earlier).
        batch_size: rows per optimisation batch (None: automatic, see :func:`auto_batch_size`).
        compile: run the generator through ``torch.compile`` (fixed batch shapes; stopped rows are
            masked instead of dropped).
        seed: seed of every random draw (same seed and inputs → same result).
    """

    space: str | None = None
    steps: int = 500
    optimizer: str = "auto"
    lr: float | None = None
    loss: str | Mapping[str, float] = "mse"
    init: str | Tensor = "auto"
    restarts: int = 1
    noise: str = "auto"
    noise_steps: int | None = None
    noise_reg: float = 1e5
    noise_lr: float | None = 0.1
    prior: float = 0.0
    z_prior: str = "gaussian"
    stochastic_clip: float | None = None
    polish_steps: int = 0
    warmup: float = 0.2
    lbfgs_first_step: float | None = None
    lbfgs_history: int = 100
    lbfgs_precondition: float | None = None
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    latent_noise: float = 0.0
    latent_noise_ramp: float = 0.75
    tol: float = 1e-3
    patience: int | str | None = "auto"
    stop_loss: float | None = None
    retries: int = 0
    lagging: float | None = 10.0
    lagging_rounds: int = 2
    min_steps: float = 0.25
    saturation: bool = True
    coarse: str | list[int] | None = "auto"
    coarse_steps: int | None = None
    batch_size: int | None = None
    compile: bool = False
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, init="tensor" if isinstance(self.init, Tensor) else self.init))
        d["loss"] = dict(self.loss) if isinstance(self.loss, Mapping) else self.loss
        return d


#: Reference schedules (REFERENCE.md), for comparison runs and users who want them.
PRESETS: dict[str, dict[str, Any]] = {
    # NVIDIA stylegan2-ada projector: W, 1000 steps, Adam lr 0.1, joint noise maps with the 1e5 penalty.
    "nvidia": {"space": "w", "steps": 1000, "lr": 0.1, "noise": "joint", "noise_reg": 1e5, "latent_noise": 0.05,
               "latent_noise_ramp": 0.75, "lr_rampup": 0.05, "lr_rampdown": 0.25, "init": "mean"},
    # rosinality projector with --w_plus: the same schedule in W+.
    "rosinality": {"space": "w+", "steps": 1000, "lr": 0.1, "noise": "joint", "noise_reg": 1e5,
                   "latent_noise": 0.05, "latent_noise_ramp": 0.75, "lr_rampup": 0.05, "lr_rampdown": 0.25,
                   "init": "mean"},
}


def learning_rate_factor(t: float, rampup: float, rampdown: float) -> float:
    """NVIDIA's schedule at progress ``t`` ∈ [0, 1]: linear warm-up over ``rampup``, cosine ramp-down
    over the last ``rampdown`` (each a fraction of the run; 0 disables it)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return ramp * (min(1.0, t / rampup) if rampup > 0 else 1.0)


def auto_batch_size(G: Generator, rows: int, *, space: str | None = None, noise_grad: bool = False,
                    extra: RowCost | None = None, what: str | None = None) -> int:
    """Rows per optimisation batch: as many as fit in the memory budget (:mod:`ganinv.memory`: the per-row
    cost of rendering in ``space`` with gradients, plus ``extra``, e.g. the loss), at most 64 on a CPU
    (throughput stops growing at a few dozen images, ``benchmarks/inversion.py``) and 512 on a GPU, and never
    more than ``rows``. Raises :class:`~ganinv.memory.MemoryBudgetError` when one row does not fit."""
    cost = render_cost(G, space or G.default_space, noise_grad=noise_grad)
    if extra is not None:
        cost = combine(cost, extra)
    return rows_that_fit(G, rows, cost, what=what)


@dataclass
class _Stats:
    mean: Tensor  # [1, *shape]
    total_std: float  # sqrt of the summed per-dimension variances (NVIDIA's w_std)
    var: float  # mean per-dimension variance (prior scale)


@torch.no_grad()
def latent_stats(G: Generator, space: str, n: int = 10_000, seed: int = 123) -> _Stats:
    """Mean, total std and per-dimension variance of ``space``, from ``n`` mapped samples (NVIDIA: 10k)."""
    shape = G.space(space).shape
    if space == "z":
        d = math.prod(shape)
        return _Stats(torch.zeros((1, *shape), device=G.device), math.sqrt(d), 1.0)
    w = G.sample_latent(n, "w" if "w" in G.latent_spaces else space, seed=seed)
    w = w.flatten(1) if w.dim() > 2 else w
    mean = w.mean(0, keepdim=True)
    var = (w - mean).square().mean(0)
    stats_mean = G.mean_latent(space) if hasattr(G, "w_avg") else mean
    if space == "w+" and stats_mean.dim() == 2:
        stats_mean = stats_mean.unsqueeze(1).expand(1, *shape)
    return _Stats(stats_mean.reshape(1, *shape), float(var.sum().sqrt()), float(var.mean()))


#: :func:`latent_curvature`'s results by (generator fingerprint and class, space, samples, probes, device), most
#: recent last: a model loaded again (each CLI command in one process, a web session, a PTI-tuned copy restored)
#: finds its curvature without re-rendering 256 latents.
_CURVATURE_CACHE: OrderedDict[tuple[str, str, str, int, int, str], Tensor] = OrderedDict()
#: Entries :data:`_CURVATURE_CACHE` keeps (each ``[1, *shape]`` of one latent: kilobytes).
CURVATURE_CACHE_SIZE = 32


#: Per-row cost up to which :func:`latent_curvature` averages over 256 latents; a larger generator uses
#: proportionally fewer (at least 8), so that the estimate costs about as much as 256 rows of the bundled model.
CURVATURE_FULL_BYTES = 16 * 1024**2


def curvature_samples(G: Generator, space: str) -> int:
    """Latents :func:`latent_curvature` averages over by default: 256 for a small generator, down to 8 for
    one whose row costs more than :data:`CURVATURE_FULL_BYTES` (at 1024 px, 256 samples would be ~20 CPU
    minutes; the preconditioner needs each coordinate's scale, not its third digit)."""
    per_row = render_cost(G, space).per_row
    if per_row <= CURVATURE_FULL_BYTES:
        return 256
    return max(8, int(256 * CURVATURE_FULL_BYTES / per_row))


def latent_curvature(G: Generator, space: str, n: int | None = None, probes: int = 2, seed: int = 7) -> Tensor:
    """Gauss-Newton diagonal of the rendering in ``space``: ``E[(Jᵀv)²]`` ``[1, *shape]``, > 0.

    ``J`` is the Jacobian of ``G.synthesize`` (stored noise maps) at ``n`` latents sampled from the
    prior (None: :func:`curvature_samples`), ``v ~ N(0, I)`` over the image's pixels (Hutchinson),
    averaged over samples and ``probes``. It is the diagonal of ``JᵀJ``, the curvature of a pixel MSE,
    averaged over the generator's range, so it depends on the generator alone (cached by the generator's
    weight fingerprint and space: another copy of the same weights reuses it, changed weights recompute it).
    """
    from ganinv.encoders import generator_fingerprint

    if n is None:
        n = curvature_samples(G, space)
    key = (generator_fingerprint(G), type(G).__qualname__, space, n, probes, str(G.device))
    hit = _CURVATURE_CACHE.get(key)
    if hit is not None:
        _CURVATURE_CACHE.move_to_end(key)
        return hit
    gen = torch.Generator().manual_seed(seed)
    lat = G.sample_latent(n, space, generator=gen).detach()
    total = torch.zeros_like(lat[:1])
    with _FrozenGenerator(G), torch.enable_grad():
        for chunk in lat.split(rows_that_fit(G, n, render_cost(G, space), what="estimating the curvature")):
            chunk = chunk.clone().requires_grad_(True)
            img = G.synthesize(chunk, space)
            for _ in range(probes):
                v = torch.randn(img.shape, generator=gen).to(img.device)
                (g,) = torch.autograd.grad(img, chunk, v, retain_graph=True)
                total += g.square().sum(0, keepdim=True)
    h = (total / (n * probes)).clamp_min(1e-12)
    _CURVATURE_CACHE[key] = h
    while len(_CURVATURE_CACHE) > CURVATURE_CACHE_SIZE:
        _CURVATURE_CACHE.popitem(last=False)
    return h


#: A coordinate whose curvature is below this share of the mean curvature counts as one the rendering (almost)
#: ignores — a StyleGAN3's first W+ row feeds the input's affine, which NVIDIA initialises to zero.
FLAT_CURVATURE = 1e-4


def preconditioner_scale(h: Tensor, power: float) -> Tensor:
    """L-BFGS's per-coordinate scale from the Gauss-Newton diagonal ``h`` ``[D]`` (> 0): ``h^-power``, normalised
    to mean 1 over the coordinates the rendering depends on. Flat coordinates (``h`` below
    :data:`FLAT_CURVATURE` × the mean) get the largest scale of the others instead of ``h^-power``: their own
    would be astronomically large (``h`` is clamped at 1e-12), dominate the mean and shrink every real
    coordinate's step to nothing (a random-weight StyleGAN3-R's W+ optimisation lost 8 dB that way)."""
    flat = h < FLAT_CURVATURE * h.mean()
    if bool(flat.all()):
        return torch.ones_like(h)
    scale = h.pow(-power)
    scale = scale / scale[~flat].mean()
    scale[flat] = scale[~flat].max()
    return scale


def _finite_or_inf(loss: Tensor) -> Tensor:
    """``loss`` with NaN (a diverged row) replaced by +inf, so that comparisons and argmin never pick it."""
    return torch.nan_to_num(loss, nan=math.inf)


#: Where in its batch's losses a target's is compared: the lower quartile, so that a batch where most targets are
#: stuck in poor minima still reruns them (the median would be one of the stuck ones).
LAGGING_QUANTILE = 0.25
#: An objective at or below this never lags, whatever its batch-mates reach: with the default MSE it is a PSNR of
#: 40 dB, the exact-recovery threshold. Targets better than that differ among themselves by orders of magnitude without
#: being in a poor minimum (exact recoveries at 1e-14 and 1e-10; real digits at 45 and 55 dB). With 1e-8 (80 dB)
#: the bundled DCGAN's 64 own samples took 3.4× the time of a run without reruns (37 target-reruns, nearly all
#: of targets already above 40 dB); with 1e-4, 1.3× the time, and 100 % ≥ 40 dB against 95 % without reruns.
NEGLIGIBLE_LOSS = 1e-4


def lagging_targets(loss: Tensor, factor: float, stop_loss: float | None = None) -> Tensor:
    """Indices of the targets whose best objective ``loss`` ``[B]`` is above ``factor`` × the batch's lower
    quartile (:data:`LAGGING_QUANTILE`; a NaN counts as +inf) and above :data:`NEGLIGIBLE_LOSS`, not counting
    those already at ``stop_loss``."""
    loss = _finite_or_inf(loss)
    finite = loss[torch.isfinite(loss)]
    if finite.numel() == 0:
        return loss[:0].long()
    reference = torch.quantile(finite.double(), LAGGING_QUANTILE, interpolation="lower").to(loss.dtype)
    lag = (loss > factor * reference) & (loss > NEGLIGIBLE_LOSS)
    if stop_loss is not None:  # a target at its tolerance is done, whatever its batch-mates reach
        lag &= ~(loss <= stop_loss)
    return lag.nonzero().squeeze(1)


class _FrozenGenerator:
    """Context manager: eval mode and no weight gradients inside, the caller's flags restored after."""

    def __init__(self, G: nn.Module) -> None:
        self.G = G

    def __enter__(self) -> None:
        self.training = self.G.training
        self.flags = [p.requires_grad for p in self.G.parameters()]
        self.G.eval().requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, f in zip(self.G.parameters(), self.flags):
            p.requires_grad_(f)
        self.G.train(self.training)


def as_observation(value: Any) -> Tensor:
    """An operator's output as one tensor ``[B, ...]``: deepinv's ``TensorList`` (several measurements, e.g.
    ``Pansharpen``) and tuples/lists of tensors become their per-sample concatenation ``[B, Σ numel]``."""
    if isinstance(value, Tensor):
        return value
    parts = getattr(value, "x", value)  # deepinv TensorList keeps its tensors in .x
    if isinstance(parts, list | tuple) and parts and all(isinstance(p, Tensor) for p in parts):
        return torch.cat([p.flatten(1) for p in parts], dim=1)
    raise InputError(f"the forward operator must return a tensor (or a deepinv TensorList), got "
                     f"{type(value).__name__}")


def _operator(physics: Any) -> Callable[[Tensor], Tensor]:
    """The noiseless forward operator: ``physics.A`` (deepinv) when present, else ``physics`` itself; its
    output is always one tensor (see :func:`as_observation`)."""
    if physics is None:
        return lambda x: x
    op = getattr(physics, "A", None)
    if not callable(op):
        if not callable(physics):
            raise InputError(f"physics must be callable or have a callable .A, got {type(physics).__name__}")
        op = physics
    return lambda x: as_observation(op(x))


def _check_target(G: Generator, target: Tensor, physics: Any) -> Tensor:
    if physics is not None and not isinstance(target, Tensor) and hasattr(target, "x"):
        target = as_observation(target)
    if not isinstance(target, Tensor):
        raise InputError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if physics is None:
        if target.dim() == 3:
            target = target.unsqueeze(0)
        if target.dim() != 4 or tuple(target.shape[1:]) != tuple(G.image_shape):
            c, h, w = G.image_shape
            raise InputError(f"target must be [B, {c}, {h}, {w}] images for this generator, got {list(target.shape)}")
    if target.shape[0] == 0:
        raise InputError("target batch is empty")
    if not torch.isfinite(target).all():
        raise InputError("target contains NaN or Inf")
    return target.to(G.device, torch.float32)


@torch.no_grad()
def _probe_operator(op: Callable[[Tensor], Tensor], render: _Renderer, stats: _Stats, y: Tensor,
                    physics: Any) -> None:
    """Apply the forward operator to one rendering before optimising: observations of another shape, or NaN/Inf
    from the operator itself (e.g. a NaN in its parameters), are refused up front with one clear message."""
    if physics is None:
        return
    out = op(render.G.synthesize(stats.mean, render.space))  # (not the compiled renderer: no batch-1 recompile)
    if tuple(out.shape[1:]) != tuple(y.shape[1:]):
        raise InputError(f"the forward operator maps an image to {list(out.shape[1:])} per sample, but the "
                         f"observations are {list(y.shape[1:])}")
    if not torch.isfinite(out).all():
        raise InputError("the forward operator returns NaN or Inf for a generated image: check its parameters "
                         "(mask, kernel, matrix, noise level)")


def _parse_init(init: str | Tensor, space: str | None = None) -> tuple[str, int]:
    if isinstance(init, str) and init == "auto":
        return "best", 64
    if isinstance(init, Tensor):
        return "tensor", 0
    if init in ("mean", "random"):
        return init, 0
    if isinstance(init, str) and init.startswith("best-of-"):
        try:
            n = int(init.split("-")[-1])
        except ValueError:
            n = 0
        if n >= 1:
            return "best", n
    raise InputError(f"unknown init {init!r}; use auto, mean, random, best-of-N (e.g. best-of-64) or a tensor")


def resolve_noise(G: Generator, noise: str, optimizer: str, noise_reg: float) -> str:
    """The noise-map mode a run uses: ``"auto"`` is ``"joint"`` (NVIDIA's) with Adam on a generator that has
    noise maps, else ``"fixed"``.

    L-BFGS with joint noise maps under the autocorrelation penalty is refused: the penalty's 1e5 weight makes
    the objective so ill-conditioned in the noise coordinates that L-BFGS stalls (on the bundled StyleGAN2, W+,
    200 steps, 10 held-out digits: 14.8 dB mean with or without the latent preconditioner, where the same
    L-BFGS with fixed maps reaches 38.1 dB and Adam joint 32.9 dB; docs/inversion.md).
    """
    if noise not in NOISE_MODES:
        raise InputError(f"unknown noise mode {noise!r}; choose from {', '.join(NOISE_MODES)}")
    if noise == "auto":
        return "joint" if G.noise_shapes and optimizer == "adam" else "fixed"
    if noise != "fixed" and not G.noise_shapes:
        raise InputError(f"noise={noise!r} needs a generator with noise maps; {G.arch} has none")
    if noise == "joint" and optimizer == "lbfgs" and noise_reg > 0:
        raise InputError("L-BFGS cannot optimise noise maps jointly under the noise penalty (it stalls: ~15 dB "
                         "on the bundled StyleGAN2 where fixed maps reach 38 dB); use noise 'fixed' (the default "
                         "with L-BFGS) or 'after', set the noise penalty to 0, or use Adam")
    return noise


def resolve_optimizer(s: OptimizeSettings, physics_given: bool = False) -> str:
    """The optimiser an ``"auto"`` run uses: L-BFGS, unless something asks for Adam — a forward operator
    (restoration: not measured with L-BFGS), a learning rate, latent noise, noise maps that are optimised
    (``joint``/``after``, which L-BFGS handles badly under the noise penalty), stochastic clipping or
    ``torch.compile`` (fixed batch shapes; L-BFGS drops converged rows). An explicit choice is kept."""
    if s.optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {s.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if s.optimizer != "auto":
        return s.optimizer
    wants_adam = (physics_given or s.lr is not None or s.latent_noise > 0 or s.noise in ("joint", "after")
                  or s.stochastic_clip is not None or s.compile)
    return "adam" if wants_adam else "lbfgs"


def warmup_steps(s: OptimizeSettings) -> int:
    """Adam steps that open a run of validated settings ``s``: ``warmup · steps`` for L-BFGS from a random or
    best-of-N start, else 0 (a given start is refined as it is)."""
    if s.optimizer != "lbfgs" or isinstance(s.init, Tensor) or s.warmup <= 0:
        return 0
    return min(int(s.warmup * s.steps), s.steps - 1)


def _validate(G: Generator, s: OptimizeSettings, physics_given: bool = False,
              extra_terms: bool = False) -> OptimizeSettings:
    space = s.space or G.default_space
    G.space(space)  # raises a clear error for a space the generator lacks
    optimizer = resolve_optimizer(s, physics_given)
    precondition = s.lbfgs_precondition
    if precondition is None:
        precondition = AUTO_PRECONDITION.get(space, 0.0) if optimizer == "lbfgs" or s.polish_steps else 0.0
    s = replace(s, optimizer=optimizer, lbfgs_precondition=precondition)
    s = replace(s, noise=resolve_noise(G, s.noise, s.optimizer, s.noise_reg))
    if s.z_prior not in PRIORS:
        raise InputError(f"unknown z prior {s.z_prior!r}; choose from {', '.join(PRIORS)}")
    if s.stochastic_clip is not None and space != "z":
        raise InputError("stochastic clipping applies to the z space only")
    for name in ("steps", "restarts", "lbfgs_history"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a whole number ≥ 1, got {value!r}")
    if s.patience == "auto":
        s = replace(s, patience=max(20, s.steps // 5) if isinstance(s.steps, int) else None)
    if s.lagging is not None and not (isinstance(s.lagging, int | float) and math.isfinite(s.lagging)
                                      and s.lagging > 1):
        raise InputError(f"lagging must be a finite number > 1 (a multiple of the batch's lower-quartile loss), "
                         f"got {s.lagging!r}")
    if s.retries and s.stop_loss is None:
        raise InputError("retries need stop_loss: a target is retried while its loss is above it")
    if not isinstance(s.saturation, bool):
        raise InputError(f"saturation is True or False, got {s.saturation!r}")
    for name in ("noise_steps", "polish_steps", "patience", "retries", "lagging_rounds"):
        value = getattr(s, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(f"{name} must be a whole number ≥ 0, got {value!r}")
    if isinstance(s.warmup, bool) or not (isinstance(s.warmup, int | float) and 0 <= s.warmup < 1):
        raise InputError(f"warmup is the fraction of the steps run with Adam before L-BFGS, in [0, 1); "
                         f"got {s.warmup!r}")
    for name in ("prior", "noise_reg", "latent_noise", "latent_noise_ramp", "tol", "lr_rampup", "lr_rampdown",
                 "min_steps", "lbfgs_precondition"):
        value = getattr(s, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a finite number ≥ 0, got {value!r}")
    if s.lbfgs_precondition > 2:
        raise InputError(f"lbfgs_precondition is an exponent in [0, 2] (0.5 = Jacobi), got {s.lbfgs_precondition}")
    if s.latent_noise > 0 and s.latent_noise_ramp <= 0:
        raise InputError("latent_noise_ramp must be > 0 when latent_noise is on")
    for name in ("stop_loss", "noise_lr", "lbfgs_first_step", "stochastic_clip"):
        value = getattr(s, name)
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a finite positive number, got {value!r}")
    try:
        seed = operator.index(s.seed)  # int, numpy integers
    except TypeError:
        seed = -1
    if isinstance(s.seed, bool) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be a whole number in [0, 2^63), got {s.seed!r}")
    if s.batch_size is not None and s.batch_size < 1:
        raise InputError(f"batch size must be ≥ 1, got {s.batch_size}")
    lr = s.lr if s.lr is not None else 0.2
    if not (lr > 0 and math.isfinite(lr)):
        raise InputError(f"learning rate must be a finite positive number, got {lr}")
    _parse_init(s.init)
    noise_steps = s.noise_steps if s.noise_steps is not None else (s.steps // 2 if s.noise == "after" else 0)
    if s.coarse_steps is not None and (isinstance(s.coarse_steps, bool) or not isinstance(s.coarse_steps, int)
                                       or s.coarse_steps < 1):
        raise InputError(f"coarse_steps must be a whole number ≥ 1, got {s.coarse_steps!r}")
    coarse = s.coarse
    if isinstance(coarse, str) and coarse.strip().lower() == "auto" and (extra_terms or s.compile):
        coarse = None  # extra terms read the full image; compiled runs want one shape
    stages = parse_stages(G, coarse, physics=physics_given, loss=s.loss, noise=s.noise)
    return replace(s, space=space, lr=lr, noise_steps=noise_steps, coarse=stages or None)


class _Renderer:
    """Latent (+ optional noise maps) → image in nominal [0, 1]; optionally compiled."""

    def __init__(self, G: Generator, space: str, compile: bool) -> None:
        lo, hi = G.output_range
        self.G, self.space = G, space

        def render(latent: Tensor, noise: list[Tensor] | None) -> Tensor:
            return (G._native(latent, space, noise) - lo) / (hi - lo)

        self.fn = torch.compile(render, dynamic=False) if compile else render

    def __call__(self, latent: Tensor, noise: list[Tensor] | None) -> Tensor:
        return self.fn(latent, noise)


@torch.no_grad()
def _initial_latents(G: Generator, targets: Tensor, s: OptimizeSettings, render: _Renderer,
                     objective: Callable[[Tensor, Tensor], Tensor], stats: _Stats,
                     gen: torch.Generator) -> Tensor:
    """``[B·K, *shape]`` starting latents (row b·K + k is restart k of target b)."""
    B, K = targets.shape[0], s.restarts
    space = s.space
    assert space is not None
    shape = G.space(space).shape
    kind, n_cand = _parse_init(s.init, space)

    def random_latents(n: int) -> Tensor:
        if space == "z":
            return torch.randn((n, *shape), generator=gen).to(G.device)
        z = torch.randn((n, *G.space("z").shape), generator=gen).to(G.device)
        return G.convert(z, "z", space)

    if kind == "best":
        pool = random_latents(max(n_cand, K))
        scores = torch.empty(B, pool.shape[0], device=G.device)
        what = f"scoring best-of-{pool.shape[0]} candidates on the {describe(G)}"
        cost = render_cost(G, space)  # with-grad cost: bounds a no-grad rendering and its scoring
        chunk = rows_that_fit(G, pool.shape[0], cost, what=what)

        def score(start: int, stop: int) -> None:
            """Render candidates [start, stop) once, score them against every target, let the images go."""
            imgs = render(pool[start:stop], None)
            for b in range(B):
                scores[b, start:stop] = objective(imgs, targets[b:b + 1].expand(imgs.shape[0], *targets.shape[1:]))

        run_halving(score, pool.shape[0], chunk, device=G.device, what=what, per_row=cost.bytes_for(1))
        order = scores.argsort(dim=1)[:, :K]  # [B, K]
        return pool[order.reshape(-1)]
    if kind == "random":
        return random_latents(B * K)
    if kind == "tensor":
        given = s.init
        assert isinstance(given, Tensor)
        given = G.space(space).check(given.to(G.device, torch.float32))
        if given.shape[0] not in (1, B):
            raise InputError(f"init latent has batch {given.shape[0]}; expected 1 or {B}")
        start = given.expand(B, *shape)
    else:
        start = stats.mean.expand(B, *shape)
    rows = start.repeat_interleave(K, dim=0).clone()
    if K > 1:
        extra = random_latents(B * K).view(B, K, *shape)
        rows.view(B, K, *shape)[:, 1:] = extra[:, 1:]
    return rows


def _run_chunk(G: Generator, y: Tensor, init: Tensor, row_ids: Tensor, s: OptimizeSettings, render: _Renderer,
               loss_fn: CombinedLoss, op: Callable[[Tensor], Tensor], stats: _Stats, gen: torch.Generator,
               callback: Callback | None, extra_terms: ExtraTerms | None = None) -> dict[str, Any]:
    """Optimise one chunk of rows; returns best latents/noise/loss, steps run and the loss history.

    Every row keeps the best state it has been scored at. With latent noise the score of a step is
    that of the jittered latent, so at the end of each phase the kept states and the final ones are
    re-scored without jitter and the better of the two is kept. A row that stops early is reset to its
    best state and frozen, so its result does not depend on how long the rest of the batch runs.
    """
    n = init.shape[0]
    space = s.space
    assert space is not None and s.lr is not None and s.noise_steps is not None
    dev = init.device
    latent = init.clone().requires_grad_(True)
    noise: list[Tensor] | None = None
    if s.noise != "fixed":
        stored = G.stored_noise() if hasattr(G, "stored_noise") else [torch.randn(sh, generator=gen).to(dev)
                                                                       for sh in G.noise_shapes]
        noise = [m.detach().expand(n, *m.shape[1:]).clone().requires_grad_(True) for m in stored]
        normalize_noise_(noise)
    best_loss = torch.full((n,), math.inf, device=dev)
    diverged_at = torch.full((n,), -1, dtype=torch.long, device=dev)  # step a row's objective went NaN/Inf
    best_latent = init.clone()
    best_noise = [m.detach().clone() for m in noise] if noise is not None else None
    steps_run = torch.zeros(n, dtype=torch.long, device=dev)
    history: dict[str, list[Tensor]] = {}
    drop_rows = not s.compile
    target_of = (row_ids // s.restarts).to(dev)
    target_of = target_of - target_of.min()

    def objective(lat: Tensor, nz: list[Tensor] | None, target: Tensor,
                  reg_noise: bool) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        img = render(lat, nz)
        rec = loss_fn(op(img), target)
        terms = dict(loss_fn.last_terms)
        total = rec
        if s.prior > 0:
            pr = latent_prior(lat, space, mean=stats.mean, variance=stats.var, kind=s.z_prior)
            terms["prior"] = pr.detach()
            total = total + s.prior * pr
        if reg_noise and nz is not None and s.noise_reg > 0:  # only while the maps are being optimised
            nr = noise_regularization(nz)
            terms["noise_reg"] = nr.detach()
            total = total + s.noise_reg * nr
        for key, fn in (extra_terms or {}).items():
            value = fn(lat, img)
            terms[key] = value.detach()
            total = total + value
        return total, terms, img

    def restore(rows: Tensor) -> None:
        """Put ``rows`` back to their best state (latent and noise maps)."""
        with torch.no_grad():
            latent[rows] = best_latent[rows]
            if noise is not None and best_noise is not None:
                for m, bn in zip(noise, best_noise):
                    m[rows] = bn[rows]

    @torch.no_grad()
    def rescore(reg_noise: bool) -> None:
        """Score the kept best states and the current states without jitter; keep the better per row."""
        nonlocal best_loss
        cur_nz = [m.detach().clone() for m in noise] if noise is not None else None
        cur_total, _, _ = objective(latent.detach(), cur_nz, y, reg_noise)
        kept_total, _, _ = objective(best_latent, best_noise, y, reg_noise)
        better = (cur_total < kept_total) | (torch.isfinite(cur_total) & ~torch.isfinite(kept_total))
        best_loss = torch.where(better, cur_total, kept_total)
        best_latent[better] = latent.detach()[better]
        if best_noise is not None and cur_nz is not None:
            for bn, m in zip(best_noise, cur_nz):
                bn[better] = m[better]

    def phase(name: str, steps: int, opt_latent: bool, opt_noise: bool, optimizer: str, from_best: bool,
              stopping: bool = True, offset: int = 0, planned: int | None = None) -> None:
        """Run ``steps`` steps of one phase; callbacks see steps ``offset + t`` of ``planned`` (default ``steps``)
        — the warm-up and the L-BFGS run after it report as one phase."""
        params: list[Tensor] = ([latent] if opt_latent else []) + (list(noise) if opt_noise and noise else [])
        if not params:
            return
        if from_best:  # later phases continue from the best state found so far, scored the new way
            restore(torch.arange(n, device=dev))
            rescore(opt_noise)
        rows_drop = drop_rows and optimizer == "adam"
        lbfgs: BatchedLBFGS | None = None
        opt: torch.optim.Optimizer | None = None
        record: dict[str, Any] = {}
        if optimizer == "adam":
            groups = [{"params": [latent], "base_lr": s.lr}] if opt_latent else []
            if opt_noise and noise:
                groups.append({"params": list(noise), "base_lr": s.noise_lr if s.noise_lr is not None else s.lr})
            opt = torch.optim.Adam(groups, lr=s.lr, betas=(0.9, 0.999))
        else:
            shapes = [p.shape[1:] for p in params]
            sizes = [math.prod(sh) for sh in shapes]
            # L-BFGS works on x = params / scale: the preconditioner rescales the latent's coordinates
            scale = torch.ones(sum(sizes), device=dev)
            if opt_latent and s.lbfgs_precondition > 0:
                scale[:sizes[0]] = preconditioner_scale(latent_curvature(G, space).to(dev).flatten(),
                                                        s.lbfgs_precondition)

            def unpack(x: Tensor) -> list[Tensor]:
                x = x * scale
                return [part.reshape(x.shape[0], *sh) for part, sh in zip(x.split(sizes, dim=1), shapes)]

            def fn(x: Tensor, rows: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
                parts = unpack(x)
                lat = parts.pop(0) if opt_latent else latent[rows].detach()
                if noise is None:
                    nz = None
                else:
                    nz = parts if opt_noise else [m[rows].detach() for m in noise]
                total, terms, img = objective(lat, nz, y[rows], opt_noise)
                if not x.requires_grad:  # a line-search trial: only its loss is needed
                    return total, {}
                # what the step loop records about a point, kept by the L-BFGS with its gradient
                aux = {"total": total.detach(), "lat": lat.detach(),
                       **{f"terms.{k}": v.detach() for k, v in terms.items()},
                       **({f"nz.{i}": m.detach() for i, m in enumerate(nz)} if nz is not None else {})}
                if callback is not None:
                    aux["img"] = img.detach()
                return total, aux

            def record_of(aux: dict[str, Tensor]) -> dict[str, Any]:
                """The step loop's record of the points the rows stepped from (see ``fn``)."""
                nz_keys = sorted((k for k in aux if k.startswith("nz.")), key=lambda k: int(k[3:]))
                return {"total": aux["total"], "lat": aux["lat"], "param": aux["lat"], "img": aux.get("img"),
                        "terms": {k[6:]: v for k, v in aux.items() if k.startswith("terms.")},
                        "nz": [aux[k] for k in nz_keys] if nz_keys else None}

            first = (s.lbfgs_first_step if s.lbfgs_first_step is not None else 0.1 * stats.total_std)
            x0 = torch.cat([p.detach().flatten(1) for p in params], dim=1) / scale
            lbfgs = BatchedLBFGS(x0, fn, first_step=first, history=s.lbfgs_history)
        active = diverged_at < 0  # a row that diverged stays at its best iterate in later phases too
        since = torch.zeros(n, dtype=torch.long, device=dev)
        min_steps = int(s.min_steps * steps)
        use_noise = opt_latent and s.latent_noise > 0 and s.latent_noise_ramp > 0 and optimizer == "adam"
        for t in range(steps):
            progress = t / steps
            idx = active.nonzero().squeeze(1) if (rows_drop or lbfgs is not None) else torch.arange(n, device=dev)
            if idx.numel() == 0:
                break
            record.clear()
            if lbfgs is not None:
                lbfgs.step(active)
                record.update(record_of(lbfgs.aux))
                with torch.no_grad():
                    for p, part in zip(params, unpack(lbfgs.x)):
                        p.copy_(part.view_as(p))
            else:
                assert opt is not None
                factor = learning_rate_factor(progress, s.lr_rampup, s.lr_rampdown)
                for group in opt.param_groups:
                    group["lr"] = group["base_lr"] * factor
                scale = stats.total_std * s.latent_noise * max(0.0, 1.0 - progress / s.latent_noise_ramp) ** 2 \
                    if use_noise else 0.0
                jitter = (torch.randn((idx.numel(), *latent.shape[1:]), generator=gen).to(dev) * scale
                          if scale > 0 else None)
                opt.zero_grad(set_to_none=True)
                param = latent[idx] if rows_drop else latent
                lat = param + jitter if jitter is not None else param
                nz = [m[idx] for m in noise] if (noise is not None and rows_drop) else noise
                total, terms, img = objective(lat, nz, y[idx], opt_noise)
                (total * active[idx].float()).sum().backward()
                record.update(total=total.detach(), terms=terms, img=img.detach(), lat=lat.detach().clone(),
                              param=param.detach().clone(),
                              nz=[m.detach().clone() for m in nz] if nz is not None else None)
                opt.step()
            total, terms = record["total"], record["terms"]
            with torch.no_grad():
                # divergence: a non-finite objective (or latent) stops the row at its best iterate, on its own
                finite = torch.isfinite(total) & torch.isfinite(record["param"].flatten(1)).all(1)
                blown = idx[~finite & active[idx]]
                if blown.numel():
                    diverged_at[blown] = steps_run[blown]
                    active[blown] = False
                was_active = active.clone()
                improved = total < best_loss[idx] * (1.0 - s.tol)
                better = (total < best_loss[idx]) & was_active[idx]
                rows_b = idx[better]
                best_loss[rows_b] = total[better]
                best_latent[rows_b] = record["param"][better]
                if best_noise is not None and record["nz"] is not None:
                    for bn, m in zip(best_noise, record["nz"]):
                        bn[rows_b] = m[better]
                steps_run[idx[was_active[idx]]] += 1
                since[idx] = torch.where(improved, 0, since[idx] + 1)
                if stopping and s.patience is not None and t + 1 >= min_steps:
                    active &= since < s.patience
                if s.stop_loss is not None:
                    reached = best_loss <= s.stop_loss
                    # a target is done once any of its restarts (rows of this chunk) reached the tolerance
                    done = torch.zeros(int(target_of.max()) + 1, dtype=torch.bool, device=dev)
                    done[target_of[reached]] = True
                    active &= ~done[target_of]
                if noise is not None and opt_noise and lbfgs is None:  # L-BFGS keeps its own iterates
                    normalize_noise_(noise)
                if s.stochastic_clip is not None and opt_latent:
                    sub = latent[idx].detach().clone()
                    stochastic_clip_(sub, s.stochastic_clip, gen)
                    latent[idx] = sub
                stopped = (~active).nonzero().squeeze(1)
                if stopped.numel():  # frozen at their best (Adam's momentum would move them on)
                    restore(stopped)
                if lbfgs is not None:  # rows moved here (restored, clipped) restart from where they are now
                    cur = torch.cat([p.detach().flatten(1) for p in params], dim=1)
                    moved = (cur != lbfgs.x * scale).any(1)
                    if moved.any():
                        x_new = lbfgs.x.clone()
                        x_new[moved] = cur[moved] / scale
                        lbfgs.x = x_new
                full = {"loss": total, **terms}
                for key, val in full.items():
                    row = history.setdefault(key, [])
                    prev = row[-1] if row else torch.full((n,), math.nan, device=dev)
                    cur = prev.clone()
                    cur[idx] = val.detach().float()
                    row.append(cur)
            if callback is not None:
                callback(offset + t, InversionState(step=offset + t, total_steps=planned or steps, phase=name,
                                                    rows=row_ids[idx.cpu()],
                                           latent=record["lat"], image=record["img"], loss=total, terms=terms,
                                           active=active[idx].clone()))
        rescore(opt_noise)

    joint = s.noise == "joint"
    warm = warmup_steps(s)
    if warm:  # Adam explores first; stopping on stalled progress would end it before it crossed anything
        phase("latent", warm, True, joint, "adam", from_best=False, stopping=False, planned=s.steps)
    phase("latent", s.steps - warm, True, joint, s.optimizer, from_best=warm > 0, offset=warm, planned=s.steps)
    if s.polish_steps > 0:
        phase("polish", s.polish_steps, True, joint and s.noise_reg == 0, "lbfgs", from_best=True)
    if s.noise == "after" and s.noise_steps > 0:
        phase("noise", s.noise_steps, False, True, s.optimizer, from_best=True)
    length = max((len(v) for v in history.values()), default=0)
    padded = {}
    for key, rows in history.items():  # a term may start in a later phase: pad its front with NaN
        front = [torch.full((n,), math.nan, device=dev)] * (length - len(rows))
        padded[key] = torch.stack(front + rows) if length else torch.empty(0, n, device=dev)
    return {"latent": best_latent, "noise": best_noise, "loss": best_loss, "steps": steps_run, "diverged": diverged_at,
            "history": padded, "length": length}


def optimize(G: Generator, target: Tensor, physics: Any = None, settings: OptimizeSettings | None = None, *,
             discriminator: nn.Module | None = None, callback: Callback | None = None,
             extra_terms: ExtraTerms | None = None) -> InversionResult:
    """Invert ``target`` by optimisation (see module docstring).

    Args:
        G: a frozen-able :class:`~ganinv.generators.base.Generator`.
        target: images ``[B, C, H, W]`` in [0, 1] when ``physics`` is None, else observations ``y``
            ``[B, ...]`` that ``physics`` maps images onto.
        physics: None (reconstruction), a callable ``A(x)``, or an object with ``.A`` (deepinv physics).
        settings: :class:`OptimizeSettings` (defaults if None).
        discriminator: needed by the ``dfeat`` loss term.
        callback: ``callback(step, state)`` after every step (see :class:`InversionState`).
        extra_terms: more objective terms, ``{name: fn(latent [n, *shape], image [n, C, H, W]) -> [n]}``,
            already weighted (e.g. IDInvert's domain regulariser); logged under their names.
    """
    t0 = time.perf_counter()
    s = _validate(G, settings or OptimizeSettings(), physics is not None, extra_terms=bool(extra_terms))
    space = s.space
    assert space is not None
    op = _operator(physics)
    if s.coarse:
        with _FrozenGenerator(G):
            y = _check_target(G, target, physics)
            result = run_coarse_to_fine(
                G, y, s, list(s.coarse), optimize, callback,
                lambda s_final: optimize(G, y, None, s_final, discriminator=discriminator, callback=callback,
                                         extra_terms=extra_terms))
        result.seconds = time.perf_counter() - t0
        return result
    with _FrozenGenerator(G):
        y = _check_target(G, target, physics)
        loss_fn = CombinedLoss.from_spec(s.loss, discriminator=discriminator).to(G.device)
        loss_fn.saturation = physics is None and s.saturation
        B, K = y.shape[0], s.restarts
        stats = latent_stats(G, space)
        render = _Renderer(G, space, s.compile)
        _probe_operator(op, render, stats, y, physics)
        gen = torch.Generator().manual_seed(int(s.seed))
        score = lambda img, tgt: loss_fn(op(img), tgt)  # noqa: E731
        what = f"one optimisation step of the {describe(G)} in {space}"
        y1 = y[:1]
        step_loss = loss_cost(loss_fn, ("physics" if physics is not None else "image", id(physics), tuple(y.shape[1:])),
                              lambda img: loss_fn(op(img), y1.expand(img.shape[0], *y1.shape[1:])),
                              tuple(G.image_shape), G.device) if s.batch_size is None else None

        def solve(targets: Tensor, init: Tensor, seed_base: int, s: OptimizeSettings) -> dict[str, Any]:
            """Optimise ``targets`` (``s.restarts`` rows each, from ``init``); per-target best of its rows."""
            n_t, K = targets.shape[0], s.restarts
            y_rows = targets.repeat_interleave(K, dim=0)
            rows = n_t * K
            chunk = s.batch_size or auto_batch_size(G, rows, space=space, noise_grad=s.noise != "fixed",
                                                    extra=step_loss, what=what)
            if chunk >= K:  # keep a target's restarts in one chunk (they stop together at stop_loss)
                chunk -= chunk % K

            def run(start: int, stop: int) -> dict[str, Any]:
                chunk_gen = torch.Generator().manual_seed(seed_base * 1_000_003 + start)
                return _run_chunk(G, y_rows[start:stop], init[start:stop], torch.arange(start, stop), s, render,
                                  loss_fn, op, stats, chunk_gen, callback, extra_terms)

            # an allocation failure (the estimate was off, or other processes took memory) halves the chunk
            parts = run_halving(run, rows, chunk, device=G.device, what=what, align=K)
            best_loss = torch.cat([p["loss"] for p in parts])
            choice = _finite_or_inf(best_loss).view(n_t, K).argmin(dim=1)  # a NaN loss never wins
            chosen = torch.arange(n_t, device=best_loss.device) * K + choice
            noise = None
            if parts[0]["noise"] is not None:
                noise = [torch.cat([p["noise"][i] for p in parts])[chosen] for i in range(len(parts[0]["noise"]))]
            keys = list(dict.fromkeys(k for p in parts for k in p["history"]))
            length = max(p["length"] for p in parts)
            history: dict[str, Tensor] = {}
            for key in keys:
                blocks = []
                for p in parts:  # chunks that stopped early are padded with their last values
                    h = p["history"].get(key)
                    if h is None or h.shape[0] == 0:
                        h = torch.full((length, p["loss"].shape[0]), math.nan, device=p["loss"].device)
                    elif h.shape[0] < length:
                        h = torch.cat([h, h[-1:].expand(length - h.shape[0], -1)])
                    blocks.append(h)
                history[key] = torch.cat(blocks, dim=1)[:, chosen.to(blocks[0].device)]  # [T, n_t]
            return {"loss": best_loss[chosen], "latent": torch.cat([p["latent"] for p in parts])[chosen],
                    "diverged": torch.cat([p["diverged"] for p in parts])[chosen],
                    "noise": noise, "steps": torch.cat([p["steps"] for p in parts])[chosen], "restart": choice,
                    "history": history, "length": length}

        init = _initial_latents(G, y, s, render, score, stats, gen)
        best = solve(y, init, int(s.seed), s)
        rounds = torch.ones(B, dtype=torch.long, device=best["loss"].device)
        rows_before = K  # rows per target run so far (restart numbering continues over rounds)

        def rerun(todo: Tensor, restarts: int, seed: int) -> None:
            """Run targets ``todo`` again from ``restarts`` fresh random starts each; keep the better result."""
            nonlocal rows_before
            # random latents: best-of-N candidates tend to share the basin the first round was stuck in
            s_retry = replace(s, init="random", restarts=restarts)
            sub = solve(y[todo], _initial_latents(G, y[todo], s_retry, render, score, stats, gen), seed, s_retry)
            rounds[todo] += 1
            take = _finite_or_inf(sub["loss"]) < _finite_or_inf(best["loss"][todo])
            better = todo[take]
            best["steps"][todo] += sub["steps"]
            best["loss"][better] = sub["loss"][take]
            best["latent"][better] = sub["latent"][take]
            best["restart"][better] = sub["restart"][take] + rows_before
            best["diverged"][better] = sub["diverged"][take]
            rows_before += restarts
            if best["noise"] is not None:
                for m, m_new in zip(best["noise"], sub["noise"]):
                    m[better] = m_new[take]
            # curves: the rerun targets' new run is appended after the old one
            new_len = best["length"] + sub["length"]
            for key in set(best["history"]) | set(sub["history"]):
                old = best["history"].get(key)
                if old is None:
                    old = torch.full((best["length"], B), math.nan, device=best["loss"].device)
                ext = old[-1:].expand(sub["length"], B).clone() if old.shape[0] else \
                    torch.full((sub["length"], B), math.nan, device=old.device)
                if key in sub["history"]:
                    ext[:, todo] = sub["history"][key].to(ext.device)
                best["history"][key] = torch.cat([old, ext])
            best["length"] = new_len

        for retry in range(1, s.retries + 1):
            assert s.stop_loss is not None
            todo = (~(best["loss"] <= s.stop_loss)).nonzero().squeeze(1)  # NaN counts as not reached
            if todo.numel() == 0:
                break
            rerun(todo, K * 2 ** retry, int(s.seed) + 7919 * retry)  # twice as many starts each round
        lagged = 0
        if s.lagging is not None and B >= 3:
            for r in range(s.lagging_rounds):
                todo = lagging_targets(best["loss"], s.lagging, s.stop_loss)
                if todo.numel() == 0:
                    break
                lagged += int(todo.numel())
                rerun(todo, 2 * K * 2 ** r, int(s.seed) + 104729 * (r + 1))  # 2K, 4K, ... fresh starts
        latent, noise = best["latent"], best["noise"]
        with torch.no_grad():
            image = render(latent, noise)
            metrics: dict[str, Tensor] = {"loss": best["loss"].cpu(), "steps": best["steps"].cpu(),
                                          "restart": best["restart"].cpu()}
            if s.retries or lagged:
                metrics["rounds"] = rounds.cpu()
            diverged = best["diverged"].cpu()
            metrics["diverged"] = diverged >= 0
            metrics["data_fit"] = (op(image) - y).flatten(1).square().mean(1).cpu()
            if physics is None:
                from ganinv import metrics as M

                metrics["psnr"] = M.psnr(image, y).float().cpu()
                metrics["ssim"] = M.ssim(image, y).float().cpu()
        history = {key: h.tolist() for key, h in best["history"].items()}
    notes = [f"target {i}: the optimisation diverged (NaN/Inf objective) after {int(step)} steps; its result is "
             f"the best iterate before that (loss {float(metrics['loss'][i]):.4g})"
             for i, step in enumerate(diverged.tolist()) if step >= 0]
    return InversionResult(latent=latent.detach(), space=space, image=G.to_display(image.detach()),
                           noise=[m.detach() for m in noise] if noise is not None else None, metrics=metrics,
                           history=history, method="optimize", seconds=time.perf_counter() - t0,
                           settings=s.to_dict(), notes=notes)


__all__ = ["LAGGING_QUANTILE", "NEGLIGIBLE_LOSS", "NOISE_MODES", "OPTIMIZERS", "PRESETS", "Callback",
           "OptimizeSettings", "auto_batch_size", "lagging_targets", "latent_stats", "learning_rate_factor", "optimize",
           "preconditioner_scale", "resolve_noise", "resolve_optimizer", "warmup_steps"]
