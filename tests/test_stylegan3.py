"""StyleGAN3-T / -R: the alias-free ops, latent spaces, model folders, NVIDIA records, equivariance.

Tiny configs with random weights; NVIDIA-layout pickles are written by ``tests/nvidia_pkl.py``
without NVIDIA's code. (Renders were compared with NVIDIA's own ``networks_stylegan3`` outside
the repo: max |diff| ≤ 4e-6 in [0, 1].)
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.checkpoints import read_nvidia_pkl
from ganinv.generators.nvidia_stylegan3 import is_stylegan3_record, stylegan3_from_record
from ganinv.generators.stylegan3 import (StyleGAN3Generator, downsample2d, filtered_leaky_relu, image_transform,
                                         lowpass_filter, stylegan3_r_config, synthesis_schedule, upsample2d)
from ganinv.modelfile import build, load_pretrained, save_pretrained
from nvidia_pkl import write_nvidia_pkl, write_nvidia_stylegan3_pkl

TINY_T = dict(resolution=16, z_dim=16, w_dim=16, channel_base=256, channel_max=16)
TINY_R = stylegan3_r_config(16, z_dim=16, w_dim=16, channel_base=512, channel_max=32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread: these networks are tiny, and on a busy machine a second OpenMP thread only waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise(G: StyleGAN3Generator, seed: int = 0) -> StyleGAN3Generator:
    """Give the parameters that start constant (biases, the input affine, magnitude EMAs, w_avg) random
    values so every path of the computation matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        G.input.affine.weight.copy_(torch.randn(G.input.affine.weight.shape, generator=gen) * 0.5)
        for layer in G.layers:
            layer.magnitude_ema.fill_(float(torch.rand([], generator=gen)) * 2 + 0.3)
        G.w_avg.copy_(torch.randn(G.w_dim, generator=gen) * 0.5)
    return G.eval().requires_grad_(False)


def _make(cfg: dict, seed: int = 0) -> StyleGAN3Generator:
    torch.manual_seed(seed)
    return _randomise(StyleGAN3Generator(**cfg), seed)


@pytest.fixture(scope="module")
def g_t() -> StyleGAN3Generator:
    return _make(TINY_T)


@pytest.fixture(scope="module")
def g_r() -> StyleGAN3Generator:
    return _make(TINY_R, seed=1)


# ----------------------------------------------------------------------------------
# The resampling ops against a naive reference (zero-stuffing + full 2-D convolution)
# ----------------------------------------------------------------------------------
def _naive_upfirdn(x: torch.Tensor, f: torch.Tensor, up: int, down: int,
                   pad: tuple[int, int, int, int]) -> torch.Tensor:
    b, c, h, w = x.shape
    z = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, list(pad))
    k = f.flip(0, 1).to(x.dtype)
    y = F.conv2d(z, k.expand(c, 1, *k.shape).contiguous(), groups=c)
    return y[:, :, ::down, ::down]


@pytest.mark.parametrize("up,taps,pad", [(2, 12, (9, 8, 9, 8)), (4, 24, (-6, -9, -6, -9)), (2, 12, (-11, -12, 3, 1)),
                                         (3, 7, (0, 5, 2, 2))])
def test_upsample_matches_zero_stuffing(up: int, taps: int, pad: tuple[int, int, int, int]) -> None:
    gen = torch.Generator().manual_seed(up * taps)
    x = torch.randn(2, 3, 23, 21, generator=gen, dtype=torch.float64)
    f = torch.randn(taps, taps, generator=gen, dtype=torch.float64)
    y = upsample2d(x, f, up, pad)
    ref = _naive_upfirdn(x, f, up, 1, pad)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("down,taps", [(2, 12), (2, 5), (3, 6)])
