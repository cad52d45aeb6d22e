"""``ganinv restore``: restore degraded images with the generator as a prior.

``ganinv restore IMAGE... --task T [task options] --out DIR [--simulate] [--hypotheses K]``

- With ``--simulate`` each input is a clean image: it is degraded by the task first, and the
  restoration (and the classical baseline) are scored against it (PSNR/SSIM).
- Without it each input *is* the observation: an image file for tasks whose observation is an
  image (inpaint, sr, deblur, denoise, colorize — at the observation's exact size, e.g. 8×8 for
  ``sr --factor 4`` on a 32 px model), or a ``.npz``/``.npy`` array for any task (``cs`` and
  ``phase`` observations are not images). ``--simulate`` writes ``<stem>.observation.npz``, which
  this command reads back — with the task options it was made with.

Writes per input ``<stem>.png`` (best restoration) and ``<stem>.npz`` (its latent),
``<stem>.hyp<k>.png`` for K > 1 hypotheses, ``<stem>.observation.npz`` (+ ``.png`` when the
observation can be shown), ``<stem>.baseline.png``, then ``grid.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ganinv.cli.common import MaxMemoryOpt, apply_max_memory, console, print_table
from ganinv.cli.groups import Framing, ModelChoice, Runtime
from ganinv.cli.invert import _num
from ganinv.errors import GaninvError, InputError

if TYPE_CHECKING:
    from torch import Tensor

    from ganinv.cli.invert import Target

    from ganinv.physics.tasks import Task

OBSERVATION_SUFFIX = ".observation"
RESERVED = frozenset({"grid", "summary"})


def _parse_ints(text: str | None, name: str, count: int) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{name} must be {count} whole numbers separated by commas, got {text!r}") from None
    if len(values) != count:
        raise InputError(f"{name} must be {count} whole numbers separated by commas, got {text!r}")
    return values


def read_observation_file(path: Path) -> tuple[Tensor, dict[str, Any] | None]:
    """A ``.npz`` (key ``y``; ``task`` JSON when written by ``--simulate``) or ``.npy`` observation →
    ``(y [1, ...] float32, {"task", "options"} or None)``."""
    import numpy as np
    import torch

    from ganinv.io import load_npy, load_npz

    try:  # the readers check each array's header first: no pickles, no oversized or truncated arrays
        if path.suffix.lower() == ".npy":
            arr, meta = load_npy(path), None
        else:
            data = load_npz(path)
            if "y" not in data:
                raise InputError(f"{path} holds no observation: an .npz observation needs an array 'y' "
                                 f"(found: {', '.join(data) or 'nothing'})")
            arr = data["y"]
            meta = json.loads(str(data["task"])) if "task" in data else None
    except GaninvError:
        raise
    except Exception as exc:  # noqa: BLE001 — any parse failure is a bad user file
        raise InputError(f"{path} is not a readable observation array ({type(exc).__name__}: {exc})") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: the observation must be numeric, got dtype {arr.dtype}")
    y = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return y, meta


def read_observation_image(path: Path, task: Task) -> Tensor:
    """An image file as an observation of ``task``, at exactly the observation's size."""
    from PIL import Image, UnidentifiedImageError

    from ganinv.io import load_target

    c, h, w = task.observation_shape
    try:
        with Image.open(path) as im:
            size = im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path} is not an image Pillow can read ({exc})") from None
    if size != (w, h):
        raise InputError(f"{path.name} is {size[0]}×{size[1]} px, but a {task.describe()} observation is {w}×{h} "
                         f"for this model (to degrade a clean image first, add --simulate)")
    image, _ = load_target(path, c, h)
    return image.unsqueeze(0)


