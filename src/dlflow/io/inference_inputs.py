"""Read-only Kedro datasets for what a user hands to batch inference, read in chunks.

``load()`` reads nothing big. It checks what is cheap to check (the file or
folder is there, an IDX header, a parquet schema, a folder holds images) and
returns a :class:`ChunkedInput`, whose ``chunks(size)`` reads the input lazily,
``size`` records at a time: memory holds one chunk, however large the input.

* ``ImagesFileDataset``: an IDX file (gzip or raw, streamed), a parquet table
  with a ``pixels`` column (by record batches; a file, or a folder of part
  files as the pipeline's image tables are), or a folder of image files
  (recursive, in sorted order; also one image file). A chunk of IDX or parquet
  images is a uint8 array ``(n, height, width[, channels])``; a chunk of image
  files is a table with an ``image`` column of base64-encoded file bytes, each
  file decoded once here (``dlflow.sources.image_files.inspect_image``) so that
  a bad file is refused by name.
* ``SentencesFileDataset``: a text file (one sentence per non-blank line), or a
  table of sentences: CSV, TSV, JSON Lines or parquet, with the text in a column
  that ``chunks`` names (``text_column``); parquet may be a folder of part
  files. A chunk is a table with a ``sentence`` column.

Each chunk carries its identity columns for the output table: ``row`` (the
0-based image index of an IDX file, row of a table, or line of a text file) or
``path`` (a file below the folder, relative to it). Every refusal is an
:class:`InputRefused` whose message starts with the file (and the row, line or
position) and says what to do. Example catalog entries::

    cnn_inference_input:
      type: dlflow.io.ImagesFileDataset
      filepath: ${runtime_params:images_path,data/02_intermediate/fashion_mnist/test}

    rnn_inference_input:
      type: dlflow.io.SentencesFileDataset
      filepath: ${runtime_params:sentences_path,data/02_intermediate/mr/sentences.parquet}
"""

from __future__ import annotations

import base64
import csv
import gzip
import json
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from dlflow.sources.idx import _DTYPES, _GZIP_MAGIC  # the IDX format's one definition
from dlflow.sources.image_files import IMAGE_EXTENSIONS, ImageDecodeError, inspect_image, is_image_file
from dlflow.sources.image_table import first_bad_pixel

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}  # delimited tables; .parquet, .jsonl/.ndjson/.json too
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
_READ_ERRORS = (OSError, EOFError, zlib.error)
_UNITS = {"image": "images", "row": "rows", "line": "lines", "file": "files"}
LABEL_COLUMN = "label"  # a table's true classes, when they came back with the records (monitoring's live quality)


def _labels(values: list[Any], path: Path, start: int) -> np.ndarray:
    """A chunk's labels as an object array; a missing one is refused naming its row."""
    for index, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
            raise InputRefused(
                f"{path}: row {start + index} has no {LABEL_COLUMN!r}; a table with labels needs one in every row "
                f"(fill it, or drop the {LABEL_COLUMN!r} column to score without live quality)"
            )
    return np.asarray(values, dtype=object)


class InputRefused(DatasetError, ValueError):
    """An inference input that cannot be scored; the message names the file and says what to fix.

    A ``DatasetError``, so that Kedro passes it on unchanged when it is raised while the
    output is being written chunk by chunk, and a ``ValueError``, as the input's fault.
    """


