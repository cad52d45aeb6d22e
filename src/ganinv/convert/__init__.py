"""``ganinv convert``: write a generator (and its discriminator) in another checkpoint format, verified.

Inputs (read by :func:`ganinv.generators.checkpoints.load_generator`, never running code from them):
an NVIDIA ``stylegan2-ada-pytorch`` ``.pkl`` (``G_ema``, and ``D``), a rosinality ``.pt`` (``g_ema``,
and ``d`` of training checkpoints), a ganinv model folder (and its ``discriminator.safetensors``),
a bundled model name — and, with ``deltas``, a PTI result: the base model ``IN`` plus one image's
``<stem>.deltas.safetensors`` (:func:`ganinv.inverters.pti.apply_deltas`), as a standalone model.

Outputs: one module per format, registered in :data:`TARGETS`:

* ``rosinality`` (:mod:`ganinv.convert.rosinality`): a ``.pt`` file, StyleGAN2 only;
* ``ganinv`` (:mod:`ganinv.convert.ganinv_folder`): a model folder, any ganinv generator.

Without ``to``, ``OUT``'s suffix decides: ``.pt``/``.pth`` → rosinality; no suffix, ``.ganinv`` or an
existing folder → ganinv folder; ``.pkl`` and ``.safetensors`` are refused with a hint, other
suffixes ask for ``to``.

Verification: the model is written to a temporary file/folder beside ``OUT``, loaded back through
:func:`load_generator`, and :data:`~ganinv.convert.verify.N_RENDERS` seeded z (seed 0, each model's
stored noise maps) are rendered by the source and the written generator; the discriminators' logits
on those images are compared too. Only when every |difference| is ≤ :data:`TOLERANCE` (1e-5, float32)
is the temporary moved to ``OUT``; otherwise it is deleted and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganinv.convert.base import SourceModel, Target, describe_generator
from ganinv.convert.files import check_destination, make_temporary, move_into_place, remove
from ganinv.convert.ganinv_folder import GaninvFolderTarget
from ganinv.convert.rosinality import RosinalityTarget
from ganinv.convert.sources import load_source, resolve_deltas, resolve_input
from ganinv.convert.verify import N_RENDERS, TOLERANCE, compare_discriminators, compare_generators
from ganinv.errors import CheckpointError, InputError
from ganinv.generators.checkpoints import load_generator

__all__ = ["TARGETS", "TOLERANCE", "ConversionReport", "SourceModel", "Target", "choose_target", "convert_checkpoint"]

#: Output formats by ``--to`` name. A new format: a module with a :class:`Target` subclass, added here.
TARGETS: dict[str, Target] = {t.name: t for t in (RosinalityTarget(), GaninvFolderTarget())}


@dataclass
class ConversionReport:
    """What :func:`convert_checkpoint` wrote and how well it matched the source.

    Attributes:
        out: the written file or folder.
        target: the output format's label (``"rosinality .pt"``).
        generator: ``"256 px StyleGAN2"``.
        source_format: the input's format.
        discriminator: whether a discriminator was written.
        d_note: why not, when it was not (None when none was asked for).
        max_diff: max |diff| of the seeded renders (images in [0, 1]) and of ``w_avg``.
        d_max_diff: max |diff| of the discriminator logits (None without a discriminator).
        n_renders: number of seeded latents compared.
        notices: things the user should know about reading and writing.
    """

    out: Path
    target: str
    generator: str
    source_format: str
    discriminator: bool
    d_note: str | None
    max_diff: float
    d_max_diff: float | None
    n_renders: int = N_RENDERS
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``wrote OUT (rosinality .pt, 256 px StyleGAN2, D included); 4 seeded renders match …``."""
        d = "D included" if self.discriminator else "no D"
        text = (f"wrote {self.out} ({self.target}, {self.generator}, {d}); {self.n_renders} seeded renders match "
                f"the source: max |diff| {self.max_diff:.1e}")
        if self.d_max_diff is not None:
            text += f"; D logits max |diff| {self.d_max_diff:.1e}"
        return text


