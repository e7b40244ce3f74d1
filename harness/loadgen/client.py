"""One generator process's event loop: keep-alive connections at the asyncio Protocol level.

The hot path (``_Conn.on_message_complete`` -> next ``transport.write``) reads the clock once,
appends one int to a per-second sample array and writes a request that was encoded once. No
futures, tasks, timers or closures are created per request: timeouts are found by a periodic
sweep over the connections, and open-loop wake-ups batch every request that is due.

Which requests count: a request belongs to the measurement when it was *due* (open loop: its
intended time; closed loop: its send time) inside the measured window. After the window the
worker waits up to the timeout for those still outstanding; whatever is then still in flight or
queued counts as a timeout, so a server that stalls at the end cannot hide either.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import httptools

from harness.loadgen.histograms import NS_PER_S, SecondBook
from harness.loadgen.schedule import OpenLoopSchedule, Window
from harness.loadgen.timer import PreciseTimer

ERROR_KINDS = ("connect", "io", "timeout", "status", "body")
# Methods a client may send again when the server closed the connection before answering.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
# Open loop: a request sent more than this after its due time counts as "behind".
BEHIND_THRESHOLD_MS = 10.0
BEHIND_THRESHOLD_NS = int(BEHIND_THRESHOLD_MS * 1_000_000)
# Why an open-loop request went out late: not the generator's doing (a new connection was slow to
# be accepted), the generator itself was late, or every connection up to its cap was busy.
NOT_GENERATOR, GENERATOR_LATE, AT_CAP = 0, 1, 2
# Open loop: the scheduler wakes at most this often; requests due in between go out together.
SCHEDULER_MIN_TICK_NS = 50_000
OPEN_LOOP_INITIAL_CONNECTIONS = 16
CONNECT_PARALLELISM = 256  # simultaneous connects, so 10k connections don't flood the backlog
RECONNECT_DELAY_S = 0.01  # pause before re-opening after a failed connect (bounds the retry rate)
INITIAL_CONNECT_WAIT_S = 30.0
SWEEP_MIN_S = 0.01
SWEEP_MAX_S = 0.1
DRAIN_SWEEP_S = 0.005
FLUSH_INTERVAL_S = 0.5  # keeps each batch (and its pause) small
DRAIN_MARGIN_S = 1.0  # beyond the timeout, before the worker gives up on the drain


@dataclass(frozen=True, kw_only=True)
class WorkerPlan:
    """One process's share of a LoadSpec."""

    host: str
    port: int
    request: bytes
    expect_body: bytes | None
    concurrency: int | None  # this process's connections (closed loop)
    rate: float | None  # the global rate (open loop); this process takes every procs-th request
    proc: int
    procs: int
    max_connections: int  # this process's cap
    warmup_ns: int
    duration_ns: int
    timeout_ns: int


