"""Multi-code inversion (mGANprior, Gu et al. 2020): N latent codes composed at an intermediate layer.

One latent code rarely reproduces an image the generator did not make; N codes can, when their
feature maps are blended at an intermediate layer ``ℓ`` with learned per-channel importance:

    F = Σ_n α_n ⊙ G_head(z_n)        (α_n ∈ R^{C_ℓ}, one weight per feature channel)
    x = G_tail(F)

The head is run once per code (a batch of ``B·N``), the blend and the tail once per target. For
StyleGAN2 the state at a split point is the feature map *and* the skip image of the toRGB path,
so both are blended (the skip image with its own per-channel weights), and the layers after the
split take their own w+ rows (``tail``), optimised with the codes and started from the best code.

Everything is per target: ``B`` targets are optimised together, each keeps the best state it has
been scored at. Works with any ``physics``, so it restores as well as it reconstructs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult, InversionState
from ganinv.inverters.optimize import (_check_target, _FrozenGenerator, _operator, latent_stats,
                                       learning_rate_factor)
from ganinv.losses import CombinedLoss
from ganinv.losses.pixel import mse
from ganinv.losses.priors import PRIORS, latent_prior
from ganinv.memory import RowCost, describe, render_cost, rows_that_fit, run_halving

Callback = Callable[[int, InversionState], None]


@dataclass
class MultiCodeSettings:
    """Knobs of :func:`invert_multicode`.

    Attributes:
        codes: number of latent codes N (mGANprior: 30 for 1024 px faces).
        layer: composition layer, 1-based index into ``G.feature_layers()`` (None: the generator's
            default, its 8×8 layer).
        space: space of each code (None: ``w`` where the generator has it, else ``z``).
        steps: Adam steps.
        lr: peak learning rate of the codes (and of the StyleGAN2 tail codes).
        importance_lr: peak learning rate of the per-channel importance weights.
        loss: loss spec of the data fit (``"mse"``, ``"mse=1,lpips=0.5"``, ...).
        prior: weight of the latent prior, averaged over the codes (see
            :func:`ganinv.losses.priors.latent_prior`).
        z_prior: ``"gaussian"`` or ``"shell"`` (codes in z).
        candidates: the N codes of a target start from the N best of this many random latents.
        lr_rampup, lr_rampdown: warm-up and cosine ramp-down fractions (as in :mod:`.optimize`).
        batch_size: targets per batch (None: as many as keep ``targets × codes`` ≤ 256).
        seed: seed of the candidate draw.
    """

    codes: int = 10
    layer: int | None = None
    space: str | None = None
    steps: int = 500
    lr: float = 0.05
    importance_lr: float = 0.02
    loss: str = "mse"
    prior: float = 0.0
    z_prior: str = "gaussian"
    candidates: int = 64
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    batch_size: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validate(G: Generator, s: MultiCodeSettings) -> tuple[MultiCodeSettings, int, str]:
    for name in ("codes", "steps", "candidates"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must be a whole number ≥ 1, got {v!r}")
    for name in ("lr", "importance_lr"):
        v = getattr(s, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number, got {v!r}")
    for name in ("prior", "lr_rampup", "lr_rampdown"):
        v = getattr(s, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise InputError(f"{name} must be a finite number ≥ 0, got {v!r}")
    if s.z_prior not in PRIORS:
        raise InputError(f"unknown z prior {s.z_prior!r}; choose from {', '.join(PRIORS)}")
    if s.batch_size is not None and s.batch_size < 1:
        raise InputError(f"batch size must be ≥ 1, got {s.batch_size}")
    layer = G.check_feature_layer(s.layer) if s.layer is not None else G.default_feature_layer()
    space = s.space or ("w" if "w" in G.latent_spaces else G.default_space)
    G.space(space)
    return s, layer, space


def render_multicode(G: Generator, codes: Tensor, importance: list[Tensor], tail: Tensor | None, space: str,
                     layer: int) -> Tensor:
    """Render composed codes → images ``[B, C, H, W]`` in nominal [0, 1] (unclamped).

    Args:
        codes: ``[B, N, *space shape]``.
        importance: one ``[B, N, C_i]`` weight tensor per state tensor of ``G.render_head``.
        tail: ``[B, *G.tail_shape(layer)]`` or None (generators whose tail takes no latent).
    """
    B, N = codes.shape[:2]
    state = G.render_head(codes.reshape(B * N, *codes.shape[2:]), space, layer)
    if len(importance) != len(state):
        raise InputError(f"{len(importance)} importance tensors for {len(state)} state tensors at layer {layer}")
    mixed = []
    for feat, alpha in zip(state, importance):
        feat = feat.view(B, N, *feat.shape[1:])
        if tuple(alpha.shape) != (B, N, feat.shape[2]):
            raise InputError(f"importance weights must be [{B}, {N}, {feat.shape[2]}], got {list(alpha.shape)}")
        mixed.append((alpha[..., None, None] * feat).sum(1))
    lo, hi = G.output_range
    return (G.render_tail(mixed, tail, layer) - lo) / (hi - lo)


def invert_multicode(G: Generator, target: Tensor, physics: Any = None, settings: MultiCodeSettings | None = None,
                     *, callback: Callback | None = None) -> InversionResult:
    """Invert ``target`` (images, or observations of ``physics``) with N composed codes per target.

    Returns an :class:`InversionResult` whose ``latent`` is ``[B, N, *space shape]`` and whose
    ``extra`` holds ``importance_<i>`` ``[B, N, C_i]``, ``tail`` (StyleGAN2) and ``layer``;
    :func:`render_multicode` re-renders them.
    """
    t0 = time.perf_counter()
    s, layer, space = _validate(G, settings or MultiCodeSettings())
    op = _operator(physics)
    with _FrozenGenerator(G):
        y = _check_target(G, target, physics)
        dev = y.device
        B, N = y.shape[0], s.codes
        loss_fn = CombinedLoss.from_spec(s.loss).to(dev)
        stats = latent_stats(G, space)
        shape = G.space(space).shape
        gen = torch.Generator().manual_seed(int(s.seed))
        n_cand = max(s.candidates, N)
        with torch.no_grad():  # candidate pool, shared by all targets; each target takes its N best
            z = torch.randn((n_cand, *G.space("z").shape), generator=gen).to(dev) if "z" in G.latent_spaces else \
                torch.randn((n_cand, *shape), generator=gen).to(dev)
            pool = G.convert(z, "z", space) if "z" in G.latent_spaces else z
            lo, hi = G.output_range
            scores = torch.empty(B, pool.shape[0], device=dev)
            cost = render_cost(G, space)  # with gradients: bounds a no-grad rendering
            what = f"scoring {pool.shape[0]} candidate codes on the {describe(G)}"

            def score(start: int, stop: int) -> None:  # rendered once for all targets, then let go
                pred = op((G._native(pool[start:stop], space, None) - lo) / (hi - lo))
                for b in range(B):
                    scores[b, start:stop] = loss_fn(pred, y[b:b + 1].expand_as(pred))

            run_halving(score, pool.shape[0], rows_that_fit(G, pool.shape[0], cost, cap=256, what=what),
                        device=dev, what=what, per_row=cost.bytes_for(1))
            order = scores.argsort(dim=1)[:, :N]
        # a target's row renders its N codes' heads and the composed tail: about N renderings with gradients
        per_target = RowCost(per_row=cost.per_row * (N + 1), fixed=cost.fixed, how=cost.how)
        what = f"one multi-code step ({N} codes) of the {describe(G)}"
        chunk = s.batch_size or rows_that_fit(G, B, per_target, cap=max(1, 256 // N), what=what)
        outs: list[dict[str, Any]] = run_halving(
            lambda start, stop: _optimise(G, y[start:stop], pool[order[start:stop]], s, layer, space, loss_fn, op,
                                          stats, callback, start),
            B, chunk, device=dev, what=what, per_row=per_target.bytes_for(1))
        starts = [0]
        for o in outs[:-1]:
            starts.append(starts[-1] + o["codes"].shape[0])
        codes = torch.cat([o["codes"] for o in outs])
        importance = [torch.cat([o["importance"][i] for o in outs]) for i in range(len(outs[0]["importance"]))]
        tail = torch.cat([o["tail"] for o in outs]) if outs[0]["tail"] is not None else None
        loss = torch.cat([o["loss"] for o in outs])
        diverged = torch.cat([o["diverged"] for o in outs])
        hist_len = max(len(o["history"]) for o in outs)
        history = [[math.nan] * B for _ in range(hist_len)]
        for o, start in zip(outs, starts):
            for t, row in enumerate(o["history"]):
                history[t][start:start + len(row)] = row
        with torch.no_grad():
            image = render_multicode(G, codes, importance, tail, space, layer)
            metrics: dict[str, Tensor] = {"loss": loss.cpu(), "steps": torch.full((B,), s.steps),
                                          "data_fit": mse(op(image), y).cpu(), "diverged": diverged >= 0}
            if physics is None:
                from ganinv import metrics as M

                metrics["psnr"] = M.psnr(image, y).float().cpu()
                metrics["ssim"] = M.ssim(image, y).float().cpu()
    extra: dict[str, Tensor] = {f"importance_{i}": a.detach() for i, a in enumerate(importance)}
    if tail is not None:
        extra["tail"] = tail.detach()
    settings_d = {**s.to_dict(), "layer": layer, "space": space}
    notes = [f"target {i}: the optimisation diverged (NaN/Inf loss) at step {step}; its result is the best state "
             f"before that" for i, step in enumerate(diverged.tolist()) if step >= 0]
    return InversionResult(latent=codes.detach(), space=space, image=G.to_display(image.detach()), noise=None,
                           metrics=metrics, history={"loss": history}, method="multicode",
                           seconds=time.perf_counter() - t0, settings=settings_d, extra=extra, notes=notes)


def _optimise(G: Generator, y: Tensor, init: Tensor, s: MultiCodeSettings, layer: int, space: str,
              loss_fn: CombinedLoss, op: Callable[[Tensor], Tensor], stats: Any, callback: Callback | None,
              offset: int) -> dict[str, Any]:
    """Adam on (codes, importance, tail) for one chunk of targets; per-target best state."""
    B, N = init.shape[:2]
    codes = init.clone().requires_grad_(True)
    with torch.no_grad():
        probe = G.render_head(init[:1, 0], space, layer)
    importance = [torch.full((B, N, f.shape[1]), 1.0 / N, device=y.device, requires_grad=True) for f in probe]
    tail_shape = G.tail_shape(layer)
    tail = None
    if tail_shape is not None:  # the layers after the split start from the best code's w+ rows
        tail = G.convert(init[:, 0], space, "w+")[:, -tail_shape[0]:].detach().clone().requires_grad_(True)
    groups = [{"params": [codes] + ([tail] if tail is not None else []), "base_lr": s.lr},
              {"params": importance, "base_lr": s.importance_lr}]
    opt = torch.optim.Adam(groups, lr=s.lr)
    best_loss = torch.full((B,), math.inf, device=y.device)
    best = {"codes": codes.detach().clone(), "importance": [a.detach().clone() for a in importance],
            "tail": tail.detach().clone() if tail is not None else None}
    history: list[list[float]] = []
    rows = torch.arange(offset, offset + B)
    diverged_at = torch.full((B,), -1, dtype=torch.long)  # step at which a target's loss went NaN/Inf

    def objective() -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Total loss per target ``[B]``, its terms, and the rendering of the current state."""
        img = render_multicode(G, codes, importance, tail, space, layer)
        total_loss = loss_fn(op(img), y)
        terms = dict(loss_fn.last_terms)
        if s.prior > 0:
            pr = latent_prior(codes.flatten(0, 1), space, mean=stats.mean, variance=stats.var,
                              kind=s.z_prior).view(B, N).mean(1)
            terms["prior"] = pr.detach()
            total_loss = total_loss + s.prior * pr
        return total_loss, terms, img

    @torch.no_grad()
    def keep_better(total_loss: Tensor) -> None:
        """Targets whose current state scores below their best so far keep it (a diverged target is frozen at
        its best state before the divergence, even if its loss comes back)."""
        nonlocal best_loss
        better = (total_loss.detach() < best_loss) & (diverged_at < 0).to(best_loss.device)
        best_loss = torch.where(better, total_loss.detach(), best_loss)
        best["codes"][better] = codes.detach()[better]
        for b_a, a in zip(best["importance"], importance):
            b_a[better] = a.detach()[better]
        if tail is not None:
            best["tail"][better] = tail.detach()[better]

    for t in range(s.steps):
        factor = learning_rate_factor(t / s.steps, s.lr_rampup, s.lr_rampdown)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        opt.zero_grad(set_to_none=True)
        total_loss, terms, img = objective()
        total_loss.sum().backward()  # rows are independent: a NaN row's gradient stays in its own rows
        blown = (~torch.isfinite(total_loss.detach())).cpu() & (diverged_at < 0)
        diverged_at[blown] = t  # from here on its best state so far is what it returns
        keep_better(total_loss)
        history.append(total_loss.detach().cpu().tolist())
        if callback is not None:
            callback(t, InversionState(step=t, total_steps=s.steps, phase="latent", rows=rows, latent=codes.detach(),
                                       image=img.detach(), loss=total_loss.detach(), terms=terms,
                                       active=torch.ones(B, dtype=torch.bool)))
        opt.step()
    with torch.no_grad():  # the final state (after the last step) may be the best
        keep_better(objective()[0])
    return {**best, "loss": best_loss, "history": history, "diverged": diverged_at}


__all__ = ["MultiCodeSettings", "invert_multicode", "render_multicode"]
