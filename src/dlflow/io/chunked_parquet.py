"""A parquet table written chunk by chunk, all or nothing: ``ChunkedParquetDataset``; and ``Ahead``, the
bounded background thread that overlaps producing chunks with consuming them.

``save`` takes a DataFrame or any iterable of DataFrames (a node may return a
lazy iterator: the table is then computed while it is written, one chunk in
memory at a time). Each chunk becomes a row group of one file, written to a
hidden temporary sibling and renamed over the target at the end
(``dlflow.files.atomic_path``): an exception from the iterator or the writer,
or a kill, leaves the previous file, or none, never a partial table. Every
chunk must have the first chunk's columns (values are cast to its types).
Errors raised while producing a chunk pass through as they are when they are
``DatasetError`` s (for example ``dlflow.io.inference_inputs.InputRefused``).

An iterable is consumed on a background thread (:class:`Ahead`, one chunk
ahead) while this thread converts and writes the chunk before it: producing
(batch inference: reading and scoring) and writing overlap, in order, and
memory holds at most three chunks of the output. When ``save`` returns or
raises, that thread has ended. Example catalog entry::

    "{family}_inference_predictions":
      type: dlflow.io.ChunkedParquetDataset
      filepath: data/07_model_output/inference/{family}_predictions.parquet
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_path

T = TypeVar("T")
_END = object()  # the producer's last entry: the items ended (or failed, with the error beside it)


class Ahead(Generic[T]):
    """The items of ``iterable`` in order, produced on a background thread at most ``depth`` items ahead.

    Guarantees: an exception raised while producing is raised by ``next``, the same
    object, at its place in the sequence (after every item before it); ``close()``
    (also on leaving a ``with`` block) stops the producer once the item in hand is
    done, closes ``iterable`` on the producer's thread (a generator's ``finally``
    blocks run there) and waits for the thread to end, as does the end of the items:
    no thread outlives its ``Ahead``. Memory: ``depth`` items waiting, one being
    produced, the one in use. ``depth=0``: no thread; ``iterable`` is consumed in the
    caller's thread, one item at a time (the sequential baseline).
    """

    def __init__(self, iterable: Iterable[T], depth: int = 1, name: str = "dlflow-ahead") -> None:
        if depth < 0:
            raise ValueError(f"depth must be at least 0, got {depth}")
        self._done = False
        if depth == 0:
            self._iterator, self._thread = iter(iterable), None
            return
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iterable,), name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._thread is None:
            return next(self._iterator)
        item, error = self._items.get()
        if item is not _END:
            return item
        self._done = True
        self._thread.join()
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        """Stop producing and wait for the producer's thread to end (idempotent)."""
        self._done = True
        if self._thread is None:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            return
        self._stopping.set()
        self._thread.join()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _produce(self, iterable: Iterable[T]) -> None:
        iterator = iter(iterable)  # here: a generator's body runs on this thread
        try:
            for item in iterator:
                if not self._offer(item):
                    return
            self._offer(_END)
        except BaseException as error:  # noqa: BLE001 (handed to the consumer, which raises it)
            self._offer(_END, error)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _offer(self, item: Any, error: BaseException | None = None) -> bool:
        """Queue ``item``, waiting for room; False (nothing queued) once the consumer closed."""
        while not self._stopping.is_set():
            try:
                self._items.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


class ChunkedParquetDataset(AbstractDataset[Any, pd.DataFrame]):
    """A local parquet file saved from a DataFrame or an iterable of them; loaded whole as a DataFrame.

    ``save_args`` go to ``pyarrow.parquet.ParquetWriter`` (e.g. ``compression``);
    ``ahead``: chunks produced ahead of the writer, on a background thread (0: none,
    in this thread).
    """

    def __init__(
        self,
        *,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        ahead: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._save_args = dict(save_args or {})
        self._ahead = ahead
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self._filepath)

    def save(self, data: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
        produced = nullcontext(iter([data])) if isinstance(data, pd.DataFrame) else Ahead(data, self._ahead, "dlflow-produce")
        with atomic_path(self._filepath) as temporary, produced as chunks:  # on an error: the thread ends, then the file goes
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
        return {"filepath": str(self._filepath), "save_args": self._save_args, "ahead": self._ahead}
