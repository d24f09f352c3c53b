"""Where runs are tracked: a fast pre-flight check of the tracking server, and the experiment.

MLflow's own client retries an unreachable server for minutes and then fails
deep inside kedro-mlflow; ``check_tracking_server`` asks the server's
``/health`` endpoint once before anything runs: a server that is down refuses the
connection at once, and one that accepts but does not answer within
``PREFLIGHT_TIMEOUT_S`` counts as unreachable. On a
server with MLflow's access control (``mlflow server --app-name basic-auth``)
it then logs in as the configured user and asks the server what that user may
do, so that a wrong password or a missing permission stops ``kedro run`` in
seconds, before any data is touched, naming the permission and never the
password; ``check_registration_permission`` does the same for the registered
models a pipeline will write.
"""

from __future__ import annotations

import base64
import fcntl
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlflow.tracking.credentials import PASSWORD_ENV, USERNAME_ENV, login, redact, redact_uri

#: What a run needs: EDIT on its experiment (create the run, log to it) and on every registered
#: model it registers a version of or moves an alias on. MANAGE includes EDIT.
WRITE_PERMISSIONS = ("EDIT", "MANAGE")
#: How long one pre-flight request may wait for an answer. Generous, because a server that is up
#: but busy is not an outage: on basic-auth every request checks a salted password hash, and a
#: 2-core machine starting two runs at once has taken more than 5 s to answer.
PREFLIGHT_TIMEOUT_S = 30.0
_HOW_TO_LOG_IN = (
    f"Set {USERNAME_ENV} and {PASSWORD_ENV}, or name a credentials entry in mlflow.yml's "
    "server.credentials and put it in conf/local/credentials.yml (README: 'Team tracking server')."
)


class TrackingServerUnreachable(RuntimeError):
    """The MLflow tracking server named by the tracking URI does not answer."""


class TrackingLoginFailed(RuntimeError):
    """The tracking server refuses the login (HTTP 401): no credentials, or wrong ones."""


class TrackingPermissionDenied(RuntimeError):
    """The logged-in user lacks a permission the run needs; the message names it."""


def check_tracking_server(uri: str, timeout: float = PREFLIGHT_TIMEOUT_S, experiment: str | None = None) -> None:
    """Fail fast, before any work, when the tracking server cannot take this run.

    Raises ``TrackingServerUnreachable`` naming ``uri`` when an HTTP(S) tracking
    server does not answer, and, on a server that asks for a login,
    ``TrackingLoginFailed`` when it refuses the credentials. With ``experiment``:
    ``TrackingPermissionDenied`` when the user may not write to it (EDIT;
    :func:`check_experiment_permission`). Other stores (an SQLite file, a database
    URI) are opened by the client itself and need no check here. No message
    contains the password.
    """
    if not uri.startswith(("http://", "https://")):
        return
    shown = redact_uri(uri)
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status == 200:
                problem = None
            else:
                problem = f"HTTP {response.status} from {redact_uri(health)}"
    except urllib.error.HTTPError as error:
        problem = f"HTTP {error.code} from {redact_uri(health)}"
    except (urllib.error.URLError, OSError) as error:
        problem = redact(str(getattr(error, "reason", error)))
    if problem is not None:
        raise TrackingServerUnreachable(
            f"The MLflow tracking server at {shown} is unreachable ({problem}). Nothing was run. "
            "Start the server (README: 'Team tracking server'), or set MLFLOW_TRACKING_URI to a "
            "reachable server, or unset it to use the embedded SQLite store under mlruns/."
        )
    check_experiment_permission(uri, experiment or LOGIN_PROBE_EXPERIMENT, timeout, write=experiment is not None)


