"""``method="hybrid"``: encoder initialisation, then optimisation (iGAN / IDInvert).

The encoder's latent (W+ for StyleGAN2, z otherwise; ``passes`` ReStyle passes) starts the
optimisation engine — by default 100 iterations of the per-row L-BFGS with 100 curvature pairs and
the stored noise maps, not Adam: an encoder start is already in the right basin, where a
quasi-Newton method converges much faster. In W+ the L-BFGS is preconditioned (``lbfgs_precondition``
0.75: coordinates rescaled by the generator's Gauss-Newton diagonal, whose coarse-layer entries are
~40× the finest ones). On the 50 held-out digits of the methods benchmark (`mnist-stylegan2`, W+)
100 Adam steps reached 34.06 dB, 100 plain L-BFGS iterations 36.73 dB (~20 % more time, when each
iteration also spent a forward-only line-search trial; the trial's gradient is now kept for the next
iteration, which took 27 % off the hybrid's time) and 100 preconditioned ones 39.12 dB;
on `mnist-dcgan` (z) plain L-BFGS reached 27.57 dB against Adam's 25.11 dB. With ``domain > 0``
IDInvert's *domain regulariser* is added:
``domain · ‖E(G(w)) − w‖² / σ²`` per sample (σ² = the space's per-dimension variance), which keeps
the code where the encoder maps real-looking renderings, i.e. inside the generator's semantic
domain (useful for editing; it costs some fidelity).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult


@dataclass
class HybridSettings:
    """Settings of ``method="hybrid"``.

    Attributes:
        passes: encoder passes for the initial latent (ReStyle's 5: on the bundled StyleGAN2 they add
            ~2 dB to the start and ~0.7 dB after 100 optimisation steps, for the cost of a few renderings).
        domain: weight of IDInvert's encoder-consistency regulariser (0 = off; IDInvert uses 2.0).
        optimize: options of the optimisation phase (:class:`~ganinv.inverters.optimize.OptimizeSettings`
            fields). Defaults (:data:`HYBRID_DEFAULTS`): 100 L-BFGS iterations with 100 curvature pairs in
            the encoder's space (preconditioned in W+, :data:`HYBRID_PRECONDITION`), stored noise maps,
            restarts 1; ``{"optimizer": "adam"}`` gives iGAN's Adam
            refinement (then ``lr``, ``noise="joint"`` etc. apply as in ``method="optimize"``).
    """

    passes: int = 5
    domain: float = 0.0
    optimize: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The optimisation phase's defaults (see the module docstring for the measurements behind them).
HYBRID_DEFAULTS: dict[str, Any] = {"steps": 100, "restarts": 1, "optimizer": "lbfgs", "lbfgs_history": 100,
                                   "noise": "fixed"}

#: The L-BFGS preconditioner exponent per encoder space (``lbfgs_precondition``; other spaces: none).
#: The exponent was chosen on 50 validation digits outside the benchmark's 200
#: (``ganinv.train.encoder.validation_split``): 38.37 / 40.43 / 40.71 / 40.40 dB at 100 iterations for
#: 0 / 0.5 / 0.75 / 1. In W+ it took the 50 benchmark digits from 36.75 dB to 39.12 dB; in the DCGAN's z
#: it cost 0.3 dB (27.57 → 27.27), so z stays unpreconditioned.
HYBRID_PRECONDITION: dict[str, float] = {"w+": 0.75}


def invert_hybrid(G: Generator, target: Tensor, physics: Any = None, settings: HybridSettings | None = None, *,
                  encoder: nn.Module | str | Path | None = None, discriminator: nn.Module | None = None,
                  callback: Any = None) -> InversionResult:
    """Encode ``target`` (images in [0, 1]), then optimise from there; see the module docstring."""
    import time

    from ganinv.encoders import resolve_encoder
    from ganinv.inverters.encoder import encode
    from ganinv.inverters.optimize import OptimizeSettings, latent_stats, optimize
    from ganinv.train.encoder import encoder_space, render_start

    s = settings or HybridSettings()
    if s.domain < 0:
        raise InputError(f"domain weight must be ≥ 0, got {s.domain}")
    if physics is not None:
        raise InputError("method 'hybrid' encodes the target image itself, so it needs no physics; use "
                         "method 'optimize' for degraded observations")
    t0 = time.perf_counter()
    enc = resolve_encoder(encoder, G)
    space = encoder_space(G)
    opts = {**HYBRID_DEFAULTS, "lbfgs_precondition": HYBRID_PRECONDITION.get(space, 0.0), **s.optimize}
    if opts.get("space", space) != space:
        raise InputError(f"the encoder predicts {space!r} latents; hybrid optimises in that space")
    unknown = sorted(set(opts) - set(OptimizeSettings.__dataclass_fields__) - {"init"})
    if unknown:
        raise InputError(f"unknown optimisation option(s) {unknown} for method 'hybrid'")
    latent, _, _ = encode(G, target, enc, passes=s.passes)
    extra = None
    if s.domain > 0:
        var = latent_stats(G, space).var
        start_img = render_start(enc, G, space).detach()

        def domain(lat: Tensor, img: Tensor) -> Tensor:
            re = enc(img, start_img.expand(img.shape[0], *start_img.shape[1:]),
                     enc.start_latent.expand(lat.shape[0], *enc.start_latent.shape))
            return s.domain * (re - lat).flatten(1).square().mean(1) / var

        extra = {"domain": domain}
    settings_opt = replace(OptimizeSettings(), **{**opts, "space": space, "init": latent})
    result = optimize(G, target, None, settings_opt, discriminator=discriminator, callback=callback,
                      extra_terms=extra)
    result.method = "hybrid"
    result.seconds = time.perf_counter() - t0
    result.settings = {**s.to_dict(), "optimize": {k: v for k, v in result.settings.items() if k != "init"}}
    return result


__all__ = ["HYBRID_DEFAULTS", "HYBRID_PRECONDITION", "HybridSettings", "invert_hybrid"]
