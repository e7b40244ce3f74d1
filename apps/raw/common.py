"""The app contract as pure functions, shared by the WSGI and the ASGI app (and by verify.py).

Both apps route a request to a :class:`Response` built here, so status, headers and body are the
same bytes whichever gateway serves them; only the waiting in ``/io`` differs (a pooled urllib3
call vs an aiohttp call, ``time.sleep`` vs ``asyncio.sleep``). The contract is written down in
apps/README.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Literal
from urllib.parse import parse_qsl

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

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"

HELLO_BODY = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
NOT_FOUND_BODY = b"Not Found"
METHOD_NOT_ALLOWED_BODY = b"Method Not Allowed"

IoMode = Literal["upstream", "sleep"]
IO_MODES: tuple[IoMode, ...] = ("upstream", "sleep")

_HTTP_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    502: "Bad Gateway",
}


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

ROUTES = ("/hello", "/json", "/io", "/cpu")


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


def cpu_response(query_string: str) -> Response:
    n = parse_cpu(query_string)
    if isinstance(n, Response):
        return n
    return Response(status=200, content_type=APPLICATION_JSON, body=cpu_body(n, cpu_work(n)))


def route(method: str, path: str, query_string: str) -> Response | IoRequest:
    """Everything but the waiting: a finished Response, or the IoRequest the app must wait for."""
    if path not in ROUTES:
        return NOT_FOUND
    if method != "GET":
        return METHOD_NOT_ALLOWED
    if path == "/hello":
        return HELLO
    if path == "/json":
        return JSON
    if path == "/cpu":
        return cpu_response(query_string)
    return parse_io(query_string)
