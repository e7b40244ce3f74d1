"""The long-lived routes of the raw apps (/stream, /upload, /background): the pure parsing and
bytes in apps/raw/common.py, each app in-process, and both behind real servers on loopback
(gunicorn gthread for WSGI, uvicorn for ASGI), including verify's checks of them."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import itertools
import json
import random
import socket
import time
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    MutableMapping,
    Sequence,
)
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from apps.raw import asgi, common, wsgi
from harness.catalogue import APPS, LONG_LIVED
from harness.verify import verify_long_lived
from tests.test_apps import BIN, SERVER_HEADERS, UVICORN, Server, start_server

REQUEST_TIMEOUT_S = 10.0
# These routes never call the upstream: the servers get an address nothing listens on.
NO_UPSTREAM = "http://127.0.0.1:9"
MIB = 1024 * 1024

Message = MutableMapping[str, Any]

# One worker, so the per-process background counters are all in one place; four threads, so a
# stream, a background task and the stats reads can run at once.
GUNICORN_GTHREAD = [str(BIN / "gunicorn"), "apps.raw.wsgi:app", "-b", "127.0.0.1:{port}",
                    "-w", "1", "-k", "gthread", "--threads", "4", "--log-level", "warning"]
GUNICORN_GTHREAD_2 = [*GUNICORN_GTHREAD[:5], "2", *GUNICORN_GTHREAD[6:]]
UVICORN_BUFFERING = [arg.replace("apps.raw.asgi:app", "tests.test_apps_long_lived:buffering_app")
                     for arg in UVICORN]


# ---------------------------------------------------------------- pure logic (no servers)

def test_stream_events_are_deterministic_sse() -> None:
    assert common.stream_event(0, 3, 100) == b'id: 0\ndata: {"i":0,"of":3,"at_ms":0}\n\n'
    assert common.stream_event(2, 3, 100) == b'id: 2\ndata: {"i":2,"of":3,"at_ms":200}\n\n'
    assert common.stream_body(3, 100) == b"".join(common.stream_event(i, 3, 100)
                                                  for i in range(3))
    request = common.StreamRequest(events=3, interval_ms=250)
    assert request.event(1) == common.stream_event(1, 3, 250) and request.interval_s == 0.25


def test_stream_parameters() -> None:
    assert common.parse_stream("events=1&interval_ms=0") == common.StreamRequest(
        events=1, interval_ms=0)
    assert common.parse_stream("interval_ms=60000&events=10000&events=5") == common.StreamRequest(
        events=10000, interval_ms=60000)
    bad_events = common.bad_request("events must be an integer 1..10000")
    bad_interval = common.bad_request("interval_ms must be an integer 0..60000")
    for query in ("", "events=0&interval_ms=1", "events=10001&interval_ms=1",
                  "events=+5&interval_ms=1", "events=abc&interval_ms=1", "interval_ms=1"):
        assert common.parse_stream(query) == bad_events, query
    for query in ("events=1", "events=1&interval_ms=60001", "events=1&interval_ms=-1",
                  "events=1&interval_ms=1.5"):
        assert common.parse_stream(query) == bad_interval, query


def test_upload_length_rules() -> None:
    too_large = common.UPLOAD_TOO_LARGE
    assert (too_large.status, too_large.body) == (
        413, b"Content Too Large: the body limit is 67108864 bytes")
    assert common.upload_length(None, None) == 0  # no body (RFC 9112 6.3)
    assert common.upload_length("", "") == 0
    assert common.upload_length("0", None) == 0
    assert common.upload_length(" 17 ", None) == 17
    assert common.upload_length("00005", None) == 5
    assert common.upload_length(str(64 * MIB), None) == 64 * MIB
    assert common.upload_length(str(64 * MIB + 1), None) is too_large
    assert common.upload_length("9" * 5000, None) is too_large  # never int() of it
    assert common.upload_length("0" * 40 + "1", None) == 1
    assert common.upload_length("1e3", None) == common.bad_request(
        "Content-Length must be an integer")
    assert common.upload_length("-1", None) == common.bad_request(
        "Content-Length must be an integer")
    assert common.upload_length(None, "chunked") is common.LENGTH_REQUIRED
    assert common.upload_length("5", "chunked") is common.LENGTH_REQUIRED
    assert common.LENGTH_REQUIRED.status_line == "411 Length Required"
    assert common.upload_body(1, "ab") == b'{"bytes":1,"sha256":"ab"}'


def test_background_parameters_and_counters() -> None:
    assert common.parse_background("ms=0") == common.BackgroundRequest(ms=0)
    assert common.BackgroundRequest(ms=60000).response.body == b'{"ms":60000,"queued":true}'
    for query in ("", "ms=60001", "ms=abc", "ms=-1"):
        assert common.parse_background(query) == common.bad_request(
            "ms must be an integer 0..60000"), query
    counters = common.BackgroundCounters()
    counters.start()
    counters.start()
    counters.finish()
    answer = json.loads(counters.response().body)
    assert list(answer) == ["pid", "started", "finished"]
    assert (answer["started"], answer["finished"]) == (2, 1) and answer["pid"] > 0


def test_routing_of_the_long_lived_paths() -> None:
    route = common.route
    assert route("POST", "/upload", "") is common.UPLOAD
    for method in ("GET", "HEAD", "PUT"):
        refused = route(method, "/upload", "")
        assert refused is common.METHOD_NOT_ALLOWED_POST
        assert refused.header_pairs[-1] == ("allow", "POST")
    assert route("POST", "/stream", "events=1&interval_ms=0") is common.METHOD_NOT_ALLOWED
    assert route("POST", "/hello", "") is common.METHOD_NOT_ALLOWED  # still allow: GET
    assert route("GET", "/stream", "events=2&interval_ms=5") == common.StreamRequest(
        events=2, interval_ms=5)
    assert route("GET", "/background", "ms=5") == common.BackgroundRequest(ms=5)
    assert route("GET", "/background/stats", "") is common.BACKGROUND_STATS
    assert route("GET", "/upload/", "") is common.NOT_FOUND
    assert route("GET", "/background/", "") is common.NOT_FOUND


def test_every_family_says_which_long_lived_routes_it_serves() -> None:
    for name, family in APPS.items():
        if name.startswith("django"):  # Django 5.2 has no background-task API
            assert family.long_lived == ("stream", "upload"), name
        else:
            assert family.long_lived == LONG_LIVED, name


# ---------------------------------------------------------------- each app in-process

def _call_wsgi(method: str, path: str, query: str = "", body: bytes = b"",
               headers: dict[str, str] | None = None,
               ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path,
                               "QUERY_STRING": query, "wsgi.input": io.BytesIO(body)}
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(headers or {})
    setup_testing_defaults(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None,
                       ) -> Callable[[bytes], object]:
        started.append((status, headers))
        return lambda data: None

    result = wsgi.app(environ, start_response)  # type: ignore[arg-type]
    return started[0][0], started[0][1], result


def test_wsgi_app_streams_with_a_generator_and_waits_between_events() -> None:
    status, headers, result = _call_wsgi("GET", "/stream", "events=3&interval_ms=50")
    assert status == "200 OK" and headers == list(common.STREAM_HEADERS)
    start = time.perf_counter()
    arrivals = []
    for chunk in result:
        arrivals.append(time.perf_counter() - start)
        assert chunk == common.stream_event(len(arrivals) - 1, 3, 50)
    assert arrivals[0] < 0.04 and arrivals[2] >= 0.1 - 0.002


def test_wsgi_app_hashes_an_upload_in_chunks() -> None:
    data = random.Random(1).randbytes(3 * common.UPLOAD_CHUNK_BYTES + 7)
    status, _, result = _call_wsgi("POST", "/upload", body=data)
    assert status == "200 OK"
    assert b"".join(result) == common.upload_body(len(data), hashlib.sha256(data).hexdigest())
    # a Content-Length the body does not reach: the client went away
    status, _, result = _call_wsgi("POST", "/upload", body=b"abc",
                                   headers={"CONTENT_LENGTH": "10"})
    assert (status, b"".join(result)) == ("400 Bad Request",
                                          b"Bad Request: the body ended after 3 of 10 bytes")
    status, _, _ = _call_wsgi("POST", "/upload", headers={"CONTENT_LENGTH": str(64 * MIB + 1)})
    assert status == "413 Request Entity Too Large"  # Python 3.11's phrase, as uvicorn's
    status, _, _ = _call_wsgi("POST", "/upload", headers={"HTTP_TRANSFER_ENCODING": "chunked"})
    assert status == "411 Length Required"


def test_wsgi_app_works_in_close_after_the_body() -> None:
    before = json.loads(b"".join(_call_wsgi("GET", "/background/stats")[2]))
    status, _, result = _call_wsgi("GET", "/background", "ms=20")
    assert status == "200 OK" and list(result) == [b'{"ms":20,"queued":true}']
    middle = json.loads(b"".join(_call_wsgi("GET", "/background/stats")[2]))
    assert middle == before  # nothing runs until the server calls close()
    start = time.perf_counter()
    result.close()  # type: ignore[attr-defined]
    assert time.perf_counter() - start >= 0.02 - 0.002
    after = json.loads(b"".join(_call_wsgi("GET", "/background/stats")[2]))
    assert (after["started"], after["finished"]) == (before["started"] + 1,
                                                     before["finished"] + 1)


class _AsgiClient:
    """Drives the raw ASGI app in-process: the request's messages in, the sent messages out."""

    def __init__(self, incoming: Sequence[Message]) -> None:
        self.incoming = list(incoming)
        self.sent: list[tuple[float, Message]] = []
        self.disconnect = asyncio.Event()
        self.start = time.perf_counter()

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append((time.perf_counter() - self.start, message))

    async def run(self, method: str, path: str, query: str = "",
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
        scope = {"type": "http", "method": method, "path": path,
                 "query_string": query.encode(), "headers": headers or []}
        await asgi.app(scope, self.receive, self.send)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for _, m in self.sent
                        if m["type"] == "http.response.body")


