"""The app contract as pure functions, shared by the WSGI and the ASGI app (and by verify.py).

Both apps route a request to a :class:`Response` built here, so status, headers and body are the
same bytes whichever gateway serves them; only the waiting in ``/io`` differs (a pooled urllib3
call vs an aiohttp call, ``time.sleep`` vs ``asyncio.sleep``). The long-lived routes
(``/stream``, ``/upload``, ``/background``) route to a request object instead, whose bytes
(every event, the upload's answer, the per-process counters) are made here too; only how they
are sent, read or waited for is the gateway's. The contract is written down in apps/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from typing import Literal
from urllib.parse import parse_qsl

from apps.raw import tasklog

UPSTREAM_URL_ENV = "HARNESS_UPSTREAM_URL"

IO_MAX_MS = 60_000
CPU_MAX_N = 1_000_000
# Each unit of n is this many LCG steps: about 1 µs of CPython 3.11 per unit on the reference
# machine, so n=5000 is a few milliseconds (see apps/README.md for the measured cost).
CPU_STEPS_PER_UNIT = 12
CPU_SEED = 1
# Beyond the requested delay, how long the app waits for the upstream before answering 502: long
# enough that a loaded upstream is not mistaken for a dead one.
UPSTREAM_CONNECT_TIMEOUT_S = 5.0
UPSTREAM_EXTRA_TIMEOUT_S = 30.0
# One pooled connection per concurrent request in flight: gevent and thread pools can have
# hundreds of requests waiting at once, and a smaller pool would queue them in the client, not
# in the server under test.
UPSTREAM_POOL_MAXSIZE = 1024

STREAM_PATH = "/stream"
STREAM_MAX_EVENTS = 10_000
STREAM_MAX_INTERVAL_MS = 60_000
STREAM_ID_MAX_CHARS = 64
_STREAM_ID_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{STREAM_ID_MAX_CHARS}}}")
UPLOAD_PATH = "/upload"
UPLOAD_MAX_BYTES = 64 * 1024 * 1024  # 67,108,864: a larger Content-Length is refused (413)
# How much of an upload the WSGI app asks wsgi.input for at a time (an ASGI server chooses its
# own message size): the app holds one chunk, never the whole body.
UPLOAD_CHUNK_BYTES = 64 * 1024
BACKGROUND_PATH = "/background"
BACKGROUND_STATS_PATH = "/background/stats"
BACKGROUND_MAX_MS = 60_000

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"
# Event streams are UTF-8 by definition (WHATWG HTML, "Server-sent events"); the charset is
# spelled out like every other text type of the contract, and as Starlette writes a text/ type.
TEXT_EVENT_STREAM = "text/event-stream; charset=utf-8"
# /stream's headers, in this order, and no content-length: the server frames the body (chunked,
# or by closing the connection). no-cache: a cache must not hand one client's stream to another.
STREAM_HEADERS: tuple[tuple[str, str], ...] = (("content-type", TEXT_EVENT_STREAM),
                                                ("cache-control", "no-cache"))

HELLO_BODY = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
NOT_FOUND_BODY = b"Not Found"
METHOD_NOT_ALLOWED_BODY = b"Method Not Allowed"

IoMode = Literal["upstream", "sleep"]
IO_MODES: tuple[IoMode, ...] = ("upstream", "sleep")

# Where an ASGI app runs /cpu's work: on the event loop, on the loop's default thread pool, or
# in a process pool (apps/README.md, "CPU work offloaded").
CPU_OFFLOAD_ENV = "HARNESS_CPU_OFFLOAD"
CpuOffload = Literal["inline", "thread", "process"]
CPU_OFFLOADS: tuple[CpuOffload, ...] = ("inline", "thread", "process")

# WSGI's reason phrases: Python's own (http.HTTPStatus), which uvicorn sends for an ASGI app, so
# the status lines compare equal behind both gateways (413 is "Request Entity Too Large" in
# Python 3.11, RFC 9110's "Content Too Large" from 3.13 on).
_HTTP_REASONS = {status: HTTPStatus(status).phrase
                 for status in (200, 400, 404, 405, 411, 413, 502)}


@dataclass(frozen=True, kw_only=True)
class Response:
    """A complete answer: the same object becomes a WSGI or an ASGI response."""

    status: int
    content_type: str
    body: bytes
    allow: str | None = None

    @property
    def status_line(self) -> str:
        """WSGI's ``"200 OK"``."""
        return f"{self.status} {_HTTP_REASONS[self.status]}"

    @cached_property
    def header_pairs(self) -> list[tuple[str, str]]:
        """Headers in a fixed order with lower-case names (ASGI's rule, and fine for WSGI)."""
        pairs = [("content-type", self.content_type), ("content-length", str(len(self.body)))]
        if self.allow is not None:
            pairs.append(("allow", self.allow))
        return pairs

    @cached_property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """ASGI's form of :attr:`header_pairs`."""
        return [(name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.header_pairs]


@dataclass(frozen=True, kw_only=True)
class IoRequest:
    """A valid ``/io`` request: wait ``ms`` milliseconds on the upstream or in a sleep."""

    ms: int
    mode: IoMode


HELLO = Response(status=200, content_type=TEXT_PLAIN, body=HELLO_BODY)
JSON = Response(status=200, content_type=APPLICATION_JSON, body=JSON_BODY)
NOT_FOUND = Response(status=404, content_type=TEXT_PLAIN, body=NOT_FOUND_BODY)
METHOD_NOT_ALLOWED = Response(status=405, content_type=TEXT_PLAIN, body=METHOD_NOT_ALLOWED_BODY,
                              allow="GET")
# The one route that takes POST (and nothing else).
METHOD_NOT_ALLOWED_POST = Response(status=405, content_type=TEXT_PLAIN,
                                   body=METHOD_NOT_ALLOWED_BODY, allow="POST")
LENGTH_REQUIRED = Response(status=411, content_type=TEXT_PLAIN,
                           body=b"Length Required: send the body with a Content-Length")
UPLOAD_TOO_LARGE = Response(
    status=413, content_type=TEXT_PLAIN,
    body=f"Content Too Large: the body limit is {UPLOAD_MAX_BYTES} bytes".encode())

# The GET routes (``/upload`` is POST, and the database routes are apps/dbcontract.py's).
ROUTES = ("/hello", "/json", "/io", "/cpu", STREAM_PATH, BACKGROUND_PATH, BACKGROUND_STATS_PATH)


def bad_request(message: str) -> Response:
    return Response(status=400, content_type=TEXT_PLAIN,
                    body=f"Bad Request: {message}".encode())


def query_param(query_string: str, name: str) -> str | None:
    """The first value of ``name`` in a query string, or None when absent."""
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == name:
            return value
    return None


def _bounded_int(text: str | None, low: int, high: int) -> int | None:
    # Plain ASCII digits only: int() would also take "+5", " 5", "5_0" and non-ASCII digits.
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_io(query_string: str) -> IoRequest | Response:
    """``ms`` (required, 0..60000) and ``mode`` (``upstream``, the default, or ``sleep``)."""
    ms = _bounded_int(query_param(query_string, "ms"), 0, IO_MAX_MS)
    if ms is None:
        return bad_request(f"ms must be an integer 0..{IO_MAX_MS}")
    mode = query_param(query_string, "mode")
    if mode is None or mode == "upstream":
        return IoRequest(ms=ms, mode="upstream")
    if mode == "sleep":
        return IoRequest(ms=ms, mode="sleep")
    return bad_request("mode must be 'upstream' or 'sleep'")


def io_ok(io: IoRequest) -> Response:
    return Response(status=200, content_type=APPLICATION_JSON, body=io_body(io.ms, io.mode))


def io_body(ms: int, mode: IoMode) -> bytes:
    return json.dumps({"ms": ms, "mode": mode}, separators=(",", ":")).encode()


def upstream_base_url() -> str | None:
    """The delay service's base URL from the environment, without a trailing slash."""
    url = os.environ.get(UPSTREAM_URL_ENV, "").strip().rstrip("/")
    return url or None


def upstream_delay_url(base_url: str, ms: int) -> str:
    return f"{base_url}/delay?ms={ms}"


def upstream_timeout_s(ms: int) -> float:
    return ms / 1000 + UPSTREAM_EXTRA_TIMEOUT_S


def upstream_not_configured() -> Response:
    return Response(status=502, content_type=TEXT_PLAIN,
                    body=f"Bad Gateway: no upstream configured (set {UPSTREAM_URL_ENV})".encode())


def upstream_unreachable(base_url: str) -> Response:
    return Response(status=502, content_type=TEXT_PLAIN,
                    body=f"Bad Gateway: upstream {base_url} did not answer".encode())


def upstream_bad_status(base_url: str, status: int) -> Response:
    return Response(status=502, content_type=TEXT_PLAIN,
                    body=f"Bad Gateway: upstream {base_url} answered {status}".encode())


BAD_OFFLOAD = bad_request("offload must be " + ", ".join(f"'{o}'" for o in CPU_OFFLOADS[:-1])
                          + f" or '{CPU_OFFLOADS[-1]}'")


def cpu_work(n: int) -> int:
    """Deterministic pure-Python work, linear in ``n``: the checkable result of ``/cpu?n=N``.

    ``n * CPU_STEPS_PER_UNIT`` steps of the ANSI C LCG (x = 1103515245 x + 12345 mod 2^31),
    summing the state after each unit, mod 2^32. Integers stay small so the cost per step does
    not grow with n.
    """
    x = CPU_SEED
    acc = 0
    for _ in range(n):
        for _ in range(CPU_STEPS_PER_UNIT):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        acc = (acc + x) & 0xFFFFFFFF
    return acc


def parse_cpu(query_string: str) -> int | Response:
    """``n`` (required, 0..1000000)."""
    n = _bounded_int(query_param(query_string, "n"), 0, CPU_MAX_N)
    if n is None:
        return bad_request(f"n must be an integer 0..{CPU_MAX_N}")
    return n


def cpu_body(n: int, result: int) -> bytes:
    return json.dumps({"n": n, "result": result}, separators=(",", ":")).encode()


def cpu_result(n: int, result: int) -> Response:
    """``/cpu``'s 200: the same bytes wherever the work ran."""
    return Response(status=200, content_type=APPLICATION_JSON, body=cpu_body(n, result))


@dataclass(frozen=True, kw_only=True)
class CpuRequest:
    """A valid ``/cpu`` request: ``n`` units of work, run where ``offload`` says (on the event
    loop, its default thread pool, or a process pool: an ASGI app's choice; a WSGI app runs it
    inline whatever it says, having no loop to keep free)."""

    n: int
    offload: CpuOffload


def default_cpu_offload() -> CpuOffload:
    """``HARNESS_CPU_OFFLOAD``: inline (unset or empty), thread or process, the offload of a
    ``/cpu`` request that names none; anything else is refused (a typo would otherwise measure
    inline under another family's name)."""
    name = os.environ.get(CPU_OFFLOAD_ENV, "").strip() or "inline"
    for offload in CPU_OFFLOADS:
        if name == offload:
            return offload
    raise ValueError(f"{CPU_OFFLOAD_ENV}={name!r}: expected one of {CPU_OFFLOADS}")


def parse_cpu_request(query_string: str) -> CpuRequest | Response:
    """``n`` (required, 0..1000000), then ``offload`` (``inline``, ``thread`` or ``process``;
    absent: ``HARNESS_CPU_OFFLOAD``, else inline)."""
    n = parse_cpu(query_string)
    if isinstance(n, Response):
        return n
    text = query_param(query_string, "offload")
    if text is None:
        return CpuRequest(n=n, offload=default_cpu_offload())
    for offload in CPU_OFFLOADS:
        if text == offload:
            return CpuRequest(n=n, offload=offload)
    return BAD_OFFLOAD


def cpu_response(query_string: str) -> Response:
    """The whole ``/cpu`` answer, the work run inline whatever ``offload`` says (which is still
    checked): what a sync (WSGI) app does."""
    cpu = parse_cpu_request(query_string)
    if isinstance(cpu, Response):
        return cpu
    return cpu_result(cpu.n, cpu_work(cpu.n))


@dataclass(frozen=True, kw_only=True)
class StreamRequest:
    """A valid ``/stream`` request: ``events`` events, ``interval_ms`` apart; ``stream_id``
    names it in the task log (apps/raw/tasklog.py) and changes no byte of the answer."""

    events: int
    interval_ms: int
    stream_id: str | None = None

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000

    def event(self, i: int) -> bytes:
        return stream_event(i, self.events, self.interval_ms)


def stream_event(i: int, events: int, interval_ms: int) -> bytes:
    """Event ``i`` (0-based) of a stream of ``events`` events ``interval_ms`` apart.

    Deterministic (no clock): the client timestamps arrivals itself. ``of`` tells it how many
    to expect (a cut stream is one whose last ``i`` is below ``of - 1``); ``at_ms`` is the
    earliest the event can follow event 0 (the app waits ``interval_ms`` after each event).
    """
    data = json.dumps({"i": i, "of": events, "at_ms": i * interval_ms}, separators=(",", ":"))
    return f"id: {i}\ndata: {data}\n\n".encode()


def stream_body(events: int, interval_ms: int) -> bytes:
    """The whole body of ``/stream?events=N&interval_ms=M``: every event, in order."""
    return b"".join(stream_event(i, events, interval_ms) for i in range(events))


def parse_stream(query_string: str) -> StreamRequest | Response:
    """``events`` (required, 1..10000), ``interval_ms`` (required, 0..60000) and ``id``
    (optional: 1..64 ASCII letters, digits, ``-`` or ``_``)."""
    events = _bounded_int(query_param(query_string, "events"), 1, STREAM_MAX_EVENTS)
    if events is None:
        return bad_request(f"events must be an integer 1..{STREAM_MAX_EVENTS}")
    interval_ms = _bounded_int(query_param(query_string, "interval_ms"), 0,
                               STREAM_MAX_INTERVAL_MS)
    if interval_ms is None:
        return bad_request(f"interval_ms must be an integer 0..{STREAM_MAX_INTERVAL_MS}")
    stream_id = query_param(query_string, "id")
    if stream_id is not None and not _STREAM_ID_RE.fullmatch(stream_id):
        return bad_request(f"id must be 1..{STREAM_ID_MAX_CHARS} letters, digits, '-' or '_'")
    return StreamRequest(events=events, interval_ms=interval_ms, stream_id=stream_id)


@dataclass(frozen=True)
class UploadRequest:
    """``POST /upload``: the app checks the length (:func:`upload_length`), then reads."""


UPLOAD = UploadRequest()


def upload_length(content_length: str | None, transfer_encoding: str | None) -> int | Response:
    """The number of body bytes to read, or the Response that refuses the upload.

    A Transfer-Encoding (a chunked body, of unknown length) is refused with 411: the limit must
    be known before reading, and not every WSGI server hands a chunked body to the app. Neither
    header: no body (RFC 9112, 6.3), length 0. A Content-Length above ``UPLOAD_MAX_BYTES`` is
    refused with 413 before a byte of the body is read. A server normally rejects a malformed
    Content-Length itself; one that reaches the app is a 400.
    """
    if transfer_encoding and transfer_encoding.strip():
        return LENGTH_REQUIRED
    text = (content_length or "").strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit():
        return bad_request("Content-Length must be an integer")
    # Any number of more digits than the limit's is too large (and int() of thousands of
    # digits would raise).
    if len(text.lstrip("0")) > len(str(UPLOAD_MAX_BYTES)) or int(text) > UPLOAD_MAX_BYTES:
        return UPLOAD_TOO_LARGE
    return int(text)


def upload_body(length: int, sha256_hex: str) -> bytes:
    return json.dumps({"bytes": length, "sha256": sha256_hex}, separators=(",", ":")).encode()


def upload_response(length: int, sha256_hex: str) -> Response:
    return Response(status=200, content_type=APPLICATION_JSON,
                    body=upload_body(length, sha256_hex))


def read_upload(read: Callable[[int], bytes], length: int,
                gone: tuple[type[BaseException], ...] = (OSError,)) -> Response:
    """A sync app's upload answer: ``length`` bytes read through ``read`` a chunk at a time and
    hashed as they come (never held whole); a body cut short (``read`` gave nothing, or raised
    one of ``gone``: the client went away mid-body) is the contract's 400."""
    digest = hashlib.sha256()
    got = 0
    try:
        while got < length:
            chunk = read(min(UPLOAD_CHUNK_BYTES, length - got))
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
    except gone:
        pass
    if got < length:
        return upload_truncated(got, length)
    return upload_response(got, digest.hexdigest())


def upload_truncated(got: int, expected: int) -> Response:
    """The body ended early (the client went away): what the app answers, if anyone listens."""
    return bad_request(f"the body ended after {got} of {expected} bytes")


@dataclass(frozen=True, kw_only=True)
class BackgroundRequest:
    """A valid ``/background`` request: answer at once, then ``ms`` of waiting work."""

    ms: int

    @property
    def response(self) -> Response:
        return Response(status=200, content_type=APPLICATION_JSON, body=background_body(self.ms))


def background_body(ms: int) -> bytes:
    return json.dumps({"ms": ms, "queued": True}, separators=(",", ":")).encode()


def parse_background(query_string: str) -> BackgroundRequest | Response:
    """``ms`` (required, 0..60000)."""
    ms = _bounded_int(query_param(query_string, "ms"), 0, BACKGROUND_MAX_MS)
    if ms is None:
        return bad_request(f"ms must be an integer 0..{BACKGROUND_MAX_MS}")
    return BackgroundRequest(ms=ms)


@dataclass(frozen=True)
class StatsRequest:
    """``GET /background/stats``: this worker process's counters."""


BACKGROUND_STATS = StatsRequest()


def background_stats_body(pid: int, started: int, finished: int) -> bytes:
    return json.dumps({"pid": pid, "started": started, "finished": finished},
                      separators=(",", ":")).encode()


class BackgroundCounters:
    """Background tasks started and finished in this process (one per app module: a process
    serves one gateway). A task is started when its work begins, after the response, and
    finished when the work ends; ``started - finished`` are running. Thread-safe: a threaded
    WSGI server runs several ``close()`` at once. Each event also goes to the task log, when
    there is one (apps/raw/tasklog.py: every process, counted after they exit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.finished = 0

    def start(self) -> None:
        with self._lock:
            self.started += 1
        tasklog.TASK_LOG.task_started()

    def finish(self) -> None:
        with self._lock:
            self.finished += 1
        tasklog.TASK_LOG.task_finished()

    def response(self) -> Response:
        with self._lock:
            started, finished = self.started, self.finished
        return Response(status=200, content_type=APPLICATION_JSON,
                        body=background_stats_body(os.getpid(), started, finished))


Routed = (Response | IoRequest | CpuRequest | StreamRequest | UploadRequest | BackgroundRequest
          | StatsRequest)


def route(method: str, path: str, query_string: str) -> Routed:
    """Everything but the waiting, streaming and reading: a finished Response, or the request
    object the app must wait for (IoRequest), compute (CpuRequest), stream (StreamRequest),
    read (UploadRequest), or answer and then work for (BackgroundRequest), or the stats it must
    report."""
    if path == UPLOAD_PATH:
        return UPLOAD if method == "POST" else METHOD_NOT_ALLOWED_POST
    if path not in ROUTES:
        return NOT_FOUND
    if method != "GET":
        return METHOD_NOT_ALLOWED
    if path == "/hello":
        return HELLO
    if path == "/json":
        return JSON
    if path == "/cpu":
        return parse_cpu_request(query_string)
    if path == STREAM_PATH:
        return parse_stream(query_string)
    if path == BACKGROUND_PATH:
        return parse_background(query_string)
    if path == BACKGROUND_STATS_PATH:
        return BACKGROUND_STATS
    return parse_io(query_string)


def sync_stream(stream: StreamRequest) -> Iterator[bytes]:
    """A sync app's ``/stream`` (raw WSGI, Flask, Pyramid, Django's sync views): each event as
    it is made; the server writes it before asking for the next, so the wait
    runs between two writes. A write that fails (the client left) ends the response, and the
    server closes this generator at its ``yield``: no more events are made. The end, and the
    events handed over by then, go to the task log (apps/raw/tasklog.py)."""
    sent = 0
    how = tasklog.STREAM_GONE
    try:
        for i in range(stream.events):
            if i:
                time.sleep(stream.interval_s)
            sent += 1  # counted when handed over: the server may fail to write it
            yield stream.event(i)
        how = tasklog.STREAM_DONE
    except GeneratorExit:
        raise
    except BaseException:
        how = tasklog.STREAM_ERROR
        raise
    finally:
        tasklog.TASK_LOG.stream_ended(stream.stream_id, sent, stream.events, how)
