"""GAN trainer for StyleGAN3 and class-conditional generators: magnitude EMAs, projection discriminators, class
agreement, and tiny end-to-end runs that export models the rest of ganinv loads."""

from __future__ import annotations

import copy

import pytest
import torch

import ganinv.train.gan as gan
from ganinv.errors import InputError
from ganinv.generators.conditional import with_class
from ganinv.generators.dcgan import DCGANDiscriminator
from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator
from ganinv.modelfile import build, load_pretrained, read_config
from ganinv.train.gan import GanTrainConfig, GanTrainer
from ganinv.train.quality import Quality, generator_quality, meets_sample_floor

from conftest import make_tiny_stylegan3

TINY_SG2 = {"arch": "stylegan2", "resolution": 32, "channels": {"4": 8, "8": 8, "16": 4, "32": 4}, "z_dim": 8,
            "w_dim": 8, "n_mlp": 1, "img_channels": 1, "output_activation": "tanh"}
TINY_SG3 = {"arch": "stylegan3", "resolution": 32, "img_channels": 1, "z_dim": 8, "w_dim": 8, "mapping_layers": 1,
            "channel_base": 128, "channel_max": 8, "num_layers": 4, "magnitude_ema_beta": 0.9}
TINY_D = {"arch": "dcgan-d", "resolution": 32, "width": 4, "img_channels": 1, "norm": "none", "mbstd_group": 4}
RUN = dict(iterations=3, batch_size=8, sample_every=100, eval_every=100, checkpoint_every=100)


def test_stylegan3_magnitude_ema_moves_only_while_updating():
    G = make_tiny_stylegan3()
    before = [layer.magnitude_ema.clone() for layer in G.layers]
    ws = G.convert(torch.randn(4, 16), "z", "w+")
    G.synthesis(ws)
    assert all(torch.equal(b, layer.magnitude_ema) for b, layer in zip(before, G.layers))
    first = G.input(ws[:, 0])
    expected = first.square().mean().lerp(before[0], G.magnitude_ema_beta)
    with G.updating_emas():
        G.synthesis(ws)
    torch.testing.assert_close(G.layers[0].magnitude_ema, expected)
    assert all(not torch.equal(b, layer.magnitude_ema) for b, layer in zip(before, G.layers))
    assert not any(layer.update_emas for layer in G.layers)  # the flag is cleared on the way out


@pytest.mark.parametrize("make", [
    lambda c: DCGANDiscriminator(resolution=32, width=4, norm="none", mbstd_group=2, c_dim=c),
    lambda c: StyleGAN2Discriminator(resolution=32, channels={"32": 4, "16": 8, "8": 8, "4": 8}, mbstd_group=2,
                                     c_dim=c),
], ids=["dcgan-d", "stylegan2-d"])
def test_conditional_discriminators_project_the_class(make):
    torch.manual_seed(0)
    D = make(3)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    eye = torch.eye(3)
    logits = torch.stack([D(x, eye[k].expand(4, 3)) for k in range(3)])
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    assert (logits[0] - logits[1]).abs().min() > 0  # the class changes every image's logit
    torch.testing.assert_close(D(x, eye[:1]), logits[0])  # one class row broadcasts over the batch
    # the projection: ⟨head, e(c)⟩ / √cmap with the embedding at unit mean square
    assert D.features(x)[-1].shape[0] == 4
    rebuilt = build(D.config())
    rebuilt.load_state_dict(D.state_dict())
    torch.testing.assert_close(rebuilt(x, eye[2:]), logits[2])
    with pytest.raises(InputError, match="class-conditional"):
        D(x)
    with pytest.raises(InputError, match="class-conditional"):
        D(x, torch.eye(4)[:1])
    with pytest.raises(InputError, match="unconditional"):
        make(0)(x, eye[:1])
    assert "c_dim" not in make(0).config()  # unconditional configs are as before