@dataclass(frozen=True)
class InputChunk:
    """Records of ``source`` for the model, with their identity columns for the output.

    ``records``: a ``(n, ...)`` uint8 array of pixels, or a table (``sentence``, or
    ``image`` as base64 file bytes). ``ids``: ``row`` or ``path`` per record.
    ``unit``: how a message counts records (``image``, ``row``, ``line``, ``file``).
    ``labels``: the true classes that came back with the records (a table's ``label``
    column: class names or indices, as the file holds them), or None.
    """

    source: str
    records: Any
    ids: pd.DataFrame
    unit: str
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, start: int = 0, stop: int | None = None) -> str:
        """The file and the records ``start:stop`` of this chunk (all of them by default), as a user finds them."""
        stop = len(self) if stop is None else stop
        if self.unit == "file":
            paths = self.ids["path"]
            if stop - start == 1:
                return str(Path(self.source, paths.iloc[start]))
            return f"{self.source}: files {paths.iloc[start]} ... {paths.iloc[stop - 1]}"
        first, last = (int(self.ids["row"].iloc[i]) + (self.unit == "line") for i in (start, stop - 1))
        if first == last:
            return f"{self.source} {self.unit} {first}"
        return f"{self.source} {_UNITS[self.unit]} {first}-{last}"


@dataclass(frozen=True)
class ChunkedInput:
    """An input file or folder, read on demand: ``chunks(size, **options)`` yields :class:`InputChunk` s.

    ``what``: what it holds (``images``, ``sentences``); ``total``: how many, when the header says.
    """

    source: str
    what: str
    total: int | None
    read: Callable[..., Iterator[InputChunk]]

    def chunks(self, size: int, **options: Any) -> Iterator[InputChunk]:
        """The input, ``size`` records at a time (the last chunk may be shorter); nothing is read before the first."""
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        return self.read(size, **options)


class _InputFileDataset(AbstractDataset):
    """A read-only input file; ``load`` is what subclasses add."""

    _what = "input"
    _parameter = "path"

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _path(self) -> Path:
        if not self._filepath.is_file():
            raise InputRefused(f"No {self._what} file at {self._filepath}: name one with --params {self._parameter}=<file>")
        return self._filepath

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath} is an inference input: {type(self).__name__} is read-only.")

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


# --------------------------------------------------------------------------- images


class ImagesFileDataset(_InputFileDataset):
    """Images, in chunks: an IDX file (gzip or raw), a parquet table with a ``pixels`` column, or a folder of images.

    ``pixels`` holds raw bytes (the pipeline's own image tables) or lists of
    0-255 values; with ``height`` and ``width`` columns (and ``channels``) a row
    becomes ``(height, width[, channels])``, otherwise rows of ``side * side``
    values become ``(side, side)`` and others stay flat. A folder with
    ``*.parquet`` files in it is a table in part files; any other folder is
    read recursively for every file with an image extension, in sorted order.
    The inference pipeline checks each chunk against the model's signature.
    """

    _what, _parameter = "images", "images_path"

    def load(self) -> ChunkedInput:
        path = self._path()
        if _parquet_parts(path):
            return _pixel_table(path)
        if path.is_dir() or is_image_file(path):
            return _image_files(path)
        return _idx_images(path)

    def _path(self) -> Path:
        if not self._filepath.exists():
            raise InputRefused(
                f"No images file or folder at {self._filepath}: name one with --params images_path=<file or folder> "
                "(an IDX file, a parquet table with a 'pixels' column, or a folder of image files)"
            )
        return self._filepath


def _open_idx(path: Path) -> tuple[Any, np.dtype, tuple[int, ...], bool]:
    """An open stream past the IDX header of ``path``, its dtype and dimensions, and whether it is gzip."""
    if path.stat().st_size == 0:
        raise InputRefused(f"{path} is empty (0 bytes): expected an IDX images file")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    stream = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115 (the caller closes it)
    try:
        magic = _read(stream, 4, path)
        if len(magic) < 4 or magic[:2] != b"\0\0":
            raise InputRefused(
                f"{path} is not an IDX file (first bytes {magic.hex() or 'none'}, expected 0000 then a type code and "
                "the number of dimensions): pass an IDX images file, a parquet table or a folder of images"
            )
        code, ndim = magic[2], magic[3]
        if code not in _DTYPES:
            raise InputRefused(f"{path} has the unknown IDX type code 0x{code:02X}; IDX defines {sorted(map(hex, _DTYPES))}")
        if not 2 <= ndim <= 4:
            kind = " (a labels file?)" if ndim == 1 else ""
            raise InputRefused(
                f"{path} holds a {ndim}-dimensional array{kind}: expected images, shaped (count, height, width[, channels])"
            )
        header = _read(stream, 4 * ndim, path)
        if len(header) < 4 * ndim:
            raise InputRefused(f"{path} is truncated inside its IDX header")
        return stream, _DTYPES[code], struct.unpack(f">{ndim}I", header), compressed
    except BaseException:
        stream.close()
        raise


