"""Unit tests of the run records: resume keys and interrupted runs, the manifest, replay's comparison."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dlflow.tracking.context import RunContext
from dlflow.tracking.manifest import REPLAY_TOLERANCE, build_manifest, environment, environment_differences, reproducibility
from dlflow.tracking.replay import ReplayReport, _compare
from dlflow.tracking.resume import HOST_TAG, KEY_TAG, PID_TAG, find_interrupted_run, owner_tags, resume_key

RUN_PARAMS = {"pipeline_names": ["rnn"], "env": "test", "project_path": "."}


@pytest.fixture
def client(tmp_path, monkeypatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    while mlflow.active_run() is not None:  # one left open by an earlier test in this process
        mlflow.end_run()
    mlflow.set_experiment("unit")  # not an experiment id an earlier test made current in another store
    return MlflowClient(uri)


# --------------------------------------------------------------------------- resume


def test_resume_key_changes_with_any_parameter_or_selection_and_nothing_else():
    params = {"rnn": {"training": {"lr": 0.001}}}
    key = resume_key(RUN_PARAMS, params)
    assert key == resume_key(RUN_PARAMS | {"session_id": "another"}, params)  # not part of what is computed
    assert key != resume_key(RUN_PARAMS, {"rnn": {"training": {"lr": 0.002}}})
    assert key != resume_key(RUN_PARAMS | {"pipeline_names": ["cnn"]}, params)
    assert key != resume_key(RUN_PARAMS | {"node_names": ["train_word2vec"]}, params)


def test_only_a_running_run_whose_process_is_gone_is_resumed(client):
    experiment = client.create_experiment("resume")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone_pid = dead.stdout.strip()  # that process has exited

    def started(key: str, pid: str, host: str = socket.gethostname(), finish: bool = False) -> str:
        run = client.create_run(experiment, tags={KEY_TAG: key, PID_TAG: pid, HOST_TAG: host})
        if finish:
            client.set_terminated(run.info.run_id)
        return run.info.run_id

    started("k1", gone_pid, finish=True)  # finished: nothing to resume
    started("k1", str(os.getpid()))  # still alive (this process)
    started("k1", gone_pid, host="another-host")  # cannot tell from here
    started("k2", gone_pid)  # another command
    assert find_interrupted_run(client, experiment, "k1") is None

    killed = started("k1", gone_pid)
    assert find_interrupted_run(client, experiment, "k1") == killed


def test_owner_tags_name_this_process():
    assert owner_tags() == {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def test_checkpoints_are_scoped_to_the_run_of_the_context(tmp_path):
    without_run = RunContext(run_id=None, tracking_uri="sqlite:///x.db", project_path=tmp_path)
    assert without_run.checkpoint_dir("data/ckpt") == "data/ckpt"
    assert without_run.checkpoint_dir(None) is None
    in_run = RunContext(run_id="abc123", tracking_uri="sqlite:///x.db", project_path=tmp_path)
    assert in_run.checkpoint_dir("data/ckpt") == "data/ckpt/abc123"


# --------------------------------------------------------------------------- manifest


def test_lock_free_word2vec_makes_a_run_not_bit_reproducible():
    fast = {"word2vec": {"training": {"deterministic": False}}}
    record = reproducibility({"train_word2vec", "cross_validate_rnn"}, fast)
    assert record["bit_reproducible"] is False
    assert "word2vec.training.deterministic=false" in record["why_not"][0]
    assert record["replay_tolerance"] == REPLAY_TOLERANCE

    deterministic = {"word2vec": {"training": {"deterministic": True}}}
    assert reproducibility({"train_word2vec"}, deterministic) == {
        "bit_reproducible": True,
        "why_not": [],
        "replay_tolerance": 0.0,
    }
    assert reproducibility({"train_cnn"}, fast)["bit_reproducible"] is True  # the CNN does not train vectors


def test_manifest_records_what_a_replay_needs(tmp_path):
    params = {"cnn": {"data": {"split_seed": 7}, "training": {"seed": 42}}}
    manifest = build_manifest(RUN_PARAMS | {"project_path": str(tmp_path)}, params, {"b": "2", "a": "1"})
    assert manifest["pipeline_names"] == ["rnn"] and manifest["env"] == "test"
    assert manifest["seeds"] == {"cnn.data.split_seed": 7, "cnn.training.seed": 42}
    assert manifest["parameters"] == params
    assert list(manifest["inputs"]) == ["a", "b"]
    assert manifest["environment"]["torch"] == environment()["torch"]


def test_environment_differences_name_each_change():
    old = {"torch": "2.4.0", "device": "cpu", "packages": {"numpy": "1.26.0", "pandas": "2.2.0"}}
    new = {"torch": "2.5.0", "device": "cpu", "packages": {"numpy": "2.0.0", "pandas": "2.2.0", "numba": "0.60"}}
    differences = environment_differences(old, new)
    assert "torch: 2.4.0 → 2.5.0" in differences
    assert any("numpy" in d and "1.26.0" in d for d in differences)
    assert any("numba" in d for d in differences)
    assert not any("pandas" in d or "device" in d for d in differences)


# --------------------------------------------------------------------------- replay


def test_replay_comparison_is_exact_unless_a_tolerance_is_stated():
    old = {"test_accuracy": 0.790, "epoch_seconds": 7.0, "word2vec_words_per_second": 9e5}
    new = {"test_accuracy": 0.785, "epoch_seconds": 9.0, "word2vec_words_per_second": 8e5}
    assert _compare("metric", old, new) == ["metric test_accuracy: 0.79 → 0.785"]  # timings never count
    assert _compare("metric", old, new, tolerance=REPLAY_TOLERANCE) == []
    assert _compare("metric", old, {"test_accuracy": 0.75}, tolerance=REPLAY_TOLERANCE) == ["metric test_accuracy: 0.79 → 0.75"]
    assert _compare("metric", {"loss": 100.0}, {"loss": 101.5}, tolerance=REPLAY_TOLERANCE) == []  # relative above 1
    assert _compare("metric", old, {}) == ["metric test_accuracy: 0.79 → None"]


def test_replay_report_states_its_tolerance():
    report = ReplayReport("abc", "def", tolerance=0.02)
    assert report.identical
    assert report.lines()[-1] == "(metrics compared within ±2% of their value: the run is not bit-reproducible)"
