"""The output folder of a dataset run: latent shards, manifest parts, run settings — crash-safe and resumable.

Layout of ``DIR``::

    run.json                          the settings that decide the results (a rerun must match them)
    shards/shard-00000.safetensors    latents of batch 0: tensor "<key>" = latent [*space shape]; with noise
                                      maps "<key>@noise<i>" [1, H_i, W_i]; method extras "<key>@<name>";
                                      PTI weight deltas "<key>@delta:<parameter>"
    manifest/part-00000.parquet       one row per image of batch 0 (:data:`MANIFEST_SCHEMA`)
    images/<key>.png                  reconstructions (``save_images``; ``.png`` appended unless the key has it)
    manifest.parquet                  all parts compacted, one row per image (rewritten at the end of each run)

Crash safety: every file is written to a temporary name in its folder, fsynced, renamed over its final name
with :func:`os.replace` and the folder fsynced, so a file is either absent or complete. A batch commits in the
order images → shard → manifest part, and an image counts as done only when its manifest part exists: a run
killed at any moment (SIGKILL included) loses at most its batches in flight. On the next open, temporary files
and shards without a manifest part (left by a killed run) are removed and those images are inverted again.
One run at a time: the folder is locked (``DIR/.lock``, released by the OS if the process dies).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ganinv.errors import InputError
from ganinv.filemode import match_ordinary_mode

FORMAT = "ganinv-dataset/1"
RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.parquet"
SHARD_DIR, PART_DIR, IMAGE_DIR = "shards", "manifest", "images"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.safetensors$")
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("key", pa.string()), ("path", pa.string()), ("status", pa.string()), ("error", pa.string()),
        ("method", pa.string()), ("space", pa.string()), ("seed", pa.int64()),
        ("shard", pa.string()), ("psnr", pa.float64()), ("ssim", pa.float64()), ("loss", pa.float64()),
        ("steps", pa.int64()), ("seconds", pa.float64()), ("image", pa.string()), ("notes", pa.string()),
        ("part", pa.int64()),
    ])


#: Column names of the manifest, in order (``status`` is ``"ok"`` or ``"error"``; ``error`` is the message;
#: ``shard`` and ``image`` are relative to ``DIR``; metrics are null where the method does not report them).
MANIFEST_COLUMNS = ("key", "path", "status", "error", "method", "space", "seed", "shard", "psnr", "ssim", "loss",
                    "steps", "seconds", "image", "notes", "part")


@dataclass
class BatchOutput:
    """Everything one batch writes: manifest rows (one per image, :data:`MANIFEST_COLUMNS` minus ``shard``/``part``,
    filled in on commit), the shard as safetensors bytes (None when no image of the batch succeeded) and the
    reconstructions as PNG bytes by path relative to ``DIR``."""

    batch_id: int
    rows: list[dict[str, Any]]
    shard: bytes | None = None
    images: dict[str, bytes] = field(default_factory=dict)


def shard_name(batch_id: int) -> str:
    return f"{SHARD_DIR}/shard-{batch_id:05d}.safetensors"


def part_name(batch_id: int) -> str:
    return f"{PART_DIR}/part-{batch_id:05d}.parquet"


def image_name(key: str) -> str:
    """Where the reconstruction of ``key`` goes, relative to ``DIR``: ``images/<key>[.png]``, with absolute
    parts and ``..`` made harmless (it always stays inside ``DIR/images``)."""
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    parts = ["_" if p == ".." else p for p in parts] or ["image"]
    name = "/".join(parts)
    return f"{IMAGE_DIR}/{name}" + ("" if name.endswith(".png") else ".png")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` durably and atomically: temporary file in the same folder, fsync, rename over
    ``path``, fsync the folder. Readers see the old file or the new one, never a part of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        match_ordinary_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def table_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Manifest rows → Parquet bytes with :func:`_schema` (missing fields are null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _settings_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _settings_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {json.dumps(a)} before, {json.dumps(b)} now")
    return diffs


class DatasetStore:
    """The output folder of one dataset run (see the module docstring); use as a context manager.

    Args:
        out_dir: the folder (created if missing).
        settings: JSON-serialisable settings that decide the results (model, fingerprint, method, options,
            seed, …). Written to ``run.json`` on the first run; a later run with other settings is refused
            with :class:`InputError` listing the differences.
        execution: recorded in ``run.json`` for information (backend, workers, …); may differ between runs.
    """

    def __init__(self, out_dir: str | Path, settings: dict[str, Any], execution: dict[str, Any] | None = None
                 ) -> None:
        self.dir = Path(out_dir)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.execution = execution or {}
        self._lock: IO[str] | None = None
        self._parts: dict[int, Path] = {}
        self._done: set[str] | None = None
        self._next_id = 0

    # ----- opening
    def __enter__(self) -> DatasetStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create/lock the folder, check or write ``run.json``, remove what a killed run left half-done."""
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError(f"--out {self.dir} is an existing file; give a folder (it is created if missing)")
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = (self.dir / ".lock").open("a")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise InputError(f"another run is writing to {self.dir} (it is locked); wait for it to finish") from None
        self._lock = lock
        try:
            self._check_run_file()
            self._clean()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _check_run_file(self) -> None:
        run_file = self.dir / RUN_FILE
        if run_file.exists():
            try:
                recorded = json.loads(run_file.read_text())
                old = recorded["settings"]
            except (OSError, ValueError, KeyError, TypeError):
                raise InputError(f"{run_file} is unreadable; it is not a ganinv dataset folder (use another --out)"
                                 ) from None
            diffs = _settings_diff(old, self.settings)
            if diffs:
                raise InputError(f"{self.dir} holds a run with other settings ({'; '.join(diffs)}); rerun with the "
                                 "same settings to resume it, or use another --out")
            return
        if any((self.dir / d).exists() for d in (SHARD_DIR, PART_DIR)) or (self.dir / MANIFEST_FILE).exists():
            raise InputError(f"{self.dir} holds shards or a manifest but no {RUN_FILE}; use another --out")
        record = {"format": FORMAT, "settings": self.settings, "execution": self.execution}
        atomic_write_bytes(run_file, (json.dumps(record, indent=2) + "\n").encode())

    def _clean(self) -> None:
        """Remove temporary files and shards without a manifest part; index the parts."""
        for sub in (SHARD_DIR, PART_DIR, IMAGE_DIR, "."):
            folder = self.dir / sub
            if not folder.is_dir():
                continue
            iterator: Iterable[Path] = folder.rglob(".*.tmp") if sub == IMAGE_DIR else folder.glob(".*.tmp")
            for tmp in iterator:
                tmp.unlink(missing_ok=True)
        parts_dir, shards_dir = self.dir / PART_DIR, self.dir / SHARD_DIR
        self._parts = {}
        if parts_dir.is_dir():
            for p in parts_dir.iterdir():
                m = _PART_RE.match(p.name)
                if m:
                    self._parts[int(m.group(1))] = p
        top = max(self._parts, default=-1)
        if shards_dir.is_dir():
            for s in shards_dir.iterdir():
                m = _SHARD_RE.match(s.name)
                if m and int(m.group(1)) not in self._parts:
                    s.unlink(missing_ok=True)  # its manifest part was never written: the batch is redone
                elif m:
                    top = max(top, int(m.group(1)))
        self._next_id = top + 1
        self._done = None

    # ----- reading
    def _read_part(self, path: Path) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path, schema=_schema())
        except Exception as exc:  # written atomically, so this is outside damage: say which file
            raise InputError(f"manifest part {path} is unreadable ({exc}); delete it and its shard to redo "
                             "that batch") from None

    def part_ids(self) -> list[int]:
        """Ids of the committed batches, ascending."""
        return sorted(self._parts)

    def done_keys(self) -> set[str]:
        """Keys of every image with a committed manifest row (ok or error)."""
        if self._done is None:
            done: set[str] = set()
            for bid in sorted(self._parts):
                done.update(self._read_part(self._parts[bid]).column("key").to_pylist())
            self._done = done
        return self._done

    def allocate(self, n: int = 1) -> list[int]:
        """``n`` fresh batch ids (never used by a committed or orphaned batch)."""
        ids = list(range(self._next_id, self._next_id + n))
        self._next_id += n
        return ids

    # ----- writing
    def commit(self, batch: BatchOutput) -> list[dict[str, Any]]:
        """Write one batch: reconstructions, then the shard, then the manifest part (each atomically).
        Returns the manifest rows as written."""
        if self._lock is None:
            raise RuntimeError("DatasetStore.commit before open()")
        for rel, data in batch.images.items():
            atomic_write_bytes(self.dir / rel, data)
        shard = None
        if batch.shard is not None:
            shard = shard_name(batch.batch_id)
            atomic_write_bytes(self.dir / shard, batch.shard)
        rows = [{**row, "shard": shard if row.get("status") == "ok" else None, "part": batch.batch_id}
                for row in batch.rows]
        part = self.dir / part_name(batch.batch_id)
        atomic_write_bytes(part, table_bytes(rows))
        self._parts[batch.batch_id] = part
        self._next_id = max(self._next_id, batch.batch_id + 1)
        if self._done is not None:
            self._done.update(row["key"] for row in rows)
        return rows

    def compact(self) -> Any:
        """Merge the manifest parts into ``DIR/manifest.parquet`` (one row per key, batch order) and return it
        as a ``pyarrow.Table``."""
        import pyarrow.parquet as pq

        table = _merge([self._read_part(self._parts[bid]) for bid in sorted(self._parts)])
        data = io.BytesIO()
        pq.write_table(table, data)
        atomic_write_bytes(self.dir / MANIFEST_FILE, data.getvalue())
        return table


