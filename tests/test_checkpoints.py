"""Checkpoint loaders: rosinality .pt, NVIDIA .pkl (restricted unpickler), ganinv folders, dispatch, inspection.

All models are tiny random StyleGAN2 generators; nothing is downloaded. Malicious payloads
only ever try to create a marker file inside the test's tmp folder, and every test checks
that the marker never appears.
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ganinv import zoo
from ganinv.errors import CheckpointError, UnknownModelError
from ganinv.generators.checkpoints import (
    CheckpointNotice,
    inspect_checkpoint,
    load_generator,
    load_nvidia_pkl,
    load_rosinality,
    read_nvidia_pkl,
    save_rosinality,
    sniff_format,
)
from ganinv.generators.checkpoints.nvidia import stylegan2_from_record
from ganinv.generators.dcgan import DCGANDiscriminator, DCGANGenerator
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.modelfile import save_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nvidia_pkl import fake_modules_installed, write_nvidia_pkl  # noqa: E402


# ----------------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------------
def tiny_generator(img_channels: int = 3, seed: int = 0, lr_mlp: float = 0.01) -> StyleGAN2Generator:
    """A 16 px StyleGAN2 with every parameter random (noise strengths and w_avg too)."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=16, channels={4: 16, 8: 16, 16: 8}, z_dim=16, w_dim=16, n_mlp=2,
                           img_channels=img_channels, lr_mlp=lr_mlp)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                p.normal_()
        G.w_avg.normal_()
    return G.eval()


@pytest.fixture(params=[3, 1], ids=["rgb", "gray"])
def G(request: pytest.FixtureRequest) -> StyleGAN2Generator:
    return tiny_generator(img_channels=request.param)


@pytest.fixture
def G3() -> StyleGAN2Generator:
    return tiny_generator(img_channels=3)


def fixed_wplus(G: StyleGAN2Generator, n: int = 2) -> torch.Tensor:
    return torch.randn(n, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(123))


def render(G: StyleGAN2Generator) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesize(fixed_wplus(G), "w+")


