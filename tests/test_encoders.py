"""Encoders: network shapes and e4e/ReStyle structure, fingerprints and compatibility, saving/loading,
the resumable trainer, and ``method="encoder"`` / ``method="hybrid"``."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tiny_stylegan2
from ganinv.encoders import (
    PyramidEncoder,
    check_compatible,
    generator_fingerprint,
    load_encoder,
    resolve_encoder,
)
from ganinv.errors import InputError
from ganinv.inverters import invert
from ganinv.modelfile import save_pretrained
from ganinv.train.encoder import EncoderTrainConfig, EncoderTrainer, build_encoder, run_passes


def encoder_for(G, **kw) -> PyramidEncoder:
    enc = build_encoder(G, EncoderTrainConfig(width=8, max_width=16, w_classifier=0.0, **kw))
    enc.generator_info = {"name": "tiny", "fingerprint": generator_fingerprint(G),
                          "space": "w+" if "w+" in G.latent_spaces else "z"}
    return enc.eval()


def tiny_config(**kw) -> EncoderTrainConfig:
    base = dict(model="tiny", iterations=4, batch_size=4, passes=2, width=8, max_width=16, w_classifier=0.0,
                val_every=2, checkpoint_every=2, real_loss="mse=1,ssim=0.5")
    return EncoderTrainConfig(**{**base, **kw})


def tiny_data(G, n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        x = G.to_display(G.synthesize(G.sample_latent(n, "z", seed=seed), "z"))
    return x[: n // 2], x[n // 2:]


@pytest.mark.parametrize("latent_shape", [(6, 16), (8,)])
@pytest.mark.parametrize("iterative", [True, False])
def test_pyramid_encoder_shapes(latent_shape, iterative):
    enc = PyramidEncoder(resolution=16, img_channels=3, latent_shape=latent_shape, width=8, max_width=16,
                         iterative=iterative)
    x = torch.rand(5, 3, 16, 16)
    cur = torch.rand(5, 3, 16, 16) if iterative else None
    out = enc(x, cur)
    assert out.shape == (5, *latent_shape)
    assert torch.isfinite(out).all()
    out.sum().backward()  # gradients reach the first layer
    assert enc.stem[0].weight.grad is not None and enc.stem[0].weight.grad.abs().sum() > 0


def test_pyramid_encoder_32px_has_three_style_groups():
    enc = PyramidEncoder(resolution=32, latent_shape=(8, 16), width=8, max_width=16)
    assert enc.groups == [3, 3, 2] and sum(enc.groups) == 8
    assert enc(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)).shape == (2, 8, 16)


def test_narrow_encoder_trains_and_its_shortcut_is_a_strided_1x1_conv():
    """``--width 4``: 1-channel input → 2·1 channels → 4 → 8; the shortcut of a block with < 8 input channels
    once crashed oneDNN's channels-last backward. The block must still compute the strided 1x1 conv."""
    enc = PyramidEncoder(resolution=32, latent_shape=(8, 16), width=4, max_width=16)
    x = torch.rand(4, 1, 32, 32)
    out = enc(x, torch.rand(4, 1, 32, 32))
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    block, h = enc.downs[0], torch.randn(2, 4, 16, 16)
    expected = torch.nn.functional.conv2d(h, block.skip.weight, stride=2)
    assert torch.allclose(block.skip(h[:, :, ::2, ::2]), expected, atol=1e-6)


def test_iterative_encoder_requires_current_image():
    enc = PyramidEncoder(resolution=16, latent_shape=(6, 16), width=8, max_width=16)
    with pytest.raises(ValueError, match="current reconstruction"):
        enc(torch.rand(1, 1, 16, 16))


def test_progressive_codes_are_base_plus_deltas_and_delta_norm():
    enc = PyramidEncoder(resolution=16, latent_shape=(6, 16), width=8, max_width=16, progressive=True,
                         latent_scale=2.0)
    lat = torch.randn(3, 6, 16)
    assert torch.allclose(enc.delta_norm(lat), (lat[:, 1:] - lat[:, :1]).square().sum((1, 2)) / 4)
    same = lat[:, :1].expand(3, 6, 16)
    assert torch.equal(enc.delta_norm(same), torch.zeros(3))
    assert torch.equal(enc.delta_norm(torch.randn(3, 16)), torch.zeros(3))  # z codes have no deltas


