"""Ray backend for dataset inversion: Ray Data over batches, an actor pool that loads the generator once per actor.

The driver lists the batches (paths, keys and seeds only — no images), ``ray.data.from_items`` makes one row per
batch, and ``map_batches`` sends each to a :class:`~ganinv.dataset.runner.BatchProcessor` living in an actor of an
``ActorPoolStrategy(size=workers)`` pool. Actors read the images themselves (so on a cluster the paths must be
readable from every node: shared storage), invert them exactly as the local backend does (same per-image seeds),
and return plain columns (manifest rows as JSON, the shard as safetensors bytes, PNG bytes). The driver commits
each batch as it arrives, with the same atomic writes and layout as the local backend, so a killed Ray run
resumes like a local one and both give the same latents.

Ray is imported only here (``pip install 'ganinv[cluster]'``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganinv.dataset.runner import (BatchHook, BatchProcessor, DatasetJob, GeneratorSource, batched, decode_batch,
                                   encode_batch)
from ganinv.dataset.sources import Item
from ganinv.dataset.store import DatasetStore
from ganinv.errors import InputError


class RayInverter:
    """The callable class given to ``map_batches``: one per actor; builds its :class:`BatchProcessor` (and so
    loads the generator) once, then turns batches of spec rows into encoded :class:`BatchOutput` columns."""

    def __init__(self, generator: GeneratorSource, job: dict[str, Any], device: str, threads: int | None,
                 max_memory: int | None = None) -> None:
        self.processor = BatchProcessor(generator, DatasetJob(**job), device, threads, max_memory)

    def __call__(self, rows: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"batch_id": [], "rows": [], "shard": [], "images": []}
        for batch_id, spec in zip(rows["batch_id"], rows["spec"]):
            items = [Item(path, key, int(seed)) for path, key, seed in json.loads(spec)]
            record = encode_batch(self.processor(int(batch_id), items))
            for name in out:
                out[name].append(record[name])
        return out


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("--backend ray needs Ray Data: pip install 'ray[data]' (or ganinv[cluster])") from None
    return ray


def _init(ray: Any, address: str | None, workers: int, threads: int | None, gpus: bool) -> None:
    """Connect to ``address`` or start a local Ray sized for the pool (no dashboard, auth off)."""
    if address:
        import ganinv

        package = str(Path(ganinv.__file__).resolve().parent)
        try:  # the cluster's workers get this very ganinv (its dependencies must be installed there)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     runtime_env={"py_modules": [package], "excludes": ["__pycache__"]})
        except ConnectionError as exc:
            raise InputError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    num_cpus = workers * (threads or 1)
    kwargs: dict[str, Any] = {"num_gpus": workers} if gpus else {}
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             **kwargs)


def run_ray(items: Iterable[Item], store: DatasetStore, generator: GeneratorSource, job: DatasetJob, *,
            batch_size: int, workers: int, address: str | None = None, device: str = "cpu",
            threads: int | None = 1, on_batch: BatchHook | None = None, max_memory: int | None = None) -> None:
    """Invert ``items`` with a pool of ``workers`` Ray actors; the driver commits each batch as it completes.

    Args:
        items: the images still to do (streamed; only their paths/keys/seeds are listed for Ray).
        store: the open output folder.
        generator: a picklable zero-argument callable loading the generator in each actor (or a generator
            that pickles).
        job: method, options, seed.
        batch_size: images per batch (= per actor call, shard and manifest part).
        workers: size of the actor pool.
        address: an existing cluster (``"auto"``, ``"host:port"``, ``"ray://host:port"``); None starts a
            local Ray with ``workers × threads`` CPUs, shut down at the end.
        device: each actor's device (``cuda`` asks Ray for one GPU per actor).
        threads: torch threads per actor (and CPUs Ray reserves for it).
        on_batch: called with the manifest rows of each committed batch.
        max_memory: each actor's memory budget in bytes (None: a share of its machine's free memory).
    """
    ray = _import_ray()
    specs: list[dict[str, Any]] = []
    for chunk in batched(items, batch_size):
        (batch_id,) = store.allocate(1)
        specs.append({"batch_id": batch_id, "spec": json.dumps([[it.path, it.key, it.seed] for it in chunk])})
    if not specs:
        return
    gpus = device.startswith("cuda")
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)  # its progress notes would interleave with the command's own bar
    try:
        _init(ray, address, workers, threads, gpus)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ds = ray.data.from_items(specs, override_num_blocks=len(specs))
        resources: dict[str, Any] = {"num_cpus": threads or 1}
        if gpus:
            resources["num_gpus"] = 1
        ds = ds.map_batches(RayInverter, batch_size=1, batch_format="numpy",
                            fn_constructor_kwargs={"generator": generator, "job": job.to_dict(), "device": device,
                                                   "threads": threads, "max_memory": max_memory},
                            compute=ray.data.ActorPoolStrategy(size=workers), **resources)
        for record in ds.iter_rows():
            rows = store.commit(decode_batch(record))
            if on_batch is not None:
                on_batch(rows)
    finally:
        ray.shutdown()
        data_log.setLevel(level)


__all__ = ["RayInverter", "run_ray"]
