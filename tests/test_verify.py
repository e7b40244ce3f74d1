"""verify_target passes a correct target and names the check a wrong one fails."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from apps import upstream
from apps.raw import asgi, common
from harness.checks import Check, VerifyReport
from harness.errors import UsageError
from harness.ports import free_port
from harness.verify import verify_target
from tests.runhelpers import stop_group

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 20.0
READY_POLL_S = 0.05

Message = MutableMapping[str, Any]


async def wrong_app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                    send: Callable[[Message], Awaitable[None]]) -> None:
    """The raw ASGI app with three mistakes a benchmark would reward: served by the tests."""
    path = scope.get("path")
    if scope["type"] != "http" or path not in ("/hello", "/json", "/io"):
        await asgi.app(scope, receive, send)
        return
    if path == "/hello":  # wrong Content-Type
        response = common.Response(status=200, content_type="text/html", body=common.HELLO_BODY)
    elif path == "/json":  # wrong body
        response = common.Response(status=200, content_type=common.APPLICATION_JSON,
                                   body=b'{"message":"Hello, world!"}')
    else:  # answers /io at once, without waiting
        io = common.parse_io(scope["query_string"].decode())
        response = common.io_ok(io) if isinstance(io, common.IoRequest) else io
    await send({"type": "http.response.start", "status": response.status,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


@contextmanager
def _uvicorn(app: str, upstream_url: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, common.UPSTREAM_URL_ENV: upstream_url}
    process = subprocess.Popen(
        [str(BIN / "uvicorn"), app, "--app-dir", str(ROOT), "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert process.poll() is None, f"uvicorn {app} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"uvicorn {app} did not listen"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(READY_POLL_S)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "apps.upstream", "--port", "0"], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], READY_TIMEOUT_S)[0], "no ready line"
        line = process.stdout.readline().decode().strip()
        yield line.removeprefix(upstream.READY_LINE_PREFIX)
    finally:
        stop_group(process)


def test_report_is_ok_only_when_every_check_passed() -> None:
    good = Check(name="a", ok=True, detail="")
    bad = Check(name="b", ok=False, detail="GET /b: expected x, got y")
    assert VerifyReport(checks=(good,)).ok
    assert not VerifyReport(checks=()).ok
    report = VerifyReport(checks=(good, bad))
    assert not report.ok
    assert report.failures == (bad,)
    assert "b: GET /b: expected x, got y" in report.summary()


def test_rejects_a_base_url_that_is_not_http() -> None:
    with pytest.raises(UsageError, match="base URL"):
        verify_target("ftp://127.0.0.1:21", websocket=False)


def test_silent_target_fails_fast_instead_of_hanging() -> None:
    # Accepts connections (the kernel does, from the backlog) and never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        start = time.monotonic()
        report = verify_target(f"http://127.0.0.1:{port}", websocket=True, timeout_s=0.3)
        elapsed_s = time.monotonic() - start
    assert not report.ok
    assert report.failures[0].name == "hello"
    assert "no answer within 0.3 s" in report.failures[0].detail
    assert all(not c.ok for c in report.checks)
    assert elapsed_s < 3


def test_missing_date_header_is_a_warning_not_a_failure() -> None:
    """uWSGI and daphne send no Date; the check must say so without skipping them."""
    response = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: 13\r\nconnection: close\r\n\r\nHello, World!")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(5)

        def answer_all() -> None:
            with suppress(OSError):  # the listener is closed when the test is done
                while True:
                    conn, _ = listener.accept()
                    with conn:
                        conn.recv(4096)
                        conn.sendall(response)

        threading.Thread(target=answer_all, daemon=True).start()
        report = verify_target(f"http://127.0.0.1:{listener.getsockname()[1]}",
                               websocket=False, io=False, timeout_s=2)
    by_name = {c.name: c for c in report.checks}
    assert by_name["hello"].ok
    assert by_name["date_header"].ok and by_name["date_header"].warning
    assert report.warnings == (by_name["date_header"],)
    assert not by_name["json"].ok  # the same bytes for every path: only /hello is right


def test_refused_connection_fails_every_check() -> None:
    report = verify_target(f"http://127.0.0.1:{free_port()}", websocket=False, io=False,
                           timeout_s=1)
    assert report.checks and not any(c.ok for c in report.checks)
    assert "GET /hello" in report.failures[0].detail


@pytest.mark.e2e
def test_correct_target_passes_every_check(upstream_url: str) -> None:
    with _uvicorn("apps.raw.asgi:app", upstream_url) as url:
        report = verify_target(url, websocket=True, io=True)
    assert report.ok, report.summary()
    names = {c.name for c in report.checks}
    assert {"hello", "json", "not_found", "cpu[n=5000]", "io_sleep", "io_upstream",
            "ws_echo"} <= names


@pytest.mark.e2e
def test_wrong_target_fails_the_right_checks(upstream_url: str) -> None:
    with _uvicorn("tests.test_verify:wrong_app", upstream_url) as url:
        report = verify_target(url, websocket=True, io=True)
    failed = {c.name: c.detail for c in report.failures}
    assert set(failed) == {"hello", "json", "io_sleep", "io_upstream"}, report.summary()
    assert "GET /hello" in failed["hello"]
    assert "expected Content-Type 'text/plain; charset=utf-8', got 'text/html'" in failed["hello"]
    assert "expected body" in failed["json"] and "Hello, world!" in failed["json"]
    assert "expected to wait at least 100 ms" in failed["io_sleep"]
    assert "GET /io?ms=100" in failed["io_upstream"]


@pytest.mark.e2e
def test_without_websocket_or_upstream_those_checks_are_skipped(upstream_url: str) -> None:
    with _uvicorn("apps.raw.asgi:app", upstream_url) as url:
        report = verify_target(url, websocket=False, io=False)
    names = {c.name for c in report.checks}
    assert report.ok, report.summary()
    assert "ws_echo" not in names and "io_upstream" not in names and "io_sleep" in names
