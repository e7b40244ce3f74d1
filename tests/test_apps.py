"""The raw WSGI and ASGI apps answer byte for byte the same, behind real servers on loopback."""

from __future__ import annotations

import http.client
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps import upstream
from apps.raw import common
from harness.ports import free_port
from tests.runhelpers import stop_group

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 20.0
READY_POLL_S = 0.05
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
# Headers a server adds on its own; everything else must match across the two apps.
SERVER_HEADERS = frozenset({"date", "server", "connection", "keep-alive"})

# Computed once with the reference implementation; a change to cpu_work must show up here.
CPU_KNOWN = {0: 0, 1: 836760821, 1000: 298611192, 5000: 1075850200}

CONTRACT_PATHS = (
    "/hello", "/json", "/hello?x=1", "/no-such-path", "/", "/ws/echo",
    "/cpu?n=0", "/cpu?n=1000", "/cpu?n=5000",
    "/cpu", "/cpu?n=-1", "/cpu?n=abc", "/cpu?n=1000001", "/cpu?n=+5", "/cpu?n=%205",
    "/cpu?n=1000&offload=inline", "/cpu?n=1000&offload=thread", "/cpu?n=1000&offload=process",
    "/cpu?n=1000&offload=bogus", "/cpu?n=1000&offload=", "/cpu?n=x&offload=thread",
    "/io?ms=0", "/io?ms=30", "/io?ms=30&mode=sleep", "/io?ms=30&mode=upstream",
    "/io", "/io?ms=", "/io?ms=1.5", "/io?ms=60001", "/io?ms=-1", "/io?ms=1&mode=nap",
)


@dataclass(frozen=True, kw_only=True)
class Answer:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed_ms: float


def fetch(base_url: str, path: str, method: str = "GET") -> Answer:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
    try:
        start = time.perf_counter()
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        elapsed_ms = (time.perf_counter() - start) * 1000
    finally:
        connection.close()
    headers = tuple((k, v) for k, v in response.getheaders() if k.lower() not in SERVER_HEADERS)
    return Answer(status=response.status, reason=response.reason, headers=headers, body=body,
                  elapsed_ms=elapsed_ms)


def wait_ready(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            if fetch(base_url, "/hello").status == 200:
                return
        except OSError:
            pass
        time.sleep(READY_POLL_S)
    raise RuntimeError(f"{base_url} did not answer /hello within {READY_TIMEOUT_S} s")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def start_server(argv: list[str], *, upstream_url: str) -> Iterator[Server]:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    env = {**os.environ, common.UPSTREAM_URL_ENV: upstream_url}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url)
        yield Server(url=url, process=process)
    finally:
        stop_group(process)


@contextmanager
def start_upstream() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "apps.upstream", "--port", "0"], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        assert ready, "upstream printed nothing"
        line = process.stdout.readline().decode().strip()
        assert line.startswith(upstream.READY_LINE_PREFIX), line
        yield line.removeprefix(upstream.READY_LINE_PREFIX)
    finally:
        stop_group(process)


UVICORN = [str(BIN / "uvicorn"), "apps.raw.asgi:app", "--host", "127.0.0.1", "--port", "{port}",
           "--lifespan", "on", "--no-access-log", "--log-level", "warning"]
GUNICORN_SYNC = [str(BIN / "gunicorn"), "apps.raw.wsgi:app", "-b", "127.0.0.1:{port}",
                 "-w", "1", "-k", "sync", "--log-level", "warning"]
GUNICORN_GEVENT = [str(BIN / "gunicorn"), "apps.raw.wsgi:app", "-b", "127.0.0.1:{port}",
                   "-w", "1", "-k", "gevent", "--preload", "--log-level", "warning"]


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with start_upstream() as url:
        yield url


@pytest.fixture(scope="module")
def uvicorn(upstream_url: str) -> Iterator[Server]:
    with start_server(UVICORN, upstream_url=upstream_url) as server:
        yield server


@pytest.fixture(scope="module")
def gunicorn(upstream_url: str) -> Iterator[Server]:
    with start_server(GUNICORN_SYNC, upstream_url=upstream_url) as server:
        yield server


@pytest.fixture(scope="module")
def gevent(upstream_url: str) -> Iterator[Server]:
    with start_server(GUNICORN_GEVENT, upstream_url=upstream_url) as server:
        yield server


def test_cpu_work_matches_known_constants() -> None:
    assert {n: common.cpu_work(n) for n in CPU_KNOWN} == CPU_KNOWN


def test_query_parsing_rejects_what_int_would_accept() -> None:
    for bad in ("ms=+5", "ms=%205", "ms=5_0", "ms=٥", "ms=60001", "ms=", "mode=sleep"):
        assert isinstance(common.parse_io(bad), common.Response), bad
    assert common.parse_io("ms=7&mode=sleep") == common.IoRequest(ms=7, mode="sleep")
    assert common.parse_io("mode=x&ms=7&ms=9") == common.bad_request(
        "mode must be 'upstream' or 'sleep'")


