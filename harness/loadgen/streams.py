"""K concurrent server-sent-event streams: when each starts, how evenly its events arrive, and
how many the server carries to the end.

>>> result = measure_streams("http://127.0.0.1:8000/stream", streams=100, events=20,
...                          interval_ms=100)  # doctest: +SKIP
>>> result.completed, result.gap_ms["p99"], result.max_concurrent  # doctest: +SKIP

Each stream is one connection sending ``GET /stream?events=N&interval_ms=M`` (the URL's path,
``/stream`` when it has none; its query kept, ``events`` and ``interval_ms`` set) with
``Connection: close``. httptools reads the status line, the headers and the body's framing
(chunked, Content-Length, or up to the close); :class:`EventScanner` finds the events in the
body: an event is a block of lines ended by a blank line. Every piece of the body is stamped as
it arrives, so events that come in one piece (a server that does not flush) arrive 0 µs apart,
and the first of them as late as the last.

Every stream ends as one of three:

- *completed*: all N events arrived (the client closes it then);
- *cut*: at least one event arrived, then the connection ended (closed, reset, a malformed
  body, or the body's end) or the overall deadline passed;
- *never started*: no event arrived: not connected, an error status, or no first event within
  ``timeout_s`` of the request.

With ``leave_after=E`` every stream is a client that leaves: once it has E events it closes
its connection (a plain close: a FIN, as a browser tab that is closed), stamping the moment,
and counts as *completed*; ``left`` lists each such stream's id (``id_prefix`` and its number,
sent as the request's ``id``, which the raw apps write in their task log), the events it had
received and when it closed, on ``time.monotonic_ns`` (one clock for every process on Linux,
the server's too). harness.tasktrials sets these against when the server stopped producing.

The measurement runs in a process of its own (spawned, pinned to ``cpus`` when given), as the
HTTP generator's processes do: the caller's threads and the generator's hot path never share
its event loop. It is bounded: ``(N - 1) * M`` ms plus ``timeout_s`` from the start, then every
connection still open is closed and counted (with ``leave_after``: ``(E - 1) * M`` ms plus
``timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing.connection as mpc
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httptools
from hdrh.histogram import HdrHistogram

from harness.cpus import check_usable
from harness.errors import UsageError
from harness.loadgen.histograms import new_histogram, percentiles_ms, record_batch
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.launch import (
    child_loop,
    collect,
    reap,
    reports_to,
    start_child,
)
from harness.loadgen.result import LoadResult
from harness.loadgen.spec import parse_url
from harness.loadgen.sse import StreamParser

DEFAULT_PATH = "/stream"
DEFAULT_TIMEOUT_S = 5.0
MAX_STREAMS = 10_000
MAX_EVENTS = 10_000
MAX_INTERVAL_MS = 60_000
MAX_TIMEOUT_S = 600.0
MAX_STREAM_S = 3_600.0  # (N - 1) * M: one stream's declared length
CONNECT_PARALLEL = 256  # connects in progress at once
MAX_ID_PREFIX = 40  # with a stream's number, within the app contract's 64 characters of id
FLUSH_SAMPLES = 65_536  # raw samples held before they are recorded into the histograms
START_MARGIN_S = 30.0  # spawning and imports, before the child's own deadline starts
RESULT_MARGIN_S = 15.0  # beyond the child's deadline, waiting for its report
NS_PER_S = 1_000_000_000
FIRST_EVENT = "first_event"
GAP = "gap"


@dataclass(frozen=True, kw_only=True)
class _Plan:
    host: str
    port: int
    request: bytes
    streams: int
    events: int
    timeout_ns: int
    deadline_ns: int  # from the start: (N - 1) * M + timeout (N: leave_after, when set)
    leave_after: int = 0  # 0: read every event
    id_prefix: str = ""  # "": no id in the request

    def request_for(self, number: int) -> bytes:
        """Stream ``number``'s request: the shared one, with ``&id=<prefix><number>`` in its
        query when streams are named (the path always has a query here)."""
        if not self.id_prefix:
            return self.request
        head, _, tail = self.request.partition(b" HTTP/1.1\r\n")
        return head + f"&id={self.id_prefix}{number}".encode("ascii") + b" HTTP/1.1\r\n" + tail


@dataclass(kw_only=True)
class StreamResult:
    """What :func:`measure_streams` returns. ``first_event`` and ``gap`` are HDR histograms
    in microseconds: the time from a stream's request to its first event, and between
    consecutive events of one stream (``interval_ms`` apart from a server that flushes each,
    0 between events that came in one piece). ``completed + cut + never_started == streams``.
    ``errors`` counts why streams ended early or never started (ERROR_KINDS, and ``total``):
    connect, io (closed or reset mid-body, malformed), timeout (first event or overall
    deadline), status (not 2xx), body (the response ended with fewer events)."""

    url: str
    streams: int
    events: int
    interval_ms: float
    timeout_s: float
    completed: int
    cut: int
    never_started: int
    max_concurrent: int  # streams between their first event and their end, at most at once
    peak_connections: int  # connections open at once (a stream waiting to start holds one)
    events_received: int
    duration_s: float
    first_event: HdrHistogram
    gap: HdrHistogram
    errors: dict[str, int] = field(default_factory=dict)
    out_of_range: int = 0  # samples past the histograms' range (over an hour)
    leave_after: int | None = None
    # with leave_after: (stream id, events received, monotonic ns of the close) of each stream
    # that left
    left: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def first_event_ms(self) -> dict[str, float | None]:
        """p50..p99_99, max and mean of the time to first event, in ms (None: no stream
        started)."""
        return percentiles_ms(self.first_event)

    @property
    def gap_ms(self) -> dict[str, float | None]:
        """p50..p99_99, max and mean of the gaps between events, in ms."""
        return percentiles_ms(self.gap)

    def to_dict(self) -> dict[str, object]:
        """Every field, the histograms as their percentiles in ms (``first_event_ms``,
        ``gap_ms``)."""
        data: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)
                                   if f.name not in ("first_event", "gap", "left")}
        data.update(duration_s=round(self.duration_s, 6), errors=dict(self.errors),
                    first_event_ms=self.first_event_ms, gap_ms=self.gap_ms)
        return data


def stream_url(url: str, *, events: int, interval_ms: float) -> tuple[str, str, int, str]:
    """``(host, host_header, port, path)`` of the stream request: the URL's path (``/stream``
    when it has none) and query, with ``events`` and ``interval_ms`` set."""
    target = parse_url(url)
    if target.websocket:
        raise UsageError(f"streams: URL {url!r} is a WebSocket URL; expected "
                         "http://HOST:PORT/stream")
    path, _, query = target.path.partition("?")
    if path == "/":
        path = DEFAULT_PATH
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
              if k not in ("events", "interval_ms")]
    params += [("events", str(events)), ("interval_ms", f"{interval_ms:g}")]
    return target.host, target.host_header, target.port, f"{path}?{urlencode(params)}"


def _check_leaving(events: int, leave_after: int | None, id_prefix: str | None) -> None:
    if leave_after is not None and (isinstance(leave_after, bool)
                                    or not 1 <= leave_after < events):
        raise UsageError(f"leave_after must be between 1 and events - 1 ({events - 1}), got "
                         f"{leave_after!r}")
    if id_prefix is not None and not (id_prefix.isascii() and id_prefix.replace("-", "")
                                      .replace("_", "").isalnum()
                                      and len(id_prefix) <= MAX_ID_PREFIX):
        raise UsageError(f"id_prefix must be up to {MAX_ID_PREFIX} ASCII letters, digits, '-' "
                         f"or '_', got {id_prefix!r}")


def _check(streams: int, events: int, interval_ms: float, timeout_s: float) -> None:
    if isinstance(streams, bool) or not 1 <= streams <= MAX_STREAMS:
        raise UsageError(f"streams must be between 1 and {MAX_STREAMS}, got {streams!r}")
    if isinstance(events, bool) or not 1 <= events <= MAX_EVENTS:
        raise UsageError(f"events must be between 1 and {MAX_EVENTS}, got {events!r}")
    if not (math.isfinite(interval_ms) and 0 <= interval_ms <= MAX_INTERVAL_MS):
        raise UsageError(f"interval_ms must be between 0 and {MAX_INTERVAL_MS}, "
                         f"got {interval_ms!r}")
    if (events - 1) * interval_ms / 1000 > MAX_STREAM_S:
        raise UsageError(f"a stream of {events} events {interval_ms:g} ms apart lasts over "
                         f"{MAX_STREAM_S:g} s; expected a shorter stream")
    if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UsageError(f"timeout_s must be > 0 and at most {MAX_TIMEOUT_S:g}, "
                         f"got {timeout_s!r}")


def measure_streams(url: str, *, streams: int, events: int, interval_ms: float,
                    timeout_s: float = DEFAULT_TIMEOUT_S,
                    cpus: Sequence[int] | None = None, leave_after: int | None = None,
                    id_prefix: str | None = None) -> StreamResult:
    """Hold ``streams`` SSE streams of ``events`` events ``interval_ms`` apart (blocking);
    bounded by ``(events - 1) * interval_ms`` plus ``timeout_s``. ``leave_after``: each
    client leaves after that many events (the module's docstring); ``id_prefix``: each
    stream's request carries ``id=<prefix><number>``.

    Raises UsageError for bad arguments, GeneratorError when the measuring process fails. Ctrl-C
    stops and reaps it, then re-raises KeyboardInterrupt.
    """
    _check(streams, events, interval_ms, timeout_s)
    _check_leaving(events, leave_after, id_prefix)
    if cpus is not None:
        cpus = check_usable(cpus)
    host, host_header, port, path = stream_url(url, events=events, interval_ms=interval_ms)
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: text/event-stream\r\n"
               "Cache-Control: no-cache\r\nConnection: close\r\n\r\n").encode("latin-1")
    read = leave_after or events
    deadline_ns = int(((read - 1) * interval_ms / 1000 + timeout_s) * NS_PER_S)
    plan = _Plan(host=host, port=port, request=request, streams=streams, events=events,
                 timeout_ns=int(timeout_s * NS_PER_S), deadline_ns=deadline_ns,
                 leave_after=leave_after or 0, id_prefix=id_prefix or "")
    proc, parent_end = start_child(_child_main, (plan, tuple(cpus or ())), "harness-streams")
    try:
        wait_s = START_MARGIN_S + deadline_ns / NS_PER_S + RESULT_MARGIN_S
        (report,) = collect([(proc, parent_end)], "done", time.monotonic() + wait_s)
    finally:
        reap([proc])
        parent_end.close()
    result = _result(report, url=f"http://{host_header}{path}", streams=streams,
                     events=events, interval_ms=interval_ms, timeout_s=timeout_s)
    result.leave_after = leave_after
    result.left = [(f"{plan.id_prefix}{number}", received, closed_ns)
                   for number, received, closed_ns in report["left"]]
    return result


def _result(report: dict[str, Any], *, url: str, streams: int, events: int,
            interval_ms: float, timeout_s: float) -> StreamResult:
    first, gap = new_histogram(), new_histogram()
    first.decode_and_add(report[FIRST_EVENT])
    gap.decode_and_add(report[GAP])
    errors = {kind: int(report["errors"].get(kind, 0)) for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    return StreamResult(
        url=url, streams=streams, events=events, interval_ms=interval_ms, timeout_s=timeout_s,
        completed=report["completed"], cut=report["cut"], never_started=report["never_started"],
        max_concurrent=report["max_concurrent"], peak_connections=report["peak_connections"],
        events_received=report["events_received"], duration_s=report["duration_s"],
        first_event=first, gap=gap, errors=errors, out_of_range=report["out_of_range"])


def _child_main(pipe: mpc.Connection, plan: _Plan, cpus: tuple[int, ...]) -> None:
    """The measuring process: run the streams, report once."""
    with child_loop(cpus) as loop, reports_to(pipe):
        report = loop.run_until_complete(_Run(plan, loop).measure())
        pipe.send(("done", report))


class _Stream(asyncio.Protocol):
    """One stream's connection: parses as bytes arrive, stamps every piece."""

    def __init__(self, run: _Run, number: int) -> None:
        self.run = run
        self.number = number
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.sent_ns = 0
        self.last_ns = 0
        self.events = 0
        self.ended = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        run = self.run
        if run.stopping:
            transport.close()
            self.ended = True
            return
        run.connected(self)
        transport.write(run.plan.request_for(self.number))  # type: ignore[attr-defined]
        self.sent_ns = time.monotonic_ns()
        self.timer = run.loop.call_later(run.plan.timeout_ns / NS_PER_S, self._no_first_event)

    def _no_first_event(self) -> None:
        self.timer = None
        if not self.events:
            self.end("timeout")

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.ended:
            return
        try:
            count = self.parser.feed(data)
        except httptools.HttpParserError:
            self.end("io")
            return
        if self.parser.status is not None and not 200 <= self.parser.status < 300:
            self.end("status")
            return
        if count:
            self.run.arrived(self, count, now)
        leave_after = self.run.plan.leave_after
        if leave_after and self.events >= leave_after:
            # the client leaves: the moment of its close, just before it
            self.run.left.append((self.number, self.events, time.monotonic_ns()))
            self.end(None)
        elif self.events >= self.run.plan.events:
            self.end(None)
        elif self.parser.complete:
            self.end("body")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended:
            clean = exc is None and self.parser.framing == "close" \
                and self.parser.status is not None
            self.end("body" if clean else "io")

    def end(self, kind: str | None) -> None:
        """The stream is over: completed (``kind`` None), else cut or never started."""
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()
        self.run.ended(self, kind)


class _Run:
    """The streams of one measurement, their counts and samples."""

    def __init__(self, plan: _Plan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.loop = loop
        self.stopping = False
        self.live: set[_Stream] = set()
        self.done = loop.create_future()
        self.finished = 0  # streams with an outcome
        self.completed = self.cut = self.never_started = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.started = self.max_concurrent = 0
        self.peak_connections = 0
        self.events_received = 0
        self.out_of_range = 0
        self.samples = {FIRST_EVENT: array("q"), GAP: array("q")}
        self.left: list[tuple[int, int, int]] = []  # (number, events, close ns)
        self.numbers = iter(range(plan.streams))
        self.hists = {FIRST_EVENT: new_histogram(), GAP: new_histogram()}

    async def measure(self) -> dict[str, Any]:
        start = time.monotonic_ns()
        gate = asyncio.Semaphore(CONNECT_PARALLEL)
        tasks = [self.loop.create_task(self._open(gate)) for _ in range(self.plan.streams)]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.done),
                                       self.plan.deadline_ns / NS_PER_S)
        finally:
            self.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stream in list(self.live):
                stream.end("timeout")
            unopened = self.plan.streams - self.finished  # connects cut short by the deadline
            self.never_started += unopened
            self.errors["timeout"] += unopened
        duration_s = (time.monotonic_ns() - start) / NS_PER_S
        for name in self.samples:
            self._flush(name)
        return {
            "completed": self.completed, "cut": self.cut, "never_started": self.never_started,
            "max_concurrent": self.max_concurrent, "peak_connections": self.peak_connections,
            "events_received": self.events_received, "duration_s": duration_s,
            "errors": self.errors, "out_of_range": self.out_of_range, "left": self.left,
            FIRST_EVENT: self.hists[FIRST_EVENT].encode(), GAP: self.hists[GAP].encode(),
        }

    async def _open(self, gate: asyncio.Semaphore) -> None:
        async with gate:
            if self.stopping:
                return
            stream = _Stream(self, next(self.numbers))
            try:
                await asyncio.wait_for(
                    self.loop.create_connection(lambda: stream, self.plan.host,
                                                self.plan.port),
                    self.plan.timeout_ns / NS_PER_S)
            except (OSError, TimeoutError):
                if stream.transport is None:  # else it connected as the timeout struck: live
                    self._outcome(None, "connect")

    def connected(self, stream: _Stream) -> None:
        self.live.add(stream)
        self.peak_connections = max(self.peak_connections, len(self.live))

    def arrived(self, stream: _Stream, count: int, now: int) -> None:
        """``count`` events of ``stream`` arrived in one piece at ``now``."""
        count = min(count, self.plan.events - stream.events)  # past N: not asked for
        if count <= 0:
            return
        if not stream.events:
            self._sample(FIRST_EVENT, now - stream.sent_ns)
            self.started += 1
            self.max_concurrent = max(self.max_concurrent, self.started)
        else:
            self._sample(GAP, now - stream.last_ns)
        for _ in range(count - 1):
            self._sample(GAP, 0)  # the rest of one piece arrived with the first of it
        stream.events += count
        stream.last_ns = now
        self.events_received += count

    def ended(self, stream: _Stream, kind: str | None) -> None:
        self.live.discard(stream)
        if stream.events:
            self.started -= 1
        self._outcome(stream, kind)

    def _outcome(self, stream: _Stream | None, kind: str | None) -> None:
        if kind is None:
            self.completed += 1
        else:
            self.errors[kind] += 1
            if stream is not None and stream.events:
                self.cut += 1
            else:
                self.never_started += 1
        self.finished += 1
        if self.finished >= self.plan.streams and not self.done.done():
            self.done.set_result(None)

    def _sample(self, name: str, value_ns: int) -> None:
        self.samples[name].append(value_ns)
        if len(self.samples[name]) >= FLUSH_SAMPLES:
            self._flush(name)

    def _flush(self, name: str) -> None:
        samples = self.samples[name]
        if samples:
            self.samples[name] = array("q")
            self.out_of_range += record_batch(samples, (self.hists[name],))


