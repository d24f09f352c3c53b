"""The pipelines a user can run: ``kedro run --pipeline <name>``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from dlflow.pipelines import cnn, inference, ingestion, rnn, tuning, word2vec


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {
        "ingestion": ingestion.create_pipeline(),
        "cnn": cnn.create_pipeline(),
        "word2vec": word2vec.create_pipeline(),
        "rnn": rnn.create_pipeline(),
        "inference_cnn": inference.create_cnn_pipeline(),
        "inference_rnn": inference.create_rnn_pipeline(),
        "tune_cnn": tuning.create_pipeline("cnn"),
        "tune_rnn": tuning.create_pipeline("rnn"),
        "tune_cnn_trials": tuning.create_pipeline("cnn", worker_only=True),
        "tune_rnn_trials": tuning.create_pipeline("rnn", worker_only=True),
    }
    pipelines["nlp"] = pipelines["word2vec"] + pipelines["rnn"]
    pipelines["inference"] = pipelines["inference_cnn"] + pipelines["inference_rnn"]
    pipelines["__default__"] = pipelines["cnn"]
    return pipelines
