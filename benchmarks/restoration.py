"""Restoration with a GAN prior on the fixed held-out digits, against classical baselines.

Two sections, each run per model (they can run side by side in separate processes) and merged
by ``report``:

* ``cs`` — Bora et al.'s compressed-sensing experiment: per-pixel squared error against the
  number of Gaussian measurements m, for the bundled generators (one code, CSGM's objective
  through our engine) and for Lasso in a 2-D DCT basis (scikit-learn; λ chosen per m on
  validation digits disjoint from the benchmark's). Target: the GAN prior reaches Lasso's error
  with ≥ 5× fewer measurements for m ≤ 100.
* ``tasks`` — inpainting, ×4 super-resolution, deblurring, denoising and Fourier phase retrieval:
  PSNR/SSIM of the GAN prior (one code; multi-code, mGANprior) and of classical baselines
  computed in the same run (the trivial one — the observation itself — and a tuned one: TV
  inpainting, bicubic, Wiener deconvolution, TV denoising, Fienup's HIO), their parameters
  tuned on the validation digits. Colorization needs an RGB model; the bundled ones are gray.

Run::

    python benchmarks/restoration.py run --model mnist-dcgan --section cs --images 50 --threads 1
    python benchmarks/restoration.py run --model mnist-dcgan --section tasks --images 50 --threads 1
    python benchmarks/restoration.py report      # docs/restoration.md, results JSON, README table

Partial results live in ``benchmarks/results/restoration/<model>-<section>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readme_section import replace_section

from ganinv import metrics as M
from ganinv import zoo
from ganinv.data import heldout_subset
from ganinv.losses.pixel import mse
from ganinv.physics import baselines as BL
from ganinv.physics import make_task
from ganinv.restore import restore
from ganinv.train.encoder import validation_split

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "benchmarks" / "results" / "restoration"
CS_M = (10, 25, 50, 100, 200, 400)
LASSO_EXTRA_M = (600, 800, 1000)  # beyond the GAN sweep, so a "≥ 5× fewer" ratio can be read off
TASKS: dict[str, tuple[str, dict[str, Any]]] = {  # row label → (task, options): the CLI defaults, written out
    "inpaint": ("inpaint", {"box": (8, 8, 16, 16)}),
    "sr": ("sr", {"factor": 4}),
    "deblur": ("deblur", {"sigma": 1.5, "noise_sigma": 0.01}),
    "denoise": ("denoise", {"sigma": 0.2}),
    "phase": ("phase", {"oversampling": 2}),
    "phase (noisy)": ("phase", {"oversampling": 2, "noise_sigma": 0.05}),  # where HIO stops being exact
}
PHASE_SHIFT = None  # phase retrieval is scored up to its ambiguities — twin image and any shift — for every method


def prior_text(prior: float | None) -> str:
    return f"{prior:g}" if prior is not None else "10 / number of measurements (restore's default)"


def per_image_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return mse(x_hat.clamp(0, 1), x)


def scores(x_hat: torch.Tensor, x: torch.Tensor, task: str) -> dict[str, Any]:
    x_hat = x_hat.clamp(0, 1)
    if task == "phase":
        x_hat = BL.align_flip(x_hat, x, max_shift=PHASE_SHIFT)
    psnr, ssim = M.psnr(x_hat, x), M.ssim(x_hat, x)
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "mse": float(per_image_mse(x_hat, x).mean()),
            "per_image_psnr": [round(float(v), 3) for v in psnr]}


# ----------------------------------------------------------------------------------------------------
# compressed sensing
# ----------------------------------------------------------------------------------------------------
def run_cs(model: str, x: torch.Tensor, steps: int, restarts: int, prior: float) -> dict[str, Any]:
    G = zoo.load(model)
    rows = []
    for m in CS_M:
        task = make_task("cs", tuple(G.image_shape), m=m, seed=0)
        y = task.simulate(x, seed=1)
        t0 = time.perf_counter()
        res = restore(G, y, task, steps=steps, restarts=restarts, **({"prior": prior} if prior is not None else {}))
        sec = time.perf_counter() - t0
        err = per_image_mse(res.best, x)
        rows.append({"m": m, "mse": float(err.mean()), "mse_sem": float(err.std() / math.sqrt(len(err))),
                     "seconds_per_image": sec / len(x)})
        print(f"{model} cs m={m}: mse {rows[-1]['mse']:.5f} ({sec:.0f} s)", flush=True)
    return {"model": model, "rows": rows, "steps": steps, "restarts": restarts, "prior": prior}


def run_lasso(x: torch.Tensor, x_val: torch.Tensor) -> dict[str, Any]:
    rows = []
    for m in CS_M + LASSO_EXTRA_M:
        task = make_task("cs", tuple(x.shape[1:]), m=m, seed=0)
        A = task.physics._A
        lasso = BL.LassoDCT()
        t0 = time.perf_counter()
        lam = lasso.fit_alpha(A, x_val, noise_sigma=task.noise_sigma, seed=2)
        x_hat = lasso.reconstruct(A, task.simulate(x, seed=1), task.image_shape)
        err = per_image_mse(x_hat, x)
        rows.append({"m": m, "mse": float(err.mean()), "mse_sem": float(err.std() / math.sqrt(len(err))),
                     "lambda": lam, "seconds": time.perf_counter() - t0})
        print(f"lasso m={m}: mse {rows[-1]['mse']:.5f} λ={lam:g}", flush=True)
    return {"model": "lasso-dct", "rows": rows}


def measurements_for(err: float, lasso_rows: list[dict[str, Any]]) -> float | None:
    """Fewest measurements at which Lasso's error falls to ``err`` (log-linear interpolation), or None."""
    pts = [(r["m"], r["mse"]) for r in lasso_rows]
    if pts[0][1] <= err:
        return float(pts[0][0])
    for (m0, e0), (m1, e1) in zip(pts, pts[1:]):
        if e1 <= err < e0:
            return _log_lerp(err, e0, e1, m0, m1)
    return None


