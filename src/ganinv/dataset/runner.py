"""Dataset-scale inversion: the shared batch processor, the local backend and the run orchestration.

:func:`run_dataset` streams the images of the sources (:mod:`ganinv.dataset.sources`), skips those already in
the output folder's manifest (:mod:`ganinv.dataset.store`), cuts the rest into batches, inverts each batch with a
:class:`BatchProcessor` — in this process (``backend="local"``) or in a pool of Ray actors (``"ray"``,
:mod:`ganinv.dataset.ray_backend`) — and commits every batch atomically as it completes.

Determinism: each image is inverted by its own engine call (a batch of one) seeded with
:func:`~ganinv.dataset.sources.image_seed` (a hash of the run's seed and the image's key). Batched engine calls
are not row-independent in floating point (a matrix product over 5 rows does not round like one over 1, and the
optimisation amplifies that), so this is what makes an image's latent independent of its batch-mates, its
batch, its worker and of resumes. Bit-identical results also need the same device and torch thread count
(``threads``, 1 by default, in this process and in every Ray actor alike).
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ganinv.dataset.sources import Item, check_sources, iter_items
from ganinv.dataset.store import FORMAT, BatchOutput, DatasetStore, image_name
from ganinv.errors import GaninvError, InputError

if TYPE_CHECKING:
    from torch import Tensor

    from ganinv.generators.base import Generator
    from ganinv.inverters.base import InversionResult
    from ganinv.photo import Alignment

#: A generator, or a picklable zero-argument callable that loads one (needed by the Ray backend, whose actors
#: each load the generator once).
GeneratorSource = Union["Generator", Callable[[], "Generator"]]
#: Called with the manifest rows of each committed batch.
BatchHook = Callable[[list[dict[str, Any]]], None]
BACKENDS = ("local", "ray")


@dataclass
class DatasetJob:
    """What a dataset run computes — every field decides the results and is recorded in ``run.json``.

    Attributes:
        method: ``optimize``, ``encoder``, ``hybrid``, ``pti`` or ``multicode``.
        options: engine options (:class:`~ganinv.inverters.optimize.OptimizeSettings` fields, e.g. ``space``,
            ``steps``); for ``hybrid`` they go to its optimisation phase, for ``pti`` to its pivot. No ``seed``.
        method_options: the method's own settings (``passes``, ``domain``, ``rank``, ``codes``, …).
        seed: the run's base seed; each image is inverted with ``image_seed(seed, key)``.
        encoder: ``encoder``/``hybrid``: a bundled encoder name or a model folder (None: the bundled one for G).
        save_images: also write each reconstruction as ``DIR/images/<key>.png``.
        align: ``none`` (each file centre-cropped and resized, as before), ``face`` (the largest face,
            FFHQ-aligned with MTCNN; a file without a usable face is an error row) or ``center`` (the largest
            centred square). Each framed image's :class:`~ganinv.photo.Alignment` is stored in its shard's
            metadata under ``alignment:<key>`` (JSON), so results can be pasted back into the photos.
    """

    method: str = "optimize"
    options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    encoder: str | None = None
    save_images: bool = False
    align: str = "none"

    def __post_init__(self) -> None:
        if "seed" in self.options or "seed" in self.method_options:
            raise InputError("give the base seed as DatasetJob.seed; each image gets its own seed from it")
        from ganinv.cli.groups import ALIGN_MODES

        if self.align not in ALIGN_MODES:
            raise InputError(f"align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON data (``align`` left out when ``none``, so runs written before it resume)."""
        data = json.loads(json.dumps(asdict(self), default=str))
        if data.get("align") == "none":
            del data["align"]
        return data


@dataclass
class RunStats:
    """What a dataset run did (this run's counts, and the manifest's totals after it)."""

    found: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    manifest_rows: int = 0
    manifest_failed: int = 0
    mean_psnr: float | None = None
    out_dir: str = ""

    @property
    def images_per_second(self) -> float:
        n = self.done + self.failed
        return n / self.seconds if self.seconds > 0 else 0.0


def _load(source: GeneratorSource) -> Generator:
    from ganinv.generators.base import Generator

    if isinstance(source, Generator):
        return source
    G = source()
    if isinstance(G, tuple):  # e.g. a (generator, name) pair
        G = G[0]
    if not isinstance(G, Generator):
        raise TypeError(f"the generator factory returned {type(G).__name__}, not a ganinv Generator")
    return G