def _read(stream, size: int, path: Path) -> bytes:
    try:
        return stream.read(size)
    except _READ_ERRORS as error:
        raise InputRefused(f"{path} is a corrupt or truncated gzip file ({error}): replace it with a good copy") from None


def _idx_images(path: Path) -> ChunkedInput:
    stream, dtype, dims, compressed = _open_idx(path)
    stream.close()
    if dims[0] == 0:
        raise InputRefused(f"{path} holds no images (its header declares shape {dims})")
    payload, expected = path.stat().st_size - 4 - 4 * len(dims), math.prod(dims) * dtype.itemsize
    if not compressed and payload != expected:  # known before reading: refused before any scoring
        problem = "truncated" if payload < expected else "followed by trailing bytes"
        raise InputRefused(
            f"{path} is {problem}: its header declares shape {dims} of {dtype.name} ({expected} bytes of images) "
            f"but it holds {payload}: replace it with a good copy"
        )
    return ChunkedInput(str(path), "images", dims[0], lambda size: _idx_chunks(path, size))


def _idx_chunks(path: Path, size: int) -> Iterator[InputChunk]:
    stream, dtype, dims, _ = _open_idx(path)
    record = math.prod(dims[1:]) * dtype.itemsize
    with stream:
        for start in range(0, dims[0], size):
            count = min(size, dims[0] - start)
            data = _read(stream, count * record, path)
            if len(data) < count * record:
                raise InputRefused(
                    f"{path} is truncated: its header declares {dims[0]} images of {dims[1:]} {dtype.name} values, "
                    f"but it ends inside image {start + len(data) // record}: replace it with a good copy"
                )
            images = np.frombuffer(data, dtype).reshape(count, *dims[1:]).astype(dtype.newbyteorder("="))
            yield InputChunk(str(path), images, pd.DataFrame({"row": np.arange(start, start + count)}), "image")
        if _read(stream, 1, path):
            raise InputRefused(
                f"{path} is followed by trailing bytes after the {dims[0]} images its header declares: "
                "replace it with a good copy"
            )


def _parquet_parts(path: Path) -> list[Path]:
    """The parquet files of a table: ``path`` itself, or the ``*.parquet`` part files of a folder, in order."""
    if path.is_dir():
        return sorted(part for part in path.glob("*.parquet") if part.is_file())
    return [path] if path.is_file() and path.suffix.lower() == ".parquet" else []


def _parquet_file(path: Path) -> pq.ParquetFile:
    """``path`` opened for streaming: without pre-buffering, which keeps every column chunk read so far
    (measured: 1M images of 784 bytes read in 4,096-row batches peak at 638 MB with it, 142 MB without)."""
    try:
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowException, OSError) as error:
        raise InputRefused(f"{path} is not a readable parquet file ({error}): replace it with a good copy") from None


def _parquet_batches(path: Path, size: int, columns: list[str]) -> Iterator[tuple[Path, int, int, pa.RecordBatch]]:
    """``(part file, first row in it, first row in the table, batch)`` for record batches of at most ``size`` rows
    of ``columns``, part file after part file."""
    offset = 0
    for part in _parquet_parts(path):
        file = _parquet_file(part)
        start, batches = 0, file.iter_batches(batch_size=size, columns=columns)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as error:
                raise InputRefused(f"{part} is corrupt after row {start} ({error}): replace it with a good copy") from None
            yield part, start, offset + start, batch
            start += batch.num_rows
        offset += start


