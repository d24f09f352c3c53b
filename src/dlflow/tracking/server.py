"""Where runs are tracked: a fast check that the tracking server answers, and the experiment.

MLflow's own client retries an unreachable server for minutes and then fails
deep inside kedro-mlflow; ``check_tracking_server`` asks the server's
``/health`` endpoint once, with a short timeout, before anything runs.
"""

from __future__ import annotations

import fcntl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TrackingServerUnreachable(RuntimeError):
    """The MLflow tracking server named by the tracking URI does not answer."""


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Raise ``TrackingServerUnreachable`` naming ``uri`` when an HTTP(S) tracking server does not answer.

    Other stores (an SQLite file, a database URI) are opened by the client
    itself and need no check here.
    """
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status} from {health}"
    except urllib.error.HTTPError as error:
        problem = f"HTTP {error.code} from {health}"
    except (urllib.error.URLError, OSError) as error:
        problem = str(getattr(error, "reason", error))
    raise TrackingServerUnreachable(
        f"The MLflow tracking server at {uri} is unreachable ({problem}). Nothing was run. "
        "Start the server (README: 'Team tracking server'), or set MLFLOW_TRACKING_URI to a "
        "reachable server, or unset it to use the embedded SQLite store under mlruns/."
    )


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created if missing; safe when several runs start at once.

    Two processes that both find no experiment both try to create it; the
    loser's error is expected and it reads the winner's experiment instead.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _sqlite_setup_lock(uri):  # a fresh SQLite file: one process creates the schema, the others wait
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


@contextmanager
def _sqlite_setup_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` for an ``sqlite:///`` store; nothing for other stores.

    MLflow creates and migrates an SQLite store's tables on first use, and two
    processes doing that at once fail ("table ... already exists").
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
