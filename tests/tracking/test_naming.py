"""Run names, experiments and descriptions, read off parameters (dlflow.tracking.naming)."""

from __future__ import annotations

import pytest
import yaml

from dlflow.tracking.naming import REUSE_NOTE_TAG, experiment_name, load_config, result_summary, run_description, run_name

PARAMS = {
    "image_source": "fashion_mnist",
    "cnn": {"model": {"architecture": "fast"}, "training": {"epochs": 4, "batch_size": 256, "lr": 0.006}, "data": {}},
    "word2vec": {"training": {"mode": "cbow", "dim": 100, "epochs": 5, "window": 5}},
    "text": {"corpora": ["mr", "subjectivity"], "folds": 10},
    "rnn": {
        "model": {"cell": "lstm", "bidirectional": True, "embedding_mode": "non_static"},
        "evaluation": {"mode": "cv", "test_fold": 0},
        "training": {"epochs": 4},
    },
    "inference": {"cnn": {"model_name": "dlflow-cnn-fashion_mnist", "alias": "champion"}},
    "tuning": {
        "cnn": {
            "study_name": "tune-cnn-fashion_mnist",
            "n_trials": 30,
            "sampler": {"type": "tpe"},
            "pruner": {"type": "median"},
            "space": {"training": {"lr": {"type": "float", "low": 0.001, "high": 0.01}}, "model.options.dropout": {}},
        }
    },
}


@pytest.fixture(scope="module")
def project_config():
    with open("conf/base/experiments.yml") as stream:
        return load_config(yaml.safe_load(stream))


def test_each_family_has_its_experiment(project_config) -> None:
    assert experiment_name(["cnn"], project_config) == "dlflow/cnn"
    assert experiment_name(None, project_config) == "dlflow/cnn"  # `kedro run`: the __default__ pipeline
    assert experiment_name(["word2vec"], project_config) == "dlflow/word2vec"
    assert experiment_name(["nlp"], project_config) == "dlflow/rnn"
    assert experiment_name(["inference_rnn"], project_config) == "dlflow/inference"
    assert experiment_name(["tune_cnn_trials"], project_config) == "dlflow/tune_cnn"  # every worker of a study
    assert experiment_name(["my_pipeline"], project_config) == "dlflow/my_pipeline"  # not listed: <prefix>/<pipeline>


def test_run_names_say_what_ran() -> None:
    assert run_name(["cnn"], PARAMS) == "cnn fast fashion_mnist 4ep"
    assert run_name(["cnn"], PARAMS, env="test") == "cnn fast fashion_mnist 4ep [test]"
    assert run_name(["word2vec"], PARAMS, env="local") == "word2vec cbow d100 5ep"
    assert run_name(["rnn"], PARAMS) == "rnn lstm non_static cv10"
    split = PARAMS | {"rnn": PARAMS["rnn"] | {"evaluation": {"mode": "split", "test_fold": 3}}}
    assert run_name(["rnn"], split) == "rnn lstm non_static fold3"
    assert run_name(["nlp"], PARAMS) == "word2vec cbow d100 5ep + rnn lstm non_static cv10"
    assert run_name(["inference_cnn"], PARAMS) == "inference_cnn champion"
    assert run_name(["inference_cnn"], PARAMS, tags={"inference.cnn.model_version": "3"}) == "inference_cnn champion v3"
    assert run_name(["something_else"], PARAMS) == "something_else"
    assert run_name(["tune_cnn"], PARAMS) == "tune_cnn tune-cnn-fashion_mnist 30 trials"
    assert run_name(["tune_cnn_trials"], PARAMS) == "tune_cnn_trials tune-cnn-fashion_mnist 30 trials"


def test_descriptions_say_what_ran_on_which_data_and_then_the_result(project_config) -> None:
    text = run_description(["cnn"], PARAMS, "test", "kedro run --pipeline=cnn")
    assert "fast CNN trained on fashion_mnist" in text and "4 epochs of batch 256" in text
    assert "`kedro run --pipeline=cnn` (Kedro environment `test`)" in text
    assert "corpora mr, subjectivity" in run_description(["word2vec"], PARAMS)
    tuning = run_description(["tune_cnn"], PARAMS)
    assert "Optuna study tune-cnn-fashion_mnist, tpe sampler, median pruner" in tuning
    assert "over cnn: model.options.dropout, training.lr; budget 30 trials" in tuning and "promotion gate" in tuning
    assert "biLSTM" in run_description(["rnn"], PARAMS) and "10-fold cross-validation" in run_description(["rnn"], PARAMS)

    metrics = {"test_accuracy": 0.92961, "test_macro_f1": 0.9301, "train_loss": 0.2}
    tags = {"registered_model": "dlflow-cnn-fashion_mnist", "registered_version": "3", "gate_decision": "promoted"}
    summary = result_summary(["cnn"], project_config, metrics, tags)
    assert "test_accuracy 0.9296, test_macro_f1 0.9301" in summary and "train_loss" not in summary
    assert "dlflow-cnn-fashion_mnist v3, gate decision: promoted" in summary
    assert result_summary(["cnn"], project_config, {}, {}) == ""
    reused = "**Reused** (...):\n- `ingest_images` from run ..."  # dlflow.tracking.reuse's paragraph: kept, last
    assert result_summary(["cnn"], project_config, metrics, tags | {REUSE_NOTE_TAG: reused}).endswith("\n\n" + reused)


def test_a_bad_experiments_file_is_named() -> None:
    with pytest.raises(ValueError, match=r"experiments\.yml is invalid: experiment: Extra inputs"):
        load_config({"experiment": {"cnn": "x"}})


def test_a_run_ends_with_one_line_saying_how_it_ended() -> None:
    from dlflow.tracking.naming import run_url, summary_line

    config = load_config({"headline_metrics": {"cnn": ["test_accuracy", "test_macro_f1"]}})
    tags = {"registered_model": "dlflow-cnn-fashion_mnist", "registered_version": "3", "gate_decision": "promoted"}
    url = run_url("http://mlflow.internal:5000/", "7", "abc123")
    line = summary_line(["cnn"], config, {"test_accuracy": 0.92771, "train_loss": 0.3}, tags, url)
    assert line == (
        "Run finished: cnn | test_accuracy 0.9277 | registered dlflow-cnn-fashion_mnist v3 (promoted) "
        "| MLflow: http://mlflow.internal:5000/#/experiments/7/runs/abc123"
    )
    local = run_url("sqlite:////data/mlruns/mlflow.db", "1", "r")
    assert (
        local.startswith("http://127.0.0.1:5000/#/experiments/1/runs/r")
        and "mlflow ui --backend-store-uri sqlite:////data" in local
    )
