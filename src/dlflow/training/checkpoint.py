"""Checkpoint files: where a run's checkpoints live, and atomic save/load.

A run's checkpoints go to ``<checkpoint_dir>/<run_key>/``. The default run key
is a hash of everything that changes the result (the result-relevant
``TrainConfig`` fields, the model's class and ``repr``, the data, the
augmentation and loss), so a changed experiment never resumes from another
experiment's checkpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlflow.files import atomic_write, json_digest
from dlflow.training.data import TensorDataset
from dlflow.training.streaming import ShardStream

if TYPE_CHECKING:
    from dlflow.training.config import TrainConfig

LAST_CHECKPOINT = "last.pt"

# TrainConfig fields that change where/how a run is reported, not what it computes.
_NOT_IN_KEY = {"progress", "checkpoint_dir", "resume", "num_threads"}
_FINGERPRINT_SAMPLES = 65_536


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """A cheap hash of a tensor: dtype, shape, and the bytes of at most 65,536 evenly spaced elements."""
    flat = tensor.detach().reshape(-1)
    step = max(1, flat.numel() // _FINGERPRINT_SAMPLES)
    sample = flat[::step].cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(sample.view(torch.uint8).numpy().tobytes() if sample.numel() else b"")
    return digest.hexdigest()[:16]


def describe(obj: Any) -> str:
    """A stable text identity for a module or function (no memory addresses), for the run key."""
    if obj is None:
        return "None"
    if isinstance(obj, nn.Module):
        return f"{type(obj).__qualname__}:{obj!r}"
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def config_key(
    config: TrainConfig,
    model: nn.Module,
    train: TensorDataset | ShardStream,
    val: TensorDataset,
    *,
    train_transform: Any = None,
    loss_fn: Any = None,
    training_loss: Any = None,
) -> str:
    """Short sha256 (16 hex digits) identifying one experiment, used as checkpoint folder name."""
    identity = {
        "config": config.model_dump(exclude=_NOT_IN_KEY),
        "model": describe(model),
        "train_transform": describe(train_transform),
        "loss_fn": describe(loss_fn),
        **({"training_loss": describe(training_loss)} if training_loss is not None else {}),  # older keys unchanged
        "data": [_data_identity(dataset) for dataset in (train, val)],
    }
    return json_digest(identity, length=16)


def _data_identity(dataset: TensorDataset | ShardStream) -> list[str]:
    """In-memory tensors by their content; a stream by its shards' footers (``ShardStream.fingerprint``)."""
    if isinstance(dataset, ShardStream):
        return dataset.fingerprint()
    return [tensor_fingerprint(t) for t in (*dataset.features, dataset.targets)]


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (``dlflow.files.atomic_write``).

    A crash mid-write leaves the previous checkpoint intact, never a torn file.
    """
    with atomic_write(path) as file:
        torch.save(state, file)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (tensors on the CPU; ``load_state_dict`` moves them), or ``None``."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
