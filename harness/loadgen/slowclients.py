"""Slow clients held open while a normal trial measures everyone else.

>>> with SlowClients("127.0.0.1", 8000, 10, mode="headers", byte_interval_s=1.0,
...                  duration_s=30.0, cpus=(0,)) as slow:  # doctest: +SKIP
...     result = run_load(spec)  # the normal trial, as usual
>>> slow.result.closed_by_server, slow.result.held_before_close_s  # doctest: +SKIP

Two kinds of slow client, ``count`` connections of one kind:

- ``headers``: each connection sends a request line and headers one byte every
  ``byte_interval_s`` and never ends them (after the request line and Host, one header value
  grows by a byte a tick). A server that gives up on one (closes it, resets it, or answers
  first, e.g. 408 or 431) has it re-opened one tick later; how long it held each is recorded.
- ``read``: each connection asks for ``path`` in full (``Connection: close``) with a small
  receive buffer (SO_RCVBUF set before the connect) and reads one byte every
  ``byte_interval_s``: the server's sends back up. Ask for a response the trial cannot read to
  its end (``/stream?events=...``): the end of a response read in full counts as a close too.

They run in a process of their own, spawned like the generator's (``harness.loadgen.launch``) and
pinned to ``cpus`` when given: never in a generator process, whose hot path they would slow,
nor in the runner's, whose samplers they would share a GIL with, and whose open-file limit
10,000 connections could exhaust. When that process ends, by a stop, an error, a KILL or the
runner's own death, the kernel closes whatever it still holds.

Bounded: ``count`` is at most MAX_SLOW_CLIENTS, the clients stop ``duration_s`` after they are
connected or when the ``with`` block ends (also on an exception or Ctrl-C), and a re-open waits
one tick. Loopback only: they hold a server's connections on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import multiprocessing.connection as mpc
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any, Literal, get_args

from hdrh.histogram import HdrHistogram

from harness.cpus import check_usable
from harness.errors import GeneratorError, UnreachableError, UsageError
from harness.loadgen.histograms import new_histogram, percentiles_ms
from harness.loadgen.launch import (
    child_loop,
    collect,
    reap,
    reports_to,
    start_child,
)
from harness.units import MAX_DURATION_S

SlowMode = Literal["headers", "read"]
SLOW_MODES: tuple[str, ...] = get_args(SlowMode)
MAX_SLOW_CLIENTS = 10_000
MIN_BYTE_INTERVAL_S = 0.01  # 10,000 clients at this pace: a million sends a second, the most
LOOPBACK_NAMES = frozenset({"localhost"})
CONNECT_TIMEOUT_S = 5.0
CONNECT_PARALLEL = 256  # connects in progress at once
READ_RCVBUF_BYTES = 1_024  # asked for; Linux doubles it and keeps at least ~2.3 KB
ANSWER_HEAD_BYTES = 64  # of an answer to a slow header client, kept for its status code
RECV_BYTES = 4_096
READY_TIMEOUT_S = 30.0 + CONNECT_TIMEOUT_S * (MAX_SLOW_CLIENTS // CONNECT_PARALLEL + 1)
STOP_TIMEOUT_S = 10.0  # from "stop" to the child's report
US_PER_S = 1_000_000
NS_PER_US = 1_000
USER_AGENT = "harness-slow-client"


def check_loopback(host: str) -> None:
    """UsageError unless ``host`` is this machine (127.0.0.0/8, ::1 or localhost)."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host.lower() in LOOPBACK_NAMES
    if not loopback:
        raise UsageError(f"slow clients: host {host!r} is not this machine; expected 127.0.0.1, "
                         "localhost or ::1 (slow clients are aimed at loopback only)")


