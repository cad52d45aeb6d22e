"""ganinv.editing: interpolation, mixing, directions and their files (tiny random-weight models, offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganinv.editing import (
    apply_direction,
    classifier_labels,
    direction_grid,
    ganspace,
    interfacegan,
    interpolate,
    lerp,
    load_components,
    load_direction,
    mix,
    parse_layers,
    read_latent_file,
    resolve_direction,
    sefa,
    slerp,
    train_boundary,
)
from ganinv.editing.directions import binarize_scores, direction_sigma, modulation_layers, read_scores_csv
from ganinv.errors import InputError

torch.set_num_threads(1)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------
# Interpolation
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 16), (2, 6, 16)])
def test_lerp_and_slerp_hit_the_endpoints(shape):
    a, b = _rand(*shape, seed=1), _rand(*shape, seed=2)
    for fn in (lerp, slerp):
        path = fn(a, b, [0.0, 0.5, 1.0])
        assert path.shape == (3, *shape)
        torch.testing.assert_close(path[0], a, atol=1e-5, rtol=0)
        torch.testing.assert_close(path[-1], b, atol=1e-5, rtol=0)
    torch.testing.assert_close(lerp(a, b, 0.5), (a + b) / 2)


def test_slerp_keeps_equal_norms_and_moves_at_constant_angle():
    a, b = _rand(4, 32, seed=3), _rand(4, 32, seed=4)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)  # same norms
    ts = torch.linspace(0, 1, 9)
    path = slerp(a, b, ts)
    torch.testing.assert_close(path.norm(dim=-1), a.norm(dim=-1).expand(9, 4), atol=1e-4, rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=-1)  # equal angular steps
    assert float(cos.std(dim=0).max()) < 1e-5
    # the straight line cuts inside the sphere
    assert (lerp(a, b, 0.5).norm(dim=-1) < a.norm(dim=-1)).all()


def test_slerp_norm_is_interpolated_and_center_is_respected():
    a, b = _rand(2, 8, seed=5), 3 * _rand(2, 8, seed=6)
    mid = slerp(a, b, 0.5)
    torch.testing.assert_close(mid.norm(dim=-1), (a.norm(dim=-1) + b.norm(dim=-1)) / 2, atol=1e-5, rtol=1e-5)
    c = _rand(1, 8, seed=7)
    torch.testing.assert_close(slerp(a, b, 0.3, center=c) - c, slerp(a - c, b - c, 0.3), atol=1e-5, rtol=1e-5)
    same = slerp(a, a.clone(), [0.0, 0.5, 1.0])  # parallel: falls back to lerp, no NaN
    assert torch.isfinite(same).all()
    torch.testing.assert_close(same[1], a)


def test_interpolate_shapes_and_errors():
    a, b = _rand(1, 16, seed=1), _rand(1, 16, seed=2)
    assert interpolate(a, b, 5, "slerp").shape == (5, 1, 16)
    with pytest.raises(InputError, match="at least 2"):
        interpolate(a, b, 1)
    with pytest.raises(InputError, match="lerp or slerp"):
        interpolate(a, b, 3, "cubic")
    with pytest.raises(InputError, match="shapes"):
        lerp(a, _rand(1, 8), 0.5)


# ----------------------------------------------------------------------------------------------------------
# Layers, mixing, directions applied
# ----------------------------------------------------------------------------------------------------------

def test_parse_layers():
    assert parse_layers("0-3", 8) == range(0, 4)
    assert parse_layers("5", 8) == range(5, 6)
    assert parse_layers("all", 8) == range(0, 8)
    assert parse_layers(None, 8) is None
    for bad, msg in (("3-1", "after"), ("x", "bad layer range"), ("0-8", "outside"), ("-1-2", "bad layer range"),
                     ("1-2-3", "bad layer range")):
        with pytest.raises(InputError, match=msg):
            parse_layers(bad, 8)


def test_mix_copies_exactly_the_requested_rows():
    base, other = _rand(3, 6, 16, seed=1), _rand(3, 6, 16, seed=2)
    out = mix(base, other, range(2, 5))
    assert torch.equal(out[:, 2:5], other[:, 2:5])
    assert torch.equal(out[:, :2], base[:, :2]) and torch.equal(out[:, 5:], base[:, 5:])
    assert torch.equal(mix(base, other[:1], [0])[:, 0], other[:1, 0].expand(3, 16))  # batch of 1 broadcasts
    with pytest.raises(InputError, match="w\\+ codes"):
        mix(base[:, 0], other[:, 0], [0])
    with pytest.raises(InputError, match="outside"):
        mix(base, other, [6])


def test_direction_at_strength_zero_is_identity_and_moves_only_chosen_layers():
    wp, d = _rand(2, 6, 16, seed=1), _rand(16, seed=2)
    edited, space = apply_direction(wp, d, [0.0, 1.5, -2.0], space="w+", layers=range(1, 3))
    assert space == "w+" and edited.shape == (3, 2, 6, 16)
    assert torch.equal(edited[0], wp)
    for i, s in enumerate((1.5, -2.0), start=1):
        torch.testing.assert_close(edited[i][:, 1:3], wp[:, 1:3] + s * d)
        assert torch.equal(edited[i][:, :1], wp[:, :1]) and torch.equal(edited[i][:, 3:], wp[:, 3:])
    # W with a layer range: broadcast to w+ first
    w = _rand(2, 16, seed=3)
    e, space = apply_direction(w, d, 2.0, space="w", layers=[0], num_ws=6)
    assert space == "w+" and e.shape == (2, 6, 16)
    torch.testing.assert_close(e[:, 0], w + 2 * d)
    assert torch.equal(e[:, 1], w)
    # W / z without layers: stays in its space
    e, space = apply_direction(w, d, [0.0, 1.0], space="z")
    assert space == "z" and torch.equal(e[0], w)
    with pytest.raises(InputError, match="no layers"):
        apply_direction(w, d, 1.0, space="z", layers=[0])
    with pytest.raises(InputError, match="dimension 8"):
        apply_direction(w, d[:8], 1.0, space="w")


# ----------------------------------------------------------------------------------------------------------
# GANSpace, SeFa
# ----------------------------------------------------------------------------------------------------------

def test_ganspace_npz_loads_in_numpy_with_ganspace_shapes(tiny_sg2, tmp_path):
    comps = ganspace(tiny_sg2, k=5, samples=2000)
    path = comps.save(tmp_path / "pca.npz")
    with np.load(path) as data:  # plain NumPy, no pickles
        assert data["lat_comp"].shape == (5, 1, 16)
        assert data["lat_mean"].shape == (1, 16)
        assert data["lat_stdev"].shape == (5,)
        assert data["lat_comp"].dtype == np.float32
        comp = data["lat_comp"][:, 0]
        np.testing.assert_allclose(comp @ comp.T, np.eye(5), atol=1e-5)
        assert np.all(np.diff(data["lat_stdev"]) <= 1e-6)  # by decreasing variance
        assert str(data["method"]) == "pca"
    # the stdev is the spread of sampled W along each component
    sigma = direction_sigma(tiny_sg2, comps.vectors[0])
    assert abs(sigma - float(comps.stdev[0])) / sigma < 0.1
    again = load_components(path, tiny_sg2)
    torch.testing.assert_close(again.vectors, comps.vectors)
    assert ganspace(tiny_sg2, k=5, samples=2000).vectors.equal(comps.vectors)  # deterministic


def test_sefa_vectors_are_orthonormal_and_maximise_the_style_change(tiny_sg2):
    comps = sefa(tiny_sg2, k=16)
    v = comps.vectors
    torch.testing.assert_close(v @ v.T, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.all(comps.weights[:-1] >= comps.weights[1:] - 1e-6)
    # the top direction changes the (normalised) modulation outputs more than any random direction
    mods = [m for _, _, m in modulation_layers(tiny_sg2)]
    A = torch.cat([(m.weight * m.scale) / (m.weight * m.scale).norm(dim=1, keepdim=True) for m in mods])
    top = (A @ v[0]).norm()
    rand = _rand(200, 16, seed=9)
    rand = rand / rand.norm(dim=1, keepdim=True)
    assert float(top) >= float((rand @ A.T).norm(dim=1).max()) - 1e-5
    coarse = sefa(tiny_sg2, k=4, layers=range(0, 3))  # rows 0-2: conv1, convs.0, convs.1
    assert coarse.info["layers"] == ["conv1", "convs.0", "convs.1"]
    with_rgb = sefa(tiny_sg2, k=4, include_rgb=True)
    assert "to_rgb1" in with_rgb.info["layers"]


def test_dcgan_refuses_pca_and_sefa_clearly(tiny_dcgan):
    with pytest.raises(InputError, match="isotropic Gaussian"):
        ganspace(tiny_dcgan)
    with pytest.raises(InputError, match="style-modulation"):
        sefa(tiny_dcgan)


# ----------------------------------------------------------------------------------------------------------
# InterFaceGAN
# ----------------------------------------------------------------------------------------------------------

def test_interfacegan_recovers_the_separating_direction():
    n = torch.nn.functional.normalize(_rand(16, seed=11), dim=0)
    x = _rand(1000, 16, seed=12)
    labels = (x @ n + 0.1 * _rand(1000, seed=13)) > 0.3  # noisy, imbalanced, offset
    normal, acc = train_boundary(x, labels)
    assert float(normal.norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(normal @ n) > 0.9
    assert acc > 0.9
    with pytest.raises(InputError, match="each side"):
        train_boundary(x[:10], torch.zeros(10, dtype=torch.bool))


def test_boundary_file_is_interfacegan_shape_and_mismatched_w_dim_is_refused(tiny_sg2, tmp_path):
    codes = _rand(400, 16, seed=1)
    b = interfacegan(tiny_sg2, codes, codes[:, 0] > 0, info={"target_class": 3})
    path = b.save(tmp_path / "boundary.npy")
    arr = np.load(path)
    assert arr.shape == (1, 16) and arr.dtype == np.float32
    assert np.linalg.norm(arr) == pytest.approx(1.0, abs=1e-5)
    meta = json.loads((tmp_path / "boundary.npy.json").read_text())
    assert meta["space"] == "w" and meta["dim"] == 16 and meta["target_class"] == 3
    d = load_direction(path, tiny_sg2)
    assert d.space == "w" and d.sigma > 0
    torch.testing.assert_close(d.vector, torch.from_numpy(arr[0]))
    # a direction made for a model with another w_dim is refused
    np.save(tmp_path / "wide.npy", np.ones((1, 128), np.float32) / np.sqrt(128))
    with pytest.raises(InputError, match="dimension 128.*w_dim 16.*another model"):
        load_direction(tmp_path / "wide.npy", tiny_sg2)
    np.savez(tmp_path / "wide.npz", lat_comp=np.eye(128, dtype=np.float32)[:3, None], lat_mean=np.zeros((1, 128)),
             lat_stdev=np.ones(3))
    with pytest.raises(InputError, match="dimension 128"):
        load_direction(tmp_path / "wide.npz", tiny_sg2)
    with pytest.raises(InputError, match="no such direction file"):
        load_direction(tmp_path / "missing.npy", tiny_sg2)


def test_same_size_direction_of_another_generator_is_applied_with_a_note(tiny_sg2, tmp_path):
    from conftest import make_tiny_stylegan2

    other = make_tiny_stylegan2(seed=5)
    path = ganspace(other, k=3, samples=1000).save(tmp_path / "other.npz")
    notes: list[str] = []
    d = load_direction(path, tiny_sg2, component=2, notes=notes)
    assert d.name == "other:2" and any("another generator" in n for n in notes)


def test_classifier_labels_and_csv_scores(tiny_sg2, tmp_path):
    from ganinv.classifier import DigitClassifier

    torch.manual_seed(0)
    clf = DigitClassifier(width=4, feature_dim=8).eval()
    codes, labels, pred = classifier_labels(tiny_sg2, clf, 3, samples=64, batch_size=32)
    assert codes.shape == (64, 16) and labels.dtype == torch.bool and torch.equal(labels, pred == 3)
    with pytest.raises(InputError, match="target-class"):
        classifier_labels(tiny_sg2, clf, 10, samples=8)
    # CSV of latent files (W+ npz as `ganinv invert` writes, plain W .npy) and scores
    rows = []
    for i in range(6):
        w = tiny_sg2.sample_latent(1, "w", seed=i)
        if i % 2:
            np.savez(tmp_path / f"c{i}.npz", w=tiny_sg2.convert(w, "w", "w+").numpy())
            rows.append(f"c{i}.npz,{i}")
        else:
            np.save(tmp_path / f"c{i}.npy", w.numpy())
            rows.append(f"c{i}.npy,{i}")
    (tmp_path / "scores.csv").write_text("latent_file,score\n" + "\n".join(rows) + "\n")
    lat, scores, notes = read_scores_csv(tmp_path / "scores.csv", tiny_sg2)
    assert lat.shape == (6, 16) and scores.tolist() == [0, 1, 2, 3, 4, 5]
    torch.testing.assert_close(lat[0], tiny_sg2.sample_latent(1, "w", seed=0)[0])
    torch.testing.assert_close(lat[1], tiny_sg2.sample_latent(1, "w", seed=1)[0], atol=1e-6, rtol=0)
    assert notes and "mean of their rows" in notes[0]
    labels, thr = binarize_scores(scores)
    assert thr == 2.5 and labels.tolist() == [False, False, False, True, True, True]
    assert binarize_scores(torch.tensor([0.0, 1.0, 1.0]))[0].tolist() == [False, True, True]
    (tmp_path / "bad.csv").write_text("c0.npy,1\nc1.npz,high\n")
    with pytest.raises(InputError, match="not a number"):
        read_scores_csv(tmp_path / "bad.csv", tiny_sg2)


def test_dcgan_interfacegan_works_in_z(tiny_dcgan, tmp_path):
    x = _rand(500, 8, seed=2)
    b = interfacegan(tiny_dcgan, x, x[:, 1] > 0)
    assert b.space == "z" and float(b.vector[1]) > 0.9
    d = load_direction(b.save(tmp_path / "z.npy"), tiny_dcgan)
    assert d.space == "z" and d.sigma == 1.0  # strength in σ = raw units in a standard-normal z


# ----------------------------------------------------------------------------------------------------------
# Files and specs
# ----------------------------------------------------------------------------------------------------------

def test_read_latent_file_accepts_invert_outputs_and_refuses_other_models(tiny_sg2, tmp_path):
    wp = tiny_sg2.sample_latent(1, "w+", seed=1)
    np.savez(tmp_path / "a.npz", w=wp.numpy())
    code = read_latent_file(tmp_path / "a.npz", tiny_sg2)
    assert code.space == "w+" and torch.equal(code.latent, wp) and code.noise is None
    np.savez(tmp_path / "b.npz", w=wp[:, 0].numpy())
    assert read_latent_file(tmp_path / "b.npz", tiny_sg2).space == "w"
    np.savez(tmp_path / "z.npz", z=np.zeros((1, 16), np.float32))
    assert read_latent_file(tmp_path / "z.npz", tiny_sg2).space == "z"
    np.savez(tmp_path / "big.npz", w=np.zeros((1, 8, 128), np.float32))
    with pytest.raises(InputError, match="another model"):
        read_latent_file(tmp_path / "big.npz", tiny_sg2)
    np.savez(tmp_path / "none.npz", q=np.zeros(3))
    with pytest.raises(InputError, match="'w' or 'z'"):
        read_latent_file(tmp_path / "none.npz", tiny_sg2)


def test_resolve_direction_specs(tiny_sg2, tmp_path):
    d = resolve_direction("pca:1", tiny_sg2)
    assert d.name == "pca:1" and d.vector.shape == (16,)
    assert resolve_direction("sefa:0", tiny_sg2, layers=range(0, 3)).name == "sefa:0"
    path = sefa(tiny_sg2, k=4).save(tmp_path / "s.npz")
    torch.testing.assert_close(resolve_direction(f"{path}:2", tiny_sg2).vector,
                               load_direction(path, tiny_sg2, 2).vector)
    for bad, msg in (("pca:x", "component number"), ("pca:99", "has 16 components"), (f"{path}:9", "0…3")):
        with pytest.raises(InputError, match=msg):
            resolve_direction(bad, tiny_sg2)


def test_direction_grid_renders_one_row_per_direction(tiny_sg2):
    comps = ganspace(tiny_sg2, k=3, samples=1000)
    base = tiny_sg2.mean_latent("w")
    grid = direction_grid(tiny_sg2, base, "w", [comps.direction(i) for i in range(3)], [-2, 0, 2],
                          layers=range(0, 3))
    assert grid.shape == (9, 1, 16, 16) and grid.min() >= 0 and grid.max() <= 1
    middle = tiny_sg2.to_display(tiny_sg2.synthesize(base, "w"))[0]
    for row in range(3):  # strength 0 is the unedited image
        torch.testing.assert_close(grid[3 * row + 1], middle, atol=1e-5, rtol=0)


def test_whitening_makes_w_isotropic_and_maps_steps_back(tiny_sg2):
    from ganinv.editing.directions import generator_whitening, sample_codes

    wh = generator_whitening(tiny_sg2, samples=4000)
    x = sample_codes(tiny_sg2, 4000, seed=2)  # the same draws as the whitening's
    cov = torch.cov(wh(x).T)
    torch.testing.assert_close(cov, torch.eye(16), atol=1e-3, rtol=0)
    v = _rand(16, seed=3)
    torch.testing.assert_close(wh(x[:5] + wh.step(v)) - wh(x[:5]), v.expand(5, 16), atol=1e-3, rtol=0)
    # a whitened boundary is a unit W direction along which the labelled attribute grows
    codes = sample_codes(tiny_sg2, 600, seed=4)
    b = interfacegan(tiny_sg2, codes, codes[:, 2] > codes[:, 2].median())
    assert b.info["whitened"] and float(b.vector.norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(b.vector[2]) > 0
