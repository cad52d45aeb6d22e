"""Dataset sources: folders (recursive), glob patterns and ``.txt``/``.csv`` lists → a stream of :class:`Item`.

Every image gets a **key**: a stable, machine-independent name that identifies it in the shards and the
manifest, and from which its random seed is derived (:func:`image_seed`), so its latent does not depend on
where the data lives, on the order of the sources, or on which batch or worker processes it.

========================== =================================================================================
source                     key of ``<file>``
========================== =================================================================================
folder ``data/train``      path relative to the folder's parent: ``train/3/img1.png`` (recursive; image
                           extensions only; hidden files and folders skipped)
glob ``data/*/3/*.png``    path relative to the parent of its literal base folder ``data``: ``data/train/3/img1.png``
list ``list.txt``          the entry as written, normalised (``./a//b.png`` → ``a/b.png``); relative entries
                           are read from the list's folder (or, when missing there, from the working folder)
list ``list.csv``          likewise, from the ``path`` column, or the first column when there is none
image file ``x.png``       its file name: ``x.png``
========================== =================================================================================

The same file reached twice (after resolving) is kept once; a different file whose key is already taken gets
``~2``, ``~3``… appended (in source order). Sources are read lazily, in a deterministic (sorted) order: only
the paths of one folder listing (or, for a glob, its matches) are held at a time, never images.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ganinv.errors import InputError
from ganinv.io import IMAGE_EXTENSIONS, _natural_key

#: File suffixes read as lists of paths.
LIST_SUFFIXES = (".txt", ".csv")
#: Per-image seeds are below this bound, so the engine's derived seeds (``seed · 1_000_003 + row``) stay in
#: ``torch.Generator``'s 64-bit range.
SEED_BOUND = 1 << 40
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Item:
    """One image to invert: the file to read, its stable key and its per-image seed."""

    path: str
    key: str
    seed: int


def image_seed(base_seed: int, key: str) -> int:
    """The seed of the image ``key`` in a run with ``base_seed``: a hash of both, in ``[0, 2**40)``.

    It depends on nothing else (not the batch, the worker, the order or a resume), so the same key and base
    seed always give the same inversion.
    """
    digest = hashlib.blake2b(f"{int(base_seed)}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_BOUND


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in _GLOB_CHARS)


def _norm_key(text: str) -> str:
    """A key from a path as written: POSIX separators, no ``.``/empty components, no trailing slash."""
    key = posixpath.normpath(text.replace(os.sep, "/").strip())
    return "" if key == "." else key


def _walk(root: Path, exclude: Path | None, visited: set[Path] | None = None) -> Iterator[Path]:
    """Image files under ``root``, recursively, in natural order per folder; hidden entries, ``exclude`` (the
    output folder) and folders already visited (symlink loops) skipped."""
    visited = set() if visited is None else visited
    real = root.resolve()
    if real in visited:
        return
    visited.add(real)
    try:
        entries = sorted(os.scandir(root), key=lambda e: _natural_key(e.name))
    except OSError as exc:
        raise InputError(f"cannot list folder {root}: {exc.strerror or exc}") from None
    dirs = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            if exclude is None or path.resolve() != exclude:
                dirs.append(path)
        elif entry.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            yield path
    for d in dirs:
        yield from _walk(d, exclude, visited)


def _glob_base(pattern: str) -> Path:
    """The literal folder a glob pattern starts from (``data/*/x.png`` → ``data``)."""
    parts = Path(pattern).parts
    literal = []
    for part in parts[:-1]:
        if _is_glob(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def _read_list(path: Path) -> Iterator[str]:
    """The entries of a ``.txt`` (one path a line; blank lines and ``#`` comments skipped) or ``.csv`` list
    (the ``path`` column, else the first; a first row whose first cell is no image name or file is a header)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the list {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            if path.suffix.lower() == ".txt":
                for line in handle:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield line
                return
            reader = csv.reader(handle)
            first = next(reader, None)
            if first is None:
                return
            lowered = [cell.strip().lower() for cell in first]
            column = 0
            if "path" in lowered:
                column = lowered.index("path")
            elif first and first[0].strip():
                cell = first[0].strip()
                looks_like_image = Path(cell).suffix.lower() in IMAGE_EXTENSIONS or (path.parent / cell).is_file()
                if looks_like_image:
                    yield cell
            for row in reader:
                if len(row) > column and row[column].strip():
                    yield row[column].strip()
        except UnicodeDecodeError:
            raise InputError(f"{path} is not a UTF-8 text list of paths") from None
        except csv.Error as exc:
            raise InputError(f"{path}: malformed CSV ({exc})") from None


def _source_items(source: str | Path, exclude: Path | None) -> Iterator[tuple[Path, str]]:
    """``(file, key)`` pairs of one source, in order."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        name = path.resolve().name
        for f in _walk(path, exclude):
            rel = f.relative_to(path).as_posix()
            yield f, f"{name}/{rel}" if name else rel
        return
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            base = path.parent
            for entry in _read_list(path):
                p = Path(entry).expanduser()
                if not p.is_absolute():
                    p = base / p if (base / p).exists() or not p.exists() else p
                yield p, _norm_key(entry)
            return
        yield path, path.name
        return
    if _is_glob(text):
        base = _glob_base(text)
        matches = sorted((m for m in glob.iglob(text, recursive=True) if Path(m).is_file()), key=_natural_key)
        if not matches:
            raise InputError(f"the pattern {text!r} matches no files")
        name = base.resolve().name
        for m in matches:
            rel = _norm_key(os.path.relpath(m, base))
            yield Path(m), f"{name}/{rel}" if name and not rel.startswith("../") else rel
        return
    if path.exists():
        raise InputError(f"{text} is neither a file nor a folder")
    raise InputError(f"{text}: no such file or folder (give folders, glob patterns, image files or .txt/.csv lists)")


def check_sources(sources: Sequence[str | Path]) -> None:
    """Raise :class:`InputError` early for a missing source or a glob that matches nothing (cheap checks)."""
    if not sources:
        raise InputError("no sources given: pass folders, glob patterns, image files or .txt/.csv lists")
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.exists():
            if not (path.is_dir() or path.is_file()):
                raise InputError(f"{text} is neither a file nor a folder")
            continue
        if not _is_glob(text):
            raise InputError(f"{text}: no such file or folder (give folders, glob patterns, image files or "
                             ".txt/.csv lists)")
        if next((m for m in glob.iglob(text, recursive=True) if Path(m).is_file()), None) is None:
            raise InputError(f"the pattern {text!r} matches no files")


def iter_items(sources: Sequence[str | Path], base_seed: int, exclude: str | Path | None = None) -> Iterator[Item]:
    """Stream the images of ``sources`` as :class:`Item` (path, unique key, per-image seed), deduplicated.

    Args:
        sources: folders, glob patterns, image files and ``.txt``/``.csv`` lists, in the order to read them.
        base_seed: the run's seed; each item's seed is :func:`image_seed` of it and the key.
        exclude: a folder never descended into (the run's output folder, so reconstructions are not re-read).

    Files are not opened here (a list may name missing or unreadable files: they fail when loaded).
    Memory holds one folder listing and an 8-byte hash per image seen (for deduplication), never images.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    seen_files: set[bytes] = set()
    seen_keys: set[bytes] = set()

    def digest(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest()

    for source in sources:
        for path, key in _source_items(source, excluded):
            try:
                ident = digest(str(path.resolve()))
            except OSError:
                ident = digest(str(path.absolute()))
            if ident in seen_files:
                continue
            seen_files.add(ident)
            key = key or path.name or "image"
            unique, k = key, 1
            while digest(unique) in seen_keys:
                k += 1
                unique = f"{key}~{k}"
            seen_keys.add(digest(unique))
            yield Item(str(path), unique, image_seed(base_seed, unique))


__all__ = ["LIST_SUFFIXES", "SEED_BOUND", "Item", "check_sources", "image_seed", "iter_items"]
