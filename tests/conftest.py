"""Shared fixtures: the offline data mirror and a throw-away copy of the Kedro project; and a check
that the suite leaves nothing running."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.sources.http_server",  # the `server` fixture: a local HTTP server for download tests
    "tests.tracking.servers",  # `postgres_admin_uri`: the loopback PostgreSQL of .ci/postgres.sh, for a session
]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("DLFLOW_DATA_MIRROR", REPO_ROOT.parent / "shared" / "data")).resolve()

#: Every process the suite starts inherits this mark; one still running when the session ends was left behind.
SESSION_MARK = "DLFLOW_TEST_SESSION"
os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)


def _left_running() -> dict[int, str]:
    """pid -> command line of the processes that carry this session's mark, other than this process,
    its ancestors and the multiprocessing helpers that end with it (Linux's /proc; elsewhere none)."""
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}".encode()
    ancestors, pid = set(), os.getpid()
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    left = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) in ancestors or mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
        if state == "Z" or not command or (int(parent) == os.getpid() and "multiprocessing" in command):
            continue
        left[int(entry.name)] = command
    return left


#: Test modules that share a project built once per session (tests/pipelines/test_inference.py registers its
#: CNN and RNN champions): under pytest-xdist they run on one worker, which builds it once.
SHARED_PROJECT_MODULES = {
    "tests/pipelines/test_inference.py",
    "tests/pipelines/test_monitoring.py",
    "tests/test_serving.py",
    "tests/test_browser.py",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (what ``.ci/test`` runs): each module's tests run on one worker, so
    module fixtures (servers, clusters, trained models) are made once, and the ``SHARED_PROJECT_MODULES`` run on
    one worker together; the end-to-end modules are handed out first, so that no long one starts last."""
    if not (getattr(config.option, "loadgroup", False) or config.getoption("dist", "no") == "loadgroup"):
        return  # (a worker is told by ``loadgroup``: pytest-xdist sets its ``dist`` to "no")
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.path.relative_to(REPO_ROOT).as_posix()
            item.add_marker(pytest.mark.xdist_group("shared-project" if module in SHARED_PROJECT_MODULES else module))
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: modules stay in their order


@pytest.hookimpl(trylast=True)  # after pytest-xdist has shut its workers down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No server, cluster or process that the suite started outlives it: any still running (after 10 s
    of grace) is named, ended, and fails the session. Under pytest-xdist the controller checks, once
    every worker has ended (the workers and what they start carry the controller's mark)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    deadline = time.monotonic() + 10
    while (left := _left_running()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    time.sleep(3)
    for pid in _left_running():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    title = f"the suite left {len(left)} process(es) running; ended now"
    lines = [f"{pid}: {command[:200]}" for pid, command in left.items()]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(title, *lines, sep="\n", file=sys.stderr)
    else:
        reporter.ensure_newline()
        reporter.write_sep("=", title, red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with every migration applied and nothing in it, made once per session:
    creating one costs 5-8 s of Alembic migrations on 2 cores, copying it a millisecond."""
    import mlflow

    database = tmp_path_factory.mktemp("empty-mlflow-store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()
    return database


def new_mlflow_store(template: Path, database: Path, default_artifacts: Path) -> str:
    """A copy of ``template`` at ``database``, its Default experiment's artifacts in ``default_artifacts``
    (where MLflow puts them in a store it creates: ``./mlruns/0``); the store's URI."""
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, database)
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (str(default_artifacts),))
    return f"sqlite:///{database}"


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_mirror: Path, empty_mlflow_store: Path) -> Path:
    """A copy of the project's conf in ``tmp_path``, with its own data folder and MLflow store.

    The working directory moves there (Kedro resolves catalog paths from it),
    ``MLFLOW_TRACKING_URI`` points at an SQLite store in ``tmp_path`` (a copy of the
    session's empty one) and the data sets come from the offline mirror.
    """
    from kedro.framework.startup import bootstrap_project

    project = copy_project(tmp_path / "project")
    monkeypatch.chdir(project)
    import mlflow

    uri = new_mlflow_store(empty_mlflow_store, tmp_path / "mlruns" / "mlflow.db", project / "mlruns" / "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # kedro-mlflow set a process-wide URI in earlier tests; it beats the env var
    monkeypatch.setenv("DLFLOW_DATA_MIRROR", str(data_mirror))
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


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package, installed by .ci/test) under Playwright, for the module's tests."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"No Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium), as .ci/test does")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a browser test saves its screenshots: ``$DLFLOW_SCREENSHOTS``, else the test's temporary folder."""
    folder = Path(os.environ.get("DLFLOW_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