def _parquet_schema(path: Path, column: str) -> tuple[pa.DataType | None, list[str], int]:
    """``column``'s type (None when a part lacks it), the column names and the number of rows of the table at
    ``path`` (a file or its parts), read from the footers; the parts must agree on the column's type."""
    kinds, names, rows = set(), [], 0
    for part in _parquet_parts(path):
        file = _parquet_file(part)
        schema = file.schema_arrow
        if column not in schema.names:
            return None, schema.names, 0
        kinds.add(schema.field(column).type)
        names, rows = schema.names, rows + file.metadata.num_rows
    if len(kinds) > 1:
        raise InputRefused(f"{path}: its part files hold {column!r} as different types ({sorted(map(str, kinds))})")
    return kinds.pop(), names, rows


def _pixel_table(path: Path) -> ChunkedInput:
    kind, names, total = _parquet_schema(path, "pixels")
    if kind is None:
        raise InputRefused(
            f"{path} has no 'pixels' column (it has {names}): "
            "expected a table like data/02_intermediate/<data set>/test (the pipeline's image tables)"
        )
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    listed = (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) and (
        pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)
    )
    if not (binary or listed):
        raise InputRefused(
            f"{path}: its 'pixels' column holds {kind}; expected raw bytes (as the pipeline's image tables) "
            "or lists of numbers 0-255, one image per row"
        )
    if total == 0:
        raise InputRefused(f"{path} holds no images (0 rows)")
    columns = ["pixels", *(name for name in ("height", "width", "channels", LABEL_COLUMN) if name in names)]

    def chunks(size: int) -> Iterator[InputChunk]:
        for part, start, row, batch in _parquet_batches(path, size, columns):
            rows = pd.DataFrame({"row": np.arange(row, row + batch.num_rows)})
            labels = _labels(batch.column(LABEL_COLUMN).to_pylist(), part, start) if LABEL_COLUMN in columns else None
            yield InputChunk(str(path), _pixels(batch, start, part), rows, "row", labels)

    return ChunkedInput(str(path), "images", total, chunks)


def _pixels(batch: pa.RecordBatch, start: int, path: Path) -> np.ndarray:
    """The batch's ``pixels`` as one uint8 array, each value and row length checked."""
    column = batch.column("pixels")
    if column.null_count:
        row = start + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputRefused(f"{path}: 'pixels' row {row} is empty (null): every row needs an image")
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = first_bad_pixel(values, lengths)
        if bad is not None:
            row, position, value = bad
            raise InputRefused(
                f"{path}: 'pixels' row {start + row} has the value {value:g} at position {position}: pixels must be integers 0-255"
            )
        flat = values.astype(np.uint8)
    else:
        rows = column.to_pylist()
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.frombuffer(bytearray(b"".join(rows)), dtype=np.uint8)  # writable, for torch
    differs = np.flatnonzero(lengths != lengths[0])
    if differs.size:
        row = int(differs[0])
        raise InputRefused(
            f"{path}: 'pixels' rows differ in length: row {start + row} holds {lengths[row]} values, "
            f"row {start} holds {lengths[0]}; images must share one size"
        )
    return flat.reshape(len(lengths), *_pixel_shape(batch, int(lengths[0]), start, path))


