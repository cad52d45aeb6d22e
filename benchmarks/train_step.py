"""Time one GAN training iteration (D step with R1 + G step) of the StyleGAN2 recipe per discriminator.

The residual discriminator (``train-gan --discriminator residual``) trained at ~2 s per iteration on an
H200 in the fourth training round, against ~14 iterations/s for the plain one; this script measures both in
one process on any device, as a ratio, and prints the residual step's most expensive operators
(``torch.profiler``) so the cause can be found where it shows.

For each discriminator: a ``GanTrainer`` with the shipped StyleGAN2 generator's architecture (random
weights), batch ``--batch-size``, R1 γ 0.01; ``--warmup`` untimed iterations, then ``--steps`` timed ones
(synchronised on CUDA). Writes ``benchmarks/results/train_step[-DEVICE].json`` and ``docs/train-step[-DEVICE].md``.

Run: ``python benchmarks/train_step.py [--device cuda] [--batch-size 64] [--steps 10]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ganinv.train.gan import DISCRIMINATORS, GanTrainConfig, GanTrainer

ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer: GanTrainer, real: torch.Tensor, warmup: int, steps: int) -> float:
    """Mean seconds per training iteration after ``warmup`` untimed ones."""
    for _ in range(warmup):
        trainer.step(real)
    sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step(real)
    sync(trainer.device)
    return (time.perf_counter() - t0) / steps


def top_ops(trainer: GanTrainer, real: torch.Tensor, n: int = 12) -> list[dict[str, Any]]:
    """The ``n`` operators with the most self time in one profiled iteration."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        trainer.step(real)
        sync(trainer.device)
    device_time = "self_device_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    rows = []
    for e in prof.key_averages():
        rows.append({"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
                     "self_device_ms": getattr(e, device_time, 0.0) / 1e3})
    return sorted(rows, key=lambda r: -r["self_device_ms"])[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    real = torch.rand(args.batch_size, 1, 32, 32, device=device) * 2 - 1
    results: dict[str, Any] = {"machine": {"device": str(device), "threads": torch.get_num_threads(),
                                           "torch": torch.__version__, "platform": platform.platform(),
                                           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda"
                                           else None},
                               "batch_size": args.batch_size, "steps": args.steps, "rows": {}}
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in DISCRIMINATORS:
            cfg = GanTrainConfig(arch="stylegan2", discriminator=name, batch_size=args.batch_size, r1_gamma=0.01,
                                 iterations=10**6)
            trainer = GanTrainer(Path(tmp) / name, cfg, classifier=None, device=device)
            sec = time_steps(trainer, real, args.warmup, args.steps)
            params = sum(p.numel() for p in trainer.D.parameters())
            results["rows"][name] = {"seconds_per_iteration": sec, "d_parameters": params}
            trainers[name] = trainer
            print(f"{name:<9} D {params / 1e6:.2f} M params  {sec * 1e3:8.1f} ms / iteration", flush=True)
        base = results["rows"]["dcgan"]["seconds_per_iteration"]
        for row in results["rows"].values():
            row["ratio_to_dcgan"] = row["seconds_per_iteration"] / base
        results["residual_top_ops"] = top_ops(trainers["residual"], real)
    suffix = "" if device.type == "cpu" else f"-{device.type}"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"train_step{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.docs_dir / f"train-step{suffix}.md").write_text(render(results))
    print(f"wrote {args.results_dir / f'train_step{suffix}.json'} and {args.docs_dir / f'train-step{suffix}.md'}")


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    where = m["gpu"] or f"{m['threads']} CPU threads"
    lines = ["# One StyleGAN2 training iteration per discriminator", "",
             f"Generated by `python benchmarks/train_step.py --device {m['device']}` (torch {m['torch']}, {where}, "
             f"{m['platform']}); batch {r['batch_size']}, R1 γ 0.01, mean of {r['steps']} iterations after warm-up, "
             "random weights. Times are from one shared machine: compare the rows with each other.", "",
             "| discriminator | D parameters | ms / iteration | × the plain D |", "|---|---|---|---|"]
    for name, row in r["rows"].items():
        lines.append(f"| `{name}` | {row['d_parameters'] / 1e6:.2f} M | {row['seconds_per_iteration'] * 1e3:.1f} | "
                     f"{row['ratio_to_dcgan']:.2f} |")
    lines += ["", "Operators with the most self time in one iteration with the residual discriminator:", "",
              "| operator | calls | self time (device), ms | self CPU time, ms |", "|---|---|---|---|"]
    for op in r["residual_top_ops"]:
        lines.append(f"| `{op['op']}` | {op['calls']} | {op['self_device_ms']:.1f} | {op['self_cpu_ms']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
