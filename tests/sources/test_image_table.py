"""The image table: each row's own shape, (N, H, W, C) back, legacy tables (pixels only) still read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlflow.io import ParquetShardsDataset
from dlflow.sources.image_table import image_table, table_images, table_shape

RNG = np.random.default_rng(0)


def test_colour_images_round_trip_through_parquet_parts(tmp_path):
    images = RNG.integers(0, 256, (5, 6, 4, 3), dtype=np.uint8)  # not square, colour
    table = image_table(images, np.array([0, 1, 2, 1, 300]), paths=[f"c/{i}.png" for i in range(5)], digests=["ab"] * 5)
    assert list(table.columns) == ["label", "pixels", "height", "width", "channels", "path", "sha256"]
    assert table["label"].dtype == np.uint16 and table["label"].iloc[4] == 300
    assert (table["height"].dtype, table["width"].dtype, table["channels"].dtype) == (np.uint16, np.uint16, np.uint8)
    assert table["pixels"].iloc[0] == images[0].tobytes()  # HWC bytes, row-major
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "train"))
    dataset.save(table)
    back = dataset.load()
    assert table_shape(back) == (6, 4, 3)
    np.testing.assert_array_equal(table_images(back), images)
    assert back["path"].tolist() == table["path"].tolist() and back["label"].dtype == np.uint16


def test_grey_images_come_back_with_a_channel_axis():
    images = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    table = image_table(images, np.zeros(3, np.uint8))
    assert "path" not in table.columns and table_shape(table) == (28, 28, 1)
    assert table_images(table).shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(table_images(table, (28, 28))[..., 0], images)
    with pytest.raises(ValueError, match="28x28x1, not the 32x32x1 asked for"):
        table_images(table, (32, 32))


def test_rows_of_different_shapes_are_refused_saying_so():
    a = image_table(RNG.integers(0, 256, (2, 8, 8), dtype=np.uint8), np.zeros(2))
    b = image_table(RNG.integers(0, 256, (1, 8, 6, 3), dtype=np.uint8), np.zeros(1))
    mixed = pd.concat([a, b], ignore_index=True)
    for read in (table_shape, table_images):
        with pytest.raises(ValueError, match=r"differ in shape .*8x8x1 \(2 rows\), 8x6x3 \(1 rows\).*one shape"):
            read(mixed)


def test_legacy_tables_without_shape_columns_still_read():
    flat = RNG.integers(0, 256, (4, 784), dtype=np.uint8)
    as_bytes = pd.DataFrame({"pixels": [row.tobytes() for row in flat]})
    assert table_shape(as_bytes) == (28, 28, 1)
    np.testing.assert_array_equal(table_images(as_bytes).reshape(4, -1), flat)
    as_lists = pd.DataFrame({"pixels": [row.tolist() for row in flat]})
    np.testing.assert_array_equal(table_images(as_lists), table_images(as_bytes))
    wide = pd.DataFrame({"pixels": [bytes(2 * 3 * 3)] * 2})
    assert table_images(wide, (2, 3, 3)).shape == (2, 2, 3, 3)
    assert table_images(pd.DataFrame({"pixels": [bytes(6)]}), (2, 3)).shape == (1, 2, 3, 1)
    with pytest.raises(ValueError, match="cannot tell the image shape"):
        table_images(wide)
    with pytest.raises(ValueError, match="cannot tell the image shape"):
        table_shape(wide)
    with pytest.raises(ValueError, match=r"hold 18 values, not the 4x4x1 = 16 expected"):
        table_images(wide, (4, 4))


def test_bad_pixel_values_are_named_by_row_and_position():
    pixels = [np.zeros(784), np.concatenate([np.zeros(783), [np.nan]])]
    with pytest.raises(ValueError, match=r"'pixels' row 1 has the value nan at position 783: .* 0-255"):
        table_images(pd.DataFrame({"pixels": pixels}))
    with pytest.raises(ValueError, match=r"'pixels' row 0 has the value 256 at position 3"):
        table_images(pd.DataFrame({"pixels": [[0, 0, 0, 256]]}))
    with pytest.raises(ValueError, match=r"'pixels' row 0 is not numbers"):
        table_images(pd.DataFrame({"pixels": [["a", "b", "c", "d"]]}))
    with pytest.raises(ValueError, match="differ in length"):
        table_images(pd.DataFrame({"pixels": [bytes(4), bytes(9)]}))


def test_empty_tables_and_bad_inputs():
    empty = image_table(np.zeros((0, 5, 7, 3), np.uint8), np.zeros(0))
    assert table_images(empty, (5, 7, 3)).shape == (0, 5, 7, 3)
    with pytest.raises(ValueError, match="no rows"):
        table_shape(empty)
    with pytest.raises(ValueError, match="uint8"):
        image_table(np.zeros((1, 2, 2), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="class indices"):
        image_table(np.zeros((1, 2, 2), np.uint8), np.array([70000]))
    with pytest.raises(ValueError, match="2 images but 1 paths"):
        image_table(np.zeros((2, 2, 2), np.uint8), np.zeros(2), paths=["a.png"])
