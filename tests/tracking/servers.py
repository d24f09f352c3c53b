"""Real servers for the team-tracking-server tests: PostgreSQL databases, a private PostgreSQL cluster
that a test may stop, and ``mlflow server`` processes (with MLflow's basic-auth app) that a test may kill.

PostgreSQL comes from ``.ci/postgres.sh`` through the session fixture ``postgres_admin_uri`` (a pytest
plugin of ``tests/conftest.py``): ``.ci/test`` exports ``DLFLOW_TEST_POSTGRES_URI`` and stops its cluster
itself; without it the fixture runs the script and, if that started the cluster, stops it when the
session ends. That cluster is shared by everyone on the machine: a test that stops PostgreSQL stops a
``PrivatePostgres`` of its own instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ADMIN = "admin"
#: Not MLflow's documented example password: a server set up as the README says must not take that.
ADMIN_PASSWORD = "adm1n-Correct-Horse-4821"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


POSTGRES_SCRIPT = REPO_ROOT / ".ci" / "postgres.sh"
NO_POSTGRES = "no PostgreSQL for the tests: run them with `.ci/test` (the README's test command), which provisions it"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def postgres_admin_uri() -> Iterator[str]:
    """The admin URI of the loopback PostgreSQL from ``.ci/postgres.sh``: ``DLFLOW_TEST_POSTGRES_URI``
    when set (its owner stops it), else the script's cluster, stopped at the end of the session
    when this session started it."""
    admin_uri = os.environ.get("DLFLOW_TEST_POSTGRES_URI")
    if admin_uri:
        yield admin_uri
        return
    already_running = _listening(int(os.environ.get("PGPORT", "55432")))
    started = subprocess.run(["bash", str(POSTGRES_SCRIPT)], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"{NO_POSTGRES} (.ci/postgres.sh failed).\n{started.stderr[-2000:]}")
    try:
        yield started.stdout.strip()
    finally:
        if not already_running:
            subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop"], capture_output=True, timeout=120)


@contextmanager
def fresh_databases(admin_uri: str, *suffixes: str, drop: bool = True) -> Iterator[list[str]]:
    """New, empty databases (one per suffix) on the server of ``admin_uri``; dropped afterwards
    (unless ``drop`` is false: a throw-away cluster goes as a whole)."""
    import psycopg

    stem = f"mlflow_test_{uuid.uuid4().hex[:10]}"
    names = [f"{stem}{suffix}" for suffix in suffixes]
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        for name in names:
            connection.execute(f"CREATE DATABASE {name}")
    try:
        yield [admin_uri.rsplit("/", 1)[0] + "/" + name for name in names]
    finally:
        if drop:
            with psycopg.connect(admin_uri, autocommit=True) as connection:
                for name in names:
                    connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on its own port, as ``.ci/postgres.sh`` makes one (Debian's
    binaries, run as the ``postgres`` user when this is root), that a test may crash and restart."""

    def __init__(self) -> None:
        initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not initdb:
            pytest.fail(f"{NO_POSTGRES} (no Debian PostgreSQL binaries for a private cluster)")
        self.bin = initdb[-1].parent
        # pytest's tmp_path is out of the `postgres` user's reach: the cluster lives in a folder of its own.
        self.base = Path(tempfile.mkdtemp(prefix="dlflow-pg-private-"))
        self.data, self.log = self.base / "data", self.base / "postgres.log"
        self.port = free_port()
        if os.getuid() == 0:
            shutil.chown(self.base, "postgres")
        self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.log), "-o", options, "start")

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend killed, no shutdown checkpoint, as in a crash."""
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []), str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


AUTH_CONFIG = """\
[mlflow]
default_permission = READ
database_uri = {database_uri}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_max_size = 1000
auth_cache_ttl_seconds = 60
"""


class MlflowServer:
    """``mlflow server --app-name basic-auth`` on PostgreSQL with artifact serving, on 127.0.0.1.

    Its own process group, so that ``kill`` takes the server and its workers down at once,
    like a machine that goes away; ``start`` again brings it back on the same port.
    """

    def __init__(self, root: Path, backend_uri: str, auth_database_uri: str, workers: int = 2) -> None:
        self.root = root
        self.workers = workers
        self.backend_uri = backend_uri
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.config = root / "basic_auth.ini"
        self.config.write_text(AUTH_CONFIG.format(database_uri=auth_database_uri, admin=ADMIN))
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, seconds: float = 120) -> None:
        self.starts += 1
        log = open(self.root / f"server-{self.starts}.log", "w")  # noqa: SIM115 - the child holds it
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_TRACKING_", "MLFLOW_HTTP_"))} | {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,  # used once, to create the admin in an empty user store
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job consumers (GenAI jobs): docs/team-server.md
        }
        self.process = subprocess.Popen(
            [
                "mlflow", "server", "--app-name", "basic-auth",
                "--backend-store-uri", self.backend_uri,
                "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + seconds
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mlflow server did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.3)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server's whole process group."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.root.glob("server-*.log")))


@contextmanager
def logged_in(username: str, password: str) -> Iterator[None]:
    """``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` set to a user's for the block (restored after)."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = username, password
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
