"""The team tracking server: a real ``mlflow server --app-name basic-auth`` on a real PostgreSQL, on loopback.

PostgreSQL comes from ``.ci/postgres.sh`` (CI exports ``DLFLOW_TEST_POSTGRES_URI``;
without it this module runs the script, which starts a private cluster when
Debian's PostgreSQL is installed). Each module run gets fresh databases; the
runs log in as the team setup's trainer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dlflow.model_registry.store import alias_history
from dlflow.tracking.team import TeamUser, setup_team
from tests.conftest import SMALL_CONCURRENT_CNN, copy_project, kedro_run_command
from tests.mlflow_queries import expected_aliases
from tests.tracking.servers import ADMIN, ADMIN_PASSWORD, MlflowServer, fresh_databases, logged_in

pytestmark = pytest.mark.e2e
CONCURRENT_RUNS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, postgres_admin_uri: str) -> str:
    """``mlflow server --app-name basic-auth`` on a fresh PostgreSQL database, with artifact serving, on
    127.0.0.1; the module logs in as the trainer the README's setup makes (EDIT, no MANAGE). Yields its URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with fresh_databases(postgres_admin_uri, "", "_auth") as (tracking_db, auth_db):
        server = MlflowServer(root, tracking_db, auth_db)
        server.start()
        try:
            password = f"trainer-{uuid.uuid4().hex}"
            with logged_in(ADMIN, ADMIN_PASSWORD):
                setup_team(server.uri, ["dlflow/cnn"], [TeamUser("trainer", "trainer", password)])
            with logged_in("trainer", password):  # this process and every `kedro run` it starts
                yield server.uri
        finally:
            server.kill()  # its databases are dropped next: no graceful shutdown to wait for (it took 5-17 s)


def _run_env(tracking_uri: str, data_mirror: Path) -> dict[str, str]:
    return os.environ | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DLFLOW_DATA_MIRROR": str(data_mirror),
        "KEDRO_DISABLE_TELEMETRY": "true",
    }


def _start(project: Path, tracking_uri: str, data_mirror: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        kedro_run_command("cnn", *options),
        cwd=project,
        env=_run_env(tracking_uri, data_mirror),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _only_run(client: MlflowClient) -> object:
    experiment = client.get_experiment_by_name("dlflow/cnn")
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def test_a_pipeline_run_records_on_the_server_what_the_embedded_store_records(mlflow_server, tmp_path, data_mirror):
    model = f"dlflow-cnn-server-{uuid.uuid4().hex[:6]}"
    # Two runs at once, a core each, on a small subset: what is compared is what each store records, not the training.
    options = ("--params", f"{SMALL_CONCURRENT_CNN},cnn.registration.model_name={model}")
    embedded_uri = f"sqlite:///{tmp_path / 'embedded' / 'mlflow.db'}"
    (tmp_path / "embedded").mkdir()
    on_server = _start(copy_project(tmp_path / "server-project"), mlflow_server, data_mirror, *options)
    embedded = _start(copy_project(tmp_path / "embedded-project"), embedded_uri, data_mirror, *options)
    _finish(on_server)
    _finish(embedded)

    server, local = MlflowClient(mlflow_server), MlflowClient(embedded_uri)
    server_run, local_run = _only_run(server), _only_run(local)
    assert server_run.info.status == local_run.info.status == "FINISHED"
    assert server_run.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored through the server, not a local path
    assert set(server_run.data.params) == set(local_run.data.params)
    assert set(server_run.data.metrics) == set(local_run.data.metrics)
    assert server_run.data.params == local_run.data.params
    history = [m.step for m in server.get_metric_history(server_run.info.run_id, "val_loss")]
    assert history == [1, 2]
    server_artifacts = _artifact_paths(server, server_run.info.run_id)
    assert server_artifacts == _artifact_paths(local, local_run.info.run_id)
    assert {"evaluation/metrics.json", "manifest.json"} <= server_artifacts

    # Artifacts come back through the server's artifact proxy.
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    metrics_file = mlflow.artifacts.download_artifacts(
        run_id=server_run.info.run_id, artifact_path="evaluation/metrics.json", dst_path=str(tmp_path / "download")
    )
    assert Path(metrics_file).read_bytes() == (tmp_path / "server-project/data/08_reporting/cnn/metrics.json").read_bytes()

    version = server.get_model_version_by_alias(model, "champion")
    assert version.version == "1" and version.run_id == server_run.info.run_id
    tag_kinds = lambda tags: {key.split(".")[0] for key in tags}  # noqa: E731 - audit keys carry a timestamp
    assert tag_kinds(version.tags) == tag_kinds(local.get_model_version_by_alias(model, "champion").tags)
    served = mlflow.pyfunc.load_model(f"models:/{model}@champion")  # the model's files, through the server
    assert served.metadata.run_id == server_run.info.run_id


def test_four_runs_at_once_all_finish_with_a_consistent_registry(mlflow_server, tmp_path, data_mirror):
    model = f"dlflow-cnn-concurrent-{uuid.uuid4().hex[:6]}"
    experiment = f"concurrent-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(mlflow_server)
    experiment_id = client.create_experiment(experiment)
    # Four engineers or scheduled jobs, each with their own checkout, one tracking server.
    runs = [
        _start(
            copy_project(tmp_path / f"project-{index}"), mlflow_server, data_mirror,
            "--params", f"{SMALL_CONCURRENT_CNN},cnn.registration.model_name={model},cnn.training.seed={index}",
        )
        for index in range(CONCURRENT_RUNS)
    ]  # fmt: skip
    for run in runs:
        # Each project logs to the `dlflow` experiment; `experiment` only proves the server took other writes meanwhile.
        client.log_metric(client.create_run(experiment_id).info.run_id, "heartbeat", 1.0)
        _finish(run)

    finished = client.search_runs(
        [client.get_experiment_by_name("dlflow/cnn").experiment_id],
        filter_string=f"tags.registered_model = '{model}'",
    )
    assert len(finished) == CONCURRENT_RUNS
    for run in finished:
        assert run.info.status == "FINISHED"
        assert "test_accuracy" in run.data.metrics
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
        assert "evaluation/metrics.json" in _artifact_paths(client, run.info.run_id)

    versions = client.search_model_versions(f"name = '{model}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, CONCURRENT_RUNS + 1))
    assert {v.run_id for v in versions} == {run.info.run_id for run in finished}
    aliases = {alias: str(version) for alias, version in client.get_registered_model(model).aliases.items()}
    assert "champion" in aliases  # one holder by construction; the right one:
    assert aliases == expected_aliases(client, model)  # what the rules give, in version order
    final = {}
    for move in alias_history(client, model):
        final[move.alias] = move.to_version
    assert final == aliases  # the audit trail ends where the registry is


def test_an_unreachable_tracking_server_stops_the_run_before_any_work(tmp_path, data_mirror):
    project = copy_project(tmp_path / "project")
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        kedro_run_command("cnn"), cwd=project, env=_run_env(uri, data_mirror), capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert f"The MLflow tracking server at {uri} is unreachable" in message
    assert time.monotonic() - started < 60  # MLflow's own client would retry for minutes
    assert not (project / "data").exists() or not any(p.is_file() for p in (project / "data").rglob("*"))
