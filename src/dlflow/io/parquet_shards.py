"""``ParquetShardsDataset``: a table stored as a folder of parquet part files, saved atomically.

``filepath`` names a folder of ``part-00000.parquet``, ``part-00001.parquet``, ... of
about ``part_bytes`` each (at least one part, so an empty table keeps its schema), and
``_parts.json`` naming them, so that a reader never takes a folder being replaced by
another run for a shorter table.
pandas and pyarrow read the folder as one table (``pd.read_parquet(folder)``). With
``lazy: true`` loading reads only the parts' footers and returns a
``dlflow.sources.sharded_table.ShardedTable``, which a streaming reader (the training
loop's ``ShardStream``) reads one part at a time. Saving takes a DataFrame, or streams: an iterable
of chunks (written as they come, one chunk in memory at a time), or of keyed parts
(``dlflow.sources.shard_parts.ShardPart``), where a part whose key and fingerprint the current
manifest records is reused without being made again, so a rerun rewrites only what changed.
Saving writes a hidden sibling folder and renames it over the old one
(``dlflow.files.atomic_path``): a crash leaves the previous table or none, never a
part of one. Example::

    image_train_intermediate:
      type: dlflow.io.ParquetShardsDataset
      filepath: data/02_intermediate/fashion_mnist/train
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from dlflow.files import atomic_path
from dlflow.sources.shard_parts import ShardPart
from dlflow.sources.sharded_table import ShardedTable

logger = logging.getLogger(__name__)

PART_PATTERN = "part-*.parquet"
MANIFEST = "_parts.json"  # the parts of this table: a reader reads them all, or (being replaced) reads again
READ_ATTEMPTS = 100  # a whole-table read retried while other runs replace the folder, 50 ms apart


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
        return self._parts_named(self._manifest_text())

    def _identity(self) -> tuple[int, int, int] | None:
        """Which folder ``filepath`` is now: a folder renamed over it is another inode, made at another time."""
        try:
            found = self._filepath.stat()
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino, found.st_ctime_ns

    def _manifest_text(self) -> str | None:
        try:
            return (self._filepath / MANIFEST).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _parts_named(self, manifest: str | None) -> list[Path]:
        if self._filepath.is_file():
            return [self._filepath]
        if manifest is None:
            return sorted(self._filepath.glob(PART_PATTERN))
        return [self._filepath / name for name in json.loads(manifest)["parts"]]

    def load(self) -> pd.DataFrame | ShardedTable:
        if self._lazy:
            parts = self.parts()
            if not parts:
                raise DatasetError(f"No table at {self._filepath}: no {PART_PATTERN} files there (run the step that writes it)")
            try:
                return ShardedTable.from_parts(parts)
            except ValueError as error:
                raise DatasetError(str(error)) from None
        # Another run may be replacing the folder this very moment (files._replace_folder): a part its
        # manifest names that is gone, no part at all, or a folder renamed in while the parts were read (they
        # may then come from two folders: the same names, other rows) is read again from the new folder.
        replaced = False
        for _ in range(READ_ATTEMPTS):
            try:
                folder, manifest = self._identity(), self._manifest_text()
                parts = self._parts_named(manifest)
                if parts:
                    tables = [pq.read_table(part) for part in parts]
                    if (self._identity(), self._manifest_text()) == (folder, manifest):
                        return pa.concat_tables(tables).to_pandas() if len(tables) > 1 else tables[0].to_pandas()
                    replaced = True
            except FileNotFoundError:
                replaced = True
            time.sleep(0.05)
        if replaced:
            raise DatasetError(
                f"Could not read {self._filepath} whole: other runs replaced it {READ_ATTEMPTS} times while it was "
                "being read (run the steps that write it one at a time)"
            )
        raise DatasetError(f"No table at {self._filepath}: no {PART_PATTERN} files there (run the step that writes it)")

    def save(self, data: pd.DataFrame | Iterable[pd.DataFrame | pa.Table] | Iterable[ShardPart]) -> None:
        """Write ``data`` as the folder's parts, all or nothing.

        ``data`` is one of:

        * a DataFrame: cut into parts of about ``part_bytes``;
        * an iterable of chunks (DataFrames or Arrow tables of one schema), consumed one at a time: each is
          appended to the current part file, a new part starting once one holds ``part_bytes``, so memory
          holds one chunk, not the table; empty chunks give their columns to a table that has no rows;
        * an iterable of ``ShardPart``: one part file each, in order. A part whose ``key`` and ``fingerprint``
          the current manifest records for a part file is that file, hard-linked (or copied) into the new
          folder without calling its ``rows``; the others are made by ``rows()``. The manifest records each
          part's key and fingerprint, and which were reused.

        Guarantee: the parts are written into a hidden sibling folder renamed over ``filepath`` only once the
        last part and the manifest are written (``dlflow.files.atomic_path``). An exception anywhere (a chunk
        or a producer failing, a bad schema, a full disk) leaves the previous table, or none, and no debris;
        a generator handed in is closed.
        """
        if isinstance(data, pd.DataFrame):
            self._save_frame(data)
            return
        if not isinstance(data, Iterable) or isinstance(data, (str, bytes, dict)):
            raise DatasetError(
                f"{type(self).__name__} saves a pandas DataFrame, an iterable of DataFrame chunks or an iterable "
                f"of ShardPart, got {type(data).__name__}"
            )
        items = iter(data)
        try:
            first = next(items, None)
            if first is None:
                raise DatasetError(
                    f"Nothing to save to {self._filepath}: the iterable gave no chunk (yield an empty DataFrame with the columns for a table without rows)"
                )
            with atomic_path(self._filepath) as staging:
                staging.mkdir()
                rest = itertools.chain([first], items)
                manifest = self._write_keyed(staging, rest) if isinstance(first, ShardPart) else self._write_chunks(staging, rest)
                (staging / MANIFEST).write_text(json.dumps(manifest))
        finally:
            close = getattr(data, "close", None)
            if callable(close):
                close()

    def _save_frame(self, data: pd.DataFrame) -> None:
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

    def _write_chunks(self, staging: Path, chunks: Iterable[Any]) -> dict[str, Any]:
        """Chunks appended to parts of about ``part_bytes``; the manifest."""
        names: list[str] = []
        schema, empty, writer, size, rows = None, None, None, 0, 0
        try:
            for number, chunk in enumerate(chunks):
                table = self._arrow(chunk, schema, f"chunk {number}")
                if table.num_rows == 0:  # its column types may be guesses (pandas' empty object columns)
                    empty = empty if empty is not None else table
                    continue
                schema = schema or table.schema
                if writer is None:
                    names.append(f"part-{len(names):05d}.parquet")
                    writer = pq.ParquetWriter(staging / names[-1], schema, **self._save_args)
                writer.write_table(table)
                size, rows = size + table.nbytes, rows + table.num_rows
                if size >= self._part_bytes:
                    writer.close()
                    writer, size = None, 0
        finally:
            if writer is not None:
                writer.close()
        if not names:  # no rows at all: one empty part keeps the columns
            if empty is None:
                raise DatasetError(f"Nothing to save to {self._filepath}: no chunk had rows or columns")
            names.append("part-00000.parquet")
            pq.write_table(empty, staging / names[0], **self._save_args)
        return {"parts": names, "rows": rows}

    def _write_keyed(self, staging: Path, parts: Iterable[Any]) -> dict[str, Any]:
        """One part file per ``ShardPart``, unchanged ones linked from the current folder; the manifest."""
        stored = self._stored_keys()
        names, keys, reused, rows, schema = [], [], [], 0, None
        for index, part in enumerate(parts):
            if not isinstance(part, ShardPart):
                raise DatasetError(f"{self._filepath}: item {index} is a {type(part).__name__} among ShardParts")
            if part.key in {key for key, _ in keys}:
                raise DatasetError(f"{self._filepath}: two parts have the key {part.key!r}; keys must be unique")
            name = f"part-{index:05d}.parquet"
            old = stored.get((part.key, part.fingerprint))
            if old is not None and _link_or_copy(old, staging / name):
                reused.append(part.key)
                rows += pq.read_metadata(staging / name).num_rows
            else:
                rows += self._write_part(staging / name, part, schema)
            if schema is None and pq.read_metadata(staging / name).num_rows:
                schema = pq.read_schema(staging / name)
            names.append(name)
            keys.append([part.key, part.fingerprint])
        if reused:
            logger.info(
                "%s: %d of %d part(s) unchanged, reused; %d written",
                self._filepath,
                len(reused),
                len(names),
                len(names) - len(reused),
            )
        return {"parts": names, "rows": rows, "keys": keys, "reused": reused}

    def _write_part(self, path: Path, part: ShardPart, schema: pa.Schema | None) -> int:
        """``part.rows()`` into one part file (a chunk per row group); its row count."""
        made = part.rows()
        chunks = [made] if isinstance(made, (pd.DataFrame, pa.Table)) else made
        writer, rows, empty = None, 0, None
        try:
            for chunk in chunks:
                table = self._arrow(chunk, schema, f"part {part.key!r}")
                if table.num_rows == 0:
                    empty = empty if empty is not None else table
                    continue
                schema = schema or table.schema
                writer = writer or pq.ParquetWriter(path, schema, **self._save_args)
                writer.write_table(table)
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            if empty is None:
                raise DatasetError(f"{self._filepath}: part {part.key!r} gave no rows and no columns")
            pq.write_table(empty, path, **self._save_args)
        return rows

    def _arrow(self, chunk: Any, schema: pa.Schema | None, what: str) -> pa.Table:
        """``chunk`` as an Arrow table of ``schema`` (the first chunk's, when given)."""
        if isinstance(chunk, pd.DataFrame):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
        elif isinstance(chunk, pa.Table):
            table = chunk
        else:
            raise DatasetError(f"{self._filepath}: {what} is a {type(chunk).__name__}, not a DataFrame or an Arrow table")
        if schema is None or table.num_rows == 0:
            return table
        if table.schema.equals(schema, check_metadata=False):
            return table.replace_schema_metadata(schema.metadata)
        try:
            return table.select(schema.names).cast(schema)
        except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise DatasetError(
                f"{self._filepath}: {what} has columns {table.schema.names} ({table.schema.types}), not the first "
                f"chunk's {schema.names} ({schema.types}): {error}"
            ) from None

    def _stored_keys(self) -> dict[tuple[str, str], Path]:
        """(key, fingerprint) → part file, from the current manifest (none when there is none or it has no keys)."""
        try:
            manifest = json.loads((self._filepath / MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return {}
        return {
            (key, fingerprint): self._filepath / name
            for name, (key, fingerprint) in zip(manifest["parts"], manifest.get("keys", []))
        }

    def relocated(self, folder: Path) -> ParquetShardsDataset:
        """The same table kept at ``folder`` instead: the same parts, and loaded as this one loads (lazy or not)."""
        return ParquetShardsDataset(
            filepath=str(folder), part_bytes=self._part_bytes, lazy=self._lazy, save_args=self._save_args, metadata=self.metadata
        )

    def _exists(self) -> bool:
        return bool(self.parts())

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "part_bytes": self._part_bytes, "lazy": self._lazy, "save_args": self._save_args}


def _link_or_copy(source: Path, target: Path) -> bool:
    """``source`` at ``target`` too (a hard link, else a copy); False when ``source`` is gone (replaced meanwhile)."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        return False
    except OSError:  # another file system, or links not allowed
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            return False
    return True
