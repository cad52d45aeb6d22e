"""``method="pti"``: pivotal tuning (Roich et al. 2022), storing only compact weight deltas.

1. **Pivot.** Invert each image into W (the pivot ``w_p``; z for z-only generators) with the
   optimisation engine — PTI's choice, because W codes stay editable.
2. **Tune.** Fine-tune the generator's synthesis weights so that ``G'(w_p)`` reproduces the image,
   with per-image early stopping and, optionally, PTI's locality regulariser (renderings at codes
   ``w_p + α·(w_r − w_p)/‖w_r − w_p‖`` of random ``w_r`` must not change).

PTI saves a full generator per image. Here each image owns only a *delta*: a rank-``r`` product
``U·V`` for every weight matrix/kernel (``rank=0``: the full difference) and the full difference
for vectors (biases, noise strengths). All images are tuned together — each its own delta, in one
batched ``torch.func.vmap`` pass — and the result holds one ``{name: tensor}`` dict per image.
:func:`apply_deltas` rebuilds the tuned generator from the base model and a delta, and the
reconstruction returned is rendered through exactly that path, so re-applying a saved delta
reproduces it bit for bit.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.base import Generator
from ganinv.inverters.base import InversionResult
from ganinv.memory import RowCost, describe, render_cost, rows_that_fit, run_halving

_U, _V, _FULL = ".lora_u", ".lora_v", ".delta"


@dataclass
class PTISettings:
    """Settings of ``method="pti"``.

    Attributes:
        pivot_space: the pivot's space (default: ``"w"`` where the generator has it, else ``"z"``).
        pivot: options for the pivot's :class:`~ganinv.inverters.optimize.OptimizeSettings` (e.g. ``{"steps": 300}``).
        steps: maximum tuning steps (PTI: 350).
        lr: Adam learning rate of the deltas.
        loss: reconstruction loss spec while tuning (PTI: ``"mse=1,lpips_alex=1"``).
        stop_psnr: an image stops tuning once its reconstruction reaches this PSNR (dB); None = never.
        rank: rank of each weight delta (0 = full-size deltas).
        locality: weight of the locality regulariser (0 = off; PTI uses 0.1 with α = 30).
        locality_alpha: distance of the locality codes from the pivot, in the space's units.
        locality_samples: locality codes per image and step.
        batch_size: images tuned together (None: 32).
        seed: randomness of the adapters' init and the locality codes.
    """

    pivot_space: str | None = None
    pivot: dict[str, Any] = field(default_factory=dict)
    steps: int = 350
    lr: float = 3e-3
    loss: str = "mse"
    stop_psnr: float | None = 55.0
    rank: int = 4
    locality: float = 0.0
    locality_alpha: float = 30.0
    locality_samples: int = 4
    batch_size: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Render(nn.Module):
    """``forward(latent) → native image``: lets ``torch.func.functional_call`` swap G's weights."""

    def __init__(self, G: Generator, space: str) -> None:
        super().__init__()
        self.G, self.space = G, space

    def forward(self, latent: Tensor) -> Tensor:
        return self.G._native(latent, self.space, None)


def tunable_parameters(G: Generator) -> dict[str, Tensor]:
    """The parameters PTI tunes: everything except a StyleGAN mapping network (the pivot is a W code)."""
    skip = ("style.", "mapping.")
    return {k: p for k, p in G.named_parameters() if not k.startswith(skip) and p.is_floating_point()}


def _matrix_shape(shape: torch.Size) -> tuple[int, int] | None:
    """``(rows, cols)`` of a weight viewed as a matrix (leading 1s dropped), or None for vectors."""
    dims = [d for d in shape]
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    if len(dims) < 2:
        return None
    rows, cols = dims[0], math.prod(dims[1:])
    return (rows, cols) if min(rows, cols) > 1 else None


def materialize(name: str, shape: torch.Size, delta: Mapping[str, Tensor]) -> Tensor | None:
    """The full-size difference for parameter ``name`` from a stored delta, or None if it has none."""
    if name + _FULL in delta:
        return delta[name + _FULL].reshape(shape)
    if name + _U in delta:
        return (delta[name + _U] @ delta[name + _V]).reshape(shape)
    return None


