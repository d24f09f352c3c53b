"""When the tracking server goes away in the middle of a run.

MLflow's client retries every request (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 by
default, with exponential backoff ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` 2 s,
each wait capped at 120 s, each try at ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 120 s):
a server, or its PostgreSQL, that is back within that window (about four
minutes for a refused connection) costs the run nothing but the wait.

A server that stays away longer makes a node fail deep inside MLflow.
``TrackingOutageHook`` turns that into one clear message: what was lost, that
the training checkpoint is kept and the MLflow run left open, and that the same
command resumes into the same run once the server is back. It also stops
kedro-mlflow from waiting a second retry window just to mark the unreachable
run failed: the run stays RUNNING, which is what lets the next ``kedro run``
find it (``dlflow.tracking.resume``).
"""

from __future__ import annotations

import logging
import os

from kedro.framework.hooks import hook_impl

from dlflow.tracking.credentials import redact, redact_uri

logger = logging.getLogger(__name__)

#: MLflow's own defaults for its HTTP retries (``mlflow.environment_variables``).
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
}
_OUTAGE_SIGNS = ("Max retries exceeded", "too many 500 error responses", "too many 502", "too many 503", "too many 504")


class TrackingServerLost(RuntimeError):
    """The tracking server stopped answering for longer than MLflow's retry window."""


def is_tracking_outage(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is MLflow giving up on an unreachable server."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (requests.exceptions.ConnectionError, requests.exceptions.RetryError)):
            return True
        if type(current).__name__ in ("MlflowException", "RestException") and any(sign in str(current) for sign in _OUTAGE_SIGNS):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_settings() -> str:
    """The retry settings in effect, e.g. ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=7, ...``."""
    return ", ".join(f"{name}={os.environ.get(name) or default}" for name, default in RETRY_DEFAULTS.items())


def lost_message(where: str) -> str:
    """What was lost, ``where`` (e.g. "while node 'train_cnn' ran"), and the way back; no secret in it."""
    import mlflow

    run = mlflow.active_run()
    run_text = f"MLflow run {run.info.run_id}" if run is not None else "The MLflow run"
    return (
        f"Lost the MLflow tracking server at {redact_uri(mlflow.get_tracking_uri())} {where}: it did not answer, "
        f"or only with server errors (503 while its database is down), within MLflow's retry window "
        f"({retry_settings()}). {run_text} is left open and the training checkpoint is kept: once the server is "
        "back, run the same command again and it resumes into the same run from the last checkpointed epoch "
        "(README: 'Team tracking server')."
    )


class TrackingOutageHook:
    """A clear failure, with the way back, when the tracking server is gone past MLflow's retries."""

    @hook_impl(tryfirst=True)
    def on_node_error(self, error: Exception, node) -> None:
        if isinstance(error, TrackingServerLost) or not is_tracking_outage(error):
            return
        message = lost_message(f"while node {node.name!r} ran")
        logger.error(message)
        logger.error("The last error from MLflow: %s", redact(str(error))[:500])
        raise TrackingServerLost(message) from error

    @hook_impl(tryfirst=True)  # before kedro-mlflow tries to mark the run failed
    def on_pipeline_error(self, error: Exception) -> None:
        if not (isinstance(error, TrackingServerLost) or is_tracking_outage(error)):
            return
        if not isinstance(error, TrackingServerLost):  # lost between nodes (a hook's request), not in one
            logger.error(lost_message("between nodes"))
        # One try, not a second retry window: the server is gone, and a run it never hears
        # about stays RUNNING, which is how the next `kedro run` finds it to resume.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
