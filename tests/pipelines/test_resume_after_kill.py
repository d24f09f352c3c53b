"""``kill -9`` a ``kedro run`` mid-training, run the same command again: it resumes.

Real processes, a real kill: the second run continues from the last epoch
checkpoint inside the same MLflow run and ends with exactly the metrics of an
uninterrupted run with the same seed.

Every run here trains with one torch thread: the test polls the MLflow store
meanwhile, and a second thread contending for that core made the runs many
times slower on a busy 2-core machine (the thread count is not part of what
is checked: every run of a test uses the same).
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

from dlflow.tracking.resume import PID_TAG

pytestmark = pytest.mark.e2e

EPOCHS = "cnn.training.epochs=3"
ONE_THREAD = "cnn.training.num_threads=1"
#: The RNN run, smaller than --env test alone (nothing checked depends on the size): shorter sentences, a
#: narrower network, one thread, a unigram baseline.
SMALL_RNN = "rnn.training.epochs=3,rnn.training.num_threads=1,rnn.max_length=20,rnn.model.hidden_size=16,rnn.baseline.ngram_max=1"


def child_env() -> dict[str, str]:
    """This process's environment (the fixture's MLflow store) for a ``kedro run`` child, telemetry off."""
    return os.environ | {"KEDRO_DISABLE_TELEMETRY": "true"}


def start(command: list[str], project: Path) -> subprocess.Popen:
    """``command`` in ``project``, in a process group of its own, its output discarded."""
    return subprocess.Popen(
        command, cwd=project, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def kill_when(victim: subprocess.Popen, recorded, what: str, seconds: float) -> None:
    """``kill -9`` the process group of ``victim`` as soon as ``recorded()`` holds (and when waiting for it fails)."""
    deadline = time.monotonic() + seconds
    try:
        while not recorded():
            assert victim.poll() is None, f"the run ended before {what} was recorded"
            assert time.monotonic() < deadline, f"no {what} recorded within {seconds:.0f} s"
            time.sleep(0.1)
    finally:
        try:
            os.killpg(victim.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is gone already (the run ended by itself)
            pass
        victim.wait()


def kedro_run(*params: str) -> list[str]:
    return [sys.executable, "-m", "kedro", "run", "--pipeline", "cnn", "--env", "test", "--params", ",".join(params)]


def test_killed_run_resumes_in_the_same_mlflow_run(kedro_project: Path) -> None:
    env = child_env()
    checkpoints = kedro_project / "data/06_models/checkpoints/cnn-test"
    client = MlflowClient()
    client.search_experiments()  # the store's tables exist before the children start: no two processes create them
    command = kedro_run(EPOCHS, ONE_THREAD)
    # The same command, uninterrupted, beside the one that is killed: the reference (a new MLflow run, so a
    # checkpoint folder of its own; it started while the victim's process was alive, so it resumes nothing).
    with open(kedro_project / "reference.log", "w") as log:
        reference_process = subprocess.Popen(command, cwd=kedro_project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        victim = start(command, kedro_project)

        def victim_run_id() -> str | None:
            """The MLflow run of the process to be killed (the run is tagged with its process id)."""
            experiment = client.get_experiment_by_name("dlflow/cnn")
            runs = (
                [] if experiment is None else client.search_runs([experiment.experiment_id], f"tags.`{PID_TAG}` = '{victim.pid}'")
            )
            return runs[0].info.run_id if runs else None

        def first_epoch_done() -> bool:
            """The victim's epoch 1 is checkpointed and its metrics are in MLflow (the loop checkpoints first)."""
            run_id = victim_run_id()
            if run_id is None or not list(checkpoints.glob(f"{run_id}/*/last.pt")):  # <run id>/<config key>/
                return False
            return bool(client.get_metric_history(run_id, "train_loss"))

        kill_when(victim, first_epoch_done, "the first epoch", 240)
        killed = client.get_run(victim_run_id())
        assert killed.info.status == "RUNNING"  # what kill -9 leaves behind
        done_before_kill = len(client.get_metric_history(killed.info.run_id, "train_loss"))
        assert 1 <= done_before_kill < 3
        assert reference_process.wait(timeout=600) == 0, (kedro_project / "reference.log").read_text()[-4000:]
    finally:
        if reference_process.poll() is None:
            reference_process.kill()
            reference_process.wait()

    subprocess.run(command, cwd=kedro_project, env=env, check=True, capture_output=True, timeout=600)
    experiment = client.get_experiment_by_name("dlflow/cnn")
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 2 and killed.info.run_id in runs  # the killed run and the reference: the resumed run is no new one
    resumed = runs.pop(killed.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "train_loss")] == [1, 2, 3]

    # the same seed, uninterrupted: the same result
    (reference,) = runs.values()
    assert reference.info.status == "FINISHED" and reference.info.run_id != resumed.info.run_id
    for metric in ("test_accuracy", "test_macro_f1", "train_loss", "val_loss"):
        assert resumed.data.metrics[metric] == reference.data.metrics[metric], metric


def test_killed_rnn_run_resumes_with_the_vectors_it_trained(kedro_project: Path) -> None:
    """The resumed run does not retrain Word2Vec: the node cache vouches for the vectors written before the kill."""
    env = child_env()
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "rnn", "--env", "test", "--params", SMALL_RNN]
    vectors = kedro_project / "data/06_models/word2vec/vectors.txt"
    checkpoints = kedro_project / "data/06_models/checkpoints/rnn-test"
    client = MlflowClient()
    client.search_experiments()  # the store's tables exist before the child starts: no two processes create them

    def rnn_epoch_done() -> bool:
        """Epoch 1 is checkpointed (a look at a folder, until then) and its metrics are in MLflow."""
        if not list(checkpoints.rglob("last.pt")):
            return False
        experiment = client.get_experiment_by_name("dlflow/rnn")
        runs = client.search_runs([experiment.experiment_id]) if experiment is not None else []
        return bool(runs) and bool(client.get_metric_history(runs[0].info.run_id, "train_loss"))

    kill_when(start(command, kedro_project), rnn_epoch_done, "the first RNN epoch", 300)
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