@dataclass(kw_only=True)
class SlowClientsResult:
    """What the slow clients saw. ``held_before_close`` is an HDR histogram in microseconds of
    how long the server held each connection it closed (from the connect to the close seen,
    to within a tick in ``read`` mode, which looks only when it reads).

    ``closed_by`` counts the server's closes by how: ``eof`` (a FIN) or ``reset``;
    ``answers`` the closes it answered first, by status code (``"431"``; ``"?"`` for bytes that
    are no status line). ``errors``: ``connect`` (a connect refused or timed out: retried a
    tick later) and ``io`` (any other socket error).
    """

    mode: str
    count: int
    byte_interval_s: float
    duration_s: float  # how long they were held: first connected to stopped
    opened: int  # connects that succeeded, the re-opens included
    held_at_end: int  # connections open when they stopped
    closed_by_server: int
    held_before_close: HdrHistogram
    closed_by: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_read: int = 0

    @property
    def held_before_close_s(self) -> dict[str, float | None]:
        """p50 and max of ``held_before_close`` in seconds (None when the server closed none)."""
        pct = percentiles_ms(self.held_before_close)
        return {key: None if pct[key] is None else pct[key] / 1000  # type: ignore[operator]
                for key in ("p50", "max")}

    def to_dict(self) -> dict[str, object]:
        """Every field, ``held_before_close`` as its p50 and max in seconds."""
        data: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)
                                   if f.name != "held_before_close"}
        data.update(duration_s=round(self.duration_s, 6), closed_by=dict(self.closed_by),
                    answers=dict(self.answers), errors=dict(self.errors),
                    held_before_close_s=self.held_before_close_s)
        return data


@dataclass(frozen=True, kw_only=True)
class _Plan:
    host: str
    port: int
    count: int
    mode: str
    interval_s: float
    duration_s: float
    request: bytes  # headers: the prefix trickled before the endless header value; read: all


def _request(mode: str, host: str, port: int, path: str) -> bytes:
    host_header = f"[{host}]" if ":" in host else host
    head = f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
    if mode == "read":
        return (head + "Connection: close\r\n\r\n").encode("latin-1")
    return (head + "X-Slow-Client: ").encode("latin-1")  # its value never ends


class SlowClients:
    """``count`` slow clients of one ``mode`` against ``host:port``, held in a process of their
    own between ``__enter__`` (which returns once the first connects are done) and
    ``__exit__`` or ``duration_s`` after that, whichever comes first. ``result`` is set on
    exit.

    Raises UsageError for bad arguments or a host that is not loopback, UnreachableError when
    not one connection opened, GeneratorError when their process fails.
    """

    def __init__(self, host: str, port: int, count: int, *, mode: SlowMode,
                 byte_interval_s: float, duration_s: float, path: str = "/hello",
                 cpus: Sequence[int] | None = None) -> None:
        check_loopback(host)
        if isinstance(count, bool) or not 1 <= count <= MAX_SLOW_CLIENTS:
            raise UsageError(f"slow clients: count must be between 1 and {MAX_SLOW_CLIENTS}, "
                             f"got {count!r}")
        if mode not in SLOW_MODES:
            raise UsageError(f"slow clients: mode {mode!r}; expected one of "
                             f"{', '.join(SLOW_MODES)}")
        if not (math.isfinite(byte_interval_s) and byte_interval_s >= MIN_BYTE_INTERVAL_S):
            raise UsageError(f"slow clients: byte_interval_s must be at least "
                             f"{MIN_BYTE_INTERVAL_S:g}, got {byte_interval_s!r}")
        if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_S):
            raise UsageError(f"slow clients: duration_s must be > 0 and at most "
                             f"{MAX_DURATION_S:g}, got {duration_s!r}")
        if not path.startswith("/") or any(c in path for c in " \r\n\t"):
            raise UsageError(f"slow clients: path {path!r}; expected /PATH[?QUERY]")
        if not 0 < port < 65_536:
            raise UsageError(f"slow clients: port {port!r}; expected 1-65535")
        address = "127.0.0.1" if host.lower() in LOOPBACK_NAMES else host.strip("[]")
        self.cpus = check_usable(cpus) if cpus is not None else None
        self.plan = _Plan(host=address, port=port, count=count, mode=mode,
                          interval_s=byte_interval_s, duration_s=duration_s,
                          request=_request(mode, host, port, path))
        self.result: SlowClientsResult | None = None
        self.opened_at_start = 0
        self._proc: Any = None
        self._pipe: mpc.Connection | None = None

    @property
    def pid(self) -> int | None:
        """The clients' process (None before ``__enter__``)."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> SlowClients:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(quiet=exc is not None)

    def start(self) -> None:
        """Spawn the clients' process; return once its first connects are done."""
        if self._proc is not None:
            raise RuntimeError("slow clients already started")
        self._proc, parent_end = start_child(_child_main, (self.plan, tuple(self.cpus or ())),
                                             "harness-slowclients")
        self._pipe = parent_end
        try:
            ((opened, failure),) = collect([(self._proc, parent_end)], "ready",
                                            time.monotonic() + READY_TIMEOUT_S)
            if opened == 0:
                where = f"{self.plan.host}:{self.plan.port}"
                raise UnreachableError(f"slow clients: could not open any connection to {where}"
                                       f" ({failure}); expected a server accepting connections")
            self.opened_at_start = int(opened)
        except BaseException:
            self._end()
            raise

    def stop(self, *, quiet: bool = False) -> SlowClientsResult | None:
        """Stop the clients (every connection closed) and return what they saw. ``quiet``: a
        failure to report is no error (another exception is on its way)."""
        if self._proc is None or self._pipe is None:
            return self.result
        try:
            with contextlib.suppress(OSError):
                self._pipe.send(("stop", None))
            (report,) = collect([(self._proc, self._pipe)], "done",
                                 time.monotonic() + STOP_TIMEOUT_S)
            self.result = _result(report, self.plan)
        except GeneratorError:
            if not quiet:
                raise
        finally:
            self._end()
        return self.result

    def _end(self) -> None:
        if self._proc is not None:
            reap([self._proc])
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