@dataclass(frozen=True, kw_only=True)
class WorkerReport:
    """What a generator process sends back: encoded histograms and counts, nothing derived."""

    proc: int
    requests: int
    errors: dict[str, int]
    latency_hdr: bytes
    service_hdr: bytes | None
    out_of_range: int
    second_requests: list[int]  # by the second each request was due (the latency sample)
    second_completed: list[int]  # successes by the second they were answered (throughput)
    second_errors: list[int]
    second_latency_hdr: list[bytes | None]
    behind: int  # measured open-loop requests sent > BEHIND_THRESHOLD_MS late, any cause
    behind_generator: int  # ... of which the generator's fault (late itself, or at its cap)
    behind_at_cap: int  # ... of those, the ones that waited because every connection was busy
    completed: int  # successes answered inside the window (due in it or not): the throughput
    resent: int  # requests sent again after the server closed a reused connection (RFC 9112)
    window_start_ns: int  # the measured window on time.monotonic_ns(), shared by all processes
    window_end_ns: int
    scheduled: int  # open loop: this process's requests due in the window
    cpu_s: float
    window_s: float
    peak_connections: int
    max_connections: int  # this process's cap: open and opening connections together
    precise_timer: bool
    late_max_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    __slots__ = ("body", "busy", "dead", "due_ns", "fresh", "parser", "reused", "sent_ns",
                 "transport", "w")

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.due_ns = 0
        self.sent_ns = 0
        self.busy = False
        self.fresh = False  # no byte of the current answer has arrived yet
        self.reused = False  # this connection has carried a complete answer before
        self.dead = False
        self.body: bytearray | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.w.connected(self)

    def data_received(self, data: bytes) -> None:
        self.fresh = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.w.retire(self, "io")

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the accounting

    def connection_lost(self, exc: Exception | None) -> None:
        self.w.lost(self)

    def on_message_complete(self) -> None:
        now = time.monotonic_ns()
        w = self.w
        if not self.busy:  # a response nobody asked for
            w.retire(self, "io")
            return
        self.busy = False
        self.reused = True
        w.busy -= 1
        due = self.due_ns
        due_in_window = w.m0 <= due < w.m1
        done_in_window = w.m0 <= now < w.m1
        if due_in_window or done_in_window:
            status = self.parser.get_status_code()
            body = self.body
            if not 200 <= status < 300:
                if due_in_window:
                    w.count_error("status", due)
            elif body is not None and body != w.expect_body:  # type: ignore[comparison-overlap]
                if due_in_window:
                    w.count_error("body", due)
            else:
                if done_in_window:  # throughput, whenever it was due (even in the warm-up)
                    w.completed += 1
                    w.done_sec[(now - w.m0) // NS_PER_S] += 1
                if due_in_window:  # the latency sample
                    sec = (due - w.m0) // NS_PER_S
                    w.lat[sec].append(now - due)
                    svc = w.svc
                    if svc is not None:
                        svc[sec].append(now - self.sent_ns)
        if self.body is not None:
            self.body.clear()
        if not self.parser.should_keep_alive():
            w.retire(self, None)
            return
        if w.closed_loop and now < w.m1 and w.started:
            # the hot path of the closed loop, inlined: send the next request at once
            self.due_ns = self.sent_ns = now
            self.busy = self.fresh = True
            w.busy += 1
            self.transport.write(w.request)  # type: ignore[union-attr]
            return
        w.idle(self, now)


class _CheckingConn(_Conn):
    """Keeps the body; httptools only calls on_body on protocols that define it."""

    __slots__ = ()

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.body = bytearray()

    def on_body(self, data: bytes) -> None:
        self.body += data  # type: ignore[operator]


class Worker:
    """Runs one process's connections for warm-up, measurement and drain."""

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.loop = loop
        self.request = plan.request
        self.expect_body = plan.expect_body
        self.closed_loop = plan.rate is None
        self.conn_class = _Conn if plan.expect_body is None else _CheckingConn
        self.conns: set[_Conn] = set()
        # oldest first: a connection a server worker has accepted and is waiting on is used
        # before newer ones (wrk2 likewise goes round its connections)
        self.idle_conns: deque[_Conn] = deque()
        # open loop: (due time, cause) of requests waiting for a connection; the generator's
        # when it was already late (GENERATOR_LATE) or every connection was in use (AT_CAP)
        self.queue: deque[tuple[int, int]] = deque()
        self.busy = 0
        self.connecting = 0
        self.peak_connections = 0
        self.started = False
        self.stopping = False
        self.m0 = 0
        self.m1 = 0  # nothing is measured until run() sets the window
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.err_sec: list[int] = []
        self.lat_book = SecondBook(0)
        self.svc_book: SecondBook | None = None
        self.lat: list[array[int]] = self.lat_book.buckets
        self.svc: list[array[int]] | None = None
        self.behind = 0
        self.behind_generator = 0
        self.behind_at_cap = 0
        # successes answered inside the window, whenever they were due: the throughput. (The
        # requests due in the window are the latency sample; in open loop against a server
        # that cannot keep up they are answered late, after the window, so counting them as
        # throughput would report the offered rate instead of what the server delivered.)
        self.completed = 0
        self.done_sec: list[int] = []  # ... and by the second they were answered in
        self.resent = 0  # requests sent again after the server closed a reused connection
        self.idempotent = plan.request.split(b" ", 1)[0] in IDEMPOTENT_METHODS
        self.scheduled = 0
        self.late_max_ns = 0
        self.cpu0 = self.cpu1 = 0
        self.t_cpu0 = self.t_cpu1 = 0
        self.schedule: OpenLoopSchedule | None = None
        self.timer: PreciseTimer | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self.gate = asyncio.Semaphore(CONNECT_PARALLELISM)
        self.tasks: set[asyncio.Task[None]] = set()
        self.handles: list[asyncio.TimerHandle] = []
        self.connect_failures = 0
        self.precise_timer = True

    # -- connections ----------------------------------------------------------------------

    def open(self) -> None:
        cap = self.plan.concurrency if self.plan.concurrency is not None \
            else self.plan.max_connections
        if self.stopping or len(self.conns) + self.connecting >= cap:
            return
        self.connecting += 1
        task = self.loop.create_task(self._open())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self) -> None:
        # ``connecting`` drops in connected() (the protocol's connection_made), not here: the
        # connection may already be used and even lost before create_connection returns.
        try:
            async with self.gate:
                if self.stopping:
                    self.connecting -= 1
                    return
                # asyncio.timeout, not wait_for: wait_for wraps the connect in a second task,
                # a cost paid per request against servers that close every connection
                async with asyncio.timeout(self.plan.timeout_ns / NS_PER_S):
                    await self.loop.create_connection(lambda: self.conn_class(self),
                                                      self.plan.host, self.plan.port)
        except (TimeoutError, OSError):
            self.connecting -= 1
            self.connect_failures += 1
            self.count_error("connect", time.monotonic_ns())
            if not self.stopping:
                self.loop.call_later(RECONNECT_DELAY_S, self.reopen)  # checks stopping

    def reopen(self) -> None:
        """Re-open a connection if this load model still wants one."""
        if self.stopping:
            return
        if self.closed_loop:
            if not self.started or time.monotonic_ns() < self.m1:
                self.open()
            return
        # Open loop: only for a request waiting for a connection (or before the start). A
        # spare connection opened ahead of need is worse than useless against a server that
        # closes after every answer (gunicorn's sync worker, uWSGI's http-socket): a worker
        # accepts it and blocks reading a request that goes out on another connection.
        wanted = bool(self.queue) or not self.started
        if wanted and self.connecting < max(1, len(self.queue)):
            self.open()

    def connected(self, conn: _Conn) -> None:
        self.connecting -= 1
        if self.stopping:
            conn.dead = True
            conn.transport.abort()  # type: ignore[union-attr]
            return
        self.conns.add(conn)
        self.peak_connections = max(self.peak_connections, len(self.conns))
        self.idle(conn, time.monotonic_ns())

    def idle(self, conn: _Conn, now: int) -> None:
        if self.closed_loop:
            if self.started and now < self.m1:
                self.send(conn, now, now, NOT_GENERATOR)
            else:
                self.idle_conns.append(conn)
            return
        if self.queue:
            due, cause = self.queue.popleft()
            self.send(conn, due, now, cause)
        else:
            self.idle_conns.append(conn)

    def send(self, conn: _Conn, due: int, now: int, cause: int = GENERATOR_LATE) -> None:
        conn.due_ns = due
        conn.sent_ns = now
        conn.busy = conn.fresh = True
        self.busy += 1
        late = now - due
        if late > BEHIND_THRESHOLD_NS and self.m0 <= due < self.m1:
            self.behind += 1
            if cause != NOT_GENERATOR:
                self.behind_generator += 1
                if cause == AT_CAP:
                    self.behind_at_cap += 1
        if late > self.late_max_ns and self.m0 <= due < self.m1:
            self.late_max_ns = late
        conn.transport.write(self.request)  # type: ignore[union-attr]

    def lost(self, conn: _Conn) -> None:
        if conn.dead:
            return
        if conn.busy and conn.fresh and conn.reused and self.idempotent:
            # RFC 9112 9.3.1: a server may close a persistent connection at any time (uWSGI's
            # http-socket does after every answer, without "Connection: close"). A request that
            # got no byte back on a reused connection was not processed; an idempotent one is
            # sent again on a new connection, as HTTP clients do. In open loop it keeps its due
            # time, so the extra round trip shows in its latency.
            conn.busy = False
            self.busy -= 1
            self._drop(conn, None)
            self.resent += 1
            if not self.closed_loop:
                self.queue.appendleft((conn.due_ns, NOT_GENERATOR))
            self.reopen()
            return
        self._drop(conn, "io")
        self.reopen()

    def retire(self, conn: _Conn, kind: str | None, *, abort: bool = False) -> None:
        """Close a connection we will not use again (error, timeout, or Connection: close)."""
        if conn.dead:
            return
        self._drop(conn, kind)
        transport = conn.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self.reopen()

    def _drop(self, conn: _Conn, kind: str | None) -> None:
        conn.dead = True
        self.conns.discard(conn)
        if conn.busy:
            conn.busy = False
            self.busy -= 1
            if kind is not None:
                self.count_error(kind, conn.due_ns)
        else:
            with contextlib.suppress(ValueError):
                self.idle_conns.remove(conn)

    def count_error(self, kind: str, t_ns: int) -> None:
        if self.m0 <= t_ns < self.m1:
            self.errors[kind] += 1
            self.err_sec[(t_ns - self.m0) // NS_PER_S] += 1

    async def connect(self) -> int:
        """Open the initial connections (before the clock starts); return how many are up."""
        want = self.plan.concurrency if self.plan.concurrency is not None else min(
            OPEN_LOOP_INITIAL_CONNECTIONS, self.plan.max_connections)
        for _ in range(want):
            self.open()
        deadline = time.monotonic() + INITIAL_CONNECT_WAIT_S
        # stop waiting at the deadline, or once nothing is in progress after a failure
        while len(self.conns) < want and time.monotonic() < deadline \
                and not (self.connecting == 0 and self.connect_failures):
            await asyncio.sleep(0.005)
        return len(self.conns)

    # -- the run ---------------------------------------------------------------------------

    async def run(self, start_ns: int) -> WorkerReport:
        plan = self.plan
        window = Window(start_ns=start_ns, m0_ns=start_ns + plan.warmup_ns,
                        m1_ns=start_ns + plan.warmup_ns + plan.duration_ns)
        seconds = window.seconds
        self.lat_book = SecondBook(seconds)
        self.lat = self.lat_book.buckets
        if not self.closed_loop:
            self.svc_book = SecondBook(seconds)
            self.svc = self.svc_book.buckets
        self.err_sec = [0] * seconds
        self.done_sec = [0] * seconds
        self.m0, self.m1 = window.m0_ns, window.m1_ns
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS_PER_S))

        self.started = True
        self._at(self.m0, self._mark_start)
        self._at(self.m1, self._mark_end)
        self.handles.append(self.loop.call_later(FLUSH_INTERVAL_S, self._flush_tick))
        self.handles.append(self.loop.call_later(self._sweep_interval_s(), self._sweep))
        now = time.monotonic_ns()
        if self.closed_loop:
            ready, self.idle_conns = self.idle_conns, deque()
            for conn in ready:
                self.send(conn, now, now, NOT_GENERATOR)
            for _ in range(len(self.conns) + self.connecting, plan.concurrency or 0):
                self.open()  # replace connections that failed before the start
        else:
            assert plan.rate is not None
            self.schedule = OpenLoopSchedule(start_ns=start_ns, end_ns=self.m1, rate=plan.rate,
                                             proc=plan.proc, procs=plan.procs)
            self.timer = PreciseTimer(self.loop, self._tick)
            self.precise_timer = self.timer.precise
            self.timer.at(start_ns)
        hard_limit_s = (self.m1 - now) / NS_PER_S + plan.timeout_ns / NS_PER_S \
            + 2 * DRAIN_MARGIN_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.done), hard_limit_s)
        return await self._finish()

    def _at(self, when_ns: int, callback: object) -> None:
        delay = max(0.0, (when_ns - time.monotonic_ns()) / NS_PER_S)
        self.handles.append(self.loop.call_later(delay, callback))  # type: ignore[arg-type]

    def _mark_start(self) -> None:
        self.t_cpu0 = time.monotonic_ns()
        self.cpu0 = time.process_time_ns()

    def _mark_end(self) -> None:
        self.t_cpu1 = time.monotonic_ns()
        self.cpu1 = time.process_time_ns()

    def _tick(self) -> None:
        schedule = self.schedule
        if schedule is None or self.stopping:
            return
        now = time.monotonic_ns()
        m0, m1 = self.m0, self.m1
        idle_conns = self.idle_conns
        for due in schedule.take_due(now):
            if m0 <= due < m1:
                self.scheduled += 1
            if idle_conns:
                self.send(idle_conns.popleft(), due, now)
            else:
                at_cap = len(self.conns) + self.connecting >= self.plan.max_connections
                if at_cap:
                    cause = AT_CAP
                elif now - due > BEHIND_THRESHOLD_NS:
                    cause = GENERATOR_LATE
                else:
                    cause = NOT_GENERATOR  # it only waits for a connection being opened
                self.queue.append((due, cause))
                if self.connecting < len(self.queue):
                    self.open()
        nxt = schedule.next_due_ns()
        if nxt is not None and self.timer is not None:
            self.timer.at(max(nxt, now + SCHEDULER_MIN_TICK_NS))

    def _sweep_interval_s(self) -> float:
        return min(SWEEP_MAX_S, max(SWEEP_MIN_S, self.plan.timeout_ns / NS_PER_S / 10))

    def _sweep(self) -> None:
        if self.stopping:
            return
        now = time.monotonic_ns()
        limit = now - self.plan.timeout_ns
        if self.busy:
            for conn in [c for c in self.conns if c.busy and c.sent_ns < limit]:
                self.retire(conn, "timeout", abort=True)
        queue = self.queue
        while queue and queue[0][0] < limit:
            self.count_error("timeout", queue.popleft()[0])
        schedule_over = self.closed_loop or (self.schedule is not None
                                             and self.schedule.finished)
        if now >= self.m1 and schedule_over:
            drained = self.busy == 0 and not queue
            if drained or now >= self.m1 + self.plan.timeout_ns + int(DRAIN_MARGIN_S * NS_PER_S):
                if not self.done.done():
                    self.done.set_result(None)
                return
        interval = DRAIN_SWEEP_S if now >= self.m1 else self._sweep_interval_s()
        self.handles.append(self.loop.call_later(interval, self._sweep))

    def _flush_tick(self) -> None:
        if self.stopping:
            return
        self.lat_book.flush()
        if self.svc_book is not None:
            self.svc_book.flush()
        self.handles.append(self.loop.call_later(FLUSH_INTERVAL_S, self._flush_tick))

    async def _finish(self) -> WorkerReport:
        self.stopping = True
        if self.timer is not None:
            self.timer.close()
        for handle in self.handles:
            handle.cancel()
        if self.t_cpu1 == 0:
            self._mark_end()
        # whatever measured is still outstanding was not answered in time
        for conn in list(self.conns):
            if conn.busy:
                conn.busy = False
                self.busy -= 1
                self.count_error("timeout", conn.due_ns)
            conn.dead = True
            if conn.transport is not None:
                conn.transport.abort()
        while self.queue:
            self.count_error("timeout", self.queue.popleft()[0])
        self.conns.clear()
        self.idle_conns.clear()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0)  # let the aborted transports call connection_lost
        self.lat_book.flush()
        if self.svc_book is not None:
            self.svc_book.flush()
        return self._report()

    def _report(self) -> WorkerReport:
        book = self.lat_book
        second_requests = [
            (h.get_total_count() if h is not None else 0) + lost
            for h, lost in zip(book.per_second, book.out_of_range_per_second, strict=True)
        ]
        window_ns = max(1, self.t_cpu1 - self.t_cpu0) if self.t_cpu0 else max(
            1, self.m1 - self.m0)
        errors = dict(self.errors)
        errors["total"] = sum(self.errors.values())
        return WorkerReport(
            proc=self.plan.proc,
            requests=book.total.get_total_count() + book.out_of_range,
            errors=errors,
            latency_hdr=book.total.encode(),
            service_hdr=self.svc_book.total.encode() if self.svc_book is not None else None,
            out_of_range=book.out_of_range,
            second_requests=second_requests,
            second_completed=list(self.done_sec),
            second_errors=list(self.err_sec),
            second_latency_hdr=book.encoded_seconds(),
            behind=self.behind,
            behind_generator=self.behind_generator,
            behind_at_cap=self.behind_at_cap,
            completed=self.completed,
            resent=self.resent,
            window_start_ns=self.m0,
            window_end_ns=self.m1,
            scheduled=self.scheduled,
            cpu_s=(self.cpu1 - self.cpu0) / NS_PER_S if self.t_cpu0 else 0.0,
            window_s=window_ns / NS_PER_S,
            peak_connections=self.peak_connections,
            max_connections=self.plan.max_connections,
            precise_timer=self.precise_timer,
            late_max_ms=self.late_max_ns / 1e6,
        )
