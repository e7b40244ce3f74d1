"""What to load and how: the validated LoadSpec, the parsed target and the pre-encoded request."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import UsageError

DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_TIMEOUT_S = 5.0
MAX_PROCS = 256

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True, kw_only=True)
class Target:
    """An ``http://host:port/path`` URL split into what the client needs."""

    host: str
    port: int
    path: str  # path plus query, as sent on the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Accept ``http://HOST[:PORT][/PATH][?QUERY]`` only; everything else is a UsageError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"URL {url!r} is malformed ({exc}); "
                         "expected http://HOST:PORT/PATH") from None
    if parts.scheme == "https":
        raise UsageError(f"URL {url!r}: https is not supported; expected an http:// URL")
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"URL {url!r} is not an http URL; expected http://HOST:PORT/PATH")
    if any(c in url for c in " \r\n\t"):
        raise UsageError(f"URL {url!r} contains whitespace; expected http://HOST:PORT/PATH")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(host=parts.hostname, port=port if port is not None else 80, path=path)


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

    def __post_init__(self) -> None:
        self.validate()

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def connection_cap(self) -> int:
        return self.max_connections if self.max_connections is not None else DEFAULT_MAX_CONNECTIONS

    @property
    def target(self) -> Target:
        return parse_url(self.url)

    def validate(self) -> None:
        parse_url(self.url)
        if (self.concurrency is None) == (self.rate is None):
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
            if not self.cpus:
                raise UsageError("--cpus is empty; expected a CPU list like '0' or '0-1'")
            available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
            missing = sorted(set(self.cpus) - available) if available else []
            if missing:
                raise UsageError(f"--cpus names CPU {missing[0]}, which this process cannot use; "
                                 f"expected some of {sorted(available)}")
        if not _TOKEN_RE.match(self.method):
            raise UsageError(f"--method {self.method!r} is not an HTTP method token like GET")
        for name, value in self.headers:
            if not _TOKEN_RE.match(name) or any(c in value for c in "\r\n"):
                raise UsageError(f"--header {name!r}: expected 'Name: value' without line breaks")


def encode_request(spec: LoadSpec) -> bytes:
    """The request's bytes, built once and written as-is for every request."""
    target = spec.target
    names = {name.lower() for name, _ in spec.headers}
    lines = [f"{spec.method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    lines.extend(f"{name}: {value}" for name, value in spec.headers)
    if (spec.body or spec.method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(spec.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``; anything else is a UsageError."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not _TOKEN_RE.match(name):
        raise UsageError(f"--header {text!r}: expected 'Name: value'")
    return name, value.strip()