def _run(coroutine: Coroutine[Any, Any, Any]) -> None:
    asyncio.run(coroutine)


def test_asgi_app_streams_with_more_body_and_a_final_empty_body() -> None:
    client = _AsgiClient([{"type": "http.request", "body": b"", "more_body": False}])
    _run(client.run("GET", "/stream", "events=3&interval_ms=50"))
    start, *bodies = [m for _, m in client.sent]
    assert start["status"] == 200
    assert start["headers"] == [(n.encode(), v.encode()) for n, v in common.STREAM_HEADERS]
    assert [m.get("more_body") for m in bodies] == [True, True, True, False]
    assert client.body == common.stream_body(3, 50)
    times = [t for t, m in client.sent if m.get("body")]
    assert times[0] < 0.04 and times[2] - times[0] >= 0.1 - 0.002


def test_asgi_stream_stops_when_the_client_leaves() -> None:
    client = _AsgiClient([{"type": "http.request", "body": b"", "more_body": False}])

    async def leave_after_two_events() -> None:
        while len(client.sent) < 3:  # start + two events
            await asyncio.sleep(0.005)
        client.disconnect.set()

    async def both() -> None:
        await asyncio.gather(client.run("GET", "/stream", "events=100&interval_ms=50"),
                             leave_after_two_events())

    start = time.perf_counter()
    _run(both())
    assert time.perf_counter() - start < 1.0  # not the 5 s the 100 events would take
    assert len(client.sent) == 3


