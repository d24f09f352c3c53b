"""What the champion-vs-challenger report compares that only MLflow holds: the champion's evaluation
and curves, read back from its run, and this run's curves (logged live, one step per epoch).

Each side is a dict of :class:`dlflow.model_registry.report.ModelSide`'s fields, so the report node stays pure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dlflow.model_registry.promotion import Decision
from dlflow.model_registry.report import CURVES

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)


def run_history(client: MlflowClient, run_id: str) -> dict[str, list[list[float]]]:
    """Per-epoch curves ``{name: [[epoch, value], ...]}`` of a run (empty for families without epochs)."""
    curves = {key: [[m.step, m.value] for m in client.get_metric_history(run_id, key)] for key in CURVES}
    return {key: points for key, points in curves.items() if points}


def champion_side(
    client: MlflowClient, model_name: str, version: str, evaluation_path: str, names: list[str], learning_curves: bool
) -> dict[str, Any]:
    """Version ``version``'s scores (those in ``names``), per-class metrics, confusion matrix and curves,
    from the candidate summary its run logged at ``evaluation_path``."""
    import mlflow

    run_id = client.get_model_version(model_name, version).run_id
    evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/{evaluation_path}")
    return {
        "label": f"champion v{version}",
        "version": str(version),
        "run_id": run_id,
        "scores": {name: evaluation["scores"][name] for name in names if name in evaluation["scores"]},
        "per_class": evaluation.get("per_class"),
        "confusion_matrix": evaluation.get("confusion_matrix"),
        "history": run_history(client, run_id) if learning_curves else None,
    }


def comparison(
    client: MlflowClient, model_name: str, decision: Decision, run_id: str, evaluation_path: str,
    names: list[str], learning_curves: bool,
) -> dict[str, Any]:  # fmt: skip
    """``candidate_history`` and the ``champion`` side the decision was made against: None without a
    champion or when it was measured on other test data; ``champion_error`` when it could not be read."""
    found: dict[str, Any] = {
        "candidate_history": run_history(client, run_id) if learning_curves else None,
        "champion": None,
        "champion_error": None,
    }
    if decision.champion_version is not None and decision.rule != "test_data":
        try:
            found["champion"] = champion_side(
                client, model_name, decision.champion_version, evaluation_path, names, learning_curves
            )
        except Exception as error:  # e.g. its run was deleted: the report shows what there is
            logger.warning("Champion v%s of %s could not be read back: %s", decision.champion_version, model_name, error)
            found["champion_error"] = str(error)
    return found