def apply_deltas(G: Generator, delta: Mapping[str, Tensor]) -> Generator:
    """A tuned copy of ``G``: each parameter named in ``delta`` becomes ``base + difference``.

    Raises:
        CheckpointError: ``delta`` names a parameter ``G`` lacks, or a shape does not fit.
    """
    params = dict(G.named_parameters())
    names = {k.removesuffix(_U).removesuffix(_V).removesuffix(_FULL) for k in delta}
    unknown = sorted(names - set(params))
    if unknown:
        raise CheckpointError(f"these deltas do not belong to this generator: unknown parameters {unknown[:6]}")
    tuned = copy.deepcopy(G)
    tuned_params = dict(tuned.named_parameters())
    with torch.no_grad():
        for name in names:
            base = params[name]
            try:
                diff = materialize(name, base.shape, {k: v.to(base.device, base.dtype) for k, v in delta.items()
                                                      if k.startswith(name + ".")})
            except RuntimeError as exc:
                raise CheckpointError(f"delta for {name} does not fit its shape {list(base.shape)}: {exc}") from None
            if diff is None:
                continue
            tuned_params[name].copy_(base + diff)
    return tuned.eval().requires_grad_(False)


def save_deltas(delta: Mapping[str, Tensor], path: str | Path, generator_fingerprint: str) -> Path:
    """Write one image's delta as safetensors (metadata: the base generator's fingerprint)."""
    from safetensors.torch import save_file

    from ganinv.modelfile import atomic_write

    state = {k: v.detach().cpu().contiguous() for k, v in delta.items()}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"format": "ganinv-pti-delta",
                                                                         "generator": generator_fingerprint}))
    return Path(path)


def load_deltas(path: str | Path, G: Generator | None = None) -> dict[str, Tensor]:
    """Read a delta file; with ``G``, refuse deltas made for another generator."""
    from safetensors import safe_open

    from ganinv.modelfile import read_safetensors

    state = read_safetensors(path)
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "ganinv-pti-delta":
        raise CheckpointError(f"{path} is not a ganinv PTI delta file")
    if G is not None:
        from ganinv.encoders import generator_fingerprint

        fp = generator_fingerprint(G)
        if meta.get("generator") != fp:
            raise CheckpointError(f"{path} was tuned from generator {meta.get('generator')}, not this one ({fp})")
    return state


