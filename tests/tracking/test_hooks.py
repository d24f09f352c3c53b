"""Unit tests of the project hooks, called in the order Kedro calls them, against a real MLflow store."""

from __future__ import annotations

import time
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from kedro.pipeline import Pipeline, node

from dlflow.tracking.hooks import LineageHook, TimingHook, process_start_time
from dlflow.tracking.manifest import REPRODUCIBLE_TAG
from dlflow.tracking.resume import KEY_TAG, PID_TAG
from dlflow.validation import ParameterValidationHook

PARAMS = {"word2vec": {"training": {"deterministic": False}}, "cnn": {"training": {"seed": 42}}}


def _identity(x):
    return x


@pytest.fixture
def run(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_experiment("unit")  # not an experiment id an earlier test made current in another store
    with mlflow.start_run() as active:
        yield active
    mlflow.end_run()


def test_invalid_parameters_stop_the_run_before_any_work():
    with pytest.raises(ValueError, match=r"cnn\.training\.lr"):
        ParameterValidationHook().after_context_created(SimpleNamespace(params={"cnn": {"training": {"lr": -1}}}))


def test_lineage_tags_the_run_logs_each_table_once_and_writes_the_manifest(run, tmp_path):
    hook = LineageHook()
    hook.after_context_created(SimpleNamespace(params=PARAMS))
    pipeline = Pipeline([node(_identity, "text_corpus", "out", name="train_word2vec")])
    hook.before_pipeline_run({"project_path": str(tmp_path), "pipeline_names": ["word2vec"], "env": "test"}, pipeline)
    table = pd.DataFrame({"sentence": ["a b", "c"], "label": [1, 0]})
    hook.after_dataset_loaded("mr_sentences", table)
    hook.after_dataset_loaded("mr_sentences", table)  # loaded again by another node: logged once
    hook.after_dataset_loaded("params:cnn", {"a": 1})  # not a table: not an input
    hook.after_pipeline_run({"project_path": str(tmp_path), "pipeline_names": ["word2vec"], "env": "test"})

    client = mlflow.MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.data.tags[REPRODUCIBLE_TAG] == "false"
    assert logged.data.tags[KEY_TAG] and logged.data.tags[PID_TAG]
    assert [i.dataset.name for i in logged.inputs.dataset_inputs] == ["mr_sentences"]
    manifest = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/manifest.json")
    assert manifest["reproducibility"]["bit_reproducible"] is False
    assert list(manifest["inputs"]) == ["mr_sentences"]
    assert manifest["seeds"] == {"cnn.training.seed": 42}


def test_timing_splits_the_run_into_nodes_loads_saves_and_the_rest(run):
    """Each phase is timed between its own two hooks: at least the work inside them, at most the time
    between the calls around them (measured here too), however busy the machine. Start-up ends where the
    runner reaches the first node (its first input's load); the phases then add up to the run's time."""
    hook, step, spans, began = TimingHook(), SimpleNamespace(name="train"), {}, {}

    def timed(phase: str, before, after, seconds: float) -> None:
        began[phase] = started = time.time()
        before()
        time.sleep(seconds)
        after()
        spans[phase] = (seconds, time.time() - started)

    hook.before_pipeline_run()
    timed("load", lambda: hook.before_dataset_loaded("table"), lambda: hook.after_dataset_loaded("table"), 0.05)
    timed("node", lambda: hook.before_node_run(step), lambda: hook.after_node_run(step), 0.1)
    timed("save", lambda: hook.before_dataset_saved("model"), lambda: hook.after_dataset_saved("model"), 0.05)
    hook.after_pipeline_run()
    ended = time.time()

    timings = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/timings.json")
    for phase, measured in (("load", timings["loading_seconds"]), ("node", timings["nodes"]["train"]),
                            ("save", timings["saving_seconds"])):  # fmt: skip
        slept, bracket = spans[phase]
        assert slept <= measured <= bracket, (phase, slept, measured, bracket)
    assert timings["pipeline_seconds"] >= timings["nodes"]["train"] + timings["saving_seconds"]
    assert timings["startup_seconds"] > 0  # this process started before its first node
    reached = timings["process_started"] + timings["startup_seconds"]
    assert began["load"] <= reached <= began["load"] + spans["load"][1]  # the first node's first input load
    assert timings["first_inputs_seconds"] >= spans["load"][0]  # the node ran once its input was loaded
    with_inputs = timings["startup_seconds"] + timings["first_inputs_seconds"]
    assert timings["startup_with_first_inputs_seconds"] == pytest.approx(with_inputs, abs=1e-6)
    phases = (timings["startup_seconds"] + sum(timings["nodes"].values()) + timings["loading_seconds"]
              + timings["saving_seconds"] + timings["other_seconds"])  # fmt: skip
    assert reached - timings["startup_seconds"] + phases <= ended  # nothing counted twice
    assert phases >= (began["save"] + spans["save"][0]) - timings["process_started"]  # nothing left out


def test_process_start_time_is_in_the_past():
    started = process_start_time()
    assert started is not None and started < time.time()
