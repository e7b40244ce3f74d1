"""harness serve: start one target (and an upstream unless given) and keep it up until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack

from harness.commands import options
from harness.cpus import allocate_for_server, cpus_text
from harness.errors import TargetError, UsageError

HELP = "start one target and keep it up until Ctrl-C"
# How often the main loop looks whether the server is still alive.
WATCH_INTERVAL_S = 0.5

ENDPOINTS = ("/hello", "/json", "/io?ms=50", "/io?ms=50&mode=sleep", "/cpu?n=5000")


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    serve = subparsers.add_parser("serve", help=HELP)
    serve.add_argument("name", help="server name (see 'harness servers')")
    options.add_app_options(serve, "raw")
    serve.add_argument(
        "--cpus", type=options.cpus,
        help="CPUs to pin the server to (default: the upper half; on 2 cores CPU 1)",
    )
    options.add_backend(serve)
    serve.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    serve.add_argument("--workers", type=int, help="override the worker preset")
    serve.add_argument("--threads", type=int, help="override the thread preset")
    serve.add_argument("--upstream-url", help="delay service for /io (default: start one)")
    return serve


def check_upstream_url(url: str) -> str:
    if not url.startswith("http://") or ":" not in url.removeprefix("http://"):
        raise UsageError(f"--upstream-url: expected http://HOST:PORT, got {url!r}")
    return url.rstrip("/")


def main(args: argparse.Namespace) -> int:
    from harness import catalogue
    from harness.backends import get_backend
    from harness.ownapp import family_from_args
    from harness.signals import terminate_as_interrupt

    server = catalogue.get_server(args.name)
    cpus = allocate_for_server(args.cpus)
    family = family_from_args(args, "raw")
    assert family is not None
    target = catalogue.make_target(server, app=family, cpus=len(cpus.server),
                                   workers=args.workers, threads=args.threads)
    upstream_url = check_upstream_url(args.upstream_url) if args.upstream_url else None
    # Ctrl-C and SIGTERM both unwind through the ExitStack, which stops the target (and the
    # upstream): the CLI then exits 130.
    with terminate_as_interrupt(), ExitStack() as stack:
        backend = stack.enter_context(get_backend(args.backend))
        try:
            if upstream_url is None:
                upstream = stack.enter_context(backend.start_upstream(cpus=cpus.loadgen))
                upstream_url = upstream.url
                print(f"upstream delay service: {upstream.url}/delay?ms=N "
                      f"(CPUs {cpus_text(upstream.cpus)})", flush=True)
            srv = stack.enter_context(backend.start_target(
                target, cpus=cpus.server, port=args.port, upstream_url=upstream_url))
        except TargetError as exc:
            print(f"harness serve: error: {exc}", file=sys.stderr)
            return 1
        for note in srv.notes:
            print(note, flush=True)
        where = ", ".join(f"{k} {v}" for k, v in srv.describe().items()
                          if k not in ("url", "command"))
        print(f"{target.describe()}\n"
              f"{backend.name} backend, {where}, CPUs {cpus_text(srv.cpus)}; "
              f"preset: {target.preset.note}\n"
              f"command: {' '.join(srv.command)}\n"
              f"listening on {srv.url}", flush=True)
        own_path = target.family.check_path
        paths = [own_path] if own_path is not None else list(ENDPOINTS) + (
            ["/ws/echo (WebSocket)", "/ws/broadcast (WebSocket)"]
            if server.websocket and target.family.websocket else [])
        for path in paths:
            print(f"  {srv.url}{path}")
        print("Ctrl-C stops it", flush=True)
        try:
            while srv.alive():
                time.sleep(WATCH_INTERVAL_S)
        except KeyboardInterrupt:
            print("stopping...", flush=True)
            raise
        print(f"harness serve: error: {srv.exit_reason()}", file=sys.stderr)
        return 1