def test_asgi_app_hashes_each_message_of_an_upload() -> None:
    data = random.Random(2).randbytes(200_000)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    messages = [{"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
                for i, piece in enumerate(pieces)]
    client = _AsgiClient(messages)
    _run(client.run("POST", "/upload", headers=[(b"content-length", str(len(data)).encode())]))
    assert client.sent[0][1]["status"] == 200
    assert client.body == common.upload_body(len(data), hashlib.sha256(data).hexdigest())
    refused = _AsgiClient([])  # 413 before receive() is called: the body is never read
    _run(refused.run("POST", "/upload", headers=[(b"content-length", b"67108865")]))
    assert (refused.sent[0][1]["status"], refused.body) == (413, common.UPLOAD_TOO_LARGE.body)
    gone = _AsgiClient([{"type": "http.request", "body": b"ab", "more_body": True}])
    gone.disconnect.set()
    _run(gone.run("POST", "/upload", headers=[(b"content-length", b"10")]))
    assert gone.sent == []  # nobody to answer


def test_asgi_app_works_after_the_final_body() -> None:
    client = _AsgiClient([{"type": "http.request", "body": b"", "more_body": False}])
    seen: dict[str, Any] = {}

    async def watch() -> None:
        stats = _AsgiClient([])
        await asyncio.sleep(0.01)
        await stats.run("GET", "/background/stats")
        seen.update(json.loads(stats.body))

    async def both() -> None:
        await asyncio.gather(client.run("GET", "/background", "ms=50"), watch())

    before = json.loads(asgi._background.response().body)
    _run(both())
    assert client.sent[-1][1] == {"type": "http.response.body",
                                  "body": b'{"ms":50,"queued":true}'}
    mid = seen
    start0, finish0 = before["started"], before["finished"]
    assert (mid["started"], mid["finished"]) == (start0 + 1, finish0)  # running after the send
    after = json.loads(asgi._background.response().body)
    assert (after["started"], after["finished"]) == (start0 + 1, finish0 + 1)


# ---------------------------------------------------------------- behind real servers

def _connection(server: Server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)


def _read_events(server: Server, path: str,
                 ) -> tuple[int, tuple[tuple[str, str], ...], bytes, list[float]]:
    """Status, app headers, body, and the ms at which each event (ended by a blank line) arrived
    after the request was sent."""
    connection = _connection(server)
    try:
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = b""
        arrivals: list[float] = []
        while chunk := response.read1(65536):
            body += chunk
            now_ms = (time.perf_counter() - start) * 1000
            arrivals.extend([now_ms] * (body.count(b"\n\n") - len(arrivals)))
    finally:
        connection.close()
    headers = tuple((k.lower(), v) for k, v in response.getheaders()
                    if k.lower() not in SERVER_HEADERS | {"transfer-encoding"})
    return response.status, headers, body, arrivals


def _post(server: Server, path: str, body: bytes) -> tuple[int, bytes, float]:
    connection = _connection(server)
    try:
        start = time.perf_counter()
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - start) * 1000
    finally:
        connection.close()


