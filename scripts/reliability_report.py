"""Run the reliability matrix and write ``docs/reliability.md`` + ``benchmarks/results/reliability.json``.

    PYTHONPATH=src python scripts/reliability_report.py                     # ~10 min on 2 cores
    PYTHONPATH=src python scripts/reliability_report.py --fuzz-seconds 5 --web-clients 4 --web-steps 10   # quick

Sections (the builders are the test suite's: tests/hardening_payloads.py, tests/fuzz_targets.py,
tests/fault_driver.py, tests/web_load.py):

1. fuzzing — every loader of strangers' files on mutated real files (random-mutation loop, seeded, under an
   address-space limit): outcomes, and findings (an exception that is not a GaninvError, a memory blow-up);
2. malicious pickles — each payload is first shown to work under a naive load (subprocess), then given to every
   loader: refused? global named? any side effect?
3. oversized files — decompression bombs, absurd declared sizes: refused? peak-memory growth;
4. numerics — NaN/Inf in every input kind (refused up front?) and a forced divergence (per-sample fallback);
5. faults — SIGKILL mid-training / between write and rename, failing and read-only disks, unwritable CLI output,
   SIGKILL mid ``invert-dataset``: the corresponding tests run under pytest, results per scenario;
6. load — N concurrent loopback clients of the web app: answers, FIFO order, PSNR, latency percentiles.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ------------------------------------------------------------------------------------------------------------
def fuzz_section(seconds: float, seed: int, work: Path) -> dict[str, Any]:
    from fuzz_targets import TARGETS, run_target
    from hardening_payloads import mutate, seed_files, tiny_stylegan2

    from ganinv.errors import GaninvError

    seeds, G = seed_files(work / "seeds"), tiny_stylegan2()
    rows = []
    for name in sorted(TARGETS):
        target = TARGETS[name]
        rng = random.Random(f"{seed}-{name}")
        base = target.seed_bytes(seeds)
        corpus = [base]
        outcomes: collections.Counter[str] = collections.Counter()
        findings: list[str] = []
        n, t0 = 0, time.monotonic()
        peak = _rss_mb()
        while time.monotonic() - t0 < seconds:
            data = mutate(rng.choice(corpus), rng) if rng.random() < 0.97 else rng.randbytes(rng.randint(0, 2048))
            path = target.prepare(seeds, data, work / f"fuzz-{name}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run_target(name, path, G)
                outcomes["loaded"] += 1
            except GaninvError as exc:
                outcomes[type(exc).__name__] += 1
                if "MemoryError" in str(exc):  # a declared length over the 6 GB limit; the RSS check below
                    outcomes["(of which MemoryError under the limit)"] += 1  # tells whether memory was touched
            except Exception as exc:  # noqa: BLE001 - a finding
                outcomes["other exception"] += 1
                findings.append(f"{type(exc).__name__}: {_short(exc)}")
            rss = _rss_mb()
            if rss - peak > 512:
                findings.append(f"peak memory +{rss - peak:.0f} MB on a {len(data):,}-byte input")
            peak = max(peak, rss)
            n += 1
            if len(corpus) < 64 and rng.random() < 0.05:
                corpus.append(data)
        loaders = ", ".join(f.__name__.strip("_") for f in target.loaders)
        rows.append({"target": name, "seed_file": target.seed, "loaders": loaders, "inputs": n,
                     "seconds": round(time.monotonic() - t0, 1), "outcomes": dict(outcomes),
                     "findings": findings[:5], "n_findings": len(findings)})
        print(f"  fuzz {name}: {n} inputs, {len(findings)} findings", flush=True)
    return {"seconds_per_target": seconds, "seed": seed, "engine": "random mutation (scripts/fuzz_loaders.py)",
            "targets": rows}


# ------------------------------------------------------------------------------------------------------------
def malicious_section(work: Path) -> dict[str, Any]:
    import torch

    from hardening_payloads import MARKER_ENV, PAYLOADS, payloads_live

    from ganinv.errors import CheckpointError
    from ganinv.generators.checkpoints import inspect_checkpoint, load_generator, load_nvidia_pkl, load_rosinality
    from ganinv.generators.wrap import load_weights

    live = payloads_live(PAYLOADS, work / "live")
    rows = []
    for i, p in enumerate(PAYLOADS):
        marker = work / f"PWNED-{i}"
        path = work / (f"evil-{i}.pt" if p.container == "torch" else f"evil-{i}.pkl")
        path.write_bytes(p.build(marker))
        loaders = {"load_generator": lambda: load_generator(str(path)),
                   "inspect_checkpoint": lambda: inspect_checkpoint(path)}
        if p.container == "torch":
            loaders["load_rosinality"] = lambda: load_rosinality(path)
            loaders["wrap.load_weights"] = lambda: load_weights(torch.nn.Linear(2, 2), path)
        else:
            loaders["load_nvidia_pkl"] = lambda: load_nvidia_pkl(path)
        results, message = {}, ""
        for name, fn in loaders.items():
            try:
                fn()
                results[name] = "LOADED"
            except CheckpointError as exc:
                results[name] = "refused, named" if p.refused in str(exc) else "refused"
                message = message or str(exc).replace(str(path), "<file>")
            except Exception as exc:  # noqa: BLE001
                results[name] = f"{type(exc).__name__}"
        time.sleep(0.05)
        rows.append({"payload": p.name, "opcodes": p.opcodes, "effect_if_loaded_naively": p.effect,
                     "live_under_naive_load": live[p.name], "refused_global": p.refused, "loaders": results,
                     "all_refused_and_named": all(v == "refused, named" for v in results.values()),
                     "side_effect": marker.exists() or MARKER_ENV in os.environ, "message": _short(message, 160)})
    return {"payloads": rows}


def oversized_section(work: Path) -> dict[str, Any]:
    from hardening_payloads import OVERSIZED

    from ganinv.cli.restore import read_observation_file
    from ganinv.errors import GaninvError
    from ganinv.generators.checkpoints import load_generator
    from ganinv.io import load_latent_npz, load_npy, load_target
    from ganinv.physics import make_task

    rows = []
    for name, (kind, build) in OVERSIZED.items():
        data = build()
        suffix = {"image": ".gif" if name.startswith("GIF") else ".tif" if name.startswith("TIFF") else ".png",
                  "npy": ".npy", "npz": ".npz", "pickle": ".pkl"}[kind]
        path = work / f"big{suffix}"
        path.write_bytes(data)
        calls = {"image": [("load_target", lambda: load_target(path, 1, 32)),
                           ("inpaint mask", lambda: make_task("inpaint", (1, 32, 32), mask=str(path)))],
                 "npy": [("load_npy", lambda: load_npy(path)), ("observation", lambda: read_observation_file(path))],
                 "npz": [("load_latent_npz", lambda: load_latent_npz(path)),
                         ("observation", lambda: read_observation_file(path))],
                 "pickle": [("load_generator", lambda: load_generator(str(path)))]}[kind]
        before = _rss_mb()
        results, message = {}, ""
        t0 = time.perf_counter()
        for label, fn in calls:
            try:
                fn()
                results[label] = "ACCEPTED"
            except GaninvError as exc:
                results[label] = type(exc).__name__
                message = message or str(exc).replace(str(path), "<file>")
            except Exception as exc:  # noqa: BLE001
                results[label] = f"LEAK {type(exc).__name__}"
        rows.append({"file": name, "bytes_on_disk": len(data), "results": results,
                     "refused": all(v in ("InputError", "CheckpointError") for v in results.values()),
                     "peak_memory_growth_mb": round(max(0.0, _rss_mb() - before), 1),
                     "seconds": round(time.perf_counter() - t0, 3), "message": _short(message, 150)})
    return {"files": rows}


# ------------------------------------------------------------------------------------------------------------
def numerics_section() -> dict[str, Any]:
    import torch
    from test_numerics import CASES, _Poison  # the test suite's matrix

    from conftest import make_tiny_stylegan2
    from ganinv.errors import GaninvError, InputError
    from ganinv.inverters.optimize import OptimizeSettings, optimize

    G = make_tiny_stylegan2()
    x = G.sample(3, seed=0).clamp(0, 1)
    rows = []
    for case in sorted(CASES):
        out = {}
        for label, value in (("NaN", float("nan")), ("Inf", float("inf"))):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    CASES[case](G, x, value)
                out[label] = ("ACCEPTED", "")
            except InputError as exc:
                out[label] = ("InputError", str(exc))
            except GaninvError as exc:
                out[label] = (type(exc).__name__, str(exc))
            except Exception as exc:  # noqa: BLE001
                out[label] = (f"LEAK {type(exc).__name__}", str(exc))
        rows.append({"input": case, "nan": out["NaN"][0], "inf": out["Inf"][0], "message": _short(out["NaN"][1], 120)})
    div = []
    for optimizer in ("adam", "lbfgs"):
        s = OptimizeSettings(steps=30, init="mean", optimizer=optimizer)
        clean = optimize(G, x, settings=s)
        bad = optimize(G, x, settings=s, extra_terms={"poison": _Poison(at_call=12)})
        div.append({"optimizer": optimizer, "diverged": bad.metrics["diverged"].tolist(),
                    "others_unchanged": bool(torch.equal(bad.latent[1:], clean.latent[1:])),
                    "fallback_finite": bool(torch.isfinite(bad.latent).all()),
                    "psnr_diverged_vs_clean": [round(float(bad.metrics["psnr"][0]), 2),
                                               round(float(clean.metrics["psnr"][0]), 2)],
                    "steps_diverged_vs_clean": [int(bad.metrics["steps"][0]), int(clean.metrics["steps"][0])],
                    "note": bad.notes[0] if bad.notes else ""})
    div += _multicode_pti_divergence(G, x)
    return {"inputs": rows, "divergence": div}


def _multicode_pti_divergence(G: Any, x: Any) -> list[dict[str, Any]]:
    """The same forced divergence for multi-code inversion and PTI's tuning: their loss returns NaN for sample 0
    at its 6th differentiable evaluation (the test suite's ``poisoned_loss``)."""
    import torch
    from test_numerics import poisoned_loss

    from ganinv import invert
    from ganinv.inverters.optimize import OptimizeSettings, optimize
    from ganinv.inverters.pti import PTISettings, invert_pti

    pivot = optimize(G, x, settings=OptimizeSettings(space="w", steps=10, init="mean"))
    pti = PTISettings(steps=12, stop_psnr=None, rank=2)
    runs = {"multicode (Adam)": lambda: invert(G, x, method="multicode", steps=10, codes=2),
            "PTI tuning (Adam)": lambda: invert_pti(G, x, pti, pivot=pivot)}
    out = []
    for label, run in runs.items():
        clean = run()
        with poisoned_loss(6):
            bad = run()
        a, b = bad.metrics["psnr"][1:], clean.metrics["psnr"][1:]
        same = "bit-identical" if torch.equal(a, b) else (
            "within 1e-4 dB" if torch.allclose(a, b, atol=1e-4, rtol=0) else "NO")
        out.append({"optimizer": label, "diverged": bad.metrics["diverged"].tolist(), "others_unchanged": same,
                    "fallback_finite": bool(torch.isfinite(bad.image).all()),
                    "psnr_diverged_vs_clean": [round(float(bad.metrics["psnr"][0]), 2),
                                               round(float(clean.metrics["psnr"][0]), 2)],
                    "steps_diverged_vs_clean": [int(bad.metrics["steps"][0]), int(clean.metrics["steps"][0])],
                    "note": bad.notes[0] if bad.notes else ""})
    return out


# ------------------------------------------------------------------------------------------------------------
FAULT_TESTS = {
    "tests/test_faults.py::test_sigkill_mid_training_then_resume_equals_the_uninterrupted_run[gan]":
        ("SIGKILL `train-gan` (tiny DCGAN) right after its first checkpoint; rerun", "resumes from the checkpoint; "
         "final G_ema bit-equal to an uninterrupted run"),
    "tests/test_faults.py::test_sigkill_mid_training_then_resume_equals_the_uninterrupted_run[encoder]":
        ("SIGKILL `train-encoder` right after its first checkpoint; rerun", "resumes; final encoder bit-equal"),
    "tests/test_faults.py::test_killed_between_writing_and_renaming_a_checkpoint[gan]":
        ("SIGKILL `train-gan` between writing checkpoint 2 and renaming it", "old checkpoint whole; leftover "
         "temporary removed on rerun; resumes; bit-equal"),
    "tests/test_faults.py::test_killed_between_writing_and_renaming_a_checkpoint[encoder]":
        ("SIGKILL `train-encoder` between write and rename", "same"),
    "tests/test_dataset_runner.py::test_sigkill_mid_run_then_resume_gives_the_uninterrupted_latents":
        ("SIGKILL `invert-dataset` after its first committed batch; rerun", "every image once, shards load, "
         "latents equal an uninterrupted run"),
    "tests/test_faults.py::test_dataset_run_with_a_failing_disk_then_rerun":
        ("`invert-dataset` on a disk that fills up after batch 0 (os.replace → ENOSPC)", "exit 1, one line, no "
         "temporary files; rerun completes with equal latents"),
    "tests/test_faults.py::test_atomic_writers_failing_rename_leave_the_old_file_or_nothing":
        ("every atomic writer (model folder, .pt, .npz, PNG, JSON) with os.replace → EROFS", "OSError; old files "
         "unchanged; nothing half-written"),
    "tests/test_faults.py::test_atomic_writers_on_a_full_or_read_only_disk[full]":
        ("the same writers on a real 256 KB tmpfs filled to the last page", "ENOSPC as OSError (safetensors and "
         "torch.save included); nothing half-written"),
    "tests/test_faults.py::test_atomic_writers_on_a_full_or_read_only_disk[read-only]":
        ("the same writers on a tmpfs remounted read-only (stops root too)", "EROFS; old files unchanged"),
    "tests/test_faults.py::test_cli_into_an_unwritable_folder_is_one_clear_line":
        ("`ganinv sample` / `invert` into /sys and into a read-only disk (mocked)", "exit 1, one `error:` line"),
    "tests/test_faults.py::test_cli_into_a_read_only_disk":
        ("`ganinv sample` / `invert` into a real read-only tmpfs", "exit 1, one line, nothing written"),
}


def faults_section(work: Path) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    junit = work / "faults.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    *FAULT_TESTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        file = case.get("classname", "").replace(".", "/") + ".py"
        key = f"{file}::{case.get('name')}"
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                status = "FAILED"
            elif child.tag == "skipped":
                status = "skipped: " + _short(child.get("message", ""), 60)
        results[key] = (status, float(case.get("time", 0)))
    rows = [{"fault": what, "expected": expect, "test": key.split("::")[-1],
             "result": results.get(key, ("missing", 0))[0], "seconds": round(results.get(key, ("", 0.0))[1], 1)}
            for key, (what, expect) in FAULT_TESTS.items()]
    return {"scenarios": rows, "seconds": round(seconds, 1)}


# ------------------------------------------------------------------------------------------------------------
def load_section(clients: int, steps: int, work: Path) -> dict[str, Any]:
    from web_load import run_web_load

    from ganinv.generators.checkpoints import load_generator

    G, _ = load_generator("mnist-stylegan2")
    r = run_web_load(G, n_clients=clients, steps=steps, work=work / "web")
    return {"model": "mnist-stylegan2", **r.summary(), "latencies_s": [round(v, 3) for v in r.latencies],
            "completion_order": r.completion_order}


# ------------------------------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def markdown(report: dict[str, Any], command: str) -> str:
    out = ["# Reliability", "",
           "The promise: ganinv opens checkpoints and images from strangers; it never runs their code, never "
           "crashes on their files, never loses work. This page is the matrix of bad inputs tried, faults "
           "injected and load held, regenerated by", "", f"```bash\n{command}\n```", "",
           f"on {report['machine']} ({report['date']}, {report['seconds']:.0f} s). The same cases run in the "
           "test suite (`tests/test_fuzz_loaders.py`, `test_malicious_files.py`, `test_numerics.py`, "
           "`test_faults.py`, `test_web_load.py`); `scripts/fuzz_loaders.py` fuzzes for longer (atheris when "
           "installed).", ""]
    if "fuzz" in report:
        f = report["fuzz"]
        total = sum(r["inputs"] for r in f["targets"])
        bad = sum(r["n_findings"] for r in f["targets"])
        out += ["## 1. Fuzzing the loaders", "",
                f"{total:,} mutated or random inputs ({f['seconds_per_target']:g} s per target, seed {f['seed']}, "
                f"{f['engine']}, address space limited to 6 GB); an outcome other than *loaded* or one of "
                f"ganinv's errors, or a jump in peak memory, is a finding. **Findings: {bad}.**", ""]
        rows = []
        for r in f["targets"]:
            oc = ", ".join(f"{k} {v:,}" for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]))
            rows.append([r["target"], r["loaders"], f"{r['inputs']:,}", oc, r["n_findings"] or "none"])
        out += _md_table(["target", "loaders called", "inputs", "outcomes", "findings"], rows) + [""]
        for r in f["targets"]:
            for finding in r["findings"]:
                out.append(f"- {r['target']}: {finding}")
        out += ["", "Found (and fixed) while building this suite — each has a regression test:", "",
                "- a mutated `.npy` header leaked `tokenize.TokenError` from NumPy's header parser; arrays now go "
                "through one checked reader (`ganinv.io.load_npy`/`load_npz`);",
                "- truncated GIFs leaked `IndexError` and damaged PNG headers `SyntaxError`/`ValueError` from Pillow "
                "(image masks and kernels); all Pillow decoding now maps to `InputError`;",
                "- a 9-byte pickle (`LONG_BINPUT 4000000000`) made CPython's unpickler allocate a 32 GB memo "
                "table — the fuzzer was OOM-killed at 23 GB; NVIDIA pickles are now pre-scanned with "
                "`pickletools.genops` (memo slots, frame lengths) before unpickling;",
                "- `config.json` values such as `\"n_mlp\": 10**9` or `\"blur_kernel\": null` reached the "
                "constructors (a hang or a `TypeError`); configs are range-checked and every model is built on "
                "the meta device and compared with the weights file before any memory is allocated;",
                "- a 497-byte GIF declaring 6664×6682 px (under the 89.5 MPx limit) raised peak memory by 864 MB "
                "in `load_target` (float RGB at full size); large images are now box-reduced in 8-bit first "
                "(same result up to rounding, < 1/255), 45 MB;",
                "- legacy `torch.save` files: declared lengths beyond the file reached torch's unpickler (a "
                "`MemoryError` under the address-space limit); their pickles are pre-scanned the same way;",
                "- safetensors and `torch.save` report a full disk as `SafetensorError`/`RuntimeError`; "
                "`atomic_write` now raises `OSError(ENOSPC)` naming the destination;",
                "- `wrap.load_weights` (`--generator … --weights`) did not recognise torch's message for blocked "
                "modules (`posix.system`) and said \"may be corrupt\"; it now names the refused global;",
                "- protocol 0/1 pickles were sniffed as \"unknown\" (refused, but without naming the global); "
                "`train-gan` resumed with a new data permutation (weights differed from an uninterrupted run).",
                ""]
    if "malicious" in report:
        rows = []
        for r in report["malicious"]["payloads"]:
            rows.append([r["payload"], r["opcodes"], r["effect_if_loaded_naively"],
                         "yes" if r["live_under_naive_load"] else "NO", r["refused_global"],
                         ", ".join(f"{k}: {v}" for k, v in r["loaders"].items()),
                         "NONE" if not r["side_effect"] else "**YES**"])
        ok = sum(r["all_refused_and_named"] and not r["side_effect"] for r in report["malicious"]["payloads"])
        n = len(report["malicious"]["payloads"])
        out += ["## 2. Malicious pickles", "",
                f"Each payload first runs under a naive load (`pickle` / `torch.load(weights_only=False)` in a "
                f"subprocess — the *live* column), then goes to every loader. **{ok} of {n} refused by every loader "
                "with the global named, no side effect** (marker file, environment variable, module import).", ""]
        out += _md_table(["payload", "opcodes", "naive load would", "live", "named in the error", "loaders",
                          "side effect"], rows)
        example = report["malicious"]["payloads"][0]["message"]
        out += ["", f"Example message: `{example}`", ""]
    if "oversized" in report:
        rows = [[r["file"], f"{r['bytes_on_disk']:,}", ", ".join(f"{k}: {v}" for k, v in r["results"].items()),
                 r["peak_memory_growth_mb"], r["message"]] for r in report["oversized"]["files"]]
        out += ["## 3. Decompression bombs and absurd sizes", "",
                "Images over 89.5 MPx (Pillow's limit, now an error rather than a warning between 1× and 2×), "
                "arrays over 256 MB or with headers that claim more data than the file holds, and pickles that "
                "claim memory they do not hold are refused before anything is allocated.", ""]
        out += _md_table(["file", "bytes", "results", "peak memory +MB", "message"], rows) + [""]
    if "numerics" in report:
        n = report["numerics"]
        rows = [[r["input"], r["nan"], r["inf"], r["message"]] for r in n["inputs"]]
        out += ["## 4. Numerics", "", "NaN/Inf in each kind of input, refused up front:", ""]
        out += _md_table(["input", "NaN", "Inf", "message (NaN)"], rows)
        out += ["", "A forced divergence: an extra objective term returns NaN for sample 0 of 3 at its 12th "
                "optimisation step (a huge learning rate does not diverge: StyleGAN2 saturates). The sample stops "
                "at its best iterate, `metrics[\"diverged\"]` flags it, `result.notes` says so (the CLI prints it "
                "and writes `diverged` to summary.json; `invert-dataset` writes it to the manifest's notes), and "
                "the other samples are bit-identical to an unpoisoned run. Multi-code inversion and PTI's tuning "
                "get the same check with their loss returning NaN for sample 0 at its 6th evaluation with gradient "
                "(multi-code keeps its best state; PTI stops tuning that image at its best delta).", ""]
        rows = [[d["optimizer"], d["diverged"], d["others_unchanged"], d["fallback_finite"],
                 " vs ".join(map(str, d["psnr_diverged_vs_clean"])),
                 " vs ".join(map(str, d["steps_diverged_vs_clean"]))] for d in n["divergence"]]
        out += _md_table(["method / optimizer", "diverged flags", "others unchanged", "result finite",
                          "PSNR sample 0 (fallback vs clean run)", "steps (fallback vs clean)"], rows)
        for d in n["divergence"]:
            if d["note"] and d["optimizer"] in ("adam", "multicode (Adam)", "PTI tuning (Adam)"):
                out += ["", f"Note ({d['optimizer']}): `{d['note']}`"]
        out += [""]
    if "faults" in report:
        rows = [[r["fault"], r["expected"], r["result"], r["seconds"]] for r in report["faults"]["scenarios"]]
        out += ["## 5. Faults", "", "Each scenario is a test; this run's result:", ""]
        out += _md_table(["fault injected", "what must hold", "result", "s"], rows) + [""]
    if "load" in report:
        L = report["load"]
        out += ["## 6. Load on the web app", "",
                f"{L['clients']} loopback clients (`gradio_client`, each its own session) submit one inversion each "
                f"to `/invert_file` ({L['model']}, {L['steps']} steps, the page's queue with concurrency 1); "
                "each submits once the previous job has joined the queue, so the arrival order is known. "
                "Latency = answer − submit (upload included).", ""]
        out += _md_table(["clients", "answered", "errors", "FIFO completion", "same result as a direct call",
                          "PSNR min–max (dB)", "latency p50 / p90 / max (s)", "wall (s)", "jobs/min"],
                         [[L["clients"], L["answered"], len(L["errors"]), L["fifo"], L["matches_direct_call"],
                           f"{L['psnr_min']}–{L['psnr_max']}", f"{L['p50_s']} / {L['p90_s']} / {L['max_s']}",
                           L["wall_s"], L["throughput_per_min"]]]) + [""]
        out += ["Latency grows linearly with the position in the queue (one heavy job at a time, by design: "
                "`ganinv serve --concurrency N` runs N at once); slider renders use a separate queue.", ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-seconds", type=float, default=20.0, help="fuzzing time per target (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--web-clients", type=int, default=8)
    parser.add_argument("--web-steps", type=int, default=50)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["fuzz", "malicious", "oversized", "numerics", "faults", "load"])
    parser.add_argument("--out-md", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--out-json", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="ganinv-reliability-"))
    t0 = time.perf_counter()
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                              f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread"}
    sections = [("fuzz", lambda: fuzz_section(args.fuzz_seconds, args.seed, work / "fuzz")),
                ("malicious", lambda: malicious_section(work / "malicious")),
                ("oversized", lambda: oversized_section(work / "oversized")),
                ("numerics", numerics_section),
                ("faults", lambda: faults_section(work)),
                ("load", lambda: load_section(args.web_clients, args.web_steps, work))]
    for name, fn in sections:
        if name in args.skip or (name == "fuzz" and args.fuzz_seconds <= 0):
            continue
        print(f"{name}…", flush=True)
        (work / name).mkdir(parents=True, exist_ok=True)
        s0 = time.perf_counter()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if name in ("fuzz", "malicious", "oversized"):  # a runaway allocation fails here instead of the machine
            resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, hard))
        try:
            report[name] = fn()
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        print(f"{name}: {time.perf_counter() - s0:.0f} s", flush=True)
    report["seconds"] = time.perf_counter() - t0
    command = "PYTHONPATH=src python scripts/reliability_report.py " + " ".join(sys.argv[1:])
    from ganinv.modelfile import atomic_write

    atomic_write(args.out_json, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1, default=str) + "\n"))
    atomic_write(args.out_md, lambda tmp: Path(tmp).write_text(markdown(report, command.strip()) + "\n"))
    print(f"wrote {args.out_md} and {args.out_json} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
