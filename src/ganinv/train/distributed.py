"""Data-parallel training under ``torchrun``: process group, batch sharding, gradient and BatchNorm sync.

The trainers (:class:`~ganinv.train.encoder.EncoderTrainer`, :class:`~ganinv.train.gan.GanTrainer`)
ask :func:`world` whether a process group is up; :func:`session` (used by the CLI) starts one when
``torchrun`` launched the process (``WORLD_SIZE`` > 1 in the environment) and always ends it.

Design — N processes train what one process trains with the same *global* batch (equal up to float
rounding: the ranks' partial sums round differently from one process's sums):

* ``--batch-size`` is the global batch. Every rank draws the global batch's random numbers (data
  indices, latents, noise maps, mixing, augmentation) from identically seeded generators, in the
  same order, and keeps its slice — so all random streams stay in step across ranks and with a
  one-process run.
* Each rank's loss is its slice's share of the global mean (``local mean × n_local / N``); the
  gradients are **summed** over ranks (:func:`sum_gradients`), which gives the global mean's
  gradient for any slicing. Gradients are reduced by hand rather than with
  ``DistributedDataParallel``: the GAN alternates two networks, runs D on two batches and freezes
  it for G's step, and its R1 penalty differentiates through ``autograd.grad`` — none of which DDP's
  reducer (one backward per forward, every parameter used) supports; the encoder runs its network
  ``passes`` times per step. One flattened all-reduce per optimiser step is the same arithmetic.
* BatchNorm layers of the trained networks become :class:`SyncBatchNorm2d` (statistics of the
  global batch, differentiable all-reduce; torch's own ``SyncBatchNorm`` runs on GPUs only).
* Minibatch-stddev groups: :func:`shard_indices` hands each rank whole groups, ordered so that
  the layer forms the same groups as in the one-process run.
* Rank 0 alone validates/evaluates, samples, prints and writes files; the ranks share rank 0's
  clock (:func:`broadcast_float`) so a time budget and the learning-rate schedule end and decay
  at the same step everywhere. All ranks resume from the same ``checkpoint.pt``, which is the
  same file a one-process run writes (the world size may change between runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ganinv.errors import InputError


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return world()[0] == 0


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process run (``torchrun`` sets ``WORLD_SIZE``/``RANK``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@contextmanager
def session(device: torch.device) -> Iterator[torch.device]:
    """Join the ``torchrun`` process group for the duration (a no-op in a plain process).

    Yields the device this rank trains on: ``cuda:LOCAL_RANK`` for CUDA (NCCL backend), else
    ``device`` (gloo backend). The group is destroyed on the way out, also on errors.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield device
        return
    if not dist.is_available():
        raise InputError("this torch build has no torch.distributed; run without torchrun")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise InputError(f"distributed training runs on cpu or cuda, not {device.type}")
    dist.init_process_group(backend)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def check_batch(batch_size: int, world_size: int) -> None:
    """Refuse a global batch that does not split evenly among the processes."""
    if batch_size % world_size:
        raise InputError(f"--batch-size {batch_size} is the global batch and must divide evenly among the "
                         f"{world_size} processes; use a multiple of {world_size}")


def effective_group(batch: int, group: int) -> int:
    """The group size :class:`~ganinv.generators.dcgan.MinibatchStd` uses for ``batch`` samples."""
    g = min(group, batch)
    while batch % g:
        g -= 1
    return g


def shard_indices(n: int, rank: int, world_size: int, group: int = 1) -> Tensor:
    """Indices of this rank's share of a global batch of ``n`` (``n`` divisible by ``world_size``).

    ``group`` > 1 (the discriminator's minibatch-stddev group): the layer groups samples
    ``j, j + n/g, j + 2n/g, …``; each rank gets whole groups, ordered so that its own layer,
    seeing ``n / world_size`` samples, forms exactly those groups.
    """
    per = n // world_size
    if group <= 1:
        return torch.arange(rank * per, (rank + 1) * per)
    g = effective_group(n, group)
    cols = n // g
    if cols % world_size or effective_group(per, group) != g:
        raise InputError(f"--batch-size {n} with minibatch-stddev groups of {g} cannot be split among "
                         f"{world_size} processes with the same groups; use a multiple of {g * world_size}")
    c = cols // world_size
    return torch.arange(n).view(g, cols)[:, rank * c:(rank + 1) * c].reshape(-1)


