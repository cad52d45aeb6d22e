"""What the CLI shows: tables that stay readable at 80 columns without a terminal, labelled figure columns."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from ganinv.cli.app import app
from ganinv.cli.common import print_table
from ganinv.io import save_labeled_grid


def _table() -> Table:
    table = Table(title="bundled models")
    for col in ("name", "kind", "arch", "resolution", "latent spaces", "parameters", "size", "quality"):
        table.add_column(col)
    table.add_row("mnist-stylegan2", "generator", "stylegan2", "32×32×1", "z 128 · w 128 · w+ 8×128 · noise ×7",
                  "1.42 M", "8.0 MB", "conf 0.95, FD 4.6× floor")
    table.add_row("mnist-dcgan", "[green]generator[/]", "dcgan", "32×32×1", "z 64", "0.92 M", "6.0 MB", "")
    return table


def _render(table: Table, width: int) -> str:
    buf = io.StringIO()
    print_table(table, Console(file=buf, width=width, force_terminal=False, color_system=None))
    return buf.getvalue()


def test_a_wide_table_becomes_records_at_80_columns() -> None:
    text = _render(_table(), 80)
    assert "…" not in text
    joined = " ".join(text.split())  # records wrap at the width: compare without the line breaks
    assert "• mnist-stylegan2 kind: generator" in joined and "latent spaces: z 128 · w 128 · w+ 8×128 · noise ×7" \
        in joined and "quality: conf 0.95, FD 4.6× floor" in joined
    assert "• mnist-dcgan kind: generator" in joined and "quality:" not in joined.split("• mnist-dcgan")[1]
    assert all(len(line) <= 80 for line in text.splitlines())


def test_a_table_that_fits_stays_a_table() -> None:
    text = _render(_table(), 200)
    assert "┃ name" in text and "• " not in text and "…" not in text


def test_models_piped_at_80_columns_cuts_no_word() -> None:
    env = {**os.environ, "COLUMNS": "80", "LINES": "25"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run([sys.executable, "-m", "ganinv", "models"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "…" not in result.stdout and "mnist-stylegan2-encoder" in result.stdout
    assert "latent spaces: z 128 · w 128 · w+ 8×128 · noise ×7" in " ".join(result.stdout.split())


def test_labeled_grid_has_a_header_strip_with_ink_over_each_column(tmp_path: Path) -> None:
    images = torch.rand(2 * 3, 3, 16, 16)
    path = save_labeled_grid(images, ["input", "observation", "a label far too long for a tile"],
                             tmp_path / "g.png", scale=4)
    img = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    grid_h = 2 * (16 + 2) * 4 + 2 * 4
    header = img[: img.shape[0] - grid_h]
    assert img.shape[1] == 3 * (16 + 2) * 4 + 2 * 4 and header.shape[0] > 8
    pitch = 18 * 4
    for j in range(3):
        column = header[:, 8 + j * pitch: 8 + j * pitch + 64]
        assert (column < 128).any(), f"no text above column {j}"


def test_restore_grid_names_its_columns(tmp_path: Path) -> None:
    out = tmp_path / "out"
    digit = Path(__file__).resolve().parents[1] / "examples" / "digit_3.png"
    r = CliRunner().invoke(app, ["restore", str(digit), "--task", "inpaint", "--model", "mnist-dcgan",
                                 "--simulate", "--steps", "4", "--hypotheses", "2", "--out", str(out),
                                 "--threads", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grid_columns"][0] == "clean" and summary["grid_columns"][-2:] == ["hypothesis 0", "hypothesis 1"]
    img = Image.open(out / "grid.png")
    tiles = len(summary["grid_columns"])
    assert img.width == tiles * (32 + 2) * 4 + 2 * 4 and img.height > (32 + 2) * 4 + 2 * 4
