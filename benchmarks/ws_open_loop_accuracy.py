"""Open-loop accuracy of the WebSocket generator: a server that echoes after exactly 10 ms.

    .venv/bin/python benchmarks/ws_open_loop_accuracy.py [--rate 2000] [--duration 5]
        [--server-cpu 1] [--gen-cpu 0]

1. Accuracy: an echo server that holds every message exactly ``DELAY_MS`` (a timerfd-based
   ``PreciseTimer``, not asyncio's millisecond timers) before it sends it back, pinned to one
   CPU; the generator drives it open loop (``--rate`` messages/s over at most 64 connections)
   from another. Goal: p50 within 1 ms of 10 ms, from the intended send.
2. Coordinated omission: the same server holds every message that arrives in a window of
   ``STALL_MS`` (500 ms), starting ``STALL_AT_S`` into the measurement, until the window ends
   (one stall). Goal: the stall shows in the corrected p99 (timed from the intended send: the
   messages due during the stall wait for it) and not in the service p99 (timed from the actual
   send: at most 64 messages in flight when it began were held, under 1 % of the sends).

The server is written on the generator's own codec (harness.loadgen.websocket): a handshake
answered with ``accept_value``, client frames unmasked with their key, ``server_frame`` back.
It runs as ``python benchmarks/ws_open_loop_accuracy.py --serve``. Every process started is
stopped and reaped.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from harness.loadgen import LoadResult, LoadSpec, percentiles_ms, run_load
from harness.loadgen.timer import PreciseTimer
from harness.loadgen.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_value,
    server_frame,
)

try:  # the C masking the generator's codec uses, else websockets' pure-Python one
    from websockets.speedups import apply_mask
except ImportError:
    from websockets.utils import apply_mask

ROOT = Path(__file__).resolve().parent.parent
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
DELAY_MS = 10.0
RATE = 2000.0
MAX_CONNECTIONS = 64
DURATION_S = 5.0
WARMUP_S = 1.0
STALL_AT_S = 2.0  # into the measured window (the server is told warm-up + this)
STALL_MS = 500.0
GOAL_P50_ERROR_MS = 1.0
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
SERVER_LIFETIME_S = 300.0
MAX_HEAD_BYTES = 16 * 1024


# -- the server ------------------------------------------------------------------------------

class _Echo(asyncio.Protocol):
    """One WebSocket connection: the handshake, then every message echoed at its release."""

    def __init__(self, server: _DelayServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    self._abort()
                return
            head, self.buf = bytes(self.buf[:end]), self.buf[end + 4:]
            key = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            if not key or self.transport is None:
                self._abort()
                return
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                 + accept_value(key) + b"\r\n\r\n")
            self.open = True
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length, at = b1 & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, at = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, at = int.from_bytes(buf[2:10], "big"), 10
            if not b1 & 0x80 or len(buf) < at + 4 + length:
                if not b1 & 0x80:  # a client frame must be masked (RFC 6455 5.1)
                    self._abort()
                return
            key = bytes(buf[at:at + 4])
            payload = apply_mask(bytes(buf[at + 4:at + 4 + length]), key)
            del buf[:at + 4 + length]
            opcode = b0 & 0x0F
            if opcode in (OP_BINARY, OP_TEXT):
                self.server.hold(self, server_frame(opcode, payload))
            elif opcode == OP_PING:
                self.send(server_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.send(server_frame(OP_CLOSE, payload[:2]))
                if self.transport is not None:
                    self.transport.close()
                return

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _DelayServer:
    """Holds each message exactly ``delay_ms``; once, every message arriving in the stall
    window is held until the window ends. The clock starts at the first message."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_ms: float,
                 stall_at_s: float | None, stall_ms: float) -> None:
        self.delay_ns = int(delay_ms * NS_PER_MS)
        self.stall_at_ns = None if stall_at_s is None else int(stall_at_s * NS_PER_S)
        self.stall_ns = int(stall_ms * NS_PER_MS)
        self.started_ns: int | None = None
        self.pending: deque[tuple[int, _Echo, bytes]] = deque()  # release order = arrival order
        self.timer = PreciseTimer(loop, self.release)

    def hold(self, conn: _Echo, frame: bytes) -> None:
        now = time.monotonic_ns()
        if self.started_ns is None:
            self.started_ns = now
        release = now + self.delay_ns
        if self.stall_at_ns is not None:
            stall_from = self.started_ns + self.stall_at_ns
            if stall_from <= now < stall_from + self.stall_ns:
                release = max(release, stall_from + self.stall_ns)
        self.pending.append((release, conn, frame))
        if len(self.pending) == 1:
            self.timer.at(release)

    def release(self) -> None:
        now = time.monotonic_ns()
        pending = self.pending
        while pending and pending[0][0] <= now:
            _, conn, frame = pending.popleft()
            conn.send(frame)
        if pending:
            self.timer.at(pending[0][0])