def _png_bytes(image: Tensor) -> bytes:
    """``[C, H, W]`` in [0, 1] → PNG bytes (8-bit, grey or RGB)."""
    from ganinv.io import to_pil

    buf = io.BytesIO()
    to_pil(image.detach().cpu()).save(buf, format="PNG")
    return buf.getvalue()


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class BatchProcessor:
    """Inverts batches of :class:`~ganinv.dataset.sources.Item` into :class:`~ganinv.dataset.store.BatchOutput`
    (manifest rows, shard bytes, PNG bytes) — the work unit of both backends. Loads the generator (and the encoder)
    once.

    Args:
        generator: a :class:`~ganinv.generators.base.Generator` or a zero-argument callable loading one.
        job: what to compute.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        threads: torch CPU threads to use while processing (None: leave torch's setting).
        max_memory: memory budget in bytes of every batched pass in this process (None: leave it — automatic
            unless set; see :mod:`ganinv.memory`).
    """

    def __init__(self, generator: GeneratorSource, job: DatasetJob, device: str = "cpu",
                 threads: int | None = None, max_memory: int | None = None) -> None:
        import torch

        if max_memory is not None:
            from ganinv import memory

            memory.set_max_memory(max_memory)
        self.job = job
        self.threads = threads
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        self.G = _load(generator).to(dev)
        self.detector = None
        if job.align == "face":
            from ganinv.photo import get_detector

            self.detector = get_detector("mtcnn")  # missing weights: one error before any image
        self.encoder = None
        if job.method in ("encoder", "hybrid"):
            from ganinv.encoders import resolve_encoder

            self.encoder = resolve_encoder(job.encoder, self.G)

    def invert_image(self, target: Tensor, seed: int) -> InversionResult:
        """Invert one image ``[1, C, H, W]`` in [0, 1] with the job's method and ``seed``; a result of batch 1."""
        from ganinv.inverters import invert

        G, job = self.G, self.job
        y = target.to(G.device)
        opts, mine = dict(job.options), dict(job.method_options)
        if job.method == "optimize":
            return invert(G, y, seed=seed, **opts, **mine)
        if job.method == "encoder":
            return invert(G, y, method="encoder", encoder=self.encoder, **mine)
        if job.method == "hybrid":
            return invert(G, y, method="hybrid", encoder=self.encoder, seed=seed, **mine, **opts)
        if job.method == "pti":
            return invert(G, y, method="pti", pivot=opts, seed=seed, **mine)
        if job.method == "multicode":
            return invert(G, y, method="multicode", seed=seed, **mine, **opts)
        raise InputError(f"unknown method {job.method!r}")

    def _framed(self, path: str) -> tuple[Tensor, list[str], Alignment]:
        """The photo at ``path`` framed with the job's ``align``: ``[C, H, W]`` in [0, 1], notes, its alignment (the
        largest face when there are several)."""
        from ganinv.cli.invert import _photo_tensor, frame_photo
        from ganinv.io import load_photo

        photo, notes = load_photo(Path(path))
        aligned, alignment, note = frame_photo(photo, self.job.align, self.G.resolution, self.detector)[0]
        return _photo_tensor(aligned, self.G.channels), [*notes, note], alignment

    def __call__(self, batch_id: int, items: Sequence[Item],
                 on_image: Callable[[dict[str, Any]], None] | None = None) -> BatchOutput:
        """Load and invert every item. Unreadable images (missing, not an image, truncated, unusable mode) become
        ``status="error"`` rows and the batch goes on; an inversion error (a wrong setting) propagates, and
        nothing of the batch is committed, so a rerun retries it."""
        import torch

        old_threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            return self._process(batch_id, items, on_image)
        finally:
            if self.threads is not None:
                torch.set_num_threads(old_threads)

    def _process(self, batch_id: int, items: Sequence[Item],
                 on_image: Callable[[dict[str, Any]], None] | None) -> BatchOutput:
        from safetensors.torch import save

        from ganinv import metrics as M
        from ganinv.io import load_target

        import torch._dynamo  # noqa: F401  (torch's optimisers import it on their first step: seconds, not per image)

        G, job = self.G, self.job
        rows: list[dict[str, Any]] = []
        tensors: dict[str, Any] = {}
        images: dict[str, bytes] = {}
        spaces: set[str] = set()
        framings: dict[str, str] = {}
        for item in items:
            t0 = time.perf_counter()
            row: dict[str, Any] = {"key": item.key, "path": item.path, "method": job.method, "seed": item.seed}
            try:  # a bad file is the image's problem: recorded, and the run goes on
                if job.align == "none":
                    y, notes = load_target(item.path, G.channels, G.resolution)
                else:
                    y, notes, alignment = self._framed(item.path)
                    framings[f"alignment:{item.key}"] = alignment.to_json()
            except GaninvError as exc:
                row.update(status="error", error=str(exc), seconds=time.perf_counter() - t0)
                rows.append(row)
                if on_image is not None:
                    on_image(row)
                continue
            row["notes"] = "; ".join(notes) or None
            r = self.invert_image(y.unsqueeze(0), item.seed)  # a failure here is the settings': it aborts the run
            if r.notes:  # e.g. the optimisation diverged and fell back to its best iterate
                row["notes"] = "; ".join([*notes, *(n.removeprefix("target 0: ") for n in r.notes)])
            tensors[item.key] = r.latent[0].detach().cpu().float().contiguous()
            for i, n in enumerate(r.noise or []):
                tensors[f"{item.key}@noise{i}"] = n[0].detach().cpu().float().contiguous()
            for name, value in r.extra.items():
                tensors[f"{item.key}@{name}"] = value[0].detach().cpu().float().contiguous()
            for name, value in (r.deltas[0] if r.deltas else {}).items():
                tensors[f"{item.key}@delta:{name}"] = value.detach().cpu().contiguous()
            m = {k: v.detach().cpu() for k, v in r.metrics.items()}
            image = r.image.detach().cpu()
            psnr = m["psnr"] if "psnr" in m else M.psnr(image, y.unsqueeze(0))
            ssim = m["ssim"] if "ssim" in m else M.ssim(image, y.unsqueeze(0))
            spaces.add(r.space)
            row.update(status="ok", space=r.space, psnr=_num(psnr[0]), ssim=_num(ssim[0]),
                       loss=_num(m["loss"][0]) if "loss" in m else None,
                       steps=int(m["steps"][0]) if "steps" in m else None)
            if job.save_images:
                rel = image_name(item.key)
                images[rel] = _png_bytes(image[0])
                row["image"] = rel
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if on_image is not None:
                on_image(row)
        shard = None
        if tensors:
            kept = {k: v for k, v in framings.items() if k.removeprefix("alignment:") in tensors}
            shard = save(tensors, metadata={"format": FORMAT, "method": job.method, "space": ",".join(sorted(spaces)),
                                            "batch": str(batch_id), **kept})
        return BatchOutput(batch_id, rows, shard, images)