def classical_baseline(task: Task, y: Tensor) -> tuple[Tensor | None, str]:
    """The classical restoration the GAN prior is compared with, with fixed default settings
    (``benchmarks/restoration.py`` tunes them on validation digits instead)."""
    from ganinv.physics import baselines as BL

    name = task.name
    if name == "sr":
        return BL.bicubic_upsample(y, task.options["factor"]), "bicubic"
    if name == "inpaint":
        return BL.tv_inpaint(y, task.physics), "TV inpainting"
    if name == "deblur":
        return BL.wiener_deconv(y, task.kernel), "Wiener deconvolution"  # type: ignore[attr-defined]
    if name == "denoise":
        return BL.tv_denoise(y), "TV denoising"
    if name == "colorize":
        return BL.gray_to_rgb(y), "gray"
    if name == "cs":
        lasso = BL.LassoDCT(alpha=0.3)
        if tuple(task.image_shape) == (1, 32, 32):  # digit-sized: choose λ on held-out validation digits
            from ganinv.train.encoder import validation_split

            lasso.fit_alpha(task.physics._A.cpu(), validation_split(20)[0], noise_sigma=task.noise_sigma)
        return lasso.reconstruct(task.physics._A, y, task.image_shape), "Lasso (DCT)"
    if name == "phase":
        return BL.hio_phase_retrieval(y, task.image_shape, oversampling=task.options["oversampling"]), "HIO"
    return None, ""