def _pixel_shape(batch: pa.RecordBatch, size: int, start: int, path: Path) -> tuple[int, ...]:
    """One row's shape: from ``height``/``width``/``channels`` columns, else a square, else flat."""
    names = batch.schema.names
    if "height" in names and "width" in names:
        dims = [batch.column(name).to_numpy(zero_copy_only=False) for name in ("height", "width")]
        dims.append(batch.column("channels").to_numpy(zero_copy_only=False) if "channels" in names else np.ones(len(dims[0])))
        height, width, channels = (int(values[0]) for values in dims)
        for values in dims:
            differs = np.flatnonzero(values != values[0])
            if differs.size:
                raise InputRefused(
                    f"{path}: row {start + int(differs[0])} is {int(dims[0][differs[0]])}x{int(dims[1][differs[0]])}x"
                    f"{int(dims[2][differs[0]])}, row {start} {height}x{width}x{channels}; images must share one size"
                )
        if height * width * channels != size:
            raise InputRefused(
                f"{path}: row {start} holds {size} pixel values, but its height, width and channels say "
                f"{height}x{width}x{channels} = {height * width * channels}"
            )
        return (height, width) if channels == 1 else (height, width, channels)
    side = math.isqrt(size)
    return (side, side) if side * side == size else (size,)


def _image_paths(folder: Path) -> Iterator[Path]:
    """Every image file below ``folder``, in the order of ``list_image_files`` (sorted by path), listed lazily:
    one folder at a time, as the names of its images and subfolders (about 100 bytes a file, measured: sorting
    needs the whole folder, so a flat folder of 1,000,000 images holds some 100 MB of names while it is read)."""
    names, folders = [], set()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.add(entry.name)
                elif not (entry.is_file() and is_image_file(Path(entry.name))):
                    continue
                names.append(entry.name)
    except OSError as error:
        raise InputRefused(f"Cannot list the folder {folder} ({error})") from None
    names.sort()
    for name in names:
        if name in folders:
            yield from _image_paths(folder / name)
        else:
            yield folder / name


def _image_files(path: Path) -> ChunkedInput:
    root = path if path.is_dir() else path.parent

    def paths() -> Iterator[Path]:
        return _image_paths(path) if path.is_dir() else iter([path])

    if next(paths(), None) is None:
        raise InputRefused(
            f"No image files below {path} (looked for {', '.join(IMAGE_EXTENSIONS)}, in every subfolder), "
            "and no parquet part files in it: name a folder of images or of *.parquet parts with --params images_path="
        )

    def chunks(size: int) -> Iterator[InputChunk]:
        files = paths()
        while batch := list(islice(files, size)):
            encoded = [base64.b64encode(_checked_image(file)).decode("ascii") for file in batch]
            names = [file.relative_to(root).as_posix() for file in batch]
            yield InputChunk(str(root), pd.DataFrame({"image": encoded}), pd.DataFrame({"path": names}), "file")

    return ChunkedInput(str(path), "images", None, chunks)


def _checked_image(file: Path) -> bytes:
    """The bytes of ``file``, once it has decoded as a whole image of a supported format."""
    try:
        data = file.read_bytes()
        inspect_image(data, name=str(file))
    except ImageDecodeError as error:
        raise InputRefused(f"{error}: remove or replace that file") from None
    except OSError as error:
        raise InputRefused(f"{file}: cannot be read ({error})") from None
    return data


# --------------------------------------------------------------------------- sentences


class SentencesFileDataset(_InputFileDataset):
    """Sentences, in chunks: a text file (one per non-blank line) or a CSV, TSV, JSON Lines or parquet table.

    The format follows the suffix: ``.csv``, ``.tsv``/``.tab``, ``.jsonl``/
    ``.ndjson``/``.json`` (JSON Lines: one object per line), ``.parquet``; any
    other file is text. ``chunks(size, text_column=..., encoding=...)`` picks
    the table's text column (default ``sentence``) and the encoding of text,
    CSV, TSV and JSON Lines files (default UTF-8). Every row of a table needs
    a non-empty string; blank lines of a text file are skipped, and a text
    file's ``row`` is its 0-based line number (``row`` 0 is line 1).
    """

    _what, _parameter = "sentences", "sentences_path"

    def load(self) -> ChunkedInput:
        path = self._filepath
        total = None
        if _parquet_parts(path):  # a parquet file, or a folder of parquet part files
            total = sum(_parquet_file(part).metadata.num_rows for part in _parquet_parts(path))
            if total == 0:
                raise InputRefused(f"{path} holds no sentences (0 rows)")
        elif self._path().stat().st_size == 0:
            raise InputRefused(f"{path} is empty (0 bytes): expected sentences")
        return ChunkedInput(str(path), "sentences", total, lambda size, **options: _sentence_chunks(path, size, **options))


