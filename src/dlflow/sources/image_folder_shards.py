"""Your own images, streamed: a folder of class folders → decoded shards → image tables, a shard at a time.

``read_image_folder`` holds every decoded image; this module never holds more than a few groups:

1. ``decoded_parts`` cuts the scanned files into *groups* (a class folder and a hash bucket of each
   file's relative path) and gives one ``ShardPart`` per group: its key is the group, its fingerprint
   the group's files (relative path, size, mtime_ns) and the decoding options, and its rows are the
   group's files decoded in the process pool, in chunks. A writer of shards
   (``dlflow.io.ParquetShardsDataset``) reuses a group whose fingerprint is unchanged, so a rerun after
   one file changed decodes only that file's group. A class folder of ``n`` files has the smallest
   power of two of buckets that keeps a group under ``GROUP_FILES`` files: adding or removing a file
   changes its own group only, unless ``n`` crosses a power of two times ``GROUP_FILES``.
2. ``plan_decoded`` reads only the small columns of those shards (digest, size, colour, error) and
   decides the tables as ``read_image_folder`` does (``image_folder.plan_tables``: bad files, size,
   channels, the leakage-free seeded split).
3. ``split_tables`` gives each split's table as chunks, one decoded shard read at a time; files of
   another size are decoded again at the table's size, a shard at a time.

The decoded shards hold one row per image file (``DECODED_SCHEMA``): the bytes' sha256, the size and
channels decoded, whether it is in colour, the pixels (null when too large to keep or not decoded) and
the reason a bad file could not be decoded. Rows of a table come shard by shard (group order), sorted
by path within a shard. Imports neither Kedro nor MLflow.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dlflow.files import json_digest
from dlflow.sources.image_files import ResizePolicy
from dlflow.sources.image_folder import (
    KEEP_BYTES,
    SPLITS,
    FolderPlan,
    FolderScan,
    ImageFolderError,
    _cores,
    _decode_chunk,
    _pool_context,
    _Progress,
    decode_again,
    final_pixels,
    plan_tables,
)
from dlflow.sources.image_table import rows_table
from dlflow.sources.shard_parts import ShardPart
from dlflow.sources.sharded_table import ShardedTable

logger = logging.getLogger(__name__)

GROUP_FILES = 256  # files in a group, on average at most: one group's decoded pixels are in memory at a time
DECODE_CHUNK = 64  # files a worker decodes per task
FORMAT = 1  # the decoded shards' layout; a new one decodes everything again
DECODED_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("height", pa.uint16()),
        ("width", pa.uint16()),
        ("channels", pa.uint8()),
        ("colour", pa.bool_()),
        ("pixels", pa.binary()),
        ("error", pa.string()),
    ]
)
SMALL_COLUMNS = ["path", "sha256", "height", "width", "channels", "colour", "error"]


@dataclass
class DecodeCount:
    """How many files and groups ``decoded_parts`` decoded (the rest were reused by the writer)."""

    files: int = 0
    groups: int = 0


def _class_folder(scan: FolderScan, path: str) -> str:
    """The class folder ``path`` lies in, relative to the root: ``cat`` or ``train/cat``."""
    depth = 2 if scan.layout == "split folders" else 1
    return "/".join(path.split("/")[:depth])


def file_groups(scan: FolderScan, group_files: int = GROUP_FILES) -> dict[str, list[str]]:
    """Group key (``<class folder>#<bucket>``) → the group's relative paths, sorted; keys in sorted order."""
    by_folder: dict[str, list[str]] = {}
    for path in scan.paths:
        by_folder.setdefault(_class_folder(scan, path), []).append(path)
    groups: dict[str, list[str]] = {}
    for folder, paths in sorted(by_folder.items()):
        buckets = 1 << max(0, int(np.ceil(np.log2(max(1, len(paths) / group_files)))))
        for path in paths:
            bucket = int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") % buckets
            groups.setdefault(f"{folder}#{bucket:04d}", []).append(path)
    return {key: sorted(groups[key]) for key in sorted(groups)}


def _stat(root: Path, path: str) -> list:
    try:
        info = os.stat(root / path)
    except OSError as error:
        return [path, None, str(error.strerror or error)]
    return [path, info.st_size, info.st_mtime_ns]


def decoded_parts(
    scan: FolderScan,
    *,
    size: tuple[int, int] | None,
    channels: int | None,
    resize: ResizePolicy,
    pool: Any,
    count: DecodeCount,
    progress: _Progress | None = None,
    group_files: int = GROUP_FILES,
) -> Iterator[ShardPart]:
    """One ``ShardPart`` per group of ``scan``'s files; its rows decode the group with ``pool`` (a
    ``multiprocessing`` pool, or None to decode here), counting into ``count``."""
    options = {"format": FORMAT, "size": size, "channels": channels, "resize": resize, "keep_bytes": KEEP_BYTES}
    for key, paths in file_groups(scan, group_files).items():
        fingerprint = json_digest([options, [_stat(scan.root, path) for path in paths]], 32)
        yield ShardPart(key, fingerprint, _group_decoder(scan.root, paths, size, channels, resize, pool, count, progress))


def _group_decoder(root, paths, size, channels, resize, pool, count: DecodeCount, progress) -> Callable[[], pa.Table]:
    def rows() -> pa.Table:
        tasks = [
            (str(root), paths[i : i + DECODE_CHUNK], size, channels, resize, KEEP_BYTES)
            for i in range(0, len(paths), DECODE_CHUNK)
        ]
        results: list[tuple] = []
        for done in pool.imap(_decode_chunk, tasks) if pool is not None else map(_decode_chunk, tasks):
            results += done
            if progress is not None:
                progress.update(len(done))
        count.files += len(paths)
        count.groups += 1
        return decoded_rows(paths, results)

    return rows


def decoded_rows(paths: Sequence[str], results: Sequence[tuple]) -> pa.Table:
    """The decoded shard of ``paths`` from their ``_decode_one`` tuples."""
    columns = list(zip(*results)) if results else [()] * 7
    digest, height, width, channels, colour, pixels, error = columns
    return pa.table(
        [list(paths), list(digest), list(height), list(width), list(channels), list(colour), list(pixels), list(error)],
        schema=DECODED_SCHEMA,
    )


def plan_decoded(
    scan: FolderScan,
    decoded: ShardedTable,
    *,
    given_size: tuple[int, int] | None,
    channels: int | None,
    resize: ResizePolicy,
    test_fraction: float,
    split_seed: int,
    on_bad_file: str,
) -> tuple[FolderPlan, np.ndarray]:
    """``plan_tables`` from the decoded shards' small columns; also each scanned file's shard (index into
    ``decoded.parts``). ``ImageFolderError`` when the shards and the folder disagree (it changed meanwhile)."""
    position = {path: i for i, path in enumerate(scan.paths)}
    results: list[tuple | None] = [None] * len(scan.paths)
    shard_of = np.full(len(scan.paths), -1, np.int64)
    for part in range(len(decoded.parts)):
        small = decoded.read_part(part, SMALL_COLUMNS).to_pydict()
        for k, path in enumerate(small["path"]):
            i = position.get(path)
            if i is None or shard_of[i] >= 0:
                raise ImageFolderError(f"{scan.root / path} changed while the folder was read: run again")
            shard_of[i] = part
            results[i] = (small["sha256"][k], small["height"][k], small["width"][k], small["channels"][k],
                          small["colour"][k], None, small["error"][k])  # fmt: skip
    missing = [scan.paths[i] for i in np.flatnonzero(shard_of < 0)]
    if missing:
        raise ImageFolderError(f"{scan.root / missing[0]} appeared while the folder was read: run again")
    plan = plan_tables(scan, results, given_size=given_size, channels=channels, resize=resize,
                       test_fraction=test_fraction, split_seed=split_seed, on_bad_file=on_bad_file)  # type: ignore[arg-type]  # fmt: skip
    return plan, shard_of


class TableChunks:
    """One split's image table as chunks (``pandas.DataFrame``), made when iterated, a decoded shard at a time.

    Iterating it again reads the shards again. ``len()`` is its row count, known from the plan."""

    def __init__(self, make: Callable[[], Iterator[pd.DataFrame]], rows: int) -> None:
        self._make, self._rows = make, rows

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self._make()

    def __len__(self) -> int:
        return self._rows

    def read(self) -> pd.DataFrame:
        """The whole table in memory (for small data and tests)."""
        return pd.concat(list(self), ignore_index=True)


def split_tables(
    scan: FolderScan,
    decoded: ShardedTable,
    plan: FolderPlan,
    shard_of: np.ndarray,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, TableChunks], pd.DataFrame]:
    """Each split's ``TableChunks``, and the index of every table row in table order (``split``, ``label``,
    ``path``, ``sha256``: what a leakage check and a summary need, without pixels)."""
    labels = scan.labels[plan.good]
    shards = shard_of[plan.good]
    order = np.lexsort((plan.good, shards))  # shard by shard, scan (path) order within a shard
    index = pd.DataFrame(
        {
            "split": plan.split_of[order].astype(str),
            "label": labels[order].astype(np.uint16),
            "path": [plan.paths[k] for k in order],
            "sha256": [plan.digests[k] for k in order],
        }
    )
    tables = {}
    for split in SPLITS:
        rows = order[plan.split_of[order] == split]  # indices into plan.good, in table order

        def make(rows: np.ndarray = rows) -> Iterator[pd.DataFrame]:
            return _chunks(scan, decoded, plan, rows, shards, labels, workers, progress)

        tables[split] = TableChunks(make, len(rows))
    return tables, index