async def _serve(port: int, delay_ms: float, stall_at_s: float | None, stall_ms: float,
                 lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    state = _DelayServer(loop, delay_ms, stall_at_s, stall_ms)
    server = await loop.create_server(lambda: _Echo(state), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await asyncio.sleep(lifetime_s)


def serve(args: argparse.Namespace) -> int:
    import uvloop

    uvloop.run(_serve(args.port, args.delay_ms, args.stall_at_s, args.stall_ms,
                      args.lifetime_s))
    return 0


# -- the benchmark ---------------------------------------------------------------------------

@contextmanager
def delay_server(cpu: int, *extra: str) -> Iterator[str]:
    """The echo server pinned to ``cpu``; yields its ws:// URL once it accepts."""
    proc = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, __file__, "--serve",
                             "--port", "0", "--lifetime-s", str(SERVER_LIFETIME_S), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        port = int(line.split()[1])
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server never accepted") from None
                time.sleep(0.02)
        yield f"ws://127.0.0.1:{port}/ws/echo"
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def _row(label: str, pct: dict[str, float | None]) -> str:
    keys = ("p50", "p90", "p99", "p99_9", "max")
    return f"  {label:<28}" + "".join(
        f"{k}={pct[k]:8.3f}  " if pct[k] is not None else f"{k}=       -  " for k in keys)


def _load(url: str, args: argparse.Namespace) -> LoadResult:
    return run_load(LoadSpec(url=url, rate=args.rate, max_connections=MAX_CONNECTIONS,
                             duration_s=args.duration, warmup_s=WARMUP_S,
                             cpus=(args.gen_cpu,)))


def _facts(result: LoadResult) -> str:
    return (f"  messages {result.requests}, errors {result.errors['total']}, behind "
            f"{result.behind}, latest send {result.late_max_ms:.3f} ms after due, generator "
            f"CPU {result.generator_cpu_pct:.0f}%, saturated: {result.saturated}")


def accuracy(args: argparse.Namespace) -> bool:
    print(f"\n== Accuracy: echo after exactly {DELAY_MS:g} ms; open loop {args.rate:g} msgs/s "
          f"over at most {MAX_CONNECTIONS} connections, {args.duration:g}s (ms) ==")
    with delay_server(args.server_cpu, "--delay-ms", str(DELAY_MS)) as url:
        result = _load(url, args)
    lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
    print(_row("corrected (from due time)", lat))
    print(_row("service (from actual send)", svc))
    print(_facts(result))
    error = (lat["p50"] or 0.0) - DELAY_MS
    ok = abs(error) <= GOAL_P50_ERROR_MS
    print(f"  p50 error vs {DELAY_MS:g} ms: {error:+.3f} ms (goal within "
          f"{GOAL_P50_ERROR_MS:g} ms): {'ok' if ok else 'MISSED'}; p99 error "
          f"{(lat['p99'] or 0.0) - DELAY_MS:+.3f} ms")
    return ok


def stall(args: argparse.Namespace) -> bool:
    print(f"\n== Coordinated omission: one {STALL_MS:g} ms stall {STALL_AT_S:g}s into the "
          f"measurement; open loop {args.rate:g} msgs/s, {args.duration:g}s (ms) ==")
    extra = ("--delay-ms", str(DELAY_MS), "--stall-at-s", str(WARMUP_S + STALL_AT_S),
             "--stall-ms", str(STALL_MS))
    with delay_server(args.server_cpu, *extra) as url:
        result = _load(url, args)
    lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
    print(_row("corrected (from due time)", lat))
    print(_row("service (from actual send)", svc))
    print(_facts(result))
    # The messages due during the stall are 500 ms x rate of duration x rate, ~10 % here:
    # far above 1 %, so the corrected p99 must be a good part of the stall.
    shows = (lat["p99"] or 0.0) >= STALL_MS / 2
    hidden = (svc["p99"] or 0.0) < STALL_MS / 10
    print(f"  stall in corrected p99 (>= {STALL_MS / 2:g} ms): {'yes' if shows else 'NO'}; "
          f"absent from service p99 (< {STALL_MS / 10:g} ms): {'yes' if hidden else 'NO'}")
    return shows and hidden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=RATE, help="offered messages/s")
    parser.add_argument("--duration", type=float, default=DURATION_S,
                        help="seconds per measurement")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--gen-cpu", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma list of: accuracy,stall")
    # the server side (started by the benchmark itself)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--delay-ms", type=float, default=DELAY_MS, help=argparse.SUPPRESS)
    parser.add_argument("--stall-at-s", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stall-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime-s", type=float, default=SERVER_LIFETIME_S,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    skip = set(filter(None, args.skip.split(",")))
    ok = True
    if "accuracy" not in skip:
        ok &= accuracy(args)
    if "stall" not in skip:
        ok &= stall(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
