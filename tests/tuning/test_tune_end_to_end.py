"""End to end: ``kedro run --pipeline tune_cnn --env test`` with real Optuna on a real MLflow store.

The test space (conf/test/parameters_tuning.yml) draws lr 0.004, 0.004, then 1e-7 with its
seeded sampler, and the median pruner stops the 1e-7 trial after its first epoch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import kedro_run_command, run_pipeline
from tests.tracking.servers import fresh_databases

pytestmark = pytest.mark.e2e
MODEL_NAME = "dlflow-cnn-fashion_mnist-test"
SMALL = "cnn.data.max_train_samples=600,cnn.data.max_test_samples=100"  # the two-worker runs: trials of a second or two
#: The one-worker study's trials: half of --env test's subset, trained in this process with one torch thread (a
#: second one contending for the other core with the rest of the machine made the epochs many times slower). The
#: sampler's draws do not depend on either, and lr 1e-7 stays at chance level, far below the others' accuracy.
ONE_WORKER = {"cnn.data.max_train_samples": 1000, "cnn.training.num_threads": 1}


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def _runs(client: MlflowClient) -> list:
    """Every run of the store, whichever experiment the pipeline logs into."""
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


def test_one_worker_runs_trials_as_child_runs_prunes_and_registers_the_best(kedro_project: Path) -> None:
    run_pipeline("tune_cnn", project=kedro_project, **ONE_WORKER)

    client = MlflowClient()
    runs = _runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("optuna.role") == "parent"]
    children = {r.data.tags["optuna.trial"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert parent.info.status == "FINISHED" and sorted(children) == ["0", "1", "2"]

    storage = f"sqlite:///{Path(os.environ['MLFLOW_TRACKING_URI'].removeprefix('sqlite:///')).parent / 'optuna.db'}"
    study = _study(storage, "tune-cnn-test")
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == 3 and "PRUNED" in states.values() and states[0] == "COMPLETE"
    for trial in study.trials:
        child = children[str(trial.number)]
        assert child.data.tags["optuna.state"] == trial.state.name
        assert child.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert float(child.data.params["training.lr"]) == trial.params["training.lr"]
        curve = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        if trial.state.name == "COMPLETE":
            assert curve == [1, 2]
        else:  # pruned after epoch 1 or 2: where depends on the CPU's arithmetic (bf16 or float32), not on the code
            assert curve in ([1], [1, 2])
    assert study.trials[2].params["training.lr"] == pytest.approx(1e-7) and states[2] == "PRUNED"

    # the parent: best parameters (artifact + the exact --params string), the table, the plots
    best = json.loads(Path("data/08_reporting/cnn/tuning/best_params.json").read_text())
    assert best["best_trial"] == study.best_trial.number and best["best_params"] == study.best_trial.params
    assert best["kedro_params"] == ",".join(f"cnn.{k}={v!r}" for k, v in sorted(study.best_trial.params.items()))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    assert {f"tuning/{name}" for name in ("best_params.json", "trials.csv", "optimization_history.png",
                                          "parallel_coordinate.png", "param_importances.png")} <= artifacts  # fmt: skip
    assert parent.data.metrics["tuning_trials_pruned"] >= 1 and parent.data.metrics["tuning_trials_complete"] >= 1
    assert "val_accuracy" not in parent.data.metrics  # the curves are the children's

    # the test set is touched once, by the best trial's model, which goes through the gate
    assert "test_accuracy" in parent.data.metrics
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert version.run_id == parent.info.run_id and version.tags["gate_decision"] == "promoted"
    assert [r for r in runs if "test_accuracy" in r.data.metrics] == [parent] or all(
        "test_accuracy" not in c.data.metrics for c in children.values()
    )

    # the same command again continues the study: no new trials (the budget is spent), a new champion check
    run_pipeline("tune_cnn", project=kedro_project, **ONE_WORKER)
    assert len(_study(storage, "tune-cnn-test").trials) == 3
    assert {str(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")} == {"1", "2"}


def _two_workers(
    project: Path, data_mirror: Path, storage: str | None, study_name: str, total: int, pipelines=("tune_cnn_trials",) * 2
) -> list[str]:
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    if storage is not None:
        env["DLFLOW_TUNING_STORAGE"] = storage
    params = f"{SMALL},tuning.cnn.study_name={study_name},tuning.cnn.n_trials={total},tuning.cnn.sampler.seed=null,cnn.training.num_threads=1"
    workers = [
        subprocess.Popen(
            kedro_run_command(pipeline, "--params", params),
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pipeline in pipelines
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-4000:]
    return outputs


def _assert_one_study_of(study: optuna.Study, total: int) -> None:
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    # both workers check the count before each trial: the total is reached, and exceeded only if both
    # start a trial within the same instant (at most workers - 1 more)
    assert total <= len(finished) <= total + 1, [t.state.name for t in study.trials]
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING", "FAIL")]
    workers = {t.user_attrs["mlflow_run_id"] for t in study.trials}
    assert len(workers) == len(study.trials)  # one child run per trial


def test_two_workers_share_one_sqlite_study_and_one_of_them_registers_the_best(kedro_project: Path, data_mirror: Path) -> None:
    _two_workers(kedro_project, data_mirror, None, "two-workers", total=4, pipelines=("tune_cnn_trials", "tune_cnn"))
    storage = f"sqlite:///{Path(os.environ['MLFLOW_TRACKING_URI'].removeprefix('sqlite:///')).parent / 'optuna.db'}"
    study = _study(storage, "two-workers")
    _assert_one_study_of(study, 4)
    client = MlflowClient()
    parents = {r.info.run_id: r for r in _runs(client) if r.data.tags.get("optuna.role") == "parent"}
    assert len(parents) == 2
    trial_parents = {r.data.tags["mlflow.parentRunId"] for r in _runs(client) if "optuna.trial" in r.data.tags}
    assert trial_parents == set(parents)  # both workers ran trials
    # tune_cnn waited for the other worker's trials, then tested and registered the study's best, once
    (tested,) = [run for run in parents.values() if "test_accuracy" in run.data.metrics]
    best = json.loads(Path("data/08_reporting/cnn/tuning/best_params.json").read_text())
    assert best["best_trial"] == study.best_trial.number
    (version,) = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert version.run_id == tested.info.run_id


@pytest.fixture
def postgres_storage(postgres_admin_uri: str) -> str:
    """A fresh database for the study on the test PostgreSQL server (.ci/postgres.sh); dropped afterwards."""
    with fresh_databases(postgres_admin_uri, "") as (storage,):
        yield storage


def test_two_workers_share_one_postgresql_study(kedro_project: Path, data_mirror: Path, postgres_storage: str) -> None:
    _two_workers(kedro_project, data_mirror, postgres_storage, "two-workers-pg", total=4)
    _assert_one_study_of(_study(postgres_storage, "two-workers-pg"), 4)
    client = MlflowClient()
    parents = {r.info.run_id for r in _runs(client) if r.data.tags.get("optuna.role") == "parent"}
    assert len(parents) == 2
    trial_parents = {r.data.tags["mlflow.parentRunId"] for r in _runs(client) if "optuna.trial" in r.data.tags}
    assert trial_parents == parents  # both workers ran trials, as in the SQLite twin
    assert not Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).with_name("optuna.db").exists()


def test_a_bad_search_space_stops_the_run_before_training_naming_the_key(kedro_project: Path) -> None:
    bad_end = "tuning.cnn.space.training.label_smoothing.low"
    with pytest.raises(
        ValueError, match=r"tuning\.cnn\.space\.training\.label_smoothing: -0\.1 is refused .*cnn\.training\.label_smoothing"
    ):
        run_pipeline("tune_cnn", project=kedro_project, **{bad_end: -0.1})
    with pytest.raises(ValueError, match=r"tuning\.cnn\.space\.training\.learning_rate: unknown parameter"):
        run_pipeline(
            "tune_cnn",
            project=kedro_project,
            **{"tuning.cnn.space.training.learning_rate": {"type": "float", "low": 0.1, "high": 1}},
        )
    assert not any(Path("data").rglob("*.parquet"))
    assert not _runs(MlflowClient())


def test_a_killed_worker_s_trial_is_failed_then_retried_and_the_same_command_continues(
    kedro_project: Path, data_mirror: Path
) -> None:
    env = os.environ | {"DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    params = (
        "cnn.data.max_train_samples=1000,cnn.data.max_test_samples=100,cnn.training.epochs=4,cnn.training.num_threads=1,"
        "tuning.cnn.study_name=killed,tuning.cnn.n_trials=2,tuning.heartbeat_interval_seconds=1,tuning.grace_period_seconds=2"
    )
    command = kedro_run_command("tune_cnn_trials", "--params", params)
    storage = f"sqlite:///{Path(os.environ['MLFLOW_TRACKING_URI'].removeprefix('sqlite:///')).parent / 'optuna.db'}"
    first = subprocess.Popen(command, cwd=kedro_project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    checkpoints = kedro_project / "data/06_models/checkpoints/cnn-test/tuning/killed/trial-0"
    while not list(checkpoints.rglob("last.pt")):  # kill -9 once trial 0 has checkpointed its first epoch
        assert first.poll() is None and time.monotonic() < deadline, "trial 0 never wrote a checkpoint"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(3)  # past the grace period: the trial's heartbeat is stale

    again = subprocess.run(command, cwd=kedro_project, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]

    study = _study(storage, "killed")
    states = [t.state.name for t in study.trials]
    assert states[0] == "FAIL" and len([s for s in states if s in ("COMPLETE", "PRUNED")]) == 2, states
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.state.name == "COMPLETE" and retry.params == study.trials[0].params
    client = MlflowClient()
    killed_run = client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "FAILED" and killed_run.data.tags["optuna.state"] == "FAIL"
    retry_run = client.get_run(retry.user_attrs["mlflow_run_id"])
    assert retry_run.data.tags["optuna.retry_of_trial"] == "0"
    assert [m.step for m in client.get_metric_history(retry_run.info.run_id, "train_loss")] == [1, 2, 3, 4]
    assert "resuming from" in again.stdout + again.stderr  # the retry went on from the killed trial's checkpoint
    # the same command re-opened the killed run: every trial is a child of one tuning run
    assert killed_run.data.tags["mlflow.parentRunId"] == retry_run.data.tags["mlflow.parentRunId"]
    assert client.get_run(retry_run.data.tags["mlflow.parentRunId"]).info.status == "FINISHED"