def test_downsample_matches_naive(down: int, taps: int) -> None:
    gen = torch.Generator().manual_seed(down * taps)
    x = torch.randn(2, 3, 29, 26, generator=gen, dtype=torch.float64)
    f = torch.randn(taps, taps, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(downsample2d(x, f, down), _naive_upfirdn(x, f, 1, down, (0, 0, 0, 0)), rtol=0,
                               atol=1e-12)


def test_resampling_gradients_are_adjoint() -> None:
    gen = torch.Generator().manual_seed(3)
    f = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(1, 1, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: upsample2d(t, f, 2, (3, 1, -1, 2)), (x,))
    assert torch.autograd.gradgradcheck(lambda t: upsample2d(t, f, 2, (3, 1, -1, 2)), (x,))
    x2 = torch.randn(1, 1, 9, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: downsample2d(t, f, 2), (x2,))
    assert torch.autograd.gradgradcheck(lambda t: downsample2d(t, f, 2), (x2,))


def test_resampling_under_vmap_matches_a_loop() -> None:
    """``torch.func.vmap`` (PTI renders one tuned generator per image with it) sees through the custom
    resampling functions: values and gradients equal those of a loop over the vmapped dimension."""
    from torch.func import vmap

    gen = torch.Generator().manual_seed(4)
    f = torch.randn(4, 4, generator=gen)
    x = torch.randn(3, 2, 2, 5, 6, generator=gen, requires_grad=True)  # vmapped dim 3, then [B, C, H, W]

    def op(t: torch.Tensor) -> torch.Tensor:
        return downsample2d(torch.tanh(upsample2d(t, f, 2, (3, 1, -1, 2))), f, 2)

    mapped = vmap(op)(x)
    looped = torch.stack([op(x[i]) for i in range(3)])
    assert torch.allclose(mapped, looped, atol=1e-6)
    w = torch.randn(mapped.shape, generator=gen)
    (g_mapped,) = torch.autograd.grad((mapped * w).sum(), x)
    (g_looped,) = torch.autograd.grad((looped * w).sum(), x)
    assert torch.allclose(g_mapped, g_looped, atol=1e-6)
    moved = vmap(op, in_dims=1, out_dims=1)(x.detach().transpose(0, 1))  # the batch dim need not come first
    assert torch.allclose(moved.transpose(0, 1), looped, atol=1e-6)


def test_filtered_leaky_relu_matches_the_textbook_sequence() -> None:
    """upsample (gain up²) → lrelu → × gain → clamp → downsample, as NVIDIA's reference op does it."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 14, 14, generator=gen, dtype=torch.float64) * 3
    fu = torch.tensor(lowpass_filter(12, 4.0, 6.0, 32.0), dtype=torch.float64)
    fd = torch.tensor(lowpass_filter(12, 5.0, 6.0, 32.0, radial=True), dtype=torch.float64)
    fu2 = fu[:, None] * fu[None, :] * 4
    pad = (9, 8, 9, 8)
    ref = _naive_upfirdn(x, fu2, 2, 1, pad)
    ref = (F.leaky_relu(ref, 0.2) * math.sqrt(2)).clamp(-2.5, 2.5)
    ref = _naive_upfirdn(ref, fd, 1, 2, (0, 0, 0, 0))
    y = filtered_leaky_relu(x, fu2, fd, 2, 2, pad, gain=math.sqrt(2), slope=0.2, clamp=2.5)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    assert (ref.abs() > 1.0).any()  # the clamp region was exercised before filtering


def test_filtered_leaky_relu_in_channel_groups_equals_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the activation runs in channel groups (cache-sized); values and gradients are those of the whole."""
    import ganinv.generators.stylegan3 as sg3

    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 7, 14, 14, generator=gen) * 3).requires_grad_(True)
    fu = torch.tensor(lowpass_filter(12, 4.0, 6.0, 32.0), dtype=torch.float32)
    fu2, fd = fu[:, None] * fu[None, :] * 4, fu[:, None] * fu[None, :]
    weight = torch.randn(3, 7, 12, 12, generator=gen)
    results = []
    for budget in (1 << 40, 3 * 34 * 34 * 4 * 2):  # all channels at once; 2 channels per group (upsampled: 34²)
        monkeypatch.setattr(sg3, "CPU_GROUP_BYTES", budget)
        assert sg3._channel_group(x, 2, (9, 8, 9, 8), fu2) == (7 if budget > 1e9 else 2)
        y = filtered_leaky_relu(x, fu2, fd, 2, 2, (9, 8, 9, 8), clamp=2.5)
        (g,) = torch.autograd.grad((y * weight).sum(), x)
        results.append((y.detach(), g))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0, atol=1e-6)


