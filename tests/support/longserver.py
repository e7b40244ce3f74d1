"""A tiny HTTP/1.1 server with known long-lived behaviour, to test the stream and slow-client
measurements (harness.loadgen.streams, harness.loadgen.slowclients).

``python -m tests.support.longserver --port 0 [--workers 3] [--header-timeout-s 1]`` prints
``URL http://127.0.0.1:<port>/`` once it listens; in a test, :class:`LongServer` runs it in a
thread of the test process, where its counters can be read::

    with LongServer(workers=3) as server:
        server.url, server.open_connections

Every answer closes its connection (``Connection: close``). Routes:

- ``GET /hello``: ``hello``.
- ``GET /stream?events=N&interval_ms=M``: ``text/event-stream``, chunked; event ``i`` (from 0)
  is written, one chunk each, ``i * M`` ms after the request (the first at once), then the last
  chunk. ``cut_after=K``: the connection is closed after K events, without the last chunk.
  ``framing=close``: no Transfer-Encoding, the body ends when the server closes.
- ``GET /stream-buffered?events=N&interval_ms=M``: the same events, all in one write at
  ``(N - 1) * M`` ms (a server that does not flush).
- anything else: 404.

``workers=W``: at most W connections are served at once, like W sync workers. A connection
holds its slot from the moment it is taken until it is closed, so a client trickling its
headers holds one; the others wait, unread, in the order they came. ``header_timeout_s``: a
connection whose request head is not complete that long after it got its slot is closed (it
counts in ``header_timeouts``), after a ``408`` answer when ``timeout_answer`` is set.

Events are written at absolute times on the event loop's clock (asyncio's own loop, whose
timers wake within a millisecond), so one late wake-up delays one event, not the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from collections import deque
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import httptools

MAX_EVENTS = 10_000
MAX_INTERVAL_MS = 60_000
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
LIFETIME_S = 600.0  # a forgotten server ends by itself
HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n" \
        b"Connection: close\r\n\r\nhello"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n" \
            b"Connection: close\r\n\r\nnot found"
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n" \
                  b"Connection: close\r\n\r\n"
SSE_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" \
           "{framing}Connection: close\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def event_bytes(index: int) -> bytes:
    """Event ``index`` as the server writes it: two fields and the blank line that ends it."""
    return f"id: {index}\ndata: event {index}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class _State:
    """The server's counters and its worker slots (read from other threads: plain ints)."""

    def __init__(self, workers: int | None, header_timeout_s: float | None,
                 timeout_answer: bool = False) -> None:
        self.free = workers if workers is not None else -1  # -1: no limit
        self.header_timeout_s = header_timeout_s
        self.timeout_answer = timeout_answer
        self.waiting: deque[_Http] = deque()
        self.open_connections = 0
        self.accepted = 0
        self.header_timeouts = 0
        self.streams_started = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.conns: set[_Http] = set()

    def admit(self, conn: _Http) -> None:
        if self.free == 0:
            conn.transport.pause_reading()
            self.waiting.append(conn)
            return
        if self.free > 0:
            self.free -= 1
        conn.start()

    def release(self, conn: _Http) -> None:
        if not conn.admitted:
            with contextlib.suppress(ValueError):
                self.waiting.remove(conn)
            return
        if self.free >= 0:
            self.free += 1
        while self.waiting and self.free != 0:
            nxt = self.waiting.popleft()
            if nxt.transport.is_closing():
                continue
            if self.free > 0:
                self.free -= 1
            nxt.transport.resume_reading()
            nxt.start()


