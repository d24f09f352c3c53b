"""The drift and quality statistics on scikit-learn's bundled digits: fast, no model, no framework."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score

from dlflow.monitoring.checks import (
    CheckResult,
    Policy,
    class_proportion_check,
    confidence_check,
    correct,
    input_checks,
    judge,
    live_quality,
    mmd_check,
    run_checks,
)

NAMES = ["brightness", "contrast"]


@pytest.fixture(scope="module")
def digits() -> dict:
    """Digits split in two halves (seeded): pixels, two input signals, a classifier's probabilities."""
    data = load_digits()
    pixels, labels = data.data * (255.0 / 16.0), data.target
    order = np.random.default_rng(0).permutation(len(labels))
    first, second = order[: len(order) // 2], order[len(order) // 2 :]
    classifier = CentroidClassifier(pixels[first] / 255.0, labels[first])
    return {"pixels": pixels, "labels": labels, "first": first, "second": second, "classifier": classifier}


class CentroidClassifier:
    """Softmax over minus the squared distances to the class means: a real classifier in a millisecond."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.centroids = np.stack([x[y == c].mean(axis=0) for c in range(10)])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = -((x[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def sample(digits: dict, rows: np.ndarray, pixels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The sample of ``rows`` (or of the given ``pixels``): signals, probabilities, pixels as features."""
    pixels = digits["pixels"][rows] if pixels is None else pixels
    return {
        "inputs": np.stack([pixels.mean(axis=1), pixels.std(axis=1)], axis=1),
        "probabilities": digits["classifier"].predict_proba(pixels / 255.0),
        "features": pixels.astype(np.float32),
    }


# ------------------------------------------------------------------------------------------ single checks


def test_input_checks_pass_a_split_of_the_same_data_and_flag_darker_images(digits):
    reference = sample(digits, digits["first"])
    same = input_checks(reference["inputs"], sample(digits, digits["second"])["inputs"], NAMES)
    assert [r.name for r in same] == ["input.brightness", "input.contrast"]
    assert all(r.kind == "input" and r.p_value > 0.01 for r in same)
    darker = input_checks(reference["inputs"], sample(digits, None, digits["pixels"][digits["second"]] * 0.8)["inputs"], NAMES)
    assert darker[0].p_value < 1e-10 and darker[0].statistic > 0.2
    assert darker[0].detail["batch"]["mean"] < darker[0].detail["reference"]["mean"]


def test_class_proportions_flag_a_batch_of_three_classes_and_pool_rare_classes(digits):
    reference = sample(digits, digits["first"])["probabilities"]
    same = class_proportion_check(reference, sample(digits, digits["second"])["probabilities"])
    assert same.p_value > 0.01 and same.detail["degrees_of_freedom"] == 9
    three = digits["second"][np.isin(digits["labels"][digits["second"]], [0, 1, 2])]
    shifted = class_proportion_check(reference, sample(digits, three)["probabilities"])
    assert shifted.p_value < 1e-20 and shifted.detail["degrees_of_freedom"] == 9
    assert max(shifted.detail["batch_share"][5:]) < 0.05  # the few mistakes of the classifier


def test_class_proportions_pool_classes_too_rare_for_chi_squared():
    # class 3 predicted twice in 400 reference records and never in 100 batch records: expected 0.4 in the batch
    reference = np.eye(4)[np.r_[np.repeat([0, 1, 2], [200, 120, 78]), [3, 3]]] * 0.7 + 0.075
    batch = np.eye(4)[np.repeat([0, 1, 2], [50, 30, 20])] * 0.7 + 0.075
    result = class_proportion_check(reference, batch)
    assert result.detail["pooled_classes"] == [3]
    assert result.detail["degrees_of_freedom"] == 3  # 2 x 4: classes 0, 1, 2 and the pooled category
    assert result.p_value > 0.5


def test_class_proportions_with_one_category_left_compare_nothing():
    one_class = np.tile([0.9, 0.1], (50, 1))
    result = class_proportion_check(one_class, one_class[:30])
    assert (result.statistic, result.p_value, result.detail["degrees_of_freedom"]) == (0.0, 1.0, 0)


def test_confidence_check_flags_an_overconfident_model(digits):
    reference = sample(digits, digits["first"])["probabilities"]
    batch = sample(digits, digits["second"])["probabilities"]
    assert confidence_check(reference, batch).p_value > 0.01
    sharpened = batch**4 / (batch**4).sum(axis=1, keepdims=True)  # the same answers, surer
    result = confidence_check(reference, sharpened)
    assert result.p_value < 1e-6 and result.detail["batch"]["mean"] > result.detail["reference"]["mean"]


def test_mmd_statistic_is_the_unbiased_estimate_computed_directly(digits):
    rng = np.random.default_rng(3)
    x = digits["pixels"][digits["first"][:60]].astype(np.float32)
    y = digits["pixels"][digits["second"][:40]].astype(np.float32) + rng.normal(0, 5, (40, 64)).astype(np.float32)
    result = mmd_check(x, y, permutations=50)
    pooled = np.concatenate([x, y]).astype(np.float64)
    scale = pooled.std(axis=0)
    keep = scale > 1e-12 * scale.max()
    z = (pooled[:, keep] - pooled[:, keep].mean(axis=0)) / scale[keep]
    kernel = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2).sum(-1) / result.detail["bandwidth"])
    kxx, kyy, kxy = kernel[:60, :60], kernel[60:, 60:], kernel[:60, 60:]
    expected = (kxx.sum() - 60) / (60 * 59) + (kyy.sum() - 40) / (40 * 39) - 2 * kxy.mean()
    assert result.statistic == pytest.approx(expected, rel=1e-4, abs=1e-6)
    # unbiased MMD does not depend on the order of the rows
    assert mmd_check(x, y[::-1], permutations=50).statistic == pytest.approx(result.statistic, rel=1e-4, abs=1e-6)


