"""What a connection of the pool is, and what it may call: the seam between the connections
(``httpconn``, ``rawconn``, ``wsconn``), the pool that opens them (``pool``) and the load model
that drives them (``models/``).

Connections import only this module: the pool and the model each reach them as an object passed
in (:class:`ConnectionPool`, :class:`LoadModelHooks`), never as an import, so neither the pool
nor a model is imported by what it opens. The pool imports the connections it opens itself
(``rawconn``) and this module; a load model imports the pool and the connections it chooses.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from harness.loadgen.accounting import Book


class LoadModelHooks(Protocol):
    """The load model as the pool and its connections call it (harness.loadgen.models.base's
    LoadModel is one)."""

    request: bytes  # HTTP: the encoded request; WebSocket: one message's payload
    expect_body: bytes | None
    may_resend: bool  # a request the server never answered may be sent again
    notes: list[str]  # what the model tells the result about the run

    def ready(self, conn: Connection, now: int) -> None:
        """A connection is free (new, or its answer is complete): send on it, or idle it."""

    def replenish(self) -> None:
        """A connection was lost or failed to open: open another if the model wants one."""

    def resend(self, due_ns: int, book: Book) -> None:
        """The request due at ``due_ns`` must go out again (its connection was closed);
        ``book``: where it was counted (its kind's, in a request mix)."""


class ConnectionPool(Protocol):
    """The pool as its connections (and its plain-socket connector, ``rawconn``) call it
    (harness.loadgen.pool's Pool is one)."""

    loop: asyncio.AbstractEventLoop
    book: Book
    model: LoadModelHooks
    busy: int  # requests in flight over all connections
    stopping: bool
    connect_timeout_s: float

    def connected(self, conn: Connection) -> None:
        """``conn`` is open (a WebSocket: its upgrade was accepted)."""

    def connect_failed(self, kind: str, reason: str) -> None:
        """A connection asked for could not be opened (TCP, or a protocol's handshake)."""

    def first_answer(self, conn: Connection | None, closed: bool) -> None:
        """``conn``'s first answer is complete; ``closed``: the server closed it then."""

    def lost(self, conn: Connection) -> None:
        """The server (or the network) closed a connection."""

    def retire(self, conn: Connection, kind: str | None, *, abort: bool = False) -> None:
        """Close a connection we will not use again (error, timeout, or Connection: close)."""

    def drop(self, conn: Connection, kind: str | None) -> None:
        """Forget a connection; its request in flight, if any, counts as an error of ``kind``."""


class Connection(asyncio.Protocol):
    """What every connection of the pool carries; subclasses speak a protocol.

    ``busy``: a request (or message) is in flight; ``due_ns`` its intended send time (closed
    loop: its send time) and ``sent_ns`` the actual one; ``fresh``: no byte of its answer has
    arrived yet; ``reused``: this connection has carried a complete answer before.
    """

    __slots__ = ("book", "busy", "dead", "due_ns", "fresh", "model", "one_answer", "pool",
                 "reused", "sent_ns", "transport")

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.book = pool.book
        self.model = pool.model
        self.transport: asyncio.Transport | None = None
        self.due_ns = 0
        self.sent_ns = 0
        self.busy = False
        self.fresh = False
        self.reused = False
        self.one_answer = False  # kept open after its first answer, and has carried no other
        self.dead = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pool.connected(self)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the accounting

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)

    def write(self, data: bytes) -> None:
        """Send one request or message (already encoded)."""
        self.transport.write(data)  # type: ignore[union-attr]
