"""Dataset inversion, local backend: sources, keys and seeds, batch independence, bad files, settings checks,
crash safety (a SIGKILLed subprocess, then a resume) and the ``invert-dataset`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import ganinv
from ganinv.cli.app import app
from ganinv.dataset import BatchProcessor, DatasetJob, DatasetStore, image_seed, iter_items, load_latents, \
    read_manifest, run_dataset
from ganinv.dataset.sources import Item
from ganinv.errors import InputError
from ganinv.io import load_target, save_image
from ganinv.modelfile import save_pretrained

from conftest import make_tiny_stylegan2

SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = 8
JOB = DatasetJob(options={"steps": STEPS})
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_stylegan2()


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny):
    """``root/model`` (the tiny StyleGAN2 as a model folder) and ``root/imgs`` with 8 digits-like PNGs in
    two sub-folders."""
    root = tmp_path_factory.mktemp("ds")
    save_pretrained(tiny, root / "model", name="tiny", kind="generator")
    x = tiny.sample(8, seed=11).clamp(0, 1)
    for i in range(8):
        save_image(x[i], root / "imgs" / ("a" if i < 4 else "b") / f"img{i}.png")
    return root


def shards_ok(out: Path) -> int:
    """Every shard loads with safetensors; returns how many there are."""
    shards = sorted((out / "shards").glob("shard-*.safetensors"))
    for s in shards:
        load_file(s)
    return len(shards)


def test_keys_and_seeds_are_stable(data, tmp_path):
    (tmp_path / "list.txt").write_text(f"# a comment\n{data}/imgs/a/img0.png\n\nimgs/b/img5.png\n")
    (tmp_path / "imgs").symlink_to(data / "imgs")
    items = list(iter_items([data / "imgs", tmp_path / "list.txt"], base_seed=3))
    keys = [it.key for it in items]
    assert keys == [f"imgs/a/img{i}.png" for i in range(4)] + [f"imgs/b/img{i}.png" for i in range(4, 8)]
    assert all(it.seed == image_seed(3, it.key) for it in items)  # the list named files already listed
    assert image_seed(3, "x.png") != image_seed(4, "x.png") and image_seed(3, "x.png") == image_seed(3, "x.png")
    # a glob's keys match the folder's; relative list entries are read from the list's folder
    globbed = list(iter_items([f"{data}/imgs/*/img[15].png"], 3))
    assert [it.key for it in globbed] == ["imgs/a/img1.png", "imgs/b/img5.png"]
    listed = list(iter_items([tmp_path / "list.txt"], 3))
    assert [it.key for it in listed] == [str(data / "imgs/a/img0.png"), "imgs/b/img5.png"]
    assert Path(listed[1].path).resolve() == (data / "imgs/b/img5.png").resolve()
    # a CSV with a path column, another without a header; a different file with a taken key gets ~2
    (tmp_path / "l.csv").write_text("label,path\n1,imgs/a/img1.png\n2,imgs/a/img2.png\n")
    (tmp_path / "n.csv").write_text("imgs/a/img3.png,7\n")
    other = tmp_path / "x" / "imgs" / "a"
    other.mkdir(parents=True)
    save_image(torch.zeros(1, 16, 16), other / "img1.png")
    got = [it.key for it in iter_items([tmp_path / "l.csv", tmp_path / "n.csv", tmp_path / "x" / "imgs"], 0)]
    assert got == ["imgs/a/img1.png", "imgs/a/img2.png", "imgs/a/img3.png", "imgs/a/img1.png~2"]


def test_batch_independence_of_the_default_method(data, tiny):
    """The latent of an image is the same whatever its batch-mates — equal, bit for bit, to inverting it
    alone with its own seed — although a batched engine call would not give that."""
    files = sorted((data / "imgs" / "a").glob("*.png"))
    items = [Item(str(f), f"k/{f.name}", image_seed(0, f"k/{f.name}")) for f in files]
    proc = BatchProcessor(tiny, JOB)
    together = load_bytes(proc(0, items).shard)
    apart = {}
    for i, chunk in enumerate([items[2:3], items[:2], items[3:]]):
        apart.update(load_bytes(proc(i + 1, chunk).shard))
    # latents only: the default optimiser (L-BFGS) renders with the generator's stored noise maps
    assert together.keys() == apart.keys() and len(together) == len(items)
    for key in together:
        assert torch.equal(together[key], apart[key]), key
    y, _ = load_target(files[1], 1, 16)
    alone = ganinv.invert(tiny, y[None], steps=STEPS, seed=items[1].seed)
    assert torch.equal(alone.latent[0], together[items[1].key])


def load_bytes(data: bytes | None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    assert data is not None
    return load(data)


def test_bad_files_are_recorded_and_the_run_goes_on(data, tiny, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = sorted((data / "imgs" / "a").glob("*.png"))[:2]
    for f in good:
        (src / f.name).write_bytes(f.read_bytes())
    (src / "text.png").write_text("not an image")
    (src / "empty.jpg").write_bytes(b"")
    (src / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    Image.fromarray(np.full((8, 8), np.nan, dtype=np.float32), mode="F").save(src / "nan.tif")
    stats = run_dataset([src], tmp_path / "out", tiny, JOB, batch_size=3)
    assert (stats.done, stats.failed, stats.manifest_failed) == (2, 4, 4)
    rows = {r["key"]: r for r in read_manifest(tmp_path / "out").to_pylist()}
    assert len(rows) == 6
    for name, why in (("text.png", "not an image file"), ("empty.jpg", ""), ("truncated.png", "truncated"),
                      ("nan.tif", "NaN")):
        row = rows[f"src/{name}"]
        assert row["status"] == "error" and why in row["error"] and row["shard"] is None, row
    for f in good:
        row = rows[f"src/{f.name}"]
        assert row["status"] == "ok" and row["error"] is None and row["psnr"] > 0 and row["steps"] == STEPS
        assert row["space"] == "w+" and row["method"] == "optimize" and row["seed"] == image_seed(0, row["key"])
    assert set(load_latents(tmp_path / "out")) == {f"src/{f.name}" for f in good}
    assert shards_ok(tmp_path / "out") == 1  # the batch of three bad files has no shard


def test_resume_skips_and_settings_mismatch_is_refused(data, tiny, tmp_path):
    out = tmp_path / "out"
    first = run_dataset([f"{data}/imgs/*/img[0-3].png"], out, tiny, JOB, batch_size=3, generator_name="tiny")
    assert (first.found, first.done, first.skipped) == (4, 4, 0)
    again = run_dataset([data / "imgs"], out, tiny, JOB, batch_size=2, generator_name="tiny")
    assert (again.found, again.skipped, again.done, again.manifest_rows) == (8, 4, 4, 8)
    table = read_manifest(out)
    assert sorted(table.column("key").to_pylist()) == [f"imgs/{'a' if i < 4 else 'b'}/img{i}.png" for i in range(8)]
    assert shards_ok(out) == 4
    with pytest.raises(InputError, match=r"other settings \(job.options.steps: 8 before, 9 now\)"):
        run_dataset([data / "imgs"], out, tiny, DatasetJob(options={"steps": 9}), generator_name="tiny")
    with pytest.raises(InputError, match="generator.fingerprint"):
        run_dataset([data / "imgs"], out, make_tiny_stylegan2(seed=1), JOB, generator_name="tiny")
    # execution settings (batch size, threads) may change between runs
    assert run_dataset([data / "imgs"], out, tiny, JOB, batch_size=5, threads=2, generator_name="tiny").done == 0


def test_leftovers_of_a_killed_run_are_cleaned(data, tiny, tmp_path):
    """Temporary files and a shard without its manifest part (a run killed between the two) are removed; the
    batch is redone; a second writer is refused while the folder is locked."""
    out = tmp_path / "out"
    run_dataset([data / "imgs" / "a"], out, tiny, JOB, batch_size=2)
    (out / "manifest" / "part-00001.parquet").unlink()  # batch 1: shard written, part not
    (out / "shards" / ".shard-00002.safetensors.abc.tmp").write_bytes(b"half")
    (out / "manifest" / ".part-00002.parquet.abc.tmp").write_bytes(b"half")
    with DatasetStore(out, _settings(out)) as store:
        assert store.part_ids() == [0]
        assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.safetensors"]
        assert not list((out / "manifest").glob(".*.tmp"))
        with pytest.raises(InputError, match="locked"):
            DatasetStore(out, _settings(out)).open()
    stats = run_dataset([data / "imgs" / "a"], out, tiny, JOB, batch_size=2)
    assert (stats.skipped, stats.done) == (2, 2)
    assert read_manifest(out).num_rows == 4 and shards_ok(out) == 2


def _settings(out: Path) -> dict:
    import json

    return json.loads((out / "run.json").read_text())["settings"]


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_latents(data, tiny, tmp_path):
    """Kill ``ganinv invert-dataset`` with SIGKILL as soon as its first batch is committed, rerun the same
    command: every image appears once, every shard loads, and the latents equal an uninterrupted run's."""
    src = tmp_path / "src"
    for i in range(10):
        save_image(tiny.sample(1, seed=100 + i)[0].clamp(0, 1), src / f"d{i:02d}.png")
    out = tmp_path / "out"
    args = [str(src), "--model", str(data / "model"), "--steps", "12", "--out", str(out), "--batch-size", "2",
            "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganinv", "invert-dataset", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "manifest" / "part-00000.parquet").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before committing a batch"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_parts = len(list((out / "manifest").glob("part-*.parquet")))
    assert 1 <= killed_parts < 5  # interrupted part-way
    shards_ok(out)
    result = runner.invoke(app, ["invert-dataset", *args])
    assert result.exit_code == 0, result.output
    assert f"{2 * killed_parts} of 10 images already done" in result.output
    table = read_manifest(out)
    keys = table.column("key").to_pylist()
    assert sorted(keys) == [f"src/d{i:02d}.png" for i in range(10)] and len(set(keys)) == 10
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert shards_ok(out) == 5
    resumed = load_latents(out)
    straight = tmp_path / "straight"
    run_dataset([src], straight, tiny, DatasetJob(options={"steps": 12}), batch_size=3)
    reference = load_latents(straight)
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key


