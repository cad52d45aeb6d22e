"""Where ``ganinv convert`` may write, and how: a temporary file or folder beside ``OUT``, moved into place only
once verified, so that ``OUT`` is never half-written and an existing one is replaced in one step."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ganinv.errors import InputError
from ganinv.filemode import current_umask, match_ordinary_mode, ordinary_mode
from ganinv.modelfile import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["MODEL_FOLDER_FILES", "check_destination", "make_temporary", "move_into_place", "remove"]

#: What a ganinv model folder written by ganinv holds; ``--force`` replaces only folders holding nothing else.
MODEL_FOLDER_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, "discriminator.safetensors"})


def _same_or_inside(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b`` or lies inside it (both resolved)."""
    return a == b or b in a.parents


def check_destination(out: Path, *, folder: bool, force: bool, inputs: list[Path]) -> None:
    """Refuse an ``OUT`` that would overwrite or lie within an input, or that exists without ``--force``; with
    ``--force`` only a file (for file formats) or a ganinv model folder holding nothing but its own files (for the
    folder format) is replaced.

    Raises:
        InputError: saying which and what to do.
    """
    target = out.expanduser().resolve()
    for src in inputs:
        src = src.expanduser().resolve()
        if target == src:
            raise InputError(f"OUT {out} is the input itself; write the converted model to another path")
        if _same_or_inside(src, target):
            raise InputError(f"the input {src} lies inside OUT {out}, which would replace it; choose another OUT")
        if src.is_dir() and _same_or_inside(target, src):
            raise InputError(f"OUT {out} lies inside the input folder {src}; write it elsewhere")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise InputError(f"{out} already exists; add --force to replace it")
    if folder:
        if not out.is_dir() or out.is_symlink():
            raise InputError(f"{out} exists and is not a folder; a ganinv model is a folder — remove it or choose "
                             f"another OUT")
        others = sorted(p.name for p in out.iterdir() if p.name not in MODEL_FOLDER_FILES)
        if not (out / CONFIG_NAME).is_file() or others:
            shown = ", ".join(others[:5]) + (", …" if len(others) > 5 else "")
            raise InputError(f"{out} is a folder that is not a ganinv model folder"
                             + (f" (it holds {shown})" if others else f" (no {CONFIG_NAME})")
                             + "; --force replaces model folders only — choose another OUT")
    elif out.is_dir():
        raise InputError(f"{out} is a folder; a rosinality .pt is a file — choose another OUT")


def make_temporary(out: Path, *, folder: bool) -> tuple[Path, list[Path]]:
    """A fresh temporary file or empty folder beside ``out`` (``.<name>.<random>.tmp``), creating ``out``'s missing
    parent folders. Returns ``(temporary path, parent folders created)``."""
    created: list[Path] = []
    parent = out.parent
    missing = [p for p in [parent, *parent.parents] if not p.exists()]
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            continue
        created.append(p)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        tmp = Path(name)
    return tmp, created


def remove(path: Path, created: list[Path] | None = None) -> None:
    """Delete a temporary file or folder (if still there), then the parent folders made for it when empty."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    for p in reversed(created or []):
        try:
            p.rmdir()
        except OSError:
            break


def move_into_place(tmp: Path, out: Path, *, folder: bool) -> None:
    """Rename the verified ``tmp`` to ``out``: a file in one ``os.replace``; a folder by renaming an existing one
    aside first (restored if the second rename fails), then deleting it. The result gets the mode an ordinary
    write would give it."""
    if folder:
        mode = ordinary_mode(out) if out.is_dir() else 0o777 & ~current_umask()
        try:
            os.chmod(tmp, mode)
        except OSError:
            pass
        if not out.exists():
            os.rename(tmp, out)
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        aside.rmdir()
        os.rename(out, aside)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(aside, out)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        match_ordinary_mode(tmp, out)
        os.replace(tmp, out)
