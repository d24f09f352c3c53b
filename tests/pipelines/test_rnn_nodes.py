"""RNN nodes: cross-validation on a tiny MR-like table, and a three-class table from a real file through
the text and RNN nodes, the Naive Bayes baseline, packaging and the servable model (logged to MLflow and loaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlflow.config import RnnEvaluationParams
from dlflow.io import LabelledTextDataset
from dlflow.pipelines.rnn.nodes import (
    build_embedding_matrix,
    cross_validate_naive_bayes,
    cross_validate_rnn,
    encode_labelled_sentences,
    list_text_class_names,
    package_rnn,
)
from dlflow.pipelines.text.nodes import build_text_corpus, build_vocabulary, prepare_labelled_sentences
from dlflow.text import Vocabulary
from dlflow.tracking.context import RunContext
from dlflow.training import predict

POSITIVE = ["a great and moving film", "wonderful acting , great story", "moving and wonderful"]
NEGATIVE = ["a dull and boring film", "terrible acting , dull story", "boring and terrible"]


def mr_table(repeats: int = 20) -> pd.DataFrame:
    sentences = (POSITIVE + NEGATIVE) * repeats
    labels = ([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * repeats
    folds = np.arange(len(sentences)) % 3
    names = np.array(["negative", "positive"], dtype=object)[labels]
    return pd.DataFrame({"sentence": sentences, "label": np.int8(labels), "class_name": names, "fold": np.int8(folds)})


RNN = {
    "max_length": 8,
    "model": {"cell": "gru", "hidden_size": 8, "dropout": 0.0, "embedding_mode": "non_static"},
    "evaluation": {"mode": "cv", "test_fold": 0, "validation_fraction": 0.2},
    "training": {"epochs": 6, "batch_size": 16, "lr": 0.02, "optimizer": "adam", "progress": False, "bucket_by_feature": 1},
    "baseline": {"alpha": 1.0, "ngram_max": 2},
    "registration": {"model_name": "unused"},
}


NO_RUN = RunContext(run_id=None, tracking_uri="", project_path=Path("."))


def cross_validate(encoded, embeddings, params, run_context=NO_RUN, checkpoints=None, class_names=("negative", "positive")):
    """``cross_validate_rnn`` with the parameter blocks the pipeline gives it."""
    blocks = [params.get(name, {}) for name in ("model", "adversarial", "evaluation", "training")]
    return cross_validate_rnn(encoded, embeddings, list(class_names), *blocks, checkpoints, run_context)


def mr_vocabulary(mr: pd.DataFrame) -> dict:
    return build_vocabulary(build_text_corpus(mr, None, None, None, None, ["labelled"], {}, None), {"min_count": 1})


def encoded_inputs(mr: pd.DataFrame) -> tuple[dict, np.ndarray]:
    vocabulary = mr_vocabulary(mr)
    words = list(Vocabulary.from_dict(vocabulary).words[2:])  # without <pad>, <unk>
    vectors = {"words": words, "vectors": np.random.default_rng(0).normal(size=(len(words), 6)).astype(np.float32)}
    embeddings = build_embedding_matrix(vectors, vocabulary, seed=42)
    assert embeddings.shape == (len(words) + 2, 6) and not embeddings[0].any()
    return encode_labelled_sentences(mr, vocabulary, RNN["max_length"]), embeddings


def test_cross_validation_predicts_every_sentence_out_of_fold():
    mr = mr_table()
    encoded, embeddings = encoded_inputs(mr)

    model, history, predictions, metrics, report = cross_validate(encoded, embeddings, RNN)
    assert sorted(predictions["row"]) == list(range(len(mr)))  # each sentence once, by a model that never saw it
    assert set(report["fold_accuracy"]) == {"0", "1", "2"}
    assert report["accuracy_mean"] > 0.9  # the words decide the label
    assert metrics["cv_accuracy_mean"]["value"] == report["accuracy_mean"]
    assert len(history) == 6
    # Trained on the training folds' rows of the embedding, registered over the full vocabulary:
    assert model.embedding.num_embeddings == len(embeddings)
    fold0 = predictions[predictions["fold"] == 0]
    again = predict(model, (torch.from_numpy(encoded["ids"][fold0["row"]]), torch.from_numpy(encoded["lengths"][fold0["row"]])))
    np.testing.assert_allclose(np.stack(fold0["probabilities"]), again.numpy(), rtol=1e-5, atol=1e-6)

    nb_metrics, nb_report, nb_predictions = cross_validate_naive_bayes(
        mr, ["negative", "positive"], RNN["baseline"], RNN["evaluation"]
    )
    assert set(nb_report["fold_accuracy"]) == {"0", "1", "2"} and nb_report["accuracy_mean"] == 1.0
    assert nb_predictions["row"].tolist() == predictions["row"].tolist()  # the same sentences, for paired comparisons
    assert report["mode"] == nb_report["mode"] == "cv" and report["mode_chosen_by"] == "rnn.evaluation.mode"


@pytest.mark.e2e  # training processes of their own (fold workers)
def test_folds_in_worker_processes_give_the_same_results_and_log_their_epochs_live(tmp_path):
    """Two workers, one thread each, against one process: the same models, predictions and metrics,
    and each worker logs its fold's epochs to the parent's MLflow run."""
    import mlflow

    encoded, embeddings = encoded_inputs(mr_table(repeats=8))
    params = RNN | {"training": RNN["training"] | {"epochs": 2, "num_threads": 1}}
    alone = cross_validate(encoded, embeddings, params | {"evaluation": RNN["evaluation"] | {"workers": 1}})
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            context = RunContext(run_id=run.info.run_id, tracking_uri=uri, project_path=tmp_path)
            side_by_side = cross_validate(
                encoded, embeddings, params | {"evaluation": RNN["evaluation"] | {"workers": 2}}, context
            )
        client = mlflow.MlflowClient()
        for name in ("train_loss", "fold1_train_loss", "fold2_sentences_per_second"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2], name
    finally:
        mlflow.set_tracking_uri(previous)
    pd.testing.assert_frame_equal(alone[2], side_by_side[2])  # every out-of-fold probability
    assert alone[4] == side_by_side[4]
    for (name, weight), other in zip(alone[0].state_dict().items(), side_by_side[0].state_dict().values(), strict=True):
        torch.testing.assert_close(weight, other, rtol=0, atol=0, msg=name)


# --- three classes, from a real file --------------------------------------------------------

TOPICS = {
    "billing": ["my invoice is wrong", "refund the double charge", "the invoice shows a wrong charge", "charge refund please"],
    "access": ["cannot log in today", "password reset does not work", "locked out of my account", "log in fails again"],
    "hardware": ["the printer is jammed", "laptop screen flickers", "printer shows paper jam", "screen of the laptop is dark"],
}


def support_tickets(tmp_path: Path, repeats: int = 6) -> Path:
    """A JSON Lines file of labelled tickets, three queues, written as a help desk would export it."""
    rows = [{"body": text, "queue": queue} for _ in range(repeats) for queue, texts in TOPICS.items() for text in texts]
    path = tmp_path / "tickets.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    return path


def test_three_classes_from_a_file_to_a_servable_model(tmp_path: Path) -> None:
    import mlflow

    from dlflow.model_registry.model import log_model

    raw = LabelledTextDataset(filepath=str(support_tickets(tmp_path)), source="table", text_column="body", label_column="queue")
    sentences = prepare_labelled_sentences(raw.load(), folds=3, fold_seed=0)
    class_names = list_text_class_names(sentences)
    assert class_names == ["access", "billing", "hardware"]
    encoded, embeddings = encoded_inputs(sentences)
    params = RNN | {"evaluation": {"mode": None, "cv_max_sentences": 50, "test_fold": 1, "validation_fraction": 0.01}}

    # 72 sentences > cv_max_sentences: one split; the validation slice still holds one sentence of each class
    model, history, predictions, metrics, report = cross_validate(encoded, embeddings, params, class_names=class_names)
    assert report["mode"] == "split" and "72 sentences > rnn.evaluation.cv_max_sentences (50)" in report["mode_chosen_by"]
    assert set(predictions["fold"]) == {1} and np.stack(predictions["probabilities"]).shape == (24, 3)
    assert set(predictions["label"]) == {0, 1, 2} and report["accuracy_mean"] > 0.9

    nb_metrics, nb_report, nb_predictions = cross_validate_naive_bayes(
        sentences, class_names, RNN["baseline"], params["evaluation"]
    )
    assert nb_report["mode"] == "split" and set(nb_report["fold_accuracy"]) == {"1"}
    assert set(nb_report["out_of_fold"]["per_class"]) == set(class_names)
    assert nb_metrics["baseline_nb_macro_f1"]["value"] == nb_report["out_of_fold"]["macro_f1"] > 0.9
    assert np.stack(nb_predictions["probabilities"]).shape == (24, 3)
    np.testing.assert_allclose(np.stack(nb_predictions["probabilities"]).sum(axis=1), 1.0, rtol=1e-5)

    package = package_rnn(model, mr_vocabulary(sentences), sentences, predictions, class_names, RNN["max_length"])
    servable = package["model"]
    assert servable.describe()["class_names"] == class_names
    assert (
        "polarity" not in servable.describe()["summary"]
        and "3 classes: access, billing, hardware" in servable.describe()["summary"]
    )

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run():
            uri = log_model(package).model_uri
        loaded = mlflow.pyfunc.load_model(uri)
        tickets = ["the printer is jammed again", "refund my double charge", "password reset fails"]
        answer = loaded.predict(pd.DataFrame({"sentence": tickets}))
        assert list(answer.columns) == ["label", "probability", "p_access", "p_billing", "p_hardware"]
        assert answer["label"].tolist() == ["hardware", "billing", "access"]
        np.testing.assert_allclose(answer[["p_access", "p_billing", "p_hardware"]].sum(axis=1), 1.0, rtol=1e-5)
        assert loaded.metadata.metadata["class_names"] == class_names  # what registration and batch inference read
    finally:
        mlflow.set_tracking_uri(previous)


def test_evaluation_mode_by_data_size() -> None:
    auto = RnnEvaluationParams(cv_max_sentences=20000)
    assert auto.mode is None and auto.resolved_mode(10_662) == "cv" and auto.resolved_mode(20_001) == "split"
    assert RnnEvaluationParams(mode="cv").resolved_mode(10**6) == "cv"
    assert RnnEvaluationParams(mode="split").resolved_mode(10) == "split"
