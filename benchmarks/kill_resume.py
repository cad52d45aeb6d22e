"""Kill -9 in the middle of a dataset inversion, rerun, and compare with an uninterrupted run.

The check issue 8 is judged by, at full size: ``N`` digits (default 2,000: the 1,000 held-out digits of
``ganinv.data.mnist("test")`` and the first 1,000 training digits) are written as PNGs; ``ganinv
invert-dataset`` runs once uninterrupted, and once more into another folder where it is sent SIGKILL as soon
as a chosen fraction of the batches has been committed, then rerun with the same command. Then:

* every image appears exactly once in each manifest, all with status ``ok``;
* every shard of both folders loads with safetensors (none is corrupt) and no temporary file is left;
* the resumed run's latents equal the uninterrupted run's, bit for bit.

Writes ``benchmarks/results/kill_resume.json`` and ``docs/kill-resume.md``. Run:
``python benchmarks/kill_resume.py [--images 2000] [--model mnist-dcgan] [--method optimize --steps 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def write_digits(folder: Path, n: int) -> None:
    from ganinv.data import mnist
    from ganinv.io import save_image

    test, _ = mnist("test")
    train, _ = mnist("train")
    images = torch.cat([test, train])[:n]
    if images.shape[0] < n:
        raise SystemExit(f"only {images.shape[0]} digits available")
    for i, img in enumerate(images):
        save_image(img, folder / f"{i // 500:02d}" / f"{i:05d}.png")


def command(src: Path, out: Path, a: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "ganinv", "invert-dataset", str(src), "--model", a.model, "--out", str(out),
           "--method", a.method, "--batch-size", str(a.batch_size), "--device", "cpu"]
    if a.method != "encoder":
        cmd += ["--steps", str(a.steps)]
    return cmd


def parts(out: Path) -> int:
    folder = out / "manifest"
    return len(list(folder.glob("part-*.parquet"))) if folder.is_dir() else 0


def check(out: Path, n: int) -> dict[str, Any]:
    """Rows/keys of the final ``manifest.parquet``, shard integrity and leftovers of one output folder."""
    import pyarrow.parquet as pq
    from safetensors.torch import load_file

    rows = pq.read_table(out / "manifest.parquet").to_pylist()  # the compacted manifest a user reads
    keys = [r["key"] for r in rows]
    bad_shards = []
    shards = sorted((out / "shards").glob("*.safetensors"))
    for shard in shards:
        try:
            load_file(str(shard))
        except Exception as exc:  # noqa: BLE001 - any failure means a corrupt shard
            bad_shards.append(f"{shard.name}: {exc}")
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".tmp" in p.name]
    return {"rows": len(rows), "unique_keys": len(set(keys)), "ok": sum(r["status"] == "ok" for r in rows),
            "expected": n, "shards": len(shards), "corrupt_shards": bad_shards, "temporary_files": leftovers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="mnist-dcgan")
    ap.add_argument("--method", default="optimize")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--kill-at", type=float, default=0.45, help="fraction of the batches committed before SIGKILL")
    ap.add_argument("--results-dir", type=Path, default=None)
    a = ap.parse_args()
    from ganinv.dataset import load_latents

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="ganinv-kill-") as tmp:
        src, straight, killed = Path(tmp) / "digits", Path(tmp) / "straight", Path(tmp) / "killed"
        write_digits(src, a.images)
        batches = -(-a.images // a.batch_size)
        t0 = time.perf_counter()
        subprocess.run(command(src, straight, a), check=True, env=env, stdout=subprocess.DEVNULL)
        straight_s = time.perf_counter() - t0
        print(f"uninterrupted: {straight_s:.0f} s", flush=True)
        target = max(1, int(a.kill_at * batches))
        proc = subprocess.Popen(command(src, killed, a), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and parts(killed) < target:
            time.sleep(0.05)
        committed = parts(killed)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"killed with {committed} of {batches} batches committed", flush=True)
        t0 = time.perf_counter()
        rerun = subprocess.run(command(src, killed, a), env=env, capture_output=True, text=True)
        resume_s = time.perf_counter() - t0
        straight_check, killed_check = check(straight, a.images), check(killed, a.images)
        ref, got = load_latents(straight), load_latents(killed)
        equal = ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    once = all(c["rows"] == c["unique_keys"] == c["ok"] == a.images for c in (straight_check, killed_check))
    intact = not any(c["corrupt_shards"] or c["temporary_files"] for c in (straight_check, killed_check))
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
              "batches": batches, "killed_after_batches": committed, "rerun_exit_code": rerun.returncode,
              "uninterrupted_s": straight_s, "resume_s": resume_s, "uninterrupted": straight_check,
              "killed_then_resumed": killed_check, "every_image_once": once, "no_corrupt_or_temporary_files": intact,
              "latents_equal": equal, "passed": once and intact and equal and rerun.returncode == 0}
    out_json = (a.results_dir or ROOT / "benchmarks" / "results") / "kill_resume.json"
    out_md = (a.results_dir or ROOT / "docs") / "kill-resume.md"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    k = killed_check
    out_md.write_text(
        "# Kill -9 and resume, at full size\n\n"
        f"Generated by `python benchmarks/kill_resume.py --images {a.images} --model {a.model} --method {a.method}"
        f"{'' if a.method == 'encoder' else f' --steps {a.steps}'} --batch-size {a.batch_size}`.\n\n"
        f"`ganinv invert-dataset` over {a.images} digits ({batches} batches) ran once uninterrupted "
        f"({straight_s:.0f} s), and once more into another folder, where it was sent SIGKILL after "
        f"{committed} committed batches and then rerun with the same command (the rerun took {resume_s:.0f} s and "
        f"exited {rerun.returncode}).\n\n"
        "| check | uninterrupted | killed, then resumed |\n|---|---|---|\n"
        f"| manifest rows | {straight_check['rows']} | {k['rows']} |\n"
        f"| distinct image keys | {straight_check['unique_keys']} | {k['unique_keys']} |\n"
        f"| status ok | {straight_check['ok']} | {k['ok']} |\n"
        f"| shards (corrupt) | {straight_check['shards']} ({len(straight_check['corrupt_shards'])}) | "
        f"{k['shards']} ({len(k['corrupt_shards'])}) |\n"
        f"| temporary files left | {len(straight_check['temporary_files'])} | {len(k['temporary_files'])} |\n\n"
        f"Latents of the resumed run equal the uninterrupted run's, bit for bit: **{'yes' if equal else 'NO'}**. "
        f"Every image exactly once: **{'yes' if once else 'NO'}**.\n")
    print(json.dumps({k: result[k] for k in ("every_image_once", "no_corrupt_or_temporary_files", "latents_equal",
                                             "passed")}), flush=True)
    if not result["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
