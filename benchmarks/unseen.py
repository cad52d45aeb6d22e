"""Generators never seen in development: do ganinv's defaults work on them?

For each generator of ``benchmarks/unseen_generators.py`` (seeded random weights; three third-party
architectures through :func:`ganinv.wrap`, StyleGAN2 / StyleGAN3-T in configurations no bundled model has),
in one process:

1. **Exact recovery**: ``--targets`` of the model's own samples (in-range targets with a known latent),
   inverted with ``invert(G, x)`` and nothing else; the share at ≥ 40 dB, the median and worst PSNR, s / image.
   The same run with ``warmup=0`` (L-BFGS from the start, the default before the Adam warm-up) beside it.
2. **Targets out of range**, defaults against 10× their budget (``steps × 10``, no early stopping), the mean
   PSNR gap: a random model draws nothing real, so its out-of-range targets are ``--real`` blends of two of
   its own samples (their pixel average, which no single latent draws); and for the bundled trained models,
   real held-out MNIST digits (``ganinv.data.heldout_subset``).

Writes ``benchmarks/results/unseen.json``, ``docs/unseen.md`` and the README's ``<!-- unseen-table -->``.
Run: ``python benchmarks/unseen.py [--targets 24] [--real 4] [--only mlp,dcgan] [--threads 2]``
(``--targets 3 --real 1 --real-scale 2 --only mlp --results-dir /tmp/x`` is a smoke run). ``--update --only NAMES``
reruns those generators into the existing results and keeps every other row (each row records its date; with
``--real 0`` a rerun row keeps its earlier out-of-range result, and ``--bundled ''`` keeps the bundled rows).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from readme_section import write_results
from unseen_generators import GENERATORS

from ganinv import invert, zoo
from ganinv.data import heldout_subset
from ganinv.generators.base import Generator

ROOT = Path(__file__).resolve().parents[1]
#: Targets per generator where a step is expensive on a CPU (StyleGAN3's alias-free layers).
SLOW = {"stylegan3-t-32": 4}
#: Generators whose 10×-budget real-image run does not fit a CPU session.
NO_LONG_RUN = {"stylegan3-t-32"}


def own_samples(G: Generator, n: int, seed: int = 2026) -> torch.Tensor:
    with torch.no_grad():
        return G.to_display(G.synthesize(G.sample_latent(n, "z", seed=seed), "z"))


def blends(G: Generator, n: int, seed: int = 2027) -> torch.Tensor:
    """``n`` pixel averages of two of ``G``'s samples ``[n, C, H, W]`` in [0, 1]: targets no single latent draws."""
    x = own_samples(G, 2 * n, seed)
    return 0.5 * (x[:n] + x[n:])


def real_digits(n: int) -> torch.Tensor:
    """``n`` held-out digits spread over the classes ``[n, 1, 32, 32]`` in [0, 1]."""
    images, _ = heldout_subset(200)
    return images[torch.linspace(0, 199, n).round().long()]


