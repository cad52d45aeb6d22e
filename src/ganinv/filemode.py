"""File modes for files written through a temporary name.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and a rename keeps that mode: an output
written "atomically" would then be private to its owner, unlike one written with ``open(path, "w")``. These helpers
give the temporary file the mode an ordinary write would have produced before it is renamed into place: an
existing file's mode when it is replaced, else ``0o666`` minus the process's umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``/proc/self/status``); elsewhere it
    is set and restored at once (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_mode(path: str | Path) -> int:
    """The permission bits ``open(path, "w")`` would leave on ``path``: its present ones when it exists, else
    ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def match_ordinary_mode(tmp: str | Path, path: str | Path) -> None:
    """Give the temporary file ``tmp`` the mode an ordinary write of ``path`` would have (see the module notes);
    a file system that cannot change modes is left as it is."""
    try:
        os.chmod(tmp, ordinary_mode(path))
    except OSError:
        pass
