"""WebSocket fan-out and idle connections.

``ws-broadcast``: S subscribers hold connections to ``/ws/broadcast?role=subscriber``; one
publisher (``role=publisher``) sends a message every 1/R seconds; the app sends each to every
subscriber on the publisher's worker process. Each message carries its sequence number and its
intended send time, so a delivery's latency is timed from when the message was due (as in the
open loop), at each subscriber. A broadcast does not cross worker processes without a broker:
before the clock starts a probe message finds the subscribers that share the publisher's
worker, and only those are expected to receive anything (the others are reported, never counted
as lost). Throughput is deliveries per second; deliveries expected but missing at the end are
counted as timeouts.

``ws-idle``: N connections opened and held without a message; the trial says how many the
server still held at the end, and the runner turns its memory into bytes per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from harness.loadgen.accounting import GENERATOR_LATE, Book
from harness.loadgen.connection import Connection
from harness.loadgen.histograms import NS_PER_S
from harness.loadgen.models.base import WorkerPlan
from harness.loadgen.models.closed import ClosedLoop
from harness.loadgen.models.open import Paced
from harness.loadgen.models.ws import ws_factory
from harness.loadgen.pool import Pool
from harness.loadgen.spec import BROADCAST_HEADER_BYTES
from harness.loadgen.wsconn import WsConnection

# A message: 8 bytes of sequence number, 8 of intended send time (monotonic ns), then padding.
HEADER_BYTES = BROADCAST_HEADER_BYTES
PROBE_SEQ = (1 << 64) - 1  # the probe's sequence number: never a real message's
PROBE_WAIT_S = 2.0  # how long the probe may take to reach every subscriber
SUBSCRIBER_ROLE = "role=subscriber"
PUBLISHER_ROLE = "role=publisher"


def _with_role(path: str, role: str) -> str:
    base, _, query = path.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("role=")]
    return f"{base}?{'&'.join([*kept, role])}"


class Subscriber(WsConnection):
    """Records every delivery: latency from the message's intended send time."""

    def __init__(self, pool: Pool, model: WsBroadcast) -> None:
        plan = model.plan
        super().__init__(pool, host_header=plan.host_header,
                         path=_with_role(plan.path, SUBSCRIBER_ROLE), text=plan.text)
        self.broadcast = model
        self.reachable = False

    def on_data(self, opcode: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        seq = int.from_bytes(payload[:8], "little")
        if seq == PROBE_SEQ:
            self.reachable = True
            self.broadcast.probe_seen(self)
            return
        if not self.reachable:
            return  # not counted: it could not be expected (it missed the probe)
        due = int.from_bytes(payload[8:16], "little")
        book = self.book
        if book.m0 <= due < book.m1:
            sec = (due - book.m0) // NS_PER_S
            book.lat[sec].append(now - due)
            self.broadcast.delivered_due += 1
        if book.m0 <= now < book.m1:
            book.completed += 1
            book.done_sec[(now - book.m0) // NS_PER_S] += 1


class Publisher(WsConnection):
    """Sends; expects nothing back (the app never echoes to a publisher)."""

    def __init__(self, pool: Pool, model: WsBroadcast) -> None:
        plan = model.plan
        super().__init__(pool, host_header=plan.host_header,
                         path=_with_role(plan.path, PUBLISHER_ROLE), text=plan.text)

    def on_data(self, opcode: int, payload: bytes) -> None:
        self.book.count_error("body", time.monotonic_ns())  # the app must not answer


class WsBroadcast(Paced):
    """One publisher at ``rate`` messages/s, ``concurrency`` subscribers."""

    name = "ws-broadcast"

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop, book: Book) -> None:
        self.publisher: Publisher | None = None
        self._publisher_wanted = True
        super().__init__(plan, loop, book)
        self.subscribers: list[Subscriber] = []
        self.reached = 0
        self.probe_done: asyncio.Future[None] = loop.create_future()
        self.seq = 0  # the next message's sequence number
        self.sent_due = 0  # messages due in the window that went out
        self.delivered_due = 0  # deliveries of those
        self.padding = b"\0" * max(0, len(plan.request) - HEADER_BYTES)

    def connection_factory(self) -> Callable[[Pool], Connection]:
        def factory(pool: Pool) -> Connection:
            if self._publisher_wanted:
                self._publisher_wanted = False
                conn: WsConnection = Publisher(pool, self)
            else:
                conn = Subscriber(pool, self)
            return conn
        return factory

    def cap(self) -> int:
        return (self.plan.concurrency or 0) + 1

    def initial_connections(self) -> int:
        return self.cap()

    def ready(self, conn: Connection, now: int) -> None:
        if isinstance(conn, Publisher):
            self.publisher = conn
        elif isinstance(conn, Subscriber) and conn not in self.subscribers:
            self.subscribers.append(conn)

    def replenish(self) -> None:
        if self.publisher is not None and self.publisher.dead:
            self.publisher = None
            self._publisher_wanted = True
        if not self.pool.stopping and not self.started:
            self.pool.open()  # once measuring, a lost subscriber is reported, not replaced

    def probe_seen(self, conn: Subscriber) -> None:
        self.reached += 1
        if self.reached >= len(self.subscribers) and not self.probe_done.done():
            self.probe_done.set_result(None)

    async def prepare(self) -> None:
        """Before the clock: find the subscribers that share the publisher's worker."""
        if self.publisher is None or not self.subscribers:
            return
        self.publisher.write(self._message(PROBE_SEQ, time.monotonic_ns()))
        try:
            async with asyncio.timeout(PROBE_WAIT_S):
                await asyncio.shield(self.probe_done)
        except TimeoutError:
            pass
        self.notes.append(
            f"broadcast: {self.reached} of {len(self.subscribers)} subscribers shared the "
            "publisher's server worker process and were expected to receive each message (a "
            "broadcast does not cross worker processes without a broker)")

    def _message(self, seq: int, due: int) -> bytes:
        return seq.to_bytes(8, "little") + due.to_bytes(8, "little") + self.padding

    def dispatch(self, due: int, now: int) -> None:
        publisher, book = self.publisher, self.book
        in_window = book.m0 <= due < book.m1
        seq, self.seq = self.seq, self.seq + 1
        if publisher is None or publisher.dead:
            if in_window:
                book.count_error("io", due)  # the publisher's connection is gone
            return
        book.sent_late(due, now, GENERATOR_LATE)
        if in_window:
            self.sent_due += 1
        publisher.write(self._message(seq, due))

    def waiting(self) -> int:
        """Deliveries still expected: the drain waits for them (bounded by the timeout)."""
        return max(0, self.sent_due * self.reached - self.delivered_due)

    def close(self) -> None:
        super().close()
        lost = max(0, self.sent_due * self.reached - self.delivered_due)
        if lost:
            self.book.errors["timeout"] += lost  # by message, not by second: not in err_sec
        expected = self.sent_due * self.reached
        if expected:
            self.notes.append(f"broadcast: {self.delivered_due} of {expected} expected "
                              f"deliveries arrived ({self.delivered_due / expected:.2%})")


class WsIdle(ClosedLoop):
    """``concurrency`` connections opened, then held without a message."""

    name = "ws-idle"

    def connection_factory(self) -> Callable[[Pool], Connection]:
        return ws_factory(self)

    def start(self, start_ns: int) -> None:
        self.started = True

    def ready(self, conn: Connection, now: int) -> None:
        self.pool.idle.append(conn)

    def replenish(self) -> None:
        if not self.started and not self.pool.stopping:
            self.pool.open()

    def close(self) -> None:
        self.notes.append(f"idle: the server held {len(self.pool.conns)} of {self.cap()} "
                          "connections to the end")
