"""Pivotal tuning: compact per-image deltas that re-apply bit-exactly, better fidelity than the pivot,
locality regulariser, files and errors."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_stylegan2, make_tiny_stylegan3
from ganinv.encoders import generator_fingerprint
from ganinv.errors import CheckpointError, InputError
from ganinv.inverters import invert
from ganinv.inverters.pti import (
    PTISettings,
    apply_deltas,
    delta_bytes,
    load_deltas,
    materialize,
    save_deltas,
    tunable_parameters,
)


def targets(G, n=3, seed=5):
    """Real-ish targets: the generator's images with a bit of structure it cannot make exactly."""
    with torch.no_grad():
        x = G.to_display(G.synthesize(G.sample_latent(n, "z", seed=seed), "z"))
    gen = torch.Generator().manual_seed(seed)
    return (x + 0.15 * torch.rand(x.shape, generator=gen)).clamp(0, 1)


def render(G, latent, space):
    lo, hi = G.output_range
    return ((G._native(latent, space, None) - lo) / (hi - lo)).clamp(0, 1)


def tiny_sg3(cfg: str):
    """A 16 px StyleGAN3-T or -R with random weights (its resampling runs through custom autograd functions,
    which PTI's per-image ``vmap`` has to see through)."""
    return make_tiny_stylegan3(cfg, seed=3)


@pytest.mark.parametrize("which", ["sg2", "dcgan", "sg3-t", "sg3-r"])
def test_pti_beats_pivot_and_deltas_reapply_bit_exactly(which, tiny_sg2, tiny_dcgan, tmp_path):
    G = {"sg2": tiny_sg2, "dcgan": tiny_dcgan}.get(which) or tiny_sg3(which[-1])
    x = targets(G)
    r = invert(G, x, method="pti", steps=40, lr=1e-2, rank=2, stop_psnr=None, pivot={"steps": 20})
    assert r.method == "pti" and r.space == ("z" if which == "dcgan" else "w")
    assert r.deltas is not None and len(r.deltas) == 3
    assert (r.metrics["psnr"] > r.metrics["pivot_psnr"]).all()
    paths = r.save(tmp_path, ["a", "b", "c"], num_ws=getattr(G, "num_ws", None))
    assert (tmp_path / "b.deltas.safetensors") in paths
    before = {k: v.clone() for k, v in G.state_dict().items()}
    for i, stem in enumerate("abc"):
        delta = load_deltas(tmp_path / f"{stem}.deltas.safetensors", G)
        tuned = apply_deltas(G, delta)
        with torch.no_grad():
            again = render(tuned, r.latent[i:i + 1], r.space)
        assert torch.equal(again[0], r.image[i])  # bit for bit
    for k, v in G.state_dict().items():  # the base generator is untouched
        assert torch.equal(v, before[k]), k


def test_deltas_are_low_rank_and_small(tiny_sg2):
    x = targets(tiny_sg2, n=1)
    r = invert(tiny_sg2, x, method="pti", steps=3, rank=1, pivot={"steps": 3})
    delta = r.deltas[0]
    params = tunable_parameters(tiny_sg2)
    assert not any(k.startswith(("style.", "mapping.")) for k in params)  # the mapping network is not tuned
    full = sum(p.numel() * p.element_size() for p in params.values())
    assert 0 < delta_bytes(delta) < full / 2
    for name, p in params.items():
        diff = materialize(name, p.shape, delta)
        assert diff is not None and diff.shape == p.shape
    kinds = {k.rsplit(".", 1)[-1] for k in delta}
    assert {"lora_u", "lora_v", "delta"} <= kinds
    r0 = invert(tiny_sg2, x, method="pti", steps=2, rank=0, pivot={"steps": 3})
    assert all(k.endswith(".delta") for k in r0.deltas[0])
    assert delta_bytes(r0.deltas[0]) == full


