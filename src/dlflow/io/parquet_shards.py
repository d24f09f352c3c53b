"""``ParquetShardsDataset``: a table stored as a folder of parquet part files, saved atomically.

``filepath`` names a folder of ``part-00000.parquet``, ``part-00001.parquet``, ... of
about ``part_bytes`` each (at least one part, so an empty table keeps its schema), and
``_parts.json`` naming them, so that a reader never takes a folder being replaced by
another run for a shorter table.
pandas and pyarrow read the folder as one table (``pd.read_parquet(folder)``). With
``lazy: true`` loading reads only the parts' footers and returns a
``dlflow.sources.sharded_table.ShardedTable``, which a streaming reader (the training
loop's ``ShardStream``) reads one part at a time. Saving writes a hidden sibling folder and renames it over the old one
(``dlflow.files.atomic_path``): a crash leaves the previous table or none, never a
part of one. Example::

    image_train_intermediate:
      type: dlflow.io.ParquetShardsDataset
      filepath: data/02_intermediate/fashion_mnist/train
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_path
from dlflow.sources.sharded_table import ShardedTable

PART_PATTERN = "part-*.parquet"
MANIFEST = "_parts.json"  # the parts of this table: a reader reads them all, or (being replaced) reads again


class ParquetShardsDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A DataFrame as a folder of parquet parts of about ``part_bytes`` each (default 128 MiB)."""

    def __init__(
        self,
        *,
        filepath: str,
        part_bytes: int = 128 << 20,
        lazy: bool = False,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            filepath: the folder of part files.
            part_bytes: about how many bytes of table (in memory) go into one part file.
            lazy: load a ``ShardedTable`` (the parts described from their footers) instead of the DataFrame.
            save_args: passed to ``pyarrow.parquet.write_table`` (``compression``, ...).
            metadata: free-form information for plugins such as kedro-viz.
        """
        if part_bytes < 1:
            raise ValueError(f"part_bytes must be positive, got {part_bytes}")
        self._filepath = Path(filepath)
        self._part_bytes = int(part_bytes)
        self._lazy = bool(lazy)
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def parts(self) -> list[Path]:
        """The part files in order: those ``_parts.json`` names, else every part file (a folder another tool
        wrote); a single parquet file at ``filepath`` is its own one part."""
        if self._filepath.is_file():
            return [self._filepath]
        try:
            names = json.loads((self._filepath / MANIFEST).read_text())["parts"]
        except FileNotFoundError:
            return sorted(self._filepath.glob(PART_PATTERN))
        return [self._filepath / name for name in names]

    def load(self) -> pd.DataFrame | ShardedTable:
        if self._lazy:
            parts = self.parts()
            if not parts:
                raise DatasetError(f"No table at {self._filepath}: no {PART_PATTERN} files there (run the step that writes it)")
            try:
                return ShardedTable.from_parts(parts)
            except ValueError as error:
                raise DatasetError(str(error)) from None
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Another run may be replacing the folder this very moment (files._replace_folder): a part its
        # manifest names that is gone, or no part at all, is read again from the new folder.
        for attempt in range(20):
            try:
                parts = self.parts()
                if parts:
                    tables = [pq.read_table(part) for part in parts]
                    return pa.concat_tables(tables).to_pandas() if len(tables) > 1 else tables[0].to_pandas()
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise DatasetError(f"No table at {self._filepath}: no {PART_PATTERN} files there (run the step that writes it)")

    def save(self, data: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(data, pd.DataFrame):
            raise DatasetError(f"{type(self).__name__} saves a pandas DataFrame, got {type(data).__name__}")
        table = pa.Table.from_pandas(data, preserve_index=False)
        count = max(1, math.ceil(table.nbytes / self._part_bytes))
        rows = max(1, math.ceil(table.num_rows / count))
        with atomic_path(self._filepath) as staging:
            staging.mkdir()
            names = []
            for index, start in enumerate(range(0, max(table.num_rows, 1), rows)):
                names.append(f"part-{index:05d}.parquet")
                pq.write_table(table.slice(start, rows), staging / names[-1], **self._save_args)
            (staging / MANIFEST).write_text(json.dumps({"parts": names, "rows": table.num_rows}))

    def _exists(self) -> bool:
        return bool(self.parts())

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "part_bytes": self._part_bytes, "lazy": self._lazy, "save_args": self._save_args}
