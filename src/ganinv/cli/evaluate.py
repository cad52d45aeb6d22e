"""``ganinv eval``: compare reconstructions with the real images they came from.

Images are paired by file stem (``RECON_DIR/digit_3.png`` ↔ ``REAL_DIR/digit_3.jpg``); image files without a
partner (e.g. ``comparison.png``, ``loss.png``) are counted and listed, other files are ignored. Both images of
a pair are converted to the same mode (RGB if either is colour, else greyscale). Pairs of different sizes are
an error naming them (resizing would change the numbers being measured): resize one set first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ganinv.cli.common import console, print_table
from ganinv.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_BATCH = 256


def _list_images(folder: Path, role: str) -> dict[str, Path]:
    """Image files of ``folder`` by stem; clear errors for a missing/empty folder or ambiguous stems."""
    if not folder.exists():
        raise InputError(f"{role} directory not found: {folder}")
    if not folder.is_dir():
        raise InputError(f"{role} path is not a directory: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise InputError(f"two images named {path.stem!r} in {folder} ({found[path.stem].name}, {path.name}); "
                             "keep one so pairs are unambiguous")
        found[path.stem] = path
    if not found:
        raise InputError(f"no images in {role} directory {folder} (looked for "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


def _to_array(img: Any, rgb: bool) -> Any:
    """PIL image → float32 ``[C, H, W]`` array in [0, 1] (C = 3 if ``rgb`` else 1)."""
    import numpy as np
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64) / 65535.0
        arr = np.clip(arr, 0, 1)[None].astype(np.float32)
        return np.repeat(arr, 3, axis=0) if rgb else arr
    if img.mode == "F":
        arr = np.clip(np.asarray(img, dtype=np.float32), 0, 1)[None]
        return np.repeat(arr, 3, axis=0) if rgb else arr
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # composite on black, as a generator's output would have no alpha
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = background.alpha_composite(img)
    arr = np.asarray(img.convert("RGB" if rgb else "L"), dtype=np.float32) / 255.0
    return arr.transpose(2, 0, 1) if rgb else arr[None]


def _is_grey(img: Any) -> bool:
    if img.mode in _GREY_MODES:
        return True
    if img.mode == "P":
        rgb = img.convert("RGB")
        r, g, b = rgb.split()
        return r.tobytes() == g.tobytes() == b.tobytes()
    return False


def _some(names: Any, limit: int = 5, sep: str = ", ") -> str:
    """The first ``limit`` of ``names`` (sorted), joined, with an ellipsis when there are more."""
    names = sorted(names)
    return sep.join(names[:limit]) + ("…" if len(names) > limit else "")


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def evaluate(
    real_dir: Annotated[Path, typer.Argument(help="Folder of the real (target) images.", show_default=False)],
    recon_dir: Annotated[Path, typer.Argument(help="Folder of the reconstructions (same file stems).",
                                              show_default=False)],
    json_path: Annotated[Path | None, typer.Option("--json", help="Where to write the results "
                                                      "(default RECON_DIR/eval.json).")] = None,
    no_classifier: Annotated[bool, typer.Option("--no-classifier", help="Skip class preservation (bundled digit "
                                                "classifier).")] = False,
    id_weights: Annotated[Path | None, typer.Option(
        "--id-weights", help="ArcFace IR-SE-50 state dict (model_ir_se50.pth, as pSp uses; or CurricularFace's): adds "
        "identity similarity (ID, cosine of face embeddings on pSp's 112 px crop of 256 px aligned faces) for RGB "
        "pairs; default $GANINV_ARCFACE, then ganinv's weights cache.")] = None,
) -> None:
    """Score reconstructions against real images: PSNR, SSIM, MS-SSIM, LPIPS (when available), ID (with ArcFace
    weights), class kept."""
    import numpy as np
    import torch

    from ganinv import metrics
    from ganinv.losses import identity as id_net
    from ganinv.losses.perceptual import lpips_available

    id_net.set_weights_path(id_weights)
    use_id = id_weights is not None or id_net.weights_available()
    if use_id:
        id_net.cached_backbone()  # a missing, corrupt or foreign file: one sentence, before any image is read
    real_files = _list_images(real_dir, "real")
    recon_files = _list_images(recon_dir, "reconstruction")
    stems = [s for s in recon_files if s in real_files]
    real_only = sorted(set(real_files) - set(recon_files))
    recon_only = sorted(set(recon_files) - set(real_files))
    if not stems:
        raise InputError(f"no reconstruction in {recon_dir} has a real image with the same file name (stem) in "
                         f"{real_dir}; reconstructions: {_some(recon_files)}; real: {_some(real_files)}")
    notes: list[str] = []
    if real_only or recon_only:
        notes.append(f"left out images without a partner: {len(recon_only)} in {recon_dir}"
                     f"{f' ({_some(recon_only)})' if recon_only else ''}, {len(real_only)} in {real_dir}"
                     f"{f' ({_some(real_only)})' if real_only else ''}")

    # load pairs, one mode per pair, and group by shape for batched metrics
    arrays: dict[str, tuple[Any, Any]] = {}
    mismatched = []
    for stem in stems:
        real_img, recon_img = _open(real_files[stem]), _open(recon_files[stem])
        if real_img.size != recon_img.size:
            mismatched.append(f"{stem} (real {real_img.size[0]}×{real_img.size[1]}, "
                              f"reconstruction {recon_img.size[0]}×{recon_img.size[1]})")
            continue
        rgb = not (_is_grey(real_img) and _is_grey(recon_img))
        arrays[stem] = (_to_array(real_img, rgb), _to_array(recon_img, rgb))
    if mismatched:
        raise InputError(f"{len(mismatched)} pair(s) differ in size: {_some(mismatched, sep='; ')}; "
                         "resize one set so each pair matches")
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for stem, (real_arr, _) in arrays.items():
        groups[tuple(real_arr.shape)].append(stem)

    lpips_net = "alex" if lpips_available("alex") else None
    if lpips_net is None:
        from ganinv.losses.perceptual import backbone_path

        notes.append(f"lpips left out: its AlexNet weights are not at {backbone_path('alex')}")
    classifier = None
    if not no_classifier:
        applicable = [stem for shape, group in groups.items() if shape == (1, 32, 32) for stem in group]
        if len(applicable) < len(stems):
            notes.append(f"class preservation skipped for {len(stems) - len(applicable)} pair(s): the bundled digit "
                         "classifier takes 1-channel 32×32 images")
        if applicable:
            from ganinv.zoo import load_classifier

            classifier = load_classifier()

    rows: dict[str, dict[str, Any]] = {}
    for shape, group in groups.items():
        for start in range(0, len(group), _BATCH):
            chunk = group[start:start + _BATCH]
            real = torch.from_numpy(np.stack([arrays[s][0] for s in chunk]))
            recon = torch.from_numpy(np.stack([arrays[s][1] for s in chunk]))
            use_cls = classifier if shape == (1, 32, 32) else None
            values = metrics.compute_all(real, recon, classifier=use_cls, lpips_net=lpips_net, identity=use_id)
            for i, stem in enumerate(chunk):
                row: dict[str, Any] = {"real": str(real_files[stem]), "reconstruction": str(recon_files[stem]),
                                       "channels": shape[0], "height": shape[1], "width": shape[2]}
                for key in ("psnr", "ssim", "ms_ssim", "lpips", "id"):
                    row[key] = round(float(values[key][i]), 6) if key in values else None
                row["class_kept"] = bool(values["class_kept"][i]) if "class_kept" in values else None
                rows[stem] = row
    if any(row["ms_ssim"] is None for row in rows.values()):
        notes.append("ms-ssim left out for images under 13 px")
    if use_id and any(row["id"] is None for row in rows.values()):
        notes.append("identity similarity left out for greyscale pairs (the face network takes RGB)")

    def mean(key: str) -> float | None:
        vals = [float(row[key]) for row in rows.values() if row[key] is not None]
        return sum(vals) / len(vals) if vals else None

    means = {key: mean(key) for key in ("psnr", "ssim", "ms_ssim", "lpips", "id", "class_kept")}

    show_lpips = any(row["lpips"] is not None for row in rows.values())
    show_cls = any(row["class_kept"] is not None for row in rows.values())
    show_id = any(row["id"] is not None for row in rows.values())
    table = Table(title=f"{len(rows)} pairs: {recon_dir} vs {real_dir}")
    table.add_column("image")
    for header in ("psnr (dB)", "ssim", "ms-ssim", *(["lpips"] if show_lpips else []), *(["ID"] if show_id else []),
                   *(["class kept"] if show_cls else [])):
        table.add_column(header, justify="right")
    for stem in stems:
        row = rows[stem]
        cells = [stem, _fmt(row["psnr"], 2), _fmt(row["ssim"], 4), _fmt(row["ms_ssim"], 4)]
        if show_lpips:
            cells.append(_fmt(row["lpips"], 4))
        if show_id:
            cells.append(_fmt(row["id"], 4))
        if show_cls:
            cells.append("—" if row["class_kept"] is None else ("yes" if row["class_kept"] else "no"))
        table.add_row(*cells)
    mean_cells = ["mean", _fmt(means["psnr"], 2), _fmt(means["ssim"], 4), _fmt(means["ms_ssim"], 4)]
    if show_lpips:
        mean_cells.append(_fmt(means["lpips"], 4))
    if show_id:
        mean_cells.append(_fmt(means["id"], 4))
    if show_cls:
        mean_cells.append(_fmt(None if means["class_kept"] is None else 100 * means["class_kept"], 1) + "%")
    table.add_section()
    table.add_row(*mean_cells, style="bold")
    print_table(table)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")

    target = json_path if json_path is not None else recon_dir / "eval.json"
    report = {
        "real_dir": str(real_dir), "recon_dir": str(recon_dir),
        "num_pairs": len(rows), "lpips_net": lpips_net if show_lpips else None,
        "mean": means,
        "pairs": {stem: rows[stem] for stem in stems},
        "unmatched": {"real": real_only, "reconstruction": recon_only},
        "notes": notes,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {target}")
