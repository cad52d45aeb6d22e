"""Memory-aware batching: how many rows of a pass fit, and what to do when an allocation fails anyway.

Every batched pass in ganinv (inversion steps, best-of-N scoring, PTI tuning, multi-code, encoders, restoration)
asks :func:`rows_that_fit` how many rows to put in one chunk. The answer comes from

- a **budget**: ``--max-memory`` / :func:`set_max_memory` when given, else a safe share of what the device has
  free now (:data:`CPU_SHARE` of the RAM the kernel reports available — and the cgroup's limit, where there is
  one — or :data:`GPU_SHARE` of the GPU's free memory);
- a **per-row cost**, measured once per (model, pass, resolution, device, dtype) and cached for the process:
  the bytes autograd keeps for the backward pass (the saved tensors, counted through
  ``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage), at one and at two rows, so that the
  weights a pass saves once per batch are told apart from what each row adds. Where the generator can be
  copied to PyTorch's ``meta`` device the probe runs there and costs no memory and no time at any resolution;
  otherwise it runs for real at one and two rows.

The estimate is checked by the safety net of :func:`run_halving`: an allocation failure (CUDA's
``OutOfMemoryError`` or the CPU allocator's "can't allocate memory") halves the chunk and goes on, and only
when a single row fails does it raise :class:`MemoryBudgetError` — one sentence with what one row needs and
what the budget was.
"""

from __future__ import annotations

import copy
import math
import os
import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ganinv.errors import GaninvError, InputError

T = TypeVar("T")

#: Share of the available RAM a CPU pass may plan to use (the rest is left to the OS, other processes and to
#: what the estimate misses: allocator slack, the optimiser's state, images and metrics).
CPU_SHARE = 0.6
#: Share of the GPU's free memory a pass may plan to use (cuDNN workspaces and fragmentation take the rest).
GPU_SHARE = 0.8
#: The saved-tensor count is multiplied by this for the transient buffers of the backward pass.
SAFETY = 1.5
#: On a CPU a batch stops gaining throughput once its tensors fill the cores: about this many bytes of a
#: pass's per-row cost in one chunk (measured: the bundled 32 px StyleGAN2, 3.8 MB a row, gains up to 64 rows;
#: a config-f StyleGAN2 at 64 px, 160 MB a row, runs 0.59 s/row at batch 1 and 0.72 s/row at batch 64 —
#: docs/real_size.md).
CPU_SATURATION_BYTES = 256 * 1024**2


