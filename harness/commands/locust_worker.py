"""harness locust-worker: a Locust worker for a run whose master is on another machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options

HELP = ("a Locust worker for a harness run on another machine "
        "(--driver locust --locust-remote-workers N)")


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    worker = subparsers.add_parser("locust-worker", help=HELP)
    worker.add_argument("--master-host", required=True, help="the machine running harness run")
    worker.add_argument("--master-port", type=int, default=5557,
                        help="the master's port (default 5557)")
    worker.add_argument("--locustfile", type=Path, default=None,
                        help="the same locustfile the run uses, if any")
    return worker


def main(args: argparse.Namespace) -> int:
    from harness.drivers.locust import run_worker  # Locust, only for this command

    return run_worker(args.master_host, master_port=args.master_port,
                      locustfile=args.locustfile)