def test_forward_adds_residual_to_current_latent():
    enc = PyramidEncoder(resolution=16, latent_shape=(6, 16), width=8, max_width=16)
    x, cur = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    base = torch.randn(2, 6, 16)
    assert torch.allclose(enc(x, cur, base), base + enc.residual(x, cur))
    assert torch.allclose(enc(x, cur), enc.start_latent + enc.residual(x, cur))


def test_fingerprint_is_stable_and_weight_sensitive(tiny_sg2):
    a = generator_fingerprint(tiny_sg2)
    assert a == generator_fingerprint(make_tiny_stylegan2()) and len(a) == 16
    other = make_tiny_stylegan2()
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert generator_fingerprint(other) != a


def test_encoder_refuses_another_generator(tiny_sg2, tiny_dcgan):
    enc = encoder_for(tiny_sg2)
    check_compatible(enc, tiny_sg2)
    other = make_tiny_stylegan2(seed=1)
    with pytest.raises(InputError, match="trained for generator 'tiny'"):
        check_compatible(enc, other)
    with pytest.raises(InputError, match="only works with the exact weights"):
        invert(tiny_dcgan, torch.rand(1, 1, 16, 16), method="encoder", encoder=enc)
    bare = PyramidEncoder(resolution=16, latent_shape=(6, 16), width=8, max_width=16)
    with pytest.raises(InputError, match="does not record which generator"):
        check_compatible(bare, tiny_sg2)


def test_encoder_save_load_roundtrip(tmp_path, tiny_sg2):
    enc = encoder_for(tiny_sg2)
    save_pretrained(enc, tmp_path / "enc", name="tiny-encoder", kind="encoder",
                    meta={"generator": enc.generator_info})
    loaded = load_encoder(tmp_path / "enc")
    assert loaded.generator_info == enc.generator_info
    x, cur = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x, cur), enc(x, cur))
    assert resolve_encoder(str(tmp_path / "enc"), tiny_sg2) is not None
    # a generator folder is not an encoder
    save_pretrained(tiny_sg2, tmp_path / "gen", name="g", kind="generator")
    with pytest.raises(InputError, match="not an encoder"):
        load_encoder(tmp_path / "gen")


def test_resolve_encoder_without_bundled_match_is_clear(tiny_sg2):
    from ganinv.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="no bundled encoder was trained for this generator"):
        resolve_encoder(None, tiny_sg2)


@pytest.mark.parametrize("which", ["sg2", "dcgan"])
def test_encoder_method_result(which, tiny_sg2, tiny_dcgan):
    G = tiny_sg2 if which == "sg2" else tiny_dcgan
    enc = encoder_for(G)
    x = tiny_data(G, 6)[0]
    r = invert(G, x, method="encoder", encoder=enc, passes=3)
    assert r.method == "encoder" and r.space == ("w+" if which == "sg2" else "z")
    assert r.latent.shape == (3, *G.space(r.space).shape)
    assert r.image.shape == x.shape and r.image.min() >= 0 and r.image.max() <= 1
    assert len(r.history["psnr"]) == 3 and r.metrics["psnr"].shape == (3,)
    # the latent renders to the returned image (3 passes == running the passes by hand)
    with torch.no_grad():
        by_hand = run_passes(enc, G, x, 3, r.space)[-1]
    assert torch.allclose(by_hand[0], r.latent, atol=1e-5)
    with pytest.raises(InputError, match="passes must be"):
        invert(G, x, method="encoder", encoder=enc, passes=0)
    with pytest.raises(InputError, match="unknown option"):
        invert(G, x, method="encoder", encoder=enc, steps=3)


