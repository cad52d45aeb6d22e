"""Dataset inversion on Ray: a local 2-CPU Ray with 2 actors gives the local backend's latents, bit for bit,
and resumes a folder that the local backend started."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganinv.dataset import DatasetJob, load_latents, read_manifest, run_dataset
from ganinv.generators.checkpoints import load_generator
from ganinv.io import save_image
from ganinv.modelfile import save_pretrained

from conftest import make_tiny_stylegan2

pytest.importorskip("ray.data")

SRC = Path(__file__).resolve().parents[1] / "src"


def test_ray_actors_match_local_and_resume_a_local_run(tmp_path, monkeypatch):
    # Ray's workers are new processes: make sure they import this checkout's ganinv
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    G = make_tiny_stylegan2()
    folder = save_pretrained(G, tmp_path / "model", name="tiny", kind="generator")
    for i in range(7):
        save_image(G.sample(1, seed=40 + i)[0].clamp(0, 1), tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "imgs" / "broken.png").write_text("not a png")
    job = DatasetJob(options={"steps": 6}, seed=5, save_images=True)
    factory = functools.partial(load_generator, str(folder))  # each actor loads the generator itself

    local = run_dataset([tmp_path / "imgs"], tmp_path / "local", G, job, batch_size=3)
    assert (local.done, local.failed) == (7, 1)

    # the Ray run resumes a folder where the local backend did the first three images
    mixed = tmp_path / "mixed"
    run_dataset([f"{tmp_path}/imgs/[0-2].png"], mixed, G, job, batch_size=2)
    stats = run_dataset([tmp_path / "imgs"], mixed, factory, job, backend="ray", workers=2, batch_size=2)
    assert (stats.found, stats.skipped, stats.done, stats.failed) == (8, 3, 4, 1)

    table = read_manifest(mixed)
    keys = table.column("key").to_pylist()
    assert sorted(keys) == sorted(read_manifest(tmp_path / "local").column("key").to_pylist())
    assert len(keys) == len(set(keys)) == 8
    for shard in (mixed / "shards").glob("shard-*.safetensors"):
        load_file(shard)
    expected, got = load_latents(tmp_path / "local"), load_latents(mixed)
    assert expected.keys() == got.keys() and len(expected) == 7
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    rows = {r["key"]: r for r in table.to_pylist()}
    assert rows["imgs/broken.png"]["status"] == "error" and "not an image" in rows["imgs/broken.png"]["error"]
    assert all((mixed / r["image"]).is_file() for r in rows.values() if r["status"] == "ok")
    import ray

    assert not ray.is_initialized()  # shut down after the run
