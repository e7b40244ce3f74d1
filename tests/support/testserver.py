"""A tiny HTTP/1.1 server with known behaviour, to test and calibrate the generator.

``python -m tests.support.testserver --port 0 [--delay-ms 10] [--serial]
[--stall-at-s 1 --stall-ms 500] [--route /slow=20]``
prints ``PORT <n>`` once it listens. ``--route`` gives a path its own delay (a request mix's
kinds); ``GET /__counts`` answers how many requests each path received, as JSON. Responses can
be delayed by a fixed time (released by a timerfd, so the delay is exact to tens of
microseconds, unlike millisecond event-loop timers),
held back once for a stall, given another status or body, or the connection closed instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from collections import deque

import httptools

from harness.loadgen.launch import raise_open_files_limit
from harness.loadgen.timer import PreciseTimer

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
BLOCKING_READ_TIMEOUT_S = 30.0  # gunicorn's default worker timeout
COUNTS_PATH = "/__counts"


def _route(text: str) -> tuple[str, float]:
    path, sep, ms = text.partition("=")
    if not sep or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected PATH=DELAY_MS, got {text!r}")
    return path, float(ms)


class _Server:
    def __init__(self, args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> None:
        body = args.body.encode()
        reason = "OK" if args.status == 200 else "Error"
        self.response = (f"HTTP/1.1 {args.status} {reason}\r\nContent-Length: {len(body)}\r\n"
                         "Content-Type: text/plain\r\n\r\n").encode() + body
        self.delay_ns = int(args.delay_ms * NS_PER_MS)
        self.stall_at_ns = int(args.stall_at_s * NS_PER_S) if args.stall_at_s is not None \
            else None
        self.stall_ns = int(args.stall_ms * NS_PER_MS)
        self.close = args.close
        self.close_after_answer = args.close_after_answer
        # --serial: one response at a time, each delay_ms after the previous one, so the
        # server's capacity is exactly 1000 / delay_ms requests per second
        self.serial = args.serial
        self.last_release_ns = 0
        self.started_ns: int | None = None
        self.pending: deque[tuple[int, _Http]] = deque()  # (release time, connection), in order
        self.timer = PreciseTimer(loop, self.release)
        self.route_delay_ns = {path: int(ms * NS_PER_MS) for path, ms in args.route}
        self.counts: dict[str, int] = {}

    def respond(self, conn: _Http, path: str) -> None:
        now = time.monotonic_ns()
        if path == COUNTS_PATH:
            body = json.dumps(self.counts).encode()
            conn.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return
        self.counts[path] = self.counts.get(path, 0) + 1
        if self.started_ns is None:
            self.started_ns = now
        if self.close:
            conn.transport.close()
            return
        release = now + self.route_delay_ns.get(path, self.delay_ns)
        if self.serial:
            release = max(now, self.last_release_ns) + self.delay_ns
            self.last_release_ns = release
        if self.stall_at_ns is not None:
            stall_from = self.started_ns + self.stall_at_ns
            if stall_from <= release < stall_from + self.stall_ns:
                release = stall_from + self.stall_ns
        if release <= now:
            self.answer(conn)
            return
        self.pending.append((release, conn))
        if len(self.pending) == 1:
            self.timer.at(release)

    def release(self) -> None:
        now = time.monotonic_ns()
        pending = self.pending
        while pending and pending[0][0] <= now:
            _, conn = pending.popleft()
            if not conn.transport.is_closing():
                self.answer(conn)
        if pending:
            self.timer.at(pending[0][0])

    def answer(self, conn: _Http) -> None:
        conn.transport.write(self.response)
        if self.close_after_answer:
            conn.transport.close()


class _Http(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.path = "/"

    def on_url(self, url: bytes) -> None:
        self.path = httptools.parse_url(url).path.decode("latin-1")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.server.respond(self, self.path)


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    state = _Server(args, loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = await loop.create_server(lambda: _Http(state), sock=sock, backlog=4096)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    async with server:
        # bounded: a forgotten test server ends by itself
        await asyncio.sleep(args.lifetime_s)


def _serve_blocking(args: argparse.Namespace) -> None:
    """One connection at a time, closed after its answer: a gunicorn sync worker's way. A
    connection accepted with no request on it blocks every other client until it speaks."""
    body = args.body.encode()
    response = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
                "Content-Type: text/plain\r\n\r\n").encode() + body
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", args.port))
        sock.listen(4096)
        sock.settimeout(1.0)
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        deadline = time.monotonic() + args.lifetime_s  # bounded, like the async server
        while time.monotonic() < deadline:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(BLOCKING_READ_TIMEOUT_S)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                if b"\r\n\r\n" in data:
                    time.sleep(args.delay_ms / 1000)
                    with contextlib.suppress(OSError):
                        conn.sendall(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.testserver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--body", default="hello")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stall-at-s", type=float, default=None,
                        help="seconds after the first request when responses are held back once")
    parser.add_argument("--stall-ms", type=float, default=0.0)
    parser.add_argument("--close", action="store_true", help="close instead of answering")
    parser.add_argument("--close-after-answer", action="store_true",
                        help="answer, then close without 'Connection: close' (as uWSGI's "
                        "http-socket does)")
    parser.add_argument("--blocking", action="store_true",
                        help="one blocking worker: one connection at a time, closed after "
                        "its answer (as gunicorn's sync worker)")
    parser.add_argument("--serial", action="store_true",
                        help="answer one request at a time: capacity 1000 / delay-ms req/s")
    parser.add_argument("--route", type=_route, action="append", default=[],
                        help="PATH=DELAY_MS: this path's own delay (repeatable)")
    parser.add_argument("--lifetime-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    raise_open_files_limit()  # one descriptor per client connection
    if args.blocking:
        with contextlib.suppress(KeyboardInterrupt):
            _serve_blocking(args)
        return 0
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
