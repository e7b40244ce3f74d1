"""An HTTP/1.1 keep-alive connection of the pool, parsed with httptools.

The hot path (``on_message_complete`` -> the load model's ``ready`` -> the next write) reads
the clock once, appends one int to a per-second sample array and writes a request that was
encoded once. No futures, tasks, timers or closures are created per request: timeouts are
found by a periodic sweep over the connections.
"""

from __future__ import annotations

import select
from time import monotonic_ns as time_ns

import httptools

from harness.loadgen.connection import Connection, ConnectionPool

# Methods a client may send again when the server closed the connection before answering.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
# A socket with something to read after a complete answer: the server's FIN (or bytes nobody
# asked for). Either way, not a connection to send the next request on.
_READABLE = select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR


def peer_closed(transport: object) -> bool:
    """Whether the peer has already closed (or sent more) on this idle connection: one poll(2)
    with no wait. Asyncio only learns of the FIN on its next turn, after we would have written.
    """
    poller = select.poll()
    poller.register(transport.get_extra_info("socket"), _READABLE)  # type: ignore[attr-defined]
    return bool(poller.poll(0))


class HttpConnection(Connection):
    """Counts each answer (status, body) into the book, then hands itself to the model."""

    __slots__ = ("body", "expect_body", "parser")

    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool)
        self.parser = httptools.HttpResponseParser(self)
        self.body: bytearray | None = None
        self.expect_body: bytes | None = None

    def data_received(self, data: bytes) -> None:
        self.fresh = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.pool.retire(self, "io")

    def on_message_complete(self) -> None:
        now = time_ns()
        if not self.busy:  # a response nobody asked for
            self.pool.retire(self, "io")
            return
        self.busy = False
        first = not self.reused
        self.reused = True
        self.pool.busy -= 1
        book = self.book
        due = self.due_ns
        if book.m0 <= due < book.m1 or book.m0 <= now < book.m1:
            status = self.parser.get_status_code()
            body = self.body
            book.answered(due, self.sent_ns, now,
                          "status" if not 200 <= status < 300
                          else "body" if body is not None
                          and body != self.expect_body  # type: ignore[comparison-overlap]
                          else None)
        if self.body is not None:
            self.body.clear()
        if first:
            # Servers that close every connection do not always say so (uWSGI's http-socket
            # answers HTTP/1.1 with no "Connection: close", then closes): a request written now
            # would go to a closed socket and come back as a reset, to be sent again. Asking
            # costs one syscall per connection, so only after its first answer: a server that
            # keeps connections alive pays it once per connection.
            closed = not self.parser.should_keep_alive() or peer_closed(self.transport)
            self.pool.first_answer(self, closed)
            if closed:
                self.pool.retire(self, None)
                return
            self.one_answer = True  # until a second answer: the close may still come
        else:
            self.one_answer = False
            if not self.parser.should_keep_alive():
                self.pool.retire(self, None)
                return
        self.model.ready(self, now)


class CheckingHttpConnection(HttpConnection):
    """Keeps the body to compare it; httptools only calls on_body on protocols that define it."""

    __slots__ = ()

    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool)
        self.body = bytearray()
        self.expect_body = pool.model.expect_body

    def on_body(self, data: bytes) -> None:
        self.body += data  # type: ignore[operator]


def http_connection_class(expect_body: bytes | None) -> type[HttpConnection]:
    return HttpConnection if expect_body is None else CheckingHttpConnection
