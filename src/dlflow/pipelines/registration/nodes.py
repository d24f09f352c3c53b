"""Shared registration node: log the servable model, register a version, run the promotion gate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import dlflow
from dlflow.config import RegistrationParams
from dlflow.evaluation import flat_metrics
from dlflow.registry import apply_decision, current_champion, decide_promotion

logger = logging.getLogger(__name__)


def register_model(package: dict[str, Any], metrics: dict, params: dict[str, Any]) -> dict[str, Any]:
    """Log ``package['model']`` to the active run, register it and move an alias through the gate.

    ``package`` holds the servable torch module, an ``input_example`` (numpy)
    and the ``test_data_digest`` of the test set its metrics were computed on.
    Returns a JSON-able record of what happened.
    """
    rules = RegistrationParams.model_validate(params)
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_model needs an active MLflow run: is kedro-mlflow tracking disabled?")
    value = flat_metrics(metrics)[rules.metric]
    model, example = package["model"], package["input_example"]
    with torch.inference_mode():
        output = model(torch.as_tensor(example)).numpy()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        code_paths=[str(Path(dlflow.__file__).parent)],
        registered_model_name=rules.model_name if rules.enabled else None,
    )
    record: dict[str, Any] = {"model_uri": info.model_uri, "run_id": run.info.run_id, rules.metric: value}
    if not rules.enabled:
        return record

    client = MlflowClient()
    version = str(info.registered_model_version)
    digest = package["test_data_digest"]
    tags = {
        "run_id": run.info.run_id,
        "metric": rules.metric,
        "metric_value": f"{value:.6f}",
        "test_data_digest": digest,
        "git_commit": run.data.tags.get("git_commit", "unknown"),
    }
    for key, tag in tags.items():
        client.set_model_version_tag(rules.model_name, version, key, tag)
    decision = decide_promotion(
        current_champion(client, rules.model_name),
        metric=rules.metric,
        value=value,
        test_data_digest=digest,
        greater_is_better=rules.greater_is_better,
        min_improvement=rules.min_improvement,
    )
    apply_decision(client, rules.model_name, version, decision)
    mlflow.set_tags({"registered_model": rules.model_name, "registered_version": version, "alias": decision.alias})
    return record | {"model_name": rules.model_name, "version": version, "alias": decision.alias, "reason": decision.reason}
