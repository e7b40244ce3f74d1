"""harness upstream: run the upstream delay service in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os

from harness.commands import options
from harness.cpus import available_cpus, check_usable, cpus_text
from harness.errors import UsageError

HELP = "run the upstream delay service (/delay?ms=N)"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    parser = subparsers.add_parser("upstream", help=HELP)
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--cpus", type=options.cpus, help="CPUs to pin it to")
    return parser


def _print_ready(url: str) -> None:
    from apps import upstream

    cpus = cpus_text(available_cpus())
    print(f"{upstream.READY_LINE_PREFIX}{url} (CPUs {cpus}); GET /delay?ms=N; Ctrl-C stops it",
          flush=True)


def main(args: argparse.Namespace) -> int:
    from apps import upstream  # aiohttp, only for this command

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0..65535 (0 picks a free port), got {args.port}")
    if args.cpus:
        os.sched_setaffinity(0, check_usable(args.cpus))
    try:
        upstream.run(upstream.serve(upstream.DEFAULT_HOST, args.port, on_ready=_print_ready))
    except OSError as exc:
        raise UsageError(f"--port {args.port}: cannot listen on {upstream.DEFAULT_HOST}: "
                         f"{exc.strerror}") from None
    return 0