class _DigitsByClass:
    """A stand-in 'conditional generator' that draws a held-out digit of the class it is given."""

    c_dim, default_space, device = 10, "w", torch.device("cpu")

    def __init__(self, flip: bool = False):
        from ganinv.data import mnist

        x, y = mnist("test")
        self.bank = [x[y == k][:50] for k in range(10)]
        self.flip = flip

    def space(self, name):
        return type("S", (), {"shape": (4,)})()

    def convert(self, z, src, dst, c=None):
        return torch.cat([c, z], 1)

    def synthesize(self, latent, space):
        labels = latent[:, :10].argmax(1)
        if self.flip:
            labels = (labels + 1) % 10
        pick = (latent[:, 10].abs() * 1000).long() % 50
        return torch.stack([self.bank[int(k)][int(i)] for k, i in zip(labels, pick)])

    @staticmethod
    def to_display(images):
        return images.clamp(0, 1)


def test_class_agreement_scores_whether_samples_are_the_class_asked_for():
    from ganinv import zoo

    classifier = zoo.load_classifier()
    right = generator_quality(_DigitsByClass(), classifier, n=300)
    wrong = generator_quality(_DigitsByClass(flip=True), classifier, n=300)
    assert right.class_agreement > 0.95 and wrong.class_agreement < 0.05
    assert right.confidence == pytest.approx(wrong.confidence, abs=0.05)  # both are real digits
    q = Quality(n_samples=1, confidence=0.95, coverage=[0.1] * 10, fd=1.0, fd_floor=1.0, class_agreement=0.5)
    assert not q.passes and "class agreement 0.500" in q.summary()
    record = {"confidence": 0.95, "min_class": 0.08, "max_class": 0.12}
    assert meets_sample_floor(record) and not meets_sample_floor({**record, "class_agreement": 0.5})


def test_conditional_stylegan2_trains_and_exports_a_conditional_model(tmp_path, monkeypatch):
    preset = copy.deepcopy(gan.PRESETS["stylegan2-cond"])
    preset["g"] = {**TINY_SG2, "c_dim": 10}
    preset["d"] = {**TINY_D, "c_dim": 10}
    monkeypatch.setitem(gan.PRESETS, "stylegan2-cond", preset)
    trainer = GanTrainer(tmp_path / "run", GanTrainConfig(arch="stylegan2-cond", **RUN), classifier=None)
    seen = []
    forward = trainer.D.forward

    def spy(x, c=None):
        seen.append(c)
        return forward(x, c)

    monkeypatch.setattr(trainer.D, "forward", spy)
    trainer.train()
    assert len(seen) == 3 * 3 and all(c is not None and c.shape == (8, 10) for c in seen)
    assert all(torch.equal(c.sum(1), torch.ones(8)) for c in seen)  # one-hot rows: real labels and drawn classes
    assert trainer.samples().shape == (64, 1, 32, 32)
    trainer.export(tmp_path / "model", name="model")
    G = load_pretrained(tmp_path / "model")
    assert G.c_dim == 10 and read_config(tmp_path / "model")["discriminator"]["c_dim"] == 10
    a, b = with_class(G, 3, mean_samples=64).sample(2, seed=1), with_class(G, 7, mean_samples=64).sample(2, seed=1)
    assert a.shape == (2, 1, 32, 32) and not torch.equal(a, b)
    with pytest.raises(InputError, match="labelled images"):
        trainer.step(torch.zeros(8, 1, 32, 32))


def test_stylegan3_trains_updates_its_magnitudes_and_exports(tmp_path, monkeypatch):
    preset = copy.deepcopy(gan.PRESETS["stylegan3"])
    preset["g"], preset["d"] = dict(TINY_SG3), dict(TINY_D)
    monkeypatch.setitem(gan.PRESETS, "stylegan3", preset)
    trainer = GanTrainer(tmp_path / "run", GanTrainConfig(arch="stylegan3", **RUN), classifier=None)
    trainer.train()
    mags = torch.stack([layer.magnitude_ema for layer in trainer.G.layers])
    assert not torch.equal(mags, torch.ones_like(mags)) and torch.isfinite(mags).all()
    torch.testing.assert_close(torch.stack([layer.magnitude_ema for layer in trainer.G_ema.layers]), mags)
    trainer.export(tmp_path / "model", name="model")
    G = load_pretrained(tmp_path / "model")
    assert G.arch == "stylegan3" and G.w_avg.abs().sum() > 0
    torch.testing.assert_close(torch.stack([layer.magnitude_ema for layer in G.layers]), mags)
    assert torch.isfinite(G.sample(2)).all()
    # resuming continues from the checkpoint (magnitudes included)
    again = GanTrainer(tmp_path / "run", GanTrainConfig(arch="stylegan3", **{**RUN, "iterations": 4}),
                       classifier=None)
    assert again.iteration == 3
    torch.testing.assert_close(torch.stack([layer.magnitude_ema for layer in again.G.layers]), mags)