def _log_lerp(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """``y`` at ``x`` on the straight line through ``(x0, y0)`` and ``(x1, y1)`` in log-log coordinates."""
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return float(math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0))))


def lasso_error_at(m: float, lasso_rows: list[dict[str, Any]]) -> float | None:
    """Lasso's error at ``m`` measurements (log-linear interpolation between measured m), or None outside them."""
    pts = [(r["m"], r["mse"]) for r in lasso_rows]
    for (m0, e0), (m1, e1) in zip(pts, pts[1:]):
        if m0 <= m <= m1:
            return _log_lerp(m, m0, m1, e0, e1)
    return None


def shortfall_sentence(model: str, row: dict[str, Any], ratio: float, lasso_rows: list[dict[str, Any]]) -> str:
    """For a ratio under the 5× target: the error that would meet it, against the row's error and its
    standard error over the digits (where Lasso's curve is flat, a small error change moves the ratio a lot)."""
    goal = lasso_error_at(5 * row["m"], lasso_rows)
    if goal is None:
        return ""
    gap = row["mse"] - goal
    within = "within" if gap <= row["mse_sem"] else "more than"
    return (f"`{model}` at m = {row['m']}: {ratio:.1f}×. Meeting 5× needs an error of {goal:.4f} (Lasso's at "
            f"m = {5 * row['m']}); the GAN prior's is {row['mse']:.4f} ± {row['mse_sem']:.4f} (standard error over "
            f"the digits), {gap:.4f} above it, {within} one standard error.")


