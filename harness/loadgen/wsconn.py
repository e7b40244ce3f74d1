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

from harness.loadgen.connection import Connection, ConnectionPool
from harness.loadgen.websocket import (
    ERROR_CLOSED,
    ERROR_CONNECT,
    ERROR_ECHO,
    ERROR_HANDSHAKE,
    ERROR_TIMEOUT,
    OP_BINARY,
    OP_TEXT,
)
from harness.loadgen.wsprotocol import WsClientProtocol

# The book's error kinds (shared with HTTP, so trials.csv has one set of columns) for each
# WebSocket failure: a refused upgrade is the server's answer ("status"), a wrong echo a wrong
# body, a close under a message in flight a broken connection ("io").
BOOK_KIND = {ERROR_CONNECT: "connect", ERROR_HANDSHAKE: "status", ERROR_CLOSED: "io",
             ERROR_TIMEOUT: "timeout", ERROR_ECHO: "body"}


class WsConnection(WsClientProtocol, Connection):
    """The RFC 6455 client (its protocol callbacks first in the MRO) with the pool's
    per-connection state (Connection's)."""

    def __init__(self, pool: ConnectionPool, *, host_header: str, path: str, text: bool) -> None:
        WsClientProtocol.__init__(self, host_header, path)
        Connection.__init__(self, pool)
        self.opcode = OP_TEXT if text else OP_BINARY
        self.message = pool.model.request

    def write(self, payload: bytes) -> None:
        self.transport.write(self.encoder.frame(self.opcode, payload))  # type: ignore[union-attr]

    def on_open(self) -> None:
        self.pool.connected(self)

    def on_data(self, opcode: int, payload: bytes) -> None:
        now = monotonic_ns()
        if not self.busy:  # a message nobody asked for (a broadcast model overrides this)
            return
        self.busy = False
        self.reused = True
        self.pool.busy -= 1
        wrong = payload != self.message or opcode != self.opcode
        self.book.answered(self.due_ns, self.sent_ns, now, "body" if wrong else None)
        self.model.ready(self, now)

    def on_failed(self, kind: str, reason: str) -> None:
        if self.dead:  # the pool retired it (a timeout, the end of the run)
            return
        if not self.is_open:
            self.dead = True
            self.pool.connect_failed(BOOK_KIND.get(kind, "connect"), reason)
            return
        self.pool.drop(self, BOOK_KIND.get(kind, "io"))
        self.model.replenish()

    def on_closed(self) -> None:
        self.on_failed(ERROR_CLOSED, "closed")