def interleaved(offset: int, rank: int, world_size: int) -> slice:
    """This rank's items of a block that starts at position ``offset`` of the global batch.

    Global positions are dealt round-robin (position ``i`` → rank ``i % world_size``), so with a
    global batch made of several blocks (e.g. real then generated images) every rank gets
    ``N / world_size`` items and a near-equal share of each block.
    """
    return slice((rank - offset) % world_size, None, world_size)


def sum_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce (sum) the gradients of ``params`` in one flat buffer.

    A parameter with a gradient on some rank but none on another gets zeros there, so every rank
    steps the same parameters (a parameter no rank touched keeps ``grad = None``, as in one process).
    """
    _, world_size = world()
    if world_size == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, h in zip(params, has.tolist()) if h > 0]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not used:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in used])
    dist.all_reduce(flat)
    offset = 0
    for p in used:
        k = p.numel()
        p.grad.copy_(flat[offset:offset + k].view_as(p.grad))
        offset += k


def sum_values(values: dict[str, Tensor]) -> dict[str, float]:
    """Sum scalar tensors over ranks (one all-reduce) and return them as floats."""
    if not values:
        return {}
    if world()[1] > 1:
        packed = torch.stack([v.detach().reshape(()).float() for v in values.values()])
        dist.all_reduce(packed)
        return dict(zip(values, packed.tolist()))
    return {k: v.item() for k, v in values.items()}


def broadcast_float(x: float, device: torch.device) -> float:
    """Rank 0's value of ``x`` on every rank (e.g. elapsed seconds, which must agree for time budgets)."""
    if world()[1] == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def barrier() -> None:
    """Wait for every rank (a no-op in one process)."""
    if world()[1] > 1:
        dist.barrier()


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (all ranks must start from the same weights)."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, 0)


class _SyncBatchNormMixin:
    """BatchNorm whose training-mode statistics are those of the global batch across ranks."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if not self.training or world()[1] == 1:  # type: ignore[attr-defined]
            return super().forward(x)  # type: ignore[misc]
        return _sync_batch_norm(self, x)  # type: ignore[arg-type]


class SyncBatchNorm1d(_SyncBatchNormMixin, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` with statistics over all ranks in training mode."""


class SyncBatchNorm2d(_SyncBatchNormMixin, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` with statistics over all ranks in training mode (CPU and GPU)."""


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of a sum is the sum of the ranks' gradients (again an
    all-reduce, itself differentiable, so R1's double backward works through synchronised BatchNorm)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return _AllReduceSum.apply(grad)


def all_reduce(x: Tensor) -> Tensor:
    """Differentiable all-reduce (sum) of ``x`` over ranks."""
    return _AllReduceSum.apply(x)


def _sync_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
    packed = all_reduce(torch.cat([x.sum(dims), count]))
    total = packed[-1].detach()
    mean = packed[:-1] / total
    centred = x - mean.view(shape)
    sq = all_reduce(centred.square().sum(dims))  # two passes, like torch's own kernels
    var = sq / total
    out = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
            bn.running_var.mul_(1 - momentum).add_(sq.detach() / (total - 1).clamp_min(1) * momentum)
    return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Turn ``module``'s BatchNorm1d/2d layers into their synchronised versions, in place.

    Parameters, buffers and state-dict keys are unchanged (checkpoints stay interchangeable);
    outside a multi-process group, or in eval mode, the layers behave exactly as before.
    """
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
        elif type(m) is nn.BatchNorm1d:
            m.__class__ = SyncBatchNorm1d
    return module


__all__ = ["SyncBatchNorm1d", "SyncBatchNorm2d", "all_reduce", "barrier", "broadcast_float", "broadcast_module",
           "check_batch", "convert_sync_batchnorm", "effective_group", "interleaved", "is_main", "launched_by_torchrun",
           "session", "shard_indices", "sum_gradients", "sum_values", "world"]
