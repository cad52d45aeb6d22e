"""Identity similarity (ArcFace IR-SE-50 / CurricularFace IR-101 layout): network, loading, metric, loss, CLI.

Random weights only: the real ``model_ir_se50.pth`` is a user-given file. The state-dict layout checked here is
the one of TreB1eN's InsightFace_Pytorch / pSp's ``model_irse.Backbone`` (key names, counts, shapes).
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganinv import metrics, weights
from ganinv.cli.app import app
from ganinv.errors import CheckpointError, InputError, MissingWeightsError
from ganinv.losses import CombinedLoss, IdentityLoss, parse_loss_spec
from ganinv.losses import identity as idm

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1, result.output
    return " ".join(result.output.split())


@pytest.fixture(autouse=True)
def clean_lookup(monkeypatch, tmp_path):
    """No --id-weights, no $GANINV_ARCFACE and an empty ganinv cache for every test."""
    monkeypatch.delenv("GANINV_ARCFACE", raising=False)
    monkeypatch.setenv("GANINV_CACHE", str(tmp_path / "ganinv_cache"))
    idm.set_weights_path(None)
    yield
    idm.set_weights_path(None)


def _meta(depth: int = 50, **kw) -> idm.IRBackbone:
    with torch.device("meta"):
        return idm.IRBackbone(depth, **kw)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A random-weight IR-SE-50 state dict saved the way model_ir_se50.pth is (a plain state dict)."""
    model = _meta(50).to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=g) * 0.5 + 0.75
        elif key.endswith("running_mean") or (key.endswith(".bias")):
            state[key] = torch.randn(value.shape, generator=g) * 0.05
        elif value.dim() == 1:  # BatchNorm scales, PReLU slopes
            state[key] = torch.rand(value.shape, generator=g) * 0.5 + (0.75 if "res_layer.2" not in key
                                                                       and "input_layer.2" not in key else 0.0)
        else:  # conv / linear: variance-preserving
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * (1.0 / fan_in) ** 0.5
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def net(weights_file):
    return idm.load_backbone(weights_file)


@pytest.fixture(scope="module")
def faces():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 256, 256, generator=g), torch.rand(2, 3, 256, 256, generator=g)


# ---------------------------------------------------------------- layout

def _stage_units(model: idm.IRBackbone) -> list[int]:
    widths = [unit.res_layer[1].out_channels for unit in model.body]
    return [widths.count(c) for c in (64, 128, 256, 512)]


