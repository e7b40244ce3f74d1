"""Measure the upstream delay service's capacity on one core, for apps/README.md.

The service runs pinned to one CPU and wrk (a C load generator, much cheaper per request than
the service) to another, so the figure is the service's own ceiling::

    .venv/bin/python benchmarks/upstream_capacity.py --service-cpu 1 --wrk-cpu 0

Needs ``wrk`` on PATH (``apt-get install wrk``). Each run lasts DURATION_S; the machine may be
shared, so run it twice and keep the better figure.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DURATION_S = 5
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
# (delay in ms, concurrent connections): no wait at all, then the io_bound scenario's 50 ms.
CASES = ((0, 64), (0, 256), (50, 256), (50, 1024))

_RPS_RE = re.compile(r"Requests/sec:\s*([\d.]+)")
_LAT_RE = re.compile(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", re.MULTILINE)
_ERR_RE = re.compile(r"Socket errors:.*|Non-2xx or 3xx responses: \d+")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service-cpu", type=int, default=1)
    parser.add_argument("--wrk-cpu", type=int, default=0)
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    service = subprocess.Popen(
        ["taskset", "-c", str(args.service_cpu), sys.executable, "-m", "apps.upstream",
         "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert service.stdout is not None
        if not select.select([service.stdout], [], [], READY_TIMEOUT_S)[0]:
            print("upstream did not start", file=sys.stderr)
            return 1
        url = service.stdout.readline().decode().split()[-1]
        proc = psutil.Process(service.pid)
        print(f"upstream {url} on CPU {args.service_cpu}; wrk on CPU {args.wrk_cpu}; "
              f"{DURATION_S} s per run")
        print(f"{'ms':>4} {'conns':>6} {'req/s':>10} {'mean':>9} {'stdev':>9} {'max':>9} "
              f"{'svc CPU%':>8}  errors")
        for ms, conns in CASES:
            before = proc.cpu_times()
            out = subprocess.run(
                ["taskset", "-c", str(args.wrk_cpu), wrk, "-t1", f"-c{conns}",
                 f"-d{DURATION_S}s", "--latency", f"{url}/delay?ms={ms}"],
                capture_output=True, text=True, timeout=DURATION_S + 30, check=True).stdout
            after = proc.cpu_times()
            cpu = (after.user + after.system - before.user - before.system) / DURATION_S * 100
            rps = _RPS_RE.search(out)
            lat = _LAT_RE.search(out)
            errors = "; ".join(_ERR_RE.findall(out)) or "none"
            print(f"{ms:>4} {conns:>6} {rps.group(1) if rps else '?':>10} "
                  f"{lat.group(1) if lat else '?':>9} {lat.group(2) if lat else '?':>9} "
                  f"{lat.group(3) if lat else '?':>9} {cpu:>8.0f}  {errors}")
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
        service.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
