"""A WebSocket connection of the pool: the RFC 6455 client of ``websocket.py`` with the pool's
bookkeeping, so the closed and open loops drive it as they drive an HTTP connection.

A "request" is one message round trip: a masked frame out, its echo back. The connection counts
as connected once the upgrade is accepted (a refused upgrade is a failed connect of kind
``status``). One message is in flight per connection, as one request is on an HTTP/1.1
connection; an echo that differs from what was sent counts as ``body``, a connection the server
closed under a message in flight as ``io``.
"""

from __future__ import annotations

from time import monotonic_ns

from harness.loadgen.accounting import Book
from harness.loadgen.histograms import NS_PER_S
from harness.loadgen.pool import Pool
from harness.loadgen.websocket import (
    ERROR_CLOSED,
    ERROR_CONNECT,
    ERROR_ECHO,
    ERROR_HANDSHAKE,
    ERROR_TIMEOUT,
    OP_BINARY,
    OP_TEXT,
    WsClientProtocol,
)

# The book's error kinds (shared with HTTP, so trials.csv has one set of columns) for each
# WebSocket failure: a refused upgrade is the server's answer ("status"), a wrong echo a wrong
# body, a close under a message in flight a broken connection ("io").
BOOK_KIND = {ERROR_CONNECT: "connect", ERROR_HANDSHAKE: "status", ERROR_CLOSED: "io",
             ERROR_TIMEOUT: "timeout", ERROR_ECHO: "body"}


class WsConnection(WsClientProtocol):
    """Carries the pool's per-connection state (see harness.loadgen.pool.Connection)."""

    def __init__(self, pool: Pool, *, host_header: str, path: str, text: bool) -> None:
        super().__init__(host_header, path)
        self.pool = pool
        self.book: Book = pool.book
        self.model = pool.model
        self.opcode = OP_TEXT if text else OP_BINARY
        self.message = pool.model.request
        self.due_ns = 0
        self.sent_ns = 0
        self.busy = False
        self.fresh = False
        self.reused = False
        self.dead = False

    def write(self, payload: bytes) -> None:
        self.transport.write(self.encoder.frame(self.opcode, payload))  # type: ignore[union-attr]

    def on_open(self) -> None:
        self.pool.connected(self)  # type: ignore[arg-type]

    def on_data(self, opcode: int, payload: bytes) -> None:
        now = monotonic_ns()
        if not self.busy:  # a message nobody asked for (a broadcast model overrides this)
            return
        self.busy = False
        self.reused = True
        self.pool.busy -= 1
        book = self.book
        due = self.due_ns
        if book.m0 <= due < book.m1 or book.m0 <= now < book.m1:
            if payload != self.message or opcode != self.opcode:
                if book.m0 <= due < book.m1:
                    book.count_error("body", due)
            else:
                if book.m0 <= now < book.m1:
                    book.completed += 1
                    book.done_sec[(now - book.m0) // NS_PER_S] += 1
                if book.m0 <= due < book.m1:
                    sec = (due - book.m0) // NS_PER_S
                    book.lat[sec].append(now - due)
                    svc = book.svc
                    if svc is not None:
                        svc[sec].append(now - self.sent_ns)
        self.model.ready(self, now)  # type: ignore[arg-type]

    def on_failed(self, kind: str, reason: str) -> None:
        if self.dead:  # the pool retired it (a timeout, the end of the run)
            return
        if not self.is_open:
            self.dead = True
            self.pool.connect_failed(BOOK_KIND.get(kind, "connect"), reason)
            return
        self.pool.drop(self, BOOK_KIND.get(kind, "io"))  # type: ignore[arg-type]
        self.model.replenish()

    def on_closed(self) -> None:
        self.on_failed(ERROR_CLOSED, "closed")
