"""What to load and how: the validated LoadSpec, the parsed target and the pre-encoded request."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from harness.cpus import check_usable
from harness.errors import UsageError

DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_TIMEOUT_S = 5.0
MAX_PROCS = 256

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


WebSocketMode = Literal["echo", "broadcast", "idle"]
WEBSOCKET_MODES: tuple[str, ...] = get_args(WebSocketMode)
# A broadcast message carries a sequence number and its intended send time (8 bytes each).
BROADCAST_HEADER_BYTES = 16
# WebSocket messages: at least a byte, at most what servers accept by default (uvicorn 16 MiB).
MAX_MESSAGE_SIZE_BYTES = 16 * 1024 * 1024
DEFAULT_MESSAGE_SIZE_BYTES = 64
# A request mix: at most this many kinds (each has its own histograms, in every process).
MAX_MIX_KINDS = 16


@dataclass(frozen=True, kw_only=True)
class RequestKind:
    """One kind of request in a mix: ``name`` (as the results call it), ``path`` with its
    query, and ``weight`` (relative: 95 and 5 send 19 of one for each of the other).
    ``expect_body``: what every answer must be (all kinds of a mix have one, or none)."""

    name: str
    path: str
    weight: float
    method: str = "GET"
    body: bytes = b""
    expect_body: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class EncodedKind:
    """A request kind as a generator process sends it: its bytes, encoded once."""

    name: str
    request: bytes
    expect_body: bytes | None
    weight: float


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """An ``http://`` or ``ws://host:port/path`` URL split into what the client needs."""

    host: str
    port: int
    path: str  # path plus query, as sent on the request line
    websocket: bool = False

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Accept ``http://`` or ``ws://HOST[:PORT][/PATH][?QUERY]``; else a UsageError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"URL {url!r} is malformed ({exc}); "
                         "expected http://HOST:PORT/PATH or ws://HOST:PORT/PATH") from None
    if parts.scheme in ("https", "wss"):
        raise UsageError(f"URL {url!r}: TLS ({parts.scheme}) is not supported; expected an "
                         "http:// or ws:// URL")
    if parts.scheme not in ("http", "ws") or not parts.hostname:
        raise UsageError(f"URL {url!r} is not an http or ws URL; expected "
                         "http://HOST:PORT/PATH or ws://HOST:PORT/PATH")
    if any(c in url for c in " \r\n\t"):
        raise UsageError(f"URL {url!r} contains whitespace; expected http://HOST:PORT/PATH")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Endpoint(host=parts.hostname, port=port if port is not None else 80, path=path,
                  websocket=parts.scheme == "ws")


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """One load: closed loop (``concurrency``) or open loop (``rate``), never both.

    >>> spec = LoadSpec(url="http://127.0.0.1:8000/hello", concurrency=64, duration_s=10.0)

    Construction validates and raises :class:`harness.errors.UsageError` naming the field.
    """

    url: str
    concurrency: int | None = None
    rate: float | None = None
    duration_s: float = 10.0
    warmup_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    procs: int = 1
    cpus: tuple[int, ...] | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    expect_body: bytes | None = None
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS
    # WebSocket (a ws:// URL): each message round trip is one "request"
    message_size: int = DEFAULT_MESSAGE_SIZE_BYTES
    text: bool = False
    # echo (closed or open loop), broadcast (``concurrency`` subscribers, one publisher at
    # ``rate``) or idle (``concurrency`` connections held, no message)
    websocket_mode: WebSocketMode = "echo"
    # several kinds of request, each picked in proportion to its weight (the URL then gives
    # only the host and port); each kind gets its own histograms, errors and series
    mix: tuple[RequestKind, ...] = ()
    # the request has no side effects whatever its method (the contract's POST /upload): one
    # that a reused connection lost before any byte of its answer is sent again, as an
    # idempotent one is (harness.loadgen.pool.Pool.lost)
    resend: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def websocket(self) -> bool:
        return self.target.websocket

    @property
    def load_model(self) -> str:
        """The name of the load model in harness.loadgen.models.LOAD_MODELS."""
        if self.websocket and self.websocket_mode != "echo":
            return f"ws-{self.websocket_mode}"
        model = "closed" if self.rate is None else "open"
        if self.mix:
            return f"{model}-mix"
        return f"ws-{model}" if self.websocket else model

    @property
    def connection_cap(self) -> int:
        return self.max_connections if self.max_connections is not None else DEFAULT_MAX_CONNECTIONS

    @property
    def target(self) -> Endpoint:
        return parse_url(self.url)

    def validate(self) -> None:
        target = parse_url(self.url)
        if target.websocket and not (isinstance(self.message_size, int)
                                     and 1 <= self.message_size <= MAX_MESSAGE_SIZE_BYTES):
            raise UsageError(f"--message-size must be between 1 and {MAX_MESSAGE_SIZE_BYTES} "
                             f"bytes, got {self.message_size!r}")
        if self.websocket_mode not in WEBSOCKET_MODES:
            raise UsageError(f"WebSocket mode {self.websocket_mode!r}: expected one of "
                             f"{', '.join(WEBSOCKET_MODES)}")
        if self.websocket_mode != "echo":
            _check_fanout(self, target.websocket)
        elif (self.concurrency is None) == (self.rate is None):
            raise UsageError("give exactly one of --concurrency (closed loop) "
                             "or --rate (open loop)")
        if self.concurrency is not None and (
                isinstance(self.concurrency, bool) or self.concurrency < 1):
            raise UsageError(f"--concurrency must be an integer >= 1, got {self.concurrency!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise UsageError(f"--rate must be a number of requests per second > 0, "
                             f"got {self.rate!r}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise UsageError(f"--duration must be > 0, got {self.duration_s!r}")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise UsageError(f"--warmup must be >= 0, got {self.warmup_s!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise UsageError(f"--timeout must be > 0, got {self.timeout_s!r}")
        if not 1 <= self.procs <= MAX_PROCS:
            raise UsageError(f"--procs must be between 1 and {MAX_PROCS}, got {self.procs!r}")
        if self.concurrency is not None and self.procs > self.concurrency:
            raise UsageError(f"--procs ({self.procs}) must not exceed --concurrency "
                             f"({self.concurrency}): every process needs a connection")
        if self.max_connections is not None and self.max_connections < 1:
            raise UsageError(f"--max-connections must be >= 1, got {self.max_connections!r}")
        if self.rate is not None and self.max_connections is not None \
                and self.max_connections < self.procs:
            raise UsageError(f"--max-connections ({self.max_connections}) must be at least "
                             f"--procs ({self.procs})")
        if self.cpus is not None:
            check_usable(self.cpus)
        if not _TOKEN_RE.match(self.method):
            raise UsageError(f"--method {self.method!r} is not an HTTP method token like GET")
        for name, value in self.headers:
            if not _TOKEN_RE.match(name) or any(c in value for c in "\r\n"):
                raise UsageError(f"--header {name!r}: expected 'Name: value' without line breaks")
        if self.mix:
            _check_mix(self.mix, target.websocket)


def _check_mix(mix: tuple[RequestKind, ...], websocket: bool) -> None:
    if websocket:
        raise UsageError("a request mix is HTTP only; expected an http:// URL")
    if len(mix) > MAX_MIX_KINDS:
        raise UsageError(f"a request mix has {len(mix)} kinds; expected at most {MAX_MIX_KINDS}")
    names = [kind.name for kind in mix]
    if len(set(names)) != len(names):
        raise UsageError(f"request mix: kind names {names} repeat; expected each once")
    for kind in mix:
        if not kind.name or any(c in kind.name for c in "\r\n,"):
            raise UsageError(f"request mix: kind name {kind.name!r}: expected a non-empty "
                             "name without commas or line breaks")
        if not kind.path.startswith("/") or any(c in kind.path for c in " \r\n\t"):
            raise UsageError(f"request mix: kind {kind.name!r} has path {kind.path!r}; "
                             "expected a path starting with '/' and no whitespace")
        if not (math.isfinite(kind.weight) and kind.weight > 0):
            raise UsageError(f"request mix: kind {kind.name!r} has weight {kind.weight!r}; "
                             "expected a number > 0")
        if not _TOKEN_RE.match(kind.method):
            raise UsageError(f"request mix: kind {kind.name!r} has method {kind.method!r}; "
                             "expected an HTTP method token like GET")
    if len({kind.expect_body is None for kind in mix}) > 1:
        raise UsageError("request mix: every kind has an expected body or none does")


def _check_fanout(spec: LoadSpec, websocket: bool) -> None:
    mode = spec.websocket_mode
    if not websocket:
        raise UsageError(f"WebSocket {mode}: expected a ws:// URL, got {spec.url!r}")
    if spec.concurrency is None or spec.concurrency < 1:
        what = "subscribers" if mode == "broadcast" else "connections to hold"
        raise UsageError(f"WebSocket {mode}: --concurrency (the {what}) must be >= 1")
    if mode == "broadcast":
        if spec.rate is None:
            raise UsageError("WebSocket broadcast: --rate (the publisher's messages/s) is "
                             "required")
        if spec.message_size < BROADCAST_HEADER_BYTES:
            raise UsageError(f"WebSocket broadcast: --message-size must be at least "
                             f"{BROADCAST_HEADER_BYTES} bytes (a sequence number and a send "
                             "time)")
    elif spec.rate is not None:
        raise UsageError("WebSocket idle connections send nothing: drop --rate")
    if spec.procs != 1:
        raise UsageError(f"WebSocket {mode}: expected --procs 1 (one publisher, one view of "
                         "the subscribers)")


def websocket_message(size: int, *, text: bool) -> bytes:
    """A message of ``size`` bytes: printable ASCII (valid UTF-8 for text frames)."""
    pattern = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if text \
        else bytes(range(256))
    return (pattern * (size // len(pattern) + 1))[:size]


def encode_request(spec: LoadSpec) -> bytes:
    """HTTP: the request's bytes, built once and written as-is for every request. WebSocket:
    the message's payload (each frame is masked with a fresh key as it goes out)."""
    target = spec.target
    if target.websocket:
        return websocket_message(spec.message_size, text=spec.text)
    return _http_request(spec.method, target.path, target.host_header, spec.headers, spec.body)


def encode_mix(spec: LoadSpec) -> tuple[EncodedKind, ...]:
    """Each kind of a mix's request, encoded once (with the spec's headers)."""
    host = spec.target.host_header
    return tuple(EncodedKind(name=kind.name, weight=kind.weight, expect_body=kind.expect_body,
                             request=_http_request(kind.method, kind.path, host, spec.headers,
                                                   kind.body))
                 for kind in spec.mix)


def _http_request(method: str, path: str, host_header: str,
                  headers: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host_header}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``; anything else is a UsageError."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not _TOKEN_RE.match(name):
        raise UsageError(f"--header {text!r}: expected 'Name: value'")
    return name, value.strip()
