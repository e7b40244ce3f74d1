"""HTTP connections on plain non-blocking sockets, for servers that close every connection.

Against a server that answers once and closes (gunicorn's sync worker, uWSGI's http-socket)
the generator pays a TCP connect per request. Through asyncio that connect is a
``create_connection`` coroutine, a transport, a protocol and their callbacks: about 12 µs of
Python per request beside the kernel's 40 µs, where wrk spends 1.4 µs (perf on the generator's
CPU, uWSGI hello, 16 connections). Here a connect is two calls on a non-blocking socket,
watched by an epoll set of the pool's own; the event loop watches that set's descriptor (one
reader for all of them), so timers, the timeout sweep and the per-second book stay on the loop.

The pool switches to these connections once the server has closed ONE_SHOT_EVIDENCE connections
right after their first answer (``Pool.first_answer``). They stay HTTP/1.1 connections of the
pool: the same parser callbacks, the same book, the same load models, and a server that does
keep one alive gets its next request on it. uWSGI's hello at 16 connections went from 0.84x to
0.92x wrk's rate (benchmarks/loadgen_vs_wrk.py).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Any

from harness.loadgen.connection import ConnectionPool
from harness.loadgen.httpconn import HttpConnection

# Whether this platform has what the module needs (Linux: epoll and SOCK_NONBLOCK).
AVAILABLE = hasattr(select, "epoll") and hasattr(socket, "SOCK_NONBLOCK")
RECV_BYTES = 65_536
_OUT = select.EPOLLOUT if AVAILABLE else 0
_IN = select.EPOLLIN if AVAILABLE else 0
_FAILED = (select.EPOLLERR | select.EPOLLHUP) if AVAILABLE else 0


class RawSockets:
    """The pool's epoll set: starts connects, and dispatches what each socket is ready for."""

    def __init__(self, pool: ConnectionPool, parallel: int, address: tuple[Any, ...]) -> None:
        self.pool = pool
        self.parallel = parallel  # connects in progress at once (the pool's connect limit)
        # the peer address the pool's connections reached (no name is looked up per connect)
        self.address = address
        self.family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
        self.epoll = select.epoll()
        self.by_fd: dict[int, RawHttpConnection] = {}
        self.connecting: dict[RawHttpConnection, int] = {}  # -> connect start, monotonic ns
        self.queued = 0  # connects asked for beyond ``parallel``
        self.kind = raw_connection_class(pool.model.expect_body)
        pool.loop.add_reader(self.epoll.fileno(), self.dispatch)

    def connect(self) -> None:
        """Start one connect (the pool has counted it in ``connecting``)."""
        if len(self.connecting) >= self.parallel:
            self.queued += 1
            return
        sock = socket.socket(self.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        err = sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._connect_done()
            self.pool.connect_failed("connect", os.strerror(err))
            return
        conn = self.kind(self.pool, sock, self)
        self.by_fd[conn.fd] = conn
        self.connecting[conn] = time.monotonic_ns()
        # Level-triggered: writable once the handshake is done (or failed). (Probing with a
        # poll(2) right after connect() to skip this round was measured 10 % slower.)
        self.epoll.register(conn.fd, _OUT)

    def _connect_done(self) -> None:
        if self.queued and not self.pool.stopping:
            self.queued -= 1
            self.connect()

    def dispatch(self) -> None:
        """The epoll set is readable: handle every socket that is ready."""
        by_fd = self.by_fd
        for fd, events in self.epoll.poll(0):
            conn = by_fd.get(fd)
            if conn is None:
                continue
            if conn.opening:
                self._connected(conn, events)
            elif events & _OUT and conn.unsent:
                conn.flush()
            else:
                conn.readable()

    def _connected(self, conn: RawHttpConnection, events: int) -> None:
        del self.connecting[conn]
        conn.opening = False
        if events & _FAILED:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            conn.shut()
            self._connect_done()
            self.pool.connect_failed("connect", os.strerror(err) if err else "connection failed")
            return
        self.epoll.modify(conn.fd, _IN)
        self._connect_done()
        self.pool.connected(conn)  # the model sends its request at once

    def expire_connects(self, limit_ns: int) -> None:
        """Connects started before ``limit_ns`` fail (the pool's connect timeout)."""
        for conn, since in list(self.connecting.items()):
            if since < limit_ns:
                del self.connecting[conn]
                conn.shut()
                self._connect_done()
                self.pool.connect_failed("connect", f"no connection within "
                                         f"{self.pool.connect_timeout_s:g}s")

    def close(self) -> None:
        """Close every socket still open and stop watching the epoll set."""
        self.queued = 0
        for conn in list(self.by_fd.values()):
            conn.shut()
        self.connecting.clear()
        self.pool.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()


class RawHttpConnection(HttpConnection):
    """An HTTP/1.1 connection of the pool on a plain socket; it is its own ``transport``."""

    __slots__ = ("engine", "fd", "opening", "sock", "unsent")

    def __init__(self, pool: ConnectionPool, sock: socket.socket, engine: RawSockets) -> None:
        super().__init__(pool)
        self.sock = sock
        self.fd = sock.fileno()
        self.engine = engine
        self.opening = True
        self.unsent = b""
        self.transport = self  # type: ignore[assignment]

    # -- what the pool and the models call on a transport --

    def write(self, data: bytes) -> None:
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        if sent < len(data):  # a full send buffer: the rest when the socket is writable
            self.unsent = data[sent:]
            self.engine.epoll.modify(self.fd, _IN | _OUT)

    def close(self) -> None:
        self.shut()

    def abort(self) -> None:
        self.shut()

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "socket":
            return self.sock
        return self.sock.getpeername() if name == "peername" else default

    # -- what the epoll set calls --

    def flush(self) -> None:
        data, self.unsent = self.unsent, b""
        self.engine.epoll.modify(self.fd, _IN)
        self.write(data)

    def readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:  # a reset: the connection is gone, as at end of file
            data = b""
        if data:
            self.data_received(data)
        else:
            self._lost()

    def _lost(self) -> None:
        self.shut()
        self.pool.lost(self)  # as asyncio's connection_lost: resent, or an error, then replaced

    def shut(self) -> None:
        """Close the socket (closing it also takes it out of the epoll set); idempotent."""
        if self.engine.by_fd.get(self.fd) is self:
            del self.engine.by_fd[self.fd]
            self.sock.close()
            # no cycle left (parser <-> connection, transport = self): freed at once, no
            # garbage collection per connection
            self.transport = None
            self.parser = None  # type: ignore[assignment]


class CheckingRawHttpConnection(RawHttpConnection):
    """Keeps the body to compare it (see CheckingHttpConnection)."""

    __slots__ = ()

    def __init__(self, pool: ConnectionPool, sock: socket.socket, engine: RawSockets) -> None:
        super().__init__(pool, sock, engine)
        self.body = bytearray()
        self.expect_body = pool.model.expect_body

    def on_body(self, data: bytes) -> None:
        self.body += data  # type: ignore[operator]


def raw_connection_class(expect_body: bytes | None) -> type[RawHttpConnection]:
    # as http_connection_class: httptools calls on_body only on protocols that define it
    return RawHttpConnection if expect_body is None else CheckingRawHttpConnection