def test_hybrid_never_worse_than_its_encoder_start(tiny_sg2):
    enc = encoder_for(tiny_sg2)
    x = tiny_data(tiny_sg2, 8)[0]
    start = invert(tiny_sg2, x, method="encoder", encoder=enc)
    r = invert(tiny_sg2, x, method="hybrid", encoder=enc, steps=15, noise="fixed")
    assert r.method == "hybrid" and r.space == "w+"
    assert (r.metrics["loss"] <= start.metrics["loss"] + 1e-6).all()
    assert (r.metrics["psnr"] >= start.metrics["psnr"] - 1e-3).all()


def test_hybrid_preconditions_lbfgs_in_w_plus_only(tiny_sg2, tiny_dcgan):
    from ganinv.inverters.hybrid import HYBRID_PRECONDITION

    for G, want in ((tiny_sg2, HYBRID_PRECONDITION["w+"]), (tiny_dcgan, 0.0)):
        x = tiny_data(G, 2)[0]
        r = invert(G, x, method="hybrid", encoder=encoder_for(G), steps=2)
        assert r.settings["optimize"]["optimizer"] == "lbfgs"
        assert r.settings["optimize"]["lbfgs_precondition"] == want
    r = invert(tiny_sg2, tiny_data(tiny_sg2, 2)[0], method="hybrid", encoder=encoder_for(tiny_sg2), steps=2,
               lbfgs_precondition=0.0)
    assert r.settings["optimize"]["lbfgs_precondition"] == 0.0  # an explicit value wins


def test_hybrid_domain_regulariser_is_logged_and_pulls_towards_encoder(tiny_sg2):
    enc = encoder_for(tiny_sg2)
    x = tiny_data(tiny_sg2, 4)[0]
    r = invert(tiny_sg2, x, method="hybrid", encoder=enc, steps=10, domain=2.0, noise="fixed")
    assert "domain" in r.history and all(v >= 0 for v in r.history["domain"][-1])
    assert r.settings["domain"] == 2.0
    with pytest.raises(InputError, match="domain weight"):
        invert(tiny_sg2, x, method="hybrid", encoder=enc, domain=-1.0)
    with pytest.raises(InputError, match="encoder's space|optimises in that space"):
        invert(tiny_sg2, x, method="hybrid", encoder=enc, space="w")


def test_trainer_reduces_loss_and_exports(tmp_path, tiny_sg2):
    data = tiny_data(tiny_sg2, 16)
    t = EncoderTrainer(tmp_path / "run", tiny_config(iterations=30, lr=3e-3, val_every=30), generator=tiny_sg2,
                       data=data)
    first = t.step(data[0][:2])["loss"]
    t.train()
    losses = [r["loss"] for r in t.log if "loss" in r]
    assert losses[-1] < first
    meta = t.export(tmp_path / "export")
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["kind"] == "encoder" and cfg["meta"]["generator"]["fingerprint"] == generator_fingerprint(tiny_sg2)
    assert meta["selected"]["iteration"] == 30
    assert (tmp_path / "run" / "curves.png").is_file() and (tmp_path / "run" / "log.jsonl").is_file()
    enc = load_encoder(tmp_path / "export")
    r = invert(tiny_sg2, data[1], method="encoder", encoder=enc)
    assert r.metrics["psnr"].shape == (8,)


def test_trainer_resumes_exactly(tmp_path, tiny_dcgan):
    data = tiny_data(tiny_dcgan, 16)
    straight = EncoderTrainer(tmp_path / "a", tiny_config(iterations=4), generator=tiny_dcgan, data=data)
    straight.train()
    half = EncoderTrainer(tmp_path / "b", tiny_config(iterations=2), generator=tiny_dcgan, data=data)
    half.train()
    resumed = EncoderTrainer(tmp_path / "b", tiny_config(iterations=4), generator=tiny_dcgan, data=data)
    assert resumed.iteration == 2
    resumed.train()
    for (k, a), b in zip(straight.encoder.state_dict().items(), resumed.encoder.state_dict().values()):
        assert torch.equal(a, b), k


