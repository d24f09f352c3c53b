"""Atomic saves: a failed or killed save never leaves a half-written file where the data set lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro_mlflow.io.artifacts import MlflowArtifactDataset
from matplotlib.figure import Figure

from dlflow.io.atomic import JSONDataset, MatplotlibDataset, ParquetDataset, PickleDataset


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_each_dataset_saves_and_loads_and_leaves_no_temporary_file(tmp_path):
    table = pd.DataFrame({"label": [1, 2], "pixels": [[0, 1], [2, 3]]})
    ParquetDataset(filepath=str(tmp_path / "t.parquet")).save(table)
    pd.testing.assert_frame_equal(ParquetDataset(filepath=str(tmp_path / "t.parquet")).load(), table)
    JSONDataset(filepath=str(tmp_path / "sub" / "m.json")).save({"a": 1})
    assert JSONDataset(filepath=str(tmp_path / "sub" / "m.json")).load() == {"a": 1}
    PickleDataset(filepath=str(tmp_path / "m.pkl")).save([1, 2])
    assert PickleDataset(filepath=str(tmp_path / "m.pkl")).load() == [1, 2]
    figure = Figure()
    figure.add_subplot().plot([1, 2])
    MatplotlibDataset(filepath=str(tmp_path / "p.png")).save(figure)
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    MatplotlibDataset(filepath=str(tmp_path / "plots")).save({"a.png": figure, "b.png": figure})
    MatplotlibDataset(filepath=str(tmp_path / "plots")).save({"c.png": figure})  # a folder is replaced whole
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["c.png"]
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_a_save_that_fails_half_way_keeps_the_previous_file(tmp_path):
    path = tmp_path / "table.parquet"
    dataset = ParquetDataset(filepath=str(path))
    dataset.save(pd.DataFrame({"x": [1, 2, 3]}))
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error for an unconvertible column
        dataset.save(pd.DataFrame({"x": [1, object(), 3]}))
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_inside_mlflow_artifact_dataset_the_artifact_keeps_its_name(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    dataset = MlflowArtifactDataset(
        dataset={"type": "dlflow.io.atomic.JSONDataset", "filepath": str(tmp_path / "metrics.json")},
        artifact_path="evaluation",
    )
    with mlflow.start_run() as run:
        dataset.save({"accuracy": 0.9})
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")]
    assert names == ["evaluation/metrics.json"]
    assert _leftovers(tmp_path) == []


def test_a_killed_writer_leaves_an_old_or_a_new_file_never_a_torn_one(tmp_path):
    path = tmp_path / "big.parquet"
    writer = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from dlflow.io.atomic import ParquetDataset
        dataset = ParquetDataset(filepath={str(path)!r})
        for i in range(10_000):
            dataset.save(pd.DataFrame({{"v": np.full(2_000_000, i % 2, dtype=np.int64)}}))
        """
    )
    ParquetDataset(filepath=str(path)).save(pd.DataFrame({"v": np.full(2_000_000, 7, dtype=np.int64)}))  # the old file
    for delay in (0.9, 1.3, 1.7):
        process = subprocess.Popen([sys.executable, "-c", writer])
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        values = ParquetDataset(filepath=str(path)).load()["v"].to_numpy()  # always there: the old file or a new one
        assert len(values) == 2_000_000 and np.unique(values).size == 1 and values[0] in (0, 1, 7)
