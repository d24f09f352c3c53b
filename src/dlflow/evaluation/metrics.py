"""Classification metrics as plain, JSON-serialisable Python objects.

Framework-free: used by the shared evaluation pipeline for every classifier
family. Labels are integer class indices ``0 .. len(class_names) - 1``.
Everything derives from the confusion matrix (numpy's ``bincount``), with
scikit-learn's conventions (a score whose denominator is 0 is 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def _as_labels(y: Any, name: str, num_classes: int) -> np.ndarray:
    """Return ``y`` as a 1-D int array, checking every label is in range."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    whole_floats = arr.dtype.kind == "f" and bool(np.all(np.mod(arr, 1) == 0))
    if arr.size and arr.dtype.kind not in "iu" and not whole_floats:
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ValueError(
            f"{name} has labels outside 0..{num_classes - 1} (e.g. {sorted(set(bad.tolist()))[:5]}); num_classes={num_classes}"
        )
    return arr


def _validated(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if num_classes < 1:
        raise ValueError(f"need at least one class, got num_classes={num_classes}")
    t = _as_labels(y_true, "y_true", num_classes)
    p = _as_labels(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty: nothing to evaluate")
    return t, p


def classification_metrics(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and per-class scores.

    Args:
        y_true: true class indices, shape (N,).
        y_pred: predicted class indices, shape (N,).
        class_names: one name per class index; classes absent from both
            arrays still appear (with zero scores and support).

    Returns:
        ``{"accuracy", "macro_f1", "macro_precision", "macro_recall",
        "num_samples", "per_class": {name: {"precision", "recall", "f1",
        "support"}}}`` with plain ``float``/``int`` values.

    Raises:
        ValueError: lengths differ, inputs are empty, or a label is out of range.
    """
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    t, p = _validated(y_true, y_pred, len(names))
    matrix = _confusion(t, p, len(names)).astype(np.float64)
    correct, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    prec = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    rec = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(correct), where=(prec + rec) > 0)
    return {
        "accuracy": float(correct.sum() / t.size),
        "macro_f1": float(np.mean(f1)),
        "macro_precision": float(np.mean(prec)),
        "macro_recall": float(np.mean(rec)),
        "num_samples": int(t.size),
        "per_class": {
            name: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
    }


def confusion(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Confusion matrix of shape (num_classes, num_classes), int64; rows = true class."""
    t, p = _validated(y_true, y_pred, num_classes)
    return _confusion(t, p, num_classes)


def _confusion(t: np.ndarray, p: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def sanitise_name(name: str) -> str:
    """Make ``name`` safe for an MLflow metric key: runs of other chars become ``_``.

    >>> sanitise_name("T-shirt/top")
    'T-shirt_top'
    """
    return _UNSAFE.sub("_", str(name)).strip("_") or "_"


def flat_metrics(metrics: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Flatten :func:`classification_metrics` output into MLflow metric names.

    Gives ``<prefix>accuracy``, ``<prefix>macro_f1``, ``<prefix>macro_precision``,
    ``<prefix>macro_recall``, ``<prefix>num_samples`` and one
    ``<prefix>f1_<sanitised class name>`` per class.

    Raises:
        ValueError: two class names sanitise to the same metric name.
    """
    flat = {
        f"{prefix}{key}": float(metrics[key])
        for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "num_samples")
        if key in metrics
    }
    for name, scores in metrics.get("per_class", {}).items():
        key = f"{prefix}f1_{sanitise_name(name)}"
        if key in flat:
            raise ValueError(f"class name {name!r} collides with another as metric {key!r}")
        flat[key] = float(scores["f1"])
    return flat
