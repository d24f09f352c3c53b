"""RNN nodes: cross-validation mode on a tiny real-format MR-like table."""

from __future__ import annotations

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


def test_cross_validation_predicts_every_sentence_out_of_fold():
    mr = mr_table()
    text = {"corpora": ["mr"], "vocabulary": {"min_count": 1}}
    vocabulary = build_vocabulary(build_text_corpus(mr, None, None, None, None, text), text)
    words = list(Vocabulary.from_dict(vocabulary).words[2:])  # without <pad>, <unk>
    vectors = {"words": words, "vectors": np.random.default_rng(0).normal(size=(len(words), 6)).astype(np.float32)}

    encoded = encode_polarity(mr, vocabulary, RNN["max_length"])
    embeddings = build_embedding_matrix(vectors, vocabulary, seed=42)
    assert embeddings.shape == (len(words) + 2, 6) and not embeddings[0].any()

    model, history, predictions, metrics, report = cross_validate_rnn(encoded, embeddings, RNN)
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

    nb_metrics, nb_report = cross_validate_naive_bayes(mr, RNN)
    assert set(nb_report["fold_accuracy"]) == {"0", "1", "2"} and nb_report["accuracy_mean"] == 1.0
