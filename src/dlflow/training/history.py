"""What the training loop records: each epoch's metrics, the result of ``fit``, and its own progress."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class EpochRecord:
    """Metrics of one epoch. ``lr`` is the rate of the epoch's last step; throughput counts training only."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    epoch_seconds: float
    samples_per_second: float


@dataclass
class FitResult:
    """What ``fit`` returns.

    ``best_epoch`` has the lowest validation loss; the model holds its weights
    when early stopping is on, the last epoch's otherwise. ``train_seconds``
    sums the epochs' times, including epochs done before a resume.
    """

    model: nn.Module
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int
    train_seconds: float


@dataclass
class Progress:
    """The loop's own state, saved in every checkpoint: the epochs done, the best one, early stopping."""

    epoch: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False

    def add(self, record: EpochRecord, validated: bool, model: nn.Module, patience: int | None) -> None:
        """Record an epoch. A validated epoch with a lower validation loss becomes the best one
        (its weights are kept when early stopping is on, ``patience`` not ``None``); any other
        validated epoch counts towards ``patience``, and stops the run when it is reached."""
        self.history.append(record)
        self.epoch = record.epoch
        if not validated:
            return
        if record.val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.bad_epochs = record.val_loss, record.epoch, 0
            if patience is not None:
                self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped_early = patience is not None and self.bad_epochs >= patience

    def to_dict(self) -> dict[str, Any]:
        """Plain values and tensors only, so the checkpoint loads with ``weights_only=True``."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["history"] = [dataclasses.asdict(record) for record in self.history]
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Progress:
        return cls(**{**state, "history": [EpochRecord(**r) for r in state["history"]]})
