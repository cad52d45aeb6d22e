"""``ganinv train-gan``, ``ganinv train-encoder``, ``ganinv train-classifier`` and ``ganinv balance-classes``:
rebuild the bundled models.

``train-gan`` and ``train-encoder`` also run data-parallel under ``torchrun`` (``--batch-size``
stays the global batch; rank 0 prints and writes), e.g.
``torchrun --nproc_per_node 2 -m ganinv train-encoder --model mnist-dcgan --out runs/x``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ganinv.cli.common import console
from ganinv.cli.groups import ModelChoice, Runtime, ThreadsOpt, apply_threads
from ganinv.errors import InputError


def train_gan(
    arch: Annotated[str, typer.Option(help="Generator architecture: stylegan2, stylegan3 (StyleGAN3-T), dcgan, or "
                                      "a class-conditional stylegan2-cond / stylegan3-cond (one class per digit).")
                    ] = "stylegan2",
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoint, samples, curves). "
                                      "Rerunning with the same folder resumes.")] = Path("runs/gan"),
    iterations: Annotated[int, typer.Option(min=1, help="Total training iterations.")] = 3000,
    batch_size: Annotated[int, typer.Option(min=2, help="Batch size (under torchrun: the global batch, split "
                                                "among the processes).")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    sample_every: Annotated[int, typer.Option(min=1, help="Write a sample grid every N iterations.")] = 250,
    eval_every: Annotated[int, typer.Option(min=1, help="Measure sample quality every N iterations.")] = 500,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N iterations.")] = 100,
    eval_samples: Annotated[int, typer.Option(min=100, help="Samples for the periodic quality check.")] = 2000,
    final_eval_samples: Annotated[int, typer.Option(min=100, help="Samples for the quality table at export.")
                                  ] = 10_000,
    discriminator: Annotated[Optional[str], typer.Option(help="Discriminator: dcgan (strided convs) or residual "
                                                         "(StyleGAN2's, equalised lr). Default: the arch's preset.")
                             ] = None,
    d_warmup: Annotated[int, typer.Option(min=0, help="Train the discriminator alone for the first N iterations "
                                               "(for --init-from with a fresh discriminator).")] = 0,
    freeze: Annotated[Optional[str], typer.Option(help="'synthesis': train only the generator's mapping network "
                                                  "(and class embedding), e.g. to make a trained model "
                                                  "class-conditional with --init-from.")] = None,
    lr_g: Annotated[Optional[float], typer.Option(min=0.0, help="Generator learning rate (default: preset).")] = None,
    lr_d: Annotated[Optional[float], typer.Option(min=0.0, help="Discriminator learning rate (default: preset).")
                    ] = None,
    betas: Annotated[Optional[str], typer.Option(help="Adam betas for both networks, 'B1,B2' (default: preset).")
                     ] = None,
    r1_gamma: Annotated[Optional[float], typer.Option(min=0.0, help="R1 penalty weight on real images "
                                                      "(0 = off; default: preset).")] = None,
    mixing_prob: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Style-mixing probability "
                                                         "(StyleGAN2; default: preset).")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Differentiable augmentation "
                                                    "(translation + cutout) before D (default: preset).")] = None,
    lr_decay_start: Annotated[Optional[int], typer.Option(min=0, help="Decay both learning rates linearly to 0 "
                                                          "from this iteration to the last.")] = None,
    time_budget: Annotated[Optional[float], typer.Option(min=0.01, help="End the run after this many minutes of "
                                                         "training even before --iterations (the learning-rate "
                                                         "decay keeps its place as a fraction of the run).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Start a fresh run from an exported model folder's "
                                                      "generator and discriminator weights (fine-tuning).")] = None,
    export: Annotated[Optional[Path], typer.Option(help="When done, write the model folder here "
                                                   "(e.g. src/ganinv/zoo/mnist-stylegan2).")] = None,
    export_best: Annotated[bool, typer.Option(help="Export the evaluated snapshot with the lowest Fréchet distance "
                                                   "to the train split among those meeting the confidence/coverage "
                                                   "floor (the held-out split only measures the result).")] = False,
    runtime: Runtime = Runtime(device="cpu"),
) -> None:
    """Train a digit GAN on the MNIST train split, resumably, logging quality with the bundled classifier.

    An unconditional export warm-starts a class-conditional run of the same generator (--arch stylegan2-cond
    --init-from src/ganinv/zoo/mnist-stylegan2 --freeze synthesis): it starts drawing what the export draws.

    Data-parallel under ``torchrun --nproc_per_node N -m ganinv train-gan ...`` (gloo on CPU, NCCL on CUDA)."""
    from ganinv import zoo
    from ganinv.train import distributed as ddp
    from ganinv.train.gan import GanTrainConfig, GanTrainer

    dev = runtime.setup()
    pair = None
    if betas:
        try:
            b1, b2 = (float(v) for v in betas.split(","))
        except ValueError:
            raise InputError(f"--betas must be two numbers like 0.5,0.999, got {betas!r}") from None
        pair = (b1, b2)
    cfg = GanTrainConfig(arch=arch, discriminator=discriminator, lr_g=lr_g, lr_d=lr_d, betas_g=pair, betas_d=pair,
                         r1_gamma=r1_gamma,
                         mixing_prob=mixing_prob, augment=augment, lr_decay_start=lr_decay_start,
                         time_budget=time_budget * 60 if time_budget else None,
                         init_from=str(init_from) if init_from else None, d_warmup=d_warmup, freeze=freeze,
                         iterations=iterations,
                         batch_size=batch_size, seed=seed,
                         sample_every=sample_every, eval_every=eval_every, checkpoint_every=checkpoint_every,
                         eval_samples=eval_samples)
    with ddp.session(dev) as dev:
        trainer = GanTrainer(out, cfg, device=dev)
        if trainer.main and zoo.DEFAULT_CLASSIFIER not in zoo.available():
            console.print("[yellow]note:[/] no bundled classifier yet; quality is logged once it exists")
        if trainer.init_note and trainer.main:
            console.print(f"[yellow]note:[/] {trainer.init_note}")
        if trainer.iteration and trainer.main:
            console.print(f"resuming {out} at iteration {trainer.iteration}")
        trainer.train()
        if export and trainer.main:
            meta = trainer.export(export, name=export.name, eval_samples=final_eval_samples, best=export_best)
            q = meta.get("quality")
            console.print(f"exported {export}" + (f": conf {q['confidence']:.3f}, classes "
                                                  f"{min(q['coverage']):.3f}–{max(q['coverage']):.3f}, "
                                                  f"FD {q['fd_ratio']:.2f}× floor"
                                                  + (f", class agreement {q['class_agreement']:.3f}"
                                                     if q.get("class_agreement") is not None else "")
                                                  + f", passes={q['passes']}" if q else ""))


def train_classifier(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path("runs/mnist-classifier"),
    epochs: Annotated[int, typer.Option(min=1, help="Epochs over the train split.")] = 20,
    threads: ThreadsOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    width: Annotated[int, typer.Option(min=4, help="Channels of the first convolution (32: the evaluation "
                                       "classifier).")] = 32,
    feature_dim: Annotated[int, typer.Option(min=8, help="Size of the penultimate feature layer.")] = 128,
) -> None:
    """Train the digit classifier used for evaluation (≥ 98% held-out accuracy), or another one (e.g. the
    auxiliary classifier of `ganinv balance-classes`: --width 16 --feature-dim 64 --seed 1 --epochs 12)."""
    from ganinv.train.classifier import train_classifier as run

    apply_threads(threads)
    meta = run(out, epochs=epochs, seed=seed, width=width, feature_dim=feature_dim)
    console.print(f"held-out accuracy {meta['heldout_accuracy']:.4f}; wrote {out}")


def train_encoder(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoint, curves, best snapshot). "
                                      "Rerunning with the same folder resumes.")] = Path("runs/encoder"),
    data: Annotated[Optional[list[str]], typer.Option(
        "--data", help="Your own training images: a folder (read recursively), a glob pattern, an image file or "
        "a .txt/.csv list of paths; repeat for several. Read at the generator's channels and resolution "
        "(converted and resized with a note, like `ganinv invert`); --val-fraction of them are held out. "
        "Without it: generated images with known latents only (MNIST digits for the bundled digit models).")
                    ] = None,
    iterations: Annotated[int, typer.Option(min=1, help="Training steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(min=2, help="Images per step (generated + real; under torchrun the "
                                                "global batch, split among the processes).")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 1e-3,
    passes: Annotated[int, typer.Option(min=1, help="ReStyle refinement passes trained per step.")] = 2,
    real_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of real images (--data, or the "
                                                 "digits) in a batch; the rest are generated with known "
                                                 "latents, at least one per batch with --data.")] = 0.5,
    real_loss: Annotated[str, typer.Option(help="Loss on real images: name=weight terms of mse, l1, ssim, ms_ssim, "
                                           "lpips (when its weights are on disk or may be fetched), dfeat (the "
                                           "generator's own discriminator, when its checkpoint has one).")
                         ] = "mse=1,ssim=0.5",
    w_classifier: Annotated[Optional[float], typer.Option(min=0.0, help="Weight of the digit-classifier feature "
                                                          "(identity-like) loss; 1×32×32 generators only "
                                                          "(default: 0.1 on MNIST digits, else 0).")] = None,
    w_delta: Annotated[float, typer.Option(min=0.0, help="Weight of e4e's delta-norm regulariser.")] = 2e-4,
    width: Annotated[Optional[int], typer.Option(min=4, help="Channels of the encoder's first level (default: "
                                                 "by --input-size, 16 up to 64 px, 32 above).")] = None,
    max_width: Annotated[Optional[int], typer.Option(min=4, help="Channel cap of the encoder's deeper levels (and "
                                                     "of its feature pyramid and style heads; default: by "
                                                     "--input-size, 96 at 32 px … 256 at 256 px).")] = None,
    input_size: Annotated[Optional[int], typer.Option(min=8, help="The encoder's own input size, a power of two "
                                                      "(images are resized to it; its depth follows). Default: "
                                                      "min(256, the generator's resolution).")] = None,
    space: Annotated[str, typer.Option(help="Latent space the encoder predicts: auto (W+ when the generator has "
                                       "a W space, else z), w+ or z.")] = "auto",
    w_latent: Annotated[float, typer.Option(min=0.0, help="Weight of the latent loss on generated images (in "
                                            "units of the space's std).")] = 0.05,
    val_every: Annotated[int, typer.Option(min=1, help="Validate every N steps.")] = 250,
    val_images: Annotated[int, typer.Option(min=1, max=10_000, help="Held-out real images used for validation "
                                            "(digits: never the benchmark's 200).")] = 200,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of the --data images held out for "
                                                "validation (chosen by a seeded hash of their names).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed (also salts the validation split).")] = 0,
    time_budget: Annotated[Optional[float], typer.Option(min=0.01, help="End the run after this many minutes of "
                                                         "training even before --iterations.")] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16 autocast for the forward passes "
                                                "(default: on for CUDA GPUs with bf16, never on CPU).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Warm-start a fresh run from an exported encoder folder "
                                                      "of the same architecture.")] = None,
    export: Annotated[Optional[Path], typer.Option(help="When done, write the best validated encoder here "
                                                   "(e.g. src/ganinv/zoo/mnist-stylegan2-encoder).")] = None,
    arch: Annotated[str, typer.Option(help="pyramid (a pSp/e4e/ReStyle encoder: images → codes) or hyper (a "
                                      "HyperStyle hypernetwork: per-image offsets to the generator's convolution "
                                      "weights, from a pivot encoder's codes; StyleGAN2).")] = "pyramid",
    layers: Annotated[Optional[str], typer.Option(help="hyper: convolutions to modulate: auto (the non-toRGB "
                                                  "ones from 16 px up), all, R+ (from R px up) or names "
                                                  "(conv1,convs.2,...).")] = None,
    pivot_encoder: Annotated[Optional[str], typer.Option(help="hyper: the encoder giving the pivot codes (a "
                                                         "folder or bundled name; default: the bundled one for the "
                                                         "model), or 'mean' for the mean latent.")] = None,
    pivot_passes: Annotated[Optional[int], typer.Option(min=1, help="hyper: the pivot encoder's passes "
                                                        "(default 5).")] = None,
    rank: Annotated[Optional[int], typer.Option(min=1, help="hyper: rank of each predicted offset (default 8).")
                    ] = None,
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(device="cpu"),
) -> None:
    """Train a pSp/e4e/ReStyle-style encoder for any generator (bundled name, ganinv folder, rosinality .pt,
    NVIDIA .pkl or --generator file.py:NAME), on generated pairs plus your --data images, resumably; or, with
    --arch hyper, a HyperStyle-style hypernetwork on top of an encoder.

    Use the export with `ganinv invert --method encoder --encoder EXPORT --model <the same generator>` (a
    hypernetwork: `--method hyper --encoder EXPORT`).
    Data-parallel under ``torchrun --nproc_per_node N -m ganinv train-encoder ...`` (gloo on CPU, NCCL on CUDA)."""
    from ganinv.errors import UnknownModelError
    from ganinv.train import distributed as ddp
    from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer, format_metrics
    from ganinv.train.encoder_data import generator_source

    if arch not in ("pyramid", "hyper"):
        raise InputError(f"--arch must be pyramid or hyper, got {arch!r}")
    hyper_only = [flag for flag, value in (("--layers", layers), ("--pivot-encoder", pivot_encoder),
                                           ("--pivot-passes", pivot_passes), ("--rank", rank)) if value is not None]
    if arch == "pyramid" and hyper_only:
        raise InputError(f"{', '.join(hyper_only)} apply to --arch hyper only")
    if arch == "hyper" and (space != "auto" or amp or init_from is not None):
        raise InputError("--space, --amp and --init-from apply to --arch pyramid only")
    if model.class_label is not None:  # the trainer reloads the model from its spec, which holds no class
        raise InputError("--class does not apply to train-encoder: encoders are trained for the whole model "
                         "(for a class-conditional one, invert with --class K afterwards)")
    dev = runtime.setup()
    try:
        G, name = model.load()
    except UnknownModelError as exc:  # the bundled list and the accepted files, after the name
        text = str(exc)
        spec = model.model or ""
        raise UnknownModelError(f"unknown model {spec!r}: " + (text.split("; ", 1)[1] if "; " in text else text)
                                ) from None
    source = generator_source(model.model, model.generator, model.weights, model.latent_dim, model.image_shape,
                              model.output_range)
    spec = model.generator or model.model or name
    if arch == "hyper":
        from ganinv.train.hyper import HyperTrainConfig, HyperTrainer

        hcfg = HyperTrainConfig(model=spec, pivot_encoder=pivot_encoder, layers=layers or "auto",
                                iterations=iterations, batch_size=batch_size, lr=lr, passes=passes,
                                real_fraction=real_fraction, real_loss=real_loss, input_size=input_size,
                                val_every=val_every, val_images=val_images, val_fraction=val_fraction,
                                data=list(data or []), source=source, seed=seed,
                                time_budget=time_budget * 60 if time_budget else None,
                                **{k: v for k, v in (("pivot_passes", pivot_passes), ("rank", rank), ("width", width),
                                                     ("max_width", max_width)) if v is not None})
        trainer_h = HyperTrainer(out, hcfg, device=dev, generator=G)
        for note in trainer_h.notes:
            console.print(f"[yellow]note:[/] {note}")
        console.print(f"hypernetwork: {len(trainer_h.net.layer_names)} layers ({', '.join(trainer_h.net.layer_names)}),"
                      f" rank {trainer_h.net.rank}, pivot {trainer_h.pivot_spec} ({trainer_h.cfg.pivot_passes} passes)")
        if trainer_h.iteration:
            console.print(f"resuming {out} at iteration {trainer_h.iteration}")
        trainer_h.train()
        if export:
            meta = trainer_h.export(export)
            best = meta.get("selected") or {}
            console.print(f"exported {export} (iteration {best.get('iteration', '?')}: pivot "
                          f"{best.get('val_pivot_psnr', float('nan')):.2f} dB → "
                          f"{best.get(f'val_psnr_{trainer_h.cfg.passes}', float('nan')):.2f} dB)")
            console.print(f"invert with: ganinv invert IMAGES --method hyper --encoder {export} "
                          f"{source['invert_args']}")
        return
    cfg = EncoderTrainConfig(model=spec, iterations=iterations, batch_size=batch_size, lr=lr, passes=passes,
                             real_fraction=real_fraction, real_loss=real_loss, w_classifier=w_classifier,
                             w_delta=w_delta, width=width, max_width=max_width, w_latent=w_latent,
                             val_every=val_every, val_images=val_images, val_fraction=val_fraction,
                             data=list(data or []), input_size=input_size, space=space, amp=amp, source=source,
                             seed=seed, time_budget=time_budget * 60 if time_budget else None,
                             init_from=str(init_from) if init_from else None)
    with ddp.session(dev) as dev:
        trainer = EncoderTrainer(out, cfg, device=dev, generator=G)
        if trainer.main:
            for note in trainer.notes:
                console.print(f"[yellow]note:[/] {note}")
            enc = trainer.encoder
            console.print(f"encoder: {trainer.space} codes {tuple(enc.latent_shape)} from {enc.resolution} px input "
                          f"(widths {enc.width}–{enc.max_width}); "
                          + (f"{len(trainer.user.train_keys)} training / {len(trainer.user.val_keys)} held-out "
                             "images" if trainer.user else "no real images" if trainer.real is None else "digits")
                          + (", bf16 autocast" if trainer.amp else ""))
        if trainer.iteration and trainer.main:
            console.print(f"resuming {out} at iteration {trainer.iteration}")
        trainer.train()
        if export and trainer.main:
            meta = trainer.export(export)
            best = meta.get("selected") or {}
            start = meta.get("start") or {}
            console.print(f"exported {export} (iteration {best.get('iteration', '?')}: "
                          + format_metrics({k: v for k, v in best.items() if k.startswith(("val_psnr", "gen_psnr"))})
                          + (f"; mean-latent start {format_metrics(start)}" if start else "") + ")")
            console.print(f"invert with: ganinv invert IMAGES --method encoder --encoder {export} "
                          f"{source['invert_args']}")


def balance_classes(
    model: Annotated[str, typer.Option(help="StyleGAN2 generator to fine-tune: a bundled name or a model folder.")
                     ] = "mnist-stylegan2",
    classifier: Annotated[Path, typer.Option(help="Auxiliary classifier's model folder (not the evaluation "
                                             "classifier; `ganinv train-classifier --width 16 --feature-dim 64 "
                                             "--seed 1 --epochs 12`).")] = Path("runs/aux-classifier"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoint, log, curves, snapshots). "
                                      "Rerunning with the same folder resumes.")] = Path("runs/balance"),
    steps: Annotated[int, typer.Option(min=1, help="Fine-tuning steps.")] = 100,
    batch_size: Annotated[int, typer.Option(min=2, help="Samples per step (the class balance of a batch is "
                                            "what is optimised, so bigger batches give a less noisy loss).")] = 256,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of the mapping network's stored weights "
                                      "(its lr multiplier still applies).")] = 0.02,
    lr_decay_start: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of the run after which the "
                                                  "learning rate decays linearly to 0.")] = 0.0,
    share_ema: Annotated[float, typer.Option(min=0.0, max=0.999, help="Momentum of the running class shares the "
                                             "loss is weighted by (0: each batch's own shares).")] = 0.9,
    eval_every: Annotated[int, typer.Option(min=1, help="Measure quality (10k samples) every N steps.")] = 25,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: ThreadsOpt = None,
    export: Annotated[Optional[Path], typer.Option(help="When done, write the model folder here: the evaluated "
                                                   "snapshot closest to the train split (Fréchet distance) "
                                                   "among those meeting the quality floor.")] = None,
) -> None:
    """Even out how often a StyleGAN2 draws each class by fine-tuning only its mapping network against an
    auxiliary classifier (the synthesis network, and so the image of every w, is unchanged); resumable."""
    from ganinv import zoo
    from ganinv.modelfile import load_pretrained, read_config
    from ganinv.train.class_balance import BalanceConfig, MappingBalancer

    apply_threads(threads)
    folder = Path(model)
    if not (folder / "config.json").is_file():
        folder = zoo.model_dir(model)  # unknown names fail here, with the list of bundled models
    if not (classifier / "config.json").is_file():
        raise InputError(f"{classifier}: no classifier model folder (config.json) there; train one with "
                         f"`ganinv train-classifier --width 16 --feature-dim 64 --seed 1 --out {classifier}`")
    if (kind := read_config(classifier).get("kind")) != "classifier":
        raise InputError(f"{classifier} is a {kind!r} model, not a classifier")
    cfg = BalanceConfig(steps=steps, batch_size=batch_size, lr=lr, lr_decay_start=lr_decay_start,
                        share_ema=share_ema, eval_every=eval_every, seed=seed)
    balancer = MappingBalancer(load_pretrained(folder), load_pretrained(classifier), out, cfg, source=folder)
    if balancer.step:
        console.print(f"resuming {out} at step {balancer.step}")
    balancer.train()
    if export:
        meta = balancer.export(export, name=export.name)
        q, cb = meta["quality"], meta["class_balance"]
        console.print(f"exported {export} (step {cb['selected_step']}): conf {q['confidence']:.3f}, classes "
                      f"{min(q['coverage']):.3f}–{max(q['coverage']):.3f}, FD {q['fd_ratio']:.2f}× floor, "
                      f"passes={q['passes']}")
