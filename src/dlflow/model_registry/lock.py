"""One registration at a time per registered model: a lock held in the tracking store itself.

MLflow has no compare-and-set for aliases, but creating a registered model is
atomic: the store refuses a second model of the same name (a unique key in
SQLite and PostgreSQL, ``RESOURCE_ALREADY_EXISTS`` through a tracking server).
:func:`registration_lock` takes ``<model>.registration-lock`` by creating that
registered model and releases it by deleting it, so whatever the store and
however many processes or machines register at once, the gate's read, decision
and writes happen one registration after another.

A holder that dies leaves its lock behind. A waiter that has seen the same
holder (the lock's description, unique per holder) for ``lease_s`` seconds by its
own clock deletes the lock and competes again; a registration holds it for about
a second. What is left: a holder stalled for longer than the lease, or two
waiters breaking the same dead lock within one read and one delete of each
other, can let two registrations overlap; even then the next registration puts
the aliases where the recorded decisions say (:mod:`dlflow.model_registry.store`).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".registration-lock"


def actor() -> str:
    """``user@host`` of this process, for the lock and the alias audit."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@contextmanager
def registration_lock(
    client: MlflowClient, model_name: str, *, lease_s: float = 300.0, wait_s: float = 1800.0, poll_s: float = 0.2
) -> Iterator[None]:
    """Hold ``<model_name>.registration-lock`` for the body of the ``with`` block."""
    from mlflow.exceptions import MlflowException

    name, token = model_name + LOCK_SUFFIX, f"held by {actor()} pid {os.getpid()} ({uuid.uuid4().hex})"
    deadline, seen = time.monotonic() + wait_s, None  # seen: (holder, since when by our clock)
    while True:
        try:
            client.create_registered_model(name, description=token)
            break
        except MlflowException as error:  # held by another registration (or a busy store): wait
            holder, now = _holder(client, name), time.monotonic()
            if holder is not None and (seen is None or seen[0] != holder):
                seen = (holder, now)
            elif holder is not None and now - seen[1] > lease_s:
                logger.warning("Breaking the registration lock of %s (%s) after %.0f s", model_name, holder, lease_s)
                _release(client, name, holder)
                continue
            if now > deadline:
                raise TimeoutError(f"could not take the registration lock of {model_name} in {wait_s:.0f} s") from error
            time.sleep(poll_s)
    try:
        yield
    finally:
        _release(client, name, token)


def _holder(client: MlflowClient, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name).description or ""
    except MlflowException:  # released meanwhile
        return None


def _release(client: MlflowClient, name: str, token: str) -> None:
    """Delete the lock if ``token`` still holds it (not one that a waiter broke and retook)."""
    from mlflow.exceptions import MlflowException

    if _holder(client, name) != token:
        logger.warning("The registration lock %s was no longer held by %s", name, token)
        return
    try:
        client.delete_registered_model(name)
    except MlflowException:  # deleted meanwhile by a waiter that found it stale
        pass
