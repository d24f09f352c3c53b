"""Data-parallel training across processes launched by ``torchrun``: who is who, sharding, collectives.

The training loop sees a ``World``: its rank, the number of processes, and a
few collectives that do nothing in a world of one. A world of several
processes comes from ``torchrun`` (or any launcher that sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``): ``launched_world``
joins the process group from the environment (``init_method="env://"``), on
one machine or many. ``fit`` starts no processes itself.

Backend: NCCL on CUDA (one GPU per process, ``cuda:<LOCAL_RANK>``), gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the process's index on its machine, i.e. its GPU
    local_size: int = 1  # processes on this machine, sharing its CPU cores

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, calls callbacks and logs."""
        return self.rank == 0

    @classmethod
    def from_process_group(cls) -> World:
        rank, size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return cls(rank, size, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", size)))

    def device(self, device: torch.device) -> torch.device:
        """The device of this process: its own GPU when training on CUDA."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.size > 1 else device

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)`` with synchronised BatchNorm; ``model`` itself alone.

        DDP averages the gradients across processes. Each BatchNorm layer
        normalises training batches with the statistics of the global batch
        (all-reduced), as one process would, also on CPU where
        ``nn.SyncBatchNorm`` does not run; ``unwrap`` restores the layers.
        """
        if self.size == 1:
            return model
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine and module.track_running_stats:
                module.forward = _sync_batchnorm_forward.__get__(module)
        device = next(model.parameters()).device
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def unwrap(self, model: nn.Module) -> None:
        """Undo ``wrap``'s changes to ``model``'s BatchNorm layers."""
        for module in model.modules():
            module.__dict__.pop("forward", None)

    def shard(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """This process's part of each tensor, see ``shard``; the tensors themselves alone."""
        return shard(tensors, self.rank, self.size) if self.size > 1 else tuple(tensors)

    def local_batch(
        self, features: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, float] | None:
        """This process's slice of a global batch, and the weight of its mean loss.

        DDP averages the processes' gradients; weighting each process's mean
        loss by ``local size * world size / global size`` makes that average the
        gradient of the global batch's mean loss, as one process would compute
        it. A world of one returns the batch itself and weight 1. A batch with
        fewer samples than processes (only ever the short last batch of an
        epoch) would leave a process without a sample: ``None``, and every
        process skips it alike (``fit`` warns of it before training).
        """
        if self.size == 1:
            return tuple(features), targets, 1.0
        if len(targets) < self.size:
            return None
        *local, local_targets = self.shard((*features, targets))
        return tuple(local), local_targets, len(local_targets) * self.size / len(targets)

    def skipped_samples(self, samples: int, batch_size: int) -> int:
        """How many samples of each epoch ``local_batch`` skips: the short last batch if it is smaller than the world."""
        short = samples % batch_size
        return short if 0 < short < self.size else 0

    def sum(self, *values: torch.Tensor | float) -> list[float]:
        """Each value summed over all processes (float64, one all-reduce); ``float(value)`` alone."""
        device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
        totals = torch.stack([torch.as_tensor(v, device=device).to(torch.float64) for v in values])
        if self.size > 1:
            dist.all_reduce(totals)
        return totals.tolist()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (picklable objects, e.g. a checkpoint)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank, on every process."""
        if self.size == 1:
            return [obj]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every process, before validating."""
        if self.size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def shard(tensors: Sequence[torch.Tensor], rank: int, world_size: int) -> tuple[torch.Tensor, ...]:
    """Process ``rank``'s contiguous part of each tensor (first dimension); parts differ by at most one row.

    Applied to the same global batch on every process, the parts cover each sample exactly once.
    """
    return tuple(t.tensor_split(world_size)[rank] for t in tensors)


def _sync_batchnorm_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """A BatchNorm layer's forward with global-batch statistics in training (any device, any backend)."""
    if not self.training:
        return type(self).forward(self, x)
    self.num_batches_tracked.add_(1)
    momentum = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
    return _SyncBatchNorm.apply(x.float(), self.weight, self.bias, self.running_mean, self.running_var, self.eps, momentum)


class _SyncBatchNorm(torch.autograd.Function):
    """Batch normalisation over the samples of all processes: the sums of forward and backward are all-reduced."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        channels, dims = x.shape[1], [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        count = torch.full((1,), x.numel() / channels, dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dims), x.square().sum(dims), count])
        dist.all_reduce(stats)
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels:-1] / n - mean.square()).clamp_(min=0)
        invstd = torch.rsqrt(var + eps)
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * n / (n - 1).clamp(min=1), momentum)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd, n)
        return xhat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, weight, invstd, n = ctx.saved_tensors
        channels, dims = grad.shape[1], [0, *range(2, grad.dim())]
        shape = [1, channels] + [1] * (grad.dim() - 2)
        local = torch.cat([grad.sum(dims), (grad * xhat).sum(dims)])
        grad_bias, grad_weight = local[:channels].clone(), local[channels:].clone()  # DDP averages these
        dist.all_reduce(local)
        mean_grad, mean_grad_xhat = local[:channels] / n, local[channels:] / n
        grad_x = (grad - mean_grad.view(shape) - xhat * mean_grad_xhat.view(shape)) * (weight * invstd).view(shape)
        return grad_x, grad_weight, grad_bias, None, None, None, None


# --------------------------------------------------------------------------- launching


@contextmanager
def launched_world(processes: int, device_type: str) -> Iterator[World]:
    """The world to train in: ``World()`` for one process, else the process group ``torchrun`` launched.

    Joins the group from the environment unless it is already initialised, and
    then leaves it on exit. Raises ``ValueError`` when the launched processes
    (``WORLD_SIZE``) are not ``processes``, e.g. ``processes=2`` without ``torchrun``.
    """
    launched = launcher_world_size()
    if processes == 1:
        if launched not in (None, 1):
            raise ValueError(f"{launched} processes were launched (WORLD_SIZE) but TrainConfig.processes is 1")
        yield World()
        return
    if launched is None and not dist.is_initialized():
        raise ValueError(
            f"TrainConfig.processes is {processes}: launch the program with "
            f"`torchrun --nproc_per_node={processes} ...` (one process per GPU or CPU share)"
        )
    created = not dist.is_initialized()
    if created:
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method="env://")
    try:
        world = World.from_process_group()
        if world.size != processes:
            raise ValueError(f"TrainConfig.processes is {processes} but {world.size} processes were launched")
        yield world
    finally:
        if created:
            dist.destroy_process_group()


def launcher_world_size() -> int | None:
    """``WORLD_SIZE`` set by ``torchrun`` (or another launcher), else ``None``."""
    value = os.environ.get("WORLD_SIZE")
    return int(value) if value else None