@pytest.mark.e2e
def test_upstream_delays_and_validates(upstream_url: str) -> None:
    answer = fetch(upstream_url, "/delay?ms=50")
    assert (answer.status, answer.body) == (200, upstream.DELAY_BODY)
    assert 50 <= answer.elapsed_ms < 1000
    assert fetch(upstream_url, "/delay?ms=x").status == 400


@pytest.mark.e2e
def test_wsgi_and_asgi_answer_the_same_bytes(uvicorn: Server, gunicorn: Server,
                                             gevent: Server) -> None:
    for path in CONTRACT_PATHS:
        reference = fetch(uvicorn.url, path)
        for other in (gunicorn, gevent):
            answer = fetch(other.url, path)
            assert (answer.status, answer.reason, answer.headers, answer.body) == (
                reference.status, reference.reason, reference.headers, reference.body), path


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["uvicorn", "gunicorn"])
def test_contract(server_name: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(server_name)
    hello = fetch(server.url, "/hello")
    assert (hello.status, hello.headers, hello.body) == (
        200, (("content-type", "text/plain; charset=utf-8"), ("content-length", "13")),
        b"Hello, World!")
    json_answer = fetch(server.url, "/json")
    assert json_answer.body == b'{"message":"Hello, World!"}'
    assert dict(json_answer.headers)["content-type"] == "application/json"
    missing = fetch(server.url, "/nope")
    assert (missing.status, missing.body) == (404, b"Not Found")
    assert fetch(server.url, "/cpu?n=5000").body == b'{"n":5000,"result":1075850200}'
    bad = fetch(server.url, "/io?ms=abc")
    assert (bad.status, bad.body) == (400, b"Bad Request: ms must be an integer 0..60000")
    post = fetch(server.url, "/hello", method="POST")
    assert (post.status, dict(post.headers)["allow"]) == (405, "GET")


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["uvicorn", "gunicorn", "gevent"])
@pytest.mark.parametrize("mode", ["upstream", "sleep"])
def test_io_waits(server_name: str, mode: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(server_name)
    answer = fetch(server.url, f"/io?ms=100&mode={mode}")
    assert (answer.status, answer.body) == (200, common.io_body(100, mode))  # type: ignore[arg-type]
    assert 100 <= answer.elapsed_ms < 1000


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["uvicorn", "gevent"])
def test_io_waits_overlap_in_one_process(server_name: str, request: pytest.FixtureRequest) -> None:
    """One event loop (or one gevent worker) waits on many upstream calls at once."""
    server: Server = request.getfixturevalue(server_name)
    concurrent = 20
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(pool.map(lambda _: fetch(server.url, "/io?ms=200"), range(concurrent)))
    elapsed_ms = (time.perf_counter() - start) * 1000
    assert all(a.status == 200 for a in answers)
    assert elapsed_ms < 200 * concurrent / 4, f"{concurrent} waits of 200 ms took {elapsed_ms:.0f}"


@pytest.mark.e2e
def test_websocket_echo(uvicorn: Server) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = uvicorn.url.replace("http://", "ws://")
    with connect(f"{ws_url}/ws/echo", open_timeout=REQUEST_TIMEOUT_S) as ws:
        for message in ("hello", "✓" * 1000, b"\x00\xff" * 100, b""):
            ws.send(message)
            assert ws.recv(timeout=REQUEST_TIMEOUT_S) == message
    with pytest.raises(InvalidStatus), connect(f"{ws_url}/ws/nope",
                                               open_timeout=REQUEST_TIMEOUT_S):
        pass


@pytest.mark.e2e
def test_unreachable_upstream_is_502_in_both_apps() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    bodies = set()
    for argv in (UVICORN, GUNICORN_SYNC):
        with start_server(argv, upstream_url=dead) as server:
            answer = fetch(server.url, "/io?ms=10")
            assert answer.status == 502
            bodies.add(answer.body)
            # sleep mode needs no upstream
            assert fetch(server.url, "/io?ms=10&mode=sleep").status == 200
    assert bodies == {f"Bad Gateway: upstream {dead} did not answer".encode()}


@pytest.mark.e2e
def test_harness_upstream_command_runs_pinned_until_interrupted() -> None:
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "upstream", "--port", "0",
                                "--cpus", "0"], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert select.select([process.stdout], [], [], READY_TIMEOUT_S)[0], "no ready line"
        line = process.stdout.readline().decode()
        assert line.startswith(upstream.READY_LINE_PREFIX) and "(CPUs 0)" in line, line
        url = line.removeprefix(upstream.READY_LINE_PREFIX).split()[0]
        assert fetch(url, "/delay?ms=0").body == upstream.DELAY_BODY
        process.send_signal(signal.SIGINT)
        assert process.wait(STOP_TIMEOUT_S) == 0
    finally:
        stop_group(process)
