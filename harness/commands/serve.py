"""harness serve: start one target (and an upstream unless given) and keep it up until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType

from harness import catalogue
from harness.backends import local
from harness.errors import TargetError, UsageError

EXIT_INTERRUPTED = 130
# How often the main loop looks whether the server is still alive.
WATCH_INTERVAL_S = 0.5

ENDPOINTS = ("/hello", "/json", "/io?ms=50", "/io?ms=50&mode=sleep", "/cpu?n=5000")


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM; the handlers only set it, the main loop acts."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def check_upstream_url(url: str) -> str:
    if not url.startswith("http://") or ":" not in url.removeprefix("http://"):
        raise UsageError(f"--upstream-url: expected http://HOST:PORT, got {url!r}")
    return url.rstrip("/")


def main(args: argparse.Namespace) -> int:
    server = catalogue.get_server(args.name)
    cpus = tuple(args.cpus) if args.cpus else local.default_server_cpus()
    target = catalogue.make_target(server, app=args.app, cpus=len(cpus), workers=args.workers,
                                   threads=args.threads)
    upstream_url = check_upstream_url(args.upstream_url) if args.upstream_url else None
    with stop_signals() as stop, ExitStack() as stack:
        try:
            if upstream_url is None:
                upstream = stack.enter_context(
                    local.start_upstream(local.default_upstream_cpus(cpus)))
                upstream_url = upstream.url
                print(f"upstream delay service: {upstream.url}/delay?ms=N "
                      f"(CPUs {local.cpus_text(upstream.cpus)})", flush=True)
            srv = stack.enter_context(
                local.start_target(target, cpus=cpus, port=args.port, upstream_url=upstream_url))
        except TargetError as exc:
            print(f"harness serve: error: {exc}", file=sys.stderr)
            return 1
        for note in srv.notes:
            print(note, flush=True)
        print(f"{target.describe()}\n"
              f"pid {srv.pid}, CPUs {local.cpus_text(srv.cpus)}; preset: {target.preset.note}\n"
              f"command: {' '.join(srv.command)}\n"
              f"listening on {srv.url}", flush=True)
        paths = list(ENDPOINTS) + (["/ws/echo (WebSocket)"] if server.websocket else [])
        for path in paths:
            print(f"  {srv.url}{path}")
        print("Ctrl-C stops it", flush=True)
        while not stop.wait(WATCH_INTERVAL_S):
            if not srv.alive():
                print(f"harness serve: error: {srv.exit_reason()}", file=sys.stderr)
                return 1
        print("stopping...", flush=True)
    return EXIT_INTERRUPTED
