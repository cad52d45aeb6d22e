"""Coarse-to-fine inversion for skip-output generators (StyleGAN2's toRGB sum is an image at every resolution).

A stage at resolution ``r`` optimises against the target averaged down to ``r`` × ``r`` while rendering only
the synthesis blocks up to ``r`` (:class:`CoarseView`) and, in W+, only the w+ rows those blocks read; the
next stage adds the finer blocks and rows, and the last runs at full resolution with the run's own settings.
Every stage is an ordinary :func:`~ganinv.inverters.optimize.optimize` call on a generator view, so batching,
memory budgets, per-row stopping and L-BFGS work unchanged.

What a stage does:

- **Targets.** The target averaged down (area) to ``r``. From the second stage on, minus the *residual*
  ``down(G(ℓ)) − G_r(ℓ)`` at the current latent ``ℓ``: what the blocks above ``r`` add to the low frequencies
  (their toRGB outputs are not band-limited), held fixed for the stage, so the coarse image is fitted to what it
  must contribute rather than to the whole target.
- **Latents.** The first stage starts the way the run would (best-of-N candidates scored at ``r``: 64
  renderings at 32 px cost about as much as one at 256 px), with the run's restarts, lagging-target reruns and
  its space. In W+ a stage optimises the first ``prefix_rows(r)`` rows; rows a stage adds start from the last
  optimised row (which is the first code of the next block). W and z are optimised whole at every stage.
- **What stays at full resolution.** Noise maps are the stored ones in coarse stages (a joint / after noise
  phase runs in the last stage); the loss keeps its pixel terms (MSE, L1; MSE when it has none), since
  LPIPS, SSIM windows and discriminator features are not meaningful at 16–64 px; extra objective terms,
  retries and the polish phase run in the last stage only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganinv.errors import InputError
from ganinv.generators.base import Generator, LatentSpace
from ganinv.losses import parse_loss_spec
from ganinv.memory import describe, render_cost, rows_that_fit

#: Loss terms a coarse stage keeps (the rest need full-size images or windows larger than a 16 px image).
COARSE_TERMS = ("mse", "l1")
#: ``coarse="auto"`` runs one stage at this resolution on generators of at least :data:`AUTO_MIN_RESOLUTION`.
AUTO_STAGE = 64
AUTO_MIN_RESOLUTION = 256


class CoarseView(Generator):
    """A skip-output generator rendered only up to ``resolution`` (a view: it shares the generator's weights).

    Latent spaces: those of the generator, with W+ cut to the ``G.prefix_rows(resolution)`` rows the coarse
    synthesis reads; noise maps: the first ``G.prefix_noise_layers(resolution)``. Output ``[B, C, r, r]`` in the
    generator's native range.
    """

    def __init__(self, G: Generator, resolution: int) -> None:
        super().__init__()
        if resolution not in G.skip_resolutions():
            options = ", ".join(map(str, G.skip_resolutions())) or "none"
            raise InputError(f"the {describe(G)} has no coarse image at {resolution} px (it has: {options})")
        self.G = G  # registered: freezing, fingerprints and meta copies see the weights
        self.arch = f"{G.arch} up to {resolution} px"
        self.resolution = resolution
        self.image_shape = (G.image_shape[0], resolution, resolution)
        self.output_range = G.output_range
        self.rows = G.prefix_rows(resolution)
        self.noise_layers = G.prefix_noise_layers(resolution)

    def _latent_spaces(self) -> dict[str, LatentSpace]:
        spaces = dict(self.G.latent_spaces)
        if "w+" in spaces:
            full = spaces["w+"]
            spaces["w+"] = LatentSpace("w+", (self.rows, *full.shape[1:]), f"the first {self.rows} rows of w+")
        return spaces

    @property
    def default_space(self) -> str:
        return self.G.default_space

    @property
    def noise_shapes(self) -> list[tuple[int, ...]]:
        return list(self.G.noise_shapes)[:self.noise_layers]

    def stored_noise(self) -> list[Tensor]:
        return list(self.G.stored_noise())[:self.noise_layers]

    @property
    def device(self) -> torch.device:
        return self.G.device

    @property
    def w_avg(self) -> Tensor:
        return self.G.w_avg

    def config(self) -> dict[str, Any]:
        return {**self.G.config(), "coarse_resolution": self.resolution}

    def mapping(self, z: Tensor) -> Tensor:
        return self.G.mapping(z)

    def convert(self, latent: Tensor, src: str, dst: str) -> Tensor:
        if dst == "w+" and src != "w+":
            return self.G.convert(latent, src, "w")[:, None].expand(-1, self.rows, -1)
        return self.G.convert(latent, src, dst)

    def mean_latent(self, space: str = "w") -> Tensor:
        return self.convert(self.G.mean_latent("w"), "w", space) if space == "w+" else self.G.mean_latent(space)

    def _native(self, latent: Tensor, space: str, noise: list[Tensor] | None) -> Tensor:
        ws = self.convert(latent, space, "w+")
        return self.G.synthesis_prefix(ws, list(noise) if noise is not None else self.stored_noise(),
                                       self.resolution)


def parse_stages(G: Generator, coarse: str | Sequence[int] | None, *, physics: bool = False,
                 loss: Any = "mse", noise: str = "fixed") -> list[int]:
    """The coarse stages' resolutions, ascending, for ``coarse``:

    - ``None`` / ``"off"`` / ``"none"`` / ``[]``: none;
    - ``"auto"``: one stage at :data:`AUTO_STAGE` px for a generator of at least :data:`AUTO_MIN_RESOLUTION` px
      that has coarse images, when the run is a plain reconstruction whose loss is pixel terms only and whose
      noise maps stay fixed (what was measured, ``benchmarks/real_size.py``); otherwise none;
    - ``"32,64"`` or ``[32, 64]``: those (each one of ``G.skip_resolutions()``).

    Raises :class:`InputError` for stages the generator does not have, or stages with a forward operator.
    """
    if coarse is None or (isinstance(coarse, str) and coarse.strip().lower() in ("off", "none", "")):
        return []
    if isinstance(coarse, str) and coarse.strip().lower() == "auto":
        pixel_only = _pixel_only(loss)
        ok = (not physics and pixel_only and noise == "fixed" and AUTO_STAGE in G.skip_resolutions()
              and G.image_shape[-1] >= AUTO_MIN_RESOLUTION)
        return [AUTO_STAGE] if ok else []
    if isinstance(coarse, str):
        try:
            values = [int(v) for v in coarse.replace(" ", "").split(",") if v]
        except ValueError:
            raise InputError(f"coarse stages must be 'auto', 'off' or resolutions like '32,64', got {coarse!r}") \
                from None
    else:
        values = [int(v) for v in coarse]
    if not values:
        return []
    if physics:
        raise InputError("coarse-to-fine stages fit downsampled images; with a forward operator (restoration) "
                         "use coarse 'off'")
    available = G.skip_resolutions()
    bad = [v for v in values if v not in available]
    if bad:
        have = ", ".join(map(str, available)) or "none: its image exists only at the end"
        raise InputError(f"the {describe(G)} has no coarse image at {', '.join(map(str, bad))} px "
                         f"(coarse resolutions: {have})")
    return sorted(set(values))


def _pixel_only(loss: Any) -> bool:
    weights = parse_loss_spec(loss) if isinstance(loss, str) else dict(loss)
    return all(name in COARSE_TERMS for name, w in weights.items() if w)


def coarse_loss(loss: Any) -> dict[str, float]:
    """The loss of a coarse stage: the pixel terms of ``loss`` (:data:`COARSE_TERMS`), or MSE when it has none."""
    weights = parse_loss_spec(loss) if isinstance(loss, str) else dict(loss)
    kept = {name: float(w) for name, w in weights.items() if name in COARSE_TERMS and w}
    return kept or {"mse": 1.0}


def downsample(images: Tensor, resolution: int) -> Tensor:
    """Box-average ``[B, C, H, W]`` images to ``[B, C, r, r]`` (H and W multiples of ``r``)."""
    if images.shape[-1] == resolution:
        return images
    return F.avg_pool2d(images, images.shape[-1] // resolution)


def prefix_latent(view: CoarseView, latent: Tensor, space: str) -> Tensor:
    """A full-space latent → the view's: the first rows in W+, unchanged otherwise."""
    return latent[:, :view.rows] if space == "w+" else latent


def extend_latent(coarse: Tensor, full_rows: int, space: str) -> Tensor:
    """A view's latent → one with ``full_rows`` rows in W+ (new rows copy the last optimised one); else as is."""
    if space != "w+" or coarse.shape[1] == full_rows:
        return coarse
    extra = coarse[:, -1:].expand(-1, full_rows - coarse.shape[1], -1)
    return torch.cat([coarse, extra], dim=1).contiguous()


@torch.no_grad()
def residual(G: Generator, view: CoarseView, latent: Tensor, space: str) -> Tensor:
    """``down(G(ℓ)) − G_r(ℓ)`` ``[B, C, r, r]`` in [0, 1] units: what the blocks above ``r`` add at ``r``,
    rendered with the stored noise maps in memory-sized chunks."""
    parts = []
    chunk = rows_that_fit(G, latent.shape[0], render_cost(G, space), what=f"rendering the {describe(G)}")
    for lat in latent.split(chunk):
        parts.append(downsample(G.synthesize(lat, space), view.resolution)
                     - view.synthesize(prefix_latent(view, lat, space), space))
    return torch.cat(parts)


def run_coarse_to_fine(G: Generator, y: Tensor, s: Any, stages: list[int], optimize_fn: Callable[..., Any],
                       callback: Callable[[int, Any], None] | None, final: Callable[[Any], Any]) -> Any:
    """Run the coarse stages of validated settings ``s`` (an ``OptimizeSettings``) on targets ``y``
    ``[B, C, H, W]`` in [0, 1], each through ``optimize_fn(view, target, None, settings, callback=…)``, then
    ``final(settings)`` at full resolution from their latent. Returns what ``final`` returns, with the stages in
    its ``settings["coarse_stages"]`` and their steps added to ``metrics["steps"]``; callbacks of a stage see
    ``phase = "coarse <r>px"`` and images at ``r`` px."""
    space = s.space
    full_rows = G.space(space).shape[0] if space == "w+" else 0
    loss = coarse_loss(s.loss)
    latent: Tensor | None = None
    steps = torch.zeros(y.shape[0], dtype=torch.long)
    record: list[dict[str, Any]] = []
    common = {"loss": loss, "noise": "fixed", "noise_steps": 0, "polish_steps": 0, "retries": 0, "stop_loss": None,
              "coarse": None, "steps": coarse_steps(s.steps, s.coarse_steps)}
    for r in stages:
        t0 = time.perf_counter()
        view = CoarseView(G, r)
        target = downsample(y, r)
        if latent is None:  # the first stage starts the way the run would: its init, restarts, lagging reruns
            stage = replace(s, **common)
        else:
            target = target - residual(G, view, latent, space)
            stage = replace(s, **common, lagging=None, restarts=1, init=prefix_latent(view, latent, space))
        name = f"coarse {r}px"

        def relay(step: int, state: Any, name: str = name) -> None:
            assert callback is not None
            callback(step, replace(state, phase=name))

        res = optimize_fn(view, target, None, stage, callback=relay if callback is not None else None)
        latent = extend_latent(res.latent, full_rows, space)
        steps += res.metrics["steps"].cpu()
        record.append({"resolution": r, "steps": int(res.metrics["steps"].sum()),
                       "seconds": round(time.perf_counter() - t0, 3),
                       "mean_loss": float(res.metrics["loss"].mean())})
    assert latent is not None
    # the first stage already reran lagging targets; a full-resolution rerun from random starts would throw the
    # coarse stages away at the highest cost
    out = final(replace(s, init=latent, restarts=1, coarse=None, lagging=None))
    out.metrics["steps"] = out.metrics["steps"] + steps
    out.settings.update(coarse=list(stages), coarse_stages=record,
                        init=s.init if isinstance(s.init, str) else "tensor", restarts=s.restarts,
                        lagging=s.lagging)
    return out


def coarse_steps(steps: int, given: int | None = None) -> int:
    """Steps of each coarse stage: ``given``, else ``max(50, steps // 5)`` (a stage only has to bring the latent
    into the right basin; per-row stopping ends it sooner when its loss stops improving)."""
    return given if given is not None else max(50, steps // 5)


def stage_summary(record: list[dict[str, Any]]) -> str:
    """``32 px: 120 steps, 4.1 s; 64 px: …`` for logs."""
    return "; ".join(f"{r['resolution']} px: {r['steps']} steps, {r['seconds']:.1f} s" for r in record)


__all__ = ["AUTO_MIN_RESOLUTION", "AUTO_STAGE", "COARSE_TERMS", "CoarseView", "coarse_loss", "coarse_steps",
           "downsample", "extend_latent", "parse_stages", "prefix_latent", "residual", "run_coarse_to_fine",
           "stage_summary"]