def _merge(tables: list[Any]) -> Any:
    """Concatenate manifest tables, keeping the first row of each key (a key is never committed twice by one
    writer; this keeps the manifest one-row-per-image whatever happens)."""
    import pyarrow as pa

    table = pa.concat_tables(tables) if tables else _schema().empty_table()
    keys = table.column("key").to_pylist()
    if len(set(keys)) != len(keys):
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        table = table.take(pa.array(sorted(first.values()), pa.int64()))
    return table


def read_manifest(out_dir: str | Path) -> Any:
    """The manifest of a dataset folder as a ``pyarrow.Table`` (:data:`MANIFEST_COLUMNS`), merged from its
    committed parts, so it is current even while a run is going or after one was killed."""
    import pyarrow.parquet as pq

    folder = Path(out_dir)
    found = [(int(m.group(1)), p) for p in (folder / PART_DIR).glob("part-*.parquet")
             if (m := _PART_RE.match(p.name))]
    return _merge([pq.read_table(p, schema=_schema()) for _, p in sorted(found)])


def load_latents(out_dir: str | Path, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Latents of a dataset folder by image key (``{key: tensor [*space shape]}``), read from its shards;
    all of them when ``keys`` is None."""
    from safetensors.torch import load_file

    folder = Path(out_dir)
    table = read_manifest(folder)
    wanted = set(keys) if keys is not None else None
    by_shard: dict[str, list[str]] = {}
    for key, status, shard in zip(table.column("key").to_pylist(), table.column("status").to_pylist(),
                                  table.column("shard").to_pylist()):
        if status == "ok" and shard and (wanted is None or key in wanted):
            by_shard.setdefault(shard, []).append(key)
    out: dict[str, Any] = {}
    for shard, ks in by_shard.items():
        tensors = load_file(folder / shard)
        for k in ks:
            out[k] = tensors[k]
    return out


__all__ = ["FORMAT", "MANIFEST_COLUMNS", "MANIFEST_FILE", "BatchOutput", "DatasetStore", "atomic_write_bytes",
           "image_name", "load_latents", "part_name", "read_manifest", "shard_name", "table_bytes"]