# ----------------------------------------------------------------------------------------------------
# the other tasks
# ----------------------------------------------------------------------------------------------------
def classical(task_name: str, task: Any, y: torch.Tensor, y_val: torch.Tensor, x_val: torch.Tensor
              ) -> list[tuple[str, torch.Tensor, Any, float]]:
    """(name, restoration, tuned parameter, seconds incl. tuning) for the trivial and the classical baseline."""
    out: list[tuple[str, torch.Tensor, Any, float]] = []

    def add(name: str, fn: Any, grid: list[float] | None = None) -> None:
        t0 = time.perf_counter()
        param = BL.tune(fn, grid, y_val, x_val)[0] if grid else None
        out.append((name, fn(y, param), param, time.perf_counter() - t0))

    if task_name == "inpaint":
        add("masked image", lambda v, p: BL.masked_fill(v, task.mask))
        add("TV inpainting", lambda v, p: BL.tv_inpaint(v, task.physics, p), [0.003, 0.01, 0.03, 0.1])
    elif task_name == "sr":
        add("bicubic", lambda v, p: BL.bicubic_upsample(v, task.options["factor"]))
    elif task_name == "deblur":
        add("blurred input", lambda v, p: v)
        add("Wiener", lambda v, p: BL.wiener_deconv(v, task.kernel, p), [0.001, 0.003, 0.01, 0.03, 0.1])
    elif task_name == "denoise":
        add("noisy input", lambda v, p: v)
        add("TV denoising", lambda v, p: BL.tv_denoise(v, p), [0.03, 0.06, 0.1, 0.15, 0.2])
    elif task_name == "phase":
        add("HIO", lambda v, p: BL.hio_phase_retrieval(v, task.image_shape, oversampling=task.options["oversampling"]))
    return out


def run_tasks(model: str, x: torch.Tensor, x_val: torch.Tensor, steps: int, restarts: int, prior: float,
              codes: int, tasks: list[str]) -> dict[str, Any]:
    G = zoo.load(model)
    rows = []
    for label_t in tasks:
        name, task_opts = TASKS[label_t]
        task = make_task(name, tuple(G.image_shape), **task_opts)
        y, y_val = task.simulate(x, seed=1), task.simulate(x_val, seed=2)
        for label, img, param, sec in classical(name, task, y, y_val, x_val):
            rows.append({"task": label_t, "method": label, "param": param, **scores(img, x, name),
                         "seconds_per_image": sec / len(x)})
        extra = {"prior": prior} if prior is not None else {}
        for label, method, opts in (("GAN prior (1 code)", "optimize", {"restarts": restarts, **extra}),
                                    (f"GAN prior ({codes} codes)", "multicode", {"codes": codes, **extra})):
            t0 = time.perf_counter()
            res = restore(G, y, task, method=method, steps=steps, **opts)
            sec = time.perf_counter() - t0
            rows.append({"task": label_t, "method": label, "param": None, **scores(res.best, x, name),
                         "seconds_per_image": sec / len(x), "data_fit": float(res.data_fit[:, 0].mean())})
            print(f"{model} {label_t} {label}: {rows[-1]['psnr']:.2f} dB ({sec:.0f} s)", flush=True)
    return {"model": model, "rows": rows, "steps": steps, "restarts": restarts, "prior": prior, "codes": codes,
            "task_options": {k: TASKS[k][1] for k in tasks}}


