"""``dlflow.io.ChunkedParquetDataset``: a parquet file written chunk by chunk from an iterator, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from dlflow.io import ChunkedParquetDataset
from dlflow.io.inference_inputs import InputRefused


def chunk(start: int, count: int) -> pd.DataFrame:
    return pd.DataFrame({"row": range(start, start + count), "label": [f"c{i % 3}" for i in range(count)], "p": 0.5})


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


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
