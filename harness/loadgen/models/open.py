"""Open loop: request i is due at start + i/R whatever happened before it (wrk2's model).

Latency is timed from the intended send, so a stalled server cannot hide (coordinated
omission); the service time from the actual send is kept beside it. Connections are opened
only for requests that wait for one, up to the cap.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections import deque

from harness.loadgen.accounting import (
    AT_CAP,
    BEHIND_THRESHOLD_NS,
    GENERATOR_LATE,
    NOT_GENERATOR,
    Book,
)
from harness.loadgen.connection import Connection
from harness.loadgen.models.base import LoadModel, WorkerPlan
from harness.loadgen.schedule import OpenLoopSchedule
from harness.loadgen.timer import PreciseTimer

# The scheduler wakes at most this often; requests due in between go out together.
SCHEDULER_MIN_TICK_NS = 50_000
# The rate rises from 0 over this share of the warm-up, then holds for the rest of it, so the
# measured window starts at the full rate on a server that reached it gradually
# (harness.loadgen.schedule).
RAMP_SHARE_OF_WARMUP = 0.5
OPEN_LOOP_INITIAL_CONNECTIONS = 16


class Paced(LoadModel):
    """Requests (or messages) due at start + i/R, this process's share of the one schedule,
    handed to ``dispatch`` by a tick that a timerfd wakes (uvloop's timers only resolve to
    whole milliseconds)."""

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop, book: Book) -> None:
        super().__init__(plan, loop, book)
        self.schedule: OpenLoopSchedule | None = None
        self.timer: PreciseTimer | None = None

    def start(self, start_ns: int) -> None:
        assert self.plan.rate is not None
        self.started = True
        self.schedule = OpenLoopSchedule(start_ns=start_ns, end_ns=self.book.m1,
                                         rate=self.plan.rate, proc=self.plan.proc,
                                         procs=self.plan.procs,
                                         ramp_ns=int(RAMP_SHARE_OF_WARMUP * self.plan.warmup_ns))
        self.timer = PreciseTimer(self.loop, self._tick)
        self.precise_timer = self.timer.precise
        self.timer.at(start_ns)

    @abc.abstractmethod
    def dispatch(self, due: int, now: int) -> None:
        """The request due at ``due`` goes out (or waits) now."""

    def _tick(self) -> None:
        schedule = self.schedule
        if schedule is None or self.pool.stopping:
            return
        now = time.monotonic_ns()
        book = self.book
        m0, m1 = book.m0, book.m1
        for due in schedule.take_due(now):
            if m0 <= due < m1:
                book.scheduled += 1
            self.dispatch(due, now)
        nxt = schedule.next_due_ns()
        if nxt is not None and self.timer is not None:
            self.timer.at(max(nxt, now + SCHEDULER_MIN_TICK_NS))

    def schedule_over(self) -> bool:
        return self.schedule is not None and self.schedule.finished

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()


class OpenLoop(Paced):
    name = "open"

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop, book: Book) -> None:
        super().__init__(plan, loop, book)
        # (due time, cause, kind) of requests waiting for a connection; the generator's fault
        # when it was already late (GENERATOR_LATE) or every connection was in use (AT_CAP).
        # A mix's kind is drawn when the request is due, so one that times out waiting
        # counts against its kind.
        self.queue: deque[tuple[int, int, int]] = deque()

    def cap(self) -> int:
        return self.plan.max_connections

    def initial_connections(self) -> int:
        return min(OPEN_LOOP_INITIAL_CONNECTIONS, self.cap())

    def send_late(self, conn: Connection, due: int, now: int, cause: int, kind: int) -> None:
        self.book.sent_late(due, now, cause)
        self.send(conn, due, now, kind)

    def ready(self, conn: Connection, now: int) -> None:
        if self.queue:
            due, cause, kind = self.queue.popleft()
            self.send_late(conn, due, now, cause, kind)
        else:
            self.pool.idle.append(conn)

    def resend(self, due_ns: int, book: Book) -> None:
        self.queue.appendleft((due_ns, NOT_GENERATOR, self.kind_of(book)))

    def replenish(self) -> None:
        # Only for a request waiting for a connection (or before the start). A spare
        # connection opened ahead of need is worse than useless against a server that closes
        # after every answer (gunicorn's sync worker, uWSGI's http-socket): a worker accepts it
        # and blocks reading a request that goes out on another connection.
        pool = self.pool
        if pool.stopping:
            return
        wanted = bool(self.queue) or not self.started
        if wanted and pool.connecting < max(1, len(self.queue)):
            pool.open()

    def dispatch(self, due: int, now: int) -> None:
        pool = self.pool
        kind = self.pick()
        if pool.idle:
            self.send_late(pool.idle.popleft(), due, now, GENERATOR_LATE, kind)
            return
        if pool.at_cap:
            cause = AT_CAP
        elif now - due > BEHIND_THRESHOLD_NS:
            cause = GENERATOR_LATE
        else:
            cause = NOT_GENERATOR  # it only waits for a connection being opened
        self.queue.append((due, cause, kind))
        if pool.connecting < len(self.queue):
            pool.open()

    def waiting(self) -> int:
        return len(self.queue)

    def expire(self, limit_ns: int) -> None:
        queue = self.queue
        while queue and queue[0][0] < limit_ns:
            due, _, kind = queue.popleft()
            self.book_of(kind).count_error("timeout", due)

    def close(self) -> None:
        super().close()
        while self.queue:
            due, _, kind = self.queue.popleft()
            self.book_of(kind).count_error("timeout", due)