def test_filter_design() -> None:
    f = lowpass_filter(12, 4.0, 6.0, 32.0)
    assert f.shape == (12,) and abs(f.sum() - 1) < 1e-12 and abs(f - f[::-1]).max() < 1e-15
    r = lowpass_filter(12, 4.0, 6.0, 32.0, radial=True)
    assert r.shape == (12, 12) and abs(r.sum() - 1) < 1e-12
    assert abs(r - r.T).max() < 1e-15 and abs(r - r[::-1, ::-1]).max() < 1e-15
    assert lowpass_filter(1, 4.0, 6.0, 32.0) is None
    odd = lowpass_filter(7, 4.0, 6.0, 32.0, radial=True)  # the centre tap takes the jinc's limit, not NaN
    assert abs(odd.sum() - 1) < 1e-12


def test_schedule_matches_nvidia_32px() -> None:
    """Geometry of NVIDIA's networks_stylegan3 at 32 px, channel_base 1024, channel_max 64 (printed from theirs)."""
    inp, specs = synthesis_schedule(32, 3, channel_base=1024, channel_max=64, num_layers=14, num_critical=2,
                                    first_cutoff=2, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3,
                                    margin_size=10, conv_kernel=3, filter_size=6, lrelu_upsampling=2,
                                    use_radial_filters=False)
    assert (inp.channels, inp.size, inp.rate) == (64, 36, 16)
    names = [s.nvidia_name for s in specs]
    assert names == ["L0_36_64", "L1_36_64", "L2_36_64", "L3_36_64", "L4_36_64", "L5_52_64", "L6_52_64",
                     "L7_52_64", "L8_52_64", "L9_52_54", "L10_52_45", "L11_52_38", "L12_52_32", "L13_32_32",
                     "L14_32_3"]
    assert [(s.up, s.down, s.up_taps, s.down_taps) for s in specs[4:7]] == [(2, 2, 12, 12), (4, 2, 24, 12),
                                                                            (2, 2, 12, 12)]
    assert specs[0].padding == (9, 8, 9, 8) and specs[5].padding == (-6, -9, -6, -9)
    assert specs[13].padding == (-11, -12, -11, -12) and specs[13].is_critical and not specs[11].is_critical
    assert specs[14].is_torgb and (specs[14].up, specs[14].down, specs[14].padding) == (1, 1, (0, 0, 0, 0))


# ----------------------------------------------------------------------------------
# The generator interface
# ----------------------------------------------------------------------------------
def test_latent_spaces_and_no_noise(g_t: StyleGAN3Generator) -> None:
    G = g_t
    assert G.num_ws == 16
    spaces = G.latent_spaces
    assert list(spaces) == ["z", "w", "w+"]
    assert spaces["z"].shape == (16,) and spaces["w"].shape == (16,) and spaces["w+"].shape == (16, 16)
    assert G.noise_shapes == [] and G.default_space == "w+"
    z = G.sample_latent(3, "z", seed=1)
    w = G.convert(z, "z", "w")
    wp = G.convert(w, "w", "w+")
    assert w.shape == (3, 16) and wp.shape == (3, 16, 16) and torch.equal(wp[:, 5], w)
    torch.testing.assert_close(G.convert(z, "z", "w+"), wp)
    with pytest.raises(InputError):
        G.convert(wp, "w+", "w")
    img_w = G.synthesize(w, "w")
    assert img_w.shape == (3, 3, 16, 16) and img_w.is_contiguous()
    torch.testing.assert_close(G.synthesize(wp, "w+"), img_w, rtol=0, atol=0)
    torch.testing.assert_close(G.synthesize(wp, "w+", noise=[]), img_w, rtol=0, atol=0)
    with pytest.raises(InputError):
        G.synthesize(wp, "w+", noise=[torch.zeros(1, 1, 16, 16)])
    native = G.synthesis(wp)
    torch.testing.assert_close(img_w, (native + 1) / 2, rtol=0, atol=0)
    assert torch.equal(G.mean_latent("w")[0], G.w_avg) and G.mean_latent("w+").shape == (1, 16, 16)
    s = G.sample(2, seed=3, truncation=0.5)
    assert s.shape == (2, 3, 16, 16) and s.min() >= 0 and s.max() <= 1
    t0 = G.truncate(w, 0.0)
    torch.testing.assert_close(t0, G.w_avg.expand(3, -1))