@pytest.mark.parametrize("depth, se, affine, units, n_keys", [
    (50, True, True, [3, 4, 14, 3], 397),     # TreB1eN / pSp IR-SE-50 (model_ir_se50.pth)
    (100, False, False, [3, 13, 30, 3], 672),  # CurricularFace IR-101 (CurricularFace_Backbone.pth)
    (152, True, True, [3, 8, 36, 3], None),
])
def test_layout_matches_insightface(depth, se, affine, units, n_keys):
    model = _meta(depth, se=se, affine=affine)
    state = model.state_dict()
    assert _stage_units(model) == units and len(model.body) == sum(units)
    if n_keys is not None:  # the counts of pSp's / CurricularFace's Backbone(...).state_dict()
        assert len(state) == n_keys
    assert list(state)[:3] == ["input_layer.0.weight", "input_layer.1.weight", "input_layer.1.bias"]
    assert list(state)[6] == "input_layer.2.weight" and list(state)[7].startswith("output_layer.0.")
    assert tuple(state["input_layer.0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(state["output_layer.3.weight"].shape) == (512, 512 * 7 * 7)
    assert ("output_layer.4.weight" in state) == affine and "output_layer.4.running_mean" in state
    # strided units: the first of each stage; a shortcut conv where the width changes (not stage 1: 64 → 64)
    starts = [0, units[0], units[0] + units[1], units[0] + units[1] + units[2]]
    assert "body.0.shortcut_layer.0.weight" not in state
    for i in starts[1:]:
        widths = (model.body[i].res_layer[1].out_channels, model.body[i - 1].res_layer[1].out_channels)
        assert tuple(state[f"body.{i}.shortcut_layer.0.weight"].shape)[:2] == widths
        assert f"body.{i}.shortcut_layer.1.running_var" in state
    for i, unit in enumerate(model.body):
        assert unit.res_layer[3].stride == ((2, 2) if i in starts else (1, 1))
        assert unit.res_layer[1].stride == (1, 1)
    assert ("body.0.res_layer.5.fc1.weight" in state) == se
    if se:
        assert tuple(state["body.0.res_layer.5.fc1.weight"].shape) == (4, 64, 1, 1)
        assert tuple(state[f"body.{sum(units) - 1}.res_layer.5.fc2.weight"].shape) == (512, 32, 1, 1)
    assert "body.0.res_layer.2.weight" in state  # PReLU between the two convs
    assert model.output_layer[3].out_features == idm.EMBEDDING_DIM == 512


def test_loading_round_trips_and_detects_the_layout(weights_file, net, tmp_path):
    saved = torch.load(weights_file, weights_only=True)
    assert net.depth == 50 and net.se and not net.training
    assert all(not p.requires_grad for p in net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(value, saved[key]), key
    # a DataParallel-saved copy ("module." prefix) loads too (values: one stored element each, broadcast, so that
    # the files stay tiny)
    def tiny(model: idm.IRBackbone, prefix: str = "") -> dict[str, torch.Tensor]:
        return {prefix + k: torch.full((1,), 0.5, dtype=v.dtype).expand(v.shape) if v.dim()
                else torch.zeros((), dtype=v.dtype) for k, v in model.state_dict().items()}

    torch.save(tiny(_meta(50), "module."), tmp_path / "dp.pth")
    again = idm.load_backbone(tmp_path / "dp.pth")
    assert again.se and float(again.body[3].res_layer[1].weight[0, 0, 0, 0]) == 0.5
    # CurricularFace's IR-101 layout (no SE, BatchNorm1d without affine) is recognised too
    torch.save(tiny(_meta(100, se=False, affine=False)), tmp_path / "CurricularFace_Backbone.pth")
    ir101 = idm.load_backbone(tmp_path / "CurricularFace_Backbone.pth")
    assert ir101.depth == 100 and not ir101.se and ir101.output_layer[4].weight is None
    assert (tmp_path / "CurricularFace_Backbone.pth").stat().st_size < 2_000_000


# ---------------------------------------------------------------- crop and metric

def test_face_crop_follows_psp():
    x = torch.rand(2, 3, 256, 256)
    ref = torch.nn.AdaptiveAvgPool2d((112, 112))((x * 2 - 1)[:, :, 35:223, 32:220])  # pSp's IDLoss.extract_feats
    assert torch.allclose(idm.face_crop(x), ref, atol=1e-6)
    big = torch.rand(1, 3, 1024, 1024)  # pSp pools 1024 px outputs to 256 first
    assert torch.allclose(idm.face_crop(big), idm.face_crop(torch.nn.AdaptiveAvgPool2d(256)(big)), atol=1e-6)
    assert idm.face_crop(torch.rand(1, 3, 64, 64)).shape == (1, 3, 112, 112)  # small images: upsampled
    with pytest.raises(InputError, match="RGB"):
        idm.face_crop(torch.rand(1, 1, 256, 256))


def test_metric_identical_images_order_and_range(weights_file, net, faces):
    x, y = faces
    idm.set_weights_path(weights_file)
    e = idm.embed(net, x[:1])
    assert e.shape == (1, 512) and float(e.norm()) == pytest.approx(1.0, abs=1e-5)
    sim = metrics.identity_similarity(x, y)
    assert sim.shape == (2,) and bool((sim < 0.9999).all()) and bool((sim.abs() <= 1).all())
    perm = torch.tensor([1, 0])  # batch order: each pair on its own; and symmetric
    assert torch.allclose(metrics.identity_similarity(y[perm], x[perm]), sim[perm], atol=1e-5)
    same = metrics.compute_all(x[:1], x[:1], identity=True)  # identical images: 1
    assert float(same["id"]) == pytest.approx(1.0, abs=1e-5)
    assert "id" not in metrics.compute_all(x[:1], y[:1])
    with pytest.raises(InputError, match="RGB"):
        metrics.identity_similarity(x[:, :1], y[:, :1])


# ---------------------------------------------------------------- loss

def test_loss_is_one_minus_cos_differentiable_and_caches_the_target(net, faces):
    x, y = faces
    loss = IdentityLoss(model=net)
    loss.train()
    assert not loss.model.training  # frozen network stays in eval mode
    pred = x[:1].clone().requires_grad_(True)
    value = loss(pred, y[:1])
    assert value.shape == (1,) and 0 <= float(value.detach()) <= 2
    value.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    cached = loss.target_embedding(y[:1])
    assert loss.target_embedding(y[:1].clone()) is cached  # same values: not recomputed
    with torch.no_grad():
        assert float(loss(y[:1], y[:1])) == pytest.approx(0.0, abs=1e-5)
    assert loss.target_embedding(x[:1]) is not cached  # another target: recomputed


def test_loss_decreases_under_adam():
    """A tiny stand-in network (any module taking the 112 px crop) keeps this fast; the crop, caching and 1 − cos
    are IdentityLoss's own."""
    torch.manual_seed(0)
    stand_in = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, 4), torch.nn.PReLU(8), torch.nn.Flatten(),
                                   torch.nn.Linear(8 * 27 * 27, 32))
    model = torch.nn.Sequential(stand_in, _Normalize())
    loss = IdentityLoss(model=model)
    target = torch.rand(2, 3, 64, 64)
    pred = torch.rand(2, 3, 64, 64).requires_grad_(True)
    opt = torch.optim.Adam([pred], lr=0.05)
    first = None
    for _ in range(15):
        opt.zero_grad()
        value = loss(pred, target).sum()
        first = float(value.detach()) if first is None else first
        value.backward()
        opt.step()
    assert float(loss(pred, target).sum().detach()) < 0.5 * first


class _Normalize(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.normalize(x, dim=1)


def test_loss_spec_term(weights_file):
    assert parse_loss_spec("mse=1,id=0.1") == {"mse": 1.0, "id": 0.1}
    combined = CombinedLoss.from_spec("mse=1,id=0.1", id_weights=weights_file)
    assert isinstance(combined.term("id"), IdentityLoss) and combined.weights == {"mse": 1.0, "id": 0.1}
    with pytest.raises(MissingWeightsError, match="--id-weights PATH or set GANINV_ARCFACE"):
        CombinedLoss.from_spec("mse=1,id=0.1")
    assert CombinedLoss.from_spec("mse=1,id=0").names == ["mse"]  # weight 0: no file needed


# ---------------------------------------------------------------- finding the file, clear errors

def test_lookup_order(weights_file, tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError) as info:
        idm.find_weights()
    assert "model_ir_se50.pth, from TreB1eN/InsightFace_Pytorch" in str(info.value)
    assert not idm.weights_available()
    cache = weights.cache_dir("ganinv")
    cache.mkdir(parents=True)
    (cache / "CurricularFace_Backbone.pth").write_bytes(b"x")
    assert idm.find_weights() == cache / "CurricularFace_Backbone.pth"
    (cache / "model_ir_se50.pth").write_bytes(b"x")
    assert idm.find_weights() == cache / "model_ir_se50.pth"  # pSp's file first
    monkeypatch.setenv("GANINV_ARCFACE", str(weights_file))
    assert idm.find_weights() == weights_file
    idm.set_weights_path(tmp_path / "given.pth")
    with pytest.raises(CheckpointError, match="--id-weights.*does not exist"):
        idm.find_weights()
    assert idm.FILE_NAMES == weights.GIVEN["arcface"].file_names and idm.WEIGHTS_ENV == weights.GIVEN["arcface"].env


def test_corrupt_and_foreign_files_are_one_sentence(weights_file, tmp_path):
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read ArcFace weights") as info:
        idm.load_backbone(tmp_path / "corrupt.pth")
    assert "\n" not in str(info.value)
    torch.save({"conv.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not an ArcFace IR / IR-SE backbone"):
        idm.load_backbone(tmp_path / "foreign.pth")
    torch.save({"model": {"a": torch.zeros(1)}}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        idm.load_backbone(tmp_path / "nested.pth")
    state = torch.load(weights_file, weights_only=True)
    state.pop("body.5.res_layer.1.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "near.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: body\.5\.res_layer\.1\.weight.*unexpected keys: "
                                              r"extra\.weight"):
        idm.load_backbone(tmp_path / "near.pth")


# ---------------------------------------------------------------- CLI

@pytest.fixture
def face_pairs(tmp_path):
    g = torch.Generator().manual_seed(2)
    real, recon = tmp_path / "real", tmp_path / "recon"
    real.mkdir()
    recon.mkdir()
    for i in range(2):
        a = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(a).save(real / f"face_{i}.png")
        Image.fromarray(255 - a if i else a).save(recon / f"face_{i}.png")
    return real, recon


def test_eval_adds_id_with_weights(face_pairs, weights_file, offline_torch_home):
    real, recon = face_pairs
    result = run("eval", real, recon, "--id-weights", weights_file, "--no-classifier")
    assert result.exit_code == 0, result.output
    assert "ID" in result.output
    report = json.loads((recon / "eval.json").read_text())
    assert report["pairs"]["face_0"]["id"] == pytest.approx(1.0, abs=1e-5)  # identical pair
    assert report["pairs"]["face_1"]["id"] < 0.9999
    assert report["mean"]["id"] == pytest.approx((report["pairs"]["face_0"]["id"]
                                                  + report["pairs"]["face_1"]["id"]) / 2, abs=1e-6)
    result = run("eval", real, recon, "--no-classifier")  # no weights anywhere: no ID, no error
    assert result.exit_code == 0, result.output
    report = json.loads((recon / "eval.json").read_text())
    assert report["mean"]["id"] is None and " ID " not in result.output


def test_cli_weight_errors_are_one_line(face_pairs, weights_file, tmp_path, offline_torch_home):
    real, recon = face_pairs
    msg = one_error_line(run("eval", real, recon, "--id-weights", tmp_path / "nope.pth"))
    assert "nope.pth" in msg and "does not exist" in msg
    (tmp_path / "bad.pth").write_bytes(b"\x00garbage")
    assert "cannot read ArcFace weights" in one_error_line(run("eval", real, recon, "--id-weights",
                                                                tmp_path / "bad.pth"))
    torch.save({"net.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    assert "not an ArcFace" in one_error_line(run("eval", real, recon, "--id-weights", tmp_path / "foreign.pth"))
    msg = one_error_line(run("invert", real, "--out", tmp_path / "o", "--loss", "mse=1,id=0.1", "--steps", 1))
    assert "identity similarity needs ArcFace IR-SE-50 weights (model_ir_se50.pth" in msg
    assert "--id-weights PATH or set GANINV_ARCFACE" in msg
    assert not (tmp_path / "o").exists()


def test_weights_lists_the_given_file(weights_file, monkeypatch):
    result = run("weights", "--offline")
    assert result.exit_code == 0, result.output
    assert "arcface" in result.output and "not given" in result.output
    monkeypatch.setenv("GANINV_ARCFACE", str(weights_file))
    result = run("weights", "--offline")
    assert result.exit_code == 0, result.output
    assert "given" in result.output and "model_ir_se50.pth" in result.output and "not given" not in result.output


def test_invert_reports_id_only_with_weights(weights_file, tmp_path, monkeypatch, offline_torch_home):
    from conftest import make_tiny_stylegan2

    from ganinv.modelfile import save_pretrained

    model_dir = save_pretrained(make_tiny_stylegan2(img_channels=3), tmp_path / "tiny", name="tiny", kind="generator")
    images = tmp_path / "img"
    images.mkdir()
    Image.fromarray((torch.rand(16, 16, 3) * 255).to(torch.uint8).numpy()).save(images / "a.png")
    args = ("invert", images, "--model", model_dir, "--steps", 1, "--device", "cpu")
    result = run(*args, "--out", tmp_path / "plain")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert "id" not in summary["mean"] and "id" not in summary["records"][0]
    monkeypatch.setenv("GANINV_ARCFACE", str(weights_file))
    result = run(*args, "--out", tmp_path / "with_id")
    assert result.exit_code == 0, result.output
    assert " ID " in result.output
    summary = json.loads((tmp_path / "with_id" / "summary.json").read_text())
    assert -1 <= summary["records"][0]["id"] <= 1 and summary["mean"]["id"] == summary["records"][0]["id"]
