"""GAN trainer pieces: augmentation, learning-rate decay, snapshots and best-snapshot export."""

from __future__ import annotations

import torch

import ganinv.train.gan as gan
from ganinv.generators.dcgan import DCGANDiscriminator, MinibatchStd
from ganinv.modelfile import load_pretrained, read_config
from ganinv.train.gan import GanTrainConfig, GanTrainer, diff_augment

TINY_G = {"arch": "dcgan", "resolution": 32, "z_dim": 8, "width": 4, "img_channels": 1}
TINY_D = {"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1, "norm": "none", "mbstd_group": 4}


def test_diff_augment_is_differentiable_and_keeps_range():
    x = (torch.rand(6, 1, 32, 32) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    torch.testing.assert_close(diff_augment(x, torch.Generator().manual_seed(1)),
                               diff_augment(x, torch.Generator().manual_seed(1)))


def test_minibatch_std_sees_batch_variety():
    layer = MinibatchStd(4)
    same = torch.ones(8, 3, 4, 4)
    varied = torch.randn(8, 3, 4, 4)
    assert layer(same).shape == (8, 4, 4, 4)
    assert layer(same)[:, -1].max() < 1e-3 < layer(varied)[:, -1].min()
    D = DCGANDiscriminator(resolution=32, width=4, norm="none", mbstd_group=4)
    assert D(torch.randn(8, 1, 32, 32)).shape == (8,)


def test_lr_decay_snapshots_and_best_export(tmp_path, monkeypatch):
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": TINY_G, "d": TINY_D})
    cfg = GanTrainConfig(arch="dcgan", iterations=6, batch_size=8, sample_every=100, eval_every=100,
                         checkpoint_every=3, lr_decay_start=2)
    trainer = GanTrainer(tmp_path / "run", cfg, classifier=None)
    seen = []
    original = trainer.step

    def spy(real):
        seen.append(trainer.opt_g.param_groups[0]["lr"] / trainer.cfg.lr_g)
        return original(real)

    monkeypatch.setattr(trainer, "step", spy)
    trainer.train()
    assert seen == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    # snapshots: fake two evaluations, the better one (lower FD, floor met) is exported
    for it, fd in ((3, 2.0), (6, 5.0)):
        trainer.iteration = it
        trainer.save_snapshot()
        trainer.log.append({"iteration": it, "confidence": 0.95, "min_class": 0.08, "max_class": 0.12, "fd": fd,
                            "fd_ratio": fd})
    assert trainer.best_snapshot() == 3
    meta = trainer.export(tmp_path / "model", name="model", best=True)
    assert meta["selected_iteration"] == 3 and read_config(tmp_path / "model")["meta"]["iterations"] == 6
    assert load_pretrained(tmp_path / "model").sample(2).shape == (2, 1, 32, 32)