def test_batch_independent_and_forward(g_t: StyleGAN3Generator) -> None:
    G = g_t
    z = G.sample_latent(3, "z", seed=2)
    batch = G.synthesize(G.convert(z, "z", "w"), "w")
    alone = G.synthesize(G.convert(z[1:2], "z", "w"), "w")
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(G(z, truncation=0.7), G.synthesis(G.convert(G.truncate(G.convert(z, "z", "w"), 0.7),
                                                                           "w", "w+")), rtol=0, atol=1e-6)


def test_gradients_reach_w_plus(g_r: StyleGAN3Generator) -> None:
    G = g_r
    wp = G.convert(G.sample_latent(2, "z", seed=0), "z", "w+").detach().requires_grad_(True)
    loss = G.synthesize(wp, "w+").square().mean()
    (grad,) = torch.autograd.grad(loss, wp)
    assert torch.isfinite(grad).all() and (grad[:, 0].abs().sum() > 0) and (grad[:, -1].abs().sum() > 0)


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        StyleGAN3Generator(resolution=24)
    with pytest.raises(InputError):
        StyleGAN3Generator(**{**TINY_T, "conv_clamp": -1})
    with pytest.raises(InputError):
        StyleGAN3Generator(**{**TINY_T, "num_critical": 14})
    G = _make(TINY_T)
    with pytest.raises(InputError):
        G.synthesis(torch.zeros(1, 3, 16))
    with pytest.raises(InputError):
        G.set_transform(torch.eye(2))


# ----------------------------------------------------------------------------------
# ganinv model folders
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [TINY_T, TINY_R], ids=["T", "R"])
def test_model_folder_round_trip(tmp_path, cfg: dict) -> None:
    G = _make(cfg, seed=5)
    G.set_transform(image_transform((1.0, 2.0), 10.0, resolution=16))
    folder = save_pretrained(G, tmp_path / "sg3", name="tiny", kind="generator")
    H = load_pretrained(folder)
    assert isinstance(H, StyleGAN3Generator) and H.config() == G.config()
    assert torch.equal(H.w_avg, G.w_avg) and torch.equal(H.input_transform, G.input_transform)
    w = G.sample_latent(2, "w", seed=9)
    assert torch.equal(H.synthesize(w, "w"), G.synthesize(w, "w"))
    rebuilt = build(G.config())
    assert isinstance(rebuilt, StyleGAN3Generator) and rebuilt.config() == G.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}
    # the designed filters are part of the weights file and the same when rebuilt from the config
    for a, b in zip(rebuilt.layers, G.layers):
        for name in ("up_filter", "down_filter"):
            fa, fb = getattr(a, name), getattr(b, name)
            assert (fa is None) == (fb is None) and (fa is None or torch.equal(fa, fb))


# ----------------------------------------------------------------------------------
# NVIDIA records
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [TINY_T, TINY_R], ids=["T", "R"])
def test_nvidia_record_round_trip(tmp_path, cfg: dict) -> None:
    G = _make(cfg, seed=7)
    path = write_nvidia_stylegan3_pkl(G, tmp_path / "sg3.pkl")
    obj, _globals = read_nvidia_pkl(path)
    record = obj["G_ema"]
    assert is_stylegan3_record(record) and record.class_name == "training.networks_stylegan3.Generator"
    notices: list[str] = []
    H = stylegan3_from_record(record, str(path), notices)
    assert notices == [] and H.config() == G.config() and not H.training
    assert all(not p.requires_grad for p in H.parameters())
    assert torch.equal(H.w_avg, G.w_avg)
    for (k, a), (k2, b) in zip(sorted(H.state_dict().items()), sorted(G.state_dict().items())):
        assert k == k2 and torch.equal(a, b), k
    z = G.sample_latent(2, "z", seed=11)
    for psi in (1.0, 0.7):
        w = G.truncate(G.convert(z, "z", "w"), psi)
        assert torch.equal(H.synthesize(H.truncate(H.convert(z, "z", "w"), psi), "w"), G.synthesize(w, "w"))


def test_nvidia_record_without_w_avg_is_estimated(tmp_path) -> None:
    G = _make(TINY_T, seed=2)
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(G, tmp_path / "a.pkl", include_w_avg=False))
    notices: list[str] = []
    H = stylegan3_from_record(obj["G_ema"], "a.pkl", notices, w_avg_samples=500)
    assert len(notices) == 1 and "w_avg" in notices[0]
    expected = G.mapping(torch.randn(500, G.z_dim, generator=torch.Generator().manual_seed(0))).mean(0)
    torch.testing.assert_close(H.w_avg, expected)


