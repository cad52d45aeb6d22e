"""``ganinv models``: list the bundled models."""

from __future__ import annotations

from rich.table import Table

from ganinv.cli.common import describe_spaces, human_size, print_table


def models() -> None:
    """List the bundled models: kind, architecture, resolution, latent spaces, size."""
    from ganinv import zoo
    from ganinv.generators.base import Generator

    table = Table(title="bundled models")
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("kind", "arch", "resolution", "latent spaces", "parameters", "size", "quality"):
        table.add_column(col)
    for name in zoo.available():
        cfg = zoo.describe(name)
        folder = zoo.model_dir(name)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        module = zoo.load(name)
        params = sum(p.numel() for p in module.parameters())
        meta = cfg.get("meta", {})
        if isinstance(module, Generator):
            spaces = describe_spaces(module)
            res = f"{module.resolution}×{module.resolution}×{module.channels}"
            q = meta.get("quality")
            quality = (f"conf {q['confidence']:.2f}, FD {q['fd_ratio']:.1f}× floor" if q else "")
        elif cfg.get("kind") == "encoder":
            target = meta.get("generator", {})
            spaces = f"→ {target.get('space', '?')} of {target.get('name', '?')}"
            res = f"{cfg['config'].get('resolution', '?')}"
            best = meta.get("selected") or {}
            vals = [v for k, v in sorted(best.items()) if k.startswith("val_psnr_")]
            quality = ("val PSNR " + " → ".join(f"{v:.1f}" for v in vals) + " dB") if vals else ""
        else:
            spaces, res = "–", f"{cfg['config'].get('resolution', '?')}"
            acc = meta.get("heldout_accuracy")
            quality = f"held-out acc {acc:.2%}" if acc is not None else ""
        table.add_row(name, cfg.get("kind", "?"), cfg["config"].get("arch", "?"), res, spaces,
                      f"{params / 1e6:.2f} M", human_size(size), quality)
    print_table(table)