def _init_adapters(params: Mapping[str, Tensor], B: int, rank: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Per-image adapter tensors ``[B, ...]``: U zeros and V random (so every delta starts at 0)."""
    out: dict[str, Tensor] = {}
    for name, p in params.items():
        mat = _matrix_shape(p.shape) if rank > 0 else None
        if mat is None or rank >= min(mat):
            out[name + _FULL] = torch.zeros((B, *p.shape), device=p.device)
        else:
            rows, cols = mat
            out[name + _U] = torch.zeros((B, rows, rank), device=p.device)
            out[name + _V] = (torch.randn((B, rank, cols), generator=gen) / math.sqrt(cols)).to(p.device)
    return out


def invert_pti(G: Generator, target: Tensor, settings: PTISettings | None = None, *,
               callback: Any = None, pivot: InversionResult | None = None) -> InversionResult:
    """Pivot inversion then per-image tuning; the result's ``deltas`` hold one dict per image.

    ``callback(step, state)`` sees the pivot's optimisation steps and then the tuning steps
    (``state.phase == "tune"``). ``pivot`` tunes from an inversion already made (same targets, in
    ``settings.pivot_space``) instead of running one.
    """
    from torch.func import functional_call, vmap

    from ganinv import metrics as M
    from ganinv.encoders import generator_fingerprint
    from ganinv.inverters.optimize import OptimizeSettings, _FrozenGenerator, optimize
    from ganinv.losses import CombinedLoss

    s = settings or PTISettings()
    if s.steps < 0 or s.rank < 0 or s.lr <= 0 or s.locality < 0 or s.locality_samples < 1:
        raise InputError("PTI needs steps ≥ 0, rank ≥ 0, lr > 0, locality ≥ 0 and locality_samples ≥ 1")
    t0 = time.perf_counter()
    space = s.pivot_space or ("w" if "w" in G.latent_spaces else "z")
    pivot_opts = {**s.pivot, "space": space, "seed": s.seed}
    unknown = sorted(set(pivot_opts) - set(OptimizeSettings.__dataclass_fields__))
    if unknown:
        raise InputError(f"unknown pivot option(s) {unknown} (valid: OptimizeSettings fields)")
    if pivot is None:
        pivot = optimize(G, target, None, replace(OptimizeSettings(), **pivot_opts), callback=callback)
    elif pivot.space != space or len(pivot) != target.shape[0]:
        raise InputError(f"the given pivot holds {len(pivot)} {pivot.space!r} latents; PTI needs one {space!r} latent "
                         f"per target ({target.shape[0]})")
    if space != "z":  # a W / W+ pivot renders without a class: tune a class-conditional model itself, so that its
        from ganinv.generators.conditional import unwrap  # deltas apply to it whichever class is bound later

        G = unwrap(G)
    y = target.to(G.device, torch.float32)
    B = y.shape[0]
    loss_fn = CombinedLoss.from_spec(s.loss).to(G.device)
    # clipped target pixels, as the pivot's optimisation saw them (its ``saturation`` option, on by default)
    loss_fn.saturation = bool(pivot_opts.get("saturation", OptimizeSettings.saturation))
    lo, hi = G.output_range
    gen = torch.Generator().manual_seed(int(s.seed) + 17)
    history: dict[str, list[list[float]]] = {"loss": []}
    deltas: list[dict[str, Tensor]] = []
    steps_run = torch.zeros(B, dtype=torch.long)
    diverged_at = torch.full((B,), -1, dtype=torch.long)  # tuning step at which a row's loss went NaN/Inf
    with _FrozenGenerator(G):
        wrapper = _Render(G, space)
        base = {"G." + k: v.detach() for k, v in tunable_parameters(G).items()}
        fixed = {k: v.detach() for k, v in wrapper.named_parameters() if k not in base}
        buffers = dict(wrapper.named_buffers())

        def render_one(adapters: dict[str, Tensor], lat: Tensor) -> Tensor:
            """One image's tuned generator at codes ``lat`` ``[k, *shape]`` → ``[k, C, H, W]`` in [0, 1]."""
            params = {}
            for k, v in base.items():
                diff = materialize(k, v.shape, adapters)
                params[k] = v + diff if diff is not None else v
            img = functional_call(wrapper, {**params, **fixed, **buffers}, (lat,))
            return (img - lo) / (hi - lo)

        batched = vmap(render_one)
        # one row: the rendering with gradients, plus its own materialised weights and their gradients (and,
        # for full-rank deltas, the delta and Adam's two moments)
        what = f"one PTI tuning step of the {describe(G)}"
        pbytes = sum(v.numel() * v.element_size() for v in base.values())
        render = render_cost(G, space)
        cost = RowCost(per_row=render.per_row + pbytes * (2 if s.rank else 5), fixed=render.fixed, how=render.how)
        chunk = s.batch_size or rows_that_fit(G, B, cost, cap=32, what=what)
        hist_rows: list[list[list[float]]] = []

        def tune(start: int, stop: int) -> None:
            """Tune the generator for targets [start, stop) side by side (one delta each)."""
            sl = slice(start, stop)
            n = sl.stop - sl.start
            steps_run[sl] = 0
            diverged_at[sl] = -1
            yc, lat = y[sl], pivot.latent[sl].detach()
            adapters = {k: v.requires_grad_(True) for k, v in _init_adapters(base, n, s.rank, gen).items()}
            best = {k: v.detach().clone() for k, v in adapters.items()}
            best_loss = torch.full((n,), math.inf, device=G.device)
            active = torch.ones(n, dtype=torch.bool, device=G.device)
            opt = torch.optim.Adam(list(adapters.values()), lr=s.lr)
            chunk_hist: list[list[float]] = []
            for t in range(s.steps):
                img = batched(adapters, lat[:, None])[:, 0]
                rec = loss_fn(img, yc)
                total = rec
                if s.locality > 0 and space != "z":
                    k = s.locality_samples
                    z = torch.randn((n * k, *G.space("z").shape), generator=gen).to(G.device)
                    w_r = G.convert(z, "z", space).view(n, k, *lat.shape[1:])
                    d = w_r - lat[:, None]
                    norm = d.flatten(2).norm(dim=2).view(n, k, *[1] * (d.dim() - 2))
                    w_loc = lat[:, None] + s.locality_alpha * d / norm
                    with torch.no_grad():
                        ref = (G._native(w_loc.flatten(0, 1), space, None) - lo) / (hi - lo)
                    moved = batched(adapters, w_loc).flatten(0, 1) - ref
                    total = total + s.locality * moved.flatten(1).square().mean(1).view(n, k).mean(1)
                with torch.no_grad():
                    blown = ~torch.isfinite(total.detach()) & active  # stops at its best delta, on its own
                    if blown.any():
                        diverged_at[sl][blown.cpu()] = t
                        active &= ~blown
                    better = (rec < best_loss) & active
                    best_loss = torch.where(better, rec.detach(), best_loss)
                    for k, v in adapters.items():
                        best[k][better] = v.detach()[better]
                    steps_run[sl][active.cpu()] += 1
                    psnr_now = M.psnr(img.detach().clamp(0, 1), yc)
                    if s.stop_psnr is not None:
                        active &= psnr_now < s.stop_psnr
                    chunk_hist.append(rec.detach().cpu().tolist())
                if not active.any():
                    break
                opt.zero_grad(set_to_none=True)
                (total * active.float()).sum().backward()
                opt.step()
                if callback is not None:
                    from ganinv.inverters.base import InversionState

                    callback(t, InversionState(step=t, total_steps=s.steps, phase="tune",
                                               rows=torch.arange(sl.start, sl.stop), latent=lat, image=img.detach(),
                                               loss=rec.detach(), terms={}, active=active.clone()))
            hist_rows.append(chunk_hist)
            for i in range(n):
                deltas.append({k.removeprefix("G."): v[i].detach().clone() for k, v in best.items()})

        run_halving(tune, B, chunk, device=G.device, what=what, per_row=cost.bytes_for(1))
        length = max((len(h) for h in hist_rows), default=0)
        for step in range(length):
            history["loss"].append([v for h in hist_rows for v in (h[min(step, len(h) - 1)] if h else [])])
        # the reconstruction is rendered through apply_deltas, the same path a reload takes
        images = []
        with torch.no_grad():
            for i in range(B):
                tuned = apply_deltas(G, deltas[i])
                images.append((tuned._native(pivot.latent[i:i + 1], space, None) - lo) / (hi - lo))
        image = torch.cat(images).clamp(0, 1)
    fp = generator_fingerprint(G)
    metrics = {"psnr": M.psnr(image, y).float().cpu(), "ssim": M.ssim(image, y).float().cpu(),
               "loss": (image - y).flatten(1).square().mean(1).cpu(), "steps": steps_run,
               "pivot_psnr": pivot.metrics["psnr"], "diverged": diverged_at >= 0}
    notes = list(pivot.notes) + [
        f"target {i}: generator tuning diverged (NaN/Inf loss) at step {step}; its delta is the best one before "
        f"that" for i, step in enumerate(diverged_at.tolist()) if step >= 0]
    return InversionResult(latent=pivot.latent.detach(), space=space, image=image, noise=None, metrics=metrics,
                           history=history, method="pti", seconds=time.perf_counter() - t0,
                           settings={**s.to_dict(), "generator_fingerprint": fp}, deltas=deltas, notes=notes)


def delta_bytes(delta: Mapping[str, Tensor]) -> int:
    """Bytes of one image's delta tensors (what the safetensors file stores, without its header)."""
    return sum(v.numel() * v.element_size() for v in delta.values())


__all__ = ["PTISettings", "apply_deltas", "delta_bytes", "invert_pti", "load_deltas", "materialize",
           "save_deltas", "tunable_parameters"]
