"""Talking to a real ``mlflow models serve`` on loopback: start it, wait for it, ask it, stop it.

Shared by tests/test_serving.py (the registered champions) and tests/serving/test_server.py (our
configuration). A server is a subprocess in its own process group, always stopped with its workers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

STARTUP_SECONDS = 180  # importing torch and MLflow on a busy 2-core machine
REQUEST_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the CLI, uvicorn and its workers), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if server.poll() is not None:
            break
        os.killpg(server.pid, sig)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
    try:  # workers a killed supervisor left behind
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until_up(
    url: str, server: subprocess.Popen, log: Path, path: str = "/ping", what: str = "mlflow models serve",
    seconds: float = STARTUP_SECONDS, workers: int = 1,
) -> None:  # fmt: skip
    """Wait until ``url + path`` answers 200 and ``workers`` workers have started; fail with the server's
    log if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{what} exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=5) as answer:
                if answer.status == 200 and log.read_text().count("Application startup complete") >= workers:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"{what} did not answer {path} with {workers} worker(s) within {seconds} s:\n{log.read_text()[-3000:]}")


@contextmanager
def serving(
    command: Sequence[str], env: Mapping[str, str], log: Path, port: int, cwd: Path | None = None, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``command`` (a server listening on ``port`` of 127.0.0.1) running, up; yields its URL and process."""
    with log.open("w") as output:
        server = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server, log, workers=workers)
        yield url, server
    finally:
        stop(server)


def invoke(url: str, payload: dict) -> list:
    """POST ``payload`` to ``/invocations``; the ``predictions`` of the answer."""
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as answer:
        return json.loads(answer.read())["predictions"]


def refusal(url: str, payload: dict | str) -> str:
    """POST ``payload`` (a dict, or raw JSON text); assert HTTP 400 and return the server's message."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    request = urllib.request.Request(f"{url}/invocations", data=body.encode(), headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=REQUEST_SECONDS)
    assert error.value.code == 400, error.value.read().decode()
    return error.value.read().decode()
