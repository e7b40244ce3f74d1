"""Closed-loop requests whose answers are counted, with moments of the measured window at which
the caller acts (reads a log, stops the server).

>>> result = measure_background("http://127.0.0.1:8000/background?ms=200", clients=16,
...                             warmup_s=1, duration_s=5, timeout_s=5,
...                             at=[(2.5, stop_server)])  # doctest: +SKIP
>>> result.accepted, result.requests, result.latency_ms["p99"]  # doctest: +SKIP

``clients`` keep-alive connections each send ``GET <path>`` and wait for its answer, then
``think_s``, before the next (a closed loop with a user's pause: without one, a server that
answers at once has the clients spin as fast as their one process can), and every answer is
counted: ``requests`` the 2xx
answers (with the expected body, when one is given) completed in the measured window, timed
from the send into an HDR histogram (microseconds), and ``accepted`` every such answer from
the first request to the last, warm-up and the drain after the window included: each is work
the server promised (``/background``: a task it will run after answering). Errors are counted
by kind (harness.loadgen.kinds) in the window, and separately those before ``split_s`` into
it (before the server was asked to stop, where that is what the caller does then).

A connect that fails is tried again after RECONNECT_WAIT_S, not at once: a server that is
shutting down refuses every connect, and the clients must not spin on it. A request that finds
its kept-alive connection closed before any byte of an answer came back (the server closed an
idle connection: uWSGI's http-socket closes without saying so, any server does when it stops)
goes again on a new connection, uncounted. At the window's end the clients send no more, and
answers still on their way are waited for (up to ``timeout_s``) and counted as accepted.

Runs in a process of its own (spawned, pinned to ``cpus``), as every load model does
(harness.loadgen.launch). ``at``: ``(seconds into the measured window, callback)`` pairs, each
called in the caller's process at that moment (the window is on ``time.monotonic_ns``, one
clock for every process); 0 is the window's start and ``duration_s`` its end.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing.connection as mpc
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httptools
from hdrh.histogram import HdrHistogram

from harness.cpus import check_usable
from harness.errors import UsageError
from harness.loadgen.histograms import new_histogram, percentiles_ms, record_batch
from harness.loadgen.httpconn import peer_closed
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.launch import (
    check_reachable,
    child_loop,
    collect,
    reap,
    reports_to,
    start_child,
)
from harness.loadgen.result import SATURATED_CPU_PCT, LoadResult
from harness.loadgen.spec import parse_url
from harness.units import MAX_DURATION_S

MAX_CLIENTS = 10_000
MAX_TIMEOUT_S = 600.0
MAX_THINK_S = 60.0
RECONNECT_WAIT_S = 0.05  # after a failed connect: a stopping server refuses every one
START_DELAY_S = 0.1  # between "go" and the common start, so the marks are on the same clock
READY_TIMEOUT_S = 30.0  # spawning and imports
RESULT_MARGIN_S = 15.0  # beyond the drain, waiting for the report
FLUSH_SAMPLES = 65_536
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class _Plan:
    host: str
    port: int
    request: bytes
    clients: int
    expect_body: bytes | None
    warmup_ns: int
    duration_ns: int
    timeout_ns: int
    split_ns: int  # into the window: errors before it are also counted apart
    think_s: float


@dataclass(kw_only=True)
class BackgroundResult:
    """What :func:`measure_background` returns (see the module's docstring)."""

    url: str
    clients: int
    requests: int  # 2xx answers completed in the window
    accepted: int  # 2xx answers from the first request to the last
    duration_s: float
    window_start_ns: int
    window_end_ns: int
    latency: HdrHistogram
    errors: dict[str, int] = field(default_factory=dict)  # in the window, with "total"
    errors_before_split: int = 0
    connects: int = 0
    peak_connections: int = 0
    generator_cpu_pct: float = 0.0  # the clients' process, over the window
    out_of_range: int = 0

    @property
    def latency_ms(self) -> dict[str, float | None]:
        return percentiles_ms(self.latency)


def _check(clients: int, warmup_s: float, duration_s: float, timeout_s: float,
           think_s: float, split_s: float | None,
           at: Sequence[tuple[float, Callable[[], None]]]) -> None:
    if not (math.isfinite(think_s) and 0 <= think_s <= MAX_THINK_S):
        raise UsageError(f"think_s must be between 0 and {MAX_THINK_S:g}, got {think_s!r}")
    if isinstance(clients, bool) or not 1 <= clients <= MAX_CLIENTS:
        raise UsageError(f"clients must be between 1 and {MAX_CLIENTS}, got {clients!r}")
    for name, value in (("warmup_s", warmup_s), ("duration_s", duration_s)):
        if not (math.isfinite(value) and 0 <= value <= MAX_DURATION_S):
            raise UsageError(f"{name} must be between 0 and {MAX_DURATION_S:g}, got {value!r}")
    if duration_s <= 0:
        raise UsageError(f"duration_s must be above 0, got {duration_s!r}")
    if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UsageError(f"timeout_s must be > 0 and at most {MAX_TIMEOUT_S:g}, "
                         f"got {timeout_s!r}")
    for offset in [*(t for t, _ in at), *([split_s] if split_s is not None else [])]:
        if not (math.isfinite(offset) and 0 <= offset <= duration_s):
            raise UsageError(f"a moment of the window must be between 0 and duration_s "
                             f"({duration_s:g}), got {offset!r}")


def measure_background(url: str, *, clients: int, warmup_s: float, duration_s: float,
                       timeout_s: float, think_s: float = 0.0,
                       expect_body: bytes | None = None, split_s: float | None = None,
                       at: Sequence[tuple[float, Callable[[], None]]] = (),
                       cpus: Sequence[int] | None = None) -> BackgroundResult:
    """Run the clients (blocking) and call each of ``at`` at its moment of the window.

    Raises UsageError for bad arguments, UnreachableError when the target refuses the first
    connect, GeneratorError when the clients' process fails; an exception from a callback is
    raised once the clients are stopped. Ctrl-C stops and reaps them, then re-raises.
    """
    _check(clients, warmup_s, duration_s, timeout_s, think_s, split_s, at)
    if cpus is not None:
        cpus = check_usable(cpus)
    target = parse_url(url)
    if target.websocket:
        raise UsageError(f"background: URL {url!r} is a WebSocket URL; expected http://")
    check_reachable(target)
    request = (f"GET {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
               "User-Agent: harness-background\r\n\r\n").encode("latin-1")
    plan = _Plan(host=target.host, port=target.port, request=request, clients=clients,
                 expect_body=expect_body, warmup_ns=int(warmup_s * NS_PER_S),
                 duration_ns=int(duration_s * NS_PER_S), timeout_ns=int(timeout_s * NS_PER_S),
                 split_ns=int((duration_s if split_s is None else split_s) * NS_PER_S),
                 think_s=think_s)
    proc, pipe = start_child(_child_main, (plan, tuple(cpus or ())), "harness-background")
    try:
        collect([(proc, pipe)], "ready", time.monotonic() + READY_TIMEOUT_S)
        start_ns = time.monotonic_ns() + int(START_DELAY_S * NS_PER_S)
        pipe.send(("go", start_ns))
        window_ns = start_ns + plan.warmup_ns
        for offset, action in sorted(at, key=lambda mark: mark[0]):
            wait_ns = window_ns + int(offset * NS_PER_S) - time.monotonic_ns()
            if wait_ns > 0:
                time.sleep(wait_ns / NS_PER_S)
            action()
        deadline = time.monotonic() + START_DELAY_S + warmup_s + duration_s \
            + 2 * timeout_s + RESULT_MARGIN_S
        (report,) = collect([(proc, pipe)], "done", deadline)
    finally:
        reap([proc])
        pipe.close()
    latency = new_histogram()
    latency.decode_and_add(report["latency"])
    errors = {kind: int(report["errors"].get(kind, 0)) for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    return BackgroundResult(
        url=url, clients=clients, requests=report["requests"], accepted=report["accepted"],
        duration_s=duration_s, window_start_ns=window_ns,
        window_end_ns=window_ns + plan.duration_ns, latency=latency, errors=errors,
        errors_before_split=report["errors_before_split"], connects=report["connects"],
        peak_connections=report["peak_connections"],
        generator_cpu_pct=report["cpu_s"] / duration_s * 100, out_of_range=report["out_of_range"])


def as_load_result(result: BackgroundResult, *, load_model: str) -> LoadResult:
    """The clients' figures as a trial's LoadResult (judged, written and read as every trial
    is): ``requests`` the 2xx answers in the window, ``latency`` their times."""
    saturated = result.generator_cpu_pct > SATURATED_CPU_PCT
    return LoadResult(
        load_model=load_model, url=result.url, concurrency=result.clients,
        requests=result.requests, duration_s=result.duration_s,
        achieved_rps=result.requests / result.duration_s, offered_rps=None,
        errors=dict(result.errors), latency=result.latency, service_time=None,
        out_of_range=result.out_of_range, behind=0, behind_generator=0, behind_at_cap=0,
        scheduled=0, saturated=saturated,
        saturation_reasons=[f"the clients' process used {result.generator_cpu_pct:.0f}% of "
                            f"its CPU (> {SATURATED_CPU_PCT:.0f}%)"] if saturated else [],
        generator_cpu_pct=result.generator_cpu_pct,
        generator_cpu_s=result.generator_cpu_pct * result.duration_s / 100,
        generator_proc_cpu_pct=[result.generator_cpu_pct],
        peak_connections=result.peak_connections, procs=1,
        window_start_ns=result.window_start_ns, window_end_ns=result.window_end_ns,
        open_at_end=0, notes=[])


def _child_main(pipe: mpc.Connection, plan: _Plan, cpus: tuple[int, ...]) -> None:
    """The clients' process: report ready, wait for the common start, run, report once."""
    with child_loop(cpus) as loop, reports_to(pipe):
        pipe.send(("ready", None))
        if not pipe.poll(READY_TIMEOUT_S):
            return
        tag, start_ns = pipe.recv()
        if tag != "go":
            return
        report = loop.run_until_complete(_Run(plan, loop, int(start_ns)).measure())
        pipe.send(("done", report))


class _Closed(Exception):
    """The connection closed before its answer; ``answered``: some bytes of one had come."""

    def __init__(self, answered: bool) -> None:
        super().__init__("closed")
        self.answered = answered


class _Conn(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its answer parsed by httptools."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.body = bytearray()
        self.got_bytes = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self.waiter = self.loop.create_future()
        self.body.clear()
        self.got_bytes = False
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()
            self.close()

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), bytes(self.body),
                                    self.parser.should_keep_alive()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail()

    def _fail(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(_Closed(self.got_bytes))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Run:
    """The clients of one measurement, their counts and samples."""

    def __init__(self, plan: _Plan, loop: asyncio.AbstractEventLoop, start_ns: int) -> None:
        self.plan = plan
        self.loop = loop
        self.start_ns = start_ns
        self.m0 = start_ns + plan.warmup_ns
        self.m1 = self.m0 + plan.duration_ns
        self.split = self.m0 + plan.split_ns
        self.stopping = False
        self.requests = self.accepted = self.connects = 0
        self.open = self.peak_connections = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.errors_before_split = 0
        self.out_of_range = 0
        self.samples = array("q")
        self.latency = new_histogram()

    async def measure(self) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, (self.start_ns - time.monotonic_ns()) / NS_PER_S))
        clients = [self.loop.create_task(self._client()) for _ in range(self.plan.clients)]
        await asyncio.sleep(max(0.0, (self.m0 - time.monotonic_ns()) / NS_PER_S))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, (self.m1 - time.monotonic_ns()) / NS_PER_S))
        cpu_s = time.process_time() - cpu0
        self.stopping = True  # no more requests; the answers on their way are waited for
        _done, pending = await asyncio.wait(clients,
                                            timeout=self.plan.timeout_ns / NS_PER_S + 1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        self._flush()
        return {"requests": self.requests, "accepted": self.accepted, "errors": self.errors,
                "errors_before_split": self.errors_before_split, "connects": self.connects,
                "peak_connections": self.peak_connections, "cpu_s": cpu_s,
                "out_of_range": self.out_of_range, "latency": self.latency.encode()}

    def _error(self, kind: str) -> None:
        now = time.monotonic_ns()
        if self.m0 <= now < self.m1:
            self.errors[kind] += 1
            if now < self.split:
                self.errors_before_split += 1

    async def _connect(self) -> _Conn | None:
        conn = _Conn(self.loop)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, self.plan.host, self.plan.port),
                self.plan.timeout_ns / NS_PER_S)
        except (OSError, TimeoutError):
            conn.close()
            self._error("connect")
            await asyncio.sleep(RECONNECT_WAIT_S)
            return None
        self.connects += 1
        self.open += 1
        self.peak_connections = max(self.peak_connections, self.open)
        return conn

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        self.open -= 1

    async def _client(self) -> None:
        conn: _Conn | None = None
        reused = False
        try:
            while not self.stopping:
                if conn is None:
                    conn = await self._connect()
                    reused = False
                    if conn is None:
                        continue
                sent = time.monotonic_ns()
                try:
                    status, body, keep = await asyncio.wait_for(
                        conn.ask(self.plan.request), self.plan.timeout_ns / NS_PER_S)
                except TimeoutError:
                    self._error("timeout")
                    self._drop(conn)
                    conn = None
                    continue
                except _Closed as closed:
                    # a kept-alive connection the server had closed: no request was answered
                    if closed.answered or not reused:
                        self._error("io")
                    self._drop(conn)
                    conn = None
                    continue
                self._answered(sent, time.monotonic_ns(), status, body)
                reused = True
                if not keep or conn.closed or peer_closed(conn.transport):
                    self._drop(conn)
                    conn = None
                if self.plan.think_s:
                    await asyncio.sleep(self.plan.think_s)
        finally:
            if conn is not None:
                self._drop(conn)

    def _answered(self, sent: int, now: int, status: int, body: bytes) -> None:
        ok = 200 <= status < 300
        good = ok and (self.plan.expect_body is None or body == self.plan.expect_body)
        if good:
            self.accepted += 1
        if not self.m0 <= now < self.m1:
            return
        if not good:
            self._error("status" if not ok else "body")
            return
        self.requests += 1
        self.samples.append(now - sent)
        if len(self.samples) >= FLUSH_SAMPLES:
            self._flush()

    def _flush(self) -> None:
        if self.samples:
            samples, self.samples = self.samples, array("q")
            self.out_of_range += record_batch(samples, (self.latency,))
