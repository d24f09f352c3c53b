"""``ShardedTable``: a table stored as parquet part files, described without reading it.

What a streaming reader needs to know before it reads a row: the part files, how many
rows each holds and how large the table would be in memory, all from the parquet
footers. ``read_part`` reads one part (some columns of it); ``read`` the whole table,
for data that fits in memory. Knows nothing of Kedro: ``dlflow.io.ParquetShardsDataset``
hands one out when its catalog entry says ``lazy: true``, and the training loop's
``dlflow.training.streaming.ShardStream`` reads one part at a time. Example::

    table = ShardedTable.from_parts(sorted(Path("data/05_model_input/cnn/training").glob("part-*.parquet")))
    len(table), table.memory_bytes   # rows, and bytes once decoded (footers only)
    first = table.read_part(0, columns=["label"])
    labels = table.column("label")   # one column of every row: a split is planned from it
    for rows in table.take(np.flatnonzero(labels == 3)):   # those rows, a record batch at a time
        ...

``column``, ``take`` and ``frame`` also take a DataFrame (a table already in memory), so a node
written for tables of any size runs as it did on small ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class ShardedTable:
    """Parquet part files read as one table: ``parts[i]`` holds ``rows[i]`` rows."""

    parts: tuple[Path, ...]
    rows: tuple[int, ...]
    memory_bytes: int  # the table's size once decoded (the footers' uncompressed row-group sizes)

    @classmethod
    def from_parts(cls, parts: Sequence[Path | str]) -> ShardedTable:
        """Describe ``parts`` from their footers; ``ValueError`` naming a part that is not parquet."""
        paths, rows, size = [], [], 0
        for part in parts:
            path = Path(part)
            try:
                metadata = pq.read_metadata(path)
            except (OSError, pa.ArrowInvalid) as error:
                raise ValueError(f"{path}: not a readable parquet part ({error}); write the table again") from None
            paths.append(path)
            rows.append(metadata.num_rows)
            size += sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups))
        if not paths:
            raise ValueError("a sharded table needs at least one part file")
        return cls(tuple(paths), tuple(rows), size)

    def __len__(self) -> int:
        return sum(self.rows)

    def read_part(self, index: int, columns: Sequence[str] | None = None) -> pa.Table:
        """Part ``index`` (only ``columns``, when given) as an Arrow table."""
        return pq.read_table(self.parts[index], columns=list(columns) if columns is not None else None)

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole table in memory, parts in order."""
        tables = [self.read_part(index, columns) for index in range(len(self.parts))]
        return pa.concat_tables(tables).to_pandas()

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of every row, parts in order (only that column is read)."""
        return np.concatenate([self.read_part(index, [name]).column(name).to_numpy() for index in range(len(self.parts))])

    def take(self, rows: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """The rows at the ascending indices ``rows`` (of the whole table), in order, as Arrow tables read a
        record batch (``BATCH_ROWS``) at a time: memory holds one batch, whatever the size of the parts.
        Parts and batches without a chosen row are not decoded. ``ValueError`` for indices out of order or range."""
        rows = _ascending(rows, len(self))
        start = 0
        for path, count in zip(self.parts, self.rows):
            local = rows[np.searchsorted(rows, start) : np.searchsorted(rows, start + count)] - start
            offset, start = 0, start + count
            if not len(local):
                continue
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=_listed(columns)):
                chosen = local[np.searchsorted(local, offset) : np.searchsorted(local, offset + batch.num_rows)] - offset
                offset += batch.num_rows
                if len(chosen):
                    yield pa.Table.from_batches([batch]).take(pa.array(chosen))

    def fingerprint(self) -> str:
        """A digest of the parts' names, sizes and footers: changes when any part's content changes,
        without reading the rows (a checkpoint's key; the footer holds every column chunk's offsets and statistics)."""
        digest = hashlib.sha256()
        for path, rows in zip(self.parts, self.rows):
            size = path.stat().st_size
            with path.open("rb") as file:
                file.seek(max(0, size - 65536))
                digest.update(f"{path.name}:{size}:{rows}:".encode())
                digest.update(file.read())
        return digest.hexdigest()[:16]


#: Rows read at a time by ``ShardedTable.take`` (Fashion-MNIST: about 6.5 MB of pixels).
BATCH_ROWS = 8192


def column(table: pd.DataFrame | ShardedTable, name: str) -> np.ndarray:
    """Column ``name`` of a table in memory or of a sharded one (read alone)."""
    return table[name].to_numpy() if isinstance(table, pd.DataFrame) else table.column(name)


def take(table: pd.DataFrame | ShardedTable, rows: Sequence[int] | np.ndarray) -> Iterator[pa.Table]:
    """The rows at the ascending indices ``rows`` as Arrow tables: of a sharded table a batch at a time
    (``ShardedTable.take``), of one in memory at once."""
    if isinstance(table, ShardedTable):
        return table.take(rows)
    return iter([pa.Table.from_pandas(table.iloc[_ascending(rows, len(table))], preserve_index=False)])


def frame(tables: Iterable[pa.Table]) -> pd.DataFrame:
    """Arrow tables of one schema (``take``'s) as one DataFrame (for rows known to fit in memory)."""
    return pa.concat_tables(list(tables)).to_pandas()


def _ascending(rows: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and ((np.diff(rows) <= 0).any() or rows[0] < 0 or rows[-1] >= size):
        raise ValueError(f"row indices must ascend within 0..{size - 1}")
    return rows


def _listed(columns: Sequence[str] | None) -> list[str] | None:
    return list(columns) if columns is not None else None
