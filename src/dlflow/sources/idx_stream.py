"""A registered source's IDX image/label pair read in chunks: image-table parts keyed by the files' checksums.

``idx_parts`` gives one ``ShardPart`` per ``CHUNK_ROWS`` images of a pair: its key is the images
file's name and the chunk's number, its fingerprint the sha256 of both files (and the chunk size),
and its rows read only that chunk, from a gzip or raw IDX stream read forward. A writer of shards
(``dlflow.io.ParquetShardsDataset``) reuses the parts of unchanged files without reading them; the
rows are those of ``image_table(read_idx(images), read_idx(labels))``, in the same order. The
headers are checked up front (shape, a count of labels for each image); the labels' range as each
chunk is read. Imports neither Kedro nor MLflow.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dlflow.files import content_digest, json_digest
from dlflow.sources.errors import DataValidationError
from dlflow.sources.idx import _DTYPES, _GZIP_MAGIC, read_idx
from dlflow.sources.image_table import image_table
from dlflow.sources.shard_parts import ShardPart

CHUNK_ROWS = 10_000  # images a part holds: 7.8 MB of 28x28 pixels


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def idx_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dimensions, header bytes) of the IDX file ``path``; ``DataValidationError`` naming what is wrong."""
    with _open(path) as stream:
        try:
            head = stream.read(4)
        except (OSError, EOFError) as error:
            raise DataValidationError(f"{path} is a corrupt gzip file ({error}); delete it and obtain a fresh copy.") from None
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _DTYPES or not 1 <= head[3] <= 4:
            raise DataValidationError(f"{path} does not start with an IDX magic number: it is not an IDX file.")
        ndim = head[3]
        dims = stream.read(4 * ndim)
        if len(dims) < 4 * ndim:
            raise DataValidationError(f"{path} is truncated inside its header.")
    return _DTYPES[head[2]], struct.unpack(f">{ndim}I", dims), 4 + 4 * ndim


class _ChunkReader:
    """Chunks of the first axis of an IDX file, read forward from one open stream (reopened to go back)."""

    def __init__(self, path: Path, rows: int) -> None:
        self.path, self.rows = path, rows
        self.dtype, self.dims, self.header = idx_header(path)
        self.row_bytes = int(np.prod(self.dims[1:], dtype=np.int64)) * self.dtype.itemsize
        self.stream: BinaryIO | None = None

    def read(self, chunk: int) -> np.ndarray:
        start = chunk * self.rows
        count = max(0, min(self.rows, self.dims[0] - start))
        offset = self.header + start * self.row_bytes
        if self.stream is None or self.stream.tell() > offset:
            self.close()
            self.stream = _open(self.path)
        try:
            self.stream.seek(offset)  # gzip: forward, decompressing what it skips
            data = self.stream.read(count * self.row_bytes)
            trailing = chunk == self.chunks - 1 and self.stream.read(1)
        except (OSError, EOFError) as error:
            raise DataValidationError(
                f"{self.path} is a corrupt gzip file ({error}); delete it and obtain a fresh copy."
            ) from None
        if len(data) < count * self.row_bytes or trailing:
            problem = "truncated" if len(data) < count * self.row_bytes else "followed by trailing bytes"
            raise DataValidationError(
                f"{self.path} is {problem}: its header declares shape {self.dims}. Delete it and obtain a fresh copy."
            )
        values = np.frombuffer(data, dtype=self.dtype).reshape(count, *self.dims[1:])
        return values.astype(self.dtype.newbyteorder("="))

    @property
    def chunks(self) -> int:
        return max(1, -(-self.dims[0] // self.rows))

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def check_pair(images: Path, labels: Path, image_shape: tuple[int, int] = (28, 28)) -> int:
    """The number of images, once the headers show a classification pair (``DataValidationError`` otherwise)."""
    _, image_dims, _ = idx_header(images)
    _, label_dims, _ = idx_header(labels)
    if len(image_dims) != 3 or tuple(image_dims[1:]) != tuple(image_shape):
        raise DataValidationError(
            f"images file {images} holds an array of shape {image_dims}; expected (count, {image_shape[0]}, {image_shape[1]})."
        )
    if len(label_dims) != 1:
        raise DataValidationError(f"labels file {labels} holds an array of shape {label_dims}; expected (count,).")
    if label_dims[0] != image_dims[0]:
        raise DataValidationError(
            f"labels file {labels} has {label_dims[0]} entries but images file {images} has {image_dims[0]}: the pair does not belong together."
        )
    if image_dims[0] == 0:
        raise DataValidationError(f"images file {images} and labels file {labels} are empty.")
    return int(image_dims[0])


def read_labels(labels: Path, num_classes: int) -> np.ndarray:
    """The labels file whole (small), its values checked against ``num_classes``."""
    values = read_idx(labels)
    if not np.issubdtype(values.dtype, np.integer):
        raise DataValidationError(f"labels file {labels} holds {values.dtype} values; expected integer class ids.")
    bad = np.flatnonzero((values < 0) | (values >= num_classes))
    if bad.size:
        raise DataValidationError(
            f"labels file {labels} has {bad.size} labels outside [0, {num_classes}), e.g. {values[bad[0]]} at index "
            f"{bad[0]}: wrong file or wrong num_classes."
        )
    return values


def idx_parts(images: Path, labels: Path, values: np.ndarray, rows: int = CHUNK_ROWS) -> Iterator[ShardPart]:
    """The image table of the pair (``values``: its labels, ``read_labels``; the headers checked, ``check_pair``)
    as ``ShardPart``s of ``rows`` images each (see the module's docstring)."""
    fingerprint = json_digest([content_digest(images), content_digest(labels), rows], 32)
    reader = _ChunkReader(images, rows)
    try:
        for chunk in range(reader.chunks):

            def make(chunk: int = chunk):
                return image_table(reader.read(chunk), values[chunk * rows : (chunk + 1) * rows])

            yield ShardPart(f"{images.name}:{chunk:05d}", fingerprint, make)
    finally:
        reader.close()