def _result(report: dict[str, Any], plan: _Plan) -> SlowClientsResult:
    held = new_histogram()
    held.decode_and_add(report["held"])
    return SlowClientsResult(
        mode=plan.mode, count=plan.count, byte_interval_s=plan.interval_s,
        duration_s=report["duration_s"], opened=report["opened"],
        held_at_end=report["held_at_end"], closed_by_server=report["closed_by_server"],
        held_before_close=held, closed_by=report["closed_by"], answers=report["answers"],
        errors=report["errors"], bytes_sent=report["bytes_sent"],
        bytes_read=report["bytes_read"])


def _child_main(pipe: mpc.Connection, plan: _Plan, cpus: tuple[int, ...]) -> None:
    """The clients' process: connect, report ready, hold until stopped or the duration ends,
    close everything, report."""
    with child_loop(cpus) as loop:
        clients = _Clients(plan, loop)
        try:
            with reports_to(pipe):
                opened = loop.run_until_complete(clients.open_all())
                pipe.send(("ready", (opened, clients.last_failure)))
                report = loop.run_until_complete(clients.hold(pipe))
                pipe.send(("done", report))
        finally:
            clients.close_all()


class _Conn:
    """One slow connection: a non-blocking socket, a tick, and (headers) a reader for the
    server's answer or close."""

    __slots__ = ("answer", "clients", "handle", "opened_ns", "sent", "slot", "sock")

    def __init__(self, clients: _Clients, slot: int, sock: socket.socket) -> None:
        self.clients = clients
        self.slot = slot
        self.sock = sock
        self.opened_ns = time.monotonic_ns()
        self.sent = 0  # bytes of the request sent (headers mode)
        self.answer = b""
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = self.clients.loop
        if self.clients.plan.mode == "headers":
            loop.add_reader(self.sock.fileno(), self._readable)
            self._tick()  # the first byte at once
        else:
            self.handle = loop.call_later(self.clients.plan.interval_s, self._tick)

    def _tick(self) -> None:
        clients = self.clients
        self.handle = clients.loop.call_later(clients.plan.interval_s, self._tick)
        try:
            if clients.plan.mode == "headers":
                request = clients.plan.request
                byte = request[self.sent:self.sent + 1] or b"a"
                if self.sock.send(byte):
                    self.sent += 1
                    clients.bytes_sent += 1
                return
            data = self.sock.recv(1)
        except BlockingIOError:
            return  # nothing to read yet (read), or a full send buffer (headers)
        except (ConnectionResetError, BrokenPipeError):
            clients.server_closed(self, "reset")
            return
        except OSError:
            clients.failed(self, "io")
            return
        if not data:
            clients.server_closed(self, "eof")
        else:
            clients.bytes_read += len(data)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.clients.server_closed(self, "reset")
            return
        except OSError:
            self.clients.failed(self, "io")
            return
        if not data:
            self.clients.server_closed(self, "eof")
            return
        self.clients.bytes_read += len(data)
        if len(self.answer) < ANSWER_HEAD_BYTES:
            self.answer += data[:ANSWER_HEAD_BYTES - len(self.answer)]

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.clients.plan.mode == "headers":
            self.clients.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def answer_status(head: bytes) -> str:
    """``b"HTTP/1.1 408 Request Timeout..."`` -> ``"408"``; ``"?"`` for anything else."""
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:3].isdigit():
        return parts[1][:3].decode()
    return "?"