def restore(
    inputs: Annotated[list[Path], typer.Argument(help="Clean images (with --simulate), else observations: images "
                                                 "or .npz/.npy arrays; folders allowed.", show_default=False)],
    task_name: Annotated[str, typer.Option("--task", "-t", help="inpaint, sr, deblur, denoise, colorize, cs or "
                                           "phase.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).",
                                          show_default=False)],
    simulate: Annotated[bool, typer.Option("--simulate", help="Degrade the (clean) inputs first and score the "
                                           "restorations against them.")] = False,
    hypotheses: Annotated[int, typer.Option("--hypotheses", "-k", help="Independent restorations per input, "
                                            "ranked by data fit.")] = 1,
    mask: Annotated[Optional[Path], typer.Option(help="inpaint: mask image/.npy of the model's size, white = "
                                                 "observed.")] = None,
    box: Annotated[Optional[str], typer.Option(help="inpaint: missing rectangle x,y,w,h (default: centred, half "
                                               "the side).")] = None,
    ratio: Annotated[Optional[float], typer.Option(help="inpaint: fraction of pixels kept, at random.")] = None,
    factor: Annotated[Optional[int], typer.Option(help="sr: downsampling factor 2, 4 or 8 (default 4).")] = None,
    sigma: Annotated[Optional[float], typer.Option(help="deblur: Gaussian kernel std in px (1.5); denoise: noise "
                                                   "std (0.2).")] = None,
    kernel: Annotated[Optional[Path], typer.Option(help="deblur: blur kernel (.npy or image).")] = None,
    m: Annotated[Optional[int], typer.Option("--m", help="cs: number of measurements (100).")] = None,
    matrix_seed: Annotated[Optional[int], typer.Option(help="inpaint --ratio / cs: seed of the random mask or "
                                                       "matrix (0).")] = None,
    oversampling: Annotated[Optional[int], typer.Option(help="phase: Fourier oversampling factor (2).")] = None,
    noise_sigma: Annotated[Optional[float], typer.Option(help="Std of added Gaussian measurement noise (default "
                                                         "0; deblur and cs 0.01).")] = None,
    method: Annotated[str, typer.Option(help="optimize (one code) or multicode (mGANprior).")] = "optimize",
    codes: Annotated[Optional[int], typer.Option(help="multicode: number of codes (10).")] = None,
    layer: Annotated[Optional[int], typer.Option(help="multicode: composition layer (1-based; default 2 = 8×8).")
                     ] = None,
    space: Annotated[Optional[str], typer.Option(help="Latent space (default: w, or z for z-only models).")
                     ] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimisation steps (500).")] = None,
    restarts: Annotated[Optional[int], typer.Option(help="optimize: restarts per hypothesis (2).")] = None,
    prior: Annotated[Optional[float], typer.Option(help="Weight of the latent prior (≥ 0).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated noise and of hypothesis 0.")] = 0,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also run the classical baseline.")
                        ] = True,
    max_memory: MaxMemoryOpt = None,
    framing: Framing = Framing(),
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Restore degraded images (inpainting, super-resolution, deblurring, denoising, colorization, compressed
    sensing, phase retrieval) with the generator as the prior.

    With --align face|center, photos are framed first (clean photos with --simulate; observed photos at the
    observation's size, e.g. model size / factor for sr) and, with --paste-back, each restoration is pasted back
    into its photo (<stem>.pasted.png)."""
    import numpy as np
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from ganinv import metrics as M
    from ganinv.cli.invert import (alignment_arrays, check_out_dir, load_targets, paste_into_photo, save_pil,
                                   unique_stems)
    from ganinv.io import collect_images, save_image, save_labeled_grid, save_npz
    from ganinv.modelfile import atomic_write
    from ganinv.physics import TASK_NAMES, make_task
    from ganinv.restore import restore as run_restore

    check_out_dir(out_dir)
    framing.check()
    apply_max_memory(max_memory)
    if task_name not in TASK_NAMES:
        raise InputError(f"unknown task {task_name!r}; available: {', '.join(TASK_NAMES)}")
    if method not in ("optimize", "multicode"):
        raise InputError(f"--method must be optimize or multicode for restoration, got {method!r}")
    if hypotheses < 1:
        raise InputError(f"--hypotheses must be ≥ 1, got {hypotheses}")
    dev = runtime.setup()
    for flag, value, ok in (("--codes", codes, "multicode"), ("--layer", layer, "multicode"),
                            ("--restarts", restarts, "optimize")):
        if value is not None and method != ok:
            raise InputError(f"{flag} applies to --method {ok} only")
    task_given = {"mask": mask, "box": _parse_ints(box, "--box", 4), "ratio": ratio, "factor": factor,
                  "sigma": sigma, "kernel": kernel, "m": m, "seed": matrix_seed, "oversampling": oversampling,
                  "noise_sigma": noise_sigma}
    if task_name == "denoise" and noise_sigma is not None:
        raise InputError("denoise: the noise is the task; give its std with --sigma, not --noise-sigma")
    task_opts = {k: v for k, v in task_given.items() if v is not None}

    G, name = model.load(need_class=True)  # (a conditional model: the prior and start need a class)
    G = G.to(dev)
    task = make_task(task_name, tuple(G.image_shape), **task_opts)  # bad task options fail here, before any work
    obs_shape = tuple(task.observation_shape)
    square = task.observation_is_image and len(obs_shape) == 3 and obs_shape[1] == obs_shape[2]
    obs_c, obs_h = (obs_shape[0], obs_shape[1]) if square else (0, 0)
    if framing.align != "none" and not simulate and not square:
        raise InputError(f"--align frames photos, and a {task.describe()} observation is not a square image; "
                         "frame clean photos with --simulate, or give the observations as arrays without --align")
    paste = framing.paste_settings(G.resolution)
    options = {k: v for k, v in {"codes": codes, "layer": layer, "space": space, "steps": steps,
                                 "restarts": restarts, "prior": prior, "lr": lr}.items() if v is not None}

    # ----- inputs
    paths, problems = collect_images(inputs) if simulate else _collect_observations(inputs)
    failures = [{"input": str(p), "error": why} for p, why in problems]
    for f in failures:
        console.print(f"[yellow]skipped:[/] {escape(f['input'])}: {escape(f['error'])}")
    clean: Tensor | None = None
    framed: dict[str, Target] = {}  # stem → its target, for photos framed with --align
    if simulate:
        targets, load_failures = load_targets(paths, G, out_dir, framing.align)
        failures += load_failures
        if not targets:
            raise InputError("none of the inputs could be read as an image"
                             + (" and framed: " + "; ".join(f["error"] for f in load_failures[:3])
                                if framing.align != "none" and load_failures else ""))
        stems = [t.stem for t in targets]
        sources = [t.source for t in targets]
        framed = {t.stem: t for t in targets if t.alignment is not None}
        clean = torch.stack([t.image for t in targets])
        y = task.simulate(clean.to(G.device), seed=seed).cpu()
    else:
        ys, stems_raw, sources = [], [], []
        if framing.align != "none":  # photos are framed at the observation's size; arrays are read as they are
            photos = [p for p in paths if p.suffix.lower() not in (".npz", ".npy")]
            paths = [p for p in paths if p.suffix.lower() in (".npz", ".npy")]
            targets, load_failures = load_targets(photos, G, out_dir, framing.align, size=obs_h, channels=obs_c)
            failures += load_failures
            for t in targets:
                ys.append(task.check_observation(t.image.unsqueeze(0)))
                stems_raw.append(Path(f"{t.stem}.png"))
                sources.append(t.source)
                framed[t.stem] = t
        for p in paths:
            try:
                if p.suffix.lower() in (".npz", ".npy"):
                    obs, meta = read_observation_file(p)
                    if meta is not None and (meta.get("task") != task_name or _differs(meta["options"], task)):
                        raise InputError(f"{p.name} was simulated for {meta.get('task')}({meta.get('options')}); "
                                         f"run with the same --task and options, not {task.describe()}")
                    ys.append(task.check_observation(obs))
                elif task.observation_is_image:
                    ys.append(task.check_observation(read_observation_image(p, task)))
                else:
                    raise InputError(f"{p.name}: a {task_name} observation is not an image; give the "
                                     f".observation.npz that --simulate wrote (or a .npy array)")
            except GaninvError as exc:
                failures.append({"input": str(p), "error": str(exc)})
                console.print(f"[yellow]skipped:[/] {escape(str(exc))}")
                continue
            stems_raw.append(p)
            sources.append(str(p))
        if not ys:
            raise InputError("none of the inputs could be read as an observation: "
                             + "; ".join(f["error"] for f in failures[:3]))
        y = torch.cat(ys)
        stems = [s.removesuffix(OBSERVATION_SUFFIX) for s in unique_stems(stems_raw, out_dir)]
        framed = {stem: framed[Path(raw).stem] for stem, raw in zip(stems, stems_raw) if Path(raw).stem in framed}
    renamed = [s if s.lower() not in RESERVED else f"{s}-1" for s in stems]
    framed = {new: framed[old] for old, new in zip(stems, renamed) if old in framed}
    stems = renamed
    B, K = y.shape[0], hypotheses

    # ----- restore, with one progress bar over all runs and steps
    n_steps = options.get("steps", 500)
    total = K * n_steps
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console)
    bar = progress.add_task(f"{task.describe()} · {B} input{'s' if B != 1 else ''} · {method}", total=total,
                            loss="–")
    done = 0

    def callback(run: int, step: int, state: Any) -> None:
        nonlocal done, total
        done += 1
        if done > total:
            total = done + K * n_steps // 2
            progress.update(bar, total=total)
        progress.update(bar, completed=done, loss=f"{float(state.loss.mean()):.4g}")

    with progress:
        result = run_restore(G, y.to(G.device), task, method=method, hypotheses=K, seed=seed, callback=callback,
                             **options)
        progress.update(bar, completed=total)
    base_img, base_name = (None, "")
    if baseline:
        with console.status(f"classical baseline for {task_name}"):
            base_img, base_name = classical_baseline(task, y.to(G.device))
        base_img = base_img.cpu() if base_img is not None else None

    # ----- score
    best = result.best
    imgs = result.images
    score_best = best
    score_base = base_img
    scored_note = None
    if clean is not None and task_name == "phase":  # the twin image has the same magnitudes
        from ganinv.physics.baselines import align_flip

        score_best = align_flip(best, clean, max_shift=None)
        score_base = align_flip(base_img, clean, max_shift=None) if base_img is not None else None
        scored_note = "phase retrieval scored up to its ambiguities: the 180° twin image and shifts"
    psnr = M.psnr(score_best, clean) if clean is not None else None
    ssim = M.ssim(score_best, clean) if clean is not None else None
    b_psnr = M.psnr(score_base.clamp(0, 1), clean) if clean is not None and score_base is not None else None
    b_ssim = M.ssim(score_base.clamp(0, 1), clean) if clean is not None and score_base is not None else None

    # ----- write
    out_dir.mkdir(parents=True, exist_ok=True)
    preview = task.preview(y)
    files: dict[str, str] = {}
    records = []
    per_seconds = result.seconds / B
    for i, stem in enumerate(stems):
        rec: dict[str, Any] = {"input": sources[i], "stem": stem, "task": task_name, "options": task.options,
                               "restoration": f"{stem}.png", "latent": f"{stem}.npz"}
        save_npz(out_dir / f"{stem}{OBSERVATION_SUFFIX}.npz", {"y": y[i:i + 1].numpy(),
                                                              "task": np.array(task.to_json())})
        rec["observation"] = f"{stem}{OBSERVATION_SUFFIX}.npz"
        if preview is not None:
            save_image(preview[i], out_dir / f"{stem}{OBSERVATION_SUFFIX}.png")
            rec["observation_image"] = f"{stem}{OBSERVATION_SUFFIX}.png"
        save_image(best[i], out_dir / f"{stem}.png")
        result.hypothesis_result(i, 0).save(out_dir, [stem], num_ws=getattr(G, "num_ws", None))
        if K > 1:
            rec["hypotheses"] = []
            for k in range(K):
                save_image(imgs[i, k], out_dir / f"{stem}.hyp{k}.png")
                rec["hypotheses"].append({"image": f"{stem}.hyp{k}.png", "data_fit": _num(result.data_fit[i, k], 8),
                                          "run": int(result.rank[i, k])})
            rec["diversity"] = _num(result.diversity[i])
        rec["data_fit"] = _num(result.data_fit[i, 0], 8)
        if psnr is not None and ssim is not None:
            rec["psnr"], rec["ssim"] = _num(psnr[i], 4), _num(ssim[i])
        if base_img is not None:
            save_image(base_img[i].clamp(0, 1), out_dir / f"{stem}.baseline.png")
            rec["baseline"] = {"method": base_name, "image": f"{stem}.baseline.png",
                               "data_fit": _num(task.data_fit(base_img[i:i + 1].to(G.device),
                                                              y[i:i + 1].to(G.device))[0], 8)}
            if b_psnr is not None and b_ssim is not None:
                rec["baseline"].update(psnr=_num(b_psnr[i], 4), ssim=_num(b_ssim[i]))
        rec["seconds"] = _num(per_seconds, 4)
        t = framed.get(stem)
        if t is not None and t.alignment is not None and t.photo is not None:  # the framing travels with the code
            npz = out_dir / f"{stem}.npz"
            with np.load(npz) as z:
                arrays = dict(z)
            save_npz(npz, {**arrays, **alignment_arrays(t.alignment, t.photo)})
            rec.update(photo=t.photo, alignment=json.loads(t.alignment.to_json()))
        records.append(rec)
    if paste is not None:  # each photo once, with all its faces' best restorations
        by_photo: dict[str, list[int]] = {}
        for i, stem in enumerate(stems):
            t = framed.get(stem)
            if t is not None and t.alignment is not None and t.photo is not None:
                by_photo.setdefault(t.photo, []).append(i)
        for photo, idx in by_photo.items():
            group = framed[stems[idx[0]]].group or stems[idx[0]]
            out_img = paste_into_photo(photo, [(best[i], framed[stems[i]].alignment) for i in idx], paste)
            pasted = save_pil(out_img, out_dir / f"{group}.pasted.png").name
            for i in idx:
                records[i]["pasted"] = pasted
        files["pasted"] = ", ".join(sorted({r["pasted"] for r in records if "pasted" in r}))

    # grid: one row per input — [clean] | observation | [baseline] | hypotheses (best first)
    C = G.image_shape[0]
    cols: list[Tensor] = []
    if clean is not None:
        cols.append(clean)
    if preview is not None:
        cols.append(_fit(preview, G.image_shape))
    if base_img is not None:
        cols.append(base_img.clamp(0, 1))
    cols += [imgs[:, k] for k in range(K)]
    cols = [c if c.shape[1] == C else c.expand(-1, C, -1, -1) if c.shape[1] == 1 else c.mean(1, keepdim=True)
            for c in cols]
    rows = torch.stack(cols, dim=1).flatten(0, 1)
    columns = (["clean"] if clean is not None else []) + (["observation"] if preview is not None else []) + \
        ([base_name] if base_img is not None else []) + [f"hypothesis {k}" for k in range(K)]
    labels = (["input (clean)"] if clean is not None else []) + \
        (["observation" if clean is not None else "input (observed)"] if preview is not None else []) + \
        ([f"baseline: {base_name}"] if base_img is not None else []) + \
        [f"hypothesis {k}" + (" (best fit)" if k == 0 and K > 1 else "") for k in range(K)]
    files["grid"] = str(save_labeled_grid(rows[: 64 * len(cols)], labels, out_dir / "grid.png",
                                          scale=4 if B <= 16 else 2))

    def mean(values: list[Any]) -> float | None:
        vals = [float(v) for v in values if v is not None]
        return sum(vals) / len(vals) if vals else None

    summary = {
        "model": name, "task": task_name, "task_options": task.options, "method": method, "hypotheses": K,
        "simulate": simulate, "seed": seed, "options": options, "settings": result.results[0].settings,
        "seconds": _num(result.seconds, 3), "grid_columns": columns, "note": scored_note,
        "mean": {"psnr": _num(mean([r.get("psnr") for r in records]), 4),
                 "ssim": _num(mean([r.get("ssim") for r in records])),
                 "data_fit": _num(mean([r["data_fit"] for r in records]), 8),
                 "baseline_psnr": _num(mean([r.get("baseline", {}).get("psnr") for r in records]), 4),
                 "baseline_ssim": _num(mean([r.get("baseline", {}).get("ssim") for r in records]))},
        "records": records, "failures": failures, "files": files, "align": framing.align,
        **({"paste": {"mask": paste.mask_path, "color_match": paste.color_match}} if paste is not None else {}),
    }
    atomic_write(out_dir / "summary.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, default=str) + "\n"))

    # ----- report
    table = Table(title=f"{name} · {task.describe()} · {method} · {B} input{'s' if B != 1 else ''} "
                        f"({result.seconds:.1f} s)")
    table.add_column("input", overflow="fold")
    table.add_column("data fit", justify="right")
    if clean is not None:
        table.add_column("psnr (dB)", justify="right")
        table.add_column("ssim", justify="right")
    if base_img is not None and clean is not None:
        table.add_column(f"{base_name} psnr", justify="right")
    if K > 1:
        table.add_column("diversity", justify="right")
    for r in records:
        cells = [r["stem"], f"{r['data_fit']:.3g}"]
        if clean is not None:
            cells += [f"{r['psnr']:.2f}", f"{r['ssim']:.4f}"]
        if base_img is not None and clean is not None:
            cells.append(f"{r['baseline']['psnr']:.2f}")
        if K > 1:
            cells.append(f"{r['diversity']:.4f}")
        table.add_row(*cells)
    print_table(table)
    if scored_note:
        console.print(f"[dim]{scored_note}[/]")
    console.print(f"wrote {B} restoration{'s' if B != 1 else ''}, observations, grid.png and summary.json to "
                  f"{escape(str(out_dir))}/")
    if files.get("pasted"):
        n_p = len(files["pasted"].split(", "))
        console.print(f"wrote {n_p} photo{'s' if n_p != 1 else ''} with the restorations pasted back (.pasted.png)")
    if failures:
        console.print(f"[bold red]{len(failures)} input(s) failed[/]")
        for f in failures:
            console.print(f"  {escape(f['input'])}: {escape(f['error'])}")
        raise typer.Exit(1)


def _differs(saved: dict[str, Any], task: Task) -> bool:
    """Whether options stored with a simulated observation differ from the task's (ignoring file paths)."""
    for key, value in saved.items():
        if key in ("mask", "kernel"):
            continue
        if task.options.get(key) != value:
            return True
    return False


def _fit(images: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Resize previews (e.g. an 8×8 low-res observation, a 64×64 spectrum) to the image size for the grid."""
    import torch.nn.functional as F

    h, w = shape[1:]
    if tuple(images.shape[-2:]) == (h, w):
        return images
    mode = "nearest" if images.shape[-1] < w else "area"
    return F.interpolate(images, size=(h, w), mode=mode)


def _collect_observations(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files as given, and the images and .npz/.npy arrays inside folders."""
    from ganinv.io import IMAGE_EXTENSIONS, collect_images

    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for p in inputs:
        if p.is_dir():  # the observations --simulate wrote, else every array and image in the folder
            arrays = sorted(q for q in p.iterdir()
                            if q.suffix.lower() in (".npz", ".npy") and not q.name.startswith("."))
            ours = [q for q in arrays if q.name.endswith(OBSERVATION_SUFFIX + ".npz")]
            if ours or arrays:
                files += ours or arrays
                continue
            images, probs = collect_images([p])
            files += [q for q in images if q.suffix.lower() in IMAGE_EXTENSIONS]
            problems += probs
        elif p.exists():
            files.append(p)
        else:
            problems.append((p, "no such file or folder"))
    if not files and not problems:
        problems.append((Path(str(inputs[0]) if inputs else "."), "no observation files found"))
    return files, problems
