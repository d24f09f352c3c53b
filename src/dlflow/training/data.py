"""In-memory datasets that the training loop slices into batches.

Our data sets fit in memory (and on the GPU), so a batch is an ``index_select``
of whole tensors on a random permutation: no DataLoader, no workers, no
per-sample Python. The features are a tuple so the same loop feeds an image
model (``(images,)``) and a sequence model (``(token_ids, lengths)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


@dataclass
class TensorDataset:
    """Feature tensors and a target tensor that share their first (sample) dimension."""

    features: tuple[torch.Tensor, ...]
    targets: torch.Tensor

    def __post_init__(self) -> None:
        self.features = tuple(self.features)
        if not self.features:
            raise ValueError("features must hold at least one tensor")
        sizes = [tensor.shape[0] for tensor in self.features]
        if any(size != self.targets.shape[0] for size in sizes):
            raise ValueError(
                f"features and targets must have the same first dimension, got "
                f"features {sizes} and targets {self.targets.shape[0]}"
            )

    def __len__(self) -> int:
        return self.targets.shape[0]

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        bucket_by: int | None = None,
    ) -> Iterator[Batch]:
        """Yield ``(features, targets)`` batches; the last one may be smaller.

        With ``shuffle`` the order is a permutation drawn from ``generator``
        (on the generator's device, then moved to the data's device). With
        ``bucket_by``, the shuffled samples are sorted by that feature (e.g.
        sentence lengths) within windows of 50 batches and the batches are then
        served in random order: batches hold similar lengths, so a sequence
        model pads less, and the data stays shuffled.
        """
        n = len(self)
        if not shuffle:
            for start in range(0, n, batch_size):
                stop = start + batch_size
                yield tuple(f[start:stop] for f in self.features), self.targets[start:stop]
            return
        device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=device).to(self.targets.device)
        if bucket_by is not None:
            key = self.features[bucket_by]
            order = torch.cat([w[torch.argsort(key[w], stable=True)] for w in order.split(batch_size * 50)])
            starts = torch.randperm(-(-n // batch_size), generator=generator, device=device) * batch_size
        else:
            starts = torch.arange(0, n, batch_size)
        for start in starts.tolist():
            index = order[start : start + batch_size]
            features = tuple(f.index_select(0, index) for f in self.features)
            yield features, self.targets.index_select(0, index)

    def to(self, device: torch.device | str) -> TensorDataset:
        """A copy with every tensor on ``device`` (the same object's tensors if already there)."""
        return TensorDataset(tuple(f.to(device) for f in self.features), self.targets.to(device))
