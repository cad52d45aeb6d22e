"""What ``ganinv train-encoder`` trains on besides generated pairs: the user's own images (``--data``), split
into training and held-out validation images; and where the generator (and its discriminator) came from.

* :func:`load_user_images` reads folders (recursive), glob patterns, image files and ``.txt``/``.csv`` lists
  (:mod:`ganinv.dataset.sources`) with :func:`ganinv.io.load_target` at the generator's channels and
  resolution. Like every ganinv reader it *converts* what does not match — colour → grey by luma, grey →
  colour by repetition, any size centre-cropped and resized — and says so in a summary of notes; a file that
  cannot be read is skipped with a note, and sources that yield no readable image are an :class:`InputError`.
* The validation split is decided per image by a seeded hash of its stable key (:func:`is_validation`), so
  it does not depend on the order of the sources, on where the data lives or on how many other images there
  are; the same seed always holds out the same images.
* :func:`generator_source` records how the generator was given (``--model`` / ``--generator`` ..., paths made
  absolute), so an exported encoder can say which generator it needs; :func:`discriminator_for` finds that
  generator's discriminator where its checkpoint holds one (for the ``dfeat`` loss).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganinv.errors import GaninvError, InputError

#: Share of CPU memory budget (:func:`ganinv.memory.budget`) that the training images may take in memory as
#: 8-bit pixels; a larger set is read from disk for every batch instead.
PRELOAD_SHARE = 0.25


def is_validation(key: str, seed: int, fraction: float) -> bool:
    """Whether the image with stable ``key`` is held out for validation: a seeded hash of the key, read as a
    number in [0, 1), is below ``fraction`` (about ``fraction`` of the images, the same ones for every run
    with this ``seed``)."""
    digest = hashlib.blake2b(f"encoder-val\x00{int(seed)}\x00{key}".encode("utf-8", "surrogateescape"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < fraction


def _hash_rank(key: str, seed: int) -> int:
    digest = hashlib.blake2b(f"encoder-val\x00{int(seed)}\x00{key}".encode("utf-8", "surrogateescape"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ImageBank:
    """Training images by index: ``take(idx)`` → ``[k, C, R, R]`` float32 in [0, 1] on ``device``.

    Holds either a float tensor (tests, MNIST), 8-bit pixels ``[N, C, R, R]`` (a user's images that fit
    :data:`PRELOAD_SHARE` of the memory budget; 4× smaller than float32, exact for 8-bit files read at their
    own size), or file paths read with :func:`ganinv.io.load_target` for every batch.
    """

    def __init__(self, *, images: Tensor | None = None, paths: list[str] | None = None,
                 shape: tuple[int, int, int] | None = None) -> None:
        if (images is None) == (paths is None):
            raise ValueError("give images or paths")
        if paths is not None and shape is None:
            raise ValueError("paths need the (C, R, R) shape to read them at")
        self.images, self.paths = images, paths
        self.shape: tuple[int, int, int] = tuple(images.shape[1:]) if images is not None else shape  # type: ignore

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else int(self.images.shape[0])  # type: ignore[union-attr]

    def to(self, device: torch.device | str) -> ImageBank:
        """Move float images to ``device`` (8-bit pixels and paths stay where they are; batches move)."""
        if self.images is not None and self.images.is_floating_point():
            self.images = self.images.to(device)
        return self

    def take(self, idx: Tensor, device: torch.device | str) -> Tensor:
        """The images at ``idx`` (``[k]`` int64): ``[k, C, R, R]`` float32 in [0, 1] on ``device``."""
        if self.images is not None:
            x = self.images[idx.to(self.images.device)]
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x
            return x.to(device)
        from ganinv.io import load_target

        C, R, _ = self.shape
        rows = [load_target(self.paths[int(i)], C, R)[0] for i in idx]  # type: ignore[index]
        return torch.stack(rows).to(device) if rows else torch.zeros((0, *self.shape), device=device)


@dataclass
class UserImages:
    """A user's images read for encoder training.

    Attributes:
        train: the training images (:class:`ImageBank`).
        val: held-out validation images ``[V, C, R, R]`` float32 in [0, 1].
        train_keys, val_keys: the images' stable keys (:mod:`ganinv.dataset.sources`), in reading order.
        notes: a summary of what the reader did (conversions, resizing, skipped files), one line each.
        digest: a hash of the sources' keys and the split (a resumed run must see the same data).
    """

    train: ImageBank
    val: Tensor
    train_keys: list[str]
    val_keys: list[str]
    notes: list[str] = field(default_factory=list)
    digest: str = ""

    def describe(self) -> dict[str, Any]:
        """The record an exported encoder keeps: counts, notes and the data digest."""
        return {"train_images": len(self.train_keys), "val_images": len(self.val_keys), "notes": self.notes,
                "digest": self.digest}


def _summarise(notes: Counter[str], n: int, limit: int = 6) -> list[str]:
    out = [f"{count} of {n} image(s): {note}" for note, count in notes.most_common(limit)]
    if len(notes) > limit:
        out.append(f"… and {len(notes) - limit} other kind(s) of change")
    return out


def load_user_images(sources: list[str], channels: int, resolution: int, *, seed: int = 0,
                     val_fraction: float = 0.1, max_val: int = 200, device: torch.device | str = "cpu"
                     ) -> UserImages:
    """Read ``sources`` as ``channels × resolution × resolution`` images and split them (see the module notes).

    Args:
        sources: folders (recursive), glob patterns, image files, ``.txt``/``.csv`` lists of paths.
        channels, resolution: the generator's (every image is converted to them, with notes).
        seed: salt of the validation hash (:func:`is_validation`).
        val_fraction: share of the images held out, in (0, 0.5]; at least one image is, at most ``max_val``
            are (the first by hash order; the rest of the held-out share is not trained on either).
        max_val: the most held-out images validation uses.
        device: where the validation images go.

    Raises:
        InputError: a missing source, no image files, no readable image, fewer than 2 readable images, or a
            bad ``val_fraction``.
    """
    from ganinv.dataset.sources import check_sources, iter_items
    from ganinv.io import load_target
    from ganinv.memory import budget

    if not 0 < val_fraction <= 0.5:
        raise InputError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    if channels not in (1, 3):
        raise InputError(f"--data images are read as grey or RGB; this generator makes {channels}-channel "
                         "images, so train it without --data (generated pairs only)")
    check_sources(sources)
    items = list(iter_items(sources, base_seed=0))
    shown = ", ".join(str(s) for s in sources)
    if not items:
        from ganinv.io import IMAGE_EXTENSIONS

        raise InputError(f"--data {shown}: no image files there (looked for "
                         f"{' '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}, in sub-folders too)")
    shape = (channels, resolution, resolution)
    per_image = channels * resolution * resolution  # bytes as 8-bit pixels
    preload = len(items) * per_image <= PRELOAD_SHARE * budget("cpu")
    changes: Counter[str] = Counter()
    failures: list[str] = []
    kept: list[tuple[str, str, Tensor | None]] = []  # (key, path, pixels or None)
    for item in items:
        try:
            img, notes = load_target(item.path, channels, resolution)
        except InputError as exc:
            failures.append(str(exc))
            continue
        for note in notes:
            changes[note] += 1
        kept.append((item.key, item.path, img if preload or is_validation(item.key, seed, val_fraction) else None))
    if not kept:
        raise InputError(f"--data {shown}: none of the {len(items)} image file(s) could be read; the first "
                         f"problem: {failures[0]}")
    if len(kept) < 2:
        raise InputError(f"--data {shown}: only 1 readable image; at least 2 are needed (one is held out for "
                         "validation)")
    held = [k for k in kept if is_validation(k[0], seed, val_fraction)]
    if not held:  # a tiny set can miss the fraction altogether: hold out the image with the smallest hash
        held = [min(kept, key=lambda k: _hash_rank(k[0], seed))]
    if len(held) == len(kept):
        held = held[:-1]
    held_keys = {k[0] for k in held}
    train = [k for k in kept if k[0] not in held_keys]
    val = sorted(held, key=lambda k: _hash_rank(k[0], seed))[:max_val]
    order = {k[0]: i for i, k in enumerate(kept)}
    val = sorted(val, key=lambda k: order[k[0]])  # reading order, for stable logs
    notes = _summarise(changes, len(kept))
    if failures:
        notes.append(f"skipped {len(failures)} unreadable file(s), e.g. {failures[0]}")
    if len(held) > len(val):
        notes.append(f"{len(held)} images fall in the held-out share; validation uses {len(val)} of them "
                     "(--val-images), the others are not trained on either")
    if preload:
        pixels = torch.stack([k[2] for k in train])  # type: ignore[misc]
        bank = ImageBank(images=(pixels * 255).round_().to(torch.uint8))
    else:
        bank = ImageBank(paths=[k[1] for k in train], shape=shape)
        notes.append(f"the {len(train)} training images do not fit {PRELOAD_SHARE:.0%} of the memory budget: "
                     "they are read from disk for every batch")
    val_images = torch.stack([k[2] for k in val]).to(device)  # type: ignore[misc]
    h = hashlib.sha256()
    for key, _, _ in kept:
        h.update(key.encode("utf-8", "surrogateescape") + b"\x00")
    h.update(f"{seed}:{val_fraction}:{max_val}:{shape}".encode())
    return UserImages(train=bank, val=val_images, train_keys=[k[0] for k in train], val_keys=[k[0] for k in val],
                      notes=notes, digest=h.hexdigest()[:16])


# ----- where the generator came from ---------------------------------------------------------------
def generator_source(model: str | None, generator: str | None = None, weights: str | Path | None = None,
                     latent_dim: int | None = None, image_shape: str | None = None,
                     output_range: str | None = None) -> dict[str, Any]:
    """How a generator was given on the command line, as a record an exported encoder keeps: the option values,
    with existing paths made absolute, and ``"invert_args"``, the same options as a command-line fragment.

    A bundled name stays a name. A ``--generator path.py:NAME`` spec is kept *as given* — a wrapped generator's
    fingerprint includes its spec (:meth:`ganinv.generators.wrap.WrappedGenerator.config`), so only the same
    text finds the same generator — and ``"generator_file"`` adds the file's absolute path for people.
    """
    from ganinv import zoo

    def absolute(text: str) -> str:
        p = Path(text).expanduser()
        return str(p.resolve()) if p.exists() else text

    record: dict[str, Any] = {}
    if generator:
        record["generator"] = generator
        file = generator.rpartition(":")[0] or generator
        for key, value in (("weights", weights), ("latent_dim", latent_dim), ("image_shape", image_shape),
                           ("output_range", output_range)):
            if value is not None:
                record[key] = absolute(str(value)) if key == "weights" else value
    else:
        spec = model or zoo.DEFAULT_MODEL
        record["model"] = spec if spec in zoo.available() else absolute(spec)
    parts = []
    for key, value in record.items():  # (the file's absolute path is added after: it is no option)
        text = str(value)
        parts += ["--" + key.replace("_", "-"), f"'{text}'" if any(c in text for c in " \"'$") else text]
    if generator:
        record["generator_file"] = absolute(file)
    record["invert_args"] = " ".join(parts)
    return record


def discriminator_for(source: dict[str, Any], G: nn.Module) -> tuple[nn.Module | None, str | None]:
    """The discriminator shipped with the generator ``source`` names (:func:`generator_source`): a bundled
    model's or ganinv folder's ``discriminator.safetensors``, a rosinality training checkpoint's ``"d"``, an
    NVIDIA pickle's ``D``. Returns ``(D, None)``, or ``(None, why there is none)``.

    ``D`` takes images in the generator's native range (``[-1, 1]`` for StyleGAN2) at its resolution.
    """
    if "model" not in source:
        return None, "a --generator module comes without a discriminator"
    from ganinv.convert.sources import load_source

    try:
        found = load_source(str(source["model"]), discriminator=True, device="cpu")
    except GaninvError as exc:
        return None, f"its discriminator could not be read ({str(exc).splitlines()[0]})"
    if found.D is None:
        return None, found.d_note or "the checkpoint holds no discriminator"
    if getattr(found.D, "resolution", None) not in (None, getattr(G, "resolution", None)):
        return None, "its discriminator is for another resolution"
    return found.D.eval().requires_grad_(False), None


__all__ = ["ImageBank", "PRELOAD_SHARE", "UserImages", "discriminator_for", "generator_source", "is_validation",
           "load_user_images"]
