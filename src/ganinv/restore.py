"""Restoration with a GAN prior: solve ``y = A(x) + n`` for ``x = G(z)``, optionally as K hypotheses.

:func:`restore` runs :func:`ganinv.invert` through a task's forward operator (any deepinv physics
works) and returns the restorations ranked by data fit. With ``hypotheses=K`` it runs K
independent optimisations (each from its own random candidate pool, seeds ``seed … seed+K−1``)
and reports how much they disagree: for an ill-posed task (a large hole, ×8 super-resolution,
few compressed measurements, the twin image of phase retrieval) several images fit the
observation, and the user should see them rather than one arbitrary answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters import PHYSICS_METHODS, InversionResult, InversionState, invert
from ganinv.physics.tasks import Task, custom_task

#: What restoration changes from the inversion defaults, per method. A single code is optimised in
#: W (z for z-only generators) rather than W+, and StyleGAN2 noise maps stay fixed: both keep the
#: solution on the generator's manifold, which is the point of using it as a prior for an ill-posed
#: problem (W+ and free noise maps can fit the observation with images that are not digits).
RESTORE_DEFAULTS: dict[str, dict[str, Any]] = {
    "optimize": {"steps": 500, "noise": "fixed", "init": "best-of-64", "restarts": 2},
    "multicode": {"steps": 500},
}

#: Default latent-prior weight, as a weight on the *summed* squared residual (Bora et al.'s CSGM form
#: ``‖A G(z) − y‖² + λ‖z‖²``): the engine's data term is a mean over the observation, so the prior
#: weight passed on is ``PRIOR_SCALE / numel(y)`` — strong when there are few measurements, faint
#: when there are many. 10 was chosen on validation digits (compressed sensing with 10–100
#: measurements, both bundled generators; docs/restoration.md).
PRIOR_SCALE = 10.0

RestoreCallback = Callable[[int, int, InversionState], None]


@dataclass
class Restoration:
    """Restorations of ``B`` observations, ``K`` hypotheses each, best data fit first.

    Attributes:
        task: the degradation (its ``physics`` maps images to observations).
        images: ``[B, K, C, H, W]`` in [0, 1], hypothesis 0 the best data fit.
        data_fit: ``[B, K]`` mean squared residual ``‖A(x̂) − y‖² / numel(y)``, ascending per row.
        rank: ``[B, K]``: which run (seed offset) produced each ranked hypothesis.
        diversity: ``[B]`` mean pairwise RMSE between the K hypotheses (0 when K = 1), in [0, 1] units.
        results: the K inversion results, in run order (latents, metrics, histories).
        seconds: wall time of all runs.
    """

    task: Task
    images: Tensor
    data_fit: Tensor
    rank: Tensor
    diversity: Tensor
    results: list[InversionResult]
    seconds: float

    @property
    def best(self) -> Tensor:
        """The best-fitting restoration per observation ``[B, C, H, W]``."""
        return self.images[:, 0]

    def hypothesis_result(self, b: int, k: int) -> InversionResult:
        """Ranked hypothesis ``k`` of observation ``b`` as a one-target inversion result (latent, metrics)."""
        return self.results[int(self.rank[b, k])].select(torch.tensor([b]))


def pairwise_rmse(images: Tensor) -> Tensor:
    """Mean pairwise root-mean-square difference of ``[B, K, ...]`` → ``[B]`` (0 for K = 1)."""
    B, K = images.shape[:2]
    if K < 2:
        return torch.zeros(B)
    flat = images.flatten(2).float()
    d = torch.cdist(flat, flat) / flat.shape[-1] ** 0.5  # [B, K, K]
    iu = torch.triu_indices(K, K, offset=1)
    return d[:, iu[0], iu[1]].mean(1)


def restore(G: Generator, y: Tensor, task: Task | Any, *, method: str = "optimize", hypotheses: int = 1,
            seed: int = 0, callback: RestoreCallback | None = None, **options: Any) -> Restoration:
    """Restore observations ``y`` of ``task`` with ``G`` as the prior.

    Args:
        G: the generator (frozen for the call).
        y: observations ``[B, *task.observation_shape]`` (e.g. from ``task.simulate(x)``).
        task: a :class:`~ganinv.physics.tasks.Task` (see :func:`ganinv.physics.make_task`) or any
            deepinv physics / callable forward operator.
        method: ``"optimize"`` (one code) or ``"multicode"`` (mGANprior).
        hypotheses: K ≥ 1 independent runs, ranked by data fit.
        seed: seed of run 0 (run k uses ``seed + k``).
        callback: ``callback(run, step, state)`` per optimisation step.
        options: settings of the method (:class:`~ganinv.inverters.OptimizeSettings` or
            :class:`~ganinv.inverters.MultiCodeSettings` fields); they override
            :data:`RESTORE_DEFAULTS` and the default prior weight ``PRIOR_SCALE / numel(y)``.
    Returns:
        :class:`Restoration`.
    """
    if method not in PHYSICS_METHODS:
        raise InputError(f"restoration needs a method that takes a forward operator: {', '.join(PHYSICS_METHODS)}; "
                         f"got {method!r}")
    if isinstance(hypotheses, bool) or not isinstance(hypotheses, int) or hypotheses < 1:
        raise InputError(f"hypotheses must be a whole number ≥ 1, got {hypotheses!r}")
    if not isinstance(task, Task):
        task = custom_task(task, tuple(G.image_shape))
    if tuple(task.image_shape) != tuple(G.image_shape):
        raise InputError(f"the task was built for {list(task.image_shape)} images but the generator makes "
                         f"{list(G.image_shape)}")
    task.to(G.device)
    y = task.check_observation(y).to(G.device)
    settings = dict(RESTORE_DEFAULTS[method])
    if method == "optimize":
        settings["space"] = "w" if "w" in G.latent_spaces else G.default_space
        if not G.noise_shapes:
            settings.pop("noise")
    settings["prior"] = PRIOR_SCALE / max(1, math.prod(task.observation_shape))
    settings.update(options)
    t0 = time.perf_counter()
    results = []
    for k in range(hypotheses):
        cb = (lambda step, state, k=k: callback(k, step, state)) if callback is not None else None
        results.append(invert(G, y, task.physics, method=method, callback=cb, **{**settings, "seed": seed + k}))
    images = torch.stack([r.image.detach().cpu() for r in results], dim=1)  # [B, K, C, H, W]
    fits = torch.stack([r.metrics["data_fit"].cpu() for r in results], dim=1)  # [B, K]
    rank = fits.argsort(dim=1)
    images = torch.gather(images, 1, rank.view(*rank.shape, 1, 1, 1).expand_as(images))
    fits = torch.gather(fits, 1, rank)
    return Restoration(task=task, images=images, data_fit=fits, rank=rank, diversity=pairwise_rmse(images),
                       results=results, seconds=time.perf_counter() - t0)


__all__ = ["RESTORE_DEFAULTS", "Restoration", "pairwise_rmse", "restore"]
