"""ParquetShardsDataset (a table as a folder of parquet parts, saved all or nothing) and ImageSourceDataset
(the raw images of any source: a registered IDX data set from the mirror, or a folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from dlflow.io import ImageSourceDataset, ParquetShardsDataset
from dlflow.sources.idx import read_idx
from dlflow.sources.image_table import image_table, table_images
from tests.sources.image_folders import class_folders


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return image_table(
        rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, n), paths=[f"{i}.png" for i in range(n)]
    )


def test_a_table_is_saved_as_parts_and_read_back_as_one(tmp_path):
    table = _table(100)
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "train"), part_bytes=4000)
    assert not dataset.exists()
    dataset.save(table)
    files = sorted(p.name for p in (tmp_path / "train").iterdir())
    parts = [name for name in files if name != "_parts.json"]
    assert len(parts) > 3 and parts[0] == "part-00000.parquet" and "_parts.json" in files  # the manifest names them
    assert [p.name for p in dataset.parts()] == parts
    back = dataset.load()
    pd.testing.assert_frame_equal(back, table)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "train"), table)  # pandas reads the folder as one table
    dataset.save(_table(3))  # replaces every part
    assert [p.name for p in (tmp_path / "train").glob("part-*")] == ["part-00000.parquet"] and len(dataset.load()) == 3


def test_an_empty_table_keeps_its_columns(tmp_path):
    dataset = ParquetShardsDataset(filepath=str(tmp_path / "val"))
    dataset.save(_table(5).iloc[:0])
    back = dataset.load()
    assert len(back) == 0 and list(back.columns) == list(_table(1).columns) and back["label"].dtype == np.uint16


def test_a_failed_save_leaves_the_previous_table_and_no_debris(tmp_path):
    good = ParquetShardsDataset(filepath=str(tmp_path / "train"), part_bytes=4000)
    good.save(_table(50))
    broken = ParquetShardsDataset(filepath=str(tmp_path / "train"), part_bytes=4000, save_args={"compression": "no-such-codec"})
    with pytest.raises(Exception, match="(?i)compression|codec"):
        broken.save(_table(80))
    assert len(good.load()) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no hidden temporary folder left
    with pytest.raises(DatasetError, match="No table at"):
        ParquetShardsDataset(filepath=str(tmp_path / "missing")).load()


def test_a_folder_source_reads_its_folder(tmp_path):
    root = class_folders(tmp_path / "My Photos", {"a": 5, "b": 5})
    dataset = ImageSourceDataset(source="folder", images_dir=str(root), dataset_name="my-photos")
    assert dataset.exists() and dataset._describe()["filepath"] == str(root)
    dataset = ImageSourceDataset(source="folder", images_dir=str(root), raw_dir=str(tmp_path / "raw"), dataset_name="my-photos")
    splits = dataset.load().read(workers=1)
    assert splits.report["source"] == "folder" and splits.report["dataset_name"] == "my-photos"
    assert splits.report["decoded_dir"] == str(tmp_path / "raw" / "decoded" / "my-photos")
    assert len(splits.train) + len(splits.test) == 10 and len(splits.train.read()) == len(splits.train)
    assert sorted(splits.index["path"]) == sorted([*splits.train.read()["path"], *splits.test.read()["path"]])
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save({})
    with pytest.raises(DatasetError, match="images_dir=/path/to/images"):
        ImageSourceDataset(source="folder").load()
    with pytest.raises(DatasetError, match="is not a folder"):
        ImageSourceDataset(source="folder", images_dir=str(tmp_path / "nowhere")).load()
    with pytest.raises(ValueError, match="known sources: fashion_mnist, mnist"):
        ImageSourceDataset(source="cifar")


def test_a_registered_source_reads_its_idx_files_from_the_mirror(tmp_path, data_mirror: Path, monkeypatch):
    monkeypatch.setenv("DLFLOW_DATA_MIRROR", str(data_mirror))
    raw = tmp_path / "01_raw" / "fashion_mnist"
    reader = ImageSourceDataset(source="fashion_mnist", raw_dir=str(raw), dataset_name="fashion_mnist").load()
    splits = reader.read()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60000, 0, 10000)
    assert splits.class_names[:2] == ["T-shirt/top", "Trouser"] and splits.report["channels"] == 1
    test = ParquetShardsDataset(filepath=str(tmp_path / "test"))
    test.save(splits.test)  # keyed parts of 10,000 images read in chunks: the rows of the whole files, in order
    expected = image_table(read_idx(raw / "t10k-images-idx3-ubyte.gz"), read_idx(raw / "t10k-labels-idx1-ubyte.gz"))
    pd.testing.assert_frame_equal(test.load(), expected)
    assert table_images(test.load().head(3)).shape == (3, 28, 28, 1)
    train = ParquetShardsDataset(filepath=str(tmp_path / "train"))
    train.save(splits.train)
    manifest = json.loads((tmp_path / "train" / "_parts.json").read_text())
    assert manifest["rows"] == 60000 and len(manifest["parts"]) == 6 and manifest["reused"] == []
    train.save(reader.read().train)  # the same files again: every part reused, nothing read
    assert json.loads((tmp_path / "train" / "_parts.json").read_text())["reused"] == [key for key, _ in manifest["keys"]]
    assert splits.index["split"].value_counts().to_dict() == {"train": 60000, "test": 10000}
    assert (splits.index.loc[splits.index["split"] == "test", "label"].to_numpy() == expected["label"].to_numpy()).all()
    assert {p.name for p in raw.iterdir()} == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}  # fmt: skip
    with pytest.raises(ValueError, match="apply to image_source=folder; fashion_mnist's images are 28x28 grey"):
        reader.read(image_size=(32, 32))
