"""Malicious and oversized files: pickles that would run code, read files or import modules on a naive load
(``tests/hardening_payloads.PAYLOADS``: GLOBAL / STACK_GLOBAL / INST / OBJ / REDUCE, protocols 0–5, nested in
dicts, in NVIDIA persistent records and tensor storages, inside zip and legacy ``torch.save`` files) are
refused by name and nothing runs; decompression bombs and arrays with absurd declared sizes are refused
before anything big is allocated. Extends tests/test_checkpoints.py (which covers four payloads in six
containers and the tampering of allowed globals)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
import torch

from ganinv.errors import CheckpointError, InputError
from ganinv.generators.checkpoints import inspect_checkpoint, load_generator, load_nvidia_pkl, load_rosinality
from hardening_payloads import MARKER_ENV, OVERSIZED, PAYLOADS, payloads_live

BY_NAME = {p.name: p for p in PAYLOADS}


def test_the_payloads_are_live_under_a_naive_load(tmp_path: Path) -> None:
    """Positive control: each payload really has its effect under ``pickle`` / ``torch.load(weights_only=False)``
    (in a subprocess), so the refusals below are tested against working exploits."""
    live = payloads_live(PAYLOADS, tmp_path)
    assert [name for name, ok in live.items() if not ok] == []


def _loaders(payload, path: Path):
    direct = load_rosinality if payload.container == "torch" else load_nvidia_pkl
    yield "load_generator", lambda: load_generator(str(path))
    yield direct.__name__, lambda: direct(path)
    yield "inspect_checkpoint", lambda: inspect_checkpoint(path)
    if payload.container == "torch":  # --generator file.py:Class --weights evil.pt
        from ganinv.generators.wrap import load_weights

        yield "wrap.load_weights", lambda: load_weights(torch.nn.Linear(2, 2), path)


@pytest.mark.parametrize("name", list(BY_NAME))
def test_malicious_pickles_are_refused_by_name_and_nothing_runs(tmp_path: Path, name: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    payload = BY_NAME[name]
    monkeypatch.delenv(MARKER_ENV, raising=False)
    marker = tmp_path / "PWNED"
    path = tmp_path / ("evil.pt" if payload.container == "torch" else "evil.pkl")
    path.write_bytes(payload.build(marker))
    modules_before = set(__import__("sys").modules)
    for loader, fn in _loaders(payload, path):
        with pytest.raises(CheckpointError) as exc:
            fn()
        msg = str(exc.value)
        assert str(path) in msg, (loader, msg)
        if loader == "wrap.load_weights":
            assert payload.refused in msg and "refuses to run code" in msg, msg
        else:
            assert payload.refused in msg, (loader, msg)
            assert "refusing to load" in msg or "persistent ids" in msg, (loader, msg)
    time.sleep(0.05)  # a spawned shell would have had time to create the marker
    assert not marker.exists()
    assert MARKER_ENV not in os.environ
    assert "this" not in set(__import__("sys").modules) - modules_before  # importlib payload imported nothing


def test_cli_refuses_a_malicious_pickle_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ganinv.cli.app import app

    marker = tmp_path / "PWNED"
    for payload in (BY_NAME["INST builtins.exec, protocol 0"], BY_NAME["NVIDIA persistent record holding os.system"]):
        path = tmp_path / "evil.pkl"
        path.write_bytes(payload.build(marker))
        for args in (["info", str(path)], ["sample", "--model", str(path), "--out", str(tmp_path / "g.png")]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 1, result.output
            assert payload.refused in result.output and "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "g.png").exists()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", list(OVERSIZED))
def test_oversized_files_are_refused_before_allocating(tmp_path: Path, name: str, tiny_sg2) -> None:
    from ganinv.cli.restore import read_observation_file
    from ganinv.editing.codes import read_latent_file
    from ganinv.io import load_latent_npz, load_npy, load_target
    from ganinv.physics import make_task

    kind, build = OVERSIZED[name]
    data = build()
    assert len(data) < 4 * 2**20  # small on disk ...
    path = tmp_path / {"image": "bomb.png", "npy": "big.npy", "npz": "big.npz", "pickle": "big.pkl"}[kind]
    if name.startswith(("GIF", "TIFF")):
        path = path.with_suffix(".gif" if name.startswith("GIF") else ".tif")
    path.write_bytes(data)
    before = _rss_mb()
    calls = {
        "image": [lambda: load_target(path, 1, 16),
                  lambda: make_task("inpaint", (1, 16, 16), mask=str(path))],
        "npy": [lambda: load_npy(path), lambda: read_latent_file(path, tiny_sg2), lambda: read_observation_file(path),
                lambda: make_task("deblur", (1, 16, 16), kernel=str(path))],
        "npz": [lambda: load_latent_npz(path), lambda: read_latent_file(path, tiny_sg2),
                lambda: read_observation_file(path)],
        "pickle": [lambda: load_generator(str(path)), lambda: load_nvidia_pkl(path), lambda: inspect_checkpoint(path)],
    }[kind]
    for call in calls:
        with pytest.raises(CheckpointError if kind == "pickle" else InputError) as exc:
            call()
        msg = str(exc.value)
        assert any(w in msg for w in ("too large", "declares", "truncated", "more than", "memo slot")), msg
    assert _rss_mb() - before < 200  # ... and never inflated in memory


def test_headerless_pickles_are_recognised_and_safetensors_are_not_mistaken(tmp_path: Path) -> None:
    """Protocol 0/1 pickles have no header; ``sniff_format`` recognises them so that the refusal names the global
    (it said "not a checkpoint ganinv recognises" before), without taking a safetensors file whose 8-byte header
    length happens to start with ``(t`` for one."""
    import json
    import struct

    from ganinv.generators.checkpoints import sniff_format

    for name in ("posix.system, protocol 0", "OBJ builtins.exec, protocol 1", "INST builtins.exec, protocol 0"):
        path = tmp_path / "p.bin"
        path.write_bytes(BY_NAME[name].build(tmp_path / "PWNED"))
        assert sniff_format(path) == "pickle", name
    header = json.dumps({"__metadata__": {"x": "y" * (0x7428 - 40)}}).encode()
    header += b" " * (0x7428 - len(header))
    st = tmp_path / "w.safetensors"
    st.write_bytes(struct.pack("<Q", len(header)) + header)
    assert st.read_bytes()[:2] == b"(t" and sniff_format(st) == "safetensors"
