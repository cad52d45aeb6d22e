"""``ganinv train-encoder --model ANY --data FOLDER`` as a user would run it: how far does a CPU budget get?

1. the bundled ``mnist-stylegan2`` is saved as a rosinality ``.pt`` (a "user's checkpoint": it is no longer a
   bundled name, so there is no MNIST mode, no classifier loss and no bundled encoder to start from);
2. ``--images`` digits of the MNIST train split (the first ``images / 10`` of each class, 32×32 as the
   generator makes them) are written as PNG files into a folder tree ``digits/<class>/<n>.png``;
3. ``ganinv train-encoder --model that.pt --data digits --time-budget M --threads T`` runs in a subprocess with
   the command's defaults otherwise (10 % of the PNGs held out by a seeded hash of their names);
4. the export is measured on the held-out PNGs (read back with ganinv's reader) and on the 200 benchmark
   digits of the MNIST test split (``ganinv.data.heldout_subset``, never seen): PSNR / SSIM after 1 and
   ``passes`` encoder passes versus the mean-latent start (``w_avg``'s rendering, pass 0's input).

Writes ``benchmarks/results/train_encoder_any.json`` and ``docs/train-encoder-any.md``.

Run: ``python benchmarks/train_encoder_any.py [--minutes 10] [--threads 1] [--images 2000] [--work runs/bench-enc]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_digits(folder: Path, n: int) -> int:
    """``n`` MNIST train digits (``n // 10`` per class, 32×32) as ``folder/<class>/<i>.png``; returns the count."""
    from ganinv.data import mnist

    images, labels = mnist("train")
    per = n // 10
    count = 0
    for c in range(10):
        sub = folder / str(c)
        sub.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(torch.nonzero(labels == c).flatten()[:per].tolist()):
            arr = (images[i, 0].numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr, mode="L").save(sub / f"{j}.png")
            count += 1
    return count


@torch.no_grad()
def evaluate(G: Any, encoder_dir: Path, images: torch.Tensor, passes: int) -> dict[str, float]:
    """Mean PSNR / SSIM of the encoder (1 and ``passes`` passes) and of the mean-latent start on ``images``."""
    from ganinv import invert, metrics
    from ganinv.encoders import load_encoder
    from ganinv.train.encoder import encoder_space, render_start

    enc = load_encoder(encoder_dir)
    start = render_start(enc, G, encoder_space(G)).clamp(0, 1).expand_as(images)
    out = {"start_psnr": float(metrics.psnr(start, images).mean()),
           "start_ssim": float(metrics.ssim(start, images).mean())}
    for p in sorted({1, passes}):
        r = invert(G, images, method="encoder", encoder=enc, passes=p)
        out[f"psnr_{p}"] = float(r.metrics["psnr"].mean())
        out[f"ssim_{p}"] = float(r.metrics["ssim"].mean())
    out["gain_db"] = out[f"psnr_{passes}"] - out["start_psnr"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget (--time-budget), minutes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=2000, help="digit PNGs written (a multiple of 10)")
    ap.add_argument("--passes", type=int, default=2, help="--passes of the run (and of the evaluation)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-train-encoder-any")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_encoder_any.json")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "train-encoder-any.md")
    ap.add_argument("--doc-only", action="store_true", help="rewrite --doc from the --out record and stop")
    args = ap.parse_args()
    if args.doc_only:
        write_doc(json.loads(args.out.read_text()), args.doc)
        return
    torch.set_num_threads(args.threads)

    from ganinv import zoo
    from ganinv.data import heldout_subset
    from ganinv.generators.checkpoints import load_generator, save_rosinality

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    pt = save_rosinality(zoo.load("mnist-stylegan2"), work / "my-mnist-stylegan2.pt")
    digits = work / "digits"
    n = write_digits(digits, args.images) if not digits.is_dir() else sum(1 for _ in digits.rglob("*.png"))
    run_dir, export = work / "run", work / "export"
    cmd = [sys.executable, "-m", "ganinv", "train-encoder", "--model", str(pt), "--data", str(digits),
           "--out", str(run_dir), "--iterations", "1000000", "--time-budget", str(args.minutes),
           "--passes", str(args.passes), "--threads", str(args.threads), "--export", str(export)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0

    G, _ = load_generator(pt)
    cfg = json.loads((export / "config.json").read_text())
    meta = cfg["meta"]
    from ganinv.train.encoder_data import load_user_images

    user = load_user_images([str(digits)], 1, 32, seed=meta["recipe"]["seed"],
                            val_fraction=meta["recipe"]["val_fraction"], max_val=meta["recipe"]["val_images"])
    held = user.val  # the held-out PNGs, read back by ganinv's reader (the run's own split)
    bench, _ = heldout_subset(200)
    result = {
        "command": " ".join(["ganinv", *cmd[3:]]).replace(str(work) + "/", ""),
        "passes": args.passes,
        "generator": "mnist-stylegan2 saved as a rosinality .pt (32 px, W+ 8×128)",
        "images_written": n, "train_images": meta["data"]["train_images"], "held_out_images": len(user.val_keys),
        "budget_minutes": args.minutes, "threads": args.threads, "iterations": meta["iterations"],
        "train_seconds": meta["train_seconds"], "wall_seconds": round(wall, 1),
        "selected": meta["selected"], "encoder": cfg["config"],
        "held_out_pngs": evaluate(G, export, held, args.passes),
        "benchmark_200_test_digits": evaluate(G, export, bench, args.passes),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    write_doc(result, args.doc)
    print(json.dumps({"held_out_pngs": result["held_out_pngs"],
                      "benchmark_200_test_digits": result["benchmark_200_test_digits"]}, indent=2))


def row(label: str, m: dict[str, float], passes: int) -> str:
    """One markdown table row: start, 1 pass, ``passes`` passes (PSNR / SSIM) and the gain."""
    cells = [f"{m['start_psnr']:.2f} dB / SSIM {m['start_ssim']:.3f}", f"{m['psnr_1']:.2f} dB / {m['ssim_1']:.3f}",
             f"{m[f'psnr_{passes}']:.2f} dB / {m[f'ssim_{passes}']:.3f}", f"**{m['gain_db']:+.2f} dB**"]
    return "| " + " | ".join([label, *cells]) + " |"


def write_doc(result: dict[str, Any], path: Path) -> None:
    """``docs/train-encoder-any.md`` from a result record: how to use the command, then the measurement."""
    h, b = result["held_out_pngs"], result["benchmark_200_test_digits"]
    P = result.get("passes", 2)
    n, held = result["images_written"], result["held_out_images"]
    doc = f"""# Training an encoder for a generator of your own

```
ganinv train-encoder --model my-stylegan2.pt --data photos/ --out runs/enc --time-budget 20 --export enc/
ganinv invert photos/test --method encoder --encoder enc/ --model my-stylegan2.pt
```

* `--model` takes whatever the other commands take: a bundled name, a ganinv model folder, a rosinality
  `.pt`, an NVIDIA `.pkl`; or `--generator file.py:NAME` (with `--weights`, `--latent-dim`, ...).
* `--data` (repeatable): folders (recursive), glob patterns, image files, `.txt`/`.csv` lists of paths. Images
  are read as `ganinv invert` reads targets: converted to the generator's channels (colour → grey by luma,
  grey → colour by repetition) and centre-cropped/resized to its resolution, with a one-line summary per kind
  of change; unreadable files are skipped with a note. `--val-fraction` (10 %) of them are held out by a
  seeded hash of their names (the same images for the same `--seed`, wherever the folder lives). Without
  `--data` the encoder learns from generated images with known latents only; with it, every batch still holds
  generated pairs (`--real-fraction` sets the share of real images, at most all but one).
* The encoder predicts W+ for generators with a W space (StyleGAN) and z otherwise (`--space`; a W+ encoder for
  a z-only generator is refused). Its input size is its own (`--input-size`, default min(256, the generator's
  resolution)); depth and widths follow from it.
* Losses, none downloaded: MSE + SSIM on real images by default (`--real-loss`, also `ms_ssim`, `l1`; `dfeat`
  compares through the generator's own discriminator when its checkpoint holds one — a ganinv folder's
  `discriminator.safetensors`, a rosinality training checkpoint's `d`, an NVIDIA pickle's `D`; `lpips` when its
  weights are present), pixel + latent loss on generated pairs, e4e's delta-norm regulariser.
* Validation every `--val-every` steps on the held-out images and on 64 generated samples: PSNR per pass, SSIM,
  LPIPS (only when its weights are on disk), latent error, and the mean-latent start as the baseline; the
  best snapshot is exported. `curves.png`, `log.jsonl`, `checkpoint.pt` in `--out`; rerunning resumes
  (the same data and generator, checked). bf16 autocast on CUDA (`--amp/--no-amp`); `torchrun` works as before.
* The export records the generator's fingerprint and how it was given (`meta.generator.invert_args`); an
  encoder used with another generator is refused with a message naming the generator it needs.

## Measured: `mnist-stylegan2` as a user's `.pt`, {n} digit PNGs

`benchmarks/train_encoder_any.py`, results in `benchmarks/results/train_encoder_any.json`. The bundled
`mnist-stylegan2` was saved as a rosinality `.pt`, so it counts as a user's checkpoint (no MNIST mode, no
digit-classifier loss, no bundled encoder). {n} digits of the MNIST train split were written as 32×32 PNGs;
the command held out {held} of them and trained on {result['train_images']} plus generated pairs, with its
defaults otherwise:

```
{result['command']}
```

Budget: {result['budget_minutes']:g} minutes of training time on {result['threads']} CPU thread(s)
({result['iterations']} steps of batch 32; {result['wall_seconds']:.0f} s wall with validation and export,
on a 2-core machine shared with other work).

| images | mean-latent start | encoder, 1 pass | encoder, {P} passes | gain |
|---|---|---|---|---|
{row(f"{held} held-out PNGs", h, P)}
{row("200 benchmark test digits", b, P)}

The issue's target is ≥ 6 dB over the mean-latent start after 20 CPU-minutes on a 64 px model; this is a
32 px model at the budget above (no 64 px generator is bundled). For comparison, the bundled
`mnist-stylegan2-encoder` (MNIST mode with the classifier loss, GPU-trained) reaches about 25 dB after one
pass on held-out digits (`docs/training-notes.md`).
"""
    path.write_text(doc)


if __name__ == "__main__":
    main()
