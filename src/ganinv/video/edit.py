"""Editing a finished video inversion: one direction applied to every frame's code, then rendered (and pasted back).

Writes ``OUT/<name>.mp4`` (the edited aligned frames), with paste-back ``OUT/<name>.pasted.mp4``, ``OUT/<name>.npz``
(the edited codes ``[T, *shape]`` under ``w``/``z``, ``strengths`` ``[T]``, ``frame_index`` ``[T]``) and
``OUT/<name>.json`` (what was done).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganinv.errors import InputError
from ganinv.video.frames import open_source
from ganinv.video.runner import (
    FRAMES,
    Codes,
    load_frame_codes,
    load_track,
    read_manifest,
    settings_from_manifest,
    write_videos,
)

if TYPE_CHECKING:
    from rich.console import Console
    from torch import Tensor, nn

    from ganinv.cli.invert import PasteSettings
    from ganinv.generators.base import Generator

#: Names the edit outputs may not take (the inversion's own files).
RESERVED_NAMES = frozenset({"reconstruction", "summary", "codes", "manifest", "track", FRAMES, "aligned"})


def model_fingerprint(G: nn.Module) -> str:
    """A short hash (16 hex digits) of a generator's class, config and weights (device-independent): two runs
    with the same fingerprint used the same model."""
    h = hashlib.sha256()
    config = getattr(G, "config", None)
    h.update(repr(sorted(config().items()) if callable(config) else type(G).__name__).encode())
    for key, value in sorted(G.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().to("cpu").float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def parse_strength(text: str) -> tuple[float, float]:
    """``"2"`` → ``(2, 2)`` (constant); ``"0:3"`` → ``(0, 3)`` (a linear ramp from the first frame to the last)."""
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) not in (1, 2) or not all(parts):
        raise InputError(f"bad --strength {text!r}: give a number (e.g. 2) or a ramp FROM:TO (e.g. 0:3)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"bad --strength {text!r}: give a number (e.g. 2) or a ramp FROM:TO (e.g. 0:3)") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"bad --strength {text!r}: the values must be finite")
    return (values[0], values[-1])


def strengths_for(ramp: tuple[float, float], n: int) -> list[float]:
    """``n`` per-frame strengths: constant, or linear from ``ramp[0]`` (first frame) to ``ramp[1]`` (last)."""
    a, b = ramp
    if n == 1 or a == b:
        return [a] * n
    return [a + (b - a) * t / (n - 1) for t in range(n)]


def check_name(name: str) -> str:
    """An output name: letters, digits, ``.``, ``_``, ``-``; not one of the inversion's own files."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or "") or name.lower() in RESERVED_NAMES:
        raise InputError(f"--name {name!r}: use letters, digits, '.', '_' or '-', and none of "
                         f"{', '.join(sorted(RESERVED_NAMES))}")
    return name


def check_model(manifest: dict[str, Any], G: Generator, folder: Path) -> None:
    """Refuse a generator other than the one ``folder`` was inverted with (by weight fingerprint)."""
    want = manifest.get("model", {})
    if want.get("fingerprint") != model_fingerprint(G):
        hint = f" --model {want['model_arg']}" if want.get("model_arg") else " the same --generator options"
        if isinstance(want.get("class"), int):
            hint += f" --class {want['class']}"
        raise InputError(f"{folder} was inverted with another model ({want.get('name')}, {want.get('arch')} "
                         f"{want.get('resolution')} px); its codes do not fit this one: pass{hint}")


def load_codes(folder: Path, G: Generator) -> tuple[dict[str, Any], Codes, Tensor]:
    """A finished video inversion of ``G``: ``(manifest, per-frame Codes, the codes as rendered [T, *shape] —
    after the inversion's --smooth)``. An unfinished folder or another model's is an :class:`InputError`."""
    import torch

    from ganinv.io import load_npz

    manifest = read_manifest(folder)
    check_model(manifest, G, folder)
    settings = settings_from_manifest(manifest)
    track = load_track(folder, settings, G.resolution)
    codes = load_frame_codes(folder, track)
    path = folder / "codes.npz"
    if not path.is_file():
        raise InputError(f"{folder} is not finished (no codes.npz); run `ganinv invert-video` with the same options "
                         "again to finish it")
    arrays = load_npz(path)
    key = "z" if codes.space == "z" else "w"
    index = arrays.get("frame_index")
    if key not in arrays or index is None or [int(i) for i in index] != [r.index for r in codes.refs]:
        raise InputError(f"{path} does not match the frames of {folder}; run `ganinv invert-video` with the same "
                         "options again to rewrite it")
    latent = torch.from_numpy(np.ascontiguousarray(arrays[key], dtype=np.float32))
    if tuple(latent.shape) != tuple(codes.latent.shape):
        raise InputError(f"{path} holds codes of shape {list(latent.shape)}, the frames {list(codes.latent.shape)}")
    return manifest, codes, latent


