"""The authenticated team server: a real ``mlflow server --app-name basic-auth`` on a real PostgreSQL,
and what a run does when that server, or its PostgreSQL, goes away.

The users and permissions are made by the README's own setup (``python -m dlflow.tracking.team``):
a trainer, a scheduler and a viewer. Least privilege is checked against the server itself: the
viewer's ``kedro run`` stops before any data with the missing permission named, the viewer's alias
move gets HTTP 403, a bad or missing login fails in seconds without echoing the password.

The trainer's run (its login from Kedro's credentials) is interrupted twice during its epochs: the
MLflow server is killed and restarted, then PostgreSQL crashes and restarts, each within MLflow's
retry window; it finishes with every epoch's metrics once and its model registered, and neither its
password nor a URI embedding it reaches the run. A server that stays down past the window fails the
run with a clear message; the same command then resumes into the same run.

PostgreSQL here is a private throw-away cluster (``PrivatePostgres``): the shared one from
``.ci/postgres.sh`` serves other sessions and is never stopped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dlflow.tracking.server import TrackingPermissionDenied, check_registration_permission
from dlflow.tracking.team import TeamUser, main, project_experiments, setup_team
from tests.conftest import REPO_ROOT, copy_project, kedro_run_command
from tests.tracking.servers import ADMIN, ADMIN_PASSWORD, MlflowServer, PrivatePostgres, fresh_databases, logged_in

pytestmark = pytest.mark.e2e
EXPERIMENT = "dlflow/cnn"  # conf/base/experiments.yml: where the CNN's runs go
EPOCHS = 4
#: Per-epoch metrics the training loop logs (MlflowEpochLogger), each once per epoch.
EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy")
#: MLflow's retry window for the runs that must ride out a restart: 7 tries, waits 0+2+4+...+64 s (about 2 min),
#: enough for a server restart on a loaded 2-core machine. MLflow's default is 7 tries at factor 2 (about 4 min).
RIDE_OUT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
#: A window the server's restart cannot fit in: 2 tries, 0 + 2 s.
GIVE_UP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
#: The runs train with one torch thread: the server, PostgreSQL and this process (polling the server) share the
#: two cores with them, and a second training thread contending for a core made the epochs many times slower.
ONE_THREAD = "cnn.training.num_threads=1"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory):
    """One basic-auth server for the module, its users made by the README's setup command."""
    root = tmp_path_factory.mktemp("team-server")
    postgres = PrivatePostgres()
    try:
        with fresh_databases(postgres.uri, "", "_auth", drop=False) as (tracking_db, auth_db):
            server = MlflowServer(root, tracking_db, auth_db, workers=1)
            server.start()
            try:
                passwords = {role: f"{role}-{uuid.uuid4().hex}" for role in ("trainer", "scheduler", "viewer")}
                env = {f"DLFLOW_{role.upper()}_PASSWORD": password for role, password in passwords.items()}
                with logged_in(ADMIN, ADMIN_PASSWORD), pytest.MonkeyPatch.context() as patch:
                    for name, value in env.items():
                        patch.setenv(name, value)
                    assert main(["--uri", server.uri, "--project", str(REPO_ROOT)]) == 0  # every family's experiment
                yield SimpleNamespace(server=server, postgres=postgres, uri=server.uri, passwords=passwords)
            finally:
                server.kill()  # all of it is thrown away: no graceful shutdown to wait for
    finally:
        postgres.remove()


