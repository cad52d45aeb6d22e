"""Dataset-scale inversion: any number of images → latent shards + a Parquet manifest, resumable, local or Ray.

``run_dataset(sources, out_dir, G, DatasetJob(steps...))`` — see :mod:`.runner` (orchestration, determinism),
:mod:`.sources` (folders, globs, lists; stable keys and per-image seeds), :mod:`.store` (layout, crash safety)
and :mod:`.ray_backend`. The CLI is ``ganinv invert-dataset``.
"""

from __future__ import annotations

from ganinv.dataset.runner import BatchProcessor, DatasetJob, RunStats, run_dataset
from ganinv.dataset.sources import Item, image_seed, iter_items
from ganinv.dataset.store import DatasetStore, load_latents, read_manifest

__all__ = ["BatchProcessor", "DatasetJob", "DatasetStore", "Item", "RunStats", "image_seed", "iter_items",
           "load_latents", "read_manifest", "run_dataset"]
