"""End to end: ``kedro run --pipeline word2vec|rnn --env test`` on the offline mirror.

Asserts the MLflow runs, their metrics and artifacts, and the registered
models answering raw inputs (words; raw sentences).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient

from tests.mlflow_queries import pipeline_filter
from tests.pipelines.test_cnn_end_to_end import artifact_paths

pytestmark = pytest.mark.e2e


def run_pipeline(project: Path, name: str) -> None:
    with KedroSession.create(project_path=project, env="test") as session:
        session.run(pipeline_names=[name])


def latest_run(client: MlflowClient, pipeline: str):
    """The newest run of ``pipeline``, in its family's experiment (dlflow/word2vec, dlflow/rnn)."""
    experiment = client.get_experiment_by_name(f"dlflow/{pipeline}")
    runs = client.search_runs([experiment.experiment_id], pipeline_filter(pipeline), order_by=["attributes.start_time DESC"])
    assert runs, f"no MLflow run of the {pipeline} pipeline"
    return runs[0]


def test_word2vec_and_rnn_pipelines(kedro_project: Path, caplog: pytest.LogCaptureFixture, recwarn) -> None:
    client = MlflowClient()

    run_pipeline(kedro_project, "word2vec")
    run = latest_run(client, "word2vec")
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in (
        "analogy_accuracy",
        "analogy_oov_rate",
        "wordsim353_spearman",
        "wordsim353_oov_rate",
        "simlex999_spearman",
        "simlex999_oov_rate",
        "word2vec_words_per_second",
        "word2vec_train_seconds",
    ):
        assert name in metrics, (name, sorted(metrics))
    assert 0 <= metrics["analogy_oov_rate"] <= 1
    artifacts = artifact_paths(client, run.info.run_id)
    for expected in (
        "word2vec/vectors.txt",
        "word2vec/nearest_neighbours.json",
        "word2vec/embedding_map.png",
        "preprocessing/vocabulary.json",
        "evaluation/metrics.json",
    ):
        assert expected in artifacts, (expected, sorted(artifacts))

    from gensim.models import KeyedVectors

    vectors = KeyedVectors.load_word2vec_format("data/06_models/word2vec/vectors.txt")
    assert vectors.vector_size == 32 and "movie" in vectors.key_to_index

    embeddings = mlflow.pyfunc.load_model("models:/dlflow-word2vec-test@champion")
    answer = embeddings.predict(pd.DataFrame({"word": ["movie"]}), params={"query": "most_similar", "topn": 5})
    assert list(answer["rank"]) == [1, 2, 3, 4, 5]
    assert answer["neighbour"].iloc[0] == vectors.most_similar("movie", topn=1)[0][0]
    vector = embeddings.predict(pd.DataFrame({"word": ["movie"]}), params={"query": "vector"})
    assert vector["vector"].iloc[0] == pytest.approx(vectors["movie"].tolist(), abs=1e-5)

    run_pipeline(kedro_project, "rnn")
    run = latest_run(client, "rnn")
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in (
        "test_accuracy",
        "cv_accuracy_mean",
        "baseline_nb_cv_accuracy_mean",
        "train_loss",
        "val_accuracy",
        "sentences_per_second",
    ):
        assert name in metrics, (name, sorted(metrics))
    assert metrics["baseline_nb_cv_accuracy_mean"] > 0.7  # Naive Bayes on one MR fold
    assert metrics["test_accuracy"] == pytest.approx(metrics["cv_accuracy_mean"])  # split mode: one fold
    artifacts = artifact_paths(client, run.info.run_id)
    for expected in (
        "evaluation/confusion_matrix.png",
        "evaluation/learning_curves.png",
        "evaluation/cross_validation.json",
        "evaluation/naive_bayes_cross_validation.json",
    ):
        assert expected in artifacts, (expected, sorted(artifacts))

    # the registered RNN takes raw sentences and agrees with the pipeline's predictions
    classifier = mlflow.pyfunc.load_model("models:/dlflow-rnn-mr-test@champion")
    sentences = pd.read_parquet("data/02_intermediate/mr/sentences.parquet")
    predictions = pd.read_parquet("data/07_model_output/rnn/out_of_fold_predictions.parquet")
    sample = predictions.head(50)
    answer = classifier.predict(pd.DataFrame({"sentence": sentences["sentence"].iloc[sample["row"]].tolist()}))
    assert set(answer.columns) >= {"label", "probability", "p_negative", "p_positive"}
    expected = ["negative", "positive"]
    assert answer["label"].tolist() == [expected[i] for i in sample["prediction"]]
    assert answer["probability"].between(0.5, 1.0).all()
    assert run.info.run_name == "rnn gru non_static fold0 [test]"

    # no warning that every run would repeat: no pickled models, no integer columns without a schema
    from_mlflow = [r.getMessage()[:160] for r in caplog.records if r.name.startswith("mlflow") and r.levelno >= 30]
    assert not from_mlflow, from_mlflow
    ours = [str(w.message)[:160] for w in recwarn if "integer" in str(w.message) or "CloudPickle" in str(w.message)]
    assert not ours, ours