def _chunks(scan, decoded, plan: FolderPlan, rows: np.ndarray, shards, labels, workers, progress) -> Iterator[pd.DataFrame]:
    """The table of ``rows`` (indices into ``plan.good``, in table order): a chunk per decoded shard."""
    yield rows_table([], labels[:0], plan.shape, paths=[], digests=[])  # the columns, for a split without rows
    for part in np.unique(shards[rows]):
        mine = rows[shards[rows] == part]
        stored = decoded.read_part(int(part), ["path", "height", "width", "channels", "pixels"]).to_pydict()
        at = {path: k for k, path in enumerate(stored["path"])}
        pixels = []
        for k in mine:
            j = at[plan.paths[k]]
            result = (None, stored["height"][j], stored["width"][j], stored["channels"][j], None, stored["pixels"][j], None)
            pixels.append(final_pixels(result, plan))
        del stored, at
        again = [n for n, value in enumerate(pixels) if value is None]
        if again:
            redone = decode_again(scan.root, [plan.paths[mine[n]] for n in again], plan, workers or _cores(), progress)
            for n, value in zip(again, redone):
                pixels[n] = value
        yield rows_table(pixels, labels[mine], plan.shape, paths=[plan.paths[k] for k in mine],
                         digests=[plan.digests[k] for k in mine])  # fmt: skip


def decode_pool(workers: int | None, files: int):
    """A process pool of ``workers`` (default: one per core), or None when one process is enough."""
    workers = max(1, min(workers or _cores(), max(1, files // DECODE_CHUNK)))
    return _pool_context().Pool(workers) if workers > 1 else None
