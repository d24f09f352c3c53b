"""Evaluation figures built on ``matplotlib.figure.Figure`` (no pyplot state).

Every function returns a new Figure; saving it (e.g. through kedro-datasets'
``MatplotlibWriter`` or ``fig.savefig``) is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

DPI = 100


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    *,
    normalise: bool = True,
    title: str = "Confusion matrix",
) -> Figure:
    """Annotated heatmap of a confusion matrix (rows = true class).

    With ``normalise`` the colours and the first annotation line are row
    percentages (recall per true class) and the count follows in brackets;
    otherwise colours and annotations are raw counts.
    """
    cm = np.asarray(cm)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"cm has shape {cm.shape}, expected ({n}, {n}) for {n} class names")
    row_sums = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, row_sums, out=np.zeros(cm.shape), where=row_sums > 0)
    values = pct if normalise else cm.astype(float)
    vmax = 100.0 if normalise else max(float(values.max()), 1.0)

    side = max(5.0, 0.75 * n + 3.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=DPI, layout="tight")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class" if normalise else "count")

    fontsize = 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            text = f"{pct[i, j]:.0f}%\n({cm[i, j]})" if normalise else f"{cm[i, j]}"
            colour = "white" if values[i, j] > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)

    ax.set_xticks(range(n), labels=[str(c) for c in class_names], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=[str(c) for c in class_names])
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title)
    return fig


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray | None:
    """Values of ``key`` across epochs as floats (NaN where missing); None if absent."""
    values = [row.get(key) for row in history]
    if all(v is None for v in values):
        return None
    return np.array([np.nan if v is None else float(v) for v in values])


def plot_learning_curves(history: Sequence[Mapping[str, Any]], title: str = "Learning curves") -> Figure:
    """Loss and accuracy against epoch, train vs validation.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss``,
    ``val_loss``, ``train_accuracy``, ``val_accuracy`` and optionally ``lr``
    (drawn as a third panel when present). Markers keep a single epoch visible.
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    rows = sorted(history, key=lambda row: row["epoch"])
    epochs = np.array([row["epoch"] for row in rows])
    lr = _series(rows, "lr")

    panels = [("Loss", "loss"), ("Accuracy", "accuracy")]
    fig = Figure(figsize=(5.0 * (len(panels) + (lr is not None)), 4.0), dpi=DPI, layout="tight")
    axes = fig.subplots(1, len(panels) + (lr is not None), squeeze=False)[0]
    for ax, (label, metric) in zip(axes, panels):
        for split, style in (("train", "o-"), ("val", "s--")):
            values = _series(rows, f"{split}_{metric}")
            if values is not None:
                ax.plot(epochs, values, style, label=split)
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label.lower())
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend()
    if lr is not None:
        ax = axes[-1]
        ax.plot(epochs, lr, "o-", color="tab:green")
        ax.set_title("Learning rate")
        ax.set_xlabel("Epoch")
        ax.set_ylabel("lr")
        ax.grid(True, alpha=0.3)
    if len(epochs) <= 20:  # whole-number epoch ticks for short runs
        for ax in axes:
            ax.set_xticks(epochs)
    fig.suptitle(title)
    return fig


