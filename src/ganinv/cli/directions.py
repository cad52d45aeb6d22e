"""``ganinv directions``: compute editing directions for a model and save them in the field's formats.

* ``--method pca`` (GANSpace) and ``--method sefa`` → ``.npz`` with ``lat_comp`` ``[K, 1, D]``, ``lat_mean``
  ``[1, D]``, ``lat_stdev`` ``[K]``;
* ``--method interfacegan`` → ``.npy`` ``[1, D]`` unit normal (+ ``.npy.json`` metadata), from samples labelled by
  the bundled digit classifier (``--target-class K``: "towards digit K", one-vs-rest) or from your own
  ``--labels latent_file,score`` CSV.

``--preview PNG`` renders the directions on the mean code (rows: directions; columns: strengths −3…3 σ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ganinv.cli.common import console
from ganinv.cli.groups import ModelChoice, Runtime
from ganinv.cli.latents import display_scale
from ganinv.errors import InputError

METHODS = ("pca", "sefa", "interfacegan")
PREVIEW_STRENGTHS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
PREVIEW_ROWS = 8


def _check_out(method: str, out: Path) -> None:
    want = ".npy" if method == "interfacegan" else ".npz"
    if out.suffix.lower() != want:
        kind = "an InterFaceGAN boundary" if method == "interfacegan" else "GANSpace/SeFa components"
        raise InputError(f"--out {out.name}: {kind} is saved as {want} (e.g. --out directions{want})")
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name ending in {want}")


def directions(
    method: Annotated[str, typer.Option(help="pca (GANSpace), sefa (closed form) or interfacegan (linear SVM).",
                                        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .npz for pca/sefa, .npy for interfacegan.",
                                      show_default=False)],
    k: Annotated[int, typer.Option("--k", help="pca/sefa: components to keep.")] = 10,
    samples: Annotated[Optional[int], typer.Option(help="Codes sampled (pca: 20000; interfacegan with "
                                                   "--target-class: 10000).")] = None,
    layers: Annotated[Optional[str], typer.Option(help="sefa: factorise only the layers reading these w+ rows, "
                                                  "A-B inclusive (default all).")] = None,
    include_rgb: Annotated[bool, typer.Option("--include-rgb", help="sefa: also factorise the toRGB layers.")
                           ] = False,
    target_class: Annotated[Optional[int], typer.Option("--target-class", help="interfacegan: label samples with "
                                                        "the bundled digit classifier; positive = this digit.")
                            ] = None,
    labels: Annotated[Optional[Path], typer.Option(help="interfacegan: CSV of latent_file,score rows (latent files "
                                                   "relative to the CSV).")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="interfacegan --labels: score above this = positive "
                                                       "(default: the median; 0/1 scores are used as labels).")
                         ] = None,
    min_confidence: Annotated[float, typer.Option(help="interfacegan --target-class: drop samples the classifier "
                                                  "is less sure of.")] = 0.0,
    svm_c: Annotated[float, typer.Option("--svm-c", help="interfacegan: SVM regularisation C.")] = 1.0,
    whiten: Annotated[bool, typer.Option("--whiten/--no-whiten", help="interfacegan in W: train the SVM on "
                                         "PCA-whitened codes (InterFaceGAN's isotropic setting; docs/editing.md) "
                                         "or on raw W.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed of the samples.")] = 0,
    preview: Annotated[Optional[Path], typer.Option(help="Also render the directions on the mean code as a PNG "
                                                    "grid.")] = None,
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Compute editing directions (GANSpace, SeFa or InterFaceGAN) for a model and save them to OUT."""
    from ganinv.editing import classifier_labels, ganspace, interfacegan, parse_layers, sefa
    from ganinv.editing.directions import PCA_SAMPLES, binarize_scores, read_scores_csv

    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")
    _check_out(method, out)
    if samples is not None and samples < 1:
        raise InputError(f"--samples must be ≥ 1, got {samples}")
    if method != "interfacegan":
        given = [f for f, v in (("--target-class", target_class), ("--labels", labels), ("--threshold", threshold))
                 if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} apply to --method interfacegan only")
    else:
        if (target_class is None) == (labels is None):
            raise InputError("--method interfacegan needs labels: give --target-class K (the bundled classifier "
                             "labels samples) or --labels FILE.csv (latent_file,score rows), not both")
        if labels is not None and not labels.is_file():
            raise InputError(f"--labels {labels}: no such file; give a CSV of latent_file,score rows")
    if layers is not None and method != "sefa":
        raise InputError("--layers applies to --method sefa (edits choose their layers with `ganinv edit --layers`)")
    if preview is not None and preview.suffix.lower() != ".png":
        raise InputError(f"--preview {preview.name}: give a .png file name")
    dev = runtime.setup()
    G, name = model.load()
    G = G.to(dev)
    out.parent.mkdir(parents=True, exist_ok=True)

    if method in ("pca", "sefa"):
        if method == "pca":
            with console.status("PCA of sampled W codes…"):
                comps = ganspace(G, k=k, samples=samples or PCA_SAMPLES, seed=seed)
            what = ", ".join(f"{100 * float(v):.1f}%" for v in comps.weights[:5])
            console.print(f"explained variance of the first components: {what}")
        else:
            rows = parse_layers(layers, G.num_ws) if layers and hasattr(G, "num_ws") else None
            comps = sefa(G, k=k, layers=rows, include_rgb=include_rgb)
            what = ", ".join(f"{float(v):.3g}" for v in comps.weights[:5])
            console.print(f"SeFa over {len(comps.info['layers'])} modulated layers; top eigenvalues: {what}")
        comps.save(out)
        found = [comps.direction(i) for i in range(min(len(comps), PREVIEW_ROWS))]
        console.print(f"wrote {len(comps)} {method} components of {escape(name)} to {escape(str(out))} "
                      "(lat_comp [K, 1, D], lat_mean, lat_stdev)")
    else:
        if target_class is not None:
            if tuple(G.image_shape) != (1, 32, 32):
                c, h, w = G.image_shape
                raise InputError(f"--target-class labels samples with the bundled digit classifier, which reads "
                                 f"1×32×32 images; this generator makes {c}×{h}×{w}: give --labels FILE.csv instead")
            from ganinv import zoo

            classifier = zoo.load_classifier().to(dev)
            n = samples or 10_000
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
            with progress:
                task = progress.add_task("rendering and classifying samples", total=n)
                latents, lab, _ = classifier_labels(
                    G, classifier, target_class, n, seed=seed, min_confidence=min_confidence,
                    progress=lambda done, total: progress.update(task, completed=done))
            info = {"target_class": target_class, "labels": "classifier", "samples": n,
                    "min_confidence": min_confidence}
        else:
            assert labels is not None
            latents, scores, notes = read_scores_csv(labels, G)
            for note in notes:
                console.print(f"[yellow]note:[/] {escape(note)}")
            lab, thr = binarize_scores(scores, threshold)
            info = {"labels": str(labels), "threshold": thr}
        boundary = interfacegan(G, latents, lab, C=svm_c, seed=seed, whiten=whiten, info=info)
        boundary.save(out)
        acc = "n/a" if boundary.accuracy != boundary.accuracy else f"{100 * boundary.accuracy:.1f}%"
        console.print(f"InterFaceGAN boundary in {boundary.space}: {boundary.positives} positive / "
                      f"{boundary.negatives} negative codes, held-out balanced accuracy {acc}")
        console.print(f"wrote {escape(str(out))} ([1, {boundary.vector.numel()}] unit normal) and "
                      f"{escape(out.name)}.json")
        from ganinv.editing.directions import Direction, direction_sigma

        found = [Direction(boundary.vector, boundary.space, direction_sigma(G, boundary.vector), out.stem)]
    if preview is not None:
        from ganinv.editing import direction_grid
        from ganinv.editing.codes import edit_space
        from ganinv.io import save_grid

        space = edit_space(G)
        base = G.mean_latent(space).to(dev)
        grid = direction_grid(G, base, space, found, PREVIEW_STRENGTHS)
        save_grid(grid, preview, nrow=len(PREVIEW_STRENGTHS), scale=display_scale(G))
        console.print(f"wrote the preview {escape(str(preview))} (rows: directions; columns: "
                      f"{', '.join(f'{s:g}' for s in PREVIEW_STRENGTHS)} σ)")
