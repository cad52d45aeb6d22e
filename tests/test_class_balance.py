"""Class-balance fine-tuning of a StyleGAN2 mapping network (ganinv.train.class_balance)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_stylegan2
from typer.testing import CliRunner

from ganinv.classifier import DigitClassifier
from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.modelfile import load_pretrained, save_pretrained
from ganinv.train.class_balance import BalanceConfig, MappingBalancer, marginal_kl_to_uniform

runner = CliRunner()


def tiny_classifier(seed: int) -> DigitClassifier:
    torch.manual_seed(seed)
    return DigitClassifier(width=4, feature_dim=8).eval()


class PixelClassifier(torch.nn.Module):
    """A sharp linear "classifier" of the pixels: its classes change with small changes of the image."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(32 * 32, 10)
        with torch.no_grad():
            self.linear.weight.mul_(20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def tiny_g32(seed: int = 0):
    return make_tiny_stylegan2(seed=seed, resolution=32)


def cfg(**kw) -> BalanceConfig:
    base = dict(steps=4, batch_size=32, lr=0.05, eval_every=2, eval_samples=200, checkpoint_every=1)
    base.update(kw)
    return BalanceConfig(**base)


def test_marginal_kl_is_zero_when_balanced_and_log_k_when_collapsed():
    k = 10
    balanced = torch.eye(k).repeat(3, 1)
    assert float(marginal_kl_to_uniform(balanced)) == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.zeros(8, k)
    collapsed[:, 3] = 1
    assert float(marginal_kl_to_uniform(collapsed)) == pytest.approx(math.log(k), rel=1e-5)
    # uniform softmax per sample is also balanced in the marginal: the loss says nothing per sample
    assert float(marginal_kl_to_uniform(torch.full((5, k), 1 / k))) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError):
        marginal_kl_to_uniform(torch.ones(k))


def test_balancing_moves_only_the_mapping_and_lowers_the_imbalance(tmp_path):
    G = tiny_g32()
    synthesis_before = {k: v.clone() for k, v in G.state_dict().items() if not k.startswith("style.")}
    mapping_before = {k: v.clone() for k, v in G.style.state_dict().items()}
    aux = PixelClassifier(1)
    balancer = MappingBalancer(G, aux, tmp_path / "run", cfg(steps=30, eval_every=30, lr=0.5, lr_decay_start=1.0),
                               evaluator=tiny_classifier(2))
    fixed = torch.Generator().manual_seed(99)
    z = torch.randn(2000, G.z_dim, generator=fixed)

    def imbalance() -> float:
        with torch.no_grad():
            return float(marginal_kl_to_uniform(aux(G.to_display(G.synthesize(G.mapping(z), "w"))).softmax(1)))

    before = imbalance()
    balancer.train(progress=False)
    after = imbalance()
    assert after < 0.7 * before, (before, after)
    for k, v in G.state_dict().items():
        if k.startswith("style."):
            continue
        assert torch.equal(v, synthesis_before[k]), k
    assert any(not torch.equal(v, mapping_before[k]) for k, v in G.style.state_dict().items())
    evals = [r for r in balancer.log if "fd" in r]
    assert [r["step"] for r in evals] == [0, 30]
    assert all(r["fd_train"] is not None and r["fd"] > 0 for r in evals)
    assert (tmp_path / "run" / "curves.png").is_file()
    assert (tmp_path / "run" / "snapshots" / "step_30.safetensors").is_file()


def test_resume_continues_the_same_run(tmp_path):
    straight = tiny_g32()
    MappingBalancer(straight, tiny_classifier(1), tmp_path / "a", cfg(), evaluator=tiny_classifier(2)).train(
        progress=False)

    interrupted = tiny_g32()
    first = MappingBalancer(interrupted, tiny_classifier(1), tmp_path / "b", cfg(), evaluator=tiny_classifier(2))
    first.out.mkdir(parents=True)
    first.evaluate()
    first.train_step()
    first.train_step()
    first.save_checkpoint()
    resumed_G = tiny_g32()
    resumed = MappingBalancer(resumed_G, tiny_classifier(1), tmp_path / "b", cfg(), evaluator=tiny_classifier(2))
    assert resumed.step == 2
    resumed.train(progress=False)
    for k, v in straight.style.state_dict().items():
        assert torch.equal(v, resumed_G.style.state_dict()[k]), k

    with pytest.raises(InputError, match="another recipe"):
        MappingBalancer(tiny_g32(), tiny_classifier(1), tmp_path / "b", cfg(lr=0.5), evaluator=tiny_classifier(2))


def test_refuses_the_evaluation_classifier_and_generators_without_mapping(tmp_path, tiny_dcgan):
    evaluator = tiny_classifier(2)
    with pytest.raises(InputError, match="evaluation classifier itself"):
        MappingBalancer(tiny_g32(), tiny_classifier(2), tmp_path / "r", cfg(), evaluator=evaluator)
    with pytest.raises(InputError, match="mapping network"):
        MappingBalancer(tiny_dcgan, tiny_classifier(1), tmp_path / "r", cfg(), evaluator=evaluator)


