"""RNN nodes: cross-validation mode on a tiny real-format MR-like table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlflow.pipelines.rnn.nodes import (
    build_embedding_matrix,
    cross_validate_naive_bayes,
    cross_validate_rnn,
    encode_polarity,
)
from dlflow.pipelines.text.nodes import build_text_corpus, build_vocabulary
from dlflow.text import Vocabulary
from dlflow.tracking.context import RunContext
from dlflow.training import predict

POSITIVE = ["a great and moving film", "wonderful acting , great story", "moving and wonderful"]
NEGATIVE = ["a dull and boring film", "terrible acting , dull story", "boring and terrible"]


def mr_table(repeats: int = 20) -> pd.DataFrame:
    sentences = (POSITIVE + NEGATIVE) * repeats
    labels = ([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * repeats
    folds = np.arange(len(sentences)) % 3
    return pd.DataFrame({"sentence": sentences, "label": np.int8(labels), "fold": np.int8(folds)})


RNN = {
    "max_length": 8,
    "model": {"cell": "gru", "hidden_size": 8, "dropout": 0.0, "embedding_mode": "non_static"},
    "evaluation": {"mode": "cv", "test_fold": 0, "validation_fraction": 0.2},
    "training": {"epochs": 6, "batch_size": 16, "lr": 0.02, "optimizer": "adam", "progress": False, "bucket_by_feature": 1},
    "baseline": {"alpha": 1.0, "ngram_max": 2},
    "registration": {"model_name": "unused"},
}


NO_RUN = RunContext(run_id=None, tracking_uri="", project_path=Path("."))


def cross_validate(encoded, embeddings, params, run_context=NO_RUN, checkpoints=None):
    """``cross_validate_rnn`` with the parameter blocks the pipeline gives it."""
    blocks = [params.get(name, {}) for name in ("model", "adversarial", "evaluation", "training")]
    return cross_validate_rnn(encoded, embeddings, *blocks, checkpoints, run_context)


def mr_vocabulary(mr: pd.DataFrame) -> dict:
    return build_vocabulary(build_text_corpus(mr, None, None, None, None, ["mr"], {}, None), {"min_count": 1})


def encoded_inputs(mr: pd.DataFrame) -> tuple[dict, np.ndarray]:
    vocabulary = mr_vocabulary(mr)
    words = list(Vocabulary.from_dict(vocabulary).words[2:])  # without <pad>, <unk>
    vectors = {"words": words, "vectors": np.random.default_rng(0).normal(size=(len(words), 6)).astype(np.float32)}
    embeddings = build_embedding_matrix(vectors, vocabulary, seed=42)
    assert embeddings.shape == (len(words) + 2, 6) and not embeddings[0].any()
    return encode_polarity(mr, vocabulary, RNN["max_length"]), embeddings


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

    nb_metrics, nb_report = cross_validate_naive_bayes(mr, RNN["baseline"], RNN["evaluation"])
    assert set(nb_report["fold_accuracy"]) == {"0", "1", "2"} and nb_report["accuracy_mean"] == 1.0


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
