"""Framework-free evaluation helpers: metrics and matplotlib figures."""

from dlflow.evaluation.metrics import (
    classification_metrics,
    confusion,
    flat_metrics,
    sanitise_name,
)
from dlflow.evaluation.plots import (
    plot_class_distribution,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_misclassified,
)

__all__ = [
    "classification_metrics",
    "confusion",
    "flat_metrics",
    "plot_class_distribution",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_misclassified",
    "sanitise_name",
]
