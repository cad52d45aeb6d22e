"""``ganinv models``: list the bundled models.

Each model is described from its ``config.json`` (its recorded summary: parameter count, latent spaces, image
shape), so listing needs neither torch nor the weights; a config without a summary is built to describe it.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ganinv.cli.common import human_size, print_table


def spaces_text(summary: dict[str, Any]) -> str:
    """``z 128 · w 128 · w+ 8×128 · noise ×7`` from a generator's summary."""
    parts = [f"{name} {'×'.join(map(str, shape))}" for name, shape in summary["latent_spaces"].items()]
    if summary.get("noise_maps"):
        parts.append(f"noise ×{summary['noise_maps']}")
    return " · ".join(parts)


def models() -> None:
    """List the bundled models: kind, architecture, resolution, latent spaces, size."""
    from ganinv import zoo

    table = Table(title="bundled models")
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("kind", "arch", "resolution", "latent spaces", "parameters", "size", "quality"):
        table.add_column(col)
    for name in zoo.available():
        cfg = zoo.describe(name)
        folder = zoo.model_dir(name)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        info = zoo.summary(name)
        meta = cfg.get("meta", {})
        if cfg.get("kind") == "generator":
            spaces = spaces_text(info)
            c, h, w = info["image_shape"]
            res = f"{h}×{w}×{c}"
            q = meta.get("quality")
            quality = (f"conf {q['confidence']:.2f}, FD {q['fd_ratio']:.1f}× floor" if q else "")
        elif cfg.get("kind") in ("encoder", "hyper-encoder"):
            target = meta.get("generator", {})
            hyper = cfg.get("kind") == "hyper-encoder"
            spaces = (f"Δ weights of {target.get('name', '?')}" if hyper
                      else f"→ {target.get('space', '?')} of {target.get('name', '?')}")
            res = f"{cfg['config'].get('resolution', '?')}"
            best = meta.get("selected") or {}
            vals = ([best["val_pivot_psnr"]] if hyper and "val_pivot_psnr" in best else []) + \
                [v for k, v in sorted(best.items()) if k.startswith("val_psnr_")]
            quality = ("val PSNR " + " → ".join(f"{v:.1f}" for v in vals) + " dB") if vals else ""
        else:
            spaces, res = "–", f"{cfg['config'].get('resolution', '?')}"
            acc = meta.get("heldout_accuracy")
            quality = f"held-out acc {acc:.2%}" if acc is not None else ""
        table.add_row(name, cfg.get("kind", "?"), cfg["config"].get("arch", "?"), res, spaces,
                      f"{info['parameters'] / 1e6:.2f} M", human_size(size), quality)
    print_table(table)