def _env(uri: str, data_mirror: Path, username: str | None = None, password: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    env |= {"MLFLOW_TRACKING_URI": uri, "DLFLOW_DATA_MIRROR": str(data_mirror), "KEDRO_DISABLE_TELEMETRY": "true"}
    if username is not None:
        env["MLFLOW_TRACKING_USERNAME"] = username
    if password is not None:
        env["MLFLOW_TRACKING_PASSWORD"] = password
    return env


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_the_setup_gives_each_role_least_privilege(team) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    families = project_experiments(REPO_ROOT)
    assert {"dlflow/cnn", "dlflow/word2vec", "dlflow/rnn", "dlflow/inference"} <= set(families)
    with logged_in(ADMIN, ADMIN_PASSWORD):
        client = MlflowClient(team.uri)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        auth = AuthServiceClient(team.uri)
        for family in families:  # the setup made every family's experiment, owned by the admin
            family_id = client.get_experiment_by_name(family).experiment_id
            assert {role: auth.get_user_permission(role, "experiment", family_id).permission for role in team.passwords} == {
                "trainer": "EDIT", "scheduler": "EDIT", "viewer": "READ"
            }  # fmt: skip
        granted = {role: auth.get_user_permission(role, "registered_model", "any-model").permission for role in team.passwords}
    assert granted == {"trainer": "EDIT", "scheduler": "EDIT", "viewer": "READ"}
    # Running the setup again changes nothing (and keeps the experiment the admin owns).
    users = [TeamUser(role, role, password) for role, password in team.passwords.items()]
    with logged_in(ADMIN, ADMIN_PASSWORD):
        assert setup_team(team.uri, [EXPERIMENT], users) == {EXPERIMENT: experiment_id}
    # No one gets in without a login; the admin's password is the one the setup chose.
    assert requests.get(f"{team.uri}/api/2.0/mlflow/experiments/search", timeout=10).status_code == 401
    assert (
        requests.get(f"{team.uri}/api/2.0/mlflow/experiments/search", auth=(ADMIN, "password1234"), timeout=10).status_code == 401
    )


def test_the_viewer_reads_but_cannot_move_an_alias_or_delete_and_neither_can_the_trainer_delete(team) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    model = f"dlflow-alias-{uuid.uuid4().hex[:6]}"
    with logged_in("trainer", team.passwords["trainer"]):
        trainer = MlflowClient(team.uri)
        experiment_id = trainer.get_experiment_by_name(EXPERIMENT).experiment_id
        run = trainer.create_run(experiment_id)
        trainer.create_registered_model(model)
        version = trainer.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        trainer.set_registered_model_alias(model, "champion", version.version)  # the trainer may move aliases
        with pytest.raises(MlflowException, match="403"):
            trainer.delete_experiment(experiment_id)  # but not delete what the team shares

    with logged_in("viewer", team.passwords["viewer"]):
        viewer = MlflowClient(team.uri)
        assert viewer.get_model_version_by_alias(model, "champion").version == version.version  # reads
        with pytest.raises(MlflowException, match="403"):
            viewer.set_registered_model_alias(model, "champion", version.version)
        with pytest.raises(MlflowException, match="403"):
            viewer.create_run(experiment_id)
        with pytest.raises(MlflowException, match="403"):
            viewer.delete_experiment(experiment_id)
    # The same alias move, as plain HTTP: 403, and the alias stays where it was.
    moved = requests.post(
        f"{team.uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": model, "alias": "champion", "version": version.version},
        auth=("viewer", team.passwords["viewer"]),
        timeout=10,
    )
    assert moved.status_code == 403
    with logged_in("viewer", team.passwords["viewer"]):
        assert MlflowClient(team.uri).get_registered_model(model).aliases == {"champion": version.version}
        # The pre-flight check names the permission the viewer lacks on an existing model.
        with pytest.raises(TrackingPermissionDenied, match=f"User 'viewer' has READ permission on registered model '{model}'"):
            check_registration_permission(team.uri, [model])
    with logged_in("trainer", team.passwords["trainer"]):
        check_registration_permission(team.uri, [model, "not-registered-yet"])
    with logged_in(ADMIN, ADMIN_PASSWORD):
        AuthServiceClient(team.uri).grant_user_permission("viewer", "registered_model", model, "DENY")
    with logged_in("viewer", team.passwords["viewer"]):
        with pytest.raises(TrackingPermissionDenied, match=f"User 'viewer' has DENY permission on registered model '{model}'"):
            check_registration_permission(team.uri, [model])


def test_the_viewer_and_bad_logins_stop_in_seconds_before_any_data(team, tmp_path, data_mirror) -> None:
    """Five refused `kedro run`s at once: the viewer, a wrong password, an unknown user, no login, and an
    analyst who may run in the experiment (EDIT) but only read the registered model the run would register."""
    from mlflow.server.auth.client import AuthServiceClient

    wrong = f"wrong-{uuid.uuid4().hex}"
    locked = f"dlflow-locked-{uuid.uuid4().hex[:6]}"
    cases = {
        "viewer": ("viewer", team.passwords["viewer"]),
        "wrong password": ("trainer", wrong),
        "unknown user": ("nobody", wrong),
        "no login": (None, None),
        "read-only model": ("analyst", team.passwords["viewer"]),
    }
    with logged_in(ADMIN, ADMIN_PASSWORD):
        client = MlflowClient(team.uri)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        runs_before = {r.info.run_id for r in client.search_runs([experiment_id])}
        client.create_registered_model(locked)
        auth = AuthServiceClient(team.uri)
        auth.create_user("analyst", team.passwords["viewer"])
        auth.grant_user_permission("analyst", "experiment", experiment_id, "EDIT")
    started = time.monotonic()
    processes = {
        case: subprocess.Popen(
            kedro_run_command("cnn", "--params", f"cnn.registration.model_name={locked}"),
            cwd=copy_project(tmp_path / case.replace(" ", "-")),
            env=_env(team.uri, data_mirror, username, password),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for case, (username, password) in cases.items()
    }
    outputs = {case: process.communicate(timeout=300)[0] for case, process in processes.items()}
    seconds = time.monotonic() - started
    with logged_in(ADMIN, ADMIN_PASSWORD):
        runs_after = {r.info.run_id for r in client.search_runs([experiment_id])}

    for case, output in outputs.items():
        assert processes[case].returncode != 0, output[-3000:]
        message = " ".join(output.split())
        assert "Nothing was run." in message, (case, output[-3000:])
        assert all(password not in output for password in [wrong, *team.passwords.values()]), case
        project = tmp_path / case.replace(" ", "-")
        assert not (project / "data").exists() or not any(p.is_file() for p in (project / "data").rglob("*")), case
    assert f"User 'viewer' has READ permission on experiment '{EXPERIMENT}'" in " ".join(outputs["viewer"].split())
    assert "needs EDIT there" in " ".join(outputs["viewer"].split())
    assert "refused the login of user 'trainer' (HTTP 401" in " ".join(outputs["wrong password"].split())
    assert "refused the login of user 'nobody' (HTTP 401" in " ".join(outputs["unknown user"].split())
    assert "requires a login and none is set" in " ".join(outputs["no login"].split())
    assert f"User 'analyst' has READ permission on registered model '{locked}'" in " ".join(outputs["read-only model"].split())
    assert seconds < 90, f"five refused runs took {seconds:.0f} s"  # each stops at start-up; MLflow would retry for minutes
    assert runs_after == runs_before  # not one run was started


#: The server's access log line for a request it answered with a server error (503 while PostgreSQL is down).
SERVER_ERROR = re.compile(r'HTTP/1\.1" 5\d\d ')
SECRET_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s\"']*:[^/\s\"']*@")


