"""A scripted HTTP server on 127.0.0.1 for the downloader's tests (real sockets, real HTTP)."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest


class Server:
    """Serves scripted responses: each path has a list of (status, body, claimed length);
    requests consume it in order and the last response repeats."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, bytes, int | None]]] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                script = server.routes.get(self.path, [(404, b"not found", None)])
                status, body, length = script[min(server.hits[self.path], len(script)) - 1]
                if status == 0:  # hang past the client's timeout
                    time.sleep(1.0)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(length if length is not None else len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def serve(self, path: str, *responses: tuple[int, bytes] | tuple[int, bytes, int]) -> str:
        self.routes[path] = [(r[0], r[1], r[2] if len(r) > 2 else None) for r in responses]
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