def as_load_result(result: StreamResult, *, window_start_ns: int,
                   window_end_ns: int) -> LoadResult:
    """The streams as a trial's LoadResult, so they are judged, written and read as every
    trial is: ``requests`` the streams completed and ``errors`` the others (cut or never
    started, by kind); ``achieved_rps`` events received per second; ``latency`` the gaps
    between events and ``service_time`` the time to first event."""
    errors = dict(result.errors)
    errors["total"] = result.cut + result.never_started
    duration = max(result.duration_s, 1e-9)
    return LoadResult(
        load_model="stream", url=result.url, concurrency=result.streams,
        requests=result.completed, duration_s=result.duration_s,
        achieved_rps=result.events_received / duration, offered_rps=None, errors=errors,
        latency=result.gap, service_time=result.first_event, out_of_range=result.out_of_range,
        behind=0, behind_generator=0, behind_at_cap=0, scheduled=0, saturated=False,
        saturation_reasons=[], generator_cpu_pct=0.0, generator_cpu_s=0.0,
        generator_proc_cpu_pct=[], peak_connections=result.peak_connections, procs=1,
        window_start_ns=window_start_ns, window_end_ns=window_end_ns,
        open_at_end=result.max_concurrent,
        notes=[f"streams: {result.completed} of {result.streams} completed, {result.cut} cut, "
               f"{result.never_started} never started; at most {result.max_concurrent} at once"])
