"""Memory-aware batching (:mod:`ganinv.memory`): sizes, the per-row probe, budgets, and what an allocation
failure does — with tiny models, simulated failures and set budgets (nothing depends on this machine's RAM)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from ganinv import memory
from ganinv.cli.app import app
from ganinv.errors import InputError
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.inverters.optimize import (OptimizeSettings, _initial_latents, _Renderer, lagging_targets, latent_stats,
                                      optimize)
from ganinv.losses import CombinedLoss
from ganinv.memory import MemoryBudgetError, RowCost

from conftest import make_tiny_stylegan2

runner = CliRunner()
OOM = "DefaultCPUAllocator: not enough memory: you tried to allocate 4831838208 bytes."


@pytest.fixture(autouse=True)
def _automatic_budget():
    memory.set_max_memory(None)
    memory.clear_cache()
    yield
    memory.set_max_memory(None)


# ----- sizes ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [("8G", 8 * 1024**3), ("8GiB", 8 * 1024**3), ("8GB", 8 * 10**9),
                                        ("512M", 512 * 1024**2), ("1.5g", int(1.5 * 1024**3)), (" 64 k ", 65536),
                                        ("1073741824", 1073741824), (4096, 4096), ("2e3", 2000)])
def test_parse_size_reads_what_users_write(text, want):
    assert memory.parse_size(text) == want


@pytest.mark.parametrize("bad", ["lots", "8 gigs", "", "-1G", "0", "G", "1..2G", True, float("inf"), "nan"])
def test_parse_size_refuses_what_is_not_a_size(bad):
    with pytest.raises(InputError):
        memory.parse_size(bad)


def test_memory_limit_sets_and_restores_the_budget():
    assert memory.max_memory() is None
    with memory.memory_limit("1M") as b:
        assert b == memory.budget("cpu") == 1024**2 and memory.max_memory() == 1024**2
    assert memory.max_memory() is None and memory.budget("cpu") > 0


# ----- the per-row probe ------------------------------------------------------------------------------------
def test_render_cost_is_measured_on_the_meta_device_and_cached(tiny_sg2):
    cost = memory.render_cost(tiny_sg2, "w+")
    assert cost.how == "meta" and cost.per_row > 0 and cost.fixed >= 0
    assert memory.render_cost(tiny_sg2, "w+") is cost  # cached per model and pass
    assert memory.render_cost(tiny_sg2, "w+", noise_grad=True) is not cost
    assert not any(p.device.type == "meta" for p in tiny_sg2.parameters())  # the model itself untouched


def test_render_cost_grows_with_the_resolution():
    small, big = make_tiny_stylegan2(resolution=16), make_tiny_stylegan2(resolution=32)
    a, b = memory.render_cost(small, "w+"), memory.render_cost(big, "w+")
    assert b.per_row > 2 * a.per_row  # 4x the pixels in the last blocks


def test_meta_estimate_matches_a_real_probe(tiny_sg2_rgb):
    """The meta-device count and the same count on real tensors agree to within the storage sharing the
    meta device cannot see (it counts views twice: it may only err on the safe side)."""
    G = tiny_sg2_rgb
    meta = memory.render_cost(G, "w+")

    def real(n: int) -> int:
        lat = torch.zeros((n, *G.space("w+").shape)).requires_grad_(True)
        with torch.enable_grad():
            return memory.saved_bytes(lambda: G._native(lat, "w+", None))

    probe = memory.row_cost(G, ("real-test",), real)
    assert probe.per_row <= meta.per_row <= 3 * probe.per_row


def test_a_generator_without_meta_kernels_is_probed_for_real(tiny_sg2, monkeypatch):
    monkeypatch.setattr(memory, "meta_copy", lambda module: None)
    cost = memory.render_cost(tiny_sg2, "w")
    assert cost.how == "probe" and cost.per_row > 0


# ----- budgets ----------------------------------------------------------------------------------------------
def test_rows_fill_the_budget_and_one_clear_sentence_when_one_row_does_not_fit(tiny_sg2):
    cost = RowCost(per_row=1000, fixed=500, how="meta")
    with memory.memory_limit(10_500):
        assert memory.rows_that_fit(tiny_sg2, 100, cost) == 10
        assert memory.rows_that_fit(tiny_sg2, 4, cost) == 4
    with memory.memory_limit(10**12):
        assert memory.rows_that_fit(tiny_sg2, 10**6, cost) == 64  # CPU throughput cap
    with memory.memory_limit(1200), pytest.raises(MemoryBudgetError) as err:
        memory.rows_that_fit(tiny_sg2, 4, cost)
    msg = str(err.value)
    assert "single row" in msg and "1.5 KB" in msg and "1.2 KB" in msg and "--max-memory" in msg
    assert "\n" not in msg


def test_automatic_budget_is_a_share_of_what_is_available(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device: 10_000)
    assert memory.budget("cpu") == int(10_000 * memory.CPU_SHARE)


# ----- allocation failures ----------------------------------------------------------------------------------
def test_run_halving_halves_on_allocation_failure_and_keeps_the_order():
    seen: list[tuple[int, int]] = []

    def fn(start: int, stop: int) -> list[int]:
        if stop - start > 3:
            raise RuntimeError(OOM)
        seen.append((start, stop))
        return list(range(start, stop))

    halved: list[int] = []
    parts = memory.run_halving(fn, 20, 16, device="cpu", what="a test pass", on_halve=halved.append)
    assert [x for p in parts for x in p] == list(range(20))
    assert halved == [8, 4, 2] and all(b - a <= 3 for a, b in seen)


def test_run_halving_keeps_restarts_together_and_reraises_other_errors():
    sizes: list[int] = []

    def fn(start: int, stop: int) -> None:
        if stop - start > 6:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        sizes.append(stop - start)

    memory.run_halving(fn, 24, 24, device="cpu", what="x", align=3)
    assert all(s % 3 == 0 for s in sizes) and sum(sizes) == 24
    with pytest.raises(ValueError):
        memory.run_halving(lambda a, b: (_ for _ in ()).throw(ValueError("not memory")), 4, 4, device="cpu",
                           what="x")


def test_one_row_that_fails_to_allocate_is_one_clear_error():
    def fn(start: int, stop: int) -> None:
        raise RuntimeError(OOM)

    with pytest.raises(MemoryBudgetError, match="ran out of memory at a single row.*about 4.0 MB"):
        memory.run_halving(fn, 5, 4, device="cpu", what="one optimisation step", per_row=4 * 1024**2)


def _fail_above(G: StyleGAN2Generator, rows: int, monkeypatch, grad_only: bool = True) -> list[int]:
    """Make ``G`` fail like the allocator for batches above ``rows`` (with gradients, unless not grad_only)."""
    original = G._native
    batches: list[int] = []

    def native(latent, space, noise):
        if latent.shape[0] > rows and (torch.is_grad_enabled() or not grad_only):
            raise RuntimeError(OOM)
        if torch.is_grad_enabled() or not grad_only:
            batches.append(latent.shape[0])
        return original(latent, space, noise)

    monkeypatch.setattr(G, "_native", native)
    return batches


def test_optimisation_survives_allocation_failures_with_the_same_result(tiny_sg2, monkeypatch):
    """A chunk that fails to allocate is halved: the run ends as if it had been given that batch size."""
    y = tiny_sg2.synthesize(tiny_sg2.sample_latent(3, "w+", seed=1), "w+").detach()
    s = OptimizeSettings(steps=6, restarts=2, init="mean", optimizer="adam", seed=3)
    want = optimize(tiny_sg2, y, settings=OptimizeSettings(**{**s.__dict__, "batch_size": 2}))
    batches = _fail_above(tiny_sg2, 2, monkeypatch)
    got = optimize(tiny_sg2, y, settings=s)
    assert max(batches) <= 2
    assert torch.equal(got.latent, want.latent) and torch.equal(got.metrics["loss"], want.metrics["loss"])


def test_best_of_n_start_is_streamed_and_does_not_depend_on_the_chunking(tiny_sg2, monkeypatch):
    G = tiny_sg2
    y = G.synthesize(G.sample_latent(2, "w+", seed=5), "w+").detach()
    s = OptimizeSettings(space="w+", init="best-of-24", restarts=2, noise="fixed", optimizer="adam", lr=0.1)
    loss = CombinedLoss.from_spec("mse")
    stats = latent_stats(G, "w+")

    def starts() -> torch.Tensor:
        return _initial_latents(G, y, s, _Renderer(G, "w+", False), lambda a, b: loss(a, b), stats,
                                torch.Generator().manual_seed(0))

    whole = starts()
    rows_per_chunk = 5
    cost = memory.render_cost(G, "w+")
    batches = _fail_above(G, 1000, monkeypatch, grad_only=False)
    with memory.memory_limit(cost.fixed + rows_per_chunk * cost.per_row):
        chunked = starts()
    assert max(batches) == rows_per_chunk  # never all 24 candidates at once
    assert torch.equal(whole, chunked)


def test_one_row_too_big_for_the_budget_stops_the_engine_before_work(tiny_sg2):
    y = tiny_sg2.synthesize(tiny_sg2.sample_latent(1, "w+", seed=1), "w+").detach()
    with memory.memory_limit("2K"), pytest.raises(MemoryBudgetError, match="16×16 stylegan2 generator"):
        optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2))


# ----- the optimiser a run uses -----------------------------------------------------------------------------
def test_auto_optimizer_is_lbfgs_for_reconstruction_and_adam_when_asked_for(tiny_sg2):
    y = tiny_sg2.synthesize(tiny_sg2.sample_latent(1, "w+", seed=1), "w+").detach()
    r = optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2, init="mean"))
    assert r.settings["optimizer"] == "lbfgs" and r.settings["noise"] == "fixed"
    assert r.settings["lbfgs_precondition"] == 0.75  # W+
    r = optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2, init="mean", space="w"))
    assert r.settings["optimizer"] == "lbfgs" and r.settings["lbfgs_precondition"] == 0.0
    for asks in (dict(lr=0.1), dict(noise="joint"), dict(latent_noise=0.05)):
        r = optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2, init="mean", **asks))
        assert r.settings["optimizer"] == "adam", asks
    r = optimize(tiny_sg2, y[:, :, :8, :8], physics=lambda x: x[:, :, :8, :8],
                 settings=OptimizeSettings(steps=2, init="mean"))
    assert r.settings["optimizer"] == "adam"  # restoration: Adam


def test_lbfgs_with_jointly_optimised_noise_maps_is_refused(tiny_sg2):
    y = tiny_sg2.synthesize(tiny_sg2.sample_latent(1, "w+", seed=1), "w+").detach()
    with pytest.raises(InputError, match="L-BFGS cannot optimise noise maps jointly"):
        optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2, optimizer="lbfgs", noise="joint"))
    r = optimize(tiny_sg2, y, settings=OptimizeSettings(steps=2, optimizer="lbfgs", noise="joint", noise_reg=0.0))
    assert r.noise is not None  # without the penalty it is well-posed


# ----- the CLI ----------------------------------------------------------------------------------------------
def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.mark.usefixtures("offline_torch_home")
def test_cli_max_memory_bad_sizes_and_budgets_too_small(digits, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = invoke("invert", digits, "-o", out, "--max-memory", "lots", "--steps", "2")
    assert r.exit_code == 1 and "--max-memory: 'lots' is not a memory size" in r.output
    r = invoke("invert", digits, "-o", out, "--max-memory", "4K", "--steps", "2")
    assert r.exit_code == 1 and "needs about" in r.output and "single row" in r.output
    assert "Traceback" not in r.output
    r = invoke("invert", digits, "-o", out, "--steps", "2", env={"GANINV_MAX_MEMORY": "twelve"})
    assert r.exit_code == 1 and "GANINV_MAX_MEMORY" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing written, nothing lost
    r = invoke("restore", digits, "--task", "inpaint", "--simulate", "-o", tmp_path / "r",
               "--max-memory", "1.5 parsecs")
    assert r.exit_code == 1 and "not a memory size" in r.output


@pytest.mark.usefixtures("offline_torch_home")
def test_cli_an_allocation_failure_at_one_row_is_one_clear_message(digits, tmp_path, monkeypatch):
    real = StyleGAN2Generator._native

    def native(self, latent, space, noise):
        if torch.is_grad_enabled() and latent.device.type != "meta":  # the probe passes, every real step fails
            raise RuntimeError(OOM)
        return real(self, latent, space, noise)

    monkeypatch.setattr(StyleGAN2Generator, "_native", native)
    memory.clear_cache()
    r = invoke("invert", digits, "-o", tmp_path / "o", "--steps", "2")
    assert r.exit_code == 1 and "ran out of memory at a single row" in r.output and "Traceback" not in r.output


@pytest.mark.usefixtures("offline_torch_home")
def test_cli_reaches_the_engines_stopping_and_restart_options(digits, tmp_path):
    out = tmp_path / "o"
    r = invoke("invert", digits, "-o", out, "--steps", "4", "--retries", "1", "--stop-loss", "1e-9", "--tol",
               "0.01", "--min-steps", "0.5", "--polish-steps", "2", "--patience", "2", "--max-memory", "2G",
               "--lagging", "30", "--lagging-rounds", "1")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert {"retries": 1, "stop_loss": 1e-9, "tol": 0.01, "min_steps": 0.5, "polish_steps": 2, "lagging": 30.0,
            "lagging_rounds": 1}.items() <= summary["options"].items()
    settings = summary["settings"]
    assert settings["retries"] == 1 and settings["polish_steps"] == 2 and settings["optimizer"] == "lbfgs"
    assert settings["lagging"] == 30.0 and settings["lagging_rounds"] == 1
    r = invoke("invert", digits, "-o", tmp_path / "off", "--steps", "2", "--lagging", "off")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "off" / "summary.json").read_text())["settings"]["lagging_rounds"] == 0
    for bad, why in ((["--retries", "2"], "add --stop-loss"), (["--min-steps", "2"], "fraction of --steps"),
                     (["--tol", "-1"], "--tol must be"), (["--optimizer", "lbfgs", "--noise", "joint"],
                                                            "L-BFGS cannot optimise noise maps jointly"),
                     (["--lagging", "0.5"], "--lagging is a multiple"), (["--lagging", "ten"], "--lagging is a"),
                     (["--lagging-rounds", "-1"], "--lagging-rounds must be"),
                     (["--lagging", "off", "--lagging-rounds", "1"], "contradict")):
        r = invoke("invert", digits, "-o", tmp_path / "bad", "--steps", "2", *bad)
        assert r.exit_code == 1 and why in r.output, (bad, r.output)


# ----- convergence stopping and automatic restarts ----------------------------------------------------------
def test_rows_far_behind_their_batch_mates_are_rerun_and_the_others_untouched(tiny_sg2):
    G = tiny_sg2
    y = G.synthesize(G.sample_latent(3, "w+", seed=2), "w+").detach()
    board = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2).float().expand(1, 1, 16, 16)
    y = torch.cat([y, board])  # a pixel checkerboard: far out of this generator's range
    s = dict(steps=20, init="mean", space="w+", seed=1)
    off = optimize(G, y, settings=OptimizeSettings(**s, lagging=None))
    once = optimize(G, y, settings=OptimizeSettings(**s, lagging_rounds=1))
    on = optimize(G, y, settings=OptimizeSettings(**s))  # two rounds: the checkerboard stays far behind
    assert once.metrics["rounds"].tolist() == [1, 1, 1, 2] and on.metrics["rounds"].tolist() == [1, 1, 1, 3]
    assert torch.equal(on.latent[:3], off.latent[:3]) and torch.equal(once.latent[:3], off.latent[:3])
    assert float(on.metrics["loss"][3]) <= float(once.metrics["loss"][3]) <= float(off.metrics["loss"][3])
    assert int(on.metrics["steps"][3]) > int(once.metrics["steps"][3]) > int(off.metrics["steps"][3])
    assert int(on.metrics["restart"][3]) < 1 + 2 + 4  # restarts are numbered over the rounds' 1 + 2 + 4 rows
    assert torch.equal(optimize(G, y, settings=OptimizeSettings(**s, lagging_rounds=0)).latent, off.latent)
    with pytest.raises(InputError, match="lagging must be"):
        optimize(G, y, settings=OptimizeSettings(**s, lagging=0.5))
    with pytest.raises(InputError, match="lagging_rounds must be"):
        optimize(G, y, settings=OptimizeSettings(**s, lagging_rounds=-1))


def test_lagging_is_measured_against_the_lower_quartile_so_a_mostly_stuck_batch_is_rerun():
    exact, stuck = 3e-14, 1.5e-2  # a random SNGAN ResNet's own samples: 100 dB, or a poor minimum at 18 dB
    loss = torch.tensor([exact] * 4 + [stuck] * 8)  # most of the batch stuck: the median is one of them
    assert lagging_targets(loss, 10.0).tolist() == list(range(4, 12))
    assert lagging_targets(loss, 10.0, stop_loss=0.02).numel() == 0  # at their tolerance: done
    # exact recoveries differ among themselves by orders of magnitude; none of them lags
    assert lagging_targets(torch.tensor([1e-14, 1e-14, 1e-14, 1e-10, 5e-9]), 10.0).numel() == 0
    # nor does a target past 40 dB (MSE 1e-4), 500× its batch's quartile or not: more starts buy nothing visible
    assert lagging_targets(torch.tensor([1e-7, 1e-7, 1e-7, 5e-5, 2e-4]), 10.0).tolist() == [4]
    # a diverged row (NaN) lags; a batch with nothing finite has no reference
    assert lagging_targets(torch.tensor([1e-3, 1e-3, 2e-3, math.nan]), 10.0).tolist() == [3]
    assert lagging_targets(torch.full((3,), math.nan), 10.0).numel() == 0
    # ordinary spread (a few dB) is not lagging
    assert lagging_targets(torch.tensor([1e-3, 2e-3, 4e-3, 8e-3]), 10.0).numel() == 0


def test_patience_is_automatic_and_resolved_from_the_steps(tiny_sg2):
    y = tiny_sg2.synthesize(tiny_sg2.sample_latent(1, "w+", seed=1), "w+").detach()
    r = optimize(tiny_sg2, y, settings=OptimizeSettings(steps=300, init="mean", space="w", optimizer="adam",
                                                        lr=1e-9))  # a learning rate that cannot make progress
    assert r.settings["patience"] == 60
    assert int(r.metrics["steps"][0]) < 300  # the row stopped on its own once its loss stopped moving