def _start_run(project: Path, env: dict[str, str], *params: str) -> tuple[subprocess.Popen, Path]:
    """``kedro run --pipeline cnn --env test`` in ``project``, its output to a file (read when it ends)."""
    log = project / "kedro-run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            kedro_run_command("cnn", "--params", ",".join(params)), cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, log


def _wait(condition, what: str, process: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the run ended before {what}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.5)


class RunWatcher:
    """Finds the run a child ``kedro run`` started (the only new one) and counts its logged epochs, as the admin."""

    def __init__(self, uri: str) -> None:
        with logged_in(ADMIN, ADMIN_PASSWORD):
            self.client = MlflowClient(uri)
            self.experiment_id = self.client.get_experiment_by_name(EXPERIMENT).experiment_id
            self.before = {r.info.run_id for r in self.client.search_runs([self.experiment_id])}
        self.run_id: str | None = None

    def epochs(self) -> int:
        with logged_in(ADMIN, ADMIN_PASSWORD):
            if self.run_id is None:
                new = [r.info.run_id for r in self.client.search_runs([self.experiment_id]) if r.info.run_id not in self.before]
                if not new:
                    return 0
                (self.run_id,) = new
            return len(self.client.get_metric_history(self.run_id, "train_loss"))


@pytest.fixture(scope="module")
def trainer_run(team, tmp_path_factory: pytest.TempPathFactory, data_mirror: Path):
    """The trainer's ``kedro run`` (its login from Kedro's credentials), through two outages in its epochs:
    the MLflow server killed (SIGKILL, its whole process group) and restarted, then PostgreSQL crashed
    (``pg_ctl stop -m immediate``) and restarted, each within the run's MLflow retry window."""
    password = team.passwords["trainer"]
    model = f"dlflow-cnn-team-{uuid.uuid4().hex[:6]}"
    project = copy_project(tmp_path_factory.mktemp("trainer") / "project")
    # The login comes from Kedro's credentials: the entry mlflow.yml's server.credentials names, in
    # conf/<env>/credentials.yml (conf/local for a plain `kedro run`); nothing in the environment.
    (project / "conf" / "test" / "credentials.yml").write_text(
        json.dumps({"mlflow_credentials": {"MLFLOW_TRACKING_USERNAME": "trainer", "MLFLOW_TRACKING_PASSWORD": password}})
    )
    watcher = RunWatcher(team.uri)
    started = time.monotonic()
    process, log = _start_run(
        project,
        _env(team.uri, data_mirror) | RIDE_OUT,
        f"cnn.registration.model_name={model}",
        f"cnn.training.epochs={EPOCHS}",
        ONE_THREAD,
    )
    try:
        _wait(lambda: watcher.epochs() >= 1, "the first epoch", process, log)
        team.server.kill()
        time.sleep(2)
        team.server.start()  # the same port; the run's requests are being retried meanwhile
        _wait(lambda: watcher.epochs() >= 2, "an epoch after the server's restart", process, log)
        server_errors = len(SERVER_ERROR.findall(team.server.log_text()))
        team.postgres.crash()
        _wait(
            lambda: len(SERVER_ERROR.findall(team.server.log_text())) > server_errors,
            "a request failing on PostgreSQL",
            process,
            log,
        )
        time.sleep(2)
        team.postgres.start()
        process.wait(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert process.returncode == 0, output[-4000:]
    return SimpleNamespace(run_id=watcher.run_id, model=model, log=output, password=password, seconds=time.monotonic() - started)


def test_the_trainer_run_rides_out_the_server_and_postgres_restarting_and_loses_no_metric(team, trainer_run) -> None:
    assert "Retrying" in trainer_run.log  # MLflow's client did meet the outage (urllib3's retry warnings)
    with logged_in(ADMIN, ADMIN_PASSWORD):
        client = MlflowClient(team.uri)
        run = client.get_run(trainer_run.run_id)
        assert run.info.status == "FINISHED"
        for name in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == list(range(1, EPOCHS + 1)), name
        assert "test_accuracy" in run.data.metrics
        version = client.get_model_version_by_alias(trainer_run.model, "champion")
        assert version.run_id == run.info.run_id and run.data.tags["registered_model"] == trainer_run.model


def test_no_secret_reaches_the_run(team, trainer_run, tmp_path) -> None:
    password = trainer_run.password
    secrets = [password, f"trainer:{password}"]
    haystacks = {"process log": trainer_run.log}
    with logged_in(ADMIN, ADMIN_PASSWORD):
        client = MlflowClient(team.uri)
        run = client.get_run(trainer_run.run_id)
        haystacks |= {f"param {key}": f"{key}={value}" for key, value in run.data.params.items()}
        haystacks |= {f"tag {key}": f"{key}={value}" for key, value in run.data.tags.items()}
        haystacks |= {f"metric {key}": key for key in run.data.metrics}
        artifacts = _artifacts(client, run.info.run_id)
        assert "manifest.json" in artifacts
        downloaded = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts")))
        haystacks |= {
            f"artifact {p.relative_to(downloaded)}": p.read_bytes().decode("latin-1")
            for p in downloaded.rglob("*")
            if p.is_file()
        }
        assert {name.removeprefix("artifact ") for name in haystacks if name.startswith("artifact ")} == artifacts
        version = client.get_model_version_by_alias(trainer_run.model, "champion")
        haystacks["model version"] = json.dumps(
            {"tags": version.tags, "description": version.description, "source": version.source}
        )
        haystacks["registered model"] = json.dumps({"tags": client.get_registered_model(trainer_run.model).tags})
    leaks = {
        where: [secret for secret in secrets if secret in text] or SECRET_URI.findall(text)
        for where, text in haystacks.items()
        if any(secret in text for secret in secrets) or SECRET_URI.search(text)
    }
    assert leaks == {}
    assert len(run.data.params) > 20 and len(artifacts) > 5  # params, tags, metrics, every artifact and the log were read


def test_a_server_gone_past_the_retry_window_fails_clearly_and_the_same_command_resumes(team, tmp_path, data_mirror) -> None:
    """The scheduler's account (its login from the environment, as a cron job or Airflow task has it)."""
    password = team.passwords["scheduler"]
    model = f"dlflow-cnn-outage-{uuid.uuid4().hex[:6]}"
    project = copy_project(tmp_path / "project")
    env = _env(team.uri, data_mirror, "scheduler", password)
    epochs = 3  # one before the outage, two after the resumption
    params = (f"cnn.registration.model_name={model}", f"cnn.training.epochs={epochs}", ONE_THREAD)
    watcher = RunWatcher(team.uri)
    process, log = _start_run(project, env | GIVE_UP, *params)
    try:
        _wait(lambda: watcher.epochs() >= 1, "the first epoch", process, log)
        team.server.kill()
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        team.server.start()
    output = log.read_text()
    message = " ".join(output.split())
    assert process.returncode != 0
    assert "Lost the MLflow tracking server at " in message
    assert "run the same command again and it resumes into the same run" in message
    assert password not in output
    checkpoints = project / "data/06_models/checkpoints/cnn-test" / watcher.run_id
    assert list(checkpoints.rglob("last.pt")), "the checkpoint is kept"
    with logged_in(ADMIN, ADMIN_PASSWORD):
        assert watcher.client.get_run(watcher.run_id).info.status == "RUNNING"  # left open: the next run finds it

    again = subprocess.run(
        kedro_run_command("cnn", "--params", ",".join(params)), cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert f"Resuming MLflow run {watcher.run_id}" in again.stdout + again.stderr
    with logged_in(ADMIN, ADMIN_PASSWORD):
        client = watcher.client
        runs = {r.info.run_id for r in client.search_runs([watcher.experiment_id])} - watcher.before
        assert runs == {watcher.run_id}  # the same run, not a new one
        assert client.get_run(watcher.run_id).info.status == "FINISHED"
        for name in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(watcher.run_id, name)] == list(range(1, epochs + 1)), name
        assert client.get_model_version_by_alias(model, "champion").run_id == watcher.run_id
