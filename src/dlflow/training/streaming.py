"""``ShardStream``: training batches read from parquet shards, for data sets larger than memory.

The loop (``training.loop.fit``) takes a ``ShardStream`` as its training data wherever it
takes an in-memory ``TensorDataset``. Memory holds the shuffle buffer: one window of whole
parts of at least ``buffer_rows`` rows, decoded to compact tensors as stored (``decode``:
uint8 images, not floats), the next window read and decoded ahead on a thread (so about
three windows at the turn of one); and one batch prepared for the model (``prepare``:
normalised floats), whatever the size of the table.

The order of an epoch is drawn from the loop's generator, from sizes alone::

    parts  = randperm(number of parts)                 # shuffled shard order
    window = the next parts, until they hold >= buffer_rows rows
    rows   = randperm(rows of the window)              # the shuffle buffer
    global batches = consecutive batch_size slices of the rows of all windows, in turn

so every process of a ``torchrun`` job draws the same global batches as one process
(the loop's invariant), and each process prepares only its own slice of each batch
(``for_rank``): the rest of the batch's rows stay zero, cut away by
``World.local_batch`` before the forward pass; the augmentation's random draws are
still made for the whole batch, so they match one process's. A checkpoint at the end
of an epoch saves the generator: a resumed run draws the same order as one that
never stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, is_dataclass, replace

import pyarrow as pa
import torch

from dlflow.sources.sharded_table import ShardedTable
from dlflow.training.data import Batch

#: ``decode(rows) -> (features, targets)``: a window's rows (an Arrow table) as compact tensors, as stored
#: (e.g. uint8 images): called once per window.
Decode = Callable[[pa.Table], tuple[tuple[torch.Tensor, ...], torch.Tensor]]
#: ``prepare(features) -> features``: a batch's decoded features as the model takes them (e.g. normalised floats).
Prepare = Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class ShardStream:
    """Batches of a ``ShardedTable``: each window of ``columns`` decoded by ``decode``, each batch's features
    made by ``prepare``; see the module."""

    table: ShardedTable
    decode: Decode
    columns: tuple[str, ...]
    prepare: Prepare | None = None
    buffer_rows: int = 65536
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        if self.buffer_rows < 1:
            raise ValueError(f"buffer_rows must be positive, got {self.buffer_rows}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size}")

    def __len__(self) -> int:
        return len(self.table)

    def to(self, device: torch.device | str) -> ShardStream:
        """This stream yielding its batches on ``device``."""
        return replace(self, device=torch.device(device))

    def for_rank(self, rank: int, world_size: int) -> ShardStream:
        """This stream as process ``rank`` of ``world_size`` reads it: every global batch, only its slice prepared."""
        return replace(self, rank=rank, world_size=world_size)

    def fingerprint(self) -> list[str]:
        """What identifies the data (a checkpoint's key): the parts' digest, and how they are decoded and prepared."""
        return [self.table.fingerprint(), ",".join(self.columns), _identity(self.decode), _identity(self.prepare)]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        bucket_by: int | None = None,
    ) -> Iterator[Batch]:
        """Yield ``(features, targets)`` global batches; the last one may be smaller. See the module for the order."""
        if bucket_by is not None:
            raise ValueError("a ShardStream does not bucket by length (bucket_by): train such data in memory")
        windows = list(self._windows(shuffle, generator))
        pending: list[_Rows] = []  # rows of the windows not yet in a batch
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-reader") as reader:
            ahead = reader.submit(self._read_window, windows[0]) if windows else None
            for number, (parts, rows_in_window) in enumerate(windows):
                features, targets = ahead.result()
                ahead = reader.submit(self._read_window, windows[number + 1]) if number + 1 < len(windows) else None
                order = _permutation(rows_in_window, generator) if shuffle else torch.arange(rows_in_window)
                pending.append(_Rows(features, targets, order))
                while sum(len(rows.order) for rows in pending) >= batch_size:
                    yield self._batch(_take(pending, batch_size))
            if pending:
                yield self._batch(_take(pending, batch_size))

    # ------------------------------------------------------------------ the steps of batches

    def _windows(self, shuffle: bool, generator: torch.Generator | None) -> Iterator[tuple[list[int], int]]:
        """The parts of each shuffle window, in epoch order, and the rows each window holds."""
        count = len(self.table.parts)
        order = _permutation(count, generator).tolist() if shuffle else list(range(count))
        window: list[int] = []
        rows = 0
        for part in order:
            window.append(part)
            rows += self.table.rows[part]
            if rows >= self.buffer_rows:
                yield window, rows
                window, rows = [], 0
        if window:
            yield window, rows

    def _read_window(self, window: tuple[list[int], int]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        parts, _ = window
        return self.decode(pa.concat_tables([self.table.read_part(part, self.columns) for part in parts]))

    def _batch(self, rows: list[_Rows]) -> Batch:
        """The global batch of ``rows``: every target, and the features of this process's slice only."""
        targets = torch.cat([r.targets.index_select(0, r.order) for r in rows]).to(torch.int64)
        size = len(targets)
        start, stop = _slice(size, self.rank, self.world_size) if self.world_size > 1 else (0, size)
        # a batch with fewer rows than processes leaves this one none (the loop skips such a batch): one
        # row prepared for the features' shape, the batch's features all zero
        mine = _rows_between(rows, start, stop) if stop > start else _rows_between(rows, 0, 1)
        local = tuple(torch.cat(parts) for parts in zip(*[[f.index_select(0, r.order) for f in r.features] for r in mine]))
        local = self.prepare(local) if self.prepare is not None else local
        if self.world_size == 1:
            return tuple(f.to(self.device) for f in local), targets.to(self.device)
        features = []
        for tensor in local:
            whole = torch.zeros((size, *tensor.shape[1:]), dtype=tensor.dtype)
            if stop > start:
                whole[start:stop] = tensor
            features.append(whole.to(self.device))
        return tuple(features), targets.to(self.device)


@dataclass(frozen=True)
class _Rows:
    """A window's decoded features and targets, and the order of its rows still to be batched."""

    features: tuple[torch.Tensor, ...]
    targets: torch.Tensor
    order: torch.Tensor


def _identity(step: Callable | None) -> str:
    """A stable text identity of a decode or prepare step: a dataclass by its fields, a function by its name."""
    if is_dataclass(step):
        return repr(step)
    return f"{getattr(step, '__module__', '')}.{getattr(step, '__qualname__', type(step).__qualname__)}"


def _permutation(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.randperm`` from the loop's generator, on the CPU."""
    if generator is not None and generator.device.type != "cpu":
        return torch.randperm(n, generator=generator, device=generator.device).cpu()
    return torch.randperm(n, generator=generator)


def _take(pending: list[_Rows], count: int) -> list[_Rows]:
    """The first ``count`` pending rows (window by window), removed from ``pending``."""
    taken = []
    while count and pending:
        rows = pending[0]
        taken.append(replace(rows, order=rows.order[:count]))
        if len(rows.order) <= count:
            pending.pop(0)
        else:
            pending[0] = replace(rows, order=rows.order[count:])
        count -= len(taken[-1].order)
    return taken


def _slice(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a ``size``-row batch that ``rank`` trains on: ``Tensor.tensor_split``'s parts,
    as ``training.distributed.shard`` cuts the batch."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _rows_between(rows: Sequence[_Rows], start: int, stop: int) -> list[_Rows]:
    """Batch positions ``[start, stop)`` of ``rows`` (the windows' rows, concatenated)."""
    found, offset = [], 0
    for window in rows:
        low, high = max(start - offset, 0), min(stop - offset, len(window.order))
        if low < high:
            found.append(replace(window, order=window.order[low:high]))
        offset += len(window.order)
    return found