def recovery(G: Generator, x: torch.Tensor, **options: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = invert(G, x, **options)
    seconds = time.perf_counter() - t0
    p = r.metrics["psnr"]
    return {"options": options, "space": r.space, "optimizer": r.settings["optimizer"], "targets": len(x),
            "recovered_40db": float((p >= 40).float().mean()), "median_psnr": float(p.median()),
            "min_psnr": float(p.min()), "mean_steps": float(r.metrics["steps"].float().mean()),
            "seconds_per_image": seconds / len(x), "per_image_psnr": [round(float(v), 2) for v in p]}


def real_gap(G: Generator, x: torch.Tensor, scale: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    short = invert(G, x)
    t_short = time.perf_counter() - t0
    steps = short.settings["steps"] * scale
    t0 = time.perf_counter()
    long = invert(G, x, steps=steps, patience=None)
    t_long = time.perf_counter() - t0
    a, b = short.metrics["psnr"], long.metrics["psnr"]
    return {"images": len(x), "default_psnr": float(a.mean()), "long_psnr": float(b.mean()), "long_steps": steps,
            "gap_db": float((b - a).mean()), "worst_gap_db": float((b - a).max()),
            "default_seconds_per_image": t_short / len(x), "long_seconds_per_image": t_long / len(x)}


def load_previous(args: argparse.Namespace) -> dict[str, Any]:
    """The results an ``--update`` run rewrites: their rows by name, bundled rows and date."""
    path = (args.results_dir or ROOT / "benchmarks" / "results") / "unseen.json"
    if not args.only:
        raise SystemExit("--update needs --only: the generators to rerun")
    if not path.is_file():
        raise SystemExit(f"--update: no earlier results at {path}")
    old = json.loads(path.read_text())
    date = old["machine"]["date"]
    return {"rows": {g["name"]: {"date": date, **g} for g in old["generators"]}, "bundled": old["bundled_real"],
            "date": date, "real_images": old["real_images"], "real_scale": old["real_scale"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=24)
    ap.add_argument("--real", type=int, default=4)
    ap.add_argument("--real-scale", type=int, default=10, help="budget multiple of the long real-image run")
    ap.add_argument("--only", default=None, help="comma-separated generator names")
    ap.add_argument("--bundled", default="mnist-stylegan2,mnist-dcgan",
                    help="bundled models for the real-digit gap (empty: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results-dir", type=Path, default=None, help="write here instead of the repository")
    ap.add_argument("--update", action="store_true",
                    help="rerun the --only generators into the existing results, keeping every other row")
    args = ap.parse_args()
    previous = load_previous(args) if args.update else None
    torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else list(GENERATORS)
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise SystemExit(f"unknown generator(s) {', '.join(unknown)}; available: {', '.join(GENERATORS)}")
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("unseen generators", total=3 * len(names))
        for name in names:
            description, build = GENERATORS[name]
            G = build()
            n = min(args.targets, SLOW.get(name, args.targets))
            x = own_samples(G, n)
            row: dict[str, Any] = {"name": name, "description": description, "space": G.default_space,
                                   "clipped_pixels": float(((x <= 0) | (x >= 1)).float().mean()),
                                   "date": time.strftime("%Y-%m-%d")}
            progress.update(task, description=f"{name}: defaults on {n} own samples")
            row["defaults"] = recovery(G, x)
            progress.advance(task)
            progress.update(task, description=f"{name}: warmup=0 on {n} own samples")
            row["no_warmup"] = recovery(G, x, warmup=0.0)
            progress.advance(task)
            if name not in NO_LONG_RUN and args.real > 0:
                progress.update(task, description=f"{name}: {args.real} blends, defaults and "
                                                  f"{args.real_scale}× budget")
                row["real"] = real_gap(G, blends(G, args.real), args.real_scale)
            elif previous is not None and previous["rows"].get(name, {}).get("real"):
                row["real"] = previous["rows"][name]["real"]
                row["real_date"] = previous["rows"][name].get("real_date", previous["date"])
            progress.advance(task)
            rows.append(row)
            print(json.dumps(row), flush=True)
        bundled = []
        if args.real > 0:
            for name in args.bundled.split(",") if args.bundled else []:
                progress.update(task, description=f"{name}: {args.real} real digits, defaults and "
                                                  f"{args.real_scale}× budget", total=progress.tasks[0].total + 1)
                bundled.append({"name": name, **real_gap(zoo.load(name), real_digits(args.real), args.real_scale)})
                progress.advance(task)
                print(json.dumps(bundled[-1]), flush=True)
    if previous is not None:  # the rows not rerun, in their earlier order, then any new ones
        fresh = {row["name"]: row for row in rows}
        rows = [fresh.pop(n, old) for n, old in previous["rows"].items()] + list(fresh.values())
        if not bundled:  # the bundled rows, and the settings they ran with, stay
            bundled = previous["bundled"]
            args.real, args.real_scale = previous["real_images"], previous["real_scale"]
    results = {"machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                           "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                           "date": time.strftime("%Y-%m-%d")},
               "targets": args.targets, "real_images": args.real, "real_scale": args.real_scale, "generators": rows,
               "bundled_real": bundled}
    write_results("unseen", results, render(results), "unseen-table", readme_table(results), args.results_dir)


def readme_table(r: dict[str, Any]) -> str:
    lines = ["| generator (random weights) | space | own samples ≥ 40 dB | median / worst | s / image | "
             f"warmup=0: ≥ 40 dB, worst | blends: defaults → {r['real_scale']}× budget |",
             "|---|---|---|---|---|---|---|"]
    for g in r["generators"]:
        d, o = g["defaults"], g["no_warmup"]
        real = g.get("real")
        real_text = (f"{real['default_psnr']:.2f} → {real['long_psnr']:.2f} dB ({real['gap_db']:+.2f})"
                     if real else "not run (CPU time)")
        lines.append(f"| {g['description']} | {d['space']} | {d['recovered_40db']:.0%} of {d['targets']} | "
                     f"{d['median_psnr']:.1f} / {d['min_psnr']:.1f} dB | {d['seconds_per_image']:.2f} | "
                     f"{o['recovered_40db']:.0%}, {o['min_psnr']:.1f} dB | {real_text} |")
    if r.get("bundled_real"):
        lines += ["", f"| bundled model, {r['real_images']} real held-out digits | defaults | "
                  f"{r['real_scale']}× budget | gap (worst) | s / image: defaults, long |", "|---|---|---|---|---|"]
        for b in r["bundled_real"]:
            lines.append(f"| `{b['name']}` | {b['default_psnr']:.2f} dB | {b['long_psnr']:.2f} dB | "
                         f"{b['gap_db']:+.2f} ({b['worst_gap_db']:+.2f}) dB | {b['default_seconds_per_image']:.2f}, "
                         f"{b['long_seconds_per_image']:.2f} |")
    return "\n".join(lines)


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    head = [
        "# Generators never seen in development",
        "",
        "Generated by `python benchmarks/unseen.py`; do not edit by hand. "
        f"{m['cpu_threads']} CPU threads, torch {m['torch']}, {m['date']}. The generators and how their random "
        "weights are prepared: `benchmarks/unseen_generators.py`.",
        "",
        "Own samples: `invert(G, x)` with every default (no option), targets drawn from the model's z. "
        "`warmup=0` is the same run with L-BFGS from the start. Out-of-range targets: blends (the pixel average of "
        "two of the model's samples, which no one latent draws) for the random models, real held-out digits for "
        f"the bundled ones; defaults against {r['real_scale']}× the steps without early stopping; the gap is the "
        "long run's PSNR minus the default's, averaged (worst: the largest per image).",
        "",
        readme_table(r),
        "",
    ]
    for g in r["generators"]:
        when = f" Measured {g['date']}." if g.get("date") and g["date"] != m["date"] else ""
        if g.get("real_date") and g["real_date"] != g.get("date"):
            when += f" Blends from the run of {g['real_date']}."
        head += [f"## {g['name']}", "", f"- {g['description']}; {g['clipped_pixels']:.1%} of the sample pixels "
                 f"at 0 or 1.{when}",
                 f"- defaults: PSNR per target {g['defaults']['per_image_psnr']}, "
                 f"{g['defaults']['mean_steps']:.0f} steps on average ({g['defaults']['optimizer']}).",
                 f"- warmup=0: PSNR per target {g['no_warmup']['per_image_psnr']}."]
        if g.get("real"):
            real = g["real"]
            head.append(f"- blends: {real['images']} images, worst gap {real['worst_gap_db']:+.2f} dB, "
                        f"{real['default_seconds_per_image']:.1f} s / image at the defaults, "
                        f"{real['long_seconds_per_image']:.1f} s / image for {real['long_steps']} steps.")
        head.append("")
    return "\n".join(head)


if __name__ == "__main__":
    main()
