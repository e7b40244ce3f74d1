"""One GET (or POST) to a live target, bounded by a timeout, and the comparisons every check makes
of an answer: status, Content-Type, framing, body, how long it waited."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from harness.checks import Check
from harness.errors import UsageError
from harness.httpget import NO_ANSWER, Answer, fetch

IO_CHECK_MS = 100
# Timers may fire a hair early; a target that does not wait at all is off by ~100 ms.
IO_EARLY_TOLERANCE_MS = 1.0
# The machine is shared and the first upstream call opens a connection: generous, yet a server
# that queues a request behind another's full wait is still caught.
IO_LATE_TOLERANCE_MS = 1000.0
CPU_CHECK_NS = (0, 1000, 5000)
# /cpu's n for each offload (inline, thread, process): a few ms of work, so the offload is real.
CPU_OFFLOAD_CHECK_N = 5000
NOT_FOUND_PATH = "/no-such-path"
_MAX_BODY_SHOWN = 80


def shorten(body: bytes) -> str:
    text = repr(body[:_MAX_BODY_SHOWN])
    return text + ("..." if len(body) > _MAX_BODY_SHOWN else "")


class LiveTarget:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"verify: expected a base URL like 'http://127.0.0.1:8000', "
                             f"got {base_url!r}")
        self.origin = f"http://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        # Set by the first request that gets no answer ("GET /hello"): the rest fail at once
        # instead of each waiting out its own timeout on a stuck target.
        self.silent_since: str | None = None

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: bytes = b"") -> Answer:
        return fetch(self.origin + self.prefix + path, timeout_s=self.timeout_s,
                     headers=[("Accept", "*/*")], method=method, body=body)

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{self.prefix}{path}"


def framing_problems(answer: Answer) -> list[str]:
    problems = []
    length = answer.headers.get("Content-Length")
    chunked = "chunked" in answer.headers.get("Transfer-Encoding", "").lower()
    if length is not None:
        if length.strip() != str(len(answer.body)):
            problems.append(f"Content-Length {length!r} but {len(answer.body)} body bytes")
    elif not chunked:
        problems.append("neither Content-Length nor Transfer-Encoding: chunked")
    return problems


def not_tried(target: LiveTarget, name: str, request: str) -> Check | None:
    """The failed check of a request not sent because the target already went silent."""
    if target.silent_since is None:
        return None
    return Check(name=name, ok=False,
                 detail=f"{request}: not tried, {target.silent_since} got no answer")


def no_answer(target: LiveTarget, name: str, request: str, exc: BaseException) -> Check:
    target.silent_since = request
    reason = "timed out" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
    return Check(name=name, ok=False,
                 detail=f"{request}: no answer within {target.timeout_s:g} s ({reason})")


def fetch_or_check(target: LiveTarget, name: str, path: str, *, method: str = "GET",
           body: bytes = b"") -> Answer | Check:
    """The answer to ``method path``, or the failed check saying why there is none. After one
    request gets no answer the target is taken as silent: later checks fail at once instead of
    each waiting out the timeout."""
    skipped = not_tried(target, name, f"{method} {path}")
    if skipped is not None:
        return skipped
    try:
        return target.request(method, path, body)
    except NO_ANSWER as exc:
        return no_answer(target, name, f"{method} {path}", exc)


def check_date(target: LiveTarget) -> Check:
    """A warning, not a failure: daphne sends no Date and would otherwise never be measured."""
    name, path = "date_header", "/hello"
    answer = fetch_or_check(target, name, path)
    if isinstance(answer, Check):
        return answer
    date = answer.headers.get("Date")
    if date is None:
        return Check(name=name, ok=True, warning=True,
                     detail=f"GET {path}: no Date header (RFC 9110 asks origin servers for one)")
    return Check(name=name, ok=True, detail=f"GET {path}: Date {date!r}")


def head_problems(answer: Answer, *, status: int, content_type: str) -> list[str]:
    """What differs from the expected status, Content-Type and body framing."""
    problems = []
    if answer.status != status:
        problems.append(f"expected status {status}, got {answer.status}")
    got_type = answer.headers.get("Content-Type")
    if got_type != content_type:
        problems.append(f"expected Content-Type {content_type!r}, got {got_type!r}")
    problems.extend(framing_problems(answer))
    return problems


def answer_problems(answer: Answer, *, status: int, content_type: str, body: bytes,
                     extra: Callable[[Answer], list[str]] | None = None) -> list[str]:
    """What differs from the expected status, Content-Type, framing and exact body."""
    problems = head_problems(answer, status=status, content_type=content_type)
    if answer.body != body:
        problems.append(f"expected body {shorten(body)}, got {shorten(answer.body)}")
    if extra is not None:
        problems.extend(extra(answer))
    return problems


def expect(target: LiveTarget, name: str, path: str, *, status: int, content_type: str,
            body: bytes, extra: Callable[[Answer], list[str]] | None = None,
            method: str = "GET", data: bytes = b"") -> Check:
    """``method path`` (GET, or ``data`` POSTed) and compare status, Content-Type, framing and
    the exact body."""
    answer = fetch_or_check(target, name, path, method=method, body=data)
    if isinstance(answer, Check):
        return answer
    problems = answer_problems(answer, status=status, content_type=content_type, body=body,
                                extra=extra)
    if problems:
        return Check(name=name, ok=False, detail=f"{method} {path}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"{method} {path}: {answer.status}, {len(answer.body)} bytes in "
                        f"{answer.elapsed_ms:.0f} ms")


def waited(ms: int) -> Callable[[Answer], list[str]]:
    def check(answer: Answer) -> list[str]:
        if answer.elapsed_ms < ms - IO_EARLY_TOLERANCE_MS:
            return [f"expected to wait at least {ms} ms, answered in {answer.elapsed_ms:.1f} ms"]
        if answer.elapsed_ms > ms + IO_LATE_TOLERANCE_MS:
            return [f"expected to wait about {ms} ms, took {answer.elapsed_ms:.0f} ms"]
        return []
    return check
