"""Data-parallel training across processes: who is who, sharding, collectives, and starting workers.

The training loop sees a ``World``: its rank, the number of processes, and a
few collectives that do nothing in a world of one. A world of several
processes comes from one of two places:

* ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR`` and ``MASTER_PORT``): ``join`` initialises the process group
  from the environment (``init_method="env://"``), on one machine or many;
* ``spawn``: the calling process starts the workers itself on this machine
  (``torch.multiprocessing``, start method "spawn", a free loopback port), relays
  their messages and log records, and returns rank 0's result.

Backend: NCCL on CUDA (one GPU per process, ``cuda:<LOCAL_RANK>``), gloo on CPU.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger("dlflow.training")

#: A message from rank 0 to the process that spawned it: ``(kind, payload)``.
Send = Callable[[tuple[str, Any]], None]


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


def launcher_world_size() -> int | None:
    """``WORLD_SIZE`` set by ``torchrun`` (or another launcher), else ``None``."""
    value = os.environ.get("WORLD_SIZE")
    return int(value) if value else None


def launcher_rank() -> int:
    """``RANK`` set by ``torchrun`` (or another launcher), else 0."""
    return int(os.environ.get("RANK") or 0)


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def join(device_type: str) -> tuple[World, bool]:
    """The world of the current process group, initialised from the environment if needed.

    Returns the world and whether this call created the group (the caller then destroys it).
    """
    if dist.is_initialized():
        return World.from_process_group(), False
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend_for(device_type), init_method="env://")
    return World.from_process_group(), True


def spawn(
    fn: Callable[..., Any],
    args: tuple,
    processes: int,
    device_type: str,
    on_message: Callable[[str, Any], None],
) -> Any:
    """Run ``fn(world, send, *args)`` in ``processes`` new processes on this machine; return rank 0's result.

    ``args`` travel through a temporary file that each worker memory-maps
    (``torch.save``: model, data and functions must be picklable; no shared
    memory needed). Rank 0 gets ``send`` to pass ``(kind, payload)`` messages,
    handed to ``on_message`` here, in this process, as they arrive; the other
    ranks get ``None``. Workers' log records are re-emitted here. If a worker
    fails, this raises ``RuntimeError`` with its traceback; whatever happens,
    no worker outlives this call.
    """
    if device_type == "cuda" and processes > torch.cuda.device_count():
        raise ValueError(f"{processes} processes need {processes} GPUs, found {torch.cuda.device_count()}")
    context = torch.multiprocessing.get_context("spawn")
    events = context.Queue()
    with tempfile.TemporaryDirectory(prefix="dlflow-spawn-") as folder:
        payload = Path(folder) / "args.pt"
        torch.save(args, payload)
        workers = torch.multiprocessing.start_processes(
            _worker,
            args=(processes, _free_port(), device_type, events, os.getpid(), fn, str(payload)),
            nprocs=processes,
            join=False,
            start_method="spawn",
        )
        try:
            exited = False
            while True:
                try:
                    kind, content = events.get(timeout=0.2)
                except queue.Empty:
                    if exited:
                        raise RuntimeError("the training processes exited without a result") from None
                    exited = workers.join(timeout=0)  # raises if a worker died without reporting
                    continue
                if kind == "log":
                    logging.getLogger(content.name).handle(content)
                elif kind == "error":
                    rank, trace = content
                    raise RuntimeError(f"training process {rank} of {processes} failed:\n{trace}")
                elif kind == "result":
                    result = content
                    break
                else:
                    on_message(kind, content)
            while not workers.join(timeout=60):  # the other ranks finish right after rank 0
                pass
            return result
        finally:
            for process in workers.processes:
                if process.is_alive():
                    process.terminate()
            for process in workers.processes:
                process.join()


def _worker(
    rank: int,
    world_size: int,
    port: int,
    device_type: str,
    events: Any,
    parent_pid: int,
    fn: Callable[..., Any],
    payload: str,
) -> None:
    """One spawned process: join the group on the loopback port, run ``fn``, report to the parent."""
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size),
    )  # fmt: skip
    root = logging.getLogger()
    root.handlers = [_EventLogHandler(events)]
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    try:
        args = torch.load(payload, mmap=True, weights_only=False)
        world, _ = join(device_type)
        try:
            result = fn(world, events.put if rank == 0 else None, *args)
        finally:
            dist.destroy_process_group()
        if rank == 0:
            events.put(("result", result))
    except BaseException:
        events.put(("error", (rank, traceback.format_exc())))
        raise


class _EventLogHandler(logging.handlers.QueueHandler):
    """Sends a worker's log records to the parent as ``("log", record)`` messages."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(("log", record))


def _exit_with_parent(parent_pid: int) -> None:
    """End this worker if the process that spawned it is gone (killed without cleaning up)."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
