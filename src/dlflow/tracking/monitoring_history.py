"""One long-lived MLflow run per registered model, one step per monitored batch: drift and live quality over time.

Saving a step (``judge_<family>_batch``'s ``<family>_monitoring_step``) finds the
run tagged ``monitoring.model=<model name>`` in the experiment the step names
(``monitoring.history_experiment``, default ``dlflow/monitor``), creating both on
first use, logs the batch's metrics at the next step (the run's ``drift_score``
history so far decides it), the model version that scored it, and replaces the
run's ``drift_history.png``: the drift score of every batch against the alert
threshold, alerts marked, and live accuracy where labels came back. The
inference run gets the tag ``monitoring.history_run``. So the MLflow UI charts
a model's drift over weeks in one place, whatever the number of inference runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

MODEL_TAG = "monitoring.model"
PLOT_ARTIFACT = "drift_history.png"


class MonitoringHistoryDataset(AbstractDataset[dict, None]):
    """Save-only: append one batch's step to its model's monitoring run."""

    def __init__(self, *, metadata: dict[str, Any] | None = None) -> None:
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        from dlflow.monitoring.report import plot_drift_history

        client = MlflowClient()
        name = data["model"]["model_name"]
        run_id = _monitoring_run(client, data["experiment"], name)
        step = len(client.get_metric_history(run_id, "drift_score"))
        now = int(time.time() * 1000)
        metrics = data["metrics"] | {"model_version": float(data["model"]["model_version"])}
        client.log_batch(run_id, metrics=[Metric(key, float(value), now, step) for key, value in metrics.items()])
        client.set_tag(run_id, "monitoring.last_version", str(data["model"]["model_version"]))
        history = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                   for key in ("drift_score", "drift_threshold", "drift_detected", "drift_judged", "live_accuracy")}  # fmt: skip
        figure = plot_drift_history(history, name)
        client.log_figure(run_id, figure, PLOT_ARTIFACT)
        client.set_terminated(run_id)
        if mlflow.active_run() is not None:
            mlflow.set_tags({"monitoring.history_run": run_id, "monitoring.history_step": str(step)})
        logger.info("Monitoring history: %s step %d in run %s (experiment %s)", name, step, run_id, data["experiment"])

    def load(self) -> None:
        raise DatasetError("the monitoring history is read in the MLflow UI (experiment monitoring.history_experiment)")

    def _describe(self) -> dict[str, Any]:
        return {}


def _monitoring_run(client: Any, experiment_name: str, model_name: str) -> str:
    """The id of ``model_name``'s monitoring run in ``experiment_name``, both created on first use."""
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    escaped = model_name.replace("'", "\\'")
    found = client.search_runs([experiment_id], filter_string=f"tags.`{MODEL_TAG}` = '{escaped}'", max_results=1,
                               order_by=["attributes.start_time ASC"])  # fmt: skip
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"monitor {model_name}", tags={MODEL_TAG: model_name})
    return run.info.run_id
