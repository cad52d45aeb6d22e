"""Outputs written through a temporary name get the mode an ordinary write would give them (umask honoured)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ganinv.dataset.store import atomic_write_bytes
from ganinv.filemode import current_umask, ordinary_mode
from ganinv.modelfile import atomic_write


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_follow_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    assert current_umask() == mask
    atomic_write(tmp_path / "a.bin", lambda tmp: Path(tmp).write_bytes(b"x"))
    atomic_write_bytes(tmp_path / "b.bin", b"y")
    plain = tmp_path / "c.bin"
    plain.write_bytes(b"z")
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "b.bin") == mode(plain) == 0o666 & ~mask


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "kept.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert path.read_bytes() == b"new" and mode(path) == 0o640
    assert ordinary_mode(tmp_path / "missing") == 0o644


def test_cli_outputs_are_readable_by_others(tmp_path: Path, umask) -> None:
    from typer.testing import CliRunner

    from ganinv.cli.app import app

    umask(0o022)
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(app, ["sample", "-n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o644


def test_help_does_not_import_torch() -> None:
    """``ganinv --help`` (and a command's --help) parse and print without importing torch or the other heavy
    packages; they are imported where a command runs."""
    code = ("import sys\nfrom ganinv.cli.app import app\n"
            "for args in (['--help'], ['invert', '--help'], ['restore', '--help'], ['serve', '--help'], ['convert', '--help'], ['weights', '--help']):\n"
            "    try:\n        app(args, prog_name='ganinv')\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'deepinv', 'gradio', 'ray', 'lpips', 'PIL') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout[-500:]