class MemoryBudgetError(GaninvError):
    """Even one row of a pass does not fit in the memory budget (or its allocation failed at one row)."""


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def parse_size(text: str | int | float) -> int:
    """A memory size → bytes: ``"8G"``/``"8GiB"`` (binary), ``"8GB"`` (decimal), ``"512M"``, ``"1.5g"``,
    ``"1073741824"``. Raises :class:`InputError` for anything else, for 0 and for negative sizes."""
    if isinstance(text, bool):
        raise InputError(f"a memory size must be a number of bytes or e.g. 8G, 512MiB; got {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
        if m is None or m.group(2).lower() not in _UNITS:
            raise InputError(f"{text!r} is not a memory size; write e.g. 8G, 8GiB, 8GB, 512M or a number of bytes")
        value, unit = float(m.group(1)), m.group(2).lower()
    n = value * _UNITS[unit]
    if not math.isfinite(n) or n < 1:
        raise InputError(f"a memory size must be at least one byte, got {text!r}")
    return int(n)


def human_bytes(n: float) -> str:
    """``4.5 GB``, ``312 MB``, ``12 KB`` (binary units, as ``free -h`` prints them)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


# ----------------------------------------------------------------------------------------------------------
# The budget
# ----------------------------------------------------------------------------------------------------------
_MAX_MEMORY: int | None = None


def set_max_memory(size: str | int | None) -> int | None:
    """Set the process-wide budget of every pass (bytes, or a size such as ``"8G"``); None: automatic."""
    global _MAX_MEMORY
    _MAX_MEMORY = None if size is None else parse_size(size)
    return _MAX_MEMORY


def max_memory() -> int | None:
    """The budget set with :func:`set_max_memory` (None: automatic)."""
    return _MAX_MEMORY


@contextmanager
def memory_limit(size: str | int | None) -> Iterator[int | None]:
    """Temporarily set the budget (``with memory_limit("4G"): ...``); the previous one is restored after."""
    old = _MAX_MEMORY
    try:
        yield set_max_memory(size)
    finally:
        set_max_memory(old)


def _cgroup_free() -> int | None:
    """What the process's cgroup (v2, else v1) still allows, or None when it sets no limit."""
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_f).read_text().strip()
            usage = int(Path(usage_f).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            return None
        return max(0, int(limit) - usage)
    return None


def available_memory(device: torch.device | str) -> int:
    """Bytes the device can still give this process now: GPU free memory, or the RAM the kernel reports
    available (``MemAvailable``), capped by the cgroup's limit."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # memory PyTorch's caching allocator holds but does not use is free for us too
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    avail: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * 1024**3  # nothing to go by: assume a small laptop
    cg = _cgroup_free()
    return int(min(avail, cg) if cg is not None else avail)


def in_use(device: torch.device | str) -> int:
    """Bytes this process uses now on ``device``: the tensors PyTorch holds on a GPU, the resident set on a CPU
    (for progress bars)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def budget(device: torch.device | str) -> int:
    """Bytes one pass may plan to use on ``device``: the set budget, else a safe share of what is free."""
    if _MAX_MEMORY is not None:
        return _MAX_MEMORY
    device = torch.device(device)
    share = GPU_SHARE if device.type == "cuda" else CPU_SHARE
    return int(available_memory(device) * share)


def budget_source() -> str:
    """How the budget was set, for messages: ``--max-memory`` or ``a share of the free memory``."""
    return "--max-memory" if _MAX_MEMORY is not None else "the automatic budget, a share of the free memory"


# ----------------------------------------------------------------------------------------------------------
# Per-row cost
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowCost:
    """What a pass costs: ``fixed + per_row · rows`` bytes (``per_row`` > 0)."""

    per_row: int
    fixed: int
    how: str  # "meta" or "probe"

    def bytes_for(self, rows: int) -> int:
        return self.fixed + self.per_row * rows


class _SavedBytes:
    """Counts the bytes of the tensors autograd saves for backward (each storage once)."""

    def __init__(self) -> None:
        self.storages: dict[tuple[str, int], int] = {}
        self.anonymous = 0

    def pack(self, t: Tensor) -> Tensor:
        try:
            st = t.untyped_storage()
            key = (str(t.device), st.data_ptr()) if t.device.type != "meta" else None
            nbytes = st.nbytes()
        except (RuntimeError, NotImplementedError):
            key, nbytes = None, t.numel() * t.element_size()
        if t.device.type == "meta" or key is None or key[1] == 0:
            # meta storages have no address: count by tensor (a view of a saved tensor is then counted twice,
            # which errs on the safe side)
            self.anonymous += t.numel() * t.element_size()
        else:
            self.storages[key] = max(self.storages.get(key, 0), nbytes)
        return t

    @property
    def total(self) -> int:
        return self.anonymous + sum(self.storages.values())


def saved_bytes(fn: Callable[[], Tensor | None]) -> int:
    """Bytes that ``fn()`` leaves for the backward pass, plus its output (for a no-grad pass: its output)."""
    counter = _SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
        out = fn()
    extra = out.numel() * out.element_size() if isinstance(out, Tensor) else 0
    return counter.total + extra


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, RowCost]] = weakref.WeakKeyDictionary()


def meta_copy(module: nn.Module) -> nn.Module | None:
    """A copy of ``module`` on the meta device (no memory), or None when it cannot be made."""
    try:
        with torch.device("meta"):
            clone = copy.deepcopy(module)
        return clone.to("meta")
    except Exception:  # noqa: BLE001 — a module that cannot be deep-copied/moved is probed for real instead
        return None


def row_cost(owner: Any, key: tuple, measure: Callable[[int], int], *, what: str = "a row") -> RowCost:
    """The cost of one pass, cached per ``owner`` (weakly: e.g. the generator) and ``key``.

    ``measure(rows)`` returns the bytes of the pass at ``rows`` rows (e.g. :func:`saved_bytes` of it); it is
    called at one and two rows. The per-row part is their difference (at least half of the two-row figure's
    growth over nothing, and never below 1 byte), scaled by :data:`SAFETY`.
    """
    try:
        cache = _CACHE.setdefault(owner, {})
    except TypeError:  # not weak-referenceable: no caching
        cache = {}
    hit = cache.get(key)
    if hit is not None:
        return hit
    one = measure(1)
    two = measure(2)
    per_row = max(two - one, 1)
    fixed = max(one - per_row, 0)
    cost = RowCost(per_row=int(per_row * SAFETY), fixed=int(fixed), how=str(key[0]) if key else "probe")
    cache[key] = cost
    return cost


