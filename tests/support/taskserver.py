"""A tiny HTTP/1.1 server with known background-task and stream behaviour, writing the raw apps'
task log (apps/raw/tasklog.py, in the folder ``HARNESS_TASK_LOG`` names), to test what
harness.tasktrials counts against what the server really did.

``python -m tests.support.taskserver --port P [--linger K] [--finish-on-term K]
[--ignore-term]`` prints ``URL http://127.0.0.1:<port>`` once it listens. Routes:

- ``GET /hello``: ``hello``.
- ``GET /background?ms=N``: 200 ``{"ms":N,"queued":true}`` at once (keep-alive); then a task
  starts (logged) and finishes (logged) N ms later.
- ``GET /stream?events=N&interval_ms=M&id=X``: ``text/event-stream``, close-delimited; event i
  is written i * M ms after the request, and the stream's end is logged after the last. When
  the client leaves first, the server goes on making ``--linger`` more events (one every M ms,
  written nowhere) before it logs the end: events made after the close = linger, the end about
  linger * M ms after it. ``--linger -1``: it never logs an end.

On SIGTERM it closes its listener and every connection (answers already written are flushed),
lets the ``--finish-on-term`` oldest running tasks finish and drops the rest (no finish
logged), prints ``answered A, running R at SIGTERM`` and exits: R - K tasks lost.
``--ignore-term``: SIGTERM does nothing (a server that must be killed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httptools

from apps.raw.tasklog import STREAM_DONE, STREAM_GONE, TASK_LOG

LIFETIME_S = 600.0  # a forgotten server ends by itself
HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\n\r\n")


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query[name][0])
    except (KeyError, ValueError):
        return default


class _State:
    def __init__(self, linger: int) -> None:
        self.linger = linger
        self.answered = 0
        # running tasks, oldest first: their finish timers
        self.running: dict[int, asyncio.TimerHandle] = {}
        self.next_task = 0
        self.conns: set[_Http] = set()
        self.streams: set[_Stream] = set()


class _Stream:
    """One stream: its events on timers; when the client leaves, the lingering ones."""

    def __init__(self, conn: _Http, stream_id: str, events: int, interval_s: float) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.events = events
        self.interval_s = interval_s
        self.sent = 0
        self.left = False
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def start(self) -> None:
        self.conn.transport.write(SSE_HEAD)
        self._next()

    def _next(self) -> None:
        if self.left:
            return
        self.conn.transport.write(f"id: {self.sent}\ndata: {self.sent}\n\n".encode())
        self.sent += 1
        if self.sent >= self.events:
            self._end(STREAM_DONE)
            self.conn.transport.close()
            return
        self.timer = self.loop.call_later(self.interval_s, self._next)

    def client_left(self) -> None:
        if self.left or self.sent >= self.events:
            return
        self.left = True
        if self.timer is not None:
            self.timer.cancel()
        linger = self.conn.state.linger
        if linger < 0:
            return  # never ended
        self._linger(linger)

    def _linger(self, more: int) -> None:
        if more == 0 or self.sent >= self.events:
            self._end(STREAM_GONE)
            return
        self.sent += 1  # made for no one
        self.timer = self.loop.call_later(self.interval_s, self._linger, more - 1)

    def _end(self, how: str) -> None:
        TASK_LOG.stream_ended(self.stream_id, self.sent, self.events, how)
        self.conn.state.streams.discard(self)


class _Http(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.stream: _Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.state.conns.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.conns.discard(self)
        if self.stream is not None:
            self.stream.client_left()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        parts = urlsplit(self.url.decode("latin-1"))
        self.url = b""
        query = parse_qs(parts.query)
        if parts.path == "/hello":
            self.transport.write(HELLO)
        elif parts.path == "/background":
            self._background(_int(query, "ms", 0))
        elif parts.path == "/stream":
            self.stream = _Stream(self, query.get("id", ["-"])[0], _int(query, "events", 10),
                                  _int(query, "interval_ms", 100) / 1000)
            self.state.streams.add(self.stream)
            self.stream.start()
        else:
            self.transport.write(NOT_FOUND)
            self.transport.close()

    def _background(self, ms: int) -> None:
        body = json.dumps({"ms": ms, "queued": True}, separators=(",", ":")).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        state = self.state
        state.answered += 1
        task = state.next_task
        state.next_task += 1
        TASK_LOG.task_started()
        state.running[task] = asyncio.get_running_loop().call_later(
            ms / 1000, _finisher(state, task))


def _finisher(state: _State, task: int) -> Callable[[], None]:
    def finish() -> None:
        state.running.pop(task, None)
        TASK_LOG.task_finished()
    return finish


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    state = _State(args.linger)
    server = await loop.create_server(lambda: _Http(state), "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"URL http://127.0.0.1:{port}", flush=True)
    done = asyncio.Event()
    exiting: list[asyncio.Task[None]] = []  # held: a task nobody holds may be collected

    def on_term() -> None:
        server.close()
        for conn in list(state.conns):
            conn.transport.close()  # what was written is flushed first
        tasks = sorted(state.running)
        running = len(tasks)
        for task in tasks[args.finish_on_term:]:
            state.running.pop(task).cancel()  # dropped: never finished
        print(f"answered {state.answered}, running {running} at SIGTERM", flush=True)
        exiting.append(loop.create_task(_exit_when_done(state, done)))

    if args.ignore_term:
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
    else:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), LIFETIME_S)


async def _exit_when_done(state: _State, done: asyncio.Event) -> None:
    while state.running:
        await asyncio.sleep(0.01)
    done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.taskserver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--linger", type=int, default=0,
                        help="events made after a client left, before the stream ends")
    parser.add_argument("--finish-on-term", type=int, default=0,
                        help="running tasks let finish on SIGTERM (the oldest)")
    parser.add_argument("--ignore-term", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
