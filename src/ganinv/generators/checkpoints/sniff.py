"""Format detection: what container a checkpoint file is, from its first bytes (never from its name)."""

from __future__ import annotations

import re
from pathlib import Path

from ganinv.errors import CheckpointError

# Legacy (non-zip) torch.save files start with a pickled magic number; these are its LONG1 bytes.
_TORCH_LEGACY_MAGIC = b"\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
# Protocol 0/1 pickles: a GLOBAL (``cmodule\nname\n``), or a MARK followed by a GLOBAL, a string, a number, a
# dict/list/tuple opcode; or an empty dict/list memoised at index 0.
_PICKLE_0_1 = re.compile(rb"\(?c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n"
                         rb"|\((dp|lp|t|S'|S\"|V|I-?\d|F-?\d|X|c[A-Za-z_])|[}\]]q\x00")


def sniff_format(path: str | Path) -> str:
    """Guess a checkpoint's container from its bytes (never from its name).

    Returns one of ``"missing"``, ``"directory"``, ``"empty"``, ``"zip"`` (``torch.save``'s
    default format), ``"torch-legacy"`` (``torch.save`` before PyTorch 1.6), ``"pickle"``
    (a plain Python pickle such as NVIDIA's ``.pkl``, protocols 0–5), ``"safetensors"`` or ``"unknown"``.
    """
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        return "empty"
    if head.startswith(b"PK\x03\x04"):  # a zip archive (torch.save's format), possibly truncated
        return "zip"
    if head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head[:32]:
        return "torch-legacy"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    # (after safetensors: its 8-byte header length can begin with bytes such as "(t")
    if _PICKLE_0_1.match(head):  # protocol 0/1 pickles have no header: recognise their usual first opcodes
        return "pickle"
    return "unknown"


def _require_file(path: Path, kind: str, wanted: str) -> None:
    """Refuse a path whose sniffed ``kind`` is ``"missing"``, ``"directory"`` (``"… is a folder, not {wanted}"``)
    or ``"empty"``, with the messages the single-file readers share."""
    if kind == "missing":
        raise CheckpointError(f"checkpoint not found: {path}")
    if kind == "directory":
        raise CheckpointError(f"{path} is a folder, not {wanted}")
    if kind == "empty":
        raise CheckpointError(f"{path} is empty (0 bytes); the download or save did not finish")
