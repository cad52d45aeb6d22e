"""Tiny resumable training runs in a child process, for fault-injection tests (SIGKILL mid-run, then resume).

    python tests/fault_driver.py gan OUT ITERATIONS [SLEEP_PER_STEP]
    python tests/fault_driver.py encoder OUT ITERATIONS [SLEEP_PER_STEP]
    GANINV_KILL_AT_CHECKPOINT=2 python tests/fault_driver.py gan OUT ITERATIONS   # dies renaming checkpoint 2

``gan``: the DCGAN recipe of ``ganinv train-gan`` with a 4-wide generator/discriminator (checkpoint every 2
iterations); ``encoder``: ``ganinv train-encoder``'s trainer on a seeded 16 px DCGAN with 8 generated images
(checkpoint every 2). The child prints ``checkpoint <iteration>`` after each checkpoint write and ``done`` at the
end, so a parent can kill it right after a write. :func:`final_weights` reads what a run ended with.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_G = {"arch": "dcgan", "resolution": 32, "z_dim": 8, "width": 4, "img_channels": 1}
TINY_D = {"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1, "norm": "none", "mbstd_group": 4}


def _gan(out: Path, iterations: int) -> object:
    import ganinv.train.gan as gan

    gan.PRESETS["dcgan"] = {**gan.PRESETS["dcgan"], "g": TINY_G, "d": TINY_D}
    cfg = gan.GanTrainConfig(arch="dcgan", iterations=iterations, batch_size=8, sample_every=10**6,
                             eval_every=10**6, checkpoint_every=2, seed=3)
    return gan.GanTrainer(out, cfg, classifier=None)


def _encoder(out: Path, iterations: int) -> object:
    from ganinv.generators.dcgan import DCGANGenerator
    from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer

    torch.manual_seed(0)
    G = DCGANGenerator(resolution=16, z_dim=8, width=8, img_channels=1).eval().requires_grad_(False)
    with torch.no_grad():
        x = G.to_display(G.synthesize(G.sample_latent(16, "z", seed=0), "z"))
    cfg = EncoderTrainConfig(model="tiny", iterations=iterations, batch_size=4, passes=2, width=8, max_width=16,
                             w_classifier=0.0, val_every=3, checkpoint_every=2, real_loss="mse=1,ssim=0.5")
    return EncoderTrainer(out, cfg, generator=G, data=(x[:8], x[8:]))


TRAINERS = {"gan": _gan, "encoder": _encoder}


def final_weights(kind: str, out: Path) -> dict[str, torch.Tensor]:
    """The weights a finished run holds in its checkpoint (G_ema for a GAN, the encoder otherwise)."""
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    return state["G_ema"] if kind == "gan" else state["encoder"]


def _kill_at_checkpoint_rename(k: int) -> None:
    """SIGKILL this process at its ``k``-th rename of a finished temporary file over ``checkpoint.pt`` (the new
    checkpoint is complete on disk under its temporary name, the old one still in place)."""
    import os
    import signal

    real, count = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "checkpoint.pt":
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)

    os.replace = replace


def main() -> None:
    import os

    kind, out, iterations = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    sleep = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    if os.environ.get("GANINV_KILL_AT_CHECKPOINT"):
        _kill_at_checkpoint_rename(int(os.environ["GANINV_KILL_AT_CHECKPOINT"]))
    torch.set_num_threads(1)
    trainer = TRAINERS[kind](out, iterations)
    print(f"start {trainer.iteration}", flush=True)
    save, step = trainer.save_checkpoint, trainer.step

    def save_and_say() -> None:
        save()
        print(f"checkpoint {trainer.iteration}", flush=True)

    def slow_step(*args, **kwargs):
        time.sleep(sleep)  # gives a parent time to kill between checkpoints
        return step(*args, **kwargs)

    trainer.save_checkpoint = save_and_say
    trainer.step = slow_step
    trainer.train()
    print("done", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
