"""The IDX reader: hand-built fixtures, round trips, every malformed case and fuzzing."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlflow.sources.errors import DataValidationError
from dlflow.sources.idx import read_idx, validate_image_label_pair, write_idx
from tests.conftest import MIRROR


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file built byte by byte, independently of write_idx."""
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


LABELS = idx_bytes(0x08, (5,), bytes([3, 1, 4, 1, 5]))
IMAGES = idx_bytes(0x08, (5, 2, 3), bytes(range(30)))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- reading good files -----------------------------------------------------------


def test_reads_hand_built_files(tmp_path: Path) -> None:
    labels = read_idx(write(tmp_path, "labels.idx", LABELS))
    assert labels.dtype == np.uint8 and labels.tolist() == [3, 1, 4, 1, 5]
    images = read_idx(write(tmp_path, "images.idx", IMAGES))
    assert images.shape == (5, 2, 3) and images[1, 0].tolist() == [6, 7, 8]
    assert images.flags.writeable


def test_reads_big_endian_multibyte_values(tmp_path: Path) -> None:
    shorts = idx_bytes(0x0B, (3,), struct.pack(">3h", -2, 300, 7))
    assert read_idx(write(tmp_path, "s.idx", shorts)).tolist() == [-2, 300, 7]
    doubles = idx_bytes(0x0E, (2,), struct.pack(">2d", 1.5, -0.25))
    array = read_idx(write(tmp_path, "d.idx", doubles))
    assert array.dtype == np.float64 and array.dtype.isnative and array.tolist() == [1.5, -0.25]


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    assert read_idx(write(tmp_path, "labels.idx", gzip.compress(LABELS))).tolist() == [3, 1, 4, 1, 5]
    assert read_idx(write(tmp_path, "labels.gz", LABELS)).tolist() == [3, 1, 4, 1, 5]


@pytest.mark.parametrize("dtype", ["uint8", "int8", ">i2", "<i4", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (4, 3), (2, 3, 4), (1, 2, 1, 3), (0, 28, 28)])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path: Path, dtype: str, shape: tuple[int, ...], compress: bool) -> None:
    rng = np.random.default_rng(0)
    array = (rng.normal(size=shape) * 100).astype(dtype)
    path = write_idx(array, tmp_path / "a.idx", gzip=compress)
    assert path.read_bytes().startswith(b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_write_idx_matches_hand_built_bytes(tmp_path: Path) -> None:
    path = write_idx(np.arange(30, dtype=np.uint8).reshape(5, 2, 3), tmp_path / "images.idx")
    assert path.read_bytes() == IMAGES


def test_write_idx_rejects_unsupported_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot store uint16"):
        write_idx(np.zeros(3, dtype=np.uint16), tmp_path / "a.idx")
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(np.zeros((1,) * 5, dtype=np.uint8), tmp_path / "a.idx")


def test_sixty_thousand_images_read_fast(tmp_path: Path) -> None:
    path = write_idx(np.zeros((60_000, 28, 28), dtype=np.uint8), tmp_path / "big.idx")
    start = time.perf_counter()
    assert read_idx(path).shape == (60_000, 28, 28)
    assert time.perf_counter() - start < 1.0


# --- malformed files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "is empty"),
        (b"\x00\x00", "too few"),
        (b"\x12\x34\x08\x01" + LABELS[4:], "not an IDX file"),
        (b"\x00\x00\x0a\x01" + LABELS[4:], "unknown IDX dtype code 0x0A"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions"),
        (b"\x00\x00\x08\x05" + b"\x00" * 24, "declares 5 dimensions"),
        (IMAGES[:10], "truncated inside its header"),
        (IMAGES[:-1], "truncated"),
        (LABELS + b"\x00", "trailing bytes"),
        (gzip.compress(LABELS, mtime=0)[:-6], "corrupt gzip"),
        (b"\x1f\x8b" + b"\x00" * 20, "corrupt gzip"),
    ],
)
def test_malformed_files_are_rejected_with_their_name(tmp_path: Path, data: bytes, problem: str) -> None:
    path = write(tmp_path, "bad-file.idx", data)
    with pytest.raises(DataValidationError, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- image/label pairs --------------------------------------------------------------


def check_pair(images: np.ndarray, labels: np.ndarray) -> None:
    validate_image_label_pair(images, labels, images_path="img.idx", labels_path="lbl.idx", num_classes=10)


def test_valid_pair_passes() -> None:
    check_pair(np.zeros((4, 28, 28), np.uint8), np.array([0, 9, 3, 3], np.uint8))


@pytest.mark.parametrize(
    ("images_shape", "labels", "problem"),
    [
        ((4, 28, 27), np.zeros(4, np.uint8), r"img\.idx holds .* shape \(4, 28, 27\)"),
        ((4, 784), np.zeros(4, np.uint8), r"img\.idx holds"),
        ((4, 28, 28), np.zeros((4, 1), np.uint8), r"lbl\.idx holds .* shape"),
        ((4, 28, 28), np.zeros(3, np.uint8), r"lbl\.idx has 3 entries but images file img\.idx has 4"),
        ((0, 28, 28), np.zeros(0, np.uint8), r"img\.idx and labels file lbl\.idx are empty"),
        ((2, 28, 28), np.zeros(2, np.float32), r"lbl\.idx holds float32"),
        ((3, 28, 28), np.array([1, 10, 2], np.uint8), r"lbl\.idx has 1 labels outside \[0, 10\)"),
        ((2, 28, 28), np.array([-1, 2], np.int8), r"e\.g\. -1 at index 0"),
    ],
)
def test_invalid_pairs_are_rejected(images_shape: tuple[int, ...], labels: np.ndarray, problem: str) -> None:
    with pytest.raises(DataValidationError, match=problem):
        check_pair(np.zeros(images_shape, np.uint8), labels)


@pytest.mark.usefixtures("data_mirror")  # the offline mirror ($DLFLOW_DATA_MIRROR): absent, the test fails
def test_real_fashion_mnist_test_set_is_a_valid_pair() -> None:
    folder = MIRROR / "fashion-mnist"
    images_path, labels_path = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_path), read_idx(labels_path)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    validate_image_label_pair(images, labels, images_path=images_path, labels_path=labels_path, num_classes=10)


# --- fuzzing: anything either parses or raises DataValidationError -------------------------


def read_or_reject(folder: Path, data: bytes) -> None:
    path = write(folder, "fuzz.idx", data)
    try:
        array = read_idx(path)
    except DataValidationError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(array, np.ndarray) and 1 <= array.ndim <= 4


FUZZ = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    read_or_reject(tmp_path, data)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([LABELS, IMAGES, gzip.compress(LABELS), gzip.compress(IMAGES)])))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "append", "delete"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:]
        elif action == "append":
            data += draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position]
    return bytes(data)


@FUZZ
@given(data=mutated_files())
def test_mutated_valid_files(tmp_path: Path, data: bytes) -> None:
    read_or_reject(tmp_path, data)
