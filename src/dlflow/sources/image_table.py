"""The image table: how validated images are stored between pipeline steps, whatever their source.

One row per image:

``label``     uint16, the class index
``pixels``    binary, the image's ``height * width * channels`` uint8 values, row-major (HWC)
``height``    uint16
``width``     uint16
``channels``  uint8, 1 (grey) or 3 (RGB) from ingestion
``path``      str, the file relative to the images folder (a folder source only)
``sha256``    str, the hex sha256 of the file's bytes (a folder source only)

Raw bytes, not a list column: a list of 784 numbers per row costs pandas and
pyarrow a Python object per image both ways (2.4 s to write and 1.1 s to read
the 60,000 Fashion-MNIST training images), while bytes cost 0.4 s each way and
turn back into one ``(N, H, W, C)`` array with a single ``np.frombuffer``.

Each row records its own shape, so a table never assumes a size; the tables
ingestion writes hold one shape. Readers also accept the legacy form other
tools write, ``pixels`` alone (bytes, or lists/arrays of 0-255 numbers): square
grey rows, or the shape given by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

SHAPE_COLUMNS = ("height", "width", "channels")
_MAX_LABEL = np.iinfo(np.uint16).max


def image_table(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    paths: Sequence[str] | None = None,
    digests: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``(N, H, W)`` or ``(N, H, W, C)`` uint8 images and their labels as an image table.

    ``paths`` (each file relative to the images folder) and ``digests`` (sha256 hex of each
    file's bytes) add the ``path`` and ``sha256`` columns.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0-255), got {images.dtype}")
    flat = np.ascontiguousarray(images).reshape(len(images), math.prod(images.shape[1:]))
    return rows_table([row.tobytes() for row in flat], labels, images.shape[1:], paths=paths, digests=digests)


def rows_table(
    pixels: list[bytes],
    labels: np.ndarray,
    shape: Sequence[int],
    *,
    paths: Sequence[str] | None = None,
    digests: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``image_table`` from each image's HWC bytes already made (no copy of the pixels); ``shape`` = (H, W, C)."""
    height, width, channels = (int(n) for n in shape)
    labels = np.asarray(labels)
    n = len(pixels)
    for name, values in (("labels", labels), ("paths", paths), ("digests", digests)):
        if values is not None and len(values) != n:
            raise ValueError(f"{n} images but {len(values)} {name}")
    if n and (labels.min() < 0 or labels.max() > _MAX_LABEL):
        raise ValueError(f"labels must be class indices 0-{_MAX_LABEL}, got {labels.min()}..{labels.max()}")
    if not (1 <= channels <= 255 and 1 <= height <= _MAX_LABEL and 1 <= width <= _MAX_LABEL):
        raise ValueError(f"cannot store images of shape {height}x{width}x{channels}")
    columns = {
        "label": labels.astype(np.uint16),
        "pixels": pixels,
        "height": np.full(n, height, np.uint16),
        "width": np.full(n, width, np.uint16),
        "channels": np.full(n, channels, np.uint8),
    }
    if paths is not None:
        columns["path"] = [str(p) for p in paths]
    if digests is not None:
        columns["sha256"] = [str(d) for d in digests]
    return pd.DataFrame(columns)


