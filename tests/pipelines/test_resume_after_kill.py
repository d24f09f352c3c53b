"""``kill -9`` a ``kedro run`` mid-training, run the same command again: it resumes.

Real processes, a real kill: the second run continues from the last epoch
checkpoint inside the same MLflow run and ends with exactly the metrics of an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e

EPOCHS = "cnn.training.epochs=3"


def child_env() -> dict[str, str]:
    """This process's environment (the fixture's MLflow store) for a ``kedro run`` child, telemetry off."""
    return os.environ | {"KEDRO_DISABLE_TELEMETRY": "true"}


def kill_once(command: list[str], project: Path, recorded, what: str, seconds: float) -> None:
    """Start ``command`` in ``project`` and ``kill -9`` its process group as soon as ``recorded()`` holds."""
    MlflowClient().search_experiments()  # the store's tables exist before the child starts: no two processes create them
    victim = subprocess.Popen(
        command, cwd=project, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + seconds
    while not recorded():
        assert victim.poll() is None, f"the run ended before {what} was recorded"
        assert time.monotonic() < deadline, f"no {what} recorded within {seconds:.0f} s"
        time.sleep(0.1)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()


def kedro_run(*params: str) -> list[str]:
    return [sys.executable, "-m", "kedro", "run", "--pipeline", "cnn", "--env", "test", "--params", ",".join(params)]


def test_killed_run_resumes_in_the_same_mlflow_run(kedro_project: Path) -> None:
    env = child_env()
    checkpoints = kedro_project / "data/06_models/checkpoints/cnn-test"
    client = MlflowClient()

    def first_epoch_done() -> bool:
        """Epoch 1 is checkpointed and its metrics are in MLflow (the loop checkpoints first)."""
        experiment = client.get_experiment_by_name("dlflow/cnn")
        if not list(checkpoints.glob("*/*/last.pt")) or experiment is None:  # <run id>/<config key>/
            return False
        runs = client.search_runs([experiment.experiment_id])
        return bool(runs) and bool(client.get_metric_history(runs[0].info.run_id, "train_loss"))

    kill_once(kedro_run(EPOCHS), kedro_project, first_epoch_done, "the first epoch", 240)

    experiment = client.get_experiment_by_name("dlflow/cnn")
    (killed,) = client.search_runs([experiment.experiment_id])
    assert killed.info.status == "RUNNING"  # what kill -9 leaves behind
    done_before_kill = len(client.get_metric_history(killed.info.run_id, "train_loss"))
    assert 1 <= done_before_kill < 3

    subprocess.run(kedro_run(EPOCHS), cwd=kedro_project, env=env, check=True, capture_output=True, timeout=600)
    (resumed,) = client.search_runs([experiment.experiment_id])
    assert resumed.info.run_id == killed.info.run_id
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "train_loss")] == [1, 2, 3]

    # the same seed, uninterrupted (a new run, so a checkpoint folder of its own): the same result
    subprocess.run(
        kedro_run(EPOCHS),  # a new MLflow run: a checkpoint folder of its own
        cwd=kedro_project,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    reference = runs[0]
    assert reference.info.run_id != resumed.info.run_id
    final = client.get_run(resumed.info.run_id).data.metrics
    for metric in ("test_accuracy", "test_macro_f1", "train_loss", "val_loss"):
        assert final[metric] == reference.data.metrics[metric], metric


def test_killed_rnn_run_resumes_with_the_vectors_it_trained(kedro_project: Path) -> None:
    """The resumed run does not retrain Word2Vec: the node cache vouches for the vectors written before the kill."""
    env = child_env()
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "rnn", "--env", "test", "--params", "rnn.training.epochs=3"]
    vectors = kedro_project / "data/06_models/word2vec/vectors.txt"
    client = MlflowClient()

    def rnn_epoch_done() -> bool:
        experiment = client.get_experiment_by_name("dlflow/rnn")
        runs = client.search_runs([experiment.experiment_id]) if experiment is not None else []
        return bool(runs) and bool(client.get_metric_history(runs[0].info.run_id, "train_loss"))

    kill_once(command, kedro_project, rnn_epoch_done, "the first RNN epoch", 300)
    trained = vectors.read_bytes()
    experiment = client.get_experiment_by_name("dlflow/rnn")
    (killed,) = client.search_runs([experiment.experiment_id])
    assert len(client.get_metric_history(killed.info.run_id, "train_loss")) < 3

    subprocess.run(command, cwd=kedro_project, env=env, check=True, capture_output=True, timeout=600)
    (resumed,) = client.search_runs([experiment.experiment_id])
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["dlflow.reused.train_word2vec"] == killed.info.run_id
    assert vectors.read_bytes() == trained
    assert resumed.data.metrics["word2vec_words_per_second"] > 0  # the report of the training that made them
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "train_loss")] == [1, 2, 3]
    assert resumed.data.tags["dlflow.bit_reproducible"] == "false"
