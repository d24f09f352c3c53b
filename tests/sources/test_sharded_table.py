"""``ShardedTable``: rows taken a record batch at a time, and the CNN's preprocessing on one, as on the same table in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlflow.io import ParquetShardsDataset
from dlflow.pipelines.cnn.nodes import add_feedback_images, compute_normalisation, select_test_images, split_train_validation
from dlflow.sources import sharded_table
from dlflow.sources.image_table import image_table
from dlflow.sources.sharded_table import ShardedTable, frame, take


def _images(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return image_table(rng.integers(0, 256, (count, 6, 5, 3), dtype=np.uint8), rng.integers(0, 4, count))


def _sharded(table: pd.DataFrame, folder: Path, part_bytes: int = 4096) -> ShardedTable:
    """``table`` written as the catalog writes it (parts of about ``part_bytes``) and loaded lazily."""
    dataset = ParquetShardsDataset(filepath=str(folder), part_bytes=part_bytes, lazy=True)
    dataset.save(table)
    return dataset.load()


def test_take_reads_the_chosen_rows_in_order_a_batch_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharded_table, "BATCH_ROWS", 7)  # batches much smaller than a part: rows cross both
    table = _images(300, seed=0)
    sharded = _sharded(table, tmp_path / "t")
    assert len(sharded.parts) > 3
    rows = np.sort(np.random.default_rng(1).choice(300, 120, replace=False))
    chunks = list(sharded.take(rows))
    assert max(chunk.num_rows for chunk in chunks) <= 7
    assert frame(chunks).equals(table.iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(sharded.column("label"), table["label"].to_numpy())
    assert frame(take(table, rows)).equals(frame(chunks))  # a DataFrame answers the same
    assert list(sharded.take([])) == []
    for bad in ([3, 2], [-1], [300]):
        with pytest.raises(ValueError, match="ascend within 0..299"):
            list(sharded.take(bad))


def test_the_cnn_preprocessing_on_shards_gives_what_it_gives_in_memory(tmp_path: Path, monkeypatch) -> None:
    """Split (with a subset), normalisation, feedback and the test subset: the same rows and numbers from
    a sharded table read a batch at a time as from the DataFrame."""
    monkeypatch.setattr(sharded_table, "BATCH_ROWS", 16)
    train, test = _images(400, seed=2), _images(100, seed=3)
    empty = train.iloc[:0]
    data = {"validation_fraction": 0.2, "split_seed": 5, "max_train_samples": 300, "max_test_samples": 40}
    feedback = {"kept/ab.parquet": _images(9, seed=4).assign(label=lambda t: t["label"].astype(str))}
    classes = ["0", "1", "2", "3"]

    in_memory = split_train_validation(train, empty, data)
    streamed = split_train_validation(_sharded(train, tmp_path / "train"), _sharded(empty, tmp_path / "val"), data)
    memory_train, stream_train = frame(in_memory[0]), frame(streamed[0])
    assert len(stream_train) == 240 and stream_train.equals(memory_train) and streamed[1].equals(in_memory[1])

    written = _sharded(stream_train, tmp_path / "split")  # cnn_train_split, as the next nodes load it
    assert compute_normalisation(written) == pytest.approx(compute_normalisation(memory_train))
    stream_images, metrics = add_feedback_images(written, feedback, classes, True)
    memory_images, _ = add_feedback_images(memory_train, feedback, classes, True)
    assert frame(stream_images).equals(frame(memory_images)) and metrics["feedback_records"]["value"] == 9
    assert select_test_images(_sharded(test, tmp_path / "test"), data).equals(select_test_images(test, data))