def test_pti_early_stop_and_same_seed_same_result(tiny_sg2):
    x = targets(tiny_sg2, n=2)
    a = invert(tiny_sg2, x, method="pti", steps=30, lr=1e-2, stop_psnr=1.0, pivot={"steps": 5})
    assert (a.metrics["steps"] == 1).all()  # already above 1 dB: tuning stops at once
    b1 = invert(tiny_sg2, x, method="pti", steps=5, pivot={"steps": 5}, seed=3)
    b2 = invert(tiny_sg2, x, method="pti", steps=5, pivot={"steps": 5}, seed=3)
    assert torch.equal(b1.image, b2.image)
    for d1, d2 in zip(b1.deltas, b2.deltas):
        assert all(torch.equal(d1[k], d2[k]) for k in d1)


def test_locality_regulariser_keeps_other_codes_closer(tiny_sg2):
    x = targets(tiny_sg2, n=2)
    common = dict(method="pti", steps=25, lr=1e-2, rank=2, stop_psnr=None, pivot={"steps": 5}, seed=1,
                  locality_samples=8)
    free = invert(tiny_sg2, x, locality=0.0, **common)
    local = invert(tiny_sg2, x, locality=10.0, locality_alpha=3.0, **common)
    def drift(result) -> float:
        """Mean change of renderings at fresh codes 3 units from each pivot (where the regulariser acts)."""
        total = 0.0
        for i, d in enumerate(result.deltas):
            pivot = result.latent[i:i + 1]
            direction = tiny_sg2.sample_latent(32, "w", seed=9 + i) - pivot
            w = pivot + 3.0 * direction / direction.norm(dim=1, keepdim=True)
            with torch.no_grad():
                total += float((render(apply_deltas(tiny_sg2, d), w, "w") - render(tiny_sg2, w, "w")).square().mean())
        return total

    assert drift(local) < 0.5 * drift(free)


def test_delta_files_refuse_foreign_generators_and_files(tiny_sg2, tiny_dcgan, tmp_path):
    x = targets(tiny_sg2, n=1)
    r = invert(tiny_sg2, x, method="pti", steps=2, pivot={"steps": 2})
    path = save_deltas(r.deltas[0], tmp_path / "d.safetensors", generator_fingerprint(tiny_sg2))
    with pytest.raises(CheckpointError, match="was tuned from generator"):
        load_deltas(path, make_tiny_stylegan2(seed=3))
    with pytest.raises(CheckpointError, match="do not belong to this generator"):
        apply_deltas(tiny_dcgan, r.deltas[0])
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a ganinv PTI delta file"):
        load_deltas(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError):
        load_deltas(tmp_path / "junk.safetensors")


def test_pti_option_errors(tiny_sg2):
    x = targets(tiny_sg2, n=1)
    with pytest.raises(InputError, match="PTI needs"):
        invert(tiny_sg2, x, method="pti", rank=-1)
    with pytest.raises(InputError, match="unknown option"):
        invert(tiny_sg2, x, method="pti", passes=2)
    with pytest.raises(InputError, match="unknown pivot option"):
        from ganinv.inverters.pti import invert_pti

        invert_pti(tiny_sg2, x, PTISettings(pivot={"bogus": 1}))
    with pytest.raises(InputError, match="presets"):
        invert(tiny_sg2, x, method="pti", preset="nvidia")


@pytest.mark.parametrize("flag", [True, False])
def test_tuning_sees_clipped_pixels_as_the_pivot_did(tiny_sg2, monkeypatch, flag):
    from ganinv.losses import CombinedLoss

    built = []
    original = CombinedLoss.from_spec.__func__

    def spy(cls, *a, **k):
        loss = original(cls, *a, **k)
        built.append(loss)
        return loss

    monkeypatch.setattr(CombinedLoss, "from_spec", classmethod(spy))
    invert(tiny_sg2, targets(tiny_sg2, 1), method="pti", steps=2, pivot={"steps": 2, "saturation": flag})
    assert len(built) >= 2 and {loss.saturation for loss in built} == {flag}  # the pivot's loss, then the tuning's
