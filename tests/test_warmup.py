"""The Adam warm-up that opens an L-BFGS run, and the L-BFGS polish after Adam."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest
import torch

from ganinv.errors import InputError
from ganinv.inverters import OptimizeSettings, optimize
from ganinv.inverters.optimize import warmup_steps

engine = importlib.import_module("ganinv.inverters.optimize")  # (the package re-exports a function of that name)


def targets(G, n: int, seed: int = 3):
    w = G.sample_latent(n, "w", seed=seed)
    with torch.no_grad():
        return G.synthesize(w, "w")


def counting(monkeypatch):
    """Count the Adam and L-BFGS optimisers the engine builds, in order."""
    built: list[str] = []
    adam = torch.optim.Adam

    class SpyAdam(adam):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            built.append("adam")
            super().__init__(*a, **k)

    class SpyLBFGS(engine.BatchedLBFGS):
        def __init__(self, *a, **k):
            built.append("lbfgs")
            super().__init__(*a, **k)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    monkeypatch.setattr(engine, "BatchedLBFGS", SpyLBFGS)
    return built


def test_warmup_steps_rules():
    s = OptimizeSettings(steps=500, optimizer="lbfgs")
    assert warmup_steps(s) == 100
    assert warmup_steps(replace(s, warmup=0.0)) == 0
    assert warmup_steps(replace(s, optimizer="adam")) == 0
    assert warmup_steps(replace(s, init=torch.zeros(1, 8))) == 0  # a given start is refined as it is
    assert warmup_steps(replace(s, steps=1)) == 0
    assert warmup_steps(replace(s, steps=3, warmup=0.9)) == 2  # L-BFGS always keeps a step


def test_warmup_runs_adam_then_lbfgs_as_one_phase(tiny_sg2, monkeypatch):
    built = counting(monkeypatch)
    seen: list[tuple[int, int, str]] = []
    y = targets(tiny_sg2, 2)
    r = optimize(tiny_sg2, y, None, OptimizeSettings(space="w", steps=10, warmup=0.3, patience=None, lagging=None),
                 callback=lambda t, st: seen.append((t, st.total_steps, st.phase)))
    assert r.settings["optimizer"] == "lbfgs" and r.settings["warmup"] == 0.3
    assert built == ["adam", "lbfgs"]
    # the progress a callback sees runs on through the switch: steps 0..9 of 10, one phase
    assert [t for t, _, _ in seen] == list(range(10))
    assert {total for _, total, _ in seen} == {10} and {p for _, _, p in seen} == {"latent"}
    assert (r.metrics["steps"] == 10).all()


def test_warmup_result_is_never_worse_than_its_best_iterate(tiny_sg2):
    y = targets(tiny_sg2, 3, seed=8)
    r = optimize(tiny_sg2, y, None, OptimizeSettings(space="w", steps=12, warmup=0.5, patience=None, lagging=None))
    curve = torch.tensor(r.history["loss"])  # [steps, targets]
    assert (r.metrics["loss"] <= curve.min(0).values + 1e-7).all()
    # L-BFGS after the warm-up goes on improving it
    assert (r.metrics["loss"] < curve[:6].min(0).values).all()


def test_no_warmup_from_a_given_start_or_with_adam(tiny_sg2, monkeypatch):
    built = counting(monkeypatch)
    y = targets(tiny_sg2, 2)
    w0 = tiny_sg2.mean_latent("w").reshape(1, -1)
    optimize(tiny_sg2, y, None, OptimizeSettings(space="w", steps=6, init=w0, lagging=None))
    assert built == ["lbfgs"]
    built.clear()
    optimize(tiny_sg2, y, None, OptimizeSettings(space="w", steps=6, optimizer="adam", lagging=None))
    assert built == ["adam"]


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.2", float("nan")])
def test_warmup_is_validated(tiny_sg2, bad):
    with pytest.raises(InputError, match="warmup is the fraction"):
        optimize(tiny_sg2, targets(tiny_sg2, 1), None, OptimizeSettings(space="w", steps=4, warmup=bad))


def test_polish_after_adam_with_joint_noise_improves_the_fit(tiny_sg2):
    # Adam optimises the noise maps jointly (NVIDIA's); the L-BFGS polish then works on the latent with the maps
    # as Adam left them (under the noise penalty L-BFGS stalls in the maps' coordinates)
    y = targets(tiny_sg2, 3, seed=11)
    base = OptimizeSettings(space="w+", steps=20, optimizer="adam", noise="joint", patience=None, lagging=None)
    plain = optimize(tiny_sg2, y, None, base)
    polished = optimize(tiny_sg2, y, None, replace(base, polish_steps=30))
    assert polished.settings["lbfgs_precondition"] == 0.75  # W+'s preconditioner, as for an L-BFGS run
    assert (polished.metrics["loss"] < 0.5 * plain.metrics["loss"]).all(), (plain.metrics["loss"],
                                                                           polished.metrics["loss"])
