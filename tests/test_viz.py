"""The pipeline picture: ``kedro viz build`` renders every pipeline, MLflow datasets included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dlflow.pipeline_registry import register_pipelines
from tests.conftest import copy_project

pytestmark = pytest.mark.e2e


def test_kedro_viz_build_makes_a_static_site_of_every_pipeline(tmp_path, data_mirror):
    project = copy_project(tmp_path / "project")
    env = os.environ | {"KEDRO_DISABLE_TELEMETRY": "true", "DLFLOW_DATA_MIRROR": str(data_mirror)}
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (project / "build" / "index.html").is_file()

    graph = json.loads((project / "build" / "api" / "main").read_text())
    assert {p["id"] for p in graph["pipelines"]} == set(register_pipelines())
    types = {n.get("dataset_type") or "" for n in graph["nodes"] if n.get("type") == "data"}
    assert any("MlflowArtifactDataset" in t or t.startswith("artifacts.mlflow_artifact_dataset") for t in types)
    assert any("MlflowMetricsHistoryDataset" in t for t in types)
    names = {n["name"] for n in graph["nodes"]}
    assert {"train_cnn", "register_model"} <= {name.rsplit(".", 1)[-1] for name in names}
