"""Who the pipeline is to an authenticated tracking server, and keeping that secret out of everything else.

MLflow's client reads the standard ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` variables. They come from one of three places:

* the environment (a shell, cron, a container's secrets);
* Kedro's credentials: the entry of ``conf/local/credentials.yml`` (gitignored)
  that ``server.credentials`` in ``mlflow.yml`` names, exported as kedro-mlflow
  does (``export_kedro_credentials``, before the pre-flight check needs them);
  when both are set, Kedro's credentials win, as they do in kedro-mlflow;
* an Airflow connection, which the generated DAGs turn into the same variables.

``redact`` and ``redact_uri`` keep the password, and a URI that embeds it, out
of every message this project writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
#: The variables a credentials entry may set: what MLflow's client reads for a login.
CREDENTIAL_VARIABLES = (USERNAME_ENV, PASSWORD_ENV, "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS")

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


class TrackingCredentialsError(RuntimeError):
    """The credentials entry that ``mlflow.yml`` names is missing or malformed."""


def export_kedro_credentials(credentials: Mapping[str, Any], key: str | None) -> bool:
    """Export the credentials entry ``key`` (``server.credentials`` in ``mlflow.yml``) to the environment.

    Does what kedro-mlflow does a moment later, so that the pre-flight check logs
    in as the same user. Returns whether an entry was exported; no ``key``, or no
    such entry (no ``conf/local/credentials.yml``), leaves the environment as it is.
    Raises ``TrackingCredentialsError`` naming the unknown key (never a value)
    when the entry sets anything but MLflow's login variables.
    """
    if not key:
        return False
    entry = credentials.get(key)
    if not entry:
        return False
    if not isinstance(entry, Mapping):
        raise TrackingCredentialsError(f"credentials entry {key!r} must map {USERNAME_ENV} and {PASSWORD_ENV} to values")
    unknown = sorted(str(name) for name in entry if name not in CREDENTIAL_VARIABLES)
    if unknown:
        raise TrackingCredentialsError(
            f"credentials entry {key!r} sets {', '.join(unknown)}; it may set only {', '.join(CREDENTIAL_VARIABLES)}"
        )
    for name, value in entry.items():
        os.environ[name] = str(value)
    return True


def login() -> tuple[str | None, str | None]:
    """The username and password MLflow's client will send (``None`` where unset)."""
    return os.environ.get(USERNAME_ENV) or None, os.environ.get(PASSWORD_ENV) or None


def redact_uri(uri: str) -> str:
    """``uri`` without any ``user:password@`` part: ``http://u:p@host`` → ``http://***@host``."""
    return _USERINFO.sub(r"\g<scheme>***@", uri)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URI's login part and each of ``secrets`` (default: the password) masked."""
    text = redact_uri(text)
    for secret in [*secrets, os.environ.get(PASSWORD_ENV)]:
        if secret:
            text = text.replace(secret, "***")
    return text
