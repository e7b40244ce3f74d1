"""harness locust-worker: a Locust worker for a run whose master is on another machine."""

from __future__ import annotations

import argparse

from harness.drivers.locust import run_worker


def main(args: argparse.Namespace) -> int:
    return run_worker(args.master_host, master_port=args.master_port,
                      locustfile=args.locustfile)