def check_registration_permission(uri: str, model_names: Iterable[str], timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Raise ``TrackingPermissionDenied`` when the user may not register versions of (or move
    aliases on) one of ``model_names`` that already exists on an authenticated server.

    A model that does not exist yet is created by the run, and its creator owns it.
    """
    if not uri.startswith(("http://", "https://")):
        return
    username, _ = login()
    if username is None:
        return
    for name in sorted(set(model_names)):
        status, _ = _get(uri, "/api/2.0/mlflow/registered-models/get", {"name": name}, timeout)
        if status not in (200, 403):
            continue  # 404: missing, the run creates it (and owns it)
        permission = _user_permission(uri, username, "registered_model", name, timeout)
        if permission is not None and permission not in WRITE_PERMISSIONS:
            raise TrackingPermissionDenied(
                f"User {username!r} has {permission} permission on registered model {name!r} at {redact_uri(uri)}; "
                "this run registers a version of it and moves its aliases, which needs EDIT. Nothing was run. "
                f"An admin grants it (README: 'Team tracking server'), or run without registering "
                "(--params <family>.registration.enabled=false)."
            )


def registered_model_names(pipeline_inputs: Iterable[str], params: dict[str, Any]) -> list[str]:
    """The registered models a pipeline writes: ``<family>.registration.model_name`` of every
    ``params:<family>.registration`` input whose registration is enabled."""
    names = []
    for name in pipeline_inputs:
        if not (name.startswith("params:") and name.endswith(".registration")):
            continue
        block: Any = params
        for key in name.removeprefix("params:").split("."):
            block = block.get(key) if isinstance(block, dict) else None
        if isinstance(block, dict) and block.get("enabled", True) and block.get("model_name"):
            names.append(str(block["model_name"]))
    return names


#: An experiment every store has: reading it proves the login without asking for any permission.
LOGIN_PROBE_EXPERIMENT = "Default"


def check_experiment_permission(uri: str, experiment: str, timeout: float = PREFLIGHT_TIMEOUT_S, write: bool = True) -> None:
    """On an authenticated HTTP(S) server: ``TrackingLoginFailed`` when the login is refused;
    with ``write``, ``TrackingPermissionDenied`` when the user may not write to ``experiment``
    (a run needs EDIT on it). An experiment that does not exist yet passes: the run creates it."""
    if not uri.startswith(("http://", "https://")):
        return
    username, _ = login()
    shown = redact_uri(uri)
    status, body = _get(uri, "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": experiment}, timeout)
    if status == 401:
        if username is None:
            raise TrackingLoginFailed(
                f"The MLflow tracking server at {shown} requires a login and none is set. Nothing was run. {_HOW_TO_LOG_IN}"
            )
        raise TrackingLoginFailed(
            f"The MLflow tracking server at {shown} refused the login of user {username!r} "
            f"(HTTP 401: unknown user or wrong password). Nothing was run. {_HOW_TO_LOG_IN}"
        )
    if status == 403:
        raise TrackingPermissionDenied(
            f"User {username!r} may not read experiment {experiment!r} at {shown} (HTTP 403); a run needs EDIT on it. "
            "Nothing was run. An admin grants it (README: 'Team tracking server')."
        )
    if status != 200 or username is None or not write:
        return  # no such experiment yet (the run creates it and owns it), or a server without logins
    experiment_id = body["experiment"]["experiment_id"]
    permission = _user_permission(uri, username, "experiment", experiment_id, timeout)
    if permission is not None and permission not in WRITE_PERMISSIONS:
        raise TrackingPermissionDenied(
            f"User {username!r} has {permission} permission on experiment {experiment!r} (id {experiment_id}) at {shown}; "
            "a `kedro run` needs EDIT there, to create its run and log metrics, parameters and artifacts. "
            "Nothing was run. An admin grants it (README: 'Team tracking server')."
        )


def _user_permission(uri: str, username: str, resource_type: str, resource_id: str, timeout: float) -> str | None:
    """The user's effective permission on a resource, as the basic-auth server resolves it; None without one."""
    query = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    status, body = _get(uri, "/api/3.0/mlflow/users/permissions/get", query, timeout)
    if status != 200 or not isinstance(body, dict):
        return None  # 404: no basic-auth app on this server
    return body.get("permission")


def _get(uri: str, path: str, query: dict[str, str], timeout: float) -> tuple[int, Any]:
    """One GET with the configured login (HTTP basic), no retries: (status, decoded JSON or None)."""
    username, password = login()
    request = urllib.request.Request(uri.rstrip("/") + path + "?" + urllib.parse.urlencode(query))
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise TrackingServerUnreachable(
            f"The MLflow tracking server at {redact_uri(uri)} stopped answering during the pre-flight check "
            f"({redact(str(getattr(error, 'reason', error)))}). Nothing was run."
        ) from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


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
