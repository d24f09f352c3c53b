"""Shared fixtures: the offline data mirror and a throw-away copy of the Kedro project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.sources.http_server"]  # the `server` fixture: a local HTTP server for download tests

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(autouse=True)
def _no_mlflow_state_between_tests():
    """Each test starts without an active MLflow run or current experiment left by an earlier one.

    ``mlflow.set_experiment`` (kedro-mlflow calls it in every in-process run) remembers the
    experiment id in the process and in ``MLFLOW_EXPERIMENT_ID``; that id belongs to the earlier
    test's store, and a later ``mlflow.start_run()`` on another store would fail with it.
    """
    yield
    if "mlflow" not in sys.modules:
        return
    import mlflow
    from mlflow.tracking import fluent

    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """The offline mirror of the real data sets (../shared/data or $DLFLOW_DATA_MIRROR)."""
    if not (MIRROR / "fashion-mnist").is_dir():
        pytest.fail(f"offline data mirror not found at {MIRROR}: set DLFLOW_DATA_MIRROR to a folder laid out like shared/data")
    return MIRROR


def copy_project(destination: Path) -> Path:
    """A runnable copy of the project at ``destination``: its conf (without conf/local) and pyproject.

    The ``dlflow`` package itself is the installed one. Returns ``destination``.
    """
    shutil.copytree(REPO_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    (destination / "src").mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")
    (destination / ".telemetry").write_text("consent: false\n")
    return destination


def commit_project(project: Path) -> str:
    """Make ``project`` a git repository with one commit; its sha."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "test"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


#: ``--params`` for the CNN runs of the tests that start several at once: what those test is the processes
#: writing one store or server together, not the training, so small runs with a thread each.
SMALL_CONCURRENT_CNN = "cnn.data.max_train_samples=500,cnn.data.max_test_samples=100,cnn.training.num_threads=1"


def kedro_run_command(pipeline: str, *options: str) -> list[str]:
    """``kedro run --pipeline <pipeline> --env test [options]`` as an argument list for a subprocess."""
    return [sys.executable, "-m", "kedro", "run", "--pipeline", pipeline, "--env", "test", *options]


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_mirror: Path) -> Path:
    """A copy of the project's conf in ``tmp_path``, with its own data folder and MLflow store.

    The working directory moves there (Kedro resolves catalog paths from it),
    ``MLFLOW_TRACKING_URI`` points at an SQLite store in ``tmp_path`` and the
    data sets come from the offline mirror.
    """
    from kedro.framework.startup import bootstrap_project

    project = copy_project(tmp_path / "project")
    monkeypatch.chdir(project)
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # kedro-mlflow set a process-wide URI in earlier tests; it beats the env var
    monkeypatch.setenv("DLFLOW_DATA_MIRROR", str(data_mirror))
    (tmp_path / "mlruns").mkdir()
    bootstrap_project(project)
    return project


def run_pipeline(
    name: str, *, project: Path | None = None, env: str = "test", tags: list[str] | None = None, **overrides
) -> None:
    """``kedro run --pipeline <name> --env <env> [--tags ...] --params <overrides>`` (dotted keys, as on the CLI),
    with the runner ``kedro run`` uses by default (``dlflow.cli``)."""
    from kedro.framework.session import KedroSession

    from dlflow.caching.runner import SkipUnchangedRunner

    runtime_params: dict = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        target = runtime_params
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    with KedroSession.create(project_path=project or Path.cwd(), env=env, runtime_params=runtime_params) as session:
        session.run(pipeline_names=[name], tags=tags, runner=SkipUnchangedRunner())
