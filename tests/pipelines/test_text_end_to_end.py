"""End to end: ``kedro run --pipeline word2vec|rnn --env test`` on the offline mirror, and on a labelled table.

Asserts the MLflow runs, their metrics and artifacts, and the registered
models answering raw inputs (words; raw sentences).
"""

from __future__ import annotations

import json
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


QUEUES = {
    "billing": ["invoice", "refund", "charge", "payment", "receipt", "price"],
    "access": ["password", "login", "account", "locked", "reset", "username"],
    "hardware": ["printer", "laptop", "screen", "keyboard", "cable", "battery"],
}
FILLER = ["the", "my", "is", "not", "again", "today", "please", "help", "with", "café"]


def support_tickets(path: Path, per_queue: int = 100, seed: int = 0) -> Path:
    """A real CSV export (Windows-1252, as a spreadsheet on Windows saves it): three queues of tickets,
    each ticket two of its queue's words among filler words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for queue, words in QUEUES.items():
        for _ in range(per_queue):
            ticket = [*rng.choice(words, 2), *rng.choice(FILLER, 4)]
            rng.shuffle(ticket)
            rows.append({"body": " ".join(ticket), "queue": queue})
    pd.DataFrame(rows).sample(frac=1, random_state=seed).to_csv(path, index=False, encoding="cp1252")
    return path


def test_rnn_on_a_labelled_table_registers_a_model_named_after_the_file(kedro_project: Path, tmp_path: Path) -> None:
    """``kedro run --pipeline rnn --env test --params text_source=table,labelled_text=<file>,...``: a three-class
    CSV goes from the file to a registered model that answers with the file's class names."""
    from kedro.io import DatasetError

    from tests.conftest import run_pipeline as run_with

    table = {"text_source": "table", "text_column": "body", "label_column": "queue", "labelled_text_encoding": "cp1252"}
    small = {"text.corpora": ["labelled"], "text.folds": 5}  # the tickets alone train the test env's tiny Word2Vec

    # a ticket without a queue stops the run at ingestion, naming the file and the row; nothing is written
    broken = support_tickets(tmp_path / "Broken Tickets.csv")
    frame = pd.read_csv(broken, encoding="cp1252")
    frame.loc[3, "queue"] = None
    frame.to_csv(broken, index=False, encoding="cp1252")
    with pytest.raises(DatasetError, match=r"Broken Tickets\.csv: the label \(column 'queue'\) is missing in row 5 "):
        run_with("rnn", labelled_text=str(broken), **table, **small)
    assert not (kedro_project / "data" / "02_intermediate" / "broken-tickets").exists()

    tickets = support_tickets(tmp_path / "Support Tickets.csv")
    run_with("rnn", labelled_text=str(tickets), **table, **small)

    client = MlflowClient()
    run = latest_run(client, "rnn")
    assert run.info.status == "FINISHED"
    assert run.data.tags["registered_model"] == "dlflow-rnn-support-tickets-test"  # the file's name
    assert "Support Tickets.csv" in run.data.tags["mlflow.note.content"]  # the run's description names the data
    metrics = run.data.metrics
    assert {"test_macro_f1", "test_f1_billing", "test_f1_access", "test_f1_hardware"} <= set(metrics)
    assert metrics["baseline_nb_macro_f1"] > 0.9  # two queue words in every ticket

    sentences = pd.read_parquet("data/02_intermediate/support-tickets/sentences.parquet")
    assert len(sentences) == 300 and set(sentences["class_name"]) == set(QUEUES)
    version = client.get_model_version_by_alias("dlflow-rnn-support-tickets-test", "champion")
    assert json.loads(version.tags["class_names"]) == ["access", "billing", "hardware"]

    classifier = mlflow.pyfunc.load_model("models:/dlflow-rnn-support-tickets-test@champion")
    assert classifier.metadata.metadata["class_names"] == ["access", "billing", "hardware"]
    answer = classifier.predict(pd.DataFrame({"sentence": ["my printer is broken", "refund my payment please"]}))
    assert list(answer.columns) == ["label", "probability", "p_access", "p_billing", "p_hardware"]
    assert set(answer["label"]) <= set(QUEUES)
