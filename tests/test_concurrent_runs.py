"""Several ``kedro run``s at once in one project, on the embedded SQLite store: nothing is lost."""

from __future__ import annotations

import os
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from dlflow.model_registry.store import alias_history
from tests.conftest import SMALL_CONCURRENT_CNN, kedro_run_command
from tests.mlflow_queries import expected_aliases

pytestmark = pytest.mark.e2e
RUNS = 4


def test_four_runs_at_once_on_the_embedded_store_all_complete(kedro_project, data_mirror):
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    model = "dlflow-cnn-sqlite-concurrent"
    processes = [
        subprocess.Popen(
            kedro_run_command(
                "cnn", "--params", f"{SMALL_CONCURRENT_CNN},cnn.registration.model_name={model},cnn.training.seed={seed}"
            ),
            cwd=kedro_project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for seed in range(RUNS)
    ]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("dlflow/cnn").experiment_id])
    assert len(runs) == RUNS
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
        assert "test_accuracy" in run.data.metrics
        assert {"evaluation", "manifest.json", "registration"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    versions = client.search_model_versions(f"name = '{model}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, RUNS + 1))
    aliases = {alias: str(version) for alias, version in client.get_registered_model(model).aliases.items()}
    assert aliases == expected_aliases(client, model)  # what the rules give, in version order
    final = {}
    for move in alias_history(client, model):
        final[move.alias] = move.to_version
    assert final == aliases
