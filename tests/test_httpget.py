"""The harness's one HTTP client call and its readiness rule, against a stdlib server."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from harness.httpget import NO_ANSWER, answers_ready, fetch, is_ready, status_of


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the status named by the path (``/204``), echoing what it was sent."""

    def _answer(self, body: bytes) -> None:
        status = int(self.path.split("?")[0].strip("/") or 200)
        text = (f"{self.command} {self.path} accept={self.headers.get('Accept')} ").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(text + body)))
        self.end_headers()
        self.wfile.write(text + body)

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows the test's own output only."""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "ready"), [
    (200, True), (201, True), (204, True), (299, True),
    (None, False), (199, False), (301, False), (404, False), (503, False)])
def test_any_2xx_is_ready(status: int | None, ready: bool) -> None:
    assert is_ready(status) is ready


def test_fetch_sends_the_path_query_and_headers(base_url: str) -> None:
    answer = fetch(base_url + "/200?n=5", headers=[("Accept", "*/*")])
    assert answer.status == 200
    assert answer.body == b"GET /200?n=5 accept=*/* "
    assert answer.headers["Content-Length"] == str(len(answer.body))
    assert answer.elapsed_ms >= 0


def test_fetch_replays_another_method_with_its_body(base_url: str) -> None:
    answer = fetch(base_url + "/201", method="POST", body=b"payload")
    assert (answer.status, answer.body) == (201, b"POST /201 accept=None payload")


def test_readiness_follows_the_status(base_url: str) -> None:
    assert status_of(base_url + "/204") == 204
    assert answers_ready(base_url + "/204")
    assert not answers_ready(base_url + "/404")


def test_nothing_listening_is_no_answer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert status_of(f"http://127.0.0.1:{port}/") is None
    assert not answers_ready(f"http://127.0.0.1:{port}/")


def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections queue, nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hello"
        with pytest.raises(NO_ANSWER):
            fetch(url, timeout_s=0.2)
