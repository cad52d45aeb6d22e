"""``ganinv edit``: move real images (inverted first) or latent codes along a direction, over a sweep of strengths.

Writes, per input, ``DIR/<stem>_edit.png`` (one tile per strength, left to right), ``DIR/<stem>_edit.gif``
(a smooth sweep over the strengths, there and back) and ``DIR/<stem>_edit.npz`` (the edited codes under
``w`` ``[S, num_ws, w_dim]`` or ``z`` ``[S, z_dim]``, and ``strengths`` ``[S]``), plus ``DIR/edit.json``.
Images are inverted first into ``DIR/inverted/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from ganinv.cli.common import (GeneratorOpt, ImageShapeOpt, LatentDimOpt, ModelOpt, OutputRangeOpt, WeightsOpt,
                               console, print_table, resolve_generator)
from ganinv.cli.invert import check_out_dir
from ganinv.cli.latents import (
    DeviceOpt,
    MethodOpt,
    PriorOpt,
    SeedOpt,
    StepsOpt,
    ThreadsOpt,
    convert_code,
    digit_classes,
    digit_classifier,
    display_scale,
    latent_arrays,
    load_codes,
    parse_strengths,
    ping_pong,
    setup_torch,
)
from ganinv.errors import InputError

#: Frames of the GIF's sweep from the smallest to the largest strength (then back).
SWEEP_FRAMES = 24


def edit(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders of images and/or latent files: .npz "
                                                 "(`ganinv invert`, NVIDIA projected_w.npz), .npy, ReStyle/HyperStyle "
                                                 "latents.npy, e4e latents.pt (every code in it), PTI <image>/0.pt, "
                                                 "rosinality projector .pt.", show_default=False)],
    direction: Annotated[str, typer.Option("--direction", "-d", help="A direction file (.npy InterFaceGAN "
                                           "boundary, .npz GANSpace/SeFa components, FILE.npz:K, e4e/SFE "
                                           "interfacegan_directions/*.pt, ganspace_pca/*_pca.pt[:K]) or pca:K / "
                                           "sefa:K computed on the fly (K from 0; sefa:K factorises the "
                                           "--layers rows).",
                                           show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).",
                                          show_default=False)],
    strengths: Annotated[str, typer.Option(help="Comma-separated strengths, in units of the codes' standard "
                                           "deviation along the direction (see --units).")] = "-3,-1.5,0,1.5,3",
    layers: Annotated[Optional[str], typer.Option(help="w+ rows to move, A-B inclusive (e.g. 0-3 = coarse); "
                                                  "default all.")] = None,
    component: Annotated[Optional[int], typer.Option(help="Component of a .npz / *_pca.pt direction file "
                                                     "(default 0).")
                         ] = None,
    units: Annotated[str, typer.Option(help="sigma: strength 1 = one standard deviation of the model's codes "
                                       "along the direction; raw: strength 1 = one latent unit (InterFaceGAN's "
                                       "convention for a Gaussian z, where both agree).")] = "sigma",
    model: ModelOpt = None,
    generator: GeneratorOpt = None, weights: WeightsOpt = None, latent_dim: LatentDimOpt = None,
    image_shape: ImageShapeOpt = None, output_range: OutputRangeOpt = None,
    method: MethodOpt = "optimize",
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    prior: PriorOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    latent_format: Annotated[str, typer.Option("--latent-format", help="Also write the edited codes for another "
                                               "tool, named <stem>_edit_<k> (k: the strength's index): e4e "
                                               "(latents.pt), restyle (latents.npy), rosinality (<first>.pt) or "
                                               "pti (<name>/0.pt); ganinv / nvidia: only the _edit.npz files.")
                     ] = "ganinv",
) -> None:
    """Edit images or latent codes along a direction: a strip and a GIF per input in OUT."""
    import torch

    from ganinv.editing import apply_direction, parse_layers, render, resolve_direction, to_wplus
    from ganinv.editing.codes import edit_space
    from ganinv.io import save_grid, save_npz, save_video

    values = parse_strengths(strengths)
    if units not in ("sigma", "raw"):
        raise InputError(f"--units must be sigma or raw, got {units!r}")
    check_out_dir(out_dir)
    dev = setup_torch(threads, device)
    G, name = resolve_generator(model, generator, weights, latent_dim, image_shape, output_range)
    G = G.to(dev)
    num_ws = getattr(G, "num_ws", None)
    space = edit_space(G)
    from ganinv.latentfiles import check_format

    latent_format = check_format(latent_format, space=space)
    if layers is not None and num_ws is None:
        raise InputError(f"--layers selects rows of w+, and this {G.arch} generator has only {space}; drop --layers")
    rows = parse_layers(layers, num_ws) if num_ws is not None else None
    notes: list[str] = []
    d = resolve_direction(direction, G, component=component, layers=rows, notes=notes)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    codes = load_codes(inputs, G, name, out_dir, method=method, steps=steps, seed=seed, prior=prior)

    out_dir.mkdir(parents=True, exist_ok=True)
    step = d.step(units).to(dev)
    sweep = torch.linspace(min(values), max(values), SWEEP_FRAMES).tolist() if len(values) > 1 else values
    scale = display_scale(G)
    classifier = digit_classifier(G)
    records = []
    foreign: list[tuple[str, str, torch.Tensor, str, torch.Tensor]] = []  # stem, source, codes, space, images
    for code in track(codes, description=f"editing {len(codes)} code{'s' if len(codes) != 1 else ''}",
                      console=console, transient=True):
        Gc = code.generator or G
        base_space = code.space if code.space in ("w", "w+") or space == "z" else space
        latent = convert_code(code, base_space, G)
        edited, out_space = apply_direction(latent, step, values, space=base_space, layers=rows, num_ws=num_ws)
        edited = edited[:, 0]  # [S, *shape]
        images = render(Gc, edited, out_space, code.noise)
        strip = save_grid(images, out_dir / f"{code.stem}_edit.png", nrow=len(values), scale=scale)
        frames_codes, frames_space = apply_direction(latent, step, sweep, space=base_space, layers=rows,
                                                     num_ws=num_ws)
        frames = list(render(Gc, frames_codes[:, 0], frames_space, code.noise).unbind(0))
        gif = save_video(ping_pong(frames), out_dir / f"{code.stem}_edit.gif", fps=12, scale=scale)
        arrays = {**latent_arrays(edited, out_space), "strengths": torch.tensor(values).numpy()}
        npz = save_npz(out_dir / f"{code.stem}_edit.npz", arrays)
        records.append({"input": code.source, "stem": code.stem, "strip": strip.name, "gif": gif.name,
                        "codes": npz.name, "space": out_space, "classes": digit_classes(classifier, images)})
        if latent_format not in ("ganinv", "nvidia"):
            foreign.append((code.stem, code.source, edited.detach().cpu(), out_space, images.detach().cpu()))

    written = []
    if foreign:
        from ganinv.latentfiles import LatentBatch, write_latents

        wp = [to_wplus(c, sp, num_ws) if sp == "w" and any(f[3] == "w+" for f in foreign) else c
              for _, _, c, sp, _ in foreign]
        batch_space = "w+" if any(f[3] == "w+" for f in foreign) else foreign[0][3]
        batch = LatentBatch.from_generator(
            G, [f"{stem}_edit_{k}" for stem, _, c, _, _ in foreign for k in range(c.shape[0])],
            [source for _, source, c, _, _ in foreign for _ in range(c.shape[0])], torch.cat(wp), batch_space,
            images=torch.cat([f[4] for f in foreign]))
        written = [str(p.relative_to(out_dir)) for p in write_latents(latent_format, out_dir, batch)]
    summary = {"model": name, "direction": direction, "direction_name": d.name, "space": d.space,
               "sigma": d.sigma, "units": units, "strengths": values, "layers": layers or "all",
               "inversion_method": method, "records": records, "latent_format": latent_format,
               **({"latent_files": written} if written else {})}
    (out_dir / "edit.json").write_text(json.dumps(summary, indent=2) + "\n")
    if any(r["classes"] is not None for r in records):
        table = Table(title=f"predicted digit at each strength ({d.name}, σ = {d.sigma:.3g})")
        table.add_column("input", overflow="fold")
        for v in values:
            table.add_column(f"{v:g}", justify="right")
        for r in records:
            table.add_row(r["stem"], *[str(c) for c in r["classes"]])
        print_table(table)
    where = f"layers {layers}" if layers else "all layers"
    listed = ", ".join(f"{v:g}" for v in values)
    console.print(f"wrote {len(records)} strip(s) (_edit.png), GIF(s) (_edit.gif) and codes (_edit.npz) to "
                  f"{escape(str(out_dir))}/ — {escape(d.name)} on {where}, strengths {listed} ({units})")
    if written:
        console.print(f"wrote the edited codes in {latent_format}'s format: {escape(', '.join(written[:3]))}"
                      f"{' …' if len(written) > 3 else ''}")
