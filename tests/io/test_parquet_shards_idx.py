"""IDX pairs streamed into parquet shards in chunks (``dlflow.sources.idx_stream``): the rows of the whole files,
parts reused while the files are unchanged, and bad files refused by name, leaving the previous table."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from dlflow.io import ParquetShardsDataset
from dlflow.sources.errors import DataValidationError
from dlflow.sources.idx import write_idx
from dlflow.sources.idx_stream import check_pair, idx_parts, read_labels
from dlflow.sources.image_table import image_table


def _pair(folder, n: int, seed: int = 0, compressed: bool = True):
    rng = np.random.default_rng(seed)
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)
    suffix = ".gz" if compressed else ""
    return (
        write_idx(images, folder / f"images{suffix}", gzip=compressed),
        write_idx(labels, folder / f"labels{suffix}", gzip=compressed),
        images,
        labels,
    )


@pytest.mark.parametrize("compressed", [True, False])
def test_chunks_of_an_idx_pair_are_the_whole_files_rows_and_are_reused_while_unchanged(tmp_path, compressed):
    images_path, labels_path, images, labels = _pair(tmp_path, 250, compressed=compressed)
    assert check_pair(images_path, labels_path) == 250
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "train"))
    dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=60))
    pd.testing.assert_frame_equal(dataset.load(), image_table(images, labels))
    manifest = json.loads((tmp_path / "train" / "_parts.json").read_text())
    assert len(manifest["parts"]) == 5 and manifest["reused"] == []
    dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=60))
    assert len(json.loads((tmp_path / "train" / "_parts.json").read_text())["reused"]) == 5
    _pair(tmp_path, 250, seed=1, compressed=compressed)  # new files: every part read again
    dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=60))
    assert json.loads((tmp_path / "train" / "_parts.json").read_text())["reused"] == []


def test_bad_idx_files_are_refused_by_name_and_leave_the_previous_table(tmp_path):
    images_path, labels_path, images, labels = _pair(tmp_path, 100)
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "train"))
    dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=30))
    whole = gzip.decompress(images_path.read_bytes())
    images_path.write_bytes(gzip.compress(whole[:-500]))  # the header still says 100 images
    with pytest.raises(DatasetError, match=r"images.gz is truncated"):
        dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=30))
    pd.testing.assert_frame_equal(dataset.load(), image_table(images, labels))
    images_path.write_bytes(gzip.compress(whole + b"\0" * 784))
    with pytest.raises(DatasetError, match="followed by trailing bytes"):
        dataset.save(idx_parts(images_path, labels_path, read_labels(labels_path, 10), rows=30))
    other_labels = write_idx(np.zeros(99, np.uint8), tmp_path / "other.gz", gzip=True)
    with pytest.raises(DataValidationError, match="has 99 entries but images file"):
        check_pair(images_path, other_labels)
    with pytest.raises(DataValidationError, match="labels outside"):
        read_labels(write_idx(np.full(5, 12, np.uint8), tmp_path / "twelve.gz", gzip=True), 10)
    (tmp_path / "text.gz").write_bytes(gzip.compress(b"hello world, not idx"))
    with pytest.raises(DataValidationError, match="not an IDX file"):
        check_pair(tmp_path / "text.gz", labels_path)
