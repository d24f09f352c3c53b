"""The ingestion nodes on real folders of images, and ``kedro run --pipeline ingestion`` on a folder,
checking what lands in MLflow: the ingestion report with the bad files, the leakage list, the summary,
the plot and the metrics; a bad folder stops the run and leaves no table behind."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dlflow.io import ImageSourceDataset, ParquetShardsDataset
from dlflow.pipelines.ingestion.nodes import find_image_leakage, image_data_metrics, ingest_images, summarise_image_data
from dlflow.sources.image_folder import BadImageFilesError
from dlflow.sources.image_table import table_images
from tests.conftest import run_pipeline
from tests.mlflow_queries import pipeline_filter
from tests.sources.image_folders import bad_files, class_folders

DEFAULTS = {"image_size": None, "channels": None, "resize": "stretch", "test_fraction": 0.2, "split_seed": 42,
            "on_bad_file": "fail", "workers": 1}  # fmt: skip


def leaky_folder(root: Path) -> Path:
    """train/ and test/ folders of three unbalanced classes; one training image copied into test/."""
    class_folders(root / "train", {"ant": 12, "bee": 6, "cow": 3})
    class_folders(root / "test", {"ant": 4, "bee": 2, "cow": 1}, seed=500)
    shutil.copy(root / "train" / "bee" / "001.png", root / "test" / "bee" / "same.png")
    return root


def _saved(tmp_path: Path, tables) -> list[pd.DataFrame]:
    """The tables as the catalog writes them (chunks, a decoded shard at a time) and reads them back."""
    back = []
    for split, table in zip(("train", "val", "test"), tables):
        dataset = ParquetShardsDataset(filepath=str(tmp_path / "tables" / split))
        dataset.save(table)
        back.append(dataset.load())
    return back


def test_nodes_ingest_check_and_summarise_a_folder(tmp_path, caplog):
    root = leaky_folder(tmp_path / "Insects")
    reader = ImageSourceDataset(
        source="folder", images_dir=str(root), raw_dir=str(tmp_path / "raw"), dataset_name="insects"
    ).load()
    *tables, class_names, report, index = ingest_images(reader, DEFAULTS)
    train, val, test = _saved(tmp_path, tables)
    assert class_names == ["ant", "bee", "cow"] and (len(train), len(val), len(test)) == (21, 0, 8)
    assert report["dataset_name"] == "insects" and report["skipped"] == 0 and report["decoded_now"]["files"] == 29
    assert sorted(index.loc[index["split"] == "test", "path"]) == sorted(test["path"])  # the index lists the rows
    with caplog.at_level(logging.WARNING):
        leakage = find_image_leakage(index)
    assert leakage["leaked_images"] == 1 and "Leakage: 1 image(s)" in caplog.text and "train and test" in caplog.text
    summary, figure = summarise_image_data(index, class_names, report, leakage)
    assert summary["class_counts"] == {"train": {"ant": 12, "bee": 6, "cow": 3}, "test": {"ant": 4, "bee": 3, "cow": 1}}
    assert summary["imbalance_ratio"] == {"train": 4.0, "test": 4.0, "all": 16 / 4}
    assert (summary["image_size"], summary["channels"], summary["source"]) == ([16, 20], 3, "folder")
    assert table_images(train).shape == (21, 16, 20, 3)
    assert summary["leaked_images"] == 1 and summary["num_val"] == 0
    assert [p.get_height() for p in figure.axes[0].patches] == [12, 6, 3, 4, 3, 1]
    metrics = image_data_metrics(summary)
    assert metrics["data_leaked_images"] == {"value": 1.0, "step": 0}
    assert metrics["data_imbalance_ratio"]["value"] == 4.0 and metrics["data_skipped_files"]["value"] == 0.0
    with pytest.raises(ValueError, match="images.resize"):
        ingest_images(reader, DEFAULTS | {"resize": "squash"})


def test_nodes_refuse_bad_files_or_skip_them(tmp_path):
    root = class_folders(tmp_path / "shots", {"a": 5, "b": 5})
    bad_files(root / "a")
    reader = ImageSourceDataset(source="folder", images_dir=str(root), raw_dir=str(tmp_path / "raw")).load()
    with pytest.raises(BadImageFilesError, match="5 file"):
        ingest_images(reader, DEFAULTS)
    *tables, _, report, _ = ingest_images(reader, DEFAULTS | {"on_bad_file": "skip", "image_size": "8x12"})
    train, _, test = _saved(tmp_path, tables)
    assert report["skipped"] == 5 and len(train) + len(test) == 10
    assert table_images(train).shape[1:] == (8, 12, 3)


@pytest.mark.e2e
def test_kedro_run_ingests_a_folder_into_mlflow(kedro_project: Path, tmp_path: Path):
    root = leaky_folder(tmp_path / "Field Insects")
    bad_files(root / "train" / "ant")
    folder = {"image_source": "folder", "images_dir": str(root)}

    # bad files stop the run, naming each; nothing is written
    with pytest.raises(BadImageFilesError) as caught:
        run_pipeline("ingestion", **folder)
    assert "train/ant/truncated.png: corrupt or truncated" in str(caught.value)
    assert not Path("data/02_intermediate/field-insects").exists()  # (the decoded shards are kept, in 01_raw)

    # skipped instead: counted, listed, and the run's data is in MLflow
    run_pipeline("ingestion", **folder, **{"images.on_bad_file": "skip"})
    client = MlflowClient()
    experiment = client.get_experiment_by_name("dlflow/ingestion")
    (run,) = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")
    assert run.data.params["images.on_bad_file"] == "skip"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "data")}
    assert artifacts == {
        "data/ingestion_report.json",
        "data/leakage.json",
        "data/data_summary.json",
        "data/class_distribution.png",
    }
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "data/ingestion_report.json", str(tmp_path))).read_text())
    assert report["images_dir"] == str(root.resolve()) and report["skipped"] == 5
    assert {bad["path"] for bad in report["bad_files"]} >= {"train/ant/empty.jpg", "train/ant/notes.jpg"}
    leakage = json.loads(Path(client.download_artifacts(run.info.run_id, "data/leakage.json", str(tmp_path))).read_text())
    assert leakage["leaked"] == [
        {"sha256": leakage["leaked"][0]["sha256"], "files": {"train": ["train/bee/001.png"], "test": ["test/bee/same.png"]}}
    ]
    assert run.data.metrics["data_skipped_files"] == 5 and run.data.metrics["data_leaked_images"] == 1
    assert run.data.metrics["data_imbalance_ratio"] == 4.0

    # the tables: one folder of parquet parts per split, under the data set's name
    train = pd.read_parquet("data/02_intermediate/field-insects/train")
    assert len(train) == 21 and table_images(train).shape == (21, 16, 20, 3)
    assert sorted(p.name for p in Path("data/02_intermediate/field-insects/train").iterdir()) == [
        "_parts.json",
        "part-00000.parquet",
    ]
    assert json.loads(Path("data/02_intermediate/field-insects/class_names.json").read_text()) == ["ant", "bee", "cow"]

    # the same folder again: the node cache reuses the work (the folder's files are fingerprinted), metrics logged anew
    run_pipeline("ingestion", **folder, **{"images.on_bad_file": "skip"})
    latest = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"]
    )[0]
    reused = {key.removeprefix("dlflow.reused.") for key in latest.data.tags if key.startswith("dlflow.reused.")}
    assert reused == {"ingest_images", "find_image_leakage", "summarise_image_data"}
    assert latest.data.metrics["data_leaked_images"] == 1

    # another folder of the same name elsewhere is named apart with dataset_name, and its files do not mix
    other = class_folders(tmp_path / "second" / "Field Insects", {"x": 6, "y": 6}, grey=True)
    run_pipeline("ingestion", image_source="folder", images_dir=str(other), dataset_name="insects-2")
    assert json.loads(Path("data/02_intermediate/insects-2/class_names.json").read_text()) == ["x", "y"]
    assert np.asarray(table_images(pd.read_parquet("data/02_intermediate/insects-2/test"))).shape[-1] == 1
    assert len(pd.read_parquet("data/02_intermediate/field-insects/train")) == 21
    runs = client.search_runs([experiment.experiment_id], pipeline_filter("ingestion"))
    assert len(runs) == 4


def test_image_parameters_are_checked_before_any_work():
    from dlflow.config import parse, validate_parameters

    assert parse("images", {"image_size": "64x48"}).image_size == (64, 48)
    assert parse("images", {"image_size": 32}).image_size == (32, 32)
    assert parse("images", {"image_size": [20, 10]}).image_size == (20, 10)
    for bad, message in (
        ({"image_size": "big"}, "images.image_size: .*height x width, e.g. 64x48"),
        ({"channels": 2}, "images.channels: Input should be 1 or 3"),
        ({"test_fraction": 1.0}, "images.test_fraction"),
        ({"on_bad_file": "ignore"}, "images.on_bad_file: Input should be 'fail' or 'skip'"),
        ({"imagesdir": "/x"}, "images.imagesdir: Extra inputs are not permitted"),
    ):
        with pytest.raises(ValueError, match=message):
            parse("images", bad)
    validate_parameters({"image_source": "folder", "images_dir": "/data/pets"})
    with pytest.raises(ValueError, match="image_source=folder reads the folder images_dir: add --params images_dir="):
        validate_parameters({"image_source": "folder", "images_dir": None})
    with pytest.raises(ValueError, match="images_dir .* is read only with image_source=folder"):
        validate_parameters({"image_source": "mnist", "images_dir": "/data/pets"})
