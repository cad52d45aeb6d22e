"""Numerics: NaN/Inf in inputs are refused up front with one clear InputError; an optimisation that diverges
(NaN objective mid-run) stops that sample at its best iterate, says so per sample, and leaves the others alone."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv import invert
from ganinv.editing.codes import read_latent_file
from ganinv.errors import InputError
from ganinv.inverters.optimize import OptimizeSettings, optimize
from ganinv.io import load_target, save_npz
from ganinv.physics import make_task
from ganinv.restore import restore

from conftest import make_tiny_stylegan2

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def G():
    return make_tiny_stylegan2()


@pytest.fixture(scope="module")
def x(G):
    return G.sample(3, seed=0).clamp(0, 1)


def _poke(t: torch.Tensor, value: float) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[t.numel() // 2] = value
    return t


def _np_poke(shape: tuple[int, ...], value: float) -> np.ndarray:
    a = np.full(shape, 0.5, np.float32)
    a.flat[a.size // 2] = value
    return a


CASES = {
    "target (optimize)": lambda G, x, v: invert(G, _poke(x, v), steps=2),
    "target (multicode)": lambda G, x, v: invert(G, _poke(x, v), method="multicode", steps=2),
    "target (pti)": lambda G, x, v: invert(G, _poke(x, v), method="pti", steps=2),
    "observation y (restore)": lambda G, x, v: restore(
        G, _poke(make_task("denoise", G.image_shape, sigma=0.1).simulate(x), v),
        make_task("denoise", G.image_shape, sigma=0.1), steps=2),
    "observation y (physics)": lambda G, x, v: invert(G, _poke(x[:, :, ::2, ::2], v),
                                                      physics=lambda im: im[:, :, ::2, ::2], steps=2),
    "latent to synthesize": lambda G, x, v: G.synthesize(_poke(G.sample_latent(2, "w", seed=1), v), "w"),
    "noise map to synthesize": lambda G, x, v: G.synthesize(
        G.sample_latent(1, "w", seed=1), "w", noise=[_poke(m, v) for m in G.stored_noise()]),
    "init latent": lambda G, x, v: invert(G, x, space="w", init=_poke(G.sample_latent(1, "w", seed=1), v), steps=2),
    "mask array": lambda G, x, v: make_task("inpaint", G.image_shape, mask=_np_poke((16, 16), v)),
    "blur kernel array": lambda G, x, v: make_task("deblur", G.image_shape, kernel=_np_poke((3, 3), v)),
    "deblur sigma": lambda G, x, v: make_task("deblur", G.image_shape, sigma=v),
    "denoise sigma": lambda G, x, v: make_task("denoise", G.image_shape, sigma=v),
    "noise_sigma": lambda G, x, v: make_task("sr", G.image_shape, factor=2, noise_sigma=v),
    "inpaint ratio": lambda G, x, v: make_task("inpaint", G.image_shape, ratio=v),
    "cs seed": lambda G, x, v: make_task("cs", G.image_shape, m=8, seed=v),
    "learning rate": lambda G, x, v: invert(G, x, lr=v, steps=2),
    "prior weight": lambda G, x, v: invert(G, x, prior=v, steps=2),
    "loss weight": lambda G, x, v: invert(G, x, loss={"mse": v}, steps=2),
    "seed": lambda G, x, v: invert(G, x, seed=v, steps=2),
    "operator parameters": lambda G, x, v: invert(G, x[:, :, ::2, ::2], physics=lambda im: im[:, :, ::2, ::2] * v,
                                                  steps=2),
}


@pytest.mark.parametrize("value", [NAN, INF], ids=["nan", "inf"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_non_finite_inputs_are_refused_up_front(G, x, case: str, value: float) -> None:
    with pytest.raises(InputError) as exc:
        CASES[case](G, x, value)
    msg = str(exc.value)
    assert "\n" not in msg and any(w in msg for w in ("NaN", "finite", "whole number", "Inf")), msg


def test_non_finite_files_are_refused(G, tmp_path) -> None:
    """Latent files, mask/kernel files and float images with NaN/Inf."""
    w = G.convert(G.sample_latent(1, "w", seed=2), "w", "w+").numpy()
    w[0, 0, 0] = np.nan
    save_npz(tmp_path / "w.npz", {"w": w})
    np.save(tmp_path / "w.npy", w[0])
    for name in ("w.npz", "w.npy"):
        with pytest.raises(InputError, match="NaN or Inf"):
            read_latent_file(tmp_path / name, G)
    np.save(tmp_path / "mask.npy", _np_poke((16, 16), INF))
    with pytest.raises(InputError, match="NaN or Inf"):
        make_task("inpaint", G.image_shape, mask=str(tmp_path / "mask.npy"))
    np.save(tmp_path / "kernel.npy", _np_poke((3, 3), NAN))
    with pytest.raises(InputError, match="finite"):
        make_task("deblur", G.image_shape, kernel=str(tmp_path / "kernel.npy"))
    Image.fromarray(_np_poke((16, 16), NAN), mode="F").save(tmp_path / "nan.tiff")
    with pytest.raises(InputError, match="NaN or infinite"):
        load_target(tmp_path / "nan.tiff", 1, 16)


class _Poison:
    """An extra objective term that is NaN for the first row of the batch at one evaluation with gradient (a
    sample that diverges mid-run), zero otherwise. Under Adam that evaluation is a step; under L-BFGS the
    first one is the start point and the others are mostly line-search trials (the full step, evaluated with
    its gradient for reuse)."""

    def __init__(self, at_call: int) -> None:
        self.calls, self.at = 0, at_call

    def __call__(self, lat: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        value = torch.zeros(lat.shape[0], device=lat.device)
        if not lat.requires_grad:  # L-BFGS line-search trials (they reject a NaN step on their own)
            return value
        self.calls += 1
        if self.calls == self.at:
            value[0] = NAN
        return value


def test_lbfgs_rejects_a_nan_trial_and_flags_a_nan_start(G, x) -> None:
    s = OptimizeSettings(steps=30, init="mean", optimizer="lbfgs", lagging=None)
    clean = optimize(G, x, settings=s)
    # a NaN at a line-search trial: the step is refused and the row backtracks, as for any bad step
    tried = optimize(G, x, settings=s, extra_terms={"poison": _Poison(at_call=12)})
    assert tried.metrics["diverged"].tolist() == [False, False, False] and tried.notes == []
    assert torch.isfinite(tried.latent).all()
    assert float(tried.metrics["loss"][0]) < 0.5 * float(tried.history["loss"][0][0])
    torch.testing.assert_close(tried.latent[1:], clean.latent[1:], rtol=0, atol=1e-5)
    # a NaN where the row starts: nothing to step from, so it is stopped there and said so
    start = optimize(G, x, settings=s, extra_terms={"poison": _Poison(at_call=1)})
    assert start.metrics["diverged"].tolist() == [True, False, False]
    assert int(start.metrics["steps"][0]) == 0 and start.notes[0].startswith("target 0: the optimisation diverged")
    torch.testing.assert_close(start.latent[1:], clean.latent[1:], rtol=0, atol=1e-5)


def test_divergence_falls_back_to_the_best_iterate_of_that_sample_only(G, x) -> None:
    s = OptimizeSettings(steps=30, init="mean", optimizer="adam", lagging=None)  # no automatic rerun
    clean = optimize(G, x, settings=s)
    poisoned = optimize(G, x, settings=s, extra_terms={"poison": _Poison(at_call=12)})
    assert poisoned.metrics["diverged"].tolist() == [True, False, False]
    assert clean.metrics["diverged"].tolist() == [False, False, False] and clean.notes == []
    # the other samples are not poisoned: exactly the clean run's result
    assert torch.equal(poisoned.latent[1:], clean.latent[1:])
    assert torch.equal(poisoned.metrics["loss"][1:], clean.metrics["loss"][1:])
    # the diverged one kept its best iterate: finite, better than its start, and said so
    assert torch.isfinite(poisoned.latent).all() and math.isfinite(float(poisoned.metrics["loss"][0]))
    assert float(poisoned.metrics["loss"][0]) < poisoned.history["loss"][0][0]  # better than where it started
    assert len(poisoned.notes) == 1 and poisoned.notes[0].startswith("target 0: the optimisation diverged")
    assert "best iterate" in poisoned.notes[0]
    assert int(poisoned.metrics["steps"][0]) < int(clean.metrics["steps"][0])


def test_a_diverged_restart_never_wins_over_a_finite_one(G, x) -> None:
    s = OptimizeSettings(steps=20, init="mean", restarts=2)
    r = optimize(G, x[:1], settings=s, extra_terms={"poison": _Poison(at_call=1)})  # restart 0 diverges at once
    assert int(r.metrics["restart"][0]) == 1 and not bool(r.metrics["diverged"][0]) and r.notes == []
    assert math.isfinite(float(r.metrics["loss"][0]))


def test_huge_learning_rate_stays_finite(G, x) -> None:
    """An absurd learning rate saturates StyleGAN2 rather than overflowing; whatever happens, the result is
    finite and any divergence is flagged."""
    r = invert(G, x, lr=1e12, steps=15, init="mean")
    assert torch.isfinite(r.latent).all() and torch.isfinite(r.image).all()
    assert r.metrics["diverged"].dtype == torch.bool and len(r.notes) == int(r.metrics["diverged"].sum())


def test_cli_reports_divergence(G, tmp_path, monkeypatch) -> None:
    """``ganinv invert`` prints the note and records ``diverged`` per image in summary.json."""
    import json

    from typer.testing import CliRunner

    import importlib

    from ganinv.cli.app import app
    from ganinv.io import save_image
    from ganinv.modelfile import save_pretrained

    save_pretrained(G, tmp_path / "model", name="tiny", kind="generator")
    for i in range(2):
        save_image(x_img := G.sample(1, seed=20 + i)[0].clamp(0, 1), tmp_path / "in" / f"d{i}.png")
    assert x_img.shape[0] == 1
    opt = importlib.import_module("ganinv.inverters.optimize")  # (the package exports a function of that name)
    original = opt._run_chunk

    def poisoned(*args, **kwargs):
        args = list(args)
        args[-1] = {"poison": _Poison(at_call=1)}  # extra_terms: the start of d0 is NaN
        return original(*args, **kwargs)

    monkeypatch.setattr(opt, "_run_chunk", poisoned)
    result = CliRunner().invoke(app, ["invert", str(tmp_path / "in"), "--model", str(tmp_path / "model"),
                                      "--steps", "12", "--out", str(tmp_path / "out"), "--no-classifier"])
    assert result.exit_code == 0, result.output
    assert "d0: the optimisation diverged" in result.output
    records = json.loads((tmp_path / "out" / "summary.json").read_text())["records"]
    assert [r["diverged"] for r in records] == [True, False]


class _PoisonedLoss:
    """Wraps ``CombinedLoss.forward``: on the ``at``-th differentiable call the first row's loss is NaN (a target
    whose optimisation diverges mid-run); calls without gradient (candidate scoring, final renders) pass."""

    def __init__(self, forward, at: int) -> None:
        self.forward, self.at, self.calls = forward, at, 0

    def __call__(self, module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.forward(module, pred, target)
        if pred.requires_grad:
            self.calls += 1
            if self.calls == self.at:
                out = out.clone()
                out[0] = NAN
        return out


@contextlib.contextmanager
def poisoned_loss(at: int) -> Iterator[_PoisonedLoss]:
    """Within the block, every ``CombinedLoss`` is poisoned as :class:`_PoisonedLoss` (``at``-th call with gradient);
    the reliability report uses it too."""
    from ganinv.losses import CombinedLoss

    original = CombinedLoss.forward
    poison = _PoisonedLoss(original, at)
    CombinedLoss.forward = lambda self, pred, target: poison(self, pred, target)
    try:
        yield poison
    finally:
        CombinedLoss.forward = original


def test_pti_tuning_divergence_keeps_that_images_best_delta_only(G, x) -> None:
    from ganinv.inverters.pti import PTISettings, invert_pti

    pivot = optimize(G, x, settings=OptimizeSettings(space="w", steps=10, init="mean"))
    s = PTISettings(steps=12, stop_psnr=None, rank=2)
    clean = invert_pti(G, x, s, pivot=pivot)
    with poisoned_loss(6):
        poisoned = invert_pti(G, x, s, pivot=pivot)
    assert poisoned.metrics["diverged"].tolist() == [True, False, False]
    assert clean.metrics["diverged"].tolist() == [False, False, False] and clean.notes == []
    assert int(poisoned.metrics["steps"][0]) == 5 and poisoned.metrics["steps"][1:].tolist() == [12, 12]
    for d in poisoned.deltas:
        assert all(torch.isfinite(v).all() for v in d.values())
    for i in (1, 2):  # the others tuned exactly as without the poison
        for k, v in clean.deltas[i].items():
            torch.testing.assert_close(poisoned.deltas[i][k], v, atol=1e-6, rtol=1e-5)
    assert torch.isfinite(poisoned.image).all()
    assert len(poisoned.notes) == 1 and poisoned.notes[0].startswith("target 0: generator tuning diverged")


def test_multicode_divergence_is_flagged_and_keeps_the_best_state(G, x) -> None:
    clean = invert(G, x, method="multicode", steps=10, codes=2)
    with poisoned_loss(6):
        poisoned = invert(G, x, method="multicode", steps=10, codes=2)
    assert poisoned.metrics["diverged"].tolist() == [True, False, False]
    assert clean.metrics["diverged"].tolist() == [False, False, False] and clean.notes == []
    assert torch.isfinite(poisoned.latent).all() and torch.isfinite(poisoned.metrics["loss"]).all()
    before = [row[0] for row in poisoned.history["loss"][:5]]  # the steps before the NaN at step 5
    assert float(poisoned.metrics["loss"][0]) == pytest.approx(min(before), rel=1e-6)  # frozen there
    assert float(poisoned.metrics["loss"][0]) < before[0]
    torch.testing.assert_close(poisoned.metrics["loss"][1:], clean.metrics["loss"][1:], atol=1e-7, rtol=1e-5)
    assert len(poisoned.notes) == 1 and poisoned.notes[0].startswith("target 0: the optimisation diverged")