class _Http(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.admitted = False
        self.head_done = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.state.open_connections += 1
        self.state.accepted += 1
        self.state.conns.add(self)
        self.state.admit(self)

    def start(self) -> None:
        """This connection has a worker now: read its request."""
        self.admitted = True
        timeout = self.state.header_timeout_s
        if timeout is not None:
            self.timer = asyncio.get_running_loop().call_later(timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        if not self.head_done and not self.transport.is_closing():
            self.state.header_timeouts += 1
            if self.state.timeout_answer:
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.open_connections -= 1
        self.state.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        self.state.release(self)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.head_done = True
        if self.timer is not None:
            self.timer.cancel()

    def on_message_complete(self) -> None:
        parts = urlsplit(self.url.decode("latin-1"))
        if parts.path == "/hello":
            self.transport.write(HELLO)
            self.transport.close()
            return
        if parts.path not in ("/stream", "/stream-buffered"):
            self.transport.write(NOT_FOUND)
            self.transport.close()
            return
        query = parse_qs(parts.query)
        events = min(_int(query, "events", 10), MAX_EVENTS)
        interval_s = min(_int(query, "interval_ms", 100), MAX_INTERVAL_MS) / 1000
        cut_after = _int(query, "cut_after", -1)
        chunked = query.get("framing", ["chunked"])[0] != "close"
        buffered = parts.path == "/stream-buffered"
        self.state.streams_started += 1
        task = asyncio.get_running_loop().create_task(
            self._stream(events, interval_s, cut_after, chunked=chunked, buffered=buffered))
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    async def _stream(self, events: int, interval_s: float, cut_after: int, *, chunked: bool,
                      buffered: bool) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        frame = chunk if chunked else bytes
        self.transport.write(SSE_HEAD.format(
            framing="Transfer-Encoding: chunked\r\n" if chunked else "").encode())
        held = bytearray()
        for index in range(events):
            await asyncio.sleep(max(0.0, start + index * interval_s - loop.time()))
            if self.transport.is_closing():
                return
            if buffered:
                held += event_bytes(index)
            else:
                self.transport.write(frame(event_bytes(index)))
            if index + 1 == cut_after:
                self.transport.close()  # no last chunk: the stream is cut
                return
        if held:
            self.transport.write(frame(bytes(held)))
        if chunked:
            self.transport.write(LAST_CHUNK)
        self.transport.close()


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return max(0, int(query[name][0]))
    except (KeyError, ValueError):
        return default


async def _listen(state: _State, port: int) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(lambda: _Http(state), sock=sock, backlog=4096)
    return server, sock.getsockname()[1]


class LongServer:
    """The server on its own event loop in a daemon thread of this process (a context
    manager); ``stop()`` closes its listener, every connection and the loop."""

    def __init__(self, *, workers: int | None = None, header_timeout_s: float | None = None,
                 timeout_answer: bool = False) -> None:
        self.state = _State(workers, header_timeout_s, timeout_answer)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="longserver", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def open_connections(self) -> int:
        return self.state.open_connections

    def __enter__(self) -> LongServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            raise RuntimeError(f"long server did not start: {self._error}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to __enter__ when it failed to start
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server, self.port = await _listen(self.state, 0)
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), LIFETIME_S)
            server.close()
            for task in list(self.state.tasks):
                task.cancel()
            await asyncio.gather(*self.state.tasks, return_exceptions=True)
            for conn in list(self.state.conns):
                conn.transport.abort()
            await asyncio.sleep(0)  # their connection_lost


async def _serve_forever(args: argparse.Namespace) -> None:
    state = _State(args.workers, args.header_timeout_s, args.timeout_answer)
    server, port = await _listen(state, args.port)
    print(f"URL http://127.0.0.1:{port}/", flush=True)
    async with server:
        await asyncio.sleep(args.lifetime_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.longserver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None,
                        help="serve at most this many connections at once (sync workers)")
    parser.add_argument("--header-timeout-s", type=float, default=None,
                        help="close a connection whose request head is not complete by then")
    parser.add_argument("--timeout-answer", action="store_true",
                        help="answer 408 before closing a connection for its header timeout")
    parser.add_argument("--lifetime-s", type=float, default=LIFETIME_S)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