def plot_misclassified(
    images: np.ndarray,
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    max_examples: int = 25,
    title: str = "Most confident mistakes",
) -> Figure:
    """Grid of the most confident mistakes, each titled ``true → pred (p=0.93)``.

    ``images`` is grey (N, H, W) or (N, H, W, 1), or colour (N, H, W, 3), uint8
    (0–255) or float (scaled per image); ``probabilities`` is (N, C) and ``p``
    is the probability of the predicted class. With no mistakes the figure just
    says so.
    """
    images = np.asarray(images)
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    n = len(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3), got shape {images.shape}")
    if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
        raise ValueError(f"probabilities must be (N, {len(class_names)}), got shape {probabilities.shape}")
    if not (len(y_true) == len(y_pred) == len(probabilities) == n):
        raise ValueError(
            f"lengths differ: images {n}, y_true {len(y_true)}, y_pred {len(y_pred)}, probabilities {len(probabilities)}"
        )

    wrong = np.flatnonzero(y_true != y_pred)
    confidence = probabilities[wrong, y_pred[wrong]] if wrong.size else np.array([])
    chosen = wrong[np.argsort(-confidence, kind="stable")][:max_examples]
    if chosen.size == 0:
        fig = Figure(figsize=(5.0, 2.0), dpi=DPI, layout="tight")
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, f"No misclassified examples ({n} checked)", ha="center", va="center", fontsize=12)
        ax.set_title(title)
        return fig

    cols = math.ceil(math.sqrt(chosen.size))
    rows = math.ceil(chosen.size / cols)
    height = 2.5 * rows + 0.5
    # Fixed margins instead of a layout engine: fitting 25 titled axes costs the engine
    # a full extra draw (0.3 s); every cell has the same room for its two-line title.
    fig = Figure(figsize=(2.4 * cols, height), dpi=DPI)
    grid = {"left": 0.02, "right": 0.98, "bottom": 0.02, "top": 1 - 0.9 / height, "wspace": 0.15, "hspace": 0.35}
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=grid).ravel()
    scale = {"vmin": 0, "vmax": 255} if images.dtype == np.uint8 else {}
    for ax, idx in zip(axes, chosen):
        if images.ndim == 3:
            ax.imshow(images[idx], cmap="gray", **scale)
        else:  # colour: uint8 as it is, floats stretched to 0-1 per image (imshow clips RGB floats)
            image = images[idx]
            if image.dtype != np.uint8:
                low, high = float(image.min()), float(image.max())
                image = (image - low) / (high - low) if high > low else np.zeros_like(image, dtype=float)
            ax.imshow(image)
        ax.set_title(
            f"{class_names[y_true[idx]]} → {class_names[y_pred[idx]]}\n(p={probabilities[idx, y_pred[idx]]:.2f})",
            fontsize=8,
        )
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title} ({chosen.size} of {wrong.size} errors)", y=1 - 0.15 / height, va="top")
    return fig


def plot_class_distribution(
    counts: Mapping[str, int] | Mapping[str, Mapping[str, int]], title: str = "Class distribution"
) -> Figure:
    """Bar chart of examples per class, each bar labelled with its count.

    ``counts`` maps class names to counts (one split), or split names (``train``, ``val``,
    ``test``) to such mappings: grouped bars, one colour per split. The legend gives each
    split's total and imbalance ratio (its largest class over its smallest).
    """
    if not counts:
        raise ValueError("counts is empty: nothing to plot")
    nested = all(isinstance(value, Mapping) for value in counts.values())
    splits = {str(k): dict(v) for k, v in counts.items()} if nested else {"": dict(counts)}
    names = list(dict.fromkeys(str(name) for split in splits.values() for name in split))
    if not names:
        raise ValueError("counts is empty: nothing to plot")
    width = 0.8 / len(splits)
    fig = Figure(figsize=(max(5.0, 0.45 * len(names) * (1 + 0.5 * len(splits)) + 2.0) + 2.5, 4.5), dpi=DPI, layout="tight")
    ax = fig.add_subplot()
    colours = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
    for k, (split, split_counts) in enumerate(splits.items()):
        values = [int(split_counts.get(name, 0)) for name in names]
        positions = np.arange(len(names)) + (k - (len(splits) - 1) / 2) * width
        ratio = _imbalance_text(values)
        label = f"{split + ': ' if split else ''}{sum(values)} examples\nimbalance {ratio}"
        bars = ax.bar(positions, values, width=width, color=colours.get(split, f"C{k}"), label=label)
        ax.bar_label(bars, fontsize=7 if len(splits) > 1 else 8)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("Class")
    ax.set_ylabel("Examples")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside: bars and counts stay clear
    ax.set_title(title)
    ax.margins(y=0.1)
    return fig


def _imbalance_text(values: Sequence[int]) -> str:
    """``largest:smallest`` as ``3.2:1``; ``∞`` when a class has no examples."""
    return f"{max(values) / min(values):.1f}:1" if min(values) > 0 else "∞ (a class has 0)"