def edit_folder(G: Generator, folder: Path, out_dir: Path, step: Tensor, ramp: tuple[float, float], *,
                layers: Any = None, paste: PasteSettings | None = None, name: str = "edit",
                record: dict[str, Any] | None = None, console: Console | None = None) -> dict[str, Any]:
    """Move every frame's code of the finished inversion in ``folder`` by ``strength_t · step`` (``step``: one unit
    of the direction, ``[D]`` in the edit space; ``strength_t`` from ``ramp``) on ``layers`` (w+ rows, None: all),
    render, and write the edited video(s) and codes to ``out_dir``. Returns the ``<name>.json`` record."""
    import torch

    from ganinv.editing import apply_direction, edit_space, to_space
    from ganinv.io import save_npz
    from ganinv.modelfile import atomic_write

    manifest, codes, latent = load_codes(folder, G)
    num_ws = getattr(G, "num_ws", None)
    space = edit_space(G)
    base_space = codes.space if codes.space in ("w", "w+") or space == "z" else space
    latent = to_space(latent.to(G.device), codes.space, base_space, G)
    values = strengths_for(ramp, latent.shape[0])
    edited_rows = []
    out_space = base_space
    for t in range(latent.shape[0]):
        row, out_space = apply_direction(latent[t:t + 1], step.to(latent), float(values[t]), space=base_space,
                                         layers=layers, num_ws=num_ws)
        edited_rows.append(row)
    edited = torch.cat(edited_rows).detach()
    source = selection = None
    if paste is not None:
        if manifest["framing"]["align"] == "none":
            raise InputError(f"--paste-back: {folder} was inverted with --align none (the whole frame), so there is "
                             "nothing to paste back into; invert with --align face or center")
        src_path = Path(manifest["source"]["path"])
        if not src_path.exists():
            raise InputError(f"cannot paste back: the source video {src_path} is missing; put it back there")
        source = open_source(src_path, manifest["source"]["fps"] if manifest["source"]["kind"] == "frames"
                             else None)
        if source.info.digest != manifest["source"]["digest"]:
            raise InputError(f"cannot paste back: {src_path} changed since it was inverted")
        selection = settings_from_manifest(manifest).selection
    out_dir.mkdir(parents=True, exist_ok=True)
    from fractions import Fraction

    fps = Fraction(manifest["source"]["rate"]) / int(manifest["selection"]["every"])
    written = write_videos(G, edited.cpu(), out_space, codes.noise, codes, out_dir, name, fps, source=source,
                           selection=selection, paste=paste, console=console,
                           description=f"rendering the edit ({name})")
    save_npz(out_dir / f"{name}.npz", {("z" if out_space == "z" else "w"): edited.cpu().numpy(),
                                       "space": np.array(out_space), "strengths": np.array(values),
                                       "frame_index": np.array([r.index for r in codes.refs])})
    summary = {"inversion": str(folder.resolve()), "model": manifest["model"], "space": out_space,
               "strength": list(ramp), "strengths": [round(v, 6) for v in values], "num_frames": len(values),
               "fps": float(fps), "codec": written["codec"],
               "files": {"video": written["video"], **({"pasted": written["pasted"]} if "pasted" in written else {}),
                         "codes": f"{name}.npz"},
               **(record or {})}
    atomic_write(out_dir / f"{name}.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, default=str) + "\n"))
    return summary


__all__ = ["RESERVED_NAMES", "check_model", "check_name", "edit_folder", "load_codes", "model_fingerprint",
           "parse_strength", "strengths_for"]