# ----------------------------------------------------------------------------------------------------------
# Batches as plain data (for Ray)
# ----------------------------------------------------------------------------------------------------------

def encode_batch(batch: BatchOutput) -> dict[str, Any]:
    """A :class:`BatchOutput` as plain columns (ints, strings, bytes) — no pickle on the way back from actors."""
    return {"batch_id": batch.batch_id, "rows": json.dumps(batch.rows), "shard": batch.shard or b"",
            "images": json.dumps({k: base64.b64encode(v).decode() for k, v in batch.images.items()})}


def decode_batch(record: dict[str, Any]) -> BatchOutput:
    """Inverse of :func:`encode_batch`."""
    shard = bytes(record["shard"]) if record["shard"] is not None else b""
    images = {k: base64.b64decode(v) for k, v in json.loads(record["images"]).items()}
    return BatchOutput(int(record["batch_id"]), json.loads(record["rows"]), shard or None, images)


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# ----------------------------------------------------------------------------------------------------------
# Backends and orchestration
# ----------------------------------------------------------------------------------------------------------

def run_local(items: Iterable[Item], store: DatasetStore, processor: BatchProcessor, batch_size: int, *,
              on_image: Callable[[dict[str, Any]], None] | None = None, on_batch: BatchHook | None = None) -> None:
    """Invert ``items`` batch by batch in this process, committing each batch as it completes."""
    for chunk in batched(items, batch_size):
        (batch_id,) = store.allocate(1)
        rows = store.commit(processor(batch_id, chunk, on_image))
        if on_batch is not None:
            on_batch(rows)


def generator_settings(G: Generator, name: str) -> dict[str, Any]:
    """The generator's part of ``run.json``: display name, fingerprint (weights + architecture), image shape."""
    from ganinv.encoders import generator_fingerprint

    return {"name": name, "fingerprint": generator_fingerprint(G), "arch": getattr(G, "arch", type(G).__name__),
            "image_shape": list(G.image_shape)}


