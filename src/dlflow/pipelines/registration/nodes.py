"""Shared registration node: log the servable model, register a version, run the promotion gate."""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import dlflow
from dlflow.config import RegistrationParams
from dlflow.registry import apply_decision, current_champion, decide_promotion

logger = logging.getLogger(__name__)
CODE_PATHS = [str(Path(dlflow.__file__).parent)]


def _requirements() -> list[str]:
    """Pinned serving requirements from what is installed (MLflow's own inference
    of them reloads the model in a subprocess and costs seconds per model)."""
    packages = ("torch", "mlflow", "numpy", "pandas", "scikit-learn", "pyarrow")
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def _log_model(package: dict[str, Any], registered_name: str | None):
    """Log a torch module (``mlflow.pytorch``) or a ``PythonModel`` (``mlflow.pyfunc``)."""
    model, example = package["model"], package["input_example"]
    params = package.get("predict_params")
    if isinstance(model, torch.nn.Module):
        with torch.inference_mode():
            output = model(torch.as_tensor(example)).numpy()
        return mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example, output),
            input_example=example,
            code_paths=CODE_PATHS,
            pip_requirements=_requirements(),
            registered_model_name=registered_name,
        )
    output = model.predict(None, example, params)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=infer_signature(example, output, params=params),
        input_example=(example, params) if params else example,
        code_paths=CODE_PATHS,
        pip_requirements=_requirements(),
        registered_model_name=registered_name,
    )


def register_model(package: dict[str, Any], scores: dict[str, float], params: dict[str, Any]) -> dict[str, Any]:
    """Log ``package['model']`` to the active run, register it and move an alias through the gate.

    ``package`` holds the servable model (a torch module or an MLflow
    ``PythonModel``), an ``input_example`` and the ``test_data_digest`` of the
    data its ``scores`` were measured on. Returns a JSON-able record of what happened.
    """
    rules = RegistrationParams.model_validate(params)
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_model needs an active MLflow run: is kedro-mlflow tracking disabled?")
    if rules.metric not in scores:
        raise ValueError(f"registration.metric {rules.metric!r} is not among the scores: {sorted(scores)}")
    value = float(scores[rules.metric])
    info = _log_model(package, rules.model_name if rules.enabled else None)
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
