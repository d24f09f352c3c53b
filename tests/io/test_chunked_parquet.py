"""``dlflow.io.ChunkedParquetDataset``: a parquet file written chunk by chunk from an iterator, all or nothing, the
iterator consumed on a background thread (``Ahead``) while the chunk before is written."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from dlflow.io import ChunkedParquetDataset
from dlflow.io.chunked_parquet import Ahead
from dlflow.io.inference_inputs import InputRefused


def chunk(start: int, count: int) -> pd.DataFrame:
    return pd.DataFrame({"row": range(start, start + count), "label": [f"c{i % 3}" for i in range(count)], "p": 0.5})


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def background_threads() -> list[str]:
    """The threads of ``Ahead`` (all named ``dlflow-...``) alive now."""
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("dlflow-")]


def test_chunks_are_written_one_by_one_as_row_groups(tmp_path: Path) -> None:
    dataset = ChunkedParquetDataset(filepath=str(tmp_path / "out" / "predictions.parquet"), save_args={"compression": "zstd"})
    produced = []

    def chunks():
        for start in (0, 5, 10):
            produced.append(start)
            yield chunk(start, 5 if start < 10 else 2)

    dataset.save(chunks())
    assert produced == [0, 5, 10] and dataset.exists()
    table = dataset.load()
    assert table["row"].tolist() == list(range(12)) and list(table.columns) == ["row", "label", "p"]
    assert pq.ParquetFile(tmp_path / "out" / "predictions.parquet").metadata.num_row_groups == 3
    assert leftovers(tmp_path / "out") == ["predictions.parquet"]

    dataset.save(chunk(0, 3))  # a DataFrame is one chunk
    assert dataset.load()["row"].tolist() == [0, 1, 2]


def test_a_failure_mid_way_leaves_the_previous_file_or_none(tmp_path: Path) -> None:
    target = tmp_path / "predictions.parquet"
    dataset = ChunkedParquetDataset(filepath=str(target))

    def refused_in_the_third_chunk():
        yield chunk(0, 5)
        yield chunk(5, 5)
        raise InputRefused("images.idx is truncated")

    with pytest.raises(InputRefused, match="images.idx is truncated") as error:  # passed on as it is, not wrapped
        dataset.save(refused_in_the_third_chunk())
    assert type(error.value) is InputRefused
    assert leftovers(tmp_path) == []  # nothing: not the two chunks before, not the temporary file

    dataset.save(chunk(0, 4))
    before = target.read_bytes()
    with pytest.raises(DatasetError, match="images.idx is truncated"):
        dataset.save(refused_in_the_third_chunk())
    assert target.read_bytes() == before and leftovers(tmp_path) == ["predictions.parquet"]

    def other_errors():
        yield chunk(0, 2)
        raise RuntimeError("disk on fire")

    with pytest.raises(DatasetError, match="disk on fire"):  # Kedro's wrapper names the dataset
        dataset.save(other_errors())
    assert target.read_bytes() == before


def test_chunks_must_agree_and_exist(tmp_path: Path) -> None:
    target = tmp_path / "predictions.parquet"
    dataset = ChunkedParquetDataset(filepath=str(target))
    with pytest.raises(DatasetError, match=r"chunk 1 has the columns \['row'\], the first chunk \['row', 'label', 'p'\]"):
        dataset.save(iter([chunk(0, 2), chunk(2, 2)[["row"]]]))
    with pytest.raises(DatasetError, match="chunk 1 does not fit the first chunk's column types"):
        dataset.save(iter([chunk(0, 2), chunk(2, 2).assign(p="high")]))
    with pytest.raises(DatasetError, match="chunk 0 is a list, not a DataFrame"):
        dataset.save(iter([[1, 2]]))
    with pytest.raises(DatasetError, match="Nothing to save to .*predictions.parquet: the data had no chunks"):
        dataset.save(iter([]))
    assert leftovers(tmp_path) == [] and not dataset.exists()
    assert "predictions.parquet" in str(dataset)


def test_ahead_keeps_the_order_stays_bounded_and_ends_its_thread() -> None:
    produced = []

    def numbers():
        for number in range(30):
            produced.append(number)
            yield number

    with Ahead(numbers(), depth=2, name="dlflow-numbers") as items:
        assert next(items) == 0
        deadline = time.monotonic() + 10  # room for the producer to run ahead as far as it may
        while len(produced) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert len(produced) == 1 + 2 + 1  # the item taken, two waiting, one in hand (blocked), no more
        assert background_threads() == ["dlflow-numbers"]
        assert list(items) == list(range(1, 30))
        assert background_threads() == []  # the end of the items ends the thread
        assert next(items, None) is None


def test_ahead_raises_the_producers_error_in_place_and_closes_it_on_its_thread() -> None:
    def refused_after_two():
        yield 1
        yield 2
        raise InputRefused("images.idx is truncated")

    items = Ahead(refused_after_two())
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(InputRefused, match="images.idx is truncated"):
        next(items)
    assert background_threads() == []

    closed = []

    def endless():
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.append(threading.current_thread().name)

    with Ahead(endless(), name="dlflow-endless") as items:
        assert next(items) == 0
    assert closed == ["dlflow-endless"] and background_threads() == []  # stopped, closed where it ran
    with Ahead(endless(), depth=0) as items:  # no thread: the caller's, one item at a time
        assert next(items) == 0
    assert closed[-1] == threading.current_thread().name
    with pytest.raises(ValueError, match="depth must be at least 0"):
        Ahead([], depth=-1)


def test_a_failure_of_either_side_stops_both_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "predictions.parquet"
    dataset = ChunkedParquetDataset(filepath=str(target))
    closed = []

    def endless_then_other_columns():
        try:
            for start in range(0, 10**9, 5):
                yield chunk(start, 5) if start < 20 else chunk(start, 5)[["row"]]
        finally:
            closed.append(threading.current_thread().name)

    with pytest.raises(DatasetError, match=r"chunk 4 has the columns \['row'\]"):  # the writer's refusal
        dataset.save(endless_then_other_columns())
    assert closed == ["dlflow-produce"] and background_threads() == [] and leftovers(tmp_path) == []

    def slow_then_refused():
        for start in range(0, 15, 5):
            time.sleep(0.05)
            yield chunk(start, 5)
        raise InputRefused("images.idx images 15-19: corrupt")

    with pytest.raises(InputRefused, match="images.idx images 15-19: corrupt"):  # the producer's
        dataset.save(slow_then_refused())
    assert background_threads() == [] and leftovers(tmp_path) == []


def test_many_chunks_keep_their_order_with_or_without_the_thread(tmp_path: Path) -> None:
    sizes = [int(size) for size in np.random.default_rng(3).integers(1, 9, 40)]
    starts = np.cumsum([0, *sizes[:-1]])
    for ahead in (1, 0):
        dataset = ChunkedParquetDataset(filepath=str(tmp_path / f"ahead{ahead}.parquet"), ahead=ahead)
        dataset.save(chunk(int(start), size) for start, size in zip(starts, sizes))
        assert dataset.load()["row"].tolist() == list(range(sum(sizes)))
        assert pq.ParquetFile(tmp_path / f"ahead{ahead}.parquet").metadata.num_row_groups == 40