def test_export_keeps_the_synthesis_and_the_discriminator(tmp_path, monkeypatch):
    import ganinv.train.class_balance as cb
    from ganinv.generators.stylegan2_discriminator import StyleGAN2Discriminator

    source = tmp_path / "source"
    G0 = tiny_g32()
    save_pretrained(G0, source, name="source", kind="generator", meta={"iterations": 7})
    torch.manual_seed(3)
    D = StyleGAN2Discriminator(resolution=32, channels={32: 8, 16: 8, 8: 8, 4: 8}, img_channels=1)
    save_pretrained(D, source, name="source", kind="discriminator", weights_name="discriminator.safetensors",
                    write_config=False)
    import json

    config = json.loads((source / "config.json").read_text())
    config["discriminator"] = D.config()
    (source / "config.json").write_text(json.dumps(config))

    balancer = MappingBalancer(load_pretrained(source), tiny_classifier(1), tmp_path / "run", cfg(),
                               evaluator=tiny_classifier(2), source=source)
    balancer.train(progress=False)
    monkeypatch.setattr(cb, "EXPORT_SAMPLES", 1000)  # the export's own count (10,000) on fewer, tiny-model samples
    meta = balancer.export(tmp_path / "out", name="out")
    assert meta["iterations"] == 7 and meta["class_balance"]["selected_step"] in (0, 2, 4)
    assert meta["quality"]["n_samples"] == 1000  # measured again: the run's evaluations used 200 samples
    assert meta["class_balance"]["quality_before"]["fd"] > 0
    G1 = load_pretrained(tmp_path / "out")
    for k, v in G0.state_dict().items():
        if not k.startswith("style."):
            assert torch.equal(v, G1.state_dict()[k]), k
    D1 = load_pretrained(tmp_path / "out", weights_name="discriminator.safetensors", config_key="discriminator")
    for k, v in D.state_dict().items():
        assert torch.equal(v, D1.state_dict()[k]), k
    # the exported w_avg is the new mapping's mean
    w = G1.mapping(torch.randn(10_000, G1.z_dim, generator=torch.Generator().manual_seed(0))).mean(0)
    assert torch.allclose(G1.w_avg, w, atol=1e-5)

    # exporting over the source folder itself (the README's recipe) keeps its discriminator
    meta = MappingBalancer(load_pretrained(source), tiny_classifier(1), tmp_path / "run", cfg(),
                           evaluator=tiny_classifier(2), source=source).export(source, name="source")
    assert meta["class_balance"]["steps_run"] == 4
    z = torch.ones(1, G0.z_dim)
    assert torch.equal(load_pretrained(source).mapping(z), G1.mapping(z))  # the same snapshot was kept
    D2 = load_pretrained(source, weights_name="discriminator.safetensors", config_key="discriminator")
    for k, v in D.state_dict().items():
        assert torch.equal(v, D2.state_dict()[k]), k


def test_cli_errors(tmp_path):
    result = runner.invoke(app, ["balance-classes", "--classifier", str(tmp_path / "missing"), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "train-classifier" in result.output and "Traceback" not in result.output
    aux = tmp_path / "aux"
    save_pretrained(tiny_classifier(1), aux, name="aux", kind="classifier")
    result = runner.invoke(app, ["balance-classes", "--model", "no-such-model", "--classifier", str(aux), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1 and "mnist-stylegan2" in result.output
    result = runner.invoke(app, ["balance-classes", "--model", "mnist-dcgan", "--classifier", str(aux), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1 and "mapping network" in result.output
    assert not (tmp_path / "run").exists()


def test_export_reuses_the_chosen_evaluation_instead_of_measuring_it_again(tmp_path, monkeypatch):
    import ganinv.train.class_balance as cb
    from ganinv.train.quality import generator_quality

    G = tiny_g32()
    evaluator = tiny_classifier(2)
    monkeypatch.setattr(cb, "EXPORT_SAMPLES", 1000)  # the export's count (10,000 by default), on a tiny model
    balancer = MappingBalancer(G, tiny_classifier(1), tmp_path / "run", cfg(steps=2, eval_samples=1000),
                               evaluator=evaluator)
    balancer.train(progress=False)

    def not_again(*args, **kwargs):
        raise AssertionError("the chosen step was already measured on EXPORT_SAMPLES samples")

    monkeypatch.setattr(cb, "generator_quality", not_again)
    meta = balancer.export(tmp_path / "out", name="out")
    monkeypatch.setattr(cb, "generator_quality", generator_quality)
    fresh = generator_quality(load_pretrained(tmp_path / "out"), evaluator, n=1000, with_train=True).to_dict()
    assert meta["quality"] == fresh  # the same weights, samples and seed
    assert meta["quality"]["n_samples"] == 1000