def test_mmd_keeps_its_level_on_splits_of_the_same_data_and_sees_other_digits(digits):
    pixels, labels = digits["pixels"].astype(np.float32), digits["labels"]
    rejections = 0
    for seed in range(40):
        order = np.random.default_rng(100 + seed).permutation(len(labels))
        rejections += mmd_check(pixels[order[:150]], pixels[order[150:250]], permutations=99, seed=seed).p_value <= 0.05
    assert rejections <= 6  # 2 expected at 5 %; P(> 6 | level 5 %) < 0.5 %
    low, high = pixels[labels < 5], pixels[labels >= 5]
    shifted = mmd_check(low[:300], high[:100], permutations=99)
    assert shifted.p_value == pytest.approx(1 / 100)  # no permutation reaches the observed statistic
    assert shifted.statistic > 10 * shifted.detail["null_q95"]


def test_mmd_subsamples_large_samples_reproducibly(digits):
    pixels = digits["pixels"].astype(np.float32)
    first = mmd_check(pixels[:1200], pixels[1200:], max_reference=500, max_batch=300, permutations=20, seed=7)
    again = mmd_check(pixels[:1200], pixels[1200:], max_reference=500, max_batch=300, permutations=20, seed=7)
    assert (first.detail["reference_rows"], first.detail["batch_rows"]) == (500, 300)
    assert (first.statistic, first.p_value) == (again.statistic, again.p_value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: input_checks(np.ones((5, 2)), np.ones((5, 3)), NAMES), "2 input names"),
        (lambda: input_checks(np.ones((0, 2)), np.ones((5, 2)), NAMES), "empty"),
        (lambda: input_checks(np.ones(5), np.ones((5, 2)), NAMES), "2-D"),
        (lambda: input_checks(np.array([[1.0, np.nan], [1, 2]]), np.ones((5, 2)), NAMES), "NaN or infinite values in 1 rows"),
        (lambda: class_proportion_check(np.full((4, 3), 1 / 3), np.full((4, 2), 0.5)), "3 classes, batch 2"),
        (lambda: confidence_check(np.full((4, 2), 0.5), np.full((4, 2), -0.5)), "must lie in"),
        (lambda: mmd_check(np.ones((5, 3)), np.ones((5, 4))), "3 columns"),
        (lambda: mmd_check(np.ones((5, 3)), np.ones((1, 3))), "at least 2 rows"),
        (lambda: mmd_check(np.ones((5, 3)), np.ones((5, 3)), permutations=0), "permutations"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -------------------------------------------------------------------------------------- policy, decision


def test_bonferroni_and_holm_corrections():
    assert correct([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert correct([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert correct([0.5, 0.6], "holm") == pytest.approx([1.0, 1.0])
    assert correct([0.01, 0.04], "none") == [0.01, 0.04]
    with pytest.raises(ValueError, match="correction"):
        correct([0.1], "bh")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"correction": "bh"}, "correction"),
        ({"alert_on": ("inputs",)}, "unknown kinds"),
        ({"min_batch_size": 1}, "min_batch_size"),
    ],
)
def test_policy_refuses_bad_values(options, message):
    with pytest.raises(ValueError, match=message):
        Policy(**options)


def test_a_small_batch_is_not_judged(digits):
    decision = run_checks(sample(digits, digits["first"]), sample(digits, digits["second"][:57]), NAMES, Policy())
    assert (decision.judged, decision.drift_detected, decision.drift_score) == (False, False, 0.0)
    assert decision.reason.startswith("batch of 57 records < min_batch_size 200")


def test_a_clean_batch_passes_and_a_shifted_one_alerts_with_its_reason(digits):
    policy = Policy(min_batch_size=100, permutations=200)
    reference = sample(digits, digits["first"])
    clean = run_checks(reference, sample(digits, digits["second"]), NAMES, policy)
    assert clean.judged and not clean.drift_detected and clean.drift_score <= clean.threshold
    assert clean.threshold == pytest.approx(-math.log10(0.05))
    assert [r.name for r in clean.results] == [
        "input.brightness", "input.contrast", "prediction.classes", "prediction.confidence", "feature.mmd",
    ]  # fmt: skip
    assert all(r.alerting and r.corrected_p_value == pytest.approx(min(1.0, 5 * r.p_value)) for r in clean.results)
    assert clean.reason.startswith("no drift")

    noisy = digits["pixels"][digits["second"]] + np.random.default_rng(1).normal(0, 40, (len(digits["second"]), 64))
    shifted = run_checks(reference, sample(digits, None, np.clip(noisy, 0, 255)), NAMES, policy)
    assert shifted.drift_detected and shifted.drift_score > shifted.threshold
    assert shifted.reason.startswith("drift: ") and "feature.mmd" in shifted.reason
    smallest = min(r.corrected_p_value for r in shifted.results)
    assert shifted.drift_score == pytest.approx(-math.log10(smallest))
    json.dumps(shifted.to_dict())  # the report's input is plain JSON


def test_checks_outside_alert_on_are_reported_but_cannot_alert(digits):
    reference, darker = sample(digits, digits["first"]), sample(digits, None, digits["pixels"][digits["second"]] * 0.5)
    keys = ("inputs", "probabilities")
    decision = run_checks({k: reference[k] for k in keys}, {k: darker[k] for k in keys}, NAMES,
                          Policy(min_batch_size=100, alert_on=("prediction",)))  # fmt: skip
    inputs = [r for r in decision.results if r.kind == "input"]
    assert inputs[0].p_value < 1e-10 and not inputs[0].alerting and inputs[0].corrected_p_value is None
    alerting = [r for r in decision.results if r.alerting]
    assert [r.name for r in alerting] == ["prediction.classes", "prediction.confidence"]
    assert decision.drift_score == pytest.approx(-math.log10(min(r.corrected_p_value for r in alerting)))


def test_too_few_permutations_are_raised_so_the_feature_check_can_alert(digits):
    pixels, labels = digits["pixels"], digits["labels"]
    reference = {"features": pixels[labels < 5][:300].astype(np.float32)}
    batch = {"features": pixels[labels >= 5][:300].astype(np.float32)}
    decision = run_checks(reference, batch, [], Policy(permutations=19, alpha=0.01))
    (mmd,) = decision.results
    assert mmd.detail["permutations"] >= 2 / 0.01 - 1
    assert decision.drift_detected


def test_samples_must_hold_the_same_keys_and_rows(digits):
    reference = sample(digits, digits["first"])
    batch = sample(digits, digits["second"])
    with pytest.raises(ValueError, match="the batch has no 'features'"):
        run_checks(reference, {k: batch[k] for k in ("inputs", "probabilities")}, NAMES, Policy())
    with pytest.raises(ValueError, match="differ in rows"):
        run_checks(reference, batch | {"features": batch["features"][:10]}, NAMES, Policy())
    with pytest.raises(ValueError, match="unknown sample keys"):
        run_checks(reference | {"pixels": 1}, batch, NAMES, Policy())


def test_judge_with_no_alerting_kind_never_alerts():
    result = CheckResult("input.length", "input", 0.9, 1e-30)
    decision = judge([result], Policy(alert_on=("feature",)))
    assert not decision.drift_detected and decision.drift_score == 0.0 and "no check can alert" in decision.reason


# ---------------------------------------------------------------------------------------------- quality


def test_live_quality_matches_scikit_learn_and_detects_a_drop(digits):
    labels = digits["labels"][digits["second"]]
    predictions = digits["classifier"].predict(digits["pixels"][digits["second"]] / 255.0)
    found = live_quality(labels, predictions, 10, reference_accuracy=0.9, reference_n=2000)  # it scores 0.90
    assert found["accuracy"] == pytest.approx((labels == predictions).mean())
    assert found["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    low, high = found["accuracy_ci95"]
    n, p = len(labels), found["accuracy"]
    centre = (p + 1.96**2 / (2 * n)) / (1 + 1.96**2 / n)  # Wilson's interval, by hand
    assert (low + high) / 2 == pytest.approx(centre, abs=1e-4)
    assert found["macro_f1_ci95"][0] < found["macro_f1"] < found["macro_f1_ci95"][1]
    assert not found["drop_detected"]

    wrong = predictions.copy()
    wrong[: len(wrong) // 4] = (wrong[: len(wrong) // 4] + 1) % 10  # a quarter of the answers now wrong
    dropped = live_quality(labels, wrong, 10, reference_accuracy=0.9, reference_n=2000)
    assert dropped["drop_detected"] and dropped["drop_p_value"] < 1e-10
    check = dropped["check"]
    assert check.kind == "quality" and check.statistic == pytest.approx(dropped["accuracy"] - 0.9)
    assert check.statistic < -0.15


@pytest.mark.parametrize(
    ("labels", "predictions", "message"),
    [([0, 1], [0], "equal-length"), ([], [], "no labelled"), ([0, 3], [0, 1], "0..2"), ([0.0, 1.0], [0, 1], "integer")],
)
def test_live_quality_refuses_bad_labels(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        live_quality(np.asarray(labels), np.asarray(predictions), 3, 0.9, 100)
