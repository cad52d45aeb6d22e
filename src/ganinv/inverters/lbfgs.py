"""A batched L-BFGS in which every row is its own optimisation problem.

``torch.optim.LBFGS`` treats all parameters as one vector: a batch of inversions shares one
curvature history and one line-search step, so each image's result depends on the others and
convergence slows as the batch grows. Here each row ``i`` of ``x`` ``[n, D]`` keeps its own
history pairs ``(s, y)``, its own two-loop recursion and its own backtracking (Armijo) line
search, while every function evaluation still runs the whole batch through the generator at once.
Near a minimum this converges superlinearly, which is what exact recovery of a generated image
(PSNR ≥ 40 dB) needs after Adam has found the right basin.

The line search's first trial (the full quasi-Newton step, accepted for ~97 % of the row-steps of the
hybrid inversion on the bundled StyleGAN2's W+) is evaluated *with* its gradient, which is kept for the next iteration: an
iteration then costs one forward and one backward pass instead of a forward, a backward and a
forward. Without that reuse the forward-only trial took ~30 % of the hybrid inversion's time (a
forward with autograd recording costs the same as one without; the backward to the latent about one
forward). Later trials (backtracking) stay forward-only, and a row whose point was moved from outside
(``x`` set by the caller) is evaluated afresh.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: ``fn(x, rows) -> loss [len(rows)]`` evaluated at ``x`` ``[len(rows), D]`` for the given row indices;
#: or ``(loss, aux)`` where ``aux`` is a dict of tensors with ``len(rows)`` leading rows (what the caller
#: wants to know about the point, e.g. its rendering), handed back by :meth:`BatchedLBFGS.step` for the
#: point each row stepped from.
Objective = Callable[[Tensor, Tensor], "Tensor | tuple[Tensor, dict[str, Tensor]]"]


class BatchedLBFGS:
    """Per-row L-BFGS over ``x`` ``[n, D]``.

    Args:
        x0: starting points ``[n, D]``.
        fn: objective, see :data:`Objective` (must be differentiable in ``x``; rows independent).
        history: curvature pairs kept per row.
        first_step: length (in ``x`` units) of the steepest-descent step a row takes when it has
            no usable curvature yet.
        c1: Armijo sufficient-decrease constant.
        max_backtracks: halvings tried before a row gives up its step for this iteration.
    """

    def __init__(self, x0: Tensor, fn: Objective, history: int = 10, first_step: float = 0.1, c1: float = 1e-4,
                 max_backtracks: int = 12) -> None:
        self.x = x0.detach().clone()
        self.fn = fn
        self.m = history
        self.first_step = first_step
        self.c1 = c1
        self.max_backtracks = max_backtracks
        self.s: list[Tensor] = []
        self.y: list[Tensor] = []
        self.rho: list[Tensor] = []
        self.prev_x: Tensor | None = None
        self.prev_g: Tensor | None = None
        self.last_f: Tensor | None = None
        # evaluations with gradient kept for the next iteration: the point, its loss, gradient, aux, validity
        n = self.x.shape[0]
        self._cx = torch.full_like(self.x, float("nan"))
        self._cf = torch.zeros(n, device=self.x.device)
        self._cg = torch.zeros_like(self.x)
        self._caux: dict[str, Tensor] = {}
        self._cok = torch.zeros(n, dtype=torch.bool, device=self.x.device)
        self.aux: dict[str, Tensor] = {}
        self.evaluations = {"gradient": 0, "forward": 0}  # row-evaluations of each kind (for profiling)

    def _call(self, x: Tensor, rows: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.fn(x, rows)
        self.evaluations["gradient" if x.requires_grad else "forward"] += int(rows.numel())
        return out if isinstance(out, tuple) else (out, {})

    def _evaluate(self, x: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Loss, gradient and aux at ``x`` ``[len(rows), D]`` (rows evaluated together)."""
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            fr, aux = self._call(xr, rows)
            (gr,) = torch.autograd.grad(fr.sum(), xr)
        return fr.detach(), gr.detach(), {k: v.detach() for k, v in aux.items()}

    def _keep(self, rows: Tensor, x: Tensor, f: Tensor, g: Tensor, aux: dict[str, Tensor]) -> None:
        """Remember an evaluation with gradient of ``rows`` for the next iteration."""
        self._cx[rows], self._cf[rows], self._cg[rows], self._cok[rows] = x, f, g, True
        for k, v in aux.items():
            if k not in self._caux:
                self._caux[k] = torch.zeros((self.x.shape[0], *v.shape[1:]), dtype=v.dtype, device=v.device)
            self._caux[k][rows] = v

    def _direction(self, g: Tensor) -> Tensor:
        """Two-loop recursion, per row; rows without curvature get a scaled steepest-descent step."""
        q = g.clone()
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            a = rho * (s * q).sum(1)
            q -= a.unsqueeze(1) * y
            alphas.append(a)
        gnorm = g.norm(dim=1).clamp_min(1e-30)
        fallback = (self.first_step / gnorm)
        if self.s:
            s, y = self.s[-1], self.y[-1]
            yy = (y * y).sum(1)
            has = (self.rho[-1] > 0) & (yy > 0)
            gamma = torch.where(has, (s * y).sum(1) / yy.clamp_min(1e-30), fallback)
        else:
            gamma = fallback
        r = gamma.unsqueeze(1) * q
        for (s, y, rho), a in zip(zip(self.s, self.y, self.rho), reversed(alphas)):
            b = rho * (y * r).sum(1)
            r += s * (a - b).unsqueeze(1)
        return -r

    def step(self, active: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One iteration for every row; rows where ``active`` is False are neither evaluated nor moved.

        Returns ``(x_before, loss_before [n], grad_before [n, D])``; ``self.x`` holds the new points and
        ``self.aux`` the aux of ``x_before`` (see :data:`Objective`) for the active rows, in row order.
        """
        n = self.x.shape[0]
        rows = torch.arange(n, device=self.x.device) if active is None else active.nonzero().squeeze(1)
        x = self.x.detach()
        f = self.last_f.clone() if self.last_f is not None else torch.full((n,), float("inf"), device=x.device)
        g = torch.zeros_like(x)
        if rows.numel():  # stopped rows are not evaluated: their gradient is taken as 0 (no move)
            kept = self._cok[rows] & (self._cx[rows] == x[rows]).all(1)
            fresh = rows[~kept]
            if fresh.numel():
                fr, gr, aux = self._evaluate(x[fresh], fresh)
                self._keep(fresh, x[fresh], fr, gr, aux)
            f[rows], g[rows] = self._cf[rows], self._cg[rows]
            self.aux = {k: v[rows] for k, v in self._caux.items()}
        if self.prev_x is not None and self.prev_g is not None:
            s, y = x - self.prev_x, g - self.prev_g
            sy = (s * y).sum(1)
            ok = sy > 1e-10 * s.norm(dim=1) * y.norm(dim=1)
            rho = torch.where(ok, 1.0 / sy.where(ok, torch.ones_like(sy)), torch.zeros_like(sy))
            self.s.append(s * ok.unsqueeze(1))
            self.y.append(y * ok.unsqueeze(1))
            self.rho.append(rho)
            if len(self.s) > self.m:
                self.s.pop(0)
                self.y.pop(0)
                self.rho.pop(0)
        d = self._direction(g)
        gd = (g * d).sum(1)
        bad = ~(gd < 0) | ~torch.isfinite(gd)
        if bad.any():  # not a descent direction: steepest descent, and forget this row's curvature
            d[bad] = -g[bad] * (self.first_step / g[bad].norm(dim=1, keepdim=True).clamp_min(1e-30))
            gd = (g * d).sum(1)
            for rho in self.rho:
                rho[bad] = 0.0
        if active is not None:
            d = d * active.unsqueeze(1)
        t = torch.ones(n, device=x.device)
        accepted = torch.zeros(n, dtype=torch.bool, device=x.device) if active is None else ~active
        accepted |= g.norm(dim=1) == 0
        new_x = x.clone()
        self._cok[:] = False
        for attempt in range(self.max_backtracks):
            todo = (~accepted).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            trial = (x[todo] + t[todo].unsqueeze(1) * d[todo]).detach()
            if attempt == 0:  # the full step: evaluated with its gradient, kept if accepted
                f_try, g_try, aux_try = self._evaluate(trial, todo)
            else:
                with torch.no_grad():
                    f_try = self._call(trial, todo)[0].detach()
            ok = torch.isfinite(f_try) & (f_try <= f[todo] + self.c1 * t[todo] * gd[todo])
            new_x[todo[ok]] = trial[ok]
            accepted[todo[ok]] = True
            if attempt == 0 and bool(ok.any()):
                self._keep(todo[ok], trial[ok], f_try[ok], g_try[ok], {k: v[ok] for k, v in aux_try.items()})
            t[todo[~ok]] *= 0.5
        # a row that took no step is still at the point evaluated above: its loss, gradient and aux stay valid
        if rows.numel():
            self._cok[rows[(new_x[rows] == x[rows]).all(1)]] = True
        self.prev_x, self.prev_g, self.last_f = x, g, f
        self.x = new_x
        return x, f, g


__all__ = ["BatchedLBFGS", "Objective"]