def choose_target(out: Path, to: str | None = None) -> Target:
    """The output format: ``to`` when given (a :data:`TARGETS` name), else from ``OUT``'s suffix (module notes).

    Raises:
        InputError: an unknown ``to``, or a suffix that names no format ganinv writes.
    """
    if to is not None:
        key = to.strip().lower()
        if key not in TARGETS:
            raise InputError(f"--to {to!r} is not a format ganinv writes; choose one of {', '.join(TARGETS)}")
        return TARGETS[key]
    suffix = out.suffix.lower()
    if out.is_dir():
        return TARGETS["ganinv"]
    for target in TARGETS.values():
        if suffix in target.suffixes:
            return target
    if suffix == ".pkl":
        raise InputError("ganinv does not write NVIDIA .pkl files (loading them needs NVIDIA's code); write a "
                         "rosinality .pt or a ganinv folder (an OUT without suffix)")
    if suffix == ".safetensors":
        raise InputError(f"a ganinv model is a folder (config.json + model.safetensors): give the folder's path, "
                         f"e.g. {out.with_suffix('')}")
    raise InputError(f"cannot tell the output format from {out.name!r}: use .pt for a rosinality checkpoint, a "
                     f"path without suffix for a ganinv folder, or --to {'|'.join(TARGETS)}")


def _fails(value: float) -> bool:
    return math.isnan(value) or value > TOLERANCE


def convert_checkpoint(inp: str, out: str | Path, *, to: str | None = None, deltas: str | Path | None = None,
                       force: bool = False, discriminator: bool = True, device: torch.device | str = "cpu",
                       progress: Callable[[str], None] | None = None) -> ConversionReport:
    """Convert ``inp`` to ``out`` and verify the result before it appears (see the module notes).

    Args:
        inp: a bundled model name or a checkpoint path (NVIDIA ``.pkl``, rosinality ``.pt``, ganinv folder).
        out: the file or folder to write.
        to: ``"rosinality"`` or ``"ganinv"``; None chooses from ``out``'s suffix.
        deltas: a PTI ``<stem>.deltas.safetensors`` (or its ``<stem>.npz``) made from ``inp``'s generator.
        force: replace an existing ``out`` (a file, or a ganinv model folder holding only its own files).
        discriminator: write the discriminator too when ``inp`` holds one that converts.
        device: where the verification renders run.
        progress: called with a short description of each slow step.

    Returns:
        the :class:`ConversionReport`.

    Raises:
        InputError: unknown format, an unsupported input/format pair, ``out`` existing or overlapping the input.
        UnknownModelError, CheckpointError: missing/corrupt/unsafe input (the loader's errors), deltas of another
            generator, or a written model that does not reproduce the source within :data:`TOLERANCE`.
    """
    say = progress or (lambda _msg: None)
    out = Path(out).expanduser()
    target = choose_target(out, to)
    in_path, _bundled = resolve_input(inp)
    delta_path = resolve_deltas(Path(deltas).expanduser()) if deltas is not None else None
    inputs = [in_path] + ([delta_path] if delta_path is not None else [])
    check_destination(out, folder=target.is_folder, force=force, inputs=inputs)

    source = load_source(inp, deltas=delta_path, discriminator=discriminator, device=device, progress=say)
    notices = list(source.notices)
    refusal = target.refusal(source.G)
    if refusal:
        raise InputError(f"cannot convert {inp} to a {target.label}: {refusal}")
    if source.D is not None and (why := target.discriminator_refusal(source.D)):
        source.D, source.d_note = None, why
    if source.d_note:
        notices.append(f"no discriminator written: {source.d_note}")

    tmp, created = make_temporary(out, folder=target.is_folder)
    try:
        say(f"writing the {target.label}")
        target.write(source, tmp, name=out.name, notices=notices)
        say("verifying: loading it back and rendering seeded latents")
        written, _ = load_generator(tmp, device=device)
        max_diff, images = compare_generators(source.G, written)
        if _fails(max_diff):
            raise CheckpointError(f"verification failed: the written {target.label} renders {N_RENDERS} seeded "
                                  f"latents differently from the source (max |diff| {max_diff:.2e} > "
                                  f"{TOLERANCE:.0e}); nothing was written to {out}")
        d_diff: float | None = None
        if source.D is not None:
            written_d = target.load_discriminator(tmp)
            if written_d is None:
                raise CheckpointError(f"verification failed: the written {target.label} holds no discriminator; "
                                      f"nothing was written to {out}")
            lo, hi = source.G.output_range
            d_diff = compare_discriminators(source.D, written_d.to(device), images * (hi - lo) + lo)
            if _fails(d_diff):
                raise CheckpointError(f"verification failed: the written discriminator's logits differ from the "
                                      f"source's (max |diff| {d_diff:.2e} > {TOLERANCE:.0e}); nothing was written "
                                      f"to {out}")
        move_into_place(tmp, out, folder=target.is_folder)
    except BaseException:
        remove(tmp, created)
        raise
    return ConversionReport(out=out, target=target.label, generator=describe_generator(source.G),
                            source_format=source.format + (" + PTI deltas" if delta_path else ""),
                            discriminator=source.D is not None, d_note=source.d_note, max_diff=max_diff,
                            d_max_diff=d_diff, notices=notices)
