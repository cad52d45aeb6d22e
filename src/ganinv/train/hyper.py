"""Train a hypernetwork encoder (:mod:`ganinv.encoders.hyper`) for a StyleGAN2 generator, resumably.

What a step does:

1. a batch of images: real ones (the user's ``data``, or — for the bundled 32 px digit generators without
   ``data`` — the MNIST train split), ``real_fraction`` of the batch, and generated ones ``G(w)`` for random
   (style-mixed) ``w`` for the rest (always at least one with ``data``, as ``train-encoder`` does);
2. their pivots: the frozen pivot encoder's W+ codes after ``pivot_passes`` ReStyle passes (or the mean latent),
   without gradients — the code is not trained, only the weight offsets are;
3. ``passes`` hypernetwork passes (each sees the target and the previous reconstruction, the offsets add up),
   the loss ``real_loss`` (MSE + SSIM by default; any :class:`~ganinv.losses.CombinedLoss` spec) on every
   pass's reconstruction, averaged over the passes, plus ``w_delta`` × the mean squared offset.

Every ``val_every`` steps the network is measured on held-out images (the user's held-out share, held-out
digits outside the benchmark's 200, or fixed generated samples without real images): PSNR of the pivot and
after each pass, SSIM after the last. The best snapshot (PSNR after the last pass) is exported as a model
folder that records the generator (name, fingerprint, how to load it) and the pivot (encoder, passes).

Files in the run folder: ``checkpoint.pt`` (weights, optimiser, RNG states, log: rerunning resumes),
``log.jsonl``, ``best.safetensors``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from ganinv.encoders.hyper import HyperNetwork, build_hyper, compute_pivot, run_hyper_passes, save_hyper
from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.losses import CombinedLoss
from ganinv.modelfile import atomic_write, read_safetensors, remove_stale_temporaries
from ganinv.train.encoder_data import ImageBank, UserImages, load_user_images
from ganinv.train.resume import BudgetedRun, linear_decay, read_checkpoint, resumed_config, save_best


@dataclass
class HyperTrainConfig:
    """Recipe of a hypernetwork run (recorded in the exported folder's metadata).

    ``pivot_encoder``: None = the bundled encoder trained for the generator, ``"mean"`` = the mean latent, else
    an encoder folder or bundled name. ``layers``: see :func:`ganinv.encoders.hyper.choose_layers`.
    """

    model: str = "mnist-stylegan2"
    pivot_encoder: str | None = None
    pivot_passes: int = 5
    layers: str = "auto"
    iterations: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    lr_decay_start: float = 0.6
    passes: int = 3
    real_fraction: float = 0.5
    mixing_prob: float = 0.5
    real_loss: str = "mse=1,ssim=0.5"
    w_delta: float = 0.0
    input_size: int | None = None
    width: int = 32
    max_width: int = 128
    hidden: int = 128
    rank: int = 8
    delta_scale: float = 1.0
    grad_step: bool = True
    val_every: int = 250
    val_images: int = 200
    val_generated: int = 64
    checkpoint_every: int = 100
    seed: int = 0
    time_budget: float | None = None  # seconds
    data: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    mnist: bool | None = None
    source: dict[str, Any] = field(default_factory=dict)


def _encoder_name_for(G: Generator) -> str:
    """The bundled encoder trained for ``G`` (its zoo name), or an :class:`InputError` saying what to pass."""
    from ganinv import zoo
    from ganinv.encoders import generator_fingerprint

    fp = generator_fingerprint(G)
    for name in zoo.available():
        meta = zoo.describe(name)
        if meta.get("kind") == "encoder" and meta.get("meta", {}).get("generator", {}).get("fingerprint") == fp:
            return name
    raise InputError("no bundled encoder was trained for this generator, and the hypernetwork needs a pivot: "
                     "pass --pivot-encoder FOLDER (train one with `ganinv train-encoder`) or --pivot-encoder mean")


class HyperTrainer(BudgetedRun):
    """A resumable hypernetwork run in ``out_dir`` (single process)."""

    def __init__(self, out_dir: str | Path, config: HyperTrainConfig, device: str | torch.device = "cpu", *,
                 generator: Generator | None = None, data: tuple[Tensor, Tensor] | None = None,
                 pivot: nn.Module | None = None) -> None:
        """``generator`` replaces loading ``config.model``; ``data`` = (train, validation) images ``[N, C, R, R]``
        in [0, 1] replaces ``config.data`` / MNIST; ``pivot`` an encoder module replaces ``config.pivot_encoder``
        (tests)."""
        from ganinv import zoo
        from ganinv.encoders import generator_fingerprint, resolve_encoder

        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.notes: list[str] = []
        state = None
        if self.ckpt_path.exists():
            state = read_checkpoint(self.ckpt_path)
            if state.get("kind") != "hyper":
                raise InputError(f"{self.out} holds another kind of run; use another --out folder")
            saved = HyperTrainConfig(**{"grad_step": False, **state["config"]})  # runs from before grad_step
            if saved.model != config.model:
                raise InputError(f"{self.out} holds a hypernetwork run for {saved.model!r}, not {config.model!r}; "
                                 "use another --out folder")
            config = resumed_config(saved, config)
        self.cfg = config
        if config.passes < 1 or config.pivot_passes < 1:
            raise InputError(f"passes and pivot passes must be ≥ 1, got {config.passes} and {config.pivot_passes}")
        if not 0 <= config.real_fraction <= 1:
            raise InputError(f"real_fraction must be in [0, 1], got {config.real_fraction}")
        if config.batch_size < 2:
            raise InputError(f"batch_size must be ≥ 2, got {config.batch_size}")
        self.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out)
        if generator is None:
            from ganinv.generators.checkpoints import load_generator

            generator, loader_notes = load_generator(config.model)
            self.notes += loader_notes
        self.G: Generator = generator.to(self.device).eval().requires_grad_(False)  # type: ignore[assignment]
        self.fingerprint = generator_fingerprint(self.G)
        if state is not None and state.get("fingerprint") != self.fingerprint:
            raise InputError(f"{self.out} holds a hypernetwork run for another generator (fingerprint "
                             f"{state.get('fingerprint')}, this one's is {self.fingerprint}); use another --out folder")
        # ----- the pivot
        if pivot is not None:
            self.pivot_spec = "given"
            self.encoder: nn.Module | None = resolve_encoder(pivot, self.G)
        elif config.pivot_encoder == "mean":
            self.pivot_spec, self.encoder = "mean", None
        else:
            spec = config.pivot_encoder or _encoder_name_for(self.G)
            folder = Path(spec).expanduser()
            self.pivot_spec = str(folder.resolve()) if (folder / "config.json").is_file() else spec
            self.encoder = resolve_encoder(self.pivot_spec, self.G)
        # ----- images
        self.user: UserImages | None = None
        self.real: ImageBank | None = None
        self.val_real: Tensor | None = None
        if config.mnist is None:
            config.mnist = (data is None and not config.data and config.model in zoo.available()
                            and tuple(self.G.image_shape) == (1, 32, 32))
        if data is not None:
            self.real, self.val_real = ImageBank(images=data[0]).to(self.device), data[1].to(self.device)
        elif config.data:
            self.user = load_user_images(list(config.data), self.G.channels, self.G.resolution, seed=config.seed,
                                         val_fraction=config.val_fraction, max_val=config.val_images,
                                         device=self.device)
            self.notes += self.user.notes
            self.real, self.val_real = self.user.train, self.user.val
        elif config.mnist:
            from ganinv.data import mnist
            from ganinv.train.encoder import validation_split

            self.real = ImageBank(images=mnist("train")[0]).to(self.device)
            self.val_real = validation_split(config.val_images)[0].to(self.device)
        else:
            self.notes.append("no --data: training on generated images only")
        torch.manual_seed(config.seed)
        self.net: HyperNetwork = build_hyper(self.G, config.layers, input_size=config.input_size,
                                             width=config.width, max_width=config.max_width, hidden=config.hidden,
                                             rank=config.rank, delta_scale=config.delta_scale,
                                             grad_step=config.grad_step).to(self.device)
        config.input_size = self.net.resolution
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.loss = CombinedLoss.from_spec(config.real_loss).to(self.device)
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self.iteration, self.train_seconds = 0, 0.0
        self.log: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        if state is not None:
            self.net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["opt"])
            self.iteration, self.train_seconds = int(state["iteration"]), float(state["train_seconds"])
            self.log = json.loads(state["log"])
            self.best = json.loads(state["best"]) if state.get("best") else None
            self.gen.set_state(state["gen"])
            torch.set_rng_state(state["rng"])

    # ----- data ---------------------------------------------------------------------------------
    def _generated(self, n: int, gen: torch.Generator, mixing_prob: float) -> Tensor:
        """``n`` generated images ``[n, C, R, R]`` in [0, 1] (style-mixed with probability ``mixing_prob``)."""
        G = self.G
        with torch.no_grad():
            z = torch.randn((n, *G.space("z").shape), generator=gen).to(self.device)
            lat = G.convert(z, "z", "w+")
            if mixing_prob > 0 and n > 0:
                z2 = torch.randn((n, *G.space("z").shape), generator=gen).to(self.device)
                lat2 = G.convert(z2, "z", "w+")
                cross = torch.randint(1, lat.shape[1], (n,), generator=gen).to(self.device)
                mix = torch.rand(n, generator=gen).to(self.device) < mixing_prob
                layer = torch.arange(lat.shape[1], device=self.device)[None, :, None]
                lat = torch.where((layer >= cross[:, None, None]) & mix[:, None, None], lat2, lat)
            lo, hi = G.output_range
            return ((G._native(lat, "w+", None) - lo) / (hi - lo)).float().clamp(0, 1)

    def n_real(self) -> int:
        """Real images per batch: ``real_fraction`` of it (≤ batch − 1 with the user's images), 0 without any."""
        if self.real is None:
            return 0
        n = int(round(self.cfg.batch_size * self.cfg.real_fraction))
        return min(n, self.cfg.batch_size - 1) if self.user is not None else n

    # ----- one step -----------------------------------------------------------------------------
    def step(self, images: Tensor) -> dict[str, float]:
        """One optimiser step on ``images`` ``[B, C, R, R]`` in [0, 1]; returns the loss and per-pass MSEs."""
        cfg = self.cfg
        self.net.train()
        pivot, pimg = compute_pivot(self.G, images, self.encoder, cfg.pivot_passes)
        runs = run_hyper_passes(self.net, self.G, images, pivot, pimg, cfg.passes)
        total = images.new_zeros(())
        stats: dict[str, float] = {}
        for p, (delta, img) in enumerate(runs):
            total = total + self.loss(img, images).mean() / cfg.passes
            stats[f"mse_{p + 1}"] = float((img.detach() - images).square().mean())
        if cfg.w_delta > 0:
            last = runs[-1][0]
            total = total + cfg.w_delta * sum(d.square().mean() for d in last.values()) / len(last)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        stats["loss"] = float(total.detach())
        stats["pivot_mse"] = float((pimg - images).square().mean())
        return stats

    def _lr_factor(self) -> float:
        return linear_decay(self.progress(), self.cfg.lr_decay_start)

    # ----- validation ---------------------------------------------------------------------------
    def validation_images(self) -> Tensor:
        """The held-out real images, or (without any) ``val_generated`` generated samples of a fixed seed."""
        if self.val_real is not None:
            return self.val_real
        return self._generated(max(1, self.cfg.val_generated), torch.Generator().manual_seed(self.cfg.seed + 99), 0)

    @torch.no_grad()
    def objective(self, images: Tensor) -> float:
        """The training loss (without the offset penalty) on ``images`` ``[B, C, R, R]`` in [0, 1], no update."""
        self.net.eval()
        y = images.to(self.device)
        pivot, pimg = compute_pivot(self.G, y, self.encoder, self.cfg.pivot_passes)
        runs = run_hyper_passes(self.net, self.G, y, pivot, pimg, self.cfg.passes)
        return float(sum(self.loss(img, y).mean() for _, img in runs) / self.cfg.passes)

    @torch.no_grad()
    def measure(self, images: Tensor, chunk: int = 64) -> dict[str, float]:
        """Mean ``pivot_psnr``, ``psnr_{p}`` per pass (dB) and ``ssim`` after the last pass on ``images``."""
        from ganinv import metrics as M

        self.net.eval()
        rows: dict[str, list[Tensor]] = {}
        for a in range(0, images.shape[0], chunk):
            y = images[a:a + chunk].to(self.device)
            pivot, pimg = compute_pivot(self.G, y, self.encoder, self.cfg.pivot_passes)
            runs = run_hyper_passes(self.net, self.G, y, pivot, pimg, self.cfg.passes)
            got = {"pivot_psnr": M.psnr(pimg.clamp(0, 1), y),
                   **{f"psnr_{p + 1}": M.psnr(img.clamp(0, 1), y) for p, (_, img) in enumerate(runs)},
                   "ssim": M.ssim(runs[-1][1].clamp(0, 1), y)}
            for k, v in got.items():
                rows.setdefault(k, []).append(v.double().cpu())
        return {k: float(torch.cat(v).mean()) for k, v in rows.items()}

    # ----- persistence --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {"kind": "hyper", "config": asdict(self.cfg), "net": self.net.state_dict(),
                 "opt": self.opt.state_dict(), "iteration": self.iteration, "train_seconds": self.train_seconds,
                 "log": json.dumps(self.log), "best": json.dumps(self.best) if self.best else None,
                 "gen": self.gen.get_state(), "rng": torch.get_rng_state(), "fingerprint": self.fingerprint}
        atomic_write(self.ckpt_path, lambda tmp: torch.save(state, tmp))
        atomic_write(self.out / "log.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.log)))

    # ----- loop ---------------------------------------------------------------------------------
    def train(self, quiet: bool = False) -> None:
        """Run until ``iterations`` or the time budget (resumable at any point); ``quiet`` hides the progress."""
        cfg = self.cfg
        n_real = self.n_real()
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        with Progress(*columns, disable=quiet) as progress:
            task = progress.add_task(f"train hypernetwork ({cfg.model})", total=cfg.iterations,
                                     completed=self.iteration, status="")
            while self.progress() < 1.0:
                t0 = time.perf_counter()
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * self._lr_factor()
                parts = []
                if n_real and self.real is not None:
                    idx = torch.randint(0, len(self.real), (n_real,), generator=self.gen)
                    parts.append(self.real.take(idx, self.device))
                if cfg.batch_size - n_real > 0:
                    parts.append(self._generated(cfg.batch_size - n_real, self.gen, cfg.mixing_prob))
                stats = self.step(torch.cat(parts))
                self.iteration += 1
                self.train_seconds += time.perf_counter() - t0
                if self.iteration % 10 == 0:
                    self.log.append({"iteration": self.iteration, **{k: round(v, 6) for k, v in stats.items()},
                                     "seconds": round(self.train_seconds, 1)})
                    progress.update(task, status=f"loss {stats['loss']:.4f}")
                done = self.progress() >= 1.0
                if done and self.iteration < cfg.iterations:
                    progress.update(task, total=self.iteration)
                if self.iteration % cfg.val_every == 0 or done:
                    val = {f"val_{k}": v for k, v in self.measure(self.validation_images()).items()}
                    self.log.append({"iteration": self.iteration, **val})
                    key = f"val_psnr_{cfg.passes}"
                    if self.best is None or val[key] > self.best[key]:
                        self.best = {"iteration": self.iteration, **val}
                        save_best(self.out / "best.safetensors", self.net)
                    progress.console.print(f"iter {self.iteration}: pivot {val['val_pivot_psnr']:.2f} dB → "
                                           + ", ".join(f"pass {p + 1} {val[f'val_psnr_{p + 1}']:.2f} dB"
                                                       for p in range(cfg.passes))
                                           + f", ssim {val['val_ssim']:.4f}")
                if self.iteration % cfg.checkpoint_every == 0 or done:
                    self.save_checkpoint()
                progress.update(task, completed=self.iteration)

    def export(self, folder: str | Path, name: str | None = None) -> dict[str, Any]:
        """Write the best validated hypernetwork as a model folder (``kind: "hyper-encoder"``); returns its meta."""
        best_path = self.out / "best.safetensors"
        if best_path.exists():
            self.net.load_state_dict(read_safetensors(best_path))
        target: dict[str, Any] = {"name": self.cfg.model, "fingerprint": self.fingerprint, "space": "w+",
                                  "resolution": self.G.resolution, "channels": self.G.channels}
        if self.cfg.source:
            target["source"] = {k: v for k, v in self.cfg.source.items() if k != "invert_args"}
            target["invert_args"] = self.cfg.source.get("invert_args")
        meta = {"generator": target,
                "pivot": {"encoder": self.pivot_spec, "passes": self.cfg.pivot_passes,
                          "hyper_passes": self.cfg.passes},
                "layers": self.net.layer_names, "iterations": self.iteration, "selected": self.best,
                "train_seconds": round(self.train_seconds, 1), "recipe": asdict(self.cfg),
                "data": (self.user.describe() if self.user is not None else
                         "MNIST train split + generated samples" if self.cfg.mnist else
                         "given tensors + generated samples" if self.real is not None else "generated samples")}
        save_hyper(self.net, folder, name=name or Path(folder).name, meta=meta)
        self.net.generator_info = target  # type: ignore[assignment]
        self.net.pivot_info = meta["pivot"]  # type: ignore[assignment]
        return meta


__all__ = ["HyperTrainConfig", "HyperTrainer"]
