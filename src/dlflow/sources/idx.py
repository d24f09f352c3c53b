"""Read and write IDX files (the MNIST format) with numpy, strictly validated.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimensions, then the values, big-endian, row-major.
Files may be gzip-compressed; that is detected by the gzip magic bytes, not by
the file name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from gzip import compress as _gzip_compress  # write_idx's `gzip` argument shadows the module
from pathlib import Path

import numpy as np

from dlflow.sources.errors import DataValidationError

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
_MAX_NDIM = 4


def read_idx(path: Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip or raw), in native byte order."""
    return parse_idx(read_idx_bytes(path), source=str(path))


def read_idx_bytes(path: Path) -> bytes:
    """The raw IDX bytes of ``path``, decompressed if it is gzip."""
    data = Path(path).read_bytes()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataValidationError(f"{path} is a corrupt gzip file ({exc}); delete it and obtain a fresh copy.") from None


def parse_idx(data: bytes, *, source: str) -> np.ndarray:
    """Decode IDX bytes; ``source`` names the file in error messages."""
    if not data:
        raise DataValidationError(f"{source} is empty; delete it and obtain a fresh copy.")
    if len(data) < 4:
        raise DataValidationError(f"{source} has {len(data)} bytes, too few for the 4-byte IDX magic number.")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataValidationError(
            f"{source} does not start with an IDX magic number (first bytes {data[:4].hex()}, "
            "expected 0000 then dtype code and ndim): it is not an IDX file."
        )
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise DataValidationError(f"{source} has unknown IDX dtype code 0x{code:02X}; IDX defines {known}.")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataValidationError(f"{source} declares {ndim} dimensions; expected 1 to {_MAX_NDIM}.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataValidationError(f"{source} is truncated inside its header ({len(data)} of {header} bytes).")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    count = int(np.prod(dims, dtype=object))
    expected, actual = count * dtype.itemsize, len(data) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "followed by trailing bytes"
        raise DataValidationError(
            f"{source} is {problem}: its header declares shape {dims} of {dtype.name} "
            f"({expected} payload bytes) but it holds {actual}. Delete it and obtain a fresh copy."
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(array: np.ndarray, path: Path, gzip: bool = False) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed if asked); returns ``path``."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store {array.dtype}; use (u)int8, int16, int32, float32 or float64.")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise ValueError(f"IDX arrays here have 1 to {_MAX_NDIM} dimensions, not {array.ndim}.")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    data = header + array.astype(_DTYPES[code], copy=False).tobytes(order="C")
    path = Path(path)
    path.write_bytes(_gzip_compress(data, mtime=0) if gzip else data)
    return path


def validate_image_label_pair(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    images_path: str | Path,
    labels_path: str | Path,
    num_classes: int,
    image_shape: tuple[int, int] = (28, 28),
) -> None:
    """Raise DataValidationError unless ``images``/``labels`` form a classification set."""
    if images.ndim != 3 or images.shape[1:] != tuple(image_shape):
        raise DataValidationError(
            f"images file {images_path} holds an array of shape {images.shape}; "
            f"expected (count, {image_shape[0]}, {image_shape[1]})."
        )
    if labels.ndim != 1:
        raise DataValidationError(f"labels file {labels_path} holds an array of shape {labels.shape}; expected (count,).")
    if len(labels) != len(images):
        raise DataValidationError(
            f"labels file {labels_path} has {len(labels)} entries but images file {images_path} "
            f"has {len(images)}: the pair does not belong together."
        )
    if len(images) == 0:
        raise DataValidationError(f"images file {images_path} and labels file {labels_path} are empty.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataValidationError(f"labels file {labels_path} holds {labels.dtype} values; expected integer class ids.")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataValidationError(
            f"labels file {labels_path} has {bad.size} labels outside [0, {num_classes}), "
            f"e.g. {labels[bad[0]]} at index {bad[0]}: wrong file or wrong num_classes."
        )
