"""Bring-your-own generators: ganinv.generators.wrap (wrap, load_generator_file, parsers)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.base import Generator
from ganinv.generators.wrap import WrappedGenerator, load_generator_file, parse_image_shape, parse_range, wrap

FIXTURE = Path(__file__).parent / "fixtures" / "byo_generators.py"


@pytest.fixture(scope="module")
def byo():
    spec = importlib.util.spec_from_file_location("byo_generators_for_tests", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Constant(nn.Module):
    """Returns ``value`` everywhere, as [B, C, H, W], plus ``0 * z`` so gradients reach the latent."""

    def __init__(self, value: float, shape=(1, 4, 4)) -> None:
        super().__init__()
        self.value, self.shape = value, shape

    def forward(self, z):
        return torch.full((z.shape[0], *self.shape), self.value) + 0 * z.sum(1).view(-1, 1, 1, 1)


# ----- wrap() -------------------------------------------------------------------------------------
def test_wrap_flat_mlp(byo):
    torch.manual_seed(0)
    mlp = byo.MLP()
    G = wrap(mlp, latent_dim=16, image_shape=(1, 28, 28))
    assert isinstance(G, Generator) and G.arch == "wrapped"
    assert list(G.latent_spaces) == ["z"] and G.latent_spaces["z"].shape == (16,)
    assert G.default_space == "z" and G.resolution == 28 and G.channels == 1
    z = G.sample_latent(3, seed=1)
    img = G.synthesize(z)
    assert img.shape == (3, 1, 28, 28)
    assert img.min() >= 0 and img.max() <= 1
    torch.testing.assert_close(img, (mlp(z).view(3, 1, 28, 28) + 1) / 2)
    assert G.mean_latent("z").shape == (1, 16)
    assert G.config() == {"arch": "wrapped", "latent_dim": 16, "image_shape": [1, 28, 28],
                          "output_range": [-1.0, 1.0], "source": "MLP"}
    json.dumps(G.config())


def test_wrap_conv_module_and_registration(byo):
    conv = byo.ConvNet()
    conv.train()
    G = wrap(conv, latent_dim=8, image_shape=(1, 16, 16), output_range=(0, 1), name="conv")
    assert G.net is conv and not conv.training  # registered submodule, eval mode
    assert all(not p.requires_grad for p in G.parameters())
    assert set(G.state_dict()) == {f"net.{k}" for k in conv.state_dict()}
    img = G.synthesize(G.sample_latent(2, seed=0), "z")
    assert img.shape == (2, 1, 16, 16) and 0 <= img.min() and img.max() <= 1
    torch.testing.assert_close(img, conv(G.sample_latent(2, seed=0)))  # (0, 1) range: identity
    G.to(torch.float64)
    assert G.synthesize(G.sample_latent(2, seed=0).double()).dtype == torch.float64
    assert G.config()["source"] == "conv" and G.config()["output_range"] == [0.0, 1.0]


def test_wrap_plain_callable_and_hw_output(byo):
    G = wrap(byo.not_a_module, latent_dim=4, image_shape=(1, 28, 28))
    assert G.net is None and G.module is byo.not_a_module and G.config()["source"] == "not_a_module"
    assert G.synthesize(torch.zeros(1, 4)).shape == (1, 1, 28, 28)
    G2 = wrap(lambda z: torch.zeros(z.shape[0], 5, 7), latent_dim=3, image_shape=(1, 5, 7))  # [B, H, W]
    assert G2.synthesize(torch.zeros(2, 3)).shape == (2, 1, 5, 7)
    assert G2.resolution == 7  # non-square: max side


def test_wrap_tuple_output_and_input_shape(byo):
    G = wrap(lambda z: (torch.zeros(z.shape[0], 3, 6, 10), None), latent_dim=2, image_shape=(3, 6, 10))
    assert G.synthesize(torch.zeros(4, 2)).shape == (4, 3, 6, 10)
    with pytest.raises(InputError, match=r"input_shape=\(8, 1, 1\)"):
        wrap(byo.DCGANStyle(), latent_dim=8, image_shape=(1, 8, 8))
    G = wrap(byo.DCGANStyle(), latent_dim=8, image_shape=(1, 8, 8), input_shape=(8, 1, 1))
    assert G.synthesize(torch.randn(2, 8)).shape == (2, 1, 8, 8)
    assert G.config()["input_shape"] == [8, 1, 1]


@pytest.mark.parametrize("lo,hi,value,expected", [(-1, 1, 0.0, 0.5), (-1, 1, 1.0, 1.0), (0, 255, 51.0, 0.2),
                                                  (0, 1, 0.25, 0.25), (-2, 2, -2.0, 0.0)])
def test_rescale_exact(lo, hi, value, expected):
    G = wrap(Constant(value), latent_dim=3, image_shape=(1, 4, 4), output_range=(lo, hi))
    img = G.synthesize(torch.randn(2, 3))
    torch.testing.assert_close(img, torch.full((2, 1, 4, 4), expected))


def test_gradient_reaches_latent_params_frozen(byo):
    torch.manual_seed(0)
    G = wrap(byo.MLP(), latent_dim=16, image_shape=(1, 28, 28))
    z = G.sample_latent(2, seed=0).requires_grad_(True)
    G.synthesize(z).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in G.parameters())


def test_wrong_output_size_fails_at_wrap_time(byo):
    with pytest.raises(InputError, match=r"returned a tensor of shape \[2, 784\].*expected \[2, 3072\] or "
                                         r"\[2, 3, 32, 32\].*784 values per image instead of 3×32×32 = 3072"):
        wrap(byo.MLP(), latent_dim=16, image_shape=(3, 32, 32))
    with pytest.raises(InputError, match=r"shape \[2, 1, 16, 16\].*expected .*\[2, 1, 8, 32\]"):
        wrap(byo.ConvNet(), latent_dim=8, image_shape=(1, 8, 32))  # same numel, wrong layout
    with pytest.raises(InputError, match="batch size 1 instead of 2"):
        wrap(lambda z: torch.zeros(1, 4), latent_dim=2, image_shape=(1, 2, 2))
    with pytest.raises(InputError, match="must return a tensor"):
        wrap(lambda z: 3, latent_dim=2, image_shape=(1, 2, 2))
    with pytest.raises(InputError, match="floating-point"):
        wrap(lambda z: torch.zeros(2, 4, dtype=torch.long), latent_dim=2, image_shape=(1, 2, 2))
    with pytest.raises(InputError, match=r"calling MLP on a latent batch of shape \[2, 5\] failed.*=5") as info:
        wrap(byo.MLP(), latent_dim=5, image_shape=(1, 28, 28))
    assert "input_shape" not in str(info.value)  # the DCGAN hint only when [B, D, 1, 1] really works


@pytest.mark.parametrize("kwargs,match", [
    ({"latent_dim": 0}, "latent_dim must be a positive integer"),
    ({"latent_dim": 2.5}, "latent_dim must be a positive integer"),
    ({"image_shape": (28, 28)}, r"image_shape must be three positive integers"),
    ({"image_shape": (1, 0, 28)}, r"image_shape must be three positive integers"),
    ({"output_range": (1, -1)}, "LO < HI"),
    ({"output_range": (0, float("inf"))}, "LO < HI"),
    ({"output_range": (0,)}, "two numbers"),
    ({"input_shape": (3, 1, 1)}, "product is latent_dim=16"),
])
def test_wrap_argument_validation(byo, kwargs, match):
    args = {"latent_dim": 16, "image_shape": (1, 28, 28), **kwargs}
    with pytest.raises(InputError, match=match):
        wrap(byo.MLP(), **args)


def test_wrap_rejects_non_callable():
    with pytest.raises(InputError, match="needs an nn.Module or a callable"):
        wrap(42, latent_dim=2, image_shape=(1, 2, 2))


def test_synthesize_checks_latent_shape(byo):
    G = wrap(byo.MLP(), latent_dim=16, image_shape=(1, 28, 28))
    with pytest.raises(InputError, match=r"shape \[B, 16\]"):
        G.synthesize(torch.zeros(2, 15))
    with pytest.raises(InputError, match="no latent space 'w'"):
        G.synthesize(torch.zeros(2, 16), "w")


def test_sample_latent_deterministic(byo):
    G = wrap(byo.MLP(), latent_dim=16, image_shape=(1, 28, 28))
    a, b, c = G.sample_latent(4, seed=7), G.sample_latent(4, seed=7), G.sample_latent(4, seed=8)
    assert a.shape == (4, 16)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(G.sample(2, seed=3), G.sample(2, seed=3))


# ----- parsers ------------------------------------------------------------------------------------
def test_parsers():
    assert parse_image_shape("1,28,28") == (1, 28, 28)
    assert parse_image_shape(" 3x64x48 ") == (3, 64, 48)
    assert parse_range("-1,1") == (-1.0, 1.0)
    assert parse_range("0, 255") == (0.0, 255.0)
    for bad in ("1,28", "a,b,c", "1,0,28", "", "1,28,28,3"):
        with pytest.raises(InputError, match="--image-shape must be three positive integers"):
            parse_image_shape(bad)
    for bad in ("1", "a,1", "1,2,3"):
        with pytest.raises(InputError, match="--output-range must be two numbers"):
            parse_range(bad)
    for bad in ("1,-1", "0,0", "0,inf"):
        with pytest.raises(InputError, match="finite LO < HI"):
            parse_range(bad)


# ----- load_generator_file ------------------------------------------------------------------------
def test_load_class_with_explicit_options():
    G = load_generator_file(f"{FIXTURE}:MLP", latent_dim=16, image_shape=(1, 28, 28), output_range=(-1, 1))
    assert isinstance(G, WrappedGenerator) and G.config()["source"] == f"{FIXTURE}:MLP"
    assert G.synthesize(G.sample_latent(2, seed=0)).shape == (2, 1, 28, 28)


def test_load_factory_instance_and_attributes():
    G = load_generator_file(f"{FIXTURE}:make_mlp", latent_dim=16, image_shape=(1, 28, 28))
    assert G.output_range == (-1.0, 1.0)  # the default
    G = load_generator_file(f"{FIXTURE}:mlp_instance", latent_dim=16, image_shape=(1, 28, 28))
    assert type(G.net).__name__ == "MLP"
    G = load_generator_file(f"{FIXTURE}:Described")
    assert (G.latent_dim, G.image_shape, G.output_range, G.resolution) == (12, (3, 6, 10), (0.0, 1.0), 10)
    assert G.synthesize(torch.zeros(1, 12)).shape == (1, 3, 6, 10)
    G = load_generator_file(f"{FIXTURE}:WithZDim")
    assert G.latent_dim == 16 and G.image_shape == (1, 28, 28)
    G = load_generator_file(f"{FIXTURE}:DCGANStyle", latent_dim=8, image_shape=(1, 8, 8), input_shape=(8, 1, 1))
    assert G.synthesize(torch.zeros(1, 8)).shape == (1, 1, 8, 8)


def test_load_requires_shape_options():
    with pytest.raises(InputError, match=r"pass --latent-dim N .* and --image-shape C,H,W"):
        load_generator_file(f"{FIXTURE}:MLP")
    with pytest.raises(InputError, match=r"pass --image-shape C,H,W") as info:
        load_generator_file(f"{FIXTURE}:MLP", latent_dim=16)
    assert "--latent-dim" not in str(info.value)


@pytest.mark.parametrize("spec,match", [
    ("nope/missing.py:G", "generator file not found: nope/missing.py"),
    (f"{FIXTURE}", r"must be PATH.py:NAME.*missing :NAME"),
    (f"{FIXTURE}:", r"missing :NAME"),
    (f"{FIXTURE}:Missing", r"has no 'Missing'; candidates: .*MLP.*ConvNet.*make_mlp.*mlp_instance.*not_a_module"),
    (f"{FIXTURE}:not_a_module", r"not_a_module .* is a function taking \(z\), not an nn.Module"),
    (f"{FIXTURE}:returns_string", r"returned str, not an nn.Module"),
    (f"{FIXTURE}:broken_factory", r"calling the factory broken_factory\(\) .* RuntimeError: out of coffee"),
    (f"{FIXTURE}:NeedsArgs", r"constructing NeedsArgs\(\) .* failed with TypeError.*without arguments"),
    (f"{FIXTURE}:NotAModule", "is a class but not an nn.Module subclass"),
    (f"{FIXTURE}:NUMBER", "is a int, not an nn.Module class"),
])
def test_load_errors(spec, match):
    with pytest.raises(InputError, match=match):
        load_generator_file(spec, latent_dim=16, image_shape=(1, 28, 28))


def test_load_candidates_exclude_imports():
    with pytest.raises(InputError) as info:
        load_generator_file(f"{FIXTURE}:Missing")
    listed = str(info.value).split("candidates: ")[1].split(", ")
    assert "nn" not in listed and "Tensor" not in listed and "NUMBER" not in listed and "annotations" not in listed


def test_load_file_errors(tmp_path):
    (tmp_path / "bad.py").write_text("def broken(:\n")
    with pytest.raises(InputError, match=r"importing .*bad.py failed \(line 1\): SyntaxError"):
        load_generator_file(f"{tmp_path / 'bad.py'}:G")
    (tmp_path / "raises.py").write_text("import not_a_real_package_xyz\n")
    with pytest.raises(InputError, match="ModuleNotFoundError"):
        load_generator_file(f"{tmp_path / 'raises.py'}:G")
    (tmp_path / "model.txt").write_text("")
    with pytest.raises(InputError, match="must be a Python file ending in .py"):
        load_generator_file(f"{tmp_path / 'model.txt'}:G")
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(InputError, match=r"has no 'G'; candidates: none"):
        load_generator_file(f"{tmp_path / 'empty.py'}:G")


def test_load_sibling_import(tmp_path):
    (tmp_path / "layers_xyz_sibling.py").write_text("from torch import nn\nSIZE = 4\n")
    (tmp_path / "gen.py").write_text(
        "from torch import nn\nimport layers_xyz_sibling\n"
        "class G(nn.Module):\n    latent_dim = 2\n    image_shape = (1, 2, 2)\n"
        "    def __init__(self):\n        super().__init__(); self.fc = nn.Linear(2, layers_xyz_sibling.SIZE)\n"
        "    def forward(self, z):\n        return self.fc(z)\n")
    G = load_generator_file(f"{tmp_path / 'gen.py'}:G")
    assert G.synthesize(torch.zeros(1, 2)).shape == (1, 1, 2, 2)


# ----- weights ------------------------------------------------------------------------------------
def _trained_state(byo):
    torch.manual_seed(123)
    return {k: v.clone() for k, v in byo.MLP().state_dict().items()}


@pytest.mark.parametrize("form", ["bare", "state_dict", "g_ema", "generator", "model", "nested", "dataparallel",
                                  "safetensors"])
def test_weights_round_trip(byo, tmp_path, form):
    state = _trained_state(byo)
    ref = byo.MLP()
    ref.load_state_dict(state)
    if form == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    else:
        obj = {"bare": state, "nested": {"state_dict": {"generator": state}},
               "dataparallel": {f"module.{k}": v for k, v in state.items()}}.get(form)
        if obj is None:
            obj = {form: state, "epoch": 3, "g": {"other": torch.zeros(1)}}
        path = tmp_path / "w.pt"
        torch.save(obj, path)
    G = load_generator_file(f"{FIXTURE}:MLP", weights=str(path), latent_dim=16, image_shape=(1, 28, 28))
    z = G.sample_latent(3, seed=0)
    torch.testing.assert_close(G.synthesize(z), (ref(z).view(3, 1, 28, 28) + 1) / 2, rtol=0, atol=0)


def test_weights_wrong_keys_listed(byo, tmp_path):
    state = _trained_state(byo)
    state["extra.weight"] = torch.zeros(2)
    del state["net.0.bias"]
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"(?s)missing keys \(1\): net\.0\.bias.*unexpected keys \(1\): "
                                              r"extra\.weight"):
        load_generator_file(f"{FIXTURE}:MLP", weights=str(path), latent_dim=16, image_shape=(1, 28, 28))
    state = _trained_state(byo)
    state["net.0.bias"] = torch.zeros(5)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"shape mismatches \(1\): net\.0\.bias: checkpoint \[5\] vs "
                                              r"model \[32\]"):
        load_generator_file(f"{FIXTURE}:MLP", weights=str(path), latent_dim=16, image_shape=(1, 28, 28))


def test_weights_errors(byo, tmp_path):
    def load(path):
        return load_generator_file(f"{FIXTURE}:MLP", weights=str(path), latent_dim=16, image_shape=(1, 28, 28))

    with pytest.raises(CheckpointError, match="weights file not found"):
        load(tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"could not be read as a PyTorch checkpoint with weights_only=True "
                                              r"\(it may be corrupt"):
        load(tmp_path / "garbage.pt")
    torch.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "whole_model.pt")  # a pickled module: refused
    with pytest.raises(CheckpointError, match=r"needs the Python object torch.nn.modules.container.Sequential"
                                              r".*state_dict"):
        load(tmp_path / "whole_model.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(tmp_path / "bad.safetensors")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "no_state.pt")
    with pytest.raises(CheckpointError, match=r"does not hold a state dict.*keys 'epoch', 'optimizer'"):
        load(tmp_path / "no_state.pt")
    state = _trained_state(byo)
    state["net.0.bias"] = torch.full_like(state["net.0.bias"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN/Inf"):
        load(tmp_path / "nan.pt")