class _Clients:
    """``count`` slots, each holding one slow connection (or waiting a tick to re-open it)."""

    def __init__(self, plan: _Plan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.loop = loop
        self.family = socket.AF_INET6 if ":" in plan.host else socket.AF_INET
        self.stopping = False
        self.conns: dict[int, _Conn] = {}
        self.waits: dict[int, asyncio.TimerHandle] = {}  # slot -> its re-open
        self.tasks: set[asyncio.Task[None]] = set()
        self.gate = asyncio.Semaphore(CONNECT_PARALLEL)
        self.opened = 0
        self.closed_by_server = 0
        self.closed_by = {"eof": 0, "reset": 0}
        self.answers: dict[str, int] = {}
        self.errors = {"connect": 0, "io": 0}
        self.bytes_sent = self.bytes_read = 0
        self.held = new_histogram()
        self.last_failure = ""
        self.stop_event = asyncio.Event()

    async def open_all(self) -> int:
        """Open every slot's connection (connects bounded in parallel and in time)."""
        await asyncio.gather(*(self._open(slot) for slot in range(self.plan.count)))
        return len(self.conns)

    async def _open(self, slot: int) -> None:
        self.waits.pop(slot, None)
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            if self.plan.mode == "read":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_RCVBUF_BYTES)
            sock.setblocking(False)
            async with self.gate:
                if self.stopping:
                    sock.close()
                    return
                await asyncio.wait_for(self.loop.sock_connect(sock, (self.plan.host,
                                                                      self.plan.port)),
                                       CONNECT_TIMEOUT_S)
            if self.plan.mode == "read":
                await asyncio.wait_for(self.loop.sock_sendall(sock, self.plan.request),
                                       CONNECT_TIMEOUT_S)
                self.bytes_sent += len(self.plan.request)
        except (OSError, TimeoutError) as exc:
            sock.close()
            self.errors["connect"] += 1
            self.last_failure = str(exc) or type(exc).__name__
            self.reopen_later(slot)
            return
        except BaseException:  # cancelled: the clients are stopping
            sock.close()
            raise
        if self.stopping:
            sock.close()
            return
        self.opened += 1
        conn = self.conns[slot] = _Conn(self, slot, sock)
        conn.start()

    def reopen_later(self, slot: int) -> None:
        if not self.stopping:
            self.waits[slot] = self.loop.call_later(self.plan.interval_s, self._reopen, slot)

    def _reopen(self, slot: int) -> None:
        task = self.loop.create_task(self._open(slot))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def server_closed(self, conn: _Conn, how: str) -> None:
        held_us = (time.monotonic_ns() - conn.opened_ns) // NS_PER_US
        self.held.record_value(min(max(held_us, 1), int(MAX_DURATION_S * US_PER_S)))
        self.closed_by_server += 1
        self.closed_by[how] += 1
        if conn.answer:
            status = answer_status(conn.answer)
            self.answers[status] = self.answers.get(status, 0) + 1
        self._drop(conn)

    def failed(self, conn: _Conn, kind: str) -> None:
        self.errors[kind] += 1
        self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        self.conns.pop(conn.slot, None)
        conn.close()
        self.reopen_later(conn.slot)

    async def hold(self, pipe: mpc.Connection) -> dict[str, Any]:
        """Hold the connections until "stop" (or the parent's end) or the duration is over."""
        start = time.monotonic()
        self.loop.add_reader(pipe.fileno(), self.stop_event.set)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.plan.duration_s)
        finally:
            self.loop.remove_reader(pipe.fileno())
        held_at_end = len(self.conns)
        await self.close_all_async()
        return {
            "duration_s": time.monotonic() - start, "opened": self.opened,
            "held_at_end": held_at_end, "closed_by_server": self.closed_by_server,
            "held": self.held.encode(), "closed_by": self.closed_by, "answers": self.answers,
            "errors": self.errors, "bytes_sent": self.bytes_sent, "bytes_read": self.bytes_read,
        }

    async def close_all_async(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.close_all()

    def close_all(self) -> None:
        """Close every connection and cancel every re-open (idempotent)."""
        self.stopping = True
        for wait in self.waits.values():
            wait.cancel()
        self.waits.clear()
        for conn in list(self.conns.values()):
            with contextlib.suppress(OSError):
                conn.close()
        self.conns.clear()
