"""The image table: how validated images are stored between pipeline steps.

One row per image:

``label``   uint8, the class index
``pixels``  binary, the image's ``height * width`` uint8 values in row-major order

Raw bytes, not a list column: a list of 784 numbers per row costs pandas and
pyarrow a Python object per image both ways (2.4 s to write and 1.1 s to read
the 60,000 training images), while bytes cost 0.4 s each way and turn back
into one ``(N, 28, 28)`` array with a single ``np.frombuffer``. Readers also
accept the list form (``pixels`` as lists or arrays of numbers), which is what
other tools usually write.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

IMAGE_SHAPE = (28, 28)  # height x width of the registered data sets' images (MNIST, Fashion-MNIST)


def image_table(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """``(N, H, W)`` (or ``(N, H*W)``) uint8 images and their labels as an image table."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return pd.DataFrame({"label": np.asarray(labels).astype(np.uint8), "pixels": [row.tobytes() for row in flat]})


def table_images(table: pd.DataFrame, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The ``pixels`` column as one uint8 array: ``(N, H, W)`` with ``shape`` (or square rows), else ``(N, H*W)``.

    Raises ``ValueError`` when the rows differ in length or are not 0-255 integers.
    """
    column = table["pixels"]
    if len(column) == 0:
        return np.empty((0, *(shape or (0,))), np.uint8)
    first = column.iloc[0]
    if isinstance(first, (bytes, bytearray)):
        lengths = column.map(len).to_numpy()
        flat = np.frombuffer(bytearray(b"".join(column.to_list())), dtype=np.uint8)  # writable, for torch
    else:
        rows = [_numeric_row(row, index) for index, row in enumerate(column.to_list())]
        lengths = np.array([row.size for row in rows])
        flat = np.concatenate([row.reshape(-1) for row in rows]) if rows else np.empty(0)
        bad = ~np.isfinite(flat) | (flat < 0) | (flat > 255) | (np.mod(flat, 1) != 0)
        if bad.any():
            first = int(np.argmax(bad))
            row = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
            position = first - int(lengths[:row].sum())
            raise ValueError(
                f"'pixels' row {row} has the value {flat[first]:g} at position {position}: pixels must be integers 0-255"
            )
        flat = flat.astype(np.uint8)
    if (lengths != lengths[0]).any():
        raise ValueError(f"'pixels' rows differ in length ({sorted(set(lengths.tolist()))[:5]}); images must share one size")
    size = int(lengths[0])
    if shape is None:
        side = math.isqrt(size)
        shape = (side, side) if side * side == size else None
    if shape is not None and shape[0] * shape[1] != size:
        raise ValueError(f"'pixels' rows hold {size} values, not the {shape[0]}x{shape[1]} = {shape[0] * shape[1]} expected")
    return flat.reshape(len(column), *shape) if shape is not None else flat.reshape(len(column), size)


def _numeric_row(row, index: int) -> np.ndarray:
    try:
        return np.asarray(row, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"'pixels' row {index} is not numbers ({str(row)[:40]}): pixels must be integers 0-255") from None
