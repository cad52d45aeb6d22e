"""``ganinv mix A B --layers A-B``: style mixing — A's code with the chosen w+ rows taken from B's.

Writes ``DIR/mix.png`` (A | B | mix), ``DIR/mix.npz`` (``w`` ``[1, num_ws, w_dim]``) and ``DIR/mix_only.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ganinv.cli.common import console
from ganinv.cli.groups import AlignOpt, Framing, ModelChoice, Runtime
from ganinv.cli.invert import check_out_dir
from ganinv.cli.latents import (
    EncoderOpt,
    MethodOpt,
    PriorOpt,
    SeedOpt,
    StepsOpt,
    convert_code,
    display_scale,
    latent_arrays,
    load_codes,
)
from ganinv.errors import InputError


def mix(
    a: Annotated[Path, typer.Argument(help="Base image or latent file (.npz, .npy, .pt: one code).",
                                      show_default=False)],
    b: Annotated[Path, typer.Argument(help="Image or latent file (one code) that gives the chosen layers.",
                                      show_default=False)],
    layers: Annotated[str, typer.Option(help="w+ rows taken from B, A-B inclusive (0 = coarsest), e.g. 4-7.",
                                        show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).",
                                          show_default=False)],
    method: MethodOpt = "optimize",
    encoder: EncoderOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = None,
    prior: PriorOpt = None,
    align: AlignOpt = "none",
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Style mixing: A with the rows LAYERS of B's w+ code; A | B | mix in OUT."""
    import torch

    from ganinv.editing import mix as mix_codes
    from ganinv.editing import parse_layers, render
    from ganinv.io import save_grid, save_image, save_npz

    check_out_dir(out_dir)
    Framing(align=align).check()
    dev = runtime.setup()
    G, name = model.load()
    G = G.to(dev)
    if "w+" not in G.latent_spaces:
        raise InputError(f"style mixing swaps rows of a w+ code, and this {G.arch} generator has only "
                         f"{', '.join(G.latent_spaces)}; use a StyleGAN model")
    rows = parse_layers(layers, G.num_ws)
    if rows is None:
        raise InputError("--layers is empty: give the w+ rows to take from B, e.g. 4-7")
    ca, cb = load_codes([a, b], G, name, out_dir, method=method, steps=steps, seed=seed, prior=prior,
                        allow_pti=False, one_per_input=True, align=align, encoder=encoder)
    la, lb = convert_code(ca, "w+", G), convert_code(cb, "w+", G)
    mixed = mix_codes(la, lb, rows)
    tiles = torch.cat([render(G, la, "w+", ca.noise), render(G, lb, "w+", cb.noise),
                       render(G, mixed, "w+", ca.noise)])
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = display_scale(G)
    grid = save_grid(tiles, out_dir / "mix.png", nrow=3, scale=scale)
    only = save_image(tiles[2], out_dir / "mix_only.png", scale=scale)
    npz = save_npz(out_dir / "mix.npz", latent_arrays(mixed, "w+"))
    console.print(f"wrote {escape(grid.name)} (A | B | mix), {escape(only.name)} and {escape(npz.name)} to "
                  f"{escape(str(out_dir))}/ — rows {rows.start}-{rows.stop - 1} of {G.num_ws} from "
                  f"{escape(Path(cb.source).name)}")
