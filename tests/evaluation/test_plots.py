"""Smoke tests for dlflow.evaluation.plots: each figure renders to a real PNG."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from dlflow.evaluation.plots import (
    plot_class_distribution,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_misclassified,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def assert_png(fig: Figure, path) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000


def epoch(e: int, **extra) -> dict:
    return {
        "epoch": e,
        "train_loss": 1.0 / e,
        "val_loss": 1.2 / e,
        "train_accuracy": 1 - 0.5 / e,
        "val_accuracy": 1 - 0.6 / e,
        **extra,
    }


@pytest.mark.parametrize("normalise", [True, False])
def test_confusion_matrix_ten_long_names(tmp_path, normalise):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(10, 10)) + np.diag(np.full(10, 900))
    cm[3] = 0  # a class with no examples must not divide by zero
    names = [f"{n} (a rather long class name)" for n in FASHION]
    fig = plot_confusion_matrix(cm, names, normalise=normalise, title="Test set")
    assert fig.axes[0].get_title() == "Test set"
    assert len(fig.axes[0].texts) == 100
    assert_png(fig, tmp_path / "cm.png")


def test_confusion_matrix_annotation_has_percent_and_count():
    fig = plot_confusion_matrix(np.array([[3, 1], [0, 2]]), ["a", "b"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:2] == ["75%\n(3)", "25%\n(1)"]


def test_confusion_matrix_shape_mismatch():
    with pytest.raises(ValueError, match="expected"):
        plot_confusion_matrix(np.zeros((3, 3)), ["a", "b"])


def test_learning_curves_several_epochs_with_lr(tmp_path):
    history = [epoch(e, lr=1e-3 / e) for e in (3, 1, 2)]  # order must not matter
    fig = plot_learning_curves(history)
    assert len(fig.axes) == 3
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]
    assert_png(fig, tmp_path / "curves.png")


def test_learning_curves_single_epoch(tmp_path):
    fig = plot_learning_curves([epoch(1)])
    assert len(fig.axes) == 2
    assert all(line.get_marker() not in (None, "None", "") for line in fig.axes[0].lines)
    assert_png(fig, tmp_path / "one_epoch.png")


def test_learning_curves_empty_history():
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves([])


def _predictions(n: int = 40, classes: int = 10):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y_true = rng.integers(0, classes, size=n)
    probs = rng.dirichlet(np.ones(classes), size=n)
    return images, y_true, probs.argmax(axis=1), probs


def test_misclassified_grid_most_confident_first(tmp_path):
    images, y_true, y_pred, probs = _predictions()
    fig = plot_misclassified(images, y_true, y_pred, probs, FASHION, max_examples=9)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 9
    assert all("→" in t and "(p=" in t for t in titles)
    shown = [float(t.split("p=")[1].rstrip(")")) for t in titles]
    assert shown == sorted(shown, reverse=True)
    wrong = y_true != y_pred
    assert shown[0] == pytest.approx(probs[wrong].max(), abs=0.005)
    assert_png(fig, tmp_path / "mistakes.png")


def test_misclassified_float_images(tmp_path):
    images, y_true, y_pred, probs = _predictions(n=6, classes=3)
    fig = plot_misclassified(images.astype(np.float32) / 255, y_true, y_pred, probs, ["a", "b", "c"])
    assert_png(fig, tmp_path / "float.png")


def test_misclassified_colour_and_channel_last_grey_images(tmp_path):
    _, y_true, y_pred, probs = _predictions(n=6, classes=3)
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 256, size=(6, 32, 48, 3), dtype=np.uint8)
    fig = plot_misclassified(colour, y_true, y_pred, probs, ["a", "b", "c"])
    shown = [image.get_array() for ax in fig.axes for image in ax.get_images()]
    assert shown and all(array.shape == (32, 48, 3) for array in shown)  # in colour, not one grey channel
    assert_png(fig, tmp_path / "colour.png")
    fig = plot_misclassified(colour.astype(np.float32) * 3 - 100, y_true, y_pred, probs, ["a", "b", "c"])
    assert all(0 <= image.get_array().min() and image.get_array().max() <= 1 for ax in fig.axes for image in ax.get_images())
    grey = rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
    fig = plot_misclassified(grey, y_true, y_pred, probs, ["a", "b", "c"])
    assert all(image.get_array().shape == (8, 8) for ax in fig.axes for image in ax.get_images())
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        plot_misclassified(np.zeros((6, 8, 8, 2)), y_true, y_pred, probs, ["a", "b", "c"])


def test_misclassified_no_mistakes(tmp_path):
    images, y_true, _, probs = _predictions(n=5)
    fig = plot_misclassified(images, y_true, y_true, probs, FASHION)
    assert any("No misclassified" in t.get_text() for t in fig.axes[0].texts)
    fig.savefig(tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes().startswith(PNG_SIGNATURE)


def test_misclassified_rejects_mismatched_inputs():
    images, y_true, y_pred, probs = _predictions(n=5)
    with pytest.raises(ValueError, match="lengths differ"):
        plot_misclassified(images, y_true[:4], y_pred, probs, FASHION)
    with pytest.raises(ValueError, match="probabilities"):
        plot_misclassified(images, y_true, y_pred, probs[:, :3], FASHION)


def test_class_distribution(tmp_path):
    counts = {name: 6000 + 10 * i for i, name in enumerate(FASHION)}
    fig = plot_class_distribution(counts, "Training set")
    ax = fig.axes[0]
    assert ax.get_title() == "Training set"
    assert [p.get_height() for p in ax.patches] == list(counts.values())
    assert_png(fig, tmp_path / "dist.png")


def test_class_distribution_per_split_with_imbalance(tmp_path):
    counts = {"train": {"cat": 30, "dog": 10, "emu": 5}, "test": {"cat": 8, "dog": 2, "emu": 0}}
    fig = plot_class_distribution(counts, "Images per class")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [30, 10, 5, 8, 2, 0]  # grouped: train's bars, then test's
    assert [label.get_text() for label in ax.get_xticklabels()] == ["cat", "dog", "emu"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["train: 45 examples\nimbalance 6.0:1", "test: 10 examples\nimbalance ∞ (a class has 0)"]
    assert {text.get_text() for text in ax.texts} >= {"30", "10", "5", "8", "2", "0"}  # the counts on the bars
    assert_png(fig, tmp_path / "per_split.png")
