"""``ganinv interpolate A B``: the path between two images (inverted first) or latent codes.

Writes ``DIR/interpolation.png`` (the steps left to right), ``DIR/interpolation.gif`` (there and back) and
``DIR/interpolation.npz`` (the codes: ``w`` ``[N, num_ws, w_dim]`` / ``[N, w_dim]`` or ``z`` ``[N, z_dim]``).
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
    common_space,
    convert_code,
    display_scale,
    latent_arrays,
    load_codes,
    ping_pong,
)
from ganinv.errors import InputError


def interpolate(
    a: Annotated[Path, typer.Argument(help="First image or latent file (.npz, .npy, .pt: one code).",
                                      show_default=False)],
    b: Annotated[Path, typer.Argument(help="Second image or latent file (.npz, .npy, .pt: one code).",
                                      show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created if missing).",
                                          show_default=False)],
    steps_between: Annotated[int, typer.Option("--steps", help="Codes along the path, both ends included.")] = 8,
    how: Annotated[str, typer.Option("--how", help="lerp (straight line), slerp (great circle) or auto (slerp in "
                                     "z, lerp in w/w+).")] = "auto",
    method: MethodOpt = "optimize",
    encoder: EncoderOpt = None,
    inversion_steps: StepsOpt = None,
    seed: SeedOpt = None,
    prior: PriorOpt = None,
    align: AlignOpt = "none",
    model: ModelChoice = ModelChoice(),
    runtime: Runtime = Runtime(),
) -> None:
    """Interpolate between two images or codes: a strip, a GIF and the codes in OUT."""
    import torch

    from ganinv.editing import interpolate as interp
    from ganinv.editing import render
    from ganinv.io import save_grid, save_npz, save_video

    if steps_between < 2 or steps_between > 1000:
        raise InputError(f"--steps must be between 2 and 1000 (both ends included), got {steps_between}")
    if how not in ("auto", "lerp", "slerp"):
        raise InputError(f"--how must be lerp, slerp or auto, got {how!r}")
    check_out_dir(out_dir)
    Framing(align=align).check()
    dev = runtime.setup()
    G, name = model.load()
    G = G.to(dev)
    ca, cb = load_codes([a, b], G, name, out_dir, method=method, steps=inversion_steps, seed=seed, prior=prior,
                        allow_pti=False, one_per_input=True, align=align, encoder=encoder)
    space = common_space([ca, cb], G)
    la, lb = convert_code(ca, space, G), convert_code(cb, space, G)
    kind = ("slerp" if space == "z" else "lerp") if how == "auto" else how
    center = G.mean_latent(space).to(dev) if kind == "slerp" and space != "z" else None
    codes = interp(la, lb, steps_between, kind, center=center)[:, 0]  # [N, *shape]
    noise = None
    if ca.noise is not None or cb.noise is not None:
        stored = list(G.stored_noise()) if hasattr(G, "stored_noise") else None
        na, nb = ca.noise or stored, cb.noise or stored
        if na is not None and nb is not None:
            ts = torch.linspace(0, 1, steps_between, device=dev).view(-1, 1, 1, 1)
            noise = [torch.lerp(x.expand(1, *x.shape[1:]), y.expand(1, *y.shape[1:]), ts) for x, y in zip(na, nb)]
    images = render(G, codes, space, noise)
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = display_scale(G)
    strip = save_grid(images, out_dir / "interpolation.png", nrow=steps_between, scale=scale)
    gif = save_video(ping_pong(list(images.unbind(0))), out_dir / "interpolation.gif", fps=8, scale=scale)
    npz = save_npz(out_dir / "interpolation.npz", latent_arrays(codes, space))
    console.print(f"wrote {escape(strip.name)}, {escape(gif.name)} and {escape(npz.name)} to {escape(str(out_dir))}/"
                  f" — {steps_between} codes by {kind} in {space}")