def test_missing_and_reshaped_tensors_are_named(tmp_path, g_t: StyleGAN3Generator) -> None:
    key = "synthesis.L3_36_16.affine.weight"
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "m.pkl", drop=(key,)))
    with pytest.raises(CheckpointError, match=r"missing tensors \(1\): synthesis\.L3_36_16\.affine\.weight"):
        stylegan3_from_record(obj["G_ema"], "m.pkl")
    bad = {"synthesis.L7_36_16.weight": torch.zeros(16, 16, 1, 1)}
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "r.pkl", replace=bad))
    with pytest.raises(CheckpointError, match=r"synthesis\.L7_36_16\.weight: file \[16, 16, 1, 1\] vs expected "
                                              r"\[16, 16, 3, 3\]"):
        stylegan3_from_record(obj["G_ema"], "r.pkl")
    nan = g_t.state_dict()["layers.2.bias"].clone()
    nan[0] = float("nan")
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "n.pkl",
                                                        replace={"synthesis.L2_36_16.bias": nan}))
    with pytest.raises(CheckpointError, match=r"NaN/Inf values in synthesis\.L2_36_16\.bias"):
        stylegan3_from_record(obj["G_ema"], "n.pkl")
    other = {"synthesis.L4_36_16.down_filter": torch.full((12,), 1 / 12)}
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "f.pkl", replace=other))
    with pytest.raises(CheckpointError, match=r"synthesis\.L4_36_16\.down_filter differs from the filter"):
        stylegan3_from_record(obj["G_ema"], "f.pkl")


def test_settings_that_do_not_fit_are_refused(tmp_path, g_t: StyleGAN3Generator) -> None:
    # a recorded class count without a class embedding (conditional models load: tests/test_conditional.py)
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "c.pkl", kwargs_update={"c_dim": 4}))
    with pytest.raises(CheckpointError, match=r"missing tensors \(2\): mapping\.embed\.weight"):
        stylegan3_from_record(obj["G_ema"], "c.pkl")
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "u.pkl", kwargs_update={"mystery": 3}))
    with pytest.raises(CheckpointError, match="settings ganinv does not know: mystery"):
        stylegan3_from_record(obj["G_ema"], "u.pkl")
    # a wrong width setting: every layer's tensors then have other shapes
    obj, _ = read_nvidia_pkl(write_nvidia_stylegan3_pkl(g_t, tmp_path / "w.pkl", kwargs_update={"channel_max": 8}))
    with pytest.raises(CheckpointError, match="does not match the StyleGAN3 architecture"):
        stylegan3_from_record(obj["G_ema"], "w.pkl")


def test_stylegan2_record_is_not_stylegan3(tmp_path) -> None:
    from ganinv.generators.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    sg2 = StyleGAN2Generator(resolution=8, channels={4: 8, 8: 8}, z_dim=8, w_dim=8, n_mlp=2)
    obj, _ = read_nvidia_pkl(write_nvidia_pkl(sg2, tmp_path / "sg2.pkl"))
    assert not is_stylegan3_record(obj["G_ema"]) and not is_stylegan3_record(None)
    with pytest.raises(CheckpointError, match="not NVIDIA's StyleGAN3 generator"):
        stylegan3_from_record(obj["G_ema"], "sg2.pkl")


# ----------------------------------------------------------------------------------
# Equivariance through the input transform
# ----------------------------------------------------------------------------------
EQ_T = dict(resolution=32, z_dim=16, w_dim=16, channel_base=1024, channel_max=32)
EQ_R = stylegan3_r_config(32, z_dim=16, w_dim=16, channel_base=2048, channel_max=64)


def test_translation_by_whole_pixels_translates_the_image() -> None:
    G = _make(EQ_T, seed=3)
    w = G.sample_latent(2, "w", seed=4)
    base = G.synthesize(w, "w")
    dx, dy, m = 3, -2, 6
    G.set_transform(image_transform((dx, dy), resolution=32))
    moved = G.synthesize(w, "w")
    G.set_transform(None)
    # content moves by (+dx, +dy): moved[y, x] == base[y - dy, x - dx], compared away from the border
    a = moved[:, :, m:32 - m, m:32 - m]
    b = base[:, :, m - dy:32 - m - dy, m - dx:32 - m - dx]
    err = (a - b).abs()
    # measured (3 seeds): max 5e-5 … 1.9e-4, mean 1.5e-6 … 1.6e-5 (image std ≈ 0.1); the rest is aliasing
    assert err.max() < 1e-3 and err.mean() < 1e-4, (err.max(), err.mean())
    assert (base[:, :, m:32 - m, m:32 - m] - a).abs().mean() > 10 * err.mean()  # the shift is not a no-op