def table_shape(table: pd.DataFrame) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the table's images, from its columns (no pixels decoded).

    Raises ``ValueError`` when the rows differ in shape, the table is empty, or a legacy
    table (``pixels`` only) does not hold square grey images.
    """
    if len(table) == 0:
        raise ValueError("the image table has no rows: there is no image shape to read")
    if all(name in table.columns for name in SHAPE_COLUMNS):
        shapes = table[list(SHAPE_COLUMNS)].to_numpy()
        first = shapes[0]
        differ = (shapes != first).any(axis=1)
        if differ.any():
            found = pd.Series([f"{h}x{w}x{c}" for h, w, c in shapes]).value_counts()
            listed = ", ".join(f"{shape} ({count} rows)" for shape, count in found.head(5).items())
            raise ValueError(
                f"the images differ in shape (height x width x channels: {listed}); "
                "a table must hold one shape: set images.image_size (and images.channels) to resize them to one"
            )
        return int(first[0]), int(first[1]), int(first[2])
    first = table["pixels"].iloc[0]
    size = len(first) if isinstance(first, (bytes, bytearray)) else int(np.asarray(first).size)
    side = math.isqrt(size)
    if side * side != size:
        raise ValueError(
            f"'pixels' rows hold {size} values and the table has no height/width/channels columns: "
            "cannot tell the image shape (pass the shape, or add those columns)"
        )
    return side, side, 1


def table_images(table: pd.DataFrame, shape: Sequence[int] | None = None) -> np.ndarray:
    """The ``pixels`` column as one ``(N, H, W, C)`` uint8 array.

    The shape comes from the ``height``/``width``/``channels`` columns; a legacy table (``pixels``
    only) needs ``shape`` = ``(H, W)`` (grey) or ``(H, W, C)``, else its rows must be square grey
    images. ``shape`` given beside the columns must agree with them. Raises ``ValueError`` when the
    rows differ in shape or length, or are not 0-255 integers.
    """
    expected = _expected_shape(shape)
    column = table["pixels"]
    if len(column) == 0:
        return np.empty((0, *(expected or (0, 0, 1))), np.uint8)
    if all(name in table.columns for name in SHAPE_COLUMNS):
        found = table_shape(table)
        if expected is not None and expected != found:
            raise ValueError(f"the table's images are {_shape_text(found)}, not the {_shape_text(expected)} asked for")
        expected = found
    first = column.iloc[0]
    if isinstance(first, (bytes, bytearray)):
        lengths = column.map(len).to_numpy()
        flat = np.frombuffer(bytearray(b"".join(column.to_list())), dtype=np.uint8)  # writable, for torch
    else:
        rows = [_numeric_row(row, index) for index, row in enumerate(column.to_list())]
        lengths = np.array([row.size for row in rows])
        flat = np.concatenate([row.reshape(-1) for row in rows])
        bad = first_bad_pixel(flat, lengths)
        if bad is not None:
            row, position, value = bad
            raise ValueError(f"'pixels' row {row} has the value {value:g} at position {position}: pixels must be integers 0-255")
        flat = flat.astype(np.uint8)
    if (lengths != lengths[0]).any():
        raise ValueError(f"'pixels' rows differ in length ({sorted(set(lengths.tolist()))[:5]}); images must share one size")
    size = int(lengths[0])
    if expected is None:
        side = math.isqrt(size)
        if side * side != size:
            raise ValueError(
                f"'pixels' rows hold {size} values and the table has no height/width/channels columns: "
                "cannot tell the image shape (pass shape=(height, width) or (height, width, channels))"
            )
        expected = (side, side, 1)
    if math.prod(expected) != size:
        raise ValueError(f"'pixels' rows hold {size} values, not the {_shape_text(expected)} = {math.prod(expected)} expected")
    return flat.reshape(len(column), *expected)


def arrow_images(rows: pa.Table) -> np.ndarray:
    """The ``pixels`` of an image table's rows held by Arrow (a parquet part) as one ``(N, H, W, C)`` uint8 array.

    Rows of one shape (the ``height``/``width``/``channels`` columns) stored as binary are read straight
    from Arrow's buffers, without a Python object per row; anything else goes through ``table_images``.
    """
    column = rows.column("pixels").combine_chunks() if rows.num_rows else None
    offset_type = None  # binary columns only: Arrow's offsets are int32 (binary) or int64 (large_binary)
    if column is not None and pa.types.is_binary(column.type):
        offset_type = np.int32
    elif column is not None and pa.types.is_large_binary(column.type):
        offset_type = np.int64
    if offset_type is None or not all(name in rows.column_names for name in SHAPE_COLUMNS):
        return table_images(rows.to_pandas())
    shapes = np.stack([rows.column(name).to_numpy() for name in SHAPE_COLUMNS], axis=1)
    if (shapes != shapes[0]).any():
        return table_images(rows.to_pandas())  # says which shapes differ
    height, width, channels = (int(v) for v in shapes[0])
    offsets = np.frombuffer(column.buffers()[1], dtype=offset_type)[column.offset : column.offset + len(column) + 1]
    size = height * width * channels
    if (np.diff(offsets) != size).any():
        return table_images(rows.to_pandas())  # says which row is short
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(len(column), height, width, channels).copy()  # writable, for torch


def _expected_shape(shape: Sequence[int] | None) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    shape = tuple(int(n) for n in shape)
    if len(shape) == 2:
        return (*shape, 1)
    if len(shape) == 3:
        return shape
    raise ValueError(f"shape must be (height, width) or (height, width, channels), got {shape}")


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)


def first_bad_pixel(values: np.ndarray, lengths: np.ndarray) -> tuple[int, int, float] | None:
    """The first value of ``values`` (rows of ``lengths`` values, concatenated) that is not an integer 0-255:
    ``(row, position in the row, value)``, or None when every value is a pixel."""
    with np.errstate(invalid="ignore"):  # NaN and infinities are bad values, not warnings
        bad = ~np.isfinite(values) | (values < 0) | (values > 255) | (np.mod(values, 1) != 0)
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    row = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
    return row, first - int(lengths[:row].sum()), float(values[first])


def _numeric_row(row, index: int) -> np.ndarray:
    try:
        return np.asarray(row, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"'pixels' row {index} is not numbers ({str(row)[:40]}): pixels must be integers 0-255") from None