def test_cli_lists_globs_summary_and_refusals(data, tmp_path):
    (tmp_path / "list.csv").write_text("path,label\nimgs/a/img0.png,0\nmissing.png,1\n")
    (tmp_path / "imgs").symlink_to(data / "imgs")
    out = tmp_path / "out"
    base = ["--model", str(data / "model"), "--steps", "4", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, ["invert-dataset", str(tmp_path / "list.csv"), f"{tmp_path}/imgs/*/img[45].png",
                                 *base, "--save-images", "--batch-size", "2"])
    assert result.exit_code == 1, result.output  # the missing file is a failed image
    assert "missing.png" in result.output and "1 image failed" in result.output
    for header in ("found", "skipped", "done", "failed", "images/s", "mean psnr"):
        assert header in result.output
    rows = {r["key"]: r for r in read_manifest(out).to_pylist()}
    assert sorted(rows) == ["imgs/a/img0.png", "imgs/b/img4.png", "imgs/b/img5.png", "missing.png"]
    assert (out / rows["imgs/b/img4.png"]["image"]).is_file() and rows["missing.png"]["status"] == "error"
    assert (out / "manifest.parquet").is_file() and (out / "run.json").is_file()
    result = runner.invoke(app, ["invert-dataset", str(tmp_path / "list.csv"), *base, "--steps", "5"])
    assert result.exit_code == 1 and "other settings" in result.output
    result = runner.invoke(app, ["invert-dataset", f"{tmp_path}/nope/*.png", *base])
    assert result.exit_code == 1 and "matches no files" in result.output
    result = runner.invoke(app, ["invert-dataset", str(tmp_path / "list.csv"), *base, "--workers", "2"])
    assert result.exit_code == 1 and "--backend ray" in result.output
    result = runner.invoke(app, ["invert-dataset", str(tmp_path / "list.csv"), *base, "--method", "hybrid",
                                 "--lr", "0.1"])
    assert result.exit_code == 1 and "L-BFGS (the hybrid's default) has none" in result.output
    result = runner.invoke(app, ["invert-dataset", str(tmp_path / "list.csv"), *base, "--optimizer", "adam",
                                 "--lbfgs-precondition", "0.5"])
    assert result.exit_code == 1 and "add --optimizer lbfgs" in result.output
    # the optimiser reaches the engine and the run's recorded settings
    lb = ["--model", str(data / "model"), "--steps", "3", "--out", str(tmp_path / "lb"), "--device", "cpu"]
    result = runner.invoke(app, ["invert-dataset", f"{tmp_path}/imgs/*/img[45].png", *lb, "--optimizer", "lbfgs"])
    assert result.exit_code == 0, result.output
    assert '"optimizer": "lbfgs"' in (tmp_path / "lb" / "run.json").read_text()