def assert_same_generator(a: StyleGAN2Generator, b: StyleGAN2Generator) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert torch.equal(a.w_avg, b.w_avg)
    assert torch.equal(render(a), render(b))


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------------
# rosinality .pt
# ----------------------------------------------------------------------------------
def test_rosinality_round_trip_renders_identically(tmp_path: Path, G: StyleGAN2Generator) -> None:
    path = save_rosinality(G, tmp_path / "g.pt")
    notices: list[str] = []
    loaded = load_rosinality(path, notices=notices)
    assert notices == []
    assert loaded.config() == G.config()
    assert_same_generator(G, loaded)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_rosinality_legacy_format_and_bare_state_dict(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save({"g_ema": G3.state_dict(), "latent_avg": G3.w_avg}, legacy, _use_new_zipfile_serialization=False)
    assert sniff_format(legacy) == "torch-legacy"
    assert_same_generator(G3, load_rosinality(legacy))

    bare = tmp_path / "bare.pth"
    torch.save({**{f"module.{k}": v for k, v in G3.state_dict().items()}, "module.latent_avg": G3.w_avg}, bare)
    notices: list[str] = []
    assert_same_generator(G3, load_rosinality(bare, notices=notices))
    assert any("module." in n for n in notices)


def test_training_checkpoint_without_latent_avg_is_estimated(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    path = tmp_path / "050000.pt"
    sd = G3.state_dict()
    torch.save({"g": sd, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": sd,
                "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "params": [0]}]},
                "d_optim": {"state": {}, "param_groups": [{"lr": 0.002, "params": [0]}]},
                "args": argparse.Namespace(size=16, n_mlp=2, latent=16, channel_multiplier=2), "ada_aug_p": 0.1}, path)
    notices: list[str] = []
    loaded = load_rosinality(path, notices=notices)
    assert any("training checkpoint" in n and "g_ema" in n for n in notices)
    assert any("no latent_avg" in n and "10,000" in n for n in notices)
    expected = tiny_generator().estimate_w_avg(10_000)
    torch.testing.assert_close(loaded.w_avg, expected)
    with pytest.warns(CheckpointNotice) as record:
        load_rosinality(path)
    assert any("estimated the mean w" in str(w.message) for w in record)


def test_psp_checkpoint_uses_decoder(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    path = tmp_path / "psp.pt"
    state = {"encoder.body.0.weight": torch.randn(4, 3, 3, 3),
             **{f"decoder.{k}": v for k, v in G3.state_dict().items()}}
    torch.save({"state_dict": state, "opts": {"output_size": 16},
                "latent_avg": G3.w_avg.repeat(G3.num_ws, 1)}, path)
    notices: list[str] = []
    loaded = load_rosinality(path, notices=notices)
    assert any("decoder" in n for n in notices)
    torch.testing.assert_close(loaded.w_avg, G3.w_avg)
    assert torch.equal(loaded.state_dict()["input.input"], G3.state_dict()["input.input"])


def test_wrong_architecture_is_described(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    dcgan = tmp_path / "dcgan.pt"
    torch.save(DCGANGenerator(resolution=16, z_dim=8, width=8).state_dict(), dcgan)
    with pytest.raises(CheckpointError) as exc:
        load_rosinality(dcgan)
    msg = str(exc.value)
    assert "missing keys" in msg and "style.1.weight" in msg and "DCGAN" in msg and "net (" in msg

    junk = tmp_path / "junk.pt"
    torch.save({"foo": torch.ones(2), "bar.baz": torch.ones(3)}, junk)
    with pytest.raises(CheckpointError, match=r"missing keys style\.1\.weight, input\.input"):
        load_rosinality(junk)

    not_weights = tmp_path / "notes.pt"
    torch.save({"hello": "world", "epoch": 3}, not_weights)
    with pytest.raises(CheckpointError, match="top-level keys are hello, epoch"):
        load_rosinality(not_weights)

    sd = dict(G3.state_dict())
    del sd["to_rgbs.0.bias"]
    sd["extra.weight"] = torch.ones(1)
    sd["style.2.weight"] = torch.randn(16, 8)
    partial = tmp_path / "partial.pt"
    torch.save({"g_ema": sd, "latent_avg": G3.w_avg}, partial)
    with pytest.raises(CheckpointError) as exc:
        load_rosinality(partial)
    msg = str(exc.value)
    assert "missing keys (1): to_rgbs.0.bias" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "style.2.weight: checkpoint [16, 8] vs model [16, 16]" in msg


# ----------------------------------------------------------------------------------
# NVIDIA .pkl
# ----------------------------------------------------------------------------------
def test_same_weights_as_pt_and_pkl_are_bit_identical(tmp_path: Path, G: StyleGAN2Generator) -> None:
    pt = save_rosinality(G, tmp_path / "g.pt")
    pkl = write_nvidia_pkl(G, tmp_path / "network-snapshot.pkl")
    assert fake_modules_installed() == [] and "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    from_pt, from_pkl = load_rosinality(pt), load_nvidia_pkl(pkl, notices=[])
    assert from_pkl.config() == from_pt.config() == G.config()
    assert_same_generator(from_pt, from_pkl)
    assert_same_generator(G, from_pkl)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(from_pt.synthesize(z, "z"), from_pkl.synthesize(z, "z"))


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_pkl_other_pickle_protocols(tmp_path: Path, G3: StyleGAN2Generator, protocol: int) -> None:
    pkl = write_nvidia_pkl(G3, tmp_path / "g.pkl", protocol=protocol)
    assert_same_generator(G3, load_nvidia_pkl(pkl, notices=[]))


def test_pkl_mapping_lr_and_notices(tmp_path: Path) -> None:
    G = tiny_generator(lr_mlp=0.1)
    pkl = write_nvidia_pkl(G, tmp_path / "lr.pkl", conv_clamp=256, include_w_avg=False, include_g_ema=False)
    notices: list[str] = []
    loaded = load_nvidia_pkl(pkl, notices=notices)
    assert loaded.lr_mlp == pytest.approx(0.1)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.mapping(z), G.mapping(z))
    text = " | ".join(notices)
    assert "no G_ema; using G" in text and "conv_clamp=256" in text and "estimated the mean w" in text


def test_module_src_is_never_executed(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    marker = tmp_path / "PWNED"
    src = f"open({str(marker)!r}, 'w').write('pwned')\nimport os\nos.system('touch {marker}')\n"
    pkl = write_nvidia_pkl(G3, tmp_path / "g.pkl", module_src=src)
    assert b"PWNED" in pkl.read_bytes()
    obj, _ = read_nvidia_pkl(pkl)
    record = obj["G_ema"]
    assert record.module_src_chars == len(src) and "module_src" not in record.state
    loaded, _ = load_generator(str(pkl))
    info = inspect_checkpoint(pkl)
    assert_same_generator(G3, loaded)
    assert info["loadable"] and "builtins.exec" not in info["pickle_globals"]
    assert not marker.exists()


def test_a_broken_stylegan3_and_a_conditional_pkl_are_refused(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    # a StyleGAN2's weights under StyleGAN3's class name: the StyleGAN3 reader says what does not fit it
    sg3 = write_nvidia_pkl(G3, tmp_path / "sg3.pkl", stylegan3=True)
    with pytest.raises(CheckpointError, match="StyleGAN3 generator") as exc:
        load_nvidia_pkl(sg3)
    one_line(exc)
    info = inspect_checkpoint(sg3)
    assert info["loadable"] is False and info["arch"] == "stylegan3" and "StyleGAN3" in info["problem"]

    # class-conditional pickles load now (tests/test_conditional.py); one whose c_dim has no embedding is refused
    cond = write_nvidia_pkl(G3, tmp_path / "cond.pkl")
    obj, _ = read_nvidia_pkl(cond)
    obj["G_ema"].state["_init_kwargs"]["c_dim"] = 10
    with pytest.raises(CheckpointError, match=r"records c_dim=10 but has no class embedding") as exc:
        stylegan2_from_record(obj["G_ema"], "cond.pkl")
    one_line(exc)


# ----------------------------------------------------------------------------------
# corrupt files
# ----------------------------------------------------------------------------------
def _random_bytes(n: int = 4096) -> bytes:
    data = np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert data[:1] not in (b"\x80", b"P")
    return data


@pytest.mark.parametrize("case", ["truncated-pt", "truncated-legacy-pt", "truncated-pkl", "random-pt", "random-pkl",
                                  "empty-pt", "empty-pkl"])
def test_corrupt_files_give_one_clear_error(tmp_path: Path, G3: StyleGAN2Generator, case: str) -> None:
    good_pt = save_rosinality(G3, tmp_path / "good.pt").read_bytes()
    legacy = io.BytesIO()
    torch.save({"g_ema": G3.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    good_pkl = write_nvidia_pkl(G3, tmp_path / "good.pkl").read_bytes()
    data, suffix = {
        "truncated-pt": (good_pt[: len(good_pt) // 2], ".pt"),
        "truncated-legacy-pt": (legacy.getvalue()[: len(legacy.getvalue()) // 2], ".pt"),
        "truncated-pkl": (good_pkl[: len(good_pkl) // 2], ".pkl"),
        "random-pt": (_random_bytes(), ".pt"),
        "random-pkl": (_random_bytes(), ".pkl"),
        "empty-pt": (b"", ".pt"),
        "empty-pkl": (b"", ".pkl"),
    }[case]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    direct = load_rosinality if suffix == ".pt" else load_nvidia_pkl
    for fn in (lambda: load_generator(str(path)), lambda: direct(path), lambda: inspect_checkpoint(path)):
        with pytest.raises(CheckpointError) as exc:
            fn()
        msg = one_line(exc)
        assert str(path) in msg
        if case.startswith("truncated"):
            assert "truncated or corrupt" in msg, msg
        elif case.startswith("empty"):
            assert "empty (0 bytes)" in msg, msg
        else:
            assert any(s in msg for s in ("truncated or corrupt", "not a checkpoint ganinv recognises",
                                          "corrupt or in another format")), msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_rosinality(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_nvidia_pkl(tmp_path / "nope.pkl")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        inspect_checkpoint(tmp_path / "nope.pkl")


# ----------------------------------------------------------------------------------
# malicious files: refused, and nothing runs
# ----------------------------------------------------------------------------------
class _Payload:
    """Pickles as a call that would create ``marker``; ``kind`` picks the mechanism."""

    def __init__(self, kind: str, marker: Path) -> None:
        self.kind, self.marker = kind, str(marker)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        code = f"open({self.marker!r}, 'w').close()"
        if self.kind == "os.system":
            return os.system, (f"touch '{self.marker}'",)
        if self.kind == "eval":
            return builtins.eval, (code,)
        if self.kind == "exec":
            return builtins.exec, (code,)
        if self.kind == "popen":
            return subprocess.Popen, (["touch", self.marker],)
        raise AssertionError(self.kind)


PAYLOAD_GLOBALS = {"os.system": "posix.system" if os.name == "posix" else "nt.system", "eval": "builtins.eval",
                   "exec": "builtins.exec", "popen": "subprocess.Popen"}


class _EvilStorage:
    """A 'tensor storage' whose bytes are a torch.save of a payload (reaches our _load_from_bytes)."""

    def __init__(self, payload: _Payload) -> None:
        buf = io.BytesIO()
        torch.save(payload, buf, _use_new_zipfile_serialization=False)
        self.data = buf.getvalue()

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return torch.storage._load_from_bytes, (self.data,)


@pytest.mark.parametrize("payload", list(PAYLOAD_GLOBALS))
def test_payloads_are_live_when_unpickled_unsafely(tmp_path: Path, payload: str) -> None:
    """Positive control: the payloads used below really create the marker under plain pickle.loads."""
    marker = tmp_path / "PWNED"
    result = pickle.loads(pickle.dumps(_Payload(payload, marker)))
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=10)
    assert marker.exists()


@pytest.mark.parametrize("container", ["pkl-top", "pkl-nested", "pkl-nvidia-state", "pkl-storage-bytes", "torch-zip",
                                       "torch-legacy"])
@pytest.mark.parametrize("payload", list(PAYLOAD_GLOBALS))
def test_malicious_files_are_refused_without_side_effects(tmp_path: Path, G3: StyleGAN2Generator, payload: str,
                                                          container: str) -> None:
    marker = tmp_path / "PWNED"
    evil = _Payload(payload, marker)
    path = tmp_path / ("model.pt" if container.startswith("torch") else "model.pkl")
    if container == "pkl-top":
        path.write_bytes(pickle.dumps(evil))
    elif container == "pkl-nested":
        path.write_bytes(pickle.dumps({"G_ema": {"layers": [1, {"x": evil}]}, "training_set_kwargs": {}}))
    elif container == "pkl-nvidia-state":
        write_nvidia_pkl(G3, path, extra_generator_state={"evil": evil})
    elif container == "pkl-storage-bytes":
        path.write_bytes(pickle.dumps({"G_ema": _EvilStorage(evil)}))
    elif container == "torch-zip":
        torch.save({"g_ema": {"input.input": evil}, "latent_avg": torch.zeros(16)}, path)
    else:
        torch.save({"g_ema": {"input.input": evil}}, path, _use_new_zipfile_serialization=False)
    direct = load_rosinality if container.startswith("torch") else load_nvidia_pkl
    for fn in (lambda: load_generator(str(path)), lambda: direct(path), lambda: inspect_checkpoint(path)):
        with pytest.raises(CheckpointError) as exc:
            fn()
        msg = str(exc.value)
        assert f"refusing to load {path}" in msg and PAYLOAD_GLOBALS[payload] in msg, msg
        assert "which would run code" in msg, msg
    time.sleep(0.05)  # a spawned process would have had time to create the marker
    assert not marker.exists()


@pytest.mark.parametrize("target", [("functools", "partial"), ("importlib", "import_module"),
                                    ("torch", "load"), ("numpy", "load"), ("builtins", "getattr")])
def test_other_globals_are_refused_by_name(tmp_path: Path, target: tuple[str, str]) -> None:
    module, name = target
    path = tmp_path / "x.pkl"
    # protocol-0 GLOBAL opcode, then a call that is never reached
    path.write_bytes(f"c{module}\n{name}\n(tR.".encode())
    path.write_bytes(b"\x80\x02" + path.read_bytes())
    with pytest.raises(CheckpointError, match=f"refusing to load .*{module}.{name}"):
        load_nvidia_pkl(path)


# ----------------------------------------------------------------------------------
# inspection
# ----------------------------------------------------------------------------------
def test_inspect_each_format(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    n_params = G3.num_parameters()
    folder = save_pretrained(G3, tmp_path / "tiny", name="tiny", kind="generator")
    pt = save_rosinality(G3, tmp_path / "g.pt")
    pkl = write_nvidia_pkl(G3, tmp_path / "g.pkl")
    train = tmp_path / "train.pt"
    torch.save({"g": G3.state_dict(), "d": {}, "g_ema": G3.state_dict(), "g_optim": {}, "d_optim": {},
                "args": argparse.Namespace(size=16), "ada_aug_p": 0.0}, train)
    expected = {"arch": "stylegan2", "resolution": 16, "z_dim": 16, "w_dim": 16, "n_mlp": 2, "img_channels": 3,
                "num_parameters": n_params, "channels": {"4": 16, "8": 16, "16": 8}, "loadable": True}
    cases = {folder: ("ganinv model folder", True), folder / "model.safetensors": ("safetensors", True),
             pt: ("rosinality generator", True), train: ("rosinality training checkpoint", False),
             pkl: ("NVIDIA network pickle", True)}
    for path, (fmt, has_avg) in cases.items():
        info = inspect_checkpoint(path)
        json.dumps(info)
        assert info["format"] == fmt
        assert {k: info[k] for k in expected} == expected, path
        assert info["latent_avg"] is has_avg
        assert info["num_keys"] == (len(G3.state_dict()) if fmt != "NVIDIA network pickle" else info["num_keys"])
        assert sum(info["keys_summary"].values()) == info["num_keys"]
    assert inspect_checkpoint(pt)["keys_summary"]["style"] == 4
    assert any("estimated" in n for n in inspect_checkpoint(train)["notes"])
    info = inspect_checkpoint(pkl)
    assert "torch_utils.persistence._reconstruct_persistent_obj" in info["pickle_globals"]
    assert not any(g.startswith(("os.", "posix.", "builtins.eval")) for g in info["pickle_globals"])
    assert info["networks"]["G_ema"] == "training.networks.Generator"
    assert info["keys_summary"]["synthesis.b4"] > 0 and info["training_set_kwargs"]["resolution"] == 16

    dcgan = tmp_path / "dcgan.pt"
    torch.save(DCGANGenerator(resolution=16, z_dim=8, width=8).state_dict(), dcgan)
    info = inspect_checkpoint(dcgan)
    assert info["loadable"] is False and "DCGAN" in info["problem"]
    assert info["keys_summary"] == {"net": info["num_keys"]}


# ----------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------
def test_load_generator_dispatches_on_content(tmp_path: Path, G3: StyleGAN2Generator) -> None:
    folder = save_pretrained(G3, tmp_path / "tiny", name="tiny", kind="generator")
    pt = save_rosinality(G3, tmp_path / "g.pt")
    pkl = write_nvidia_pkl(G3, tmp_path / "g.pkl")
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(pkl.read_bytes())
    for spec in (folder, folder / "model.safetensors", pt, pkl, renamed):
        loaded, notices = load_generator(str(spec))
        assert isinstance(loaded, StyleGAN2Generator) and notices == []
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
        assert_same_generator(G3, loaded)


def test_load_generator_names_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         G3: StyleGAN2Generator) -> None:
    zoo_dir = tmp_path / "zoo"
    save_pretrained(G3, zoo_dir / "tiny-sg2", name="tiny-sg2", kind="generator")
    save_pretrained(DCGANGenerator(resolution=16, z_dim=8, width=8), zoo_dir / "tiny-dcgan", name="tiny-dcgan",
                    kind="generator")
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_dir)
    loaded, notices = load_generator("tiny-sg2")
    assert_same_generator(G3, loaded) and notices == []
    dcgan, _ = load_generator("tiny-dcgan")
    assert isinstance(dcgan, DCGANGenerator) and not dcgan.training

    with pytest.raises(UnknownModelError, match="no bundled model or file named 'nope'.*tiny-dcgan, tiny-sg2"):
        load_generator("nope")

    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        load_generator(str(empty_folder))

    disc = save_pretrained(DCGANDiscriminator(resolution=16, width=8), tmp_path / "disc", name="d", kind="disc")
    with pytest.raises(CheckpointError, match="not a generator"):
        load_generator(str(disc))

    lone = tmp_path / "lone" / "weights.safetensors"
    lone.parent.mkdir()
    lone.write_bytes((tmp_path / "zoo" / "tiny-sg2" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="without a config.json beside it"):
        load_generator(str(lone))


@pytest.mark.parametrize("target", [b"dnnlib.util\nEasyDict", b"torch_utils.persistence\n_reconstruct_persistent_obj",
                                    b"torch._utils\n_rebuild_tensor_v2", b"numpy\nndarray"])
@pytest.mark.parametrize("state_kind", ["dict", "slots"])
def test_pickle_cannot_modify_loader_objects(tmp_path: Path, G3: StyleGAN2Generator, target: bytes,
                                             state_kind: str) -> None:
    """A BUILD opcode applied to an allowed global must not alter it (no process-wide tampering)."""
    from ganinv.generators import checkpoints as ck

    before = {k: getattr(v, "__dict__", None) and dict(vars(v)) for k, v in ck._ALLOWED_GLOBALS.items()}
    state = b"}X\x0b\x00\x00\x00__setitem__Ns"  # {'__setitem__': None}
    if state_kind == "slots":
        state = b"N" + state + b"\x86"  # (None, {'__setitem__': None})
    path = tmp_path / "tamper.pkl"
    path.write_bytes(b"\x80\x02c" + target + b"\n" + state + b"b.")
    with pytest.raises(CheckpointError):
        load_nvidia_pkl(path)
    after = {k: getattr(v, "__dict__", None) and dict(vars(v)) for k, v in ck._ALLOWED_GLOBALS.items()}
    assert before == after
    assert ck._EasyDict.__setitem__ is dict.__setitem__
    assert_same_generator(G3, load_nvidia_pkl(write_nvidia_pkl(G3, tmp_path / "ok.pkl")))


def test_tanh_output_activation_survives_rosinality_round_trip(tmp_path):
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=8, n_mlp=1, img_channels=1,
                           output_activation="tanh").eval()
    G.estimate_w_avg(100)
    path = save_rosinality(G, tmp_path / "tanh.pt")
    G2 = load_rosinality(path, notices=[])
    assert G2.output_activation == "tanh"
    w = G.sample_latent(2, "w", seed=0)
    assert torch.equal(G.synthesize(w, "w"), G2.synthesize(w, "w"))