def _sentence_chunks(path: Path, size: int, *, text_column: str = "sentence", encoding: str = "utf-8") -> Iterator[InputChunk]:
    suffix = path.suffix.lower()
    if _parquet_parts(path):
        groups, unit = _parquet_sentences(path, size, text_column), "row"
    elif suffix in TABLE_SUFFIXES:
        groups, unit = _grouped(_delimited_sentences(path, TABLE_SUFFIXES[suffix], text_column, encoding), size), "row"
    elif suffix in JSON_LINES_SUFFIXES:
        groups, unit = _grouped(_json_lines_sentences(path, text_column, encoding), size), "line"
    else:
        lines = ((index, line.strip(), _NO_LABEL) for index, line in _lines(path, encoding) if line.strip())
        groups, unit = _grouped(lines, size), "line"
    seen = False
    for rows, sentences, labels in groups:
        seen = True
        labels = _labels(labels, path, rows[0]) if labels is not None else None
        yield InputChunk(str(path), pd.DataFrame({"sentence": sentences}), pd.DataFrame({"row": rows}), unit, labels)
    if not seen:
        raise InputRefused(f"{path} holds no sentences: {'every line is blank' if unit == 'line' else 'no rows'}")


def _grouped(records: Iterable[tuple[int, str, Any]], size: int) -> Iterator[tuple[list[int], list[str], list[Any] | None]]:
    """``(rows, sentences, labels)`` for every ``size`` records, the last group maybe shorter; ``labels`` is None
    when the records carry none (their third item is :data:`_NO_LABEL`)."""
    rows, sentences, labels = [], [], []
    for row, sentence, label in records:
        rows.append(row)
        sentences.append(sentence)
        labels.append(label)
        if len(rows) == size:
            yield rows, sentences, _or_none(labels)
            rows, sentences, labels = [], [], []
    if rows:
        yield rows, sentences, _or_none(labels)


def _or_none(labels: list[Any]) -> list[Any] | None:
    return None if all(label is _NO_LABEL for label in labels) else [None if v is _NO_LABEL else v for v in labels]


