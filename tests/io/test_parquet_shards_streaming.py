"""ParquetShardsDataset saving streams: chunks written as they come, keyed parts reused when unchanged,
and either way all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from kedro.io import DatasetError

from dlflow.io import ParquetShardsDataset
from dlflow.sources.shard_parts import ShardPart


def _frame(start: int, n: int) -> pd.DataFrame:
    pixels = pd.Series([bytes([i % 256]) * 64 for i in range(start, start + n)], dtype=object)
    return pd.DataFrame({"label": np.arange(start, start + n, dtype=np.uint16), "pixels": pixels})


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "_parts.json").read_text())


def test_chunks_are_written_as_they_come_into_parts_of_about_part_bytes(tmp_path):
    seen = []

    def chunks():
        for k in range(10):
            seen.append(k)
            yield _frame(k * 20, 20)

    dataset = ParquetShardsDataset(filepath=str(tmp_path / "t"), part_bytes=3000)
    dataset.save(chunks())
    pd.testing.assert_frame_equal(dataset.load(), _frame(0, 200))
    manifest = _manifest(tmp_path / "t")
    assert manifest["rows"] == 200 and 3 <= len(manifest["parts"]) <= 5  # ~1.6 KB a chunk: two chunks a part
    lazy = ParquetShardsDataset(filepath=str(tmp_path / "t"), lazy=True).load()
    assert len(lazy) == 200 and lazy.read(["label"])["label"].tolist() == list(range(200))
    # Arrow tables are chunks too; empty chunks only give an empty table its columns
    dataset.save(iter([pa.Table.from_pandas(_frame(0, 0), preserve_index=False), _frame(5, 3)]))
    assert dataset.load()["label"].tolist() == [5, 6, 7]
    dataset.save(iter([_frame(0, 0)]))
    back = dataset.load()
    assert len(back) == 0 and list(back.columns) == ["label", "pixels"] and back["label"].dtype == np.uint16


def test_a_failing_chunk_or_part_leaves_the_previous_table_and_closes_the_generator(tmp_path):
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "t"), part_bytes=1000)
    dataset.save(_frame(0, 30))
    closed = []

    def broken():
        try:
            yield _frame(0, 50)
            yield _frame(50, 50)
            raise OSError("disk gone")
        finally:
            closed.append(True)

    with pytest.raises(DatasetError, match="disk gone"):  # Kedro wraps what a save raises
        dataset.save(broken())
    assert closed == [True] and len(dataset.load()) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no staging folder left behind
    with pytest.raises(DatasetError, match="columns"):
        dataset.save(iter([_frame(0, 3), pd.DataFrame({"other": [1.5]})]))
    with pytest.raises(DatasetError, match="gave no chunk"):
        dataset.save(iter([]))

    def failing_part():
        raise ValueError("cannot decode")

    with pytest.raises(DatasetError, match="cannot decode"):
        dataset.save([ShardPart("a", "1", lambda: _frame(0, 4)), ShardPart("b", "1", failing_part)])
    assert len(dataset.load()) == 30 and sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_keyed_parts_whose_key_and_fingerprint_are_stored_are_reused_without_being_made(tmp_path):
    made = []

    def part(key: str, fingerprint: str, start: int) -> ShardPart:
        def rows():
            made.append(key)
            return iter([_frame(start, 3), _frame(start + 3, 2)])  # one part file, two row groups

        return ShardPart(key, fingerprint, rows)

    dataset = ParquetShardsDataset(filepath=str(tmp_path / "t"))
    dataset.save([part("a", "1", 0), part("b", "1", 100), part("c", "1", 200)])
    assert made == ["a", "b", "c"] and len(dataset.load()) == 15
    first = _manifest(tmp_path / "t")
    assert first["keys"] == [["a", "1"], ["b", "1"], ["c", "1"]] and first["reused"] == [] and first["rows"] == 15

    made.clear()  # b changed, c is gone, d is new, a is unchanged: only b and d are made
    dataset.save([part("a", "1", 0), part("b", "2", 300), part("d", "1", 400)])
    manifest = _manifest(tmp_path / "t")
    assert made == ["b", "d"] and manifest["reused"] == ["a"] and manifest["rows"] == 15
    assert dataset.load()["label"].tolist() == [*range(0, 5), *range(300, 305), *range(400, 405)]
    with pytest.raises(DatasetError, match="two parts have the key 'a'"):
        dataset.save([part("a", "1", 0), part("a", "2", 0)])
    assert ParquetShardsDataset(filepath=str(tmp_path / "t"), lazy=True).load().rows == (5, 5, 5)
