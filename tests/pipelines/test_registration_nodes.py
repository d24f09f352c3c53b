"""The registration sub-pipeline: its pure nodes on their own, then all three against a real registry."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dlflow.model_registry.store import alias_history
from dlflow.pipelines.registration import create_pipeline
from dlflow.pipelines.registration.nodes import (
    build_promotion_report,
    register_model,
    summarise_candidate,
)

PROMOTION = {"default": {"max_class_drop": 0.02}, "families": {"word2vec": {"metric": "analogy_accuracy"}}}
PER_CLASS = {
    "Bag": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 5},
    "Shirt": {"precision": 0.7, "recall": 0.6, "f1": 0.65, "support": 5},
}


def classifier_candidate() -> dict:
    predictions = pd.DataFrame({"label": [0, 0, 1, 1, 1], "prediction": [0, 1, 1, 1, 0]})
    return summarise_candidate(
        {"test_data_digest": "d1"}, {"test_accuracy": 0.6, "test_macro_f1": 0.58}, {"per_class": PER_CLASS},
        PROMOTION, predictions, family="cnn",
    )  # fmt: skip


def registration(**changes) -> dict:
    return {
        "model_uri": "models:/m-1", "run_id": "run-2", "model_name": "m", "version": "2",
        "gate_decision": "not_promoted", "reason": "not promoted (rule min_improvement): worse", "rule": "min_improvement",
        "compared_with": "1", "report": "uri", "aliases": {"champion": "1", "challenger": "2"},
    } | changes  # fmt: skip


def test_the_candidate_summary_holds_what_the_gate_judges_and_the_report_compares():
    candidate = classifier_candidate()
    assert (candidate["metric"], candidate["value"], candidate["test_data_digest"]) == ("test_accuracy", 0.6, "d1")
    assert candidate["rules"]["max_class_drop"] == 0.02 and candidate["per_class"] == PER_CLASS
    assert candidate["confusion_matrix"] == [[1, 1], [1, 2]]  # rows: true class
    words = summarise_candidate(
        {"test_data_digest": "bench"}, {"analogy_accuracy": 0.3}, {"analogy": {}}, PROMOTION, family="word2vec"
    )
    assert words["metric"] == "analogy_accuracy" and words["per_class"] is None and words["confusion_matrix"] is None


def test_the_candidate_summary_refuses_scores_without_the_promotion_metric():
    with pytest.raises(ValueError, match="analogy_accuracy"):
        summarise_candidate({"test_data_digest": "d"}, {"test_accuracy": 0.5}, {}, PROMOTION, family="word2vec")


def test_the_report_compares_with_the_champion_the_gate_looked_at():
    candidate = classifier_candidate()
    champion = {
        "label": "champion v1", "version": "1", "run_id": "run-1", "scores": {"test_accuracy": 0.8},
        "per_class": PER_CLASS, "confusion_matrix": [[2, 0], [0, 3]], "history": None,
    }  # fmt: skip
    page = build_promotion_report(
        candidate, registration(), {"candidate_history": None, "champion": champion, "champion_error": None}
    )
    assert "m v2: champion vs challenger" in page and "champion v1" in page and "-0.2000" in page
    assert "Not promoted" in page and "rule min_improvement" in page and "digest d1" in page
    assert 'id="confusion_candidate"' in page and 'id="confusion_champion"' in page


def test_the_report_says_why_the_candidate_is_shown_alone():
    candidate, alone = classifier_candidate(), {"candidate_history": None, "champion": None, "champion_error": None}
    first = build_promotion_report(
        candidate, registration(gate_decision="promoted", rule="no_champion", compared_with=None), alone
    )
    assert "No champion yet" in first and "Promoted to @champion" in first
    elsewhere = build_promotion_report(candidate, registration(rule="test_data"), alone)
    assert "Champion v1 was measured on other test data" in elsewhere and "compared with champion v1" in elsewhere
    unreadable = build_promotion_report(candidate, registration(), alone | {"champion_error": "run deleted"})
    assert "could not be read back from MLflow (run deleted)" in unreadable
    off = build_promotion_report(candidate, {"model_uri": "models:/m-1", "run_id": "r", "test_accuracy": 0.6}, alone)
    assert "not registered" in off


def test_the_sub_pipeline_shows_each_step_as_a_node():
    nodes = {n.name: n for n in create_pipeline("cnn", "cnn_package", "cnn.scores", predictions="cnn_test_predictions").nodes}
    assert list(nodes) == ["cnn.summarise_candidate", "cnn.register_model", "cnn.build_promotion_report"]
    assert nodes["cnn.register_model"].outputs == ["cnn.registration", "cnn.comparison"]
    assert nodes["cnn.build_promotion_report"].outputs == ["cnn.promotion_report"]


@pytest.fixture
def tracking(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("registration", artifact_location=str(tmp_path / "artifacts")))
    yield MlflowClient()
    mlflow.set_tracking_uri(previous)


def test_a_family_without_classes_or_curves_registers_and_reports_what_is_missing(tracking):
    """Word2Vec's shape: scores and a nested report, no per-class metrics, no predictions, no epochs."""
    from dlflow.serving.word_vectors import WordVectorsModel

    words = ["good", "bad", "movie"]
    package = {
        "model": WordVectorsModel(words, np.eye(3, dtype=np.float32)),
        "input_example": pd.DataFrame({"word": words[:2]}),
        "predict_params": {"query": "most_similar", "topn": 2},
        "test_data_digest": "bench",
    }
    records, pages = [], []
    for value in (0.30, 0.25):
        with mlflow.start_run():  # what kedro-mlflow's hook and datasets do around the nodes
            candidate = summarise_candidate(
                package, {"analogy_accuracy": value, "wordsim353_spearman": 0.4}, {"analogy": {"accuracy": value}},
                PROMOTION, family="word2vec",
            )  # fmt: skip
            mlflow.log_dict(candidate, "registration/word2vec/evaluation.json")
            record, comparison = register_model(
                package, candidate, {"model_name": "w2v"}, family="word2vec", learning_curves=False
            )
            pages.append(build_promotion_report(candidate, record, comparison))
            records.append(record)
    assert [r["gate_decision"] for r in records] == ["promoted", "not_promoted"]
    assert records[1]["aliases"] == {"champion": "1", "challenger": "2"} and records[1]["compared_with"] == "1"
    assert records[1]["report"] == tracking.get_model_version("w2v", "2").tags["promotion_report"]
    assert records[1]["report"].endswith("registration/word2vec/champion_vs_challenger.html")
    report = pages[1]
    assert "champion v1" in report and "0.3000" in report and "0.2500" in report and "-0.0500" in report
    assert "Per-class metrics are not available" in report and "No learning curves available" in report
    assert [(m.alias, m.to_version) for m in alias_history(tracking, "w2v")] == [("champion", "1"), ("challenger", "2")]
