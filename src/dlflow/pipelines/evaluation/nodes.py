"""Shared evaluation nodes for every classifier family (reused through Kedro namespaces).

Input: a predictions table with ``label``, ``prediction`` and ``probabilities``
columns, the class names and the training history.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dlflow.evaluation.metrics import classification_metrics, confusion, flat_metrics
from dlflow.tracking.records import mlflow_metrics


def evaluate_classifier(
    predictions: pd.DataFrame, class_names: list[str]
) -> tuple[dict, dict[str, dict[str, float]], dict[str, float]]:
    """Full metrics report (JSON), the flat ``test_*`` metrics for MLflow, and the same as plain scores."""
    report = classification_metrics(predictions["label"], predictions["prediction"], class_names)
    scores = flat_metrics(report)
    return report, mlflow_metrics(scores), scores


def plot_confusion(predictions: pd.DataFrame, class_names: list[str]) -> Any:
    """Row-normalised confusion matrix of the test predictions."""
    from dlflow.evaluation.plots import plot_confusion_matrix

    matrix = confusion(predictions["label"], predictions["prediction"], len(class_names))
    return plot_confusion_matrix(matrix, class_names)


def plot_history(training_history: list[dict]) -> Any:
    """Train/validation loss and accuracy per epoch."""
    from dlflow.evaluation.plots import plot_learning_curves

    return plot_learning_curves(training_history)
