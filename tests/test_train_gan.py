"""GAN trainer pieces: augmentation, learning-rate decay, snapshots and best-snapshot export."""

from __future__ import annotations

import pytest
import torch

import ganinv.train.gan as gan
from ganinv.errors import InputError
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

    def spy(real, real_c=None):
        seen.append(trainer.opt_g.param_groups[0]["lr"] / trainer.cfg.lr_g)
        return original(real, real_c)

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
    # with the train-split distance recorded, it alone chooses (the held-out one only measures)
    trainer.log[-2]["fd_train"], trainer.log[-1]["fd_train"] = 4.0, 1.0
    assert trainer.best_snapshot() == 6
    trainer.log[-2]["fd_train"], trainer.log[-1]["fd_train"] = 1.0, 4.0
    meta = trainer.export(tmp_path / "model", name="model", best=True)
    assert meta["selected_iteration"] == 3 and read_config(tmp_path / "model")["meta"]["iterations"] == 6
    assert meta["selected_by_fd_to"] == "train split"
    assert load_pretrained(tmp_path / "model").sample(2).shape == (2, 1, 32, 32)


def test_time_budget_ends_run_and_keeps_decay_fraction(tmp_path, monkeypatch):
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": TINY_G, "d": TINY_D})
    cfg = GanTrainConfig(arch="dcgan", iterations=1000, batch_size=8, sample_every=10**6, eval_every=10**6,
                         checkpoint_every=10**6, lr_decay_start=500, time_budget=10.0)
    trainer = GanTrainer(tmp_path / "run", cfg, classifier=None)
    clock = iter(range(10**6))
    monkeypatch.setattr(gan.time, "perf_counter", lambda: float(next(clock)))  # every step "takes" 1 s
    factors = []
    original = trainer.step

    def spy(real, real_c=None):
        factors.append(trainer._lr_factor())
        return original(real, real_c)

    monkeypatch.setattr(trainer, "step", spy)
    trainer.train()
    assert trainer.iteration == 10 and trainer.progress() == 1.0  # the budget, not the 1000 iterations
    # decay from half of the run (500 of 1000 iterations → 5 of 10 seconds) down to 0
    assert factors == pytest.approx([1.0] * 6 + [0.8, 0.6, 0.4, 0.2])
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_init_from_exported_model_and_refuses_another_architecture(tmp_path, monkeypatch):
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": TINY_G, "d": TINY_D})
    base = dict(arch="dcgan", iterations=2, batch_size=8, sample_every=100, eval_every=100, checkpoint_every=100)
    first = GanTrainer(tmp_path / "a", GanTrainConfig(**base), classifier=None)
    first.train()
    first.export(tmp_path / "model", name="model")
    exported = load_pretrained(tmp_path / "model").state_dict()
    second = GanTrainer(tmp_path / "b", GanTrainConfig(**base, seed=5, init_from=str(tmp_path / "model")),
                        classifier=None)
    for k, v in second.G_ema.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, exported[k].to(v.dtype)), k
    for k, v in second.D.state_dict().items():
        assert torch.equal(v, first.D.state_dict()[k]), k
    wider = {**TINY_G, "width": TINY_G["width"] * 2}
    monkeypatch.setitem(gan.PRESETS, "dcgan", {**gan.PRESETS["dcgan"], "g": wider, "d": TINY_D})
    with pytest.raises(InputError, match="differs from this run"):
        GanTrainer(tmp_path / "c", GanTrainConfig(**base, init_from=str(tmp_path / "model")), classifier=None)
    with pytest.raises(InputError, match="no config.json"):
        GanTrainer(tmp_path / "d", GanTrainConfig(**base, init_from=str(tmp_path)), classifier=None)
