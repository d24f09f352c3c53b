"""Known-answer tests for dlflow.evaluation.metrics."""

import json

import numpy as np
import pytest

from dlflow.evaluation.metrics import (
    classification_metrics,
    confusion,
    flat_metrics,
    sanitise_name,
)

# Hand-computed example, 4 classes; class "d" never occurs at all.
#   class a: TP=2 FP=0 FN=1 -> P=1,   R=2/3, F1=0.8,  support 3
#   class b: TP=1 FP=1 FN=1 -> P=1/2, R=1/2, F1=1/2,  support 2
#   class c: TP=1 FP=1 FN=0 -> P=1/2, R=1,   F1=2/3,  support 1
#   class d: nothing        -> P=R=F1=0 (zero_division=0), support 0
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
NAMES = ["a", "b", "c", "d"]


def test_known_answer():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1 + 0) / 4)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3 + 0) / 4)
    assert m["num_samples"] == 6
    expected = {
        "a": (1.0, 2 / 3, 0.8, 3),
        "b": (0.5, 0.5, 0.5, 2),
        "c": (0.5, 1.0, 2 / 3, 1),
        "d": (0.0, 0.0, 0.0, 0),
    }
    assert list(m["per_class"]) == NAMES
    for name, (p, r, f1, support) in expected.items():
        got = m["per_class"][name]
        assert got["precision"] == pytest.approx(p)
        assert got["recall"] == pytest.approx(r)
        assert got["f1"] == pytest.approx(f1)
        assert got["support"] == support


def test_result_is_plain_json():
    m = classification_metrics(np.array(Y_TRUE), np.array(Y_PRED), NAMES)
    assert json.loads(json.dumps(m)) == m
    assert type(m["per_class"]["a"]["support"]) is int
    assert type(m["accuracy"]) is float


def test_class_never_predicted_scores_zero_without_warning(recwarn):
    m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 0], ["x", "y", "z"])
    z = m["per_class"]["z"]
    assert (z["precision"], z["recall"], z["f1"], z["support"]) == (0.0, 0.0, 0.0, 2)
    assert m["accuracy"] == pytest.approx(0.5)
    assert not [w for w in recwarn if "zero" in str(w.message).lower()]


def test_perfect_predictions():
    m = classification_metrics([0, 1, 1], [0, 1, 1], ["x", "y"])
    assert m["accuracy"] == m["macro_f1"] == 1.0


def test_confusion_rows_are_true_class():
    cm = confusion(Y_TRUE, Y_PRED, 4)
    np.testing.assert_array_equal(cm, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert cm.dtype == np.int64


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([0, 1], [0], "differ in length"),
        ([], [], "empty"),
        ([0, 3], [0, 1], "y_true has labels outside 0..2"),
        ([0, 1], [0, -1], "y_pred has labels outside"),
        ([0.5, 1], [0, 1], "integer class indices"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_validation_errors(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, ["a", "b", "c"])
    with pytest.raises(ValueError, match=match):
        confusion(y_true, y_pred, 3)


def test_whole_floats_are_accepted():
    assert confusion(np.array([0.0, 1.0]), [0, 1], 2).tolist() == [[1, 0], [0, 1]]


def test_duplicate_class_names_rejected():
    with pytest.raises(ValueError, match="unique"):
        classification_metrics([0, 1], [0, 1], ["a", "a"])


def test_flat_metrics_names_and_values():
    names = ["T-shirt/top", "Ankle boot", "c"]
    m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 2], names)
    flat = flat_metrics(m)
    assert set(flat) == {
        "test_accuracy",
        "test_macro_f1",
        "test_macro_precision",
        "test_macro_recall",
        "test_num_samples",
        "test_f1_T-shirt_top",
        "test_f1_Ankle_boot",
        "test_f1_c",
    }
    assert flat["test_accuracy"] == pytest.approx(0.75)
    assert flat["test_f1_c"] == pytest.approx(2 / 3)
    assert all(type(v) is float for v in flat.values())
    assert "val_accuracy" in flat_metrics(m, prefix="val_")


def test_flat_metrics_rejects_colliding_names():
    m = classification_metrics([0, 1], [0, 1], ["a/b", "a b"])
    with pytest.raises(ValueError, match="collides"):
        flat_metrics(m)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("T-shirt/top", "T-shirt_top"), ("Ankle boot", "Ankle_boot"), ("a.b-c_d", "a.b-c_d"), ("  é/ü ", "_"), ("pos (+)", "pos")],
)
def test_sanitise_name(raw, clean):
    assert sanitise_name(raw) == clean