def test_trainer_rejects_bad_setups(tmp_path, tiny_sg2):
    data = tiny_data(tiny_sg2, 8)
    with pytest.raises(InputError, match="classifier-feature loss"):
        EncoderTrainer(tmp_path / "x", tiny_config(w_classifier=0.1), generator=tiny_sg2, data=data)
    with pytest.raises(InputError, match="passes"):
        EncoderTrainer(tmp_path / "y", tiny_config(passes=0), generator=tiny_sg2, data=data)
    bad = (torch.rand(4, 1, 8, 8), data[1])
    with pytest.raises(InputError, match="training images are"):
        EncoderTrainer(tmp_path / "z", tiny_config(), generator=tiny_sg2, data=bad).train()
    EncoderTrainer(tmp_path / "w", tiny_config(iterations=2), generator=tiny_sg2, data=data).train()
    with pytest.raises(InputError, match="holds an encoder run for 'tiny'"):
        EncoderTrainer(tmp_path / "w", tiny_config(model="mnist-dcgan"), generator=tiny_sg2, data=data)


@pytest.mark.parametrize("model", ["mnist-stylegan2", "mnist-dcgan"])
def test_bundled_encoders_match_their_generators_and_refine(model):
    """End to end with the bundled trained encoders on held-out digits."""
    from ganinv import zoo
    from ganinv.data import heldout_subset
    from ganinv.encoders import find_encoder

    G = zoo.load(model)
    enc = find_encoder(G)  # found by fingerprint
    assert enc.generator_info["name"] == model
    other = zoo.load("mnist-dcgan" if model == "mnist-stylegan2" else "mnist-stylegan2")
    with pytest.raises(InputError, match=f"trained for generator '{model}'"):
        check_compatible(enc, other)
    x, _ = heldout_subset(20)
    one = invert(G, x, method="encoder")
    five = invert(G, x, method="encoder", passes=5)
    assert one.metrics["psnr"].mean() > 16  # far better than a blank image (~11 dB) or the mean latent
    assert five.metrics["psnr"].mean() > one.metrics["psnr"].mean()  # ReStyle passes refine


def test_trainer_warm_starts_from_an_exported_encoder_within_a_time_budget(tmp_path, tiny_sg2, monkeypatch):
    import ganinv.train.encoder as enc_train

    data = tiny_data(tiny_sg2, 16)
    first = EncoderTrainer(tmp_path / "a", tiny_config(iterations=2), generator=tiny_sg2, data=data)
    first.train()
    first.export(tmp_path / "export")
    warm = EncoderTrainer(tmp_path / "b", tiny_config(iterations=1000, init_from=str(tmp_path / "export"),
                                                      time_budget=3.0), generator=tiny_sg2, data=data)
    exported = load_encoder(tmp_path / "export").state_dict()
    for k, v in warm.encoder.state_dict().items():
        assert torch.equal(v, exported[k]), k
    clock = iter(range(10**6))
    monkeypatch.setattr(enc_train.time, "perf_counter", lambda: float(next(clock)))  # a step "takes" 1 s
    warm.train()
    assert warm.iteration == 3  # ended by the 3-second budget, not the 1000 iterations
    # the export says where its starting weights came from, even after resuming and overwriting that folder
    resumed = EncoderTrainer(tmp_path / "b", tiny_config(iterations=1000, init_from=str(tmp_path / "export"),
                                                         time_budget=3.0), generator=tiny_sg2, data=data)
    meta = resumed.export(tmp_path / "export")
    assert meta["warm_start"]["from"] == str(tmp_path / "export")
    assert meta["warm_start"]["iterations"] == 2 and meta["warm_start"]["batch_size"] == first.cfg.batch_size
    assert json.loads((tmp_path / "export" / "config.json").read_text())["meta"]["warm_start"]["iterations"] == 2
    with pytest.raises(InputError, match="not an encoder with this run's architecture"):
        EncoderTrainer(tmp_path / "c", tiny_config(width=4, init_from=str(tmp_path / "export")),
                       generator=tiny_sg2, data=data)
