"""What ``kedro run`` skips on its way to the first node (``dlflow.tracking.startup``), checked against the
installed Kedro, kedro-mlflow and MLflow: the catalog is not built whole, MLflow's run start imports no
IPython, and kedro-mlflow still renames its metric datasets. The run's start-up figure itself is tested
in ``tests/tracking/test_hooks.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

from dlflow.sources.idx import read_idx, write_idx
from dlflow.tracking.startup import LeanMlflowHook, may_be_metric_dataset
from tests.conftest import copy_project, new_mlflow_store

#: Run in a fresh interpreter inside a project copy: the start-up path of ``kedro run --pipeline inference_cnn``
#: up to its first node, which stops there (no registered model in the copy's empty store).
START_UP = r"""
import importlib.util, json, sys, threading
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.framework.hooks import MlflowHook
from dlflow.tracking.startup import unimported_ipython_absent

project, images = Path(sys.argv[1]), sys.argv[2]
report = {}
with unimported_ipython_absent():
    try:
        import IPython
        report["guarded_import"] = "imported"
    except ModuleNotFoundError:
        report["guarded_import"] = "refused"
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(importlib.util.find_spec("IPython") is not None))
    thread.start(); thread.join()
    report["other_thread_finds_it"] = elsewhere == [True]
report["found_after"] = importlib.util.find_spec("IPython") is not None
bootstrap_project(project)
with KedroSession.create(project_path=project, runtime_params={"images_path": images}) as session:
    session.load_context().catalog  # built as a run builds it, with the after_catalog_created hooks
    report["after_catalog"] = sorted(m for m in ("matplotlib", "IPython") if m in sys.modules)
    report["mlflow_hooks"] = [type(p).__name__ for p in session._hook_manager.get_plugins() if isinstance(p, MlflowHook)]
    try:
        session.run(pipeline_names=["inference_cnn"])
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
report["after_run"] = sorted(m for m in ("IPython",) if m in sys.modules)
import mlflow
report["runs"] = [(r.info.status, r.data.tags.get("mlflow.source.name", ""), r.data.tags.get("mlflow.user", ""))
                  for r in mlflow.search_runs(search_all_experiments=True, output_format="list")]
import IPython
with unimported_ipython_absent():
    import IPython.core  # already imported: untouched
report["imported_stays_importable"] = True
print("REPORT " + json.dumps(report))
"""


def test_start_up_builds_no_whole_catalog_and_imports_no_ipython(tmp_path: Path, empty_mlflow_store: Path, data_mirror: Path):
    project = copy_project(tmp_path / "project")
    uri = new_mlflow_store(empty_mlflow_store, tmp_path / "mlruns" / "mlflow.db", project / "mlruns" / "0")
    images = tmp_path / "images.idx.gz"
    write_idx(read_idx(data_mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")[:5], images, gzip=True)
    env = {"MLFLOW_TRACKING_URI": uri, "DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [sys.executable, "-c", START_UP, str(project), str(images)],
        cwd=project, env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))

    assert report["guarded_import"] == "refused" and report["other_thread_finds_it"] and report["found_after"]
    assert report["mlflow_hooks"] == ["LeanMlflowHook"]  # in place of kedro-mlflow's entry point, not beside it
    assert report["after_catalog"] == []  # the catalog's figure datasets (matplotlib) were not built
    assert "dlflow-cnn-fashion_mnist" in report["error"]  # it stopped at the first node: no registered model
    assert report["after_run"] == []  # MLflow started the run without importing IPython
    ((status, source, user),) = report["runs"]
    assert status == "FAILED" and source and user  # the run was started, tagged by MLflow's context, and ended
    assert report["imported_stays_importable"]


def test_kedro_mlflow_still_names_its_metric_datasets_and_nothing_else_is_built():
    catalog = DataCatalog.from_config(
        {
            "drift_metrics": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"},
            "named_metrics": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset", "prefix": "kept"},
            "figures": {"type": "a_module_that_does_not_exist.FigureDataset"},  # built, it would fail
        }
    )
    LeanMlflowHook().after_catalog_created(
        catalog=catalog, conf_catalog={}, conf_creds={}, parameters={}, save_version="", load_versions={}
    )
    assert isinstance(catalog["drift_metrics"], MlflowMetricsHistoryDataset)
    assert catalog["drift_metrics"]._prefix == "drift_metrics"  # kedro-mlflow's own renaming, as before
    assert catalog["named_metrics"]._prefix == "kept"
    assert "figures" in catalog  # still declared, never built


@pytest.mark.parametrize(
    ("config", "built"),
    [
        ({"type": "kedro_mlflow.io.metrics.MlflowMetricDataset"}, True),
        ({"type": "kedro_mlflow.io.metrics.MlflowMetricHistoryDataset"}, True),
        ({"type": "MlflowMetricsHistoryDataset"}, True),
        ({"type": "my_project.io.TrainingMetricsDataset"}, True),  # a subclass named after them
        ({"type": "dlflow.io.atomic.MatplotlibDataset"}, False),
        ({"type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset", "dataset": {"type": "json.JSONDataset"}}, False),
        (None, True),  # added in code: built already
    ],
)
def test_which_entries_are_built(config, built):
    assert may_be_metric_dataset(config) is built