# ----------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------
def report() -> None:
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(PARTS.glob("*.json"))}
    if not parts:
        raise SystemExit(f"no partial results in {PARTS}; run the sections first")
    lines: list[str] = []
    cs_parts = {k: v for k, v in parts.items() if k.endswith("-cs")}
    lasso = parts.get("lasso-cs") or next((v["lasso"] for v in cs_parts.values() if "lasso" in v), None)
    summary: dict[str, Any] = {"cs": {}, "tasks": {}, "meta": {}}
    if cs_parts:
        gan = {v["model"]: v for k, v in cs_parts.items() if v.get("model") != "lasso-dct"}
        n_img = next(iter(cs_parts.values())).get("images")
        lines += ["### Compressed sensing (per-pixel squared error, lower is better)", "",
                  f"{n_img} held-out digits, Gaussian A with N(0, 1/m) entries, noise σ = 0.01 per measurement. "
                  "GAN prior: one code (W for StyleGAN2, z for DCGAN), "
                  f"{next(iter(gan.values()))['steps']} Adam steps, best of {next(iter(gan.values()))['restarts']} "
                  f"restarts, prior weight {prior_text(next(iter(gan.values()))['prior'])}. "
                  "Lasso's λ is chosen per m on 20 validation digits.", ""]
        header = "| m | " + " | ".join(f"`{k}`" for k in gan) + (" | Lasso (DCT) |" if lasso else " |")
        lines += [header, "|---" * (len(gan) + 1 + (1 if lasso else 0)) + "|"]
        lasso_by_m = {r["m"]: r for r in lasso["rows"]} if lasso else {}
        for m in CS_M:
            cells = [f"{gan[k]['rows'][CS_M.index(m)]['mse']:.4f}" for k in gan]
            if lasso:
                cells.append(f"{lasso_by_m[m]['mse']:.4f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if lasso:
            lines.append("| " + ", ".join(str(m) for m in LASSO_EXTRA_M) + " | " + " | ".join("–" for _ in gan)
                         + " | " + ", ".join(f"{lasso_by_m[m]['mse']:.4f}" for m in LASSO_EXTRA_M) + " |")
            lines += ["", "Measurements Lasso needs to match the GAN prior's error (ratio to the GAN's m; target "
                      "≥ 5× for m ≤ 100):", "", "| model | " + " | ".join(f"m = {m}" for m in CS_M if m <= 100)
                      + " |", "|---" * (1 + sum(m <= 100 for m in CS_M)) + "|"]
            for k, v in gan.items():
                cells, ratios = [], []
                for r in v["rows"]:
                    if r["m"] > 100:
                        continue
                    need = measurements_for(r["mse"], lasso["rows"])
                    ratio = need / r["m"] if need is not None else max(LASSO_EXTRA_M) / r["m"]
                    ratios.append({"m": r["m"], "lasso_m": need, "ratio": ratio, "lower_bound": need is None})
                    cells.append(f"{'> ' if need is None else ''}{ratio:.1f}× ({'> ' if need is None else ''}"
                                 f"{need if need is not None else max(LASSO_EXTRA_M):.0f})")
                lines.append(f"| `{k}` | " + " | ".join(cells) + " |")
                summary["cs"][k] = {"rows": v["rows"], "ratios": ratios,
                                    "meets_target": all(r["ratio"] >= 5 for r in ratios)}
            short = []
            for k, v in gan.items():
                row_at = {r["m"]: r for r in v["rows"]}
                for q in summary["cs"][k]["ratios"]:
                    if q["ratio"] < 5 and (text := shortfall_sentence(k, row_at[q["m"]], q["ratio"], lasso["rows"])):
                        short.append(text)
            if short:
                lines += ["", " ".join(short)]
            summary["cs"]["lasso-dct"] = lasso
        lines.append("")
    task_parts = {k: v for k, v in parts.items() if k.endswith("-tasks")}
    for k, v in task_parts.items():
        lines += [f"### Other tasks · `{v['model']}` (PSNR dB / SSIM, higher is better)", "",
                  f"{v.get('images')} held-out digits; GAN prior: {v['steps']} steps "
                  f"(one code: best of {v['restarts']} restarts; prior weight {prior_text(v['prior'])}; multi-code: "
                  f"{v['codes']} codes at 8×8). Task settings: "
                  + "; ".join(f"{t} {json.dumps(o)}" for t, o in v["task_options"].items()) + ".", "",
                  "| task | method | PSNR | SSIM | s / image |", "|---|---|---|---|---|"]
        for r in v["rows"]:
            bold = "**" if r["method"].startswith("GAN") else ""
            lines.append(f"| {r['task']} | {bold}{r['method']}{bold} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                         f"{r['seconds_per_image']:.3f} |")
        lines.append("")
        summary["tasks"][v["model"]] = v
    any_part = next(iter(parts.values()))
    summary["meta"] = {k: any_part.get(k) for k in ("torch", "threads", "platform", "date")}
    body = "\n".join(lines)
    results = ROOT / "benchmarks" / "results" / "restoration.json"
    results.write_text(json.dumps(summary, indent=2) + "\n")
    doc = ROOT / "docs" / "restoration.md"
    doc.write_text("# Restoration with a GAN prior — benchmark\n\n"
                   "Generated by `benchmarks/restoration.py` (see its docstring for the exact commands); raw numbers "
                   "in `benchmarks/results/restoration.json`.\n\n" + body + "\n"
                   + machines_text(parts) + "; phase retrieval is scored up to its trivial "
                   "ambiguities (the 180° twin image and translations within the support) for every method.\n")
    replace_section("restoration-table", body)
    print(body)


def machines_text(parts: dict[str, dict[str, Any]]) -> str:
    """Where the parts ran: one machine line, or which parts ran on which machine and day when they differ
    (their s / image columns then compare only within a part)."""
    groups: dict[tuple, list[str]] = {}
    for name, v in parts.items():
        key = (v.get("platform"), v.get("torch"), v.get("threads"), str(v.get("date") or "")[:10])
        groups.setdefault(key, []).append(name)
    if len(groups) == 1:
        (platform, torch_v, threads, _), = groups
        return f"Machine: {platform}, torch {torch_v}, {threads} thread(s) per process"
    runs = "; ".join(f"{', '.join(f'`{n}`' for n in names)} on {platform}, torch {torch_v}, {threads} thread(s), "
                     f"{day or 'undated'}" for (platform, torch_v, threads, day), names in groups.items())
    return (f"The parts ran at different times (seconds per image compare only within a part): {runs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--model", default="mnist-dcgan", help="bundled model, or 'lasso' for the Lasso CS curve")
    run.add_argument("--section", choices=("cs", "tasks"), required=True)
    run.add_argument("--images", type=int, default=200)
    run.add_argument("--steps", type=int, default=300)
    run.add_argument("--restarts", type=int, default=2)
    run.add_argument("--prior", type=float, default=None, help="latent-prior weight (default: restore's "
                     "PRIOR_SCALE / number of measurements)")
    run.add_argument("--codes", type=int, default=10)
    run.add_argument("--tasks", default=",".join(TASKS), help="comma-separated row labels of TASKS")
    run.add_argument("--append", action="store_true", help="add these tasks' rows to the model's existing part "
                     "(replacing rows of the same tasks) instead of starting a new one")
    run.add_argument("--threads", type=int, default=1)
    sub.add_parser("report")
    args = ap.parse_args()
    if args.cmd == "report":
        report()
        return
    torch.set_num_threads(args.threads)
    x, _ = heldout_subset(args.images)
    x_val, _ = validation_split(20)
    if args.model == "lasso":
        out = run_lasso(x, x_val)
    elif args.section == "cs":
        out = run_cs(args.model, x, args.steps, args.restarts, args.prior)
    else:
        out = run_tasks(args.model, x, x_val, args.steps, args.restarts, args.prior, args.codes,
                        args.tasks.split(","))
    out.update(images=len(x), torch=torch.__version__, threads=args.threads, platform=platform.platform(),
               date=time.strftime("%Y-%m-%d"), numpy=np.__version__)
    PARTS.mkdir(parents=True, exist_ok=True)
    name = "lasso-cs" if args.model == "lasso" else f"{args.model}-{args.section}"
    previous = PARTS / f"{name}.json"
    if args.append and args.section == "tasks" and previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("images") != len(x):
            raise SystemExit(f"--append with {len(x)} images onto a part measured on {old.get('images')}")
        done = {r["task"] for r in out["rows"]}
        out["rows"] = [r for r in old["rows"] if r["task"] not in done] + out["rows"]
        out["task_options"] = {**old["task_options"], **out["task_options"]}
        out["images"] = old.get("images", out["images"])
    (PARTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {PARTS / name}.json")


if __name__ == "__main__":
    main()
