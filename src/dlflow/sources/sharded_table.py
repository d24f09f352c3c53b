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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
