"""The long-lived routes (the raw apps serve all three, a framework family those its framework
has): a stream's events spread in time (not buffered), an upload's SHA-256 and the 413,
background work that runs after the response."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apps.raw import common
from harness.catalogue import LONG_LIVED, LongLived
from harness.checks import DEFAULT_TIMEOUT_S, Check, VerifyReport
from harness.httpget import NO_ANSWER, Answer
from harness.verify.probe import (
    IO_LATE_TOLERANCE_MS,
    LiveTarget,
    answer_problems,
    expect,
    fetch_or_check,
    head_problems,
    no_answer,
    not_tried,
    shorten,
)

STREAM_CHECK_EVENTS = 3
STREAM_CHECK_INTERVAL_MS = 100
# Events made (N - 1) x M ms apart that arrive less than half that apart were held back and sent
# together: the server (or something in between) buffered the stream. Half, because the first
# event of a request may itself be late on a busy machine, which shortens the measured spread.
STREAM_MIN_SPREAD_FRACTION = 0.5
UPLOAD_CHECK_SIZES = (16 * 1024 * 1024, 1, 0)
UPLOAD_CHECK_SEED = 29  # the bodies are pseudo-random, and the same on every run
# The oversized upload is sent in pieces until the answer starts (a server that answers 413
# without reading must not be made to swallow 64 MiB first; one that reads it all, daphne, gets it).
UPLOAD_SEND_PIECE = 256 * 1024
BACKGROUND_CHECK_MS = 100
BACKGROUND_CHECK_REQUESTS = 3
# Counters read before the work (one read reaches one worker process: several reads see more of
# them), and how long after the work should be done the counters are polled for it.
BACKGROUND_BASELINE_READS = 6
BACKGROUND_POLL_S = 2.0
BACKGROUND_POLL_INTERVAL_S = 0.05




def _stream_framing(headers: http.client.HTTPMessage) -> tuple[str, list[str]]:
    """How a stream's body is delimited, and what is wrong with it: chunked, or ended by the
    server closing the connection (uWSGI), never a Content-Length (the app sends none)."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return "chunked", []
    length = headers.get("Content-Length")
    if length is not None:
        return f"Content-Length {length}", [f"a Content-Length ({length}) on a stream: the app "
                                            "sends none, so the server buffered the body"]
    return "ended by closing the connection", []


@dataclass(frozen=True, kw_only=True)
class _Stream:
    """A streamed answer as read: ``arrivals`` holds, for each complete event (ended by a blank
    line), the ms from sending the request to its arrival; ``cut`` why reading stopped early."""

    response: http.client.HTTPResponse
    body: bytes
    arrivals: list[float]
    cut: str | None


