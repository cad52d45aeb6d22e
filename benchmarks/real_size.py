"""Real-size benchmark: StyleGAN2 at 256 / 512 / 1024 px with seeded random weights (config-f widths).

Random weights make the model's own samples meaningful in-range targets: exact recovery of G(w) is the
physical limit an inversion engine can reach, whatever the generator was trained on. Everything runs in one
process on one machine, so the time ratios compare like with like (these machines are shared and noisy).

1. **Cost of a step** per resolution: one forward + backward to W+ (MSE, stored noise maps) at batch 1, 4 and
   the automatic batch (``ganinv.memory``: the rows that fit the memory budget, at most 64 on a CPU), in
   s/step and s/row; the peak resident memory during the step (sampled every 5 ms) next to what the meta
   probe predicted; with ``--reference-repo PATH`` also the same step through that checkout's own generator
   code on the same weights (``benchmarks/reference_repo.py``; the project never contains that code).
2. **Time to quality** at ``--recovery-resolution`` (256 by default): ``--targets`` samples of the model
   (W+, stored noise maps) inverted by ganinv's defaults (coarse-to-fine where ``coarse="auto"`` says so),
   the same engine at full resolution only and with 32 + 64 px stages, and the rosinality and NVIDIA
   projector schedules (our engine running their settings: Adam, lr 0.1, latent noise,
   joint noise maps, MSE because LPIPS weights are not available offline), each capped at ``--budget``
   seconds per target; the wall time at which a target's best PSNR first reaches 35 and 40 dB, averaged.

Writes ``benchmarks/results/real_size.json``, ``docs/real_size.md`` and the README's
``<!-- real-size-table -->`` section. Run: ``python benchmarks/real_size.py [--resolutions 256,512,1024]
[--recovery-resolution 256] [--targets 2] [--budget 600] [--reference-repo PATH] [--threads 2]``
(``--resolutions 64 --recovery-resolution 64 --budget 20 --results-dir /tmp/x`` is a quick smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from readme_section import write_results

from ganinv import invert, memory
from ganinv.generators.stylegan2 import StyleGAN2Generator
from ganinv.inverters.coarse import parse_stages
from ganinv.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (30.0, 32.0, 35.0, 40.0)


def make_generator(resolution: int, seed: int = 0) -> StyleGAN2Generator:
    """Config-f StyleGAN2 (rosinality's widths, 512-d z/w, 8 mapping layers) with seeded random weights."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(resolution=resolution)
    G.estimate_w_avg(2000)
    return G.eval().requires_grad_(False)


class PeakRSS:
    """Context manager: the peak resident set size of this process while inside (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory.in_use("cpu"))
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self.start = memory.in_use("cpu")
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, memory.in_use("cpu"))


def step_seconds(render: Callable[[torch.Tensor], torch.Tensor], ws: torch.Tensor, repeats: int) -> tuple[float, int]:
    """Median seconds of one forward + backward (MSE to zeros, gradient to ``ws``) and the peak RSS above the
    starting point (bytes), after one warm-up step."""
    times = []
    peak = 0
    for i in range(repeats + 1):
        lat = ws.clone().requires_grad_(True)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            render(lat).square().mean().backward()
            dt = time.perf_counter() - t0
        peak = max(peak, rss.peak - rss.start)
        if i:
            times.append(dt)
        del lat
    times.sort()
    return times[len(times) // 2], peak


def cost_section(resolutions: list[int], repeats: int, reference: Path | None,
                 progress: Progress) -> list[dict[str, Any]]:
    rows = []
    for res in resolutions:
        G = make_generator(res)
        t0 = time.perf_counter()
        cost = memory.render_cost(G, "w+")
        probe_s = time.perf_counter() - t0
        auto = memory.rows_that_fit(G, 64, memory.combine(cost, memory.RowCost(
            per_row=3 * 4 * math.prod(G.image_shape), fixed=0, how="mse")))
        ws = G.mean_latent("w+").reshape(1, G.num_ws, G.w_dim)
        gen = torch.Generator().manual_seed(1)
        row: dict[str, Any] = {"resolution": res, "parameters": sum(p.numel() for p in G.parameters()),
                               "probe_per_row_bytes": cost.per_row, "probe_fixed_bytes": cost.fixed,
                               "probe_how": cost.how, "probe_seconds": probe_s, "auto_batch": auto,
                               "budget_bytes": memory.budget("cpu"), "batches": []}
        for batch in sorted({1, 4, auto}):
            task = progress.add_task(f"{res} px · batch {batch}", total=None)
            w = ws + 0.5 * torch.randn((batch, G.num_ws, G.w_dim), generator=gen)
            sec, peak = step_seconds(lambda lat: G._native(lat, "w+", None), w, repeats)
            row["batches"].append({"batch": batch, "s_per_step": sec, "s_per_row": sec / batch,
                                   "peak_rss_bytes": peak, "predicted_bytes": cost.bytes_for(batch)})
            progress.remove_task(task)
        if reference is not None:
            from reference_repo import load_reference, time_step

            kind, ref_render = load_reference(reference, G)
            w = ws + 0.5 * torch.randn((1, G.num_ws, G.w_dim), generator=gen)
            with torch.no_grad():
                diff = float((ref_render(w) - G._native(w, "w+", None)).abs().max())
            ours, _ = step_seconds(lambda lat: G._native(lat, "w+", None), w, repeats)
            theirs = time_step(ref_render, w, repeats)
            row["reference"] = {"kind": kind, "max_abs_diff": diff, "s_per_step": theirs, "ours_s_per_step": ours,
                                "speedup": theirs / ours}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "batches"}), flush=True)
        for b in row["batches"]:
            print(f"  {res} px batch {b['batch']:3d}: {b['s_per_step']:.2f} s/step, {b['s_per_row']:.2f} s/row, "
                  f"peak +{memory.human_bytes(b['peak_rss_bytes'])} "
                  f"(predicted {memory.human_bytes(b['predicted_bytes'])})",
                  flush=True)
        del G
    return rows


class Budget(Exception):
    """Raised from the callback when a run used up its time."""


def time_to_quality(G: StyleGAN2Generator, target: torch.Tensor, label: str, budget: float,
                    progress: Progress, **options: Any) -> dict[str, Any]:
    """Invert one target with ``options`` for at most ``budget`` seconds; the wall time (from the call) at which
    its best full-resolution PSNR so far first reached each threshold, and its best PSNR at the end.

    One target per call: with automatic batching a 256 px model runs one row at a time, so several targets in
    one call would be optimised one after the other and a mean over them says nothing until the last one starts.
    Steps of a coarse stage (``state.image`` smaller than the target) are counted but not scored."""
    best = -math.inf
    reached: dict[str, float | None] = {f"{t:g}": None for t in THRESHOLDS}
    curve: list[tuple[float, float]] = []
    task = progress.add_task(label, total=budget)
    steps = 0
    t0 = time.perf_counter()

    def callback(step: int, state: Any) -> None:
        nonlocal steps, best
        steps += 1
        now = time.perf_counter() - t0
        if state.image.shape[-1] == target.shape[-1]:
            with torch.no_grad():
                p = psnr(state.image.detach().clamp(0, 1).cpu(), target.expand_as(state.image.cpu())).float()
                best = max(best, float(p.max()))
        curve.append((round(now, 2), round(best, 3)))
        for t in THRESHOLDS:
            if reached[f"{t:g}"] is None and best >= t:
                reached[f"{t:g}"] = now
        progress.update(task, completed=min(now, budget), description=f"{label} · {best:.1f} dB")
        if now > budget:
            raise Budget

    finished = True
    try:
        r = invert(G, target, callback=callback, **options)
        final = float(r.metrics["psnr"].max())
    except Budget:
        finished = False
        final = best
    seconds = time.perf_counter() - t0
    progress.remove_task(task)
    return {"finished": finished, "seconds": seconds, "steps_seen": steps, "time_to": reached,
            "final_psnr": final, "curve": curve[::5]}


def _mean_time(times: list[float | None]) -> float | None:
    """Mean time over targets, None when any target did not get there."""
    return None if any(t is None for t in times) else sum(times) / len(times)  # type: ignore[arg-type]


def below(stages: str | None, resolution: int) -> bool:
    """Whether explicit coarse ``stages`` ("32,64") all lie below ``resolution`` (rows whose stages do not are
    left out: a 64 px stage of a 64 px model is no coarse stage); True for none or ``"off"``."""
    if stages is None or stages == "off":
        return True
    return all(int(v) < resolution for v in stages.split(","))


def quality_section(resolution: int, n: int, budget: float, progress: Progress,
                    methods: list[str] | None = None) -> dict[str, Any]:
    G = make_generator(resolution)
    w = G.sample_latent(n, "w", seed=2026)
    with torch.no_grad():
        targets = G.to_display(G.synthesize(G.convert(w, "w", "w+"), "w+")).cpu()
    auto = parse_stages(G, "auto")
    default = f"ganinv defaults (coarse {' + '.join(map(str, auto))} px)" if auto else "ganinv defaults"
    runs = [(key, label, opts) for key, label, opts in (
        ("defaults", default, {}),
        ("full", "ganinv, full resolution only", {"coarse": "off"}),
        ("coarse-32-64", "ganinv, coarse 32 + 64 px", {"coarse": "32,64"}),
        ("coarse-64-short", "ganinv, coarse 64 px for 50 steps", {"coarse": "64", "coarse_steps": 50}),
        ("rosinality", "rosinality schedule (W+)", {"preset": "rosinality", "loss": "mse"}),
        ("nvidia", "NVIDIA schedule (W)", {"preset": "nvidia", "loss": "mse"}))
        if (key in methods if methods else key != "coarse-64-short") and below(opts.get("coarse"), resolution)]
    rows = []
    for _, label, opts in runs:
        opts = dict(opts)
        steps = opts.pop("steps", 1000)
        per = [time_to_quality(G, targets[i:i + 1], f"{label} · target {i + 1}/{n}", budget, progress,
                               steps=steps, **opts) for i in range(n)]
        finals = [p["final_psnr"] for p in per]
        row = {"method": label, "options": opts, "targets": n,
               "time_to": {k: _mean_time([p["time_to"][k] for p in per]) for k in per[0]["time_to"]},
               "final_mean_psnr": sum(finals) / n, "final_min_psnr": min(finals),
               "steps_seen": sum(p["steps_seen"] for p in per), "seconds": sum(p["seconds"] for p in per),
               "finished": all(p["finished"] for p in per), "per_target": per}
        print(f"{label}: 35 dB at {row['time_to']['35']}, 40 dB at {row['time_to']['40']}, "
              f"final {row['final_mean_psnr']:.2f} dB after {row['seconds']:.0f} s", flush=True)
        rows.append(row)
    return {"resolution": resolution, "targets": n, "budget_s": budget, "rows": rows}


def _t(v: float | None, budget: float) -> str:
    return f"{v:.0f} s" if v is not None else f"> {budget:.0f} s"


def quality_lines(q: dict[str, Any]) -> list[str]:
    """The markdown of one time-to-quality section."""
    lines: list[str] = []
    ths = sorted(q["rows"][0]["time_to"], key=float)
    cols = " / ".join(ths)
    lines += ["", f"## Time to quality, {q['resolution']} px, {q['targets']} of the model's own samples"
              + (f", {q['budget_s']:.0f} s" if q.get("note") else ""), ""] + ([q["note"], ""] if q.get("note") else []) + [
              f"Each target inverted on its own, capped at {q['budget_s']:.0f} s; *to {cols} dB*: the mean over "
              "the targets of the wall time at which a target's best full-resolution PSNR first got there "
              "(\"> budget\" when one did not); *steps seen* and *s*: summed over the targets."
              + (f" The {q['from_curve']} dB columns were read afterwards from the recorded curve (every 5th "
                 "step), the others timed as they happened." if q.get("from_curve") else ""),
              "", "Coarse-to-fine (`coarse`, `ganinv.inverters.coarse`): a stage at r px fits the target averaged "
              "down to r × r while rendering only the blocks up to r and, in W+, only the rows they read; the "
              "full-resolution stage then starts from its latent. Steps of a stage are counted, but only "
              "full-resolution images are scored.",
              "", "| method | " + " | ".join(f"to {t} dB" for t in ths)
              + " | PSNR at the end | min | steps seen | s |",
              "|---|" + "---|" * len(ths) + "---|---|---|---|"]
    for row in q["rows"]:
        lines.append(f"| {row['method']} | " + " | ".join(_t(row["time_to"][t], q["budget_s"]) for t in ths)
                     + f" | {row['final_mean_psnr']:.2f} | {row['final_min_psnr']:.2f} | {row['steps_seen']} | "
                     f"{row['seconds']:.0f} |")
    ros = next((row for row in q["rows"] if row["method"].startswith("rosinality")), None)
    full = next((row for row in q["rows"] if row["method"].endswith("full resolution only")), None)
    ours = q["rows"][0]
    for other, name in ((full, "full-resolution optimisation"), (ros, "the rosinality schedule")):
        if other is None or other is ours:
            continue
        for t in ths:
            a, b = ours["time_to"][t], other["time_to"][t]
            if a is not None and b is not None:
                lines.append(f"\nTo {t} dB ganinv's defaults took {b / a:.2f}× less time than {name}.")
            elif a is not None:
                lines.append(f"\nganinv's defaults reached {t} dB in {a:.0f} s; {name} did not within "
                             f"{q['budget_s']:.0f} s (≥ {q['budget_s'] / a:.1f}× less time).")
    return lines


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = ["# Real-size StyleGAN2: cost per step, memory, time to quality", "",
             f"Measured by `python benchmarks/real_size.py` on {m['platform']} with {m['cpu_threads']} torch "
             f"threads (torch {m['torch']}), {m['date']}, one process; config-f StyleGAN2 with seeded random "
             "weights (rosinality's widths). No GPU was available to this run.", "",
             "## One forward + backward to W+", "",
             "| resolution | parameters | batch | s / step | s / row | peak RSS | predicted | auto batch |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["cost"]:
        for b in row["batches"]:
            lines.append(f"| {row['resolution']} | {row['parameters'] / 1e6:.1f} M | {b['batch']} | "
                         f"{b['s_per_step']:.2f} | {b['s_per_row']:.2f} | +{memory.human_bytes(b['peak_rss_bytes'])} | "
                         f"{memory.human_bytes(b['predicted_bytes'])} | {row['auto_batch']} |")
    lines += ["", "*peak RSS*: the process's resident memory above its level before the step, sampled every 5 ms; "
              "*predicted*: the meta-device probe's estimate (saved tensors × 1.5) that the memory-aware batching "
              "plans with; *auto batch*: the rows that fit this machine's automatic budget "
              f"({memory.human_bytes(r['cost'][0]['budget_bytes'])} here), at most 64 on a CPU and no more than make "
              f"{memory.human_bytes(memory.CPU_SATURATION_BYTES)} of work, past which a CPU gains nothing from "
              "batching."]
    refs = [row for row in r["cost"] if "reference" in row]
    if refs:
        lines += ["", "| resolution | reference | max abs diff | theirs s / step | ours s / step | ours faster |",
                  "|---|---|---|---|---|---|"]
        for row in refs:
            ref = row["reference"]
            lines.append(f"| {row['resolution']} | {ref['kind']} | {ref['max_abs_diff']:.1e} | "
                         f"{ref['s_per_step']:.2f} | {ref['ours_s_per_step']:.2f} | {ref['speedup']:.2f}× |")
    for key in ("quality", "quality_long"):
        if r.get(key):
            lines += quality_lines(r[key])
    return "\n".join(lines) + "\n"


def readme_table(r: dict[str, Any]) -> str:
    lines = ["| StyleGAN2 (random weights) | batch 1 s / step | auto batch | s / row at auto | peak RSS / row |",
             "|---|---|---|---|---|"]
    for row in r["cost"]:
        b1 = next(b for b in row["batches"] if b["batch"] == 1)
        ba = next(b for b in row["batches"] if b["batch"] == row["auto_batch"])
        lines.append(f"| {row['resolution']} px | {b1['s_per_step']:.2f} | {row['auto_batch']} | "
                     f"{ba['s_per_row']:.2f} | {memory.human_bytes(ba['peak_rss_bytes'] / ba['batch'])} |")
    q = r.get("quality")
    if q:
        ths = sorted(q["rows"][0]["time_to"], key=float)
        lines += ["", f"| {q['resolution']} px, {q['targets']} own samples, ≤ {q['budget_s']:.0f} s each | "
                  + " | ".join(f"to {t} dB" for t in ths) + " | PSNR at the end |", "|---|" + "---|" * (len(ths) + 1)]
        for row in q["rows"]:
            lines.append(f"| {row['method']} | " + " | ".join(_t(row["time_to"][t], q["budget_s"]) for t in ths)
                         + f" | {row['final_mean_psnr']:.2f} dB |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="256,512,1024")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per point (after one warm-up)")
    ap.add_argument("--recovery-resolution", type=int, default=256, help="0 skips the time-to-quality section")
    ap.add_argument("--targets", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds per time-to-quality run")
    ap.add_argument("--reference-repo", type=Path, default=None,
                    help="a checkout of rosinality/stylegan2-pytorch or NVlabs/stylegan2-ada-pytorch to time too")
    ap.add_argument("--methods", default=None,
                    help="time-to-quality rows to run: defaults,full,coarse-32-64,coarse-64-short,rosinality,nvidia "
                         "(default: all but coarse-64-short)")
    ap.add_argument("--reuse-cost", action="store_true",
                    help="keep the cost section of the existing results file and run only the time-to-quality one")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--results-dir", type=Path, default=None, help="write there instead of the repository")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reference_repo is not None and not args.reference_repo.is_dir():
        ap.error(f"--reference-repo {args.reference_repo} is not a folder")
    results: dict[str, Any] = {"machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                                           "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
                                           "cpu_count": os.cpu_count()}}
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    with Progress(*columns) as progress:
        previous = (args.results_dir or ROOT / "benchmarks" / "results") / "real_size.json"
        if args.reuse_cost and previous.is_file():
            old = json.loads(previous.read_text())
            results["cost"] = old["cost"]
            if old.get("quality_long"):  # a separate longer run (see its note), kept as it was
                results["quality_long"] = old["quality_long"]
            results["machine"]["cost_date"] = old["machine"].get("cost_date", old["machine"]["date"])
        else:
            results["cost"] = cost_section([int(v) for v in args.resolutions.split(",") if v], args.repeats,
                                           args.reference_repo, progress)
        if args.recovery_resolution:
            results["quality"] = quality_section(args.recovery_resolution, args.targets, args.budget, progress,
                                                 args.methods.split(",") if args.methods else None)
    write_results("real_size", results, render(results), "real-size-table", readme_table(results), args.results_dir)


if __name__ == "__main__":
    main()
