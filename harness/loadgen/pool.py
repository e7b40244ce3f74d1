"""The connection pool of one generator process: opening, idling, losing and retiring
connections, whatever protocol they speak and whatever load model drives them.

Connects run on a few long-lived connector tasks (at most CONNECT_PARALLELISM) that take
requests for a connection from a counter; a connector with nothing to do parks on a future.
A reconnect therefore costs no new Task and no semaphore. Against servers that close every
connection (gunicorn's sync worker, uWSGI's http-socket) there is one reconnect per request:
once the pool has seen that (ONE_SHOT_EVIDENCE first answers each followed by the server's
close), it opens HTTP connections on plain non-blocking sockets instead (``rawconn``): with no
coroutine, transport or callback per connect, uWSGI's hello at 16 connections went from 0.84x
to 0.92x wrk's rate (benchmarks/loadgen_vs_wrk.py).

The pool knows its connections and its load model by what ``connection`` says of them (the
``Connection`` base class, ``LoadModelHooks``); they reach it as the object passed to them
(``connection.ConnectionPool``), never by importing this module.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from harness.loadgen import rawconn
from harness.loadgen.accounting import Book
from harness.loadgen.connection import Connection, LoadModelHooks

CONNECT_PARALLELISM = 256  # simultaneous connects, so 10k connections don't flood the backlog
RECONNECT_DELAY_S = 0.01  # pause before re-opening after a failed connect (bounds the retry rate)
# Connections closed by the server right after their first answer before the pool opens its
# HTTP connections on plain sockets (rawconn); and at most one in KEPT_PER_CLOSED_MAX of the
# first answers may have kept its connection (a server that keeps some alive stays on asyncio).
ONE_SHOT_EVIDENCE = 32
KEPT_PER_CLOSED_MAX = 0.1


class Pool:
    """Opens connections on demand up to ``cap`` and tells the load model when one is free."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, host: str, port: int,
                 factory: Callable[[Pool], Connection], cap: int, connect_timeout_s: float,
                 book: Book, model: LoadModelHooks) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.factory = factory
        self.cap = cap
        self.connect_timeout_s = connect_timeout_s
        self.book = book
        self.model = model  # the load model that drives the pool
        self.conns: set[Connection] = set()
        # oldest first: a connection a server worker has accepted and is waiting on is used
        # before newer ones (wrk2 likewise goes round its connections)
        self.idle: deque[Connection] = deque()
        self.busy = 0
        self.connecting = 0  # asked for, not yet connected (queued or in progress)
        self.pending = 0  # asked for, not yet taken by a connector
        self.peak = 0
        self.connect_failures = 0
        self.last_failure = ""  # why the last connect failed, for an error that says so
        self.stopping = False
        self.first_closed = 0  # first answers the server closed the connection after
        self.first_kept = 0  # first answers after which the connection stayed open
        self.raw: rawconn.RawSockets | None = None  # set once the server closes every connection
        self._parked: deque[asyncio.Future[None]] = deque()
        self._connectors: set[asyncio.Task[None]] = set()
        self._connecting_since: dict[asyncio.Task[Any], int] = {}  # connector -> its start

    @property
    def at_cap(self) -> bool:
        return len(self.conns) + self.connecting >= self.cap

    def open(self) -> None:
        """Ask for one more connection, unless stopping or at the cap."""
        if self.stopping or self.at_cap:
            return
        self.connecting += 1
        if self.raw is not None:
            self.raw.connect()
            return
        self.pending += 1
        while self._parked:
            waiter = self._parked.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if len(self._connectors) < CONNECT_PARALLELISM:
            task = self.loop.create_task(self._connector())
            self._connectors.add(task)
            task.add_done_callback(self._connectors.discard)
        # else: a busy connector takes it when its connect is done

    async def _connector(self) -> None:
        loop = self.loop
        task = asyncio.current_task()
        assert task is not None
        make = self._make_protocol
        while not self.stopping:
            if not self.pending:
                waiter = loop.create_future()
                self._parked.append(waiter)
                await waiter
                continue
            self.pending -= 1
            # ``connecting`` drops in connected() (the protocol's connection_made), not here:
            # the connection may already be used and even lost before create_connection returns.
            # The connect's timeout is the sweep's (sweep_timeouts cancels it), not a timer per
            # connect: against servers that close every connection that is one per request.
            self._connecting_since[task] = time.monotonic_ns()
            try:
                await loop.create_connection(make, self.host, self.port)
            except OSError as exc:
                self.connect_failed("connect", str(exc) or type(exc).__name__)
            except asyncio.CancelledError:
                if self.stopping:
                    raise
                task.uncancel()  # the sweep's doing: a timeout, and the connector goes on
                self.connect_failed("connect", f"no connection within "
                                    f"{self.connect_timeout_s:g}s")
            finally:
                self._connecting_since.pop(task, None)

    def first_answer(self, conn: Connection | None, closed: bool) -> None:
        """``conn``'s first answer is complete; ``closed``: the server closed it then. (None:
        a connection already closed, which only counts: the switch needs the address an
        open one reached.)"""
        if closed:
            self.first_closed += 1
        else:
            self.first_kept += 1
        if self.raw is None and conn is not None and self.first_closed >= ONE_SHOT_EVIDENCE \
                and self.first_kept <= KEPT_PER_CLOSED_MAX * self.first_closed \
                and not self.stopping:
            peer = conn.transport.get_extra_info("peername") if conn.transport else None
            if not rawconn.AVAILABLE or not peer:
                return
            self.raw = rawconn.RawSockets(self, CONNECT_PARALLELISM, peer)
            self.model.notes.append(
                f"the server closed {self.first_closed} connections after their first answer: "
                f"further connections were opened on plain non-blocking sockets (a connect "
                f"per request costs less Python there)")

    def _make_protocol(self) -> Connection:
        return self.factory(self)

    def connect_failed(self, kind: str, reason: str) -> None:
        """A connection asked for could not be opened (TCP, or a protocol's handshake)."""
        self.last_failure = reason
        self.connecting -= 1
        self.connect_failures += 1
        self.book.count_error(kind, time.monotonic_ns())
        if not self.stopping:
            # after a pause (bounds the retry rate); the model decides whether it still wants one
            self.loop.call_later(RECONNECT_DELAY_S, self.model.replenish)

    def connected(self, conn: Connection) -> None:
        self.connecting -= 1
        if self.stopping:
            conn.dead = True
            conn.transport.abort()  # type: ignore[union-attr]
            return
        self.conns.add(conn)
        if len(self.conns) > self.peak:
            self.peak = len(self.conns)
        self.model.ready(conn, time.monotonic_ns())

    def take_idle(self) -> Connection | None:
        return self.idle.popleft() if self.idle else None

    def lost(self, conn: Connection) -> None:
        """The server (or the network) closed a connection."""
        if conn.dead:
            return
        if conn.one_answer:  # the server closed it after all, after its only answer
            conn.one_answer = False
            self.first_kept -= 1
            self.first_answer(None, True)
        if conn.busy and conn.fresh and conn.reused and self.model.may_resend:
            # RFC 9112 9.3.1: a server may close a persistent connection at any time (uWSGI's
            # http-socket does after every answer, without "Connection: close"). A request that
            # got no byte back on a reused connection was not processed; an idempotent one is
            # sent again on a new connection, as HTTP clients do. In open loop it keeps its due
            # time, so the extra round trip shows in its latency.
            due = conn.due_ns
            self.drop(conn, None)
            self.book.resent += 1
            self.model.resend(due, conn.book)
        else:
            self.drop(conn, "io")
        self.model.replenish()

    def retire(self, conn: Connection, kind: str | None, *, abort: bool = False) -> None:
        """Close a connection we will not use again (error, timeout, or Connection: close)."""
        if conn.dead:
            return
        self.drop(conn, kind)
        transport = conn.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self.model.replenish()

    def drop(self, conn: Connection, kind: str | None) -> None:
        """Forget a connection; its request in flight, if any, counts as an error of ``kind``."""
        conn.dead = True
        self.conns.discard(conn)
        if conn.busy:
            conn.busy = False
            self.busy -= 1
            if kind is not None:
                conn.book.count_error(kind, conn.due_ns)  # its kind's book, in a mix
        elif self.idle and conn in self.idle:  # no exception raised per retired connection
            self.idle.remove(conn)

    def sweep_timeouts(self, limit_ns: int, connect_limit_ns: int | None = None) -> None:
        """Abort connections whose request was sent before ``limit_ns`` (a timeout each), and
        cancel connects started before ``connect_limit_ns`` (a failed connect each)."""
        if connect_limit_ns is not None:
            for task, since in list(self._connecting_since.items()):
                if since < connect_limit_ns:
                    task.cancel()
            if self.raw is not None:
                self.raw.expire_connects(connect_limit_ns)
        if self.busy:
            for conn in [c for c in self.conns if c.busy and c.sent_ns < limit_ns]:
                self.retire(conn, "timeout", abort=True)

    async def wait_initial(self, want: int, deadline_s: float) -> int:
        """Wait until ``want`` connections are up, the deadline passes, or connects fail."""
        deadline = time.monotonic() + deadline_s
        while len(self.conns) < want and time.monotonic() < deadline \
                and not (self.connecting == 0 and self.connect_failures):
            await asyncio.sleep(0.005)
        return len(self.conns)

    async def close(self) -> None:
        """Abort every connection; whatever was in flight counts as a timeout."""
        self.stopping = True
        for conn in list(self.conns):
            if conn.busy:
                conn.busy = False
                self.busy -= 1
                conn.book.count_error("timeout", conn.due_ns)
            conn.dead = True
            if conn.transport is not None:
                conn.transport.abort()
        self.conns.clear()
        self.idle.clear()
        if self.raw is not None:
            self.raw.close()
        for waiter in self._parked:
            if not waiter.done():
                waiter.set_result(None)
        for task in list(self._connectors):
            task.cancel()
        await asyncio.sleep(0)  # let the aborted transports call connection_lost
