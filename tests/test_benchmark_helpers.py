"""The methods benchmark's verdict helpers (pure functions over its result rows)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import methods  # noqa: E402


def _rows(**psnr: float) -> dict:
    names = {"w": "optimisation (W)", "enc": "encoder (1 pass)", "ref": "encoder + refinement (5 passes)",
             "wp": "optimisation (W+)", "hyb": "hybrid (encoder + optimisation)",
             "pti": "PTI (W pivot + generator tuning)"}
    return {"rows": [{"method": names[k], "psnr": v} for k, v in psnr.items()]}


def test_ordering_holds_when_every_family_beats_the_previous_one():
    r = _rows(w=20.0, enc=21.0, ref=22.0, wp=23.0, hyb=24.0, pti=25.0)
    assert methods.ordering_sentence(r).endswith("holds.")


def test_ordering_names_the_broken_pair_using_the_encoder_familys_best_row():
    r = _rows(w=32.84, enc=25.0, ref=28.5, wp=39.8, hyb=39.9, pti=43.6)
    s = methods.ordering_sentence(r)
    assert "does not hold" in s
    assert "optimisation (W) 32.84 dB ≥ encoder + refinement (5 passes) 28.50 dB" in s
    assert "W+" not in s.split(":", 1)[1]  # only the one broken pair is named
    # the 1-pass row alone is below W, but the refinement row lifts the family above it
    assert methods.ordering_sentence(_rows(w=26.0, enc=25.0, ref=28.5, wp=39.8, hyb=39.9, pti=43.6)).endswith("holds.")


def test_ordering_is_silent_without_all_rows():
    assert methods.ordering_sentence(_rows(w=20.0, wp=23.0)) == ""


def test_first_step_reaching_counts_updates():
    assert methods.first_step_reaching([10.0, 20.0, 30.0], 20.0) == 1
    assert methods.first_step_reaching([10.0, 20.0, 30.0], 10.0) == 0
    assert methods.first_step_reaching([10.0, 20.0], 31.0) is None


def test_lasso_interpolation_round_trips_and_the_shortfall_sentence_reads_the_standard_error():
    import restoration

    rows = [{"m": 10, "mse": 0.083}, {"m": 25, "mse": 0.078}, {"m": 50, "mse": 0.074}, {"m": 100, "mse": 0.058}]
    for err in (0.0775, 0.07, 0.06):
        m = restoration.measurements_for(err, rows)
        assert abs(restoration.lasso_error_at(m, rows) - err) < 1e-9
    assert restoration.lasso_error_at(5, rows) is None and restoration.lasso_error_at(500, rows) is None
    near = restoration.shortfall_sentence("g", {"m": 10, "mse": 0.0745, "mse_sem": 0.005}, 4.6, rows)
    assert "0.0740 (Lasso's at m = 50)" in near and "within one standard error" in near
    far = restoration.shortfall_sentence("g", {"m": 10, "mse": 0.09, "mse_sem": 0.005}, 1.0, rows)
    assert "more than one standard error" in far
    assert restoration.shortfall_sentence("g", {"m": 100, "mse": 0.05, "mse_sem": 0.001}, 1.0, rows) == ""


def test_recovery_rows_name_their_own_machines_and_older_rows_the_earlier_run():
    import inversion

    new = {"cpu_threads": 2, "torch": "t", "platform": "P", "date": "2026-11-27"}
    r = {"recovery": [{"model": "a"}, {"model": "b", "machine": new}], "recovery_machine": {"cpu_threads": 1}}
    text = inversion.recovery_machines_text(r)
    assert "`a` with 1 thread(s) in an earlier run" in text and "`b` with 2 thread(s) on P, 2026-11-27" in text
    assert inversion.recovery_machines_text({"recovery": [{"model": "a"}]}) == ""


def test_grown_generator_is_a_64px_stylegan2_drawing_the_small_ones_images(tiny_sg2):
    import torch

    import train_encoder_any

    G = tiny_sg2
    big = train_encoder_any.grow_generator(G, G.resolution * 2)
    assert big.resolution == 2 * G.resolution and big.num_ws == G.num_ws + 2
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in big.state_dict().items()
               if k in G.state_dict() and v.shape == G.state_dict()[k].shape)
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)))
    small = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), G.stored_noise())
    large = big.synthesis(w[:, None].expand(-1, big.num_ws, -1), big.stored_noise())
    # the added block draws nothing: the image is the small one, upsampled by the skip path's FIR filter
    assert large.shape[-1] == 2 * small.shape[-1] and small.abs().mean() > 0.1
    torch.testing.assert_close(large, big.to_rgbs[-1].upsample(small), rtol=0, atol=1e-6)
    torch.testing.assert_close(big.w_avg, G.w_avg)
