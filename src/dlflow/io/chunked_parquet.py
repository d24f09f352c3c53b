"""A parquet table written chunk by chunk, all or nothing: ``ChunkedParquetDataset``.

``save`` takes a DataFrame or any iterable of DataFrames (a node may return a
lazy iterator: the table is then computed while it is written, one chunk in
memory at a time). Each chunk becomes a row group of one file, written to a
hidden temporary sibling and renamed over the target at the end
(``dlflow.files.atomic_path``): an exception from the iterator or the writer,
or a kill, leaves the previous file, or none, never a partial table. Every
chunk must have the first chunk's columns (values are cast to its types).
Errors raised while producing a chunk pass through as they are when they are
``DatasetError`` s (for example ``dlflow.io.inference_inputs.InputRefused``).
Example catalog entry::

    "{family}_inference_predictions":
      type: dlflow.io.ChunkedParquetDataset
      filepath: data/07_model_output/inference/{family}_predictions.parquet
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_path


class ChunkedParquetDataset(AbstractDataset[Any, pd.DataFrame]):
    """A local parquet file saved from a DataFrame or an iterable of them; loaded whole as a DataFrame.

    ``save_args`` go to ``pyarrow.parquet.ParquetWriter`` (e.g. ``compression``).
    """

    def __init__(self, *, filepath: str, save_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self._filepath)

    def save(self, data: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
        chunks = [data] if isinstance(data, pd.DataFrame) else data
        with atomic_path(self._filepath) as temporary:
            writer = None
            try:
                for number, chunk in enumerate(chunks):
                    table = self._table(chunk, number, writer.schema if writer else None)
                    if writer is None:
                        writer = pq.ParquetWriter(temporary, table.schema, **self._save_args)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise DatasetError(f"Nothing to save to {self._filepath}: the data had no chunks (no rows)")

    def _table(self, chunk: Any, number: int, schema: pa.Schema | None) -> pa.Table:
        if not isinstance(chunk, pd.DataFrame):
            raise DatasetError(f"{self._filepath}: chunk {number} is a {type(chunk).__name__}, not a DataFrame")
        if schema is not None and list(chunk.columns) != schema.names:
            raise DatasetError(
                f"{self._filepath}: chunk {number} has the columns {list(chunk.columns)}, the first chunk {schema.names}"
            )
        try:
            return pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise DatasetError(
                f"{self._filepath}: chunk {number} does not fit the first chunk's column types ({error})"
            ) from None

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "save_args": self._save_args}
