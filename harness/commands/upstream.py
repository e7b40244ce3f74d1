"""harness upstream: run the upstream delay service in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os

from apps import upstream
from harness.errors import UsageError


def _pin(cpus: tuple[int, ...]) -> None:
    available = os.sched_getaffinity(0)
    missing = [cpu for cpu in cpus if cpu not in available]
    if missing:
        raise UsageError(f"--cpus: CPU(s) {missing} not available; this process may use "
                         f"{sorted(available)}")
    os.sched_setaffinity(0, cpus)


def _print_ready(url: str) -> None:
    cpus = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    print(f"{upstream.READY_LINE_PREFIX}{url} (CPUs {cpus}); GET /delay?ms=N; Ctrl-C stops it",
          flush=True)


def main(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0..65535 (0 picks a free port), got {args.port}")
    if args.cpus:
        _pin(args.cpus)
    try:
        upstream.run(upstream.serve(upstream.DEFAULT_HOST, args.port, on_ready=_print_ready))
    except OSError as exc:
        raise UsageError(f"--port {args.port}: cannot listen on {upstream.DEFAULT_HOST}: "
                         f"{exc.strerror}") from None
    return 0