def run_dataset(sources: Sequence[str | Path], out_dir: str | Path, generator: GeneratorSource,
                job: DatasetJob | None = None, *, generator_name: str = "generator", backend: str = "local",
                batch_size: int = 16, workers: int = 1, ray_address: str | None = None, device: str = "cpu",
                threads: int | None = 1, on_start: Callable[[int, int], None] | None = None,
                on_image: Callable[[dict[str, Any]], None] | None = None,
                on_batch: BatchHook | None = None, max_memory: int | None = None) -> RunStats:
    """Invert every image of ``sources`` into ``out_dir`` (resumable; see :mod:`ganinv.dataset.store`).

    Args:
        sources: folders (recursive), glob patterns, image files, ``.txt``/``.csv`` lists of paths.
        out_dir: output folder; rerunning with the same settings continues where a previous run stopped.
        generator: a Generator, or a picklable zero-argument callable loading one (required for ``ray``
            unless the generator itself pickles).
        job: method, options and seed (default: ``optimize`` with the engine's defaults, seed 0).
        generator_name: recorded in ``run.json``.
        backend: ``"local"`` (this process) or ``"ray"`` (Ray Data, an actor pool of ``workers``).
        batch_size: images per batch (= per shard and manifest part; the unit of work and of loss on a crash).
        workers: Ray actors (``local`` runs in this process: 1).
        ray_address: an existing Ray cluster (``"auto"`` or ``host:port``); None starts a local Ray.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``, here and in every actor.
        threads: torch CPU threads per worker (None: torch's default). Latents are bit-identical across
            backends and resumes at equal device and thread count.
        on_start: ``on_start(found, to_do)`` once the sources are counted.
        on_image: called with each image's manifest row (local backend; Ray reports per batch).
        on_batch: called with the manifest rows of each committed batch.
        max_memory: memory budget (bytes) of each worker's batched passes. None: this process's budget
            (``--max-memory`` or automatic); a local Ray pool splits it between its ``workers`` actors, which
            share the machine, and actors on a cluster (``ray_address``) take a share of their own machine's.
    Returns:
        :class:`RunStats`; ``DIR/manifest.parquet`` holds one row per image of all runs so far.
    """
    job = job or DatasetJob()
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; use local or ray")
    if batch_size < 1:
        raise InputError(f"--batch-size must be ≥ 1, got {batch_size}")
    if workers < 1:
        raise InputError(f"--workers must be ≥ 1, got {workers}")
    if backend == "local" and workers != 1:
        raise InputError("--workers is the number of Ray actors: use it with --backend ray (which starts a local "
                         "Ray when no --ray-address is given)")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be ≥ 1, got {threads}")
    check_sources(sources)
    actor_memory = max_memory
    if backend == "ray" and max_memory is None and ray_address is None:
        import torch

        from ganinv import memory

        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        share = memory.budget(dev)
        actor_memory = share // workers if dev.type == "cpu" else share  # one GPU per actor: its own memory
    processor = BatchProcessor(generator, job, device, threads, max_memory) if backend == "local" else None
    G = processor.G if processor is not None else _load(generator)
    settings = {"generator": generator_settings(G, generator_name), "job": job.to_dict()}
    execution = {"backend": backend, "batch_size": batch_size, "workers": workers, "ray_address": ray_address,
                 "device": device, "threads": threads, "max_memory": actor_memory}
    stats = RunStats(out_dir=str(out_dir))
    with DatasetStore(out_dir, settings, execution) as store:
        done = store.done_keys()
        exclude = Path(out_dir)
        found = todo = 0
        for item in iter_items(sources, job.seed, exclude):
            found += 1
            todo += item.key not in done
        stats.found, stats.skipped = found, found - todo
        if on_start is not None:
            on_start(found, todo)
        pending = (item for item in iter_items(sources, job.seed, exclude) if item.key not in done)

        def count(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                if row["status"] == "ok":
                    stats.done += 1
                else:
                    stats.failed += 1
            if on_batch is not None:
                on_batch(rows)

        t0 = time.perf_counter()
        try:
            if todo:
                if backend == "local":
                    assert processor is not None
                    run_local(pending, store, processor, batch_size, on_image=on_image, on_batch=count)
                else:
                    from ganinv.dataset.ray_backend import run_ray

                    run_ray(pending, store, generator, job, batch_size=batch_size, workers=workers,
                            address=ray_address, device=device, threads=threads, on_batch=count,
                            max_memory=actor_memory)
        finally:
            stats.seconds = time.perf_counter() - t0
        table = store.compact()
    status = table.column("status").to_pylist()
    psnr = [p for p, s in zip(table.column("psnr").to_pylist(), status) if s == "ok" and p is not None]
    stats.manifest_rows = table.num_rows
    stats.manifest_failed = sum(s != "ok" for s in status)
    stats.mean_psnr = sum(psnr) / len(psnr) if psnr else None
    return stats


__all__ = ["BACKENDS", "BatchProcessor", "DatasetJob", "GeneratorSource", "RunStats", "batched", "decode_batch",
           "encode_batch", "generator_settings", "run_dataset", "run_local"]
