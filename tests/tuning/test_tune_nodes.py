"""The RNN's tuning nodes on a tiny MR-like table (``tune_rnn`` end to end needs Word2Vec: too slow for CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlflow.pipelines.rnn.nodes import build_embedding_matrix, encode_labelled_sentences
from dlflow.pipelines.tuning.nodes import predict_tuned_rnn, select_best_model, summarise_study, tune_rnn
from dlflow.text import Vocabulary
from dlflow.tracking.context import RunContext
from tests.pipelines.test_rnn_nodes import RNN, mr_table, mr_vocabulary

TUNING = {
    "storage": None,
    "rnn": {
        "study_name": "rnn-nodes",
        "n_trials": 2,
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "space": {
            "model": {
                "cell": {"type": "categorical", "choices": ["gru", "lstm"]},
                "hidden_size": {"type": "int", "low": 4, "high": 8},
            }
        },
    },
}


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.delenv("DLFLOW_TUNING_STORAGE", raising=False)
    yield tmp_path / "mlruns"
    mlflow.set_tracking_uri(previous)


def test_tune_rnn_trains_trials_on_the_training_folds_and_the_best_predicts_the_held_out_fold(mlflow_store: Path) -> None:
    import mlflow

    mr = mr_table()
    vocabulary = mr_vocabulary(mr)
    words = list(Vocabulary.from_dict(vocabulary).words[2:])
    vectors = {"words": words, "vectors": np.random.default_rng(0).normal(size=(len(words), 6)).astype(np.float32)}
    encoded = encode_labelled_sentences(mr, vocabulary, RNN["max_length"])
    embeddings = build_embedding_matrix(vectors, vocabulary, seed=42)
    rnn = RNN | {"training": RNN["training"] | {"epochs": 2}}

    with mlflow.start_run() as run:
        context = RunContext(run.info.run_id, mlflow.get_tracking_uri(), mlflow_store.parent)
        study = tune_rnn(
            encoded, embeddings, ["negative", "positive"], rnn, TUNING, str(mlflow_store.parent / "ckpt"), context, wait=True
        )
        trials, best, metrics = summarise_study(study, TUNING, family="rnn")
        model, tuned, history = select_best_model(study, rnn, family="rnn")
        predictions = predict_tuned_rnn(model, encoded, tuned)

    assert (mlflow_store / "optuna.db").exists()  # beside the MLflow store
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"] and len(trials) == 2
    assert tuned["model"]["cell"] == best["best_params"]["model.cell"] and tuned["training"]["epochs"] == 2
    assert best["command"].startswith('kedro run --pipeline rnn --params "rnn.model.cell=')
    assert [record["epoch"] for record in history] == [1, 2]
    assert sorted(predictions["row"]) == sorted(np.flatnonzero(encoded["folds"] == 0))  # the held-out fold only
    assert metrics["tuning_trials_complete"]["value"] == 2
