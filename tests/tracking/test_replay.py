"""A run's manifest, and replaying the run from it with the same result."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

from dlflow.tracking.replay import replay

pytestmark = pytest.mark.e2e


#: A smaller subset than --env test alone, trained with one torch thread: replay must give the same metrics
#: whatever the size, and the manifest records these values like any other parameter.
SMALL = {"cnn": {"data": {"max_train_samples": 500, "max_test_samples": 100}, "training": {"num_threads": 1}}}


def test_manifest_is_logged_and_replay_gives_the_same_metrics(kedro_project: Path) -> None:
    with KedroSession.create(project_path=kedro_project, env="test", runtime_params=SMALL) as session:
        session.run(pipeline_names=["cnn"])
    run = mlflow.last_active_run()

    manifest = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/manifest.json")
    assert manifest["pipeline_names"] == ["cnn"] and manifest["env"] == "test"
    assert manifest["parameters"]["cnn"]["training"]["epochs"] == 2
    assert manifest["parameters"]["cnn"]["data"]["max_train_samples"] == 500  # the runtime parameters too
    assert manifest["seeds"]["cnn.training.seed"] == 42
    assert manifest["environment"]["packages"]["torch"].startswith("2.")
    assert manifest["environment"]["deterministic_algorithms"] is True
    assert {"image_train_intermediate", "cnn_train_split", "cnn_test_split"} <= set(manifest["inputs"])
    assert set(manifest["git"]) >= {"patch"}

    assert replay(run.info.run_id, kedro_project, check_only=True).environment == []

    report = replay(run.info.run_id, kedro_project)
    assert report.replay_run_id not in (None, run.info.run_id)
    assert report.inputs == [] and report.environment == []
    assert report.metrics == [], report.metrics
    replayed = MlflowClient().get_run(report.replay_run_id)
    assert replayed.data.tags["dlflow.replay_of"] == run.info.run_id
    assert len(MlflowClient().get_metric_history(replayed.info.run_id, "train_loss")) == 2  # trained again
