"""The harness's one blocking HTTP client call, and its one rule for a target being ready.

Every request the harness itself makes to a target (a readiness poll, a contract check, an own
app's check, the request whose body the load must match) goes through :func:`fetch`: stdlib
``http.client``, one connection per request, always bounded by a timeout::

    answer = fetch("http://127.0.0.1:8000/hello")  # OSError or HTTPException: no answer
    if is_ready(answer.status): ...
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# One request when the caller names no other bound: long enough for a busy machine's first
# answer, short enough that a stuck target fails instead of hanging the run.
GET_TIMEOUT_S = 10.0
# One readiness poll: polls repeat until the start deadline, so each one gives up quickly.
READY_PROBE_TIMEOUT_S = 2.0
# What "no answer" raises: a refused or reset connection, a timeout, a malformed response.
NO_ANSWER = (OSError, http.client.HTTPException)
# How a readiness wait names the rule in its error ("did not answer GET /hello with ...").
READY_STATUS_TEXT = "a 2xx status"


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One response, read to its end; ``elapsed_ms`` spans the request to the last body byte."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    elapsed_ms: float


def fetch(url: str, *, timeout_s: float = GET_TIMEOUT_S, headers: Sequence[tuple[str, str]] = (),
          method: str = "GET", body: bytes = b"") -> Answer:
    """GET ``url`` (another ``method`` only where a scenario's own request is replayed) and
    read the whole answer; raises one of :data:`NO_ANSWER` when none comes within
    ``timeout_s``."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=timeout_s)
    try:
        start = time.perf_counter()
        connection.request(method, target, body=body or None, headers=dict(headers))
        response = connection.getresponse()
        data = response.read()
        elapsed_ms = (time.perf_counter() - start) * 1000
        return Answer(status=response.status, headers=response.msg, body=data,
                      elapsed_ms=elapsed_ms)
    finally:
        connection.close()


def status_of(url: str, timeout_s: float = READY_PROBE_TIMEOUT_S) -> int | None:
    """The status of one GET of ``url``, or None when nothing answers."""
    try:
        return fetch(url, timeout_s=timeout_s).status
    except NO_ANSWER:
        return None


def is_ready(status: int | None) -> bool:
    """Any 2xx is ready, because a server that routes the path to the app and gets a success
    back is serving, and apps (an own app's path, a framework's) differ in which 2xx they send."""
    return status is not None and 200 <= status < 300


def answers_ready(url: str, timeout_s: float = READY_PROBE_TIMEOUT_S) -> bool:
    """Whether one GET of ``url`` gets a ready answer now (see :func:`is_ready`)."""
    return is_ready(status_of(url, timeout_s))