def _get(server: Server, path: str) -> tuple[int, bytes, float]:
    connection = _connection(server)
    try:
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - start) * 1000
    finally:
        connection.close()


@pytest.fixture(scope="module")
def gthread() -> Iterator[Server]:
    with start_server(GUNICORN_GTHREAD, upstream_url=NO_UPSTREAM) as server:
        yield server


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[Server]:
    with start_server(UVICORN, upstream_url=NO_UPSTREAM) as server:
        yield server


@pytest.mark.e2e
def test_stream_is_the_same_bytes_on_both_gateways_and_spread_in_time(
        gthread: Server, uvicorn: Server) -> None:
    path = "/stream?events=4&interval_ms=100"
    answers = {name: _read_events(server, path)
               for name, server in (("gthread", gthread), ("uvicorn", uvicorn))}
    reference = answers["uvicorn"]
    assert reference[:3] == (200, common.STREAM_HEADERS, common.stream_body(4, 100))
    for name, (status, headers, body, arrivals) in answers.items():
        assert (status, headers, body) == reference[:3], name
        assert len(arrivals) == 4, name
        assert arrivals[0] < 100, f"{name}: the first event came after {arrivals[0]:.0f} ms"
        # 300 ms of waits; at least half of it between the first and last arrival
        assert arrivals[-1] - arrivals[0] >= 150, f"{name}: {arrivals}"
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(gap >= 50 for gap in gaps), f"{name}: {arrivals}"


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["gthread", "uvicorn"])
def test_upload_of_16_mib_is_hashed(server_name: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(server_name)
    data = random.Random(16).randbytes(16 * MIB)
    status, body, _ = _post(server, "/upload", data)
    assert (status, body) == (200, common.upload_body(len(data),
                                                      hashlib.sha256(data).hexdigest()))
    assert _post(server, "/upload", b"")[:2] == (200, common.upload_body(
        0, hashlib.sha256(b"").hexdigest()))


def _head_only_post(server: Server, length: int) -> tuple[bytes, bytes]:
    """POST /upload declaring ``length`` bytes and sending none: the status line and body."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
                     "Connection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        body = response.read()
        response.close()
    return f"{response.status} {response.reason}".encode(), body


@pytest.mark.e2e
def test_oversized_upload_is_refused_before_its_body(gthread: Server, uvicorn: Server) -> None:
    """The app answers 413 from the Content-Length alone: no body byte is sent here."""
    expected = (b"413 Request Entity Too Large", common.UPLOAD_TOO_LARGE.body)
    assert _head_only_post(gthread, 64 * MIB + 1) == expected
    assert _head_only_post(uvicorn, 64 * MIB + 1) == expected
    for server in (gthread, uvicorn):
        status, body, _ = _get(server, "/upload")
        assert (status, body) == (405, common.METHOD_NOT_ALLOWED_BODY)


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["gthread", "uvicorn"])
def test_background_work_runs_after_the_answer_and_is_counted(
        server_name: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(server_name)  # one worker process
    before = json.loads(_get(server, "/background/stats")[1])
    ms, tasks = 400, 3
    for _ in range(tasks):
        status, body, elapsed_ms = _get(server, f"/background?ms={ms}")
        assert (status, body) == (200, common.background_body(ms))
        assert elapsed_ms < ms / 2, f"answered after {elapsed_ms:.0f} ms"
    during = json.loads(_get(server, "/background/stats")[1])
    assert during["pid"] == before["pid"]
    assert during["finished"] - before["finished"] < tasks  # the work is not done yet
    deadline = time.monotonic() + ms / 1000 + 2
    while True:
        after = json.loads(_get(server, "/background/stats")[1])
        if after["finished"] - before["finished"] == tasks or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (after["started"] - before["started"], after["finished"] - before["finished"]) == (
        tasks, tasks)


@pytest.mark.e2e
@pytest.mark.parametrize("argv", [GUNICORN_GTHREAD_2, UVICORN], ids=["gthread-2", "uvicorn"])
def test_verify_long_lived_passes_real_servers(argv: list[str]) -> None:
    with start_server(argv, upstream_url=NO_UPSTREAM) as server:
        report = verify_long_lived(server.url)
    assert report.ok, report.summary()
    assert {c.name for c in report.checks} >= {
        "stream", "upload[16777216]", "upload[1]", "upload[0]", "upload_get",
        "upload_too_large", "background", "background_stats"}


async def buffering_app(scope: Message, receive: Callable[[], Awaitable[Message]],
                        send: Callable[[Message], Awaitable[None]]) -> None:
    """The raw ASGI app behind a middleware that holds every body message until the last, as a
    server that buffers responses would: served by the test below."""
    if scope["type"] != "http":
        await asgi.app(scope, receive, send)
        return
    held: list[Message] = []

    async def hold(message: Message) -> None:
        if message["type"] == "http.response.start":
            held.append(message)
            return
        held.append(message)
        if not message.get("more_body", False):
            body = b"".join(m.get("body", b"") for m in held[1:])
            await send(held[0])
            await send({"type": "http.response.body", "body": body})

    await asgi.app(scope, receive, hold)


@pytest.mark.e2e
def test_verify_says_when_a_stream_was_buffered() -> None:
    with start_server(UVICORN_BUFFERING, upstream_url=NO_UPSTREAM) as server:
        report = verify_long_lived(server.url)
    failed = {c.name: c.detail for c in report.failures}
    assert set(failed) == {"stream"}, report.summary()
    assert "events arrived all at once: the server buffered the stream" in failed["stream"]
