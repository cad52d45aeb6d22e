"""``ganinv edit``: move real images (inverted first) or latent codes along a direction, over a sweep of strengths.

Writes, per input, ``DIR/<stem>_edit.png`` (one tile per strength, left to right), ``DIR/<stem>_edit.gif``
(a smooth sweep over the strengths, there and back) and ``DIR/<stem>_edit.npz`` (the edited codes under
``w`` ``[S, num_ws, w_dim]`` or ``z`` ``[S, z_dim]``, and ``strengths`` ``[S]``), plus ``DIR/edit.json``.
Images are inverted first into ``DIR/inverted/`` (framed first with ``--align face|center``: one code per face).

``--paste-back`` (codes of framed photos: ``--align`` on this run, or ``.npz`` files that record ``alignment_json``)
also writes, per photo, ``DIR/<stem>_edit_pasted.png`` (one full-size photo per strength, left to right, every face
of the photo edited and pasted back) and ``DIR/<stem>_edit_pasted.gif`` (the sweep, frames at most
:data:`PASTED_GIF_SIDE` px across).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from ganinv.cli.common import console, print_table
from ganinv.cli.groups import Framing, ModelChoice, Runtime
from ganinv.cli.invert import PasteSettings, check_out_dir, paste_into_photo, read_alignment, read_original
from ganinv.cli.latents import (
    LATENT_SUFFIXES,
    Code,
    EncoderOpt,
    MethodOpt,
    PriorOpt,
    SeedOpt,
    StepsOpt,
    convert_code,
    digit_classes,
    digit_classifier,
    display_scale,
    latent_arrays,
    load_codes,
    parse_strengths,
    ping_pong,
)
from ganinv.errors import InputError

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

    from ganinv.photo import Alignment

#: Frames of the GIF's sweep from the smallest to the largest strength (then back).
SWEEP_FRAMES = 24
#: Longest side of the pasted-back GIF's frames (the strip keeps the photo's own size).
PASTED_GIF_SIDE = 512


def check_paste_inputs(inputs: list[Path], align: str) -> None:
    """Before anything runs: with ``--paste-back`` every image needs ``--align face|center`` and every latent file
    must be a ganinv ``.npz`` that records its alignment (missing files are left to the loader's error)."""
    for raw in inputs:
        suffix = raw.suffix.lower()
        if suffix in LATENT_SUFFIXES:
            if raw.is_file() and (suffix != ".npz" or read_alignment(raw) is None):
                raise InputError(f"--paste-back: {raw} records no alignment (only the .npz files of `ganinv invert "
                                 "--align face|center` do); invert the photo with --align face or center")
        elif align == "none" and raw.exists():
            raise InputError(f"--paste-back needs to know where {raw} sits in its photo: add --align face (faces) or "
                             "--align center (largest centred square)")


def _pasted_strip(photos: list[Image.Image]) -> Tensor:
    """Photos (same size) → ``[S, 3, H, W]`` in [0, 1]."""
    import numpy as np
    import torch

    return torch.stack([torch.from_numpy(np.asarray(p, dtype=np.float32) / 255.0).permute(2, 0, 1) for p in photos])


def _gif_frame(photo: Image.Image) -> Tensor:
    """A photo shrunk (Lanczos) to at most :data:`PASTED_GIF_SIDE` px across → ``[3, H, W]`` in [0, 1]."""
    from PIL import Image

    w, h = photo.size
    f = PASTED_GIF_SIDE / max(w, h)
    if f < 1:
        photo = photo.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    return _pasted_strip([photo])[0]


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
    method: MethodOpt = "optimize",
    encoder: EncoderOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    prior: PriorOpt = None,
    latent_format: Annotated[str, typer.Option("--latent-format", help="Also write the edited codes for another "
                                               "tool, named <stem>_edit_<k> (k: the strength's index): e4e "
                                               "(latents.pt), restyle (latents.npy), rosinality (<first>.pt) or "
                                               "pti (<name>/0.pt); ganinv / nvidia: only the _edit.npz files.")
                     ] = "ganinv",
    framing: Framing = Framing(),
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Edit images or latent codes along a direction: a strip and a GIF per input in OUT (with --paste-back, also
    the edits pasted back into each original photo)."""
    import torch

    from ganinv.editing import apply_direction, parse_layers, render, resolve_direction, to_wplus
    from ganinv.editing.codes import edit_space
    from ganinv.io import save_grid, save_npz, save_video

    values = parse_strengths(strengths)
    if units not in ("sigma", "raw"):
        raise InputError(f"--units must be sigma or raw, got {units!r}")
    check_out_dir(out_dir)
    framing.check(recorded=True)
    if framing.paste_back:
        check_paste_inputs(inputs, framing.align)
    dev = runtime.setup()
    G, name = model.load()
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
    paste = framing.paste_settings(G.resolution)
    codes = load_codes(inputs, G, name, out_dir, method=method, steps=steps, seed=seed, prior=prior,
                       align=framing.align, encoder=encoder)
    if paste is not None:
        lacking = [c.source for c in codes if c.alignment is None or c.photo is None]
        if lacking:
            raise InputError(f"--paste-back: {lacking[0]} has no recorded alignment (a stack of codes records none); "
                             "pass the per-image .npz files of `ganinv invert --align face|center`")

    out_dir.mkdir(parents=True, exist_ok=True)
    step = d.step(units).to(dev)
    sweep = torch.linspace(min(values), max(values), SWEEP_FRAMES).tolist() if len(values) > 1 else values
    scale = display_scale(G)
    classifier = digit_classifier(G)
    records = []
    foreign: list[tuple[str, str, torch.Tensor, str, torch.Tensor]] = []  # stem, source, codes, space, images
    # photo path → [(code index, renders [S, C, H, W], sweep renders [F, C, H, W])] for --paste-back
    to_paste: dict[str, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    description = f"editing {len(codes)} code{'s' if len(codes) != 1 else ''}"
    for ci, code in enumerate(track(codes, description=description, console=console, transient=True)):
        Gc = code.generator or G
        base_space = code.space if code.space in ("w", "w+") or space == "z" else space
        latent = convert_code(code, base_space, G)
        edited, out_space = apply_direction(latent, step, values, space=base_space, layers=rows, num_ws=num_ws)
        edited = edited[:, 0]  # [S, *shape]
        images = render(Gc, edited, out_space, code.noise)
        strip = save_grid(images, out_dir / f"{code.stem}_edit.png", nrow=len(values), scale=scale)
        frames_codes, frames_space = apply_direction(latent, step, sweep, space=base_space, layers=rows,
                                                     num_ws=num_ws)
        frames_t = render(Gc, frames_codes[:, 0], frames_space, code.noise)
        frames = list(frames_t.unbind(0))
        if paste is not None and code.photo is not None:
            key = str(Path(code.photo).resolve())
            to_paste.setdefault(key, []).append((ci, images.detach().cpu(), frames_t.detach().cpu()))
        gif = save_video(ping_pong(frames), out_dir / f"{code.stem}_edit.gif", fps=12, scale=scale)
        arrays = {**latent_arrays(edited, out_space), "strengths": torch.tensor(values).numpy()}
        npz = save_npz(out_dir / f"{code.stem}_edit.npz", arrays)
        records.append({"input": code.source, "stem": code.stem, "strip": strip.name, "gif": gif.name,
                        "codes": npz.name, "space": out_space, "classes": digit_classes(classifier, images)})
        if latent_format not in ("ganinv", "nvidia"):
            foreign.append((code.stem, code.source, edited.detach().cpu(), out_space, images.detach().cpu()))

    if paste is not None:
        _write_pasted(to_paste, codes, records, values, paste, out_dir)

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
               "inversion_method": method, "records": records, "latent_format": latent_format, "align": framing.align,
               **({"paste": {"mask": paste.mask_path, "color_match": paste.color_match}} if paste else {}),
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
    n_pasted = len({r["pasted_strip"] for r in records if "pasted_strip" in r})
    if n_pasted:
        console.print(f"wrote {n_pasted} photo strip(s) with the edits pasted back (_edit_pasted.png, .gif)")
    if written:
        console.print(f"wrote the edited codes in {latent_format}'s format: {escape(', '.join(written[:3]))}"
                      f"{' …' if len(written) > 3 else ''}")


def _write_pasted(to_paste: dict[str, list[tuple[int, Tensor, Tensor]]], codes: list[Code],
                  records: list[dict[str, Any]], values: list[float], paste: PasteSettings, out_dir: Path) -> None:
    """Per photo: every face's render at each strength pasted back (one photo per strength) →
    ``<name>_edit_pasted.png`` (strip of full-size photos) and ``.gif`` (the sweep); ``records`` (one per code, same
    order) gain the names.

    ``to_paste``: photo path → ``[(code index, renders [S, C, N, N], sweep renders [F, C, N, N])]``, values in [0, 1].
    The file is named by the photo's shared stem (``<stem>`` of ``<stem>_face<k>``), the code's stem for a photo
    with one code, else the photo's file stem."""
    from ganinv.cli.latents import ping_pong
    from ganinv.io import save_grid, save_video

    used = {r["stem"].lower() for r in records}
    for photo, items in to_paste.items():
        first = codes[items[0][0]]
        groups = {codes[i].group for i, _, _ in items}
        if len(items) == 1:
            name = first.stem
        elif len(groups) == 1 and first.group is not None:
            name = first.group
        else:
            base, k, name = Path(photo).stem, 0, Path(photo).stem
            while name.lower() in used:
                k += 1
                name = f"{base}-{k}"
        used.add(name.lower())
        original = read_original(photo)
        aligns: list[Alignment] = []
        for i, _, _ in items:
            al = codes[i].alignment
            assert al is not None  # edit() refused --paste-back for codes without one
            aligns.append(al)
        strip_photos = [paste_into_photo(photo, [(imgs[s], al) for (_, imgs, _), al in zip(items, aligns)],
                                         paste, original) for s in range(len(values))]
        strip = save_grid(_pasted_strip(strip_photos), out_dir / f"{name}_edit_pasted.png", nrow=len(values))
        n_frames = items[0][2].shape[0]
        gif_frames = [_gif_frame(paste_into_photo(photo, [(fr[f], al) for (_, _, fr), al in zip(items, aligns)],
                                                  paste, original)) for f in range(n_frames)]
        gif = save_video(ping_pong(gif_frames), out_dir / f"{name}_edit_pasted.gif", fps=12, scale=1)
        for (i, _, _), al in zip(items, aligns):
            records[i].update({"photo": photo, "alignment": json.loads(al.to_json()),
                               "pasted_strip": strip.name, "pasted_gif": gif.name})