def _sentence(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputRefused(
            f"{path}: {where} has the sentence {value!r}; every row needs a non-empty string (fill or drop that row)"
        )
    return value


def _missing_column(path: Path, column: str, columns: list[str]) -> InputRefused:
    return InputRefused(
        f"{path} has no column {column!r} (its columns: {columns}): "
        "name the text column with --params inference.rnn.text_column=<column>"
    )


def _parquet_sentences(path: Path, size: int, column: str) -> Iterator[tuple[list[int], list[str], list[Any] | None]]:
    kind, names, _ = _parquet_schema(path, column)
    if kind is None:
        raise _missing_column(path, column, names)
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputRefused(f"{path}: its column {column!r} holds {kind}, not text: name the text column with "
                           "--params inference.rnn.text_column=<column>")  # fmt: skip
    labelled = LABEL_COLUMN in names and column != LABEL_COLUMN
    for part, start, row, batch in _parquet_batches(path, size, [column, LABEL_COLUMN] if labelled else [column]):
        values = batch.column(column).to_pylist()
        for index, value in enumerate(values):
            _sentence(part, f"row {start + index}", value)
        yield list(range(row, row + len(values))), values, batch.column(LABEL_COLUMN).to_pylist() if labelled else None


def _delimited_sentences(path: Path, delimiter: str, column: str, encoding: str) -> Iterator[tuple[int, str, Any]]:
    """``(row, sentence, label)`` of a CSV/TSV file with a header (the label :data:`_NO_LABEL` when it has no
    ``label`` column); blank lines are skipped, as pandas does."""
    with _decoding(path, encoding, lambda: f"after row {row}" if row >= 0 else "in the header") as stream:
        reader = csv.reader(stream, delimiter=delimiter)
        row = -1
        try:
            header = next(reader, None)
            if header is None:
                raise InputRefused(f"{path} holds no sentences: the file is blank")
            if column not in header:
                raise _missing_column(path, column, header)
            index = header.index(column)
            label = header.index(LABEL_COLUMN) if LABEL_COLUMN in header and column != LABEL_COLUMN else None
            for record in reader:
                if not record:
                    continue
                row += 1
                if len(record) != len(header):
                    raise InputRefused(
                        f"{path}: row {row} (line {reader.line_num}) has {len(record)} fields, the header {len(header)}: "
                        "quote fields that hold the delimiter"
                    )
                sentence = _sentence(path, f"row {row} (line {reader.line_num})", record[index])
                yield row, sentence, record[label] if label is not None else _NO_LABEL
        except csv.Error as error:
            raise InputRefused(
                f"{path}: line {reader.line_num} is not valid {'CSV' if delimiter == ',' else 'TSV'}: {error}"
            ) from None


def _json_lines_sentences(path: Path, column: str, encoding: str) -> Iterator[tuple[int, str, Any]]:
    """``(line index, sentence, label)`` of a JSON Lines file: one object per non-blank line, the text under
    ``column``, the label under ``label`` (:data:`_NO_LABEL` where a line has none)."""
    for index, line in _lines(path, encoding):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputRefused(
                f"{path}: line {index + 1} is not JSON ({error}): expected JSON Lines, one object per line"
            ) from None
        if not isinstance(record, dict):
            raise InputRefused(f"{path}: line {index + 1} holds a {type(record).__name__}, not an object: expected JSON Lines")
        if column not in record:
            raise InputRefused(
                f"{path}: line {index + 1} has no {column!r} (its keys: {sorted(record)}): "
                "name the text key with --params inference.rnn.text_column=<key>"
            )
        label = record.get(LABEL_COLUMN, _NO_LABEL) if column != LABEL_COLUMN else _NO_LABEL
        yield index, _sentence(path, f"line {index + 1}", record[column]), label


_NO_LABEL = object()  # a record without a label (as opposed to one whose label is empty, which is refused)


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """``(0-based line number, text)`` of every line, decoded strictly; an undecodable line is refused by number."""
    if "\n".encode(encoding) != b"\n":  # UTF-16/32: decoded as a stream, so a bad line is named by the line before it
        with _decoding(path, encoding, lambda: f"after line {number}") as stream:
            number = 0
            for number, line in enumerate(stream):  # noqa: B007 (read by the message)
                yield number, line.lstrip("\ufeff") if number == 0 else line
        return
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as error:
                raise InputRefused(
                    f"{path}: line {number + 1} is not valid {encoding} (byte 0x{raw[error.start]:02x} at column "
                    f"{error.start + 1}: {error.reason}): pass --params inference.rnn.encoding=<the file's encoding>, "
                    "e.g. latin-1"
                ) from None
            yield number, line.lstrip("\ufeff") if number == 0 else line


class _decoding:
    """``open(path, encoding=...)`` for reading text, whose decoding errors are refusals naming the file."""

    def __init__(self, path: Path, encoding: str, where: Callable[[], str]) -> None:
        self._path, self._encoding, self._where = path, encoding, where

    def __enter__(self):
        self._stream = open(self._path, encoding=self._encoding, newline="")  # noqa: SIM115
        return self._stream

    def __exit__(self, kind, error, traceback) -> None:
        self._stream.close()
        if isinstance(error, UnicodeError):
            raise InputRefused(
                f"{self._path} is not valid {self._encoding} ({self._where()}: {error}): "
                "pass --params inference.rnn.encoding=<the file's encoding>, e.g. latin-1"
            ) from None