def _read_stream(target: LiveTarget, path: str, deadline_s: float) -> _Stream:
    """GET ``path`` and read the body as it arrives. Raises one of NO_ANSWER when no response
    head comes; a body that stops early or runs past ``deadline_s`` is ``cut``."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=target.timeout_s)
    try:
        start = time.perf_counter()
        connection.request("GET", target.prefix + path, headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        body = b""
        arrivals: list[float] = []
        cut = None
        try:
            while chunk := response.read1(65536):
                elapsed_s = time.perf_counter() - start
                body += chunk
                arrivals.extend([elapsed_s * 1000] * (body.count(b"\n\n") - len(arrivals)))
                if elapsed_s > deadline_s:
                    cut = f"still streaming after {deadline_s:g} s"
                    break
        except NO_ANSWER as exc:
            cut = f"the body stopped after {len(body)} bytes ({type(exc).__name__}: {exc})"
        return _Stream(response=response, body=body, arrivals=arrivals, cut=cut)
    finally:
        connection.close()


def _check_stream(target: LiveTarget) -> Check:
    """``/stream``: the exact events, framed by the server, arriving one by one in time. A server
    that buffers the stream shows every event at once, at the end."""
    name = "stream"
    events, interval_ms = STREAM_CHECK_EVENTS, STREAM_CHECK_INTERVAL_MS
    path = f"{common.STREAM_PATH}?events={events}&interval_ms={interval_ms}"
    request = f"GET {path}"
    skipped = not_tried(target, name, request)
    if skipped is not None:
        return skipped
    spread_ms = (events - 1) * interval_ms
    try:
        stream = _read_stream(target, path,
                              target.timeout_s + (spread_ms + IO_LATE_TOLERANCE_MS) / 1000)
    except NO_ANSWER as exc:
        return no_answer(target, name, request, exc)
    response, body, arrivals = stream.response, stream.body, stream.arrivals
    problems = [] if stream.cut is None else [stream.cut]
    if response.status != 200:
        problems.append(f"expected status 200, got {response.status}")
    for header, want in common.STREAM_HEADERS:
        got = response.headers.get(header)
        if got != want:
            problems.append(f"expected {header} {want!r}, got {got!r}")
    framing, framing_problems = _stream_framing(response.headers)
    problems.extend(framing_problems)
    expected = common.stream_body(events, interval_ms)
    if body != expected:
        problems.append(f"expected body {shorten(expected)}, got {shorten(body)}")
    times = ", ".join(f"{ms:.0f}" for ms in arrivals)
    if len(arrivals) == events:
        first, last = arrivals[0], arrivals[-1]
        if last - first < spread_ms * STREAM_MIN_SPREAD_FRACTION:
            problems.append(f"events arrived all at once: the server buffered the stream "
                            f"(at {times} ms; made {interval_ms} ms apart)")
        elif last - first > spread_ms + IO_LATE_TOLERANCE_MS:
            problems.append(f"expected the events about {interval_ms} ms apart, they arrived at "
                            f"{times} ms")
    if problems:
        return Check(name=name, ok=False, detail=f"{request}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"{request}: {events} events at {times} ms after the request, {framing}")


def _check_upload(target: LiveTarget, size: int) -> Check:
    data = random.Random(UPLOAD_CHECK_SEED).randbytes(size)
    expected = common.upload_body(len(data), hashlib.sha256(data).hexdigest())
    return expect(target, f"upload[{size}]", common.UPLOAD_PATH, method="POST", data=data,
                   status=200, content_type=common.APPLICATION_JSON, body=expected)


def _allow(expected: str) -> Callable[[Answer], list[str]]:
    def check(answer: Answer) -> list[str]:
        got = answer.headers.get("Allow")
        return [] if got == expected else [f"expected Allow {expected!r}, got {got!r}"]
    return check


def _send_until_answered(sock: socket.socket, length: int, deadline: float) -> int:
    """Send ``length`` zero bytes until the server starts to answer (or refuses more), without
    reading the answer; returns how many were sent."""
    piece = bytes(UPLOAD_SEND_PIECE)
    sent = 0
    while sent < length:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            raise TimeoutError("neither read the body nor answered")
        readable, writable, _ = select.select([sock], [sock], [], left_s)
        if readable:
            break
        if writable:
            try:
                sent += sock.send(piece[:length - sent])
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its answer may be waiting
    return sent


def _post_too_large(target: LiveTarget, path: str, length: int) -> tuple[Answer, int]:
    """POST ``path`` declaring ``length`` body bytes, sending them only as long as the server
    has not answered: the answer, and how many body bytes were sent before it."""
    with socket.create_connection((target.host, target.port), timeout=target.timeout_s) as sock:
        start = time.perf_counter()
        sock.sendall(f"POST {target.prefix}{path} HTTP/1.1\r\n"
                     f"Host: {target.host}:{target.port}\r\nAccept: */*\r\n"
                     f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
                     "Connection: close\r\n\r\n".encode("latin-1"))
        sent = _send_until_answered(sock, length, time.monotonic() + target.timeout_s)
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        elapsed_ms = (time.perf_counter() - start) * 1000
    return Answer(status=response.status, headers=response.msg, body=body,
                  elapsed_ms=elapsed_ms), sent


def _check_upload_too_large(target: LiveTarget) -> Check:
    """A Content-Length one byte over the limit: 413, without the app reading the body."""
    name, path = "upload_too_large", common.UPLOAD_PATH
    length = common.UPLOAD_MAX_BYTES + 1
    request = f"POST {path} (Content-Length {length})"
    skipped = not_tried(target, name, request)
    if skipped is not None:
        return skipped
    try:
        answer, sent = _post_too_large(target, path, length)
    except (*NO_ANSWER, TimeoutError) as exc:
        return no_answer(target, name, request, exc)
    expected = common.UPLOAD_TOO_LARGE
    problems = answer_problems(answer, status=expected.status,
                                content_type=expected.content_type, body=expected.body)
    if problems:
        return Check(name=name, ok=False, detail=f"{request}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"{request}: {answer.status} in {answer.elapsed_ms:.0f} ms, after "
                        f"{sent} body bytes sent")


def _stats_of(answer: Answer) -> tuple[int, int, int] | str:
    """(pid, started, finished) from a ``/background/stats`` answer, or what is wrong."""
    problems = head_problems(answer, status=200, content_type=common.APPLICATION_JSON)
    try:
        value = json.loads(answer.body)
    except ValueError:
        value = None
    keys = ("pid", "started", "finished")
    if (not isinstance(value, dict) or list(value) != list(keys)
            or not all(type(value[k]) is int and value[k] >= 0 for k in keys)
            or value["started"] < value["finished"]):
        problems.append(f"expected {{\"pid\":P,\"started\":S,\"finished\":F}} with S >= F, "
                        f"got {shorten(answer.body)}")
    if problems:
        return "; ".join(problems)
    assert isinstance(value, dict)
    return value["pid"], value["started"], value["finished"]


def _read_stats(target: LiveTarget, name: str, seen: dict[int, tuple[int, int]]) -> Check | None:
    """One ``/background/stats`` read into ``seen`` (pid -> started, finished), or the failure."""
    path = common.BACKGROUND_STATS_PATH
    answer = fetch_or_check(target, name, path)
    if isinstance(answer, Check):
        return answer
    stats = _stats_of(answer)
    if isinstance(stats, str):
        return Check(name=name, ok=False, detail=f"GET {path}: {stats}")
    pid, started, finished = stats
    seen[pid] = (started, finished)
    return None


def _check_background(target: LiveTarget) -> list[Check]:
    """``/background?ms=N`` answers before its N ms of work, and ``/background/stats`` shows the
    work finished afterwards. One stats read reaches one worker process, so the counters are
    kept per pid, a pid first seen after the work counting from 0: the check passes when, summed
    over the processes seen, ``finished`` grew."""
    ms = BACKGROUND_CHECK_MS
    path = f"{common.BACKGROUND_PATH}?ms={ms}"
    before: dict[int, tuple[int, int]] = {}
    for _ in range(BACKGROUND_BASELINE_READS):
        failed = _read_stats(target, "background_stats", before)
        if failed is not None:
            return [failed]
    answers = []
    for _ in range(BACKGROUND_CHECK_REQUESTS):
        answer = fetch_or_check(target, "background", path)
        if isinstance(answer, Check):
            return [answer]
        problems = answer_problems(answer, status=200, content_type=common.APPLICATION_JSON,
                                    body=common.background_body(ms))
        if problems:
            return [Check(name="background", ok=False, detail=f"GET {path}: " +
                          "; ".join(problems))]
        answers.append(answer.elapsed_ms)
    times = ", ".join(f"{elapsed:.0f}" for elapsed in answers)
    # A server that completes the response only after the work takes N ms every time.
    if min(answers) >= ms:
        answered = Check(name="background", ok=False,
                         detail=f"GET {path}: answered in {times} ms: expected the answer "
                                f"before the {ms} ms of work, not after it")
    else:
        answered = Check(name="background", ok=True,
                         detail=f"GET {path}: answered in {times} ms, before its {ms} ms of work")
    seen = dict(before)
    deadline = time.monotonic() + ms / 1000 + BACKGROUND_POLL_S
    grown = 0
    while True:
        failed = _read_stats(target, "background_stats", seen)
        if failed is not None:
            return [answered, failed]
        grown = sum(finished - before.get(pid, (0, 0))[1] for pid, (_, finished) in seen.items())
        if grown > 0 or time.monotonic() >= deadline:
            break
        time.sleep(BACKGROUND_POLL_INTERVAL_S)
    pids = f"{len(seen)} worker process(es) seen"
    if grown <= 0:
        return [answered, Check(
            name="background_stats", ok=False,
            detail=f"GET {common.BACKGROUND_STATS_PATH}: no background task finished within "
                   f"{ms / 1000 + BACKGROUND_POLL_S:g} s of {BACKGROUND_CHECK_REQUESTS} x GET "
                   f"{path} ({pids}: {seen})")]
    return [answered, Check(name="background_stats", ok=True,
                            detail=f"GET {common.BACKGROUND_STATS_PATH}: {grown} of "
                                   f"{BACKGROUND_CHECK_REQUESTS} tasks seen finished ({pids})")]


# A route a family does not serve is the contract's 404 (Django has no background tasks).
_NOT_SERVED: dict[LongLived, tuple[str, str]] = {
    "stream": ("GET", f"{common.STREAM_PATH}?events=1&interval_ms=0"),
    "upload": ("POST", common.UPLOAD_PATH),
    "background": ("GET", f"{common.BACKGROUND_PATH}?ms=0"),
}


def verify_long_lived(base_url: str, *, routes: Iterable[LongLived] = LONG_LIVED,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyReport:
    """The long-lived routes a family serves (apps/README.md, "Long-lived requests"; ``routes``,
    default all): the stream's exact events spread in time, uploads of 16 MiB, 1 byte and
    nothing hashed right, ``GET /upload`` 405, an oversized upload 413, and background work
    after the response; each route not in ``routes`` must be the contract's 404."""
    target = LiveTarget(base_url, timeout_s)
    served = set(routes)
    text = common.TEXT_PLAIN
    bad_stream = common.parse_stream("events=0&interval_ms=1")
    bad_background = common.parse_background("ms=60001")
    assert isinstance(bad_stream, common.Response)
    assert isinstance(bad_background, common.Response)
    checks: list[Check] = []
    if "stream" in served:
        checks += [
            _check_stream(target),
            expect(target, "stream_bad_events", f"{common.STREAM_PATH}?events=0&interval_ms=1",
                    status=400, content_type=text, body=bad_stream.body),
        ]
    if "upload" in served:
        checks += [
            *(_check_upload(target, size) for size in UPLOAD_CHECK_SIZES),
            expect(target, "upload_get", common.UPLOAD_PATH, status=405, content_type=text,
                    body=common.METHOD_NOT_ALLOWED_BODY, extra=_allow("POST")),
            _check_upload_too_large(target),
        ]
    if "background" in served:
        checks += [
            expect(target, "background_bad_ms", f"{common.BACKGROUND_PATH}?ms=60001",
                    status=400, content_type=text, body=bad_background.body),
            *_check_background(target),
        ]
    for route in LONG_LIVED:
        if route not in served:
            method, path = _NOT_SERVED[route]
            checks.append(expect(target, f"{route}_not_served", path, method=method,
                                  status=404, content_type=text, body=common.NOT_FOUND_BODY))
    return VerifyReport(checks=tuple(checks))
