"""Class-balance fine-tuning of a StyleGAN2 mapping network (a classifier in the loop, after CB-GAN).

An unconditional GAN trained on class-balanced data can still sample its classes unevenly: the
bundled ``mnist-stylegan2`` drew 14.6 % ones and 6.7 % twos, and its discriminator rated the
over-represented ones as the most realistic, so more adversarial training did not even it out
(docs/training-notes.md, fifth round). Rangwani et al. (2021, "Class Balancing GAN with a
Classifier in the Loop") add a term that pushes the *marginal* class distribution of a batch of
samples towards uniform, measured by a classifier trained on the labelled data.

Here that term alone fine-tunes only the **mapping network** z → w. The synthesis network is
frozen, so every w renders exactly the image it rendered before; what changes is how often each
region of W is drawn. The objective is ``KL(p̄ ‖ uniform) = Σ_k p̄_k log(K p̄_k)`` with ``p̄`` the mean of
an *auxiliary* classifier's softmax over the samples. No per-sample term: it does not ask any single
sample to look more like a class, only for the classes to be drawn equally often.

A batch of 256 holds ~26 samples per class, so its own ``p̄`` is a noisy estimate of the generator's
class shares, and Adam (which normalises step sizes) turns that noise into steps as large as the signal's:
in our runs, the batch's own KL plateaued near 5.0× the Fréchet floor, and a larger learning rate overshot
(a class that had been too rare became too frequent). Like CB-GAN's running class statistics, the loss
therefore weights the batch's mean probabilities by an exponential moving average of the shares,
``Σ_k log(K · p̂_k) · p̄_k`` with ``p̂ ← m·p̂ + (1 − m)·p̄`` (detached): its gradient is that of the KL at
the smoothed estimate ``p̂``, and Adam's momentum averages what noise is left.

The auxiliary classifier must be another network than the evaluation classifier (which measures
confidence, coverage and the Fréchet distance of the quality table); :class:`MappingBalancer`
refuses the bundled evaluation classifier's exact weights. Train one with, e.g.,
``ganinv train-classifier --width 16 --feature-dim 64 --seed 1 --epochs 12 --out runs/aux-classifier``.

A run lives in a folder: ``checkpoint.pt`` (rerun to resume), ``log.jsonl``, ``curves.png`` and
``snapshots/step_N.safetensors`` (mapping weights at each evaluation). :meth:`MappingBalancer.export`
writes a complete model folder (the generator with the chosen mapping network and a re-estimated
``w_avg``, the source model's discriminator unchanged), choosing the evaluated snapshot with the lowest
Fréchet distance to the **train** split among those meeting the confidence and coverage floor.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from ganinv.errors import InputError
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.modelfile import atomic_write, read_config, read_safetensors, save_pretrained
from ganinv.train.quality import Quality, generator_quality, meets_sample_floor


def marginal_kl_to_uniform(probs: Tensor) -> Tensor:
    """``KL(p̄ ‖ uniform)`` for class probabilities ``probs`` ``[B, K]`` (rows sum to 1); ``p̄`` is their mean.

    0 when the batch's classes are drawn equally often, ``log K`` when every sample is one class.
    """
    if probs.ndim != 2 or probs.shape[0] < 1:
        raise InputError(f"expected class probabilities [B, K], got shape {list(probs.shape)}")
    pbar = probs.mean(0)
    return (pbar * (pbar * probs.shape[1]).clamp_min(1e-12).log()).sum()


@dataclass
class BalanceConfig:
    """Recipe of a class-balance fine-tune (the defaults made the shipped ``mnist-stylegan2``)."""

    steps: int = 100
    batch_size: int = 256
    lr: float = 0.02
    betas: tuple[float, float] = (0.9, 0.99)
    lr_decay_start: float = 0.0  # fraction of the run after which the learning rate falls linearly to 0
    share_ema: float = 0.9  # momentum m of the running class shares p̂ (0: the batch's own p̄, i.e. its KL)
    seed: int = 0
    eval_every: int = 25
    eval_samples: int = 10_000
    checkpoint_every: int = 10


#: Samples of the quality an exported generator reports (the chosen step's evaluation is reused when it used as many).
EXPORT_SAMPLES = 10_000


def _fingerprint(module: nn.Module) -> str:
    from ganinv.encoders import generator_fingerprint

    return generator_fingerprint(module)


class MappingBalancer:
    """A resumable class-balance fine-tune of ``G``'s mapping network in ``out`` (see module docstring).

    Args:
        G: the StyleGAN2 generator (its synthesis weights are never changed).
        aux: auxiliary classifier, ``[B, 1, H, W]`` images in [0, 1] → ``[B, K]`` logits.
        out: run folder.
        cfg: the recipe.
        evaluator: classifier for the quality checks (the bundled evaluation classifier by default).
        source: where ``G`` came from (a model folder), recorded and used by :meth:`export`.
    """

    def __init__(self, G: nn.Module, aux: nn.Module, out: str | Path, cfg: BalanceConfig | None = None,
                 evaluator: nn.Module | None = None, source: str | Path | None = None) -> None:
        if not isinstance(G, StyleGAN2Generator):
            raise InputError(f"class balancing fine-tunes a StyleGAN2 mapping network; this generator is "
                             f"{getattr(G, 'arch', type(G).__name__)!r}, which has none")
        from ganinv import zoo

        self.cfg = cfg or BalanceConfig()
        if self.cfg.steps < 1 or self.cfg.batch_size < 2 or self.cfg.eval_every < 1:
            raise InputError("steps must be ≥ 1, batch size ≥ 2 and eval_every ≥ 1")
        self.evaluator = (evaluator if evaluator is not None else zoo.load_classifier()).eval()
        if _fingerprint(aux) == _fingerprint(self.evaluator):
            raise InputError("the auxiliary classifier is the evaluation classifier itself: the quality table "
                             "would then measure what the fine-tune optimised; train a separate one "
                             "(`ganinv train-classifier --width 16 --feature-dim 64 --seed 1 --out DIR`)")
        self.G, self.aux = G.eval(), aux.eval()
        self.out, self.source = Path(out), (Path(source) if source is not None else None)
        for p in list(self.G.parameters()) + list(self.aux.parameters()) + list(self.evaluator.parameters()):
            p.requires_grad_(False)
        self.params = list(self.G.style.parameters())
        for p in self.params:
            p.requires_grad_(True)
        self.opt = torch.optim.Adam(self.params, lr=self.cfg.lr, betas=self.cfg.betas)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.step = 0
        self.shares: Tensor | None = None  # running class shares p̂ [K]
        self.train_seconds = 0.0
        self.log: list[dict[str, Any]] = []
        self.ckpt_path = self.out / "checkpoint.pt"
        self._resume()

    # ----- state ---------------------------------------------------------------------------------
    def _resume(self) -> None:
        if not self.ckpt_path.is_file():
            return
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        if state.get("recipe") != _recipe(self.cfg):
            raise InputError(f"{self.ckpt_path} was written by another recipe ({state.get('recipe')}); "
                             f"use a new --out folder or the same options")
        self.G.style.load_state_dict(state["style"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["rng"])
        self.step, self.train_seconds = int(state["step"]), float(state["train_seconds"])
        self.shares = state.get("shares")
        self.log = json.loads(state["log"])

    def save_checkpoint(self) -> None:
        state = {"style": self.G.style.state_dict(), "opt": self.opt.state_dict(), "rng": self.gen.get_state(),
                 "step": self.step, "train_seconds": self.train_seconds, "log": json.dumps(self.log),
                 "shares": self.shares,
                 "recipe": _recipe(self.cfg)}
        atomic_write(self.ckpt_path, lambda tmp: torch.save(state, tmp))
        atomic_write(self.out / "log.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.log)))

    def _snapshot_path(self, step: int) -> Path:
        return self.out / "snapshots" / f"step_{step}.safetensors"

    # ----- training ------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): constant, then linear to 0 from ``lr_decay_start``."""
        start = self.cfg.lr_decay_start * self.cfg.steps
        if step < start:
            return self.cfg.lr
        return self.cfg.lr * max(0.0, 1.0 - (step - start) / max(1.0, self.cfg.steps - start))

    def class_probs(self, batch_size: int) -> Tensor:
        """The auxiliary classifier's softmax ``[B, K]`` on ``batch_size`` fresh samples (differentiable in the
        mapping network)."""
        z = torch.randn(batch_size, self.G.z_dim, generator=self.gen).to(self.G.device)
        images = self.G.to_display(self.G.synthesize(self.G.mapping(z), "w"))  # [0, 1], stored noise
        return self.aux(images).softmax(1)

    def train_step(self) -> dict[str, float]:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        probs = self.class_probs(self.cfg.batch_size)
        pbar = probs.mean(0)
        m = self.cfg.share_ema
        shares = pbar.detach() if self.shares is None else m * self.shares + (1 - m) * pbar.detach()
        loss = ((shares * shares.numel()).clamp_min(1e-12).log() * pbar).sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"class-balance loss is {loss.item()} at step {self.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.shares = shares
        self.step += 1
        return {"step": self.step, "loss": float(marginal_kl_to_uniform(probs.detach())),
                "running_kl": float((shares * (shares * shares.numel()).log()).sum()),
                "batch_min_class": float(pbar.detach().min()), "batch_max_class": float(pbar.detach().max()),
                "lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Quality of the current mapping (``w_avg`` re-estimated), logged and snapshotted."""
        self.G.estimate_w_avg(10_000)
        q = generator_quality(self.G, self.evaluator, n=self.cfg.eval_samples, with_train=True)
        record = {"step": self.step, **q.to_dict(), "min_class": min(q.coverage), "max_class": max(q.coverage)}
        self.log.append(record)
        path = self._snapshot_path(self.step)
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.G.style.state_dict().items()}
        atomic_write(path, lambda tmp: save_file(state, tmp))
        return record

    def train(self, progress: bool = True) -> None:
        """Run (or resume) to ``cfg.steps``; evaluates at step 0 and every ``eval_every`` steps."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not any(r.get("step") == 0 and "fd" in r for r in self.log):
            self.evaluate()
            self.save_checkpoint()
        columns = (TextColumn("[bold]class balance"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("balance", total=self.cfg.steps, completed=self.step, info="")
            while self.step < self.cfg.steps:
                t0 = time.perf_counter()
                record = self.train_step()
                self.train_seconds += time.perf_counter() - t0
                self.log.append(record)
                info = f"KL batch {record['loss']:.4f}, running {record['running_kl']:.4f}"
                evaluated = self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps
                if evaluated:
                    q = self.evaluate()
                    info += f"  FD {q['fd_ratio']:.2f}× floor, classes {q['min_class']:.3f}–{q['max_class']:.3f}"
                    bar.console.print(f"step {self.step}: {info}")
                if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps:
                    self.save_checkpoint()
                if evaluated:  # the curves (~0.6 s to draw) are redrawn with each evaluation, not each checkpoint
                    _plot(self.log, self.out / "curves.png")
                bar.update(task, completed=self.step, info=info)

    # ----- export --------------------------------------------------------------------------------
    def best_step(self) -> int:
        """The evaluated step with the lowest train-split Fréchet distance among those meeting the
        confidence/coverage floor (among all evaluated steps when none does)."""
        evals = [r for r in self.log if "fd_train" in r and r.get("fd_train") is not None]
        if not evals:
            raise InputError("nothing evaluated yet: train first")
        floor_ok = [r for r in evals if meets_sample_floor(r)]
        return int(min(floor_ok or evals, key=lambda r: r["fd_train"])["step"])

    def export(self, folder: str | Path, name: str) -> dict[str, Any]:
        """Write the generator with the best snapshot's mapping (and the source's discriminator) to ``folder``.

        Returns the metadata written into its config (recipe, chosen step, quality on ``eval_samples``).
        """
        chosen = self.best_step()
        self.G.style.load_state_dict(read_safetensors(self._snapshot_path(chosen)))
        self.G.estimate_w_avg(10_000)
        record = next(r for r in self.log if r.get("step") == chosen and "fd" in r)
        # the chosen step's evaluation already measured these weights (same seed) when it used EXPORT_SAMPLES
        quality = (_quality_fields(record) if record["n_samples"] == EXPORT_SAMPLES
                   else generator_quality(self.G, self.evaluator, n=EXPORT_SAMPLES, with_train=True).to_dict())
        meta: dict[str, Any] = {}
        src_cfg: dict[str, Any] = {}
        if self.source is not None and (self.source / "config.json").is_file():
            src_cfg = read_config(self.source)
            meta = dict(src_cfg.get("meta", {}))
        meta["class_balance"] = {"recipe": _recipe(self.cfg), "steps_run": self.step, "selected_step": chosen,
                                 "selected_by_fd_to": "train split", "train_seconds": round(self.train_seconds, 1),
                                 "auxiliary_classifier": _fingerprint(self.aux),
                                 "quality_before": next((_quality_fields(r) for r in self.log if r.get("step") == 0
                                                         and "fd" in r), None)}
        meta["quality"] = quality
        folder = Path(folder)
        extra: dict[str, Any] = {}
        if "discriminator" in src_cfg and self.source is not None:
            d_src = self.source / "discriminator.safetensors"
            if folder.resolve() != self.source.resolve():
                atomic_write(folder / "discriminator.safetensors", lambda tmp: shutil.copyfile(d_src, tmp))
            extra["discriminator"] = src_cfg["discriminator"]
        save_pretrained(self.G, folder, name=name, kind="generator", meta=meta, extra_config=extra)
        return meta


def _recipe(cfg: BalanceConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["betas"] = list(d["betas"])
    return d


def _quality_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The :meth:`Quality.to_dict` part of a logged evaluation."""
    return {k: record[k] for k in (*Quality.__dataclass_fields__, "fd_ratio", "passes") if k in record}


def _plot(log: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [r for r in log if "loss" in r]
    axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, label="batch")
    axes[0].plot([r["step"] for r in steps], [r.get("running_kl", float("nan")) for r in steps], lw=1.2,
                 label="running shares")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("KL(class shares ‖ uniform)")
    axes[0].legend(fontsize=8)
    evals = [r for r in log if "fd_ratio" in r]
    if evals:
        ax = axes[1]
        x = [r["step"] for r in evals]
        ax.plot(x, [r["fd_ratio"] for r in evals], "^-", color="tab:red", label="FD / floor (held-out)")
        ax.plot(x, [r["fd_train"] / r["fd_floor"] for r in evals], "v--", color="tab:orange",
                label="FD to train / floor")
        ax2 = ax.twinx()
        ax2.plot(x, [r["min_class"] for r in evals], "s-", label="smallest class share")
        ax2.plot(x, [r["max_class"] for r in evals], "o-", label="largest class share")
        ax.set_xlabel("step")
        ax.legend(loc="upper right", fontsize=8)
        ax2.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


__all__ = ["BalanceConfig", "MappingBalancer", "marginal_kl_to_uniform"]