def test_rotation_by_90_degrees_rotates_the_image() -> None:
    G = _make(EQ_R, seed=6)
    w = G.sample_latent(2, "w", seed=1)
    base = G.synthesize(w, "w")
    G.set_transform(image_transform(angle=90.0))
    turned = G.synthesize(w, "w")
    G.set_transform(None)
    expected = torch.rot90(base, k=1, dims=(2, 3))  # counter-clockwise as displayed
    m = 6
    err = (turned - expected)[:, :, m:32 - m, m:32 - m].abs()
    # measured (3 seeds): max 1.8e-7 … 5.4e-7 — 1×1 convolutions and radial / symmetric filters make a quarter
    # turn on the centred sample grid exact up to float rounding
    assert err.max() < 1e-5, err.max()
    wrong_way = (turned - torch.rot90(base, k=-1, dims=(2, 3)))[:, :, m:32 - m, m:32 - m].abs()
    assert wrong_way.mean() > 1000 * err.mean()


def test_nvidia_stylegan3_pickle_loads_through_the_normal_loader(tmp_path, g_t: StyleGAN3Generator) -> None:
    """``load_generator`` / ``inspect_checkpoint`` on a StyleGAN3 pickle: the same renders, the architecture
    described, and the source embedded in the pickle never runs."""
    from ganinv.generators.checkpoints import inspect_checkpoint, load_generator

    marker = tmp_path / "ran.txt"
    src = f"open({str(marker)!r}, 'w').write('executed')\n"
    path = write_nvidia_stylegan3_pkl(g_t, tmp_path / "sg3.pkl", module_src=src)
    G, notices = load_generator(str(path))
    assert isinstance(G, StyleGAN3Generator) and not marker.exists()
    z = torch.randn(2, g_t.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(G.synthesize(z, "z"), g_t.synthesize(z, "z"))
    info = inspect_checkpoint(path)
    assert info["loadable"] and info["arch"] == "stylegan3" and info["num_parameters"] > 0
    assert not marker.exists()


def test_stylegan3_pickle_end_to_end_in_the_cli(tmp_path, g_t: StyleGAN3Generator) -> None:
    """invert, directions (SeFa over StyleGAN3's affine layers), edit, restore and multi-code inversion run on a
    StyleGAN3 pickle."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from ganinv.cli.app import app

    pkl = write_nvidia_stylegan3_pkl(g_t, tmp_path / "sg3.pkl")
    Image.fromarray((np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    run = CliRunner().invoke
    r = run(app, ["invert", str(tmp_path / "x.png"), "--model", str(pkl), "--steps", "3", "--no-classifier",
                  "--out", str(tmp_path / "inv")])
    assert r.exit_code == 0, r.output
    r = run(app, ["directions", "--method", "sefa", "--k", "3", "--model", str(pkl), "--out", str(tmp_path / "s.npz")])
    assert r.exit_code == 0, r.output
    r = run(app, ["edit", str(tmp_path / "inv" / "x.npz"), "--model", str(pkl), "--direction",
                  f"{tmp_path / 's.npz'}:0", "--strengths", "-1,0,1", "--out", str(tmp_path / "edit")])
    assert r.exit_code == 0, r.output
    r = run(app, ["restore", str(tmp_path / "x.png"), "--task", "denoise", "--sigma", "0.1", "--simulate",
                  "--model", str(pkl), "--steps", "3", "--out", str(tmp_path / "rest")])
    assert r.exit_code == 0, r.output
    r = run(app, ["invert", str(tmp_path / "x.png"), "--model", str(pkl), "--method", "multicode", "--codes", "3",
                  "--steps", "3", "--no-classifier", "--out", str(tmp_path / "mc")])
    assert r.exit_code == 0 and (tmp_path / "mc" / "x.npz").exists(), r.output
