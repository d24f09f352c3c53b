"""Monitoring nodes: the reference profile a model is registered with, and the judgement of a scored batch.

``profile_images`` / ``profile_sentences`` run the servable model (the one that
is registered) on held-out test records with ``params={"monitoring": True}``,
exactly as batch inference will, and keep what it observed
(``dlflow.monitoring.profile.ReferenceProfile``). ``judge_batch`` turns what a
batch-inference run observed into the decision, the metrics, the report and
the feedback data. Pure functions of their inputs; the catalog logs and saves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dlflow.config import MonitoringParams
from dlflow.monitoring.observations import BatchObservations, split_answers
from dlflow.monitoring.profile import ReferenceProfile, held_out_quality, profile_rows
from dlflow.sources.image_table import table_images
from dlflow.tracking.records import mlflow_metrics

logger = logging.getLogger(__name__)


def _held_out_rows(labels: np.ndarray, monitoring: MonitoringParams) -> np.ndarray:
    profile = monitoring.profile
    size = min(profile.records, max(2, int(len(labels) * profile.max_fraction)))
    return profile_rows(labels, size, profile.seed)


def _observe(servable: Any, records: Any, class_names: list[str]):
    answers = servable.predict(None, records, {"monitoring": True})
    return split_answers(answers, class_names)[1]


def profile_images(
    package: dict[str, Any], test_split: pd.DataFrame, test_predictions: pd.DataFrame, class_names: list[str],
    monitoring: dict[str, Any],
) -> ReferenceProfile:  # fmt: skip
    """The CNN's reference profile: its observations of a stratified part of the test images
    (``monitoring.profile``), their labels and rows, and its quality over all test images."""
    monitoring = MonitoringParams.model_validate(monitoring)
    labels = test_split["label"].to_numpy()
    rows = _held_out_rows(labels, monitoring)
    observed = _observe(package["model"], table_images(test_split.iloc[rows]), class_names)
    probabilities = np.stack(test_predictions["probabilities"].to_numpy())
    quality = held_out_quality(test_predictions["label"].to_numpy(), probabilities, class_names)
    logger.info("Reference profile: %d of %d test images (accuracy %.4f on all)", len(rows), len(labels), quality["accuracy"])
    about = {"records_from": "cnn_test_split", "held_out_records": int(len(labels))}
    return ReferenceProfile("cnn", list(class_names), observed, labels[rows], rows, quality, about)


def profile_sentences(
    package: dict[str, Any], sentences: pd.DataFrame, test_predictions: pd.DataFrame, class_names: list[str],
    test_fold: int, monitoring: dict[str, Any],
) -> ReferenceProfile:  # fmt: skip
    """The RNN's reference profile: its observations of a stratified part of the sentences of fold ``test_fold``
    (the registered model's held-out fold), their labels and rows, and its quality over that whole fold."""
    monitoring = MonitoringParams.model_validate(monitoring)
    held_out = test_predictions[test_predictions["fold"] == test_fold]
    if held_out.empty:
        raise ValueError(f"no out-of-fold predictions for rnn.evaluation.test_fold {test_fold}: nothing to profile")
    chosen = _held_out_rows(held_out["label"].to_numpy(), monitoring)
    rows = held_out["row"].to_numpy()[chosen]
    observed = _observe(package["model"], sentences.iloc[rows][["sentence"]].reset_index(drop=True), class_names)
    probabilities = np.stack(held_out["probabilities"].to_numpy())
    quality = held_out_quality(held_out["label"].to_numpy(), probabilities, class_names)
    logger.info(
        "Reference profile: %d of the %d sentences of fold %d (accuracy %.4f on the fold)",
        len(rows), len(held_out), test_fold, quality["accuracy"],
    )  # fmt: skip
    about = {"records_from": "labelled_sentences", "test_fold": int(test_fold), "held_out_records": int(len(held_out))}
    labels = sentences["label"].to_numpy()[rows]
    return ReferenceProfile("rnn", list(class_names), observed, labels, rows, quality, about)


def judge_batch(
    observations: BatchObservations, champion: Any, monitoring: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], str, dict[str, Any], int]:
    """What one batch-inference run observed, judged against the champion's reference profile.

    Returns the run's metrics (``drift_detected``, ``drift_score``, ``drift_judged``,
    each check's statistic and p-value, live quality), the decision as JSON, the
    HTML drift report, the step for the model's long-lived monitoring run, and the
    exit status the run asks for (``monitoring.alert_exit_code`` on an alert, else 0).
    A batch the policy cannot judge (too small, no profile, monitoring off) is
    reported as such: ``drift_judged`` 0, ``drift_detected`` 0, never a guess.
    """
    from dlflow.monitoring.checks import Policy, live_quality, run_checks
    from dlflow.monitoring.report import build_drift_report

    params = MonitoringParams.model_validate(monitoring)
    if not observations.finished:
        raise RuntimeError("the batch's observations are incomplete: the predictions were not written to the end")
    profile: ReferenceProfile | None = getattr(champion, "profile", None)
    model = {key: champion.info[key] for key in ("model_name", "model_version", "model_run_id")}
    policy = Policy(**params.policy.model_dump(exclude={"min_labelled"}) | {"alert_on": tuple(params.policy.alert_on)})
    quality, decision = None, None
    if not params.enabled:
        verdict = "monitoring is off (monitoring.enabled: false)"
    elif profile is None:
        verdict = getattr(champion, "profile_note", "") or "the model has no reference profile"
    else:
        if observations.labelled:
            labels, predictions = _labels_and_predictions(observations.confusion)
            quality = live_quality(
                labels, predictions, len(profile.class_names), profile.test["accuracy"], profile.test["records"],
                params.policy.alpha, seed=params.profile.seed,
            )  # fmt: skip
            quality["judged"] = observations.labelled >= params.policy.min_labelled
        extra = [quality["check"]] if quality is not None and quality["judged"] else []
        decision = run_checks(
            profile.observations.as_sample(), observations.sample.as_sample(), list(profile.observations.input_names),
            policy, seed=params.profile.seed, extra=extra,
        )  # fmt: skip
        verdict = decision.reason
        if quality is not None and not quality["judged"]:
            verdict += f" (live quality shown only: {observations.labelled} labels < min_labelled {params.policy.min_labelled})"
        quality = {key: value for key, value in quality.items() if key != "check"} if quality is not None else None
    judged = bool(decision is not None and decision.judged)
    detected = bool(judged and decision.drift_detected)
    metrics = {
        "drift_detected": float(detected),
        "drift_judged": float(judged),
        "drift_score": float(decision.drift_score) if decision is not None else 0.0,
        "drift_threshold": float(decision.threshold) if decision is not None else 0.0,
        "batch_records": float(observations.records),
    }
    if decision is not None:
        for result in decision.results:
            key = result.name.replace(".", "_")
            metrics[f"drift_{key}_statistic"] = float(result.statistic)
            metrics[f"drift_{key}_p_value"] = float(result.p_value)
    if quality is not None:
        metrics |= {
            "live_labelled": float(quality["labelled"]), "live_accuracy": quality["accuracy"], "live_macro_f1": quality["macro_f1"],
            "live_accuracy_low": quality["accuracy_ci95"][0], "live_accuracy_high": quality["accuracy_ci95"][1],
            "live_macro_f1_low": quality["macro_f1_ci95"][0], "live_macro_f1_high": quality["macro_f1_ci95"][1],
            "live_drop_p_value": quality["drop_p_value"], "test_accuracy": profile.test["accuracy"],
            "test_macro_f1": profile.test["macro_f1"],
        }  # fmt: skip
    logger.info(
        "Monitoring %s v%s: %s%s", model["model_name"], model["model_version"],
        "DRIFT DETECTED: " if detected else "", verdict,
    )  # fmt: skip
    checks = {
        "model": model, "judged": judged, "drift_detected": detected, "verdict": verdict,
        "records": observations.records, "compared": len(observations.sample) if observations.sample is not None else 0,
        "labelled": observations.labelled, "policy": params.policy.model_dump(),
        "decision": decision.to_dict() if decision is not None else None, "live_quality": quality,
        "predicted_classes": observations.predicted.tolist(),
        "reference": {"records": len(profile.observations), "test": profile.test} if profile is not None else None,
    }  # fmt: skip
    report = build_drift_report(checks, profile, observations)
    step = {"experiment": params.history_experiment, "model": model, "metrics": metrics, "judged": judged}
    return mlflow_metrics(metrics), checks, report, step, params.alert_exit_code if detected else 0


def _labels_and_predictions(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-record label and prediction arrays rebuilt from a confusion matrix (rows: label)."""
    labels, predictions = np.nonzero(confusion)
    counts = confusion[labels, predictions]
    return np.repeat(labels, counts), np.repeat(predictions, counts)


def keep_feedback(batch_input: Any, observations: BatchObservations) -> dict[str, str]:
    """The scored input, to keep as feedback data when it carried labels (``<family>_feedback`` copies it once,
    named by its digest); an empty dict otherwise (nothing to keep)."""
    if not observations.finished:
        raise RuntimeError("the batch's observations are incomplete: the predictions were not written to the end")
    if not observations.labelled:
        return {}
    logger.info("Feedback: %s carried %d labels; kept for retraining", batch_input.source, observations.labelled)
    return {"source": batch_input.source}
