"""The pre-flight check against a server that is up but slow: busy is not down.

A plain HTTP server on loopback stands in for MLflow here, because what is
tested is the waiting, not MLflow's answers (those: test_tracking_server.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dlflow.tracking.server import TrackingServerUnreachable, check_tracking_server


@contextmanager
def _slow_server(delay_s: float) -> Iterator[str]:
    """A server that answers /health (200) after ``delay_s``, and every other request (404: no such
    experiment) at once."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/health" else 404
            if status == 200:
                time.sleep(delay_s)
            body = b"OK" if status == 200 else json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST"}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: what the timeout test expects

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_takes_six_seconds_to_answer_passes_the_default_check():
    # A basic-auth server on a loaded 2-core machine once took over 5 s, the old limit, and CI failed a run.
    with _slow_server(6.0) as uri:
        started = time.monotonic()
        check_tracking_server(uri, experiment="dlflow/cnn")
    assert time.monotonic() - started >= 6  # it was waited for, not skipped


def test_a_server_that_accepts_but_never_answers_in_time_is_unreachable():
    with _slow_server(3.0) as uri, pytest.raises(TrackingServerUnreachable, match="timed out"):
        check_tracking_server(uri, timeout=1, experiment="dlflow/cnn")