def clear_cache() -> None:
    """Forget every measured cost (tests; a model whose structure changed in place)."""
    _CACHE.clear()


def fit_rows(cost: RowCost, rows: int, cap: int | None, device: torch.device | str, what: str) -> int:
    """Rows per chunk: as many as fit in :func:`budget` (at most ``rows`` and ``cap``), at least one.

    Raises :class:`MemoryBudgetError` when even one row does not fit.
    """
    room = budget(device)
    n = (room - cost.fixed) // cost.per_row if room > cost.fixed else 0
    if n < 1:
        raise MemoryBudgetError(
            f"{what} needs about {human_bytes(cost.bytes_for(1))} for a single row, but the memory budget "
            f"({budget_source()}) is {human_bytes(room)}; raise --max-memory, free memory, use a GPU with more "
            f"memory or a smaller model")
    n = min(int(n), rows)
    if cap is not None:
        n = min(n, cap)
    return max(1, n)


def _param_dtype(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        return p.dtype
    return torch.float32


def render_cost(G: Any, space: str, *, noise_grad: bool = False) -> RowCost:
    """What one row of an optimisation step costs in ``G``'s rendering: the forward pass with gradients to the
    latent (and to per-row noise maps with ``noise_grad``), kept for its backward pass. Cached per generator,
    space, noise mode, device, dtype and resolution.

    Measured on a ``meta``-device copy of ``G`` (free at any resolution); a generator that cannot run there is
    measured for real, at one and two rows (an allocation failure at one row raises :class:`MemoryBudgetError`).
    The same figure bounds a no-grad rendering of one row (which keeps far less), so best-of-N scoring and
    batch rendering use it too.
    """
    key = ("render", space, bool(noise_grad), str(G.device), str(_param_dtype(G)), tuple(G.image_shape))
    try:
        hit = _CACHE.get(G, {}).get(key)
    except TypeError:
        hit = None
    if hit is not None:
        return hit
    shape = tuple(G.space(space).shape)
    noise_shapes = list(G.noise_shapes) if noise_grad else []

    def measure_on(model: Any, device: torch.device | str) -> Callable[[int], int]:
        def measure(n: int) -> int:
            lat = torch.zeros((n, *shape), device=device).requires_grad_(True)
            nz = [torch.zeros((n, *sh[1:]), device=device).requires_grad_(True) for sh in noise_shapes] or None
            with torch.enable_grad():
                return saved_bytes(lambda: model._native(lat, space, nz))
        return measure

    clone = meta_copy(G)
    if clone is not None:
        try:
            cost = row_cost(G, ("meta", *key), measure_on(clone, "meta"))
            _CACHE.setdefault(G, {})[key] = cost
            return cost
        except Exception:  # noqa: BLE001 — an op without a meta kernel: measure for real below
            pass
    try:
        cost = row_cost(G, ("probe", *key), measure_on(G, G.device))
    except Exception as exc:  # noqa: BLE001
        if not is_oom(exc):
            raise
        release(G.device)
        raise MemoryBudgetError(f"a single row of the {describe(G)} does not fit in memory even for the "
                                f"probe that measures it (budget {human_bytes(budget(G.device))}); free memory "
                                f"or use a device with more memory") from None
    _CACHE.setdefault(G, {})[key] = cost
    return cost


def loss_cost(owner: Any, key: tuple, fn: Callable[[Tensor], Tensor], image_shape: tuple[int, ...],
              device: torch.device | str) -> RowCost:
    """What one row of ``fn(images)`` (a loss on images ``[n, *image_shape]``, with gradients) keeps for its
    backward pass, measured for real at one and two rows (losses are small next to a generator; an LPIPS
    network runs at ≤ 256 px). Cached per ``owner`` and ``key``."""
    def measure(n: int) -> int:
        img = torch.full((n, *image_shape), 0.5, device=device).requires_grad_(True)
        with torch.enable_grad():
            return saved_bytes(lambda: fn(img))
    return row_cost(owner, ("loss", *key, tuple(image_shape), str(device)), measure)


def combine(*costs: RowCost) -> RowCost:
    """The cost of passes that run together (their saved tensors add up)."""
    return RowCost(per_row=sum(c.per_row for c in costs), fixed=sum(c.fixed for c in costs),
                   how="+".join(c.how for c in costs))


def describe(G: Any) -> str:
    """``1024×1024 stylegan2 generator`` — for messages."""
    try:
        _, h, w = G.image_shape
        return f"{h}×{w} {G.arch} generator"
    except (AttributeError, ValueError, TypeError):
        return "generator"


def throughput_cap(device: torch.device | str, cost: RowCost, cap: int | None = None) -> int:
    """Most rows worth putting in one chunk for speed: on a CPU as many as make :data:`CPU_SATURATION_BYTES`
    of work (at least 1, at most ``cap``, default 64); on a GPU ``cap`` (default 512)."""
    if torch.device(device).type == "cpu":
        return max(1, min(cap if cap is not None else 64, CPU_SATURATION_BYTES // max(cost.per_row, 1)))
    return cap if cap is not None else 512


def rows_that_fit(G: Any, rows: int, cost: RowCost, *, cap: int | None = None, what: str | None = None) -> int:
    """Rows per chunk for a pass of ``cost`` on ``G``'s device: filled up to :func:`budget`, at most ``rows``
    and the throughput cap (:func:`throughput_cap` of ``cap``: up to 64 rows on a CPU, fewer for a model whose
    rows already fill the cores, 512 on a GPU). Raises :class:`MemoryBudgetError` when even one row does not
    fit."""
    return fit_rows(cost, max(1, rows), throughput_cap(G.device, cost, cap), G.device,
                    what or f"one optimisation step of the {describe(G)}")


# ----------------------------------------------------------------------------------------------------------
# Allocation failures
# ----------------------------------------------------------------------------------------------------------
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
             "failed to allocate", "defaultcpuallocator")


def is_oom(exc: BaseException) -> bool:
    """True for an allocation failure: ``torch.OutOfMemoryError``, ``MemoryError`` or a RuntimeError whose
    message is the CPU/CUDA/MPS allocator's."""
    if isinstance(exc, MemoryError | getattr(torch, "OutOfMemoryError", MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _OOM_TEXT)


def release(device: torch.device | str) -> None:
    """Give cached blocks back after an allocation failure, so the smaller retry can use them."""
    import gc

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def run_halving(fn: Callable[[int, int], T], total: int, chunk: int, *, device: torch.device | str,
                what: str, per_row: int | None = None, on_halve: Callable[[int], None] | None = None,
                align: int = 1) -> list[T]:
    """Run ``fn(start, stop)`` over ``[0, total)`` in chunks of ``chunk``; a chunk whose allocation fails is
    split in two and retried (later chunks keep the smaller size). Returns the results in order.

    ``align``: a halved chunk stays a multiple of it while it can (a target's restarts stay together).
    Raises :class:`MemoryBudgetError` when a single row fails to allocate (``per_row``: the estimate to quote).
    """
    out: list[T] = []
    start = 0
    chunk = max(1, chunk)
    while start < total:
        stop = min(total, start + chunk)
        try:
            out.append(fn(start, stop))
        except Exception as exc:  # noqa: BLE001 — only allocation failures are handled, the rest re-raised
            if not is_oom(exc):
                raise
            release(device)
            if stop - start <= 1:
                need = f"about {human_bytes(per_row)}" if per_row else "more than is free"
                raise MemoryBudgetError(
                    f"{what} ran out of memory at a single row (one row needs {need}; the memory budget, "
                    f"{budget_source()}, is {human_bytes(budget(device))}); free memory, set a lower "
                    f"resolution or a smaller model, or use a device with more memory") from None
            chunk = max(1, (stop - start) // 2)
            if align > 1 and chunk >= align:
                chunk -= chunk % align
            if on_halve is not None:
                on_halve(chunk)
            continue
        start = stop
    return out


__all__ = ["CPU_SATURATION_BYTES", "CPU_SHARE", "GPU_SHARE", "SAFETY", "MemoryBudgetError", "RowCost",
           "available_memory", "budget",
           "clear_cache", "combine", "describe", "fit_rows", "human_bytes", "in_use", "is_oom", "loss_cost", "max_memory",
           "memory_limit", "meta_copy", "parse_size", "render_cost", "row_cost", "rows_that_fit", "run_halving",
           "saved_bytes", "set_max_memory", "throughput_cap"]