def test_conditional_presets_refuse_a_discriminator_with_other_classes():
    cfg = GanTrainConfig(arch="stylegan2-cond", g={**TINY_SG2, "c_dim": 10}, d={**TINY_D, "c_dim": 3})
    with pytest.raises(InputError, match="same classes"):
        cfg.resolved()
    resolved = GanTrainConfig(arch="stylegan3-cond", discriminator="residual").resolved()
    assert resolved.g["c_dim"] == resolved.d["c_dim"] == 10 and resolved.d["arch"] == "stylegan2-d"
    assert "c_dim" not in GanTrainConfig(arch="stylegan3").resolved().d


@pytest.mark.parametrize("arch,g", [("stylegan2", TINY_SG2), ("stylegan3", TINY_SG3)])
def test_an_unconditional_export_warm_starts_a_conditional_run(tmp_path, monkeypatch, arch, g):
    for name, c in ((arch, 0), (f"{arch}-cond", 10)):
        preset = copy.deepcopy(gan.PRESETS[name])
        preset["g"], preset["d"] = {**g, **({"c_dim": c} if c else {})}, {**TINY_D, **({"c_dim": c} if c else {})}
        monkeypatch.setitem(gan.PRESETS, name, preset)
    base = GanTrainer(tmp_path / "a", GanTrainConfig(arch=arch, **RUN), classifier=None)
    base.export(tmp_path / "model", name="model")  # an untrained export is as good a source
    source = load_pretrained(tmp_path / "model")
    run = GanTrainer(tmp_path / "b", GanTrainConfig(arch=f"{arch}-cond", init_from=str(tmp_path / "model"),
                                                    freeze="synthesis", **{**RUN, "iterations": 2}),
                     classifier=None)
    assert "class-conditional run" in run.init_note and "start afresh" in run.init_note
    z = torch.randn(3, g["z_dim"])
    want = source.convert(z, "z", "w")
    for k in (0, 7):  # before training the class changes nothing: the export's mapping exactly
        c = torch.nn.functional.one_hot(torch.tensor([k] * 3), 10).float()
        torch.testing.assert_close(run.G_ema.convert(z, "z", "w", c=c), want, rtol=1e-5, atol=1e-5)
    synthesis = {k: v.clone() for k, v in run.G.named_parameters() if not k.startswith(("style.", "embed.",
                                                                                           "mapping."))}
    mapping = {k: v.clone() for k, v in run.G.named_parameters() if k.startswith(("style.", "mapping."))}
    run.train()
    after = dict(run.G.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in synthesis.items())  # --freeze synthesis holds it still
    assert any(not torch.equal(v, after[k]) for k, v in mapping.items())
    other = copy.deepcopy(gan.PRESETS[f"{arch}-cond"])
    other["g"] = {**g, "c_dim": 10, "z_dim": g["z_dim"] * 2}
    monkeypatch.setitem(gan.PRESETS, f"{arch}-cond", other)
    with pytest.raises(InputError, match="differs from this run"):
        GanTrainer(tmp_path / "c", GanTrainConfig(arch=f"{arch}-cond", init_from=str(tmp_path / "model"), **RUN),
                   classifier=None)
    with pytest.raises(InputError, match="mapping network"):
        GanTrainer(tmp_path / "d", GanTrainConfig(arch="dcgan", freeze="synthesis", **RUN), classifier=None)
    with pytest.raises(InputError, match="unknown --freeze"):
        GanTrainConfig(arch=arch, freeze="everything").resolved()
