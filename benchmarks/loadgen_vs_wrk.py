"""The built-in generator against wrk, same server, same pinning, one run, side by side.

    .venv/bin/python benchmarks/loadgen_vs_wrk.py [--duration 5] [--server-cpu 1] [--gen-cpu 0]

1. Throughput: a raw ASGI hello app on uvicorn (httptools + uvloop) and on granian, pinned to
   one CPU, driven in turn by wrk (1 thread, 64 connections) and by ``harness load`` (closed
   loop, 64 connections), both pinned to another CPU. Prints req/s, the ratio (goal >= 0.95)
   and CPU seconds per 1,000 requests (goal <= 1.5 x wrk's).
2. Accuracy: a server that answers after exactly 10 ms, driven open loop: the corrected
   percentiles should sit well under a millisecond above 10 ms.
3. Coordinated omission: a server that stalls every response once for 500 ms. With a fixed
   pool of 16 connections (as wrk has), the stall shows in the corrected percentiles and not
   in the service time; wrk's own percentiles hide it.

Needs wrk on PATH (``apt-get install wrk``). Every process started is stopped and reaped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.loadgen import LoadResult, LoadSpec, percentiles_ms, run_load
from harness.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
DELAY_MS = 10.0
DELAY_RATE = 1000.0
STALL_AT_S = 2.0
STALL_MS = 500.0
STALL_RATE = 1000.0
STALL_POOL = 16
GOAL_RPS_RATIO = 0.95
GOAL_CPU_RATIO = 1.5
# Servers that close every connection: the case measured at 16 connections (issue 9), where
# the generator pays a connect per request; the goal there is >= 0.9 x wrk's rate.
CLOSING_SERVERS = ("uwsgi", "gunicorn-sync")
CLOSING_CONNECTIONS = 16
GOAL_CLOSING_RPS_RATIO = 0.9
PATHS = {"uwsgi": "/hello", "gunicorn-sync": "/hello"}


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("server never accepted") from None
            time.sleep(0.02)


@contextmanager
def server(kind: str, cpu: int, *extra: str) -> Iterator[str]:
    port = free_port()
    py = sys.executable
    bindir = Path(py).parent
    commands = {
        "uvicorn": [py, "-m", "uvicorn", "--app-dir", str(ROOT / "benchmarks"), "--host",
                    "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop",
                    "--no-access-log", "--log-level", "warning", "hello_asgi:app"],
        "granian": [str(bindir / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                    "--port", str(port), "--workers", "1", "--runtime-threads", "1",
                    "--no-access-log", "--log-level", "warning", "--working-dir",
                    str(ROOT / "benchmarks"), "hello_asgi:app"],
        "testserver": [py, "-m", "tests.support.testserver", "--port", str(port),
                       "--lifetime-s", "300", *extra],
        # servers that close the connection after every answer: a connect per request
        "uwsgi": [str(bindir / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master",
                  "--die-on-term", "--disable-logging", "--need-app", "--strict",
                  "--processes", "3", "--threads", "2", "--pythonpath", str(ROOT),
                  "--module", "apps.raw.wsgi:app"],
        "gunicorn-sync": [py, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                          "3", "--worker-class", "sync", "apps.raw.wsgi:app"],
    }
    proc = subprocess.Popen(["taskset", "-c", str(cpu), *commands[kind]], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        yield f"http://127.0.0.1:{port}{PATHS.get(kind, '/')}"
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def run_wrk(url: str, cpu: int, duration_s: float, connections: int) -> tuple[float, float, str]:
    """req/s, CPU seconds (from the kernel's rusage of the reaped wrk) and wrk's output."""
    proc = subprocess.Popen(["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}",
                             f"-d{max(1, round(duration_s))}s", "--latency", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed: {out}")
    return float(match.group(1)), rusage.ru_utime + rusage.ru_stime, out


def run_ours(url: str, cpu: int, duration_s: float, connections: int) -> LoadResult:
    return run_load(LoadSpec(url=url, concurrency=connections, duration_s=duration_s,
                             warmup_s=1.0, cpus=(cpu,)))


def throughput(kinds: Sequence[str], args: argparse.Namespace) -> None:
    print(f"\n== Throughput: closed loop, {CONNECTIONS} connections ({CLOSING_CONNECTIONS} "
          f"for {', '.join(CLOSING_SERVERS)}), server on CPU "
          f"{args.server_cpu}, generator on CPU {args.gen_cpu}, {args.duration:g}s each, "
          f"median of {args.rounds} alternating rounds ==")
    print(f"{'server':<13} {'wrk req/s':>10} {'ours req/s':>11} {'ratio':>6}   "
          f"{'wrk CPU-s/1k':>12} {'ours CPU-s/1k':>13} {'ratio':>6}  ours CPU%  errors")
    for kind in kinds:
        wrk_rounds: list[tuple[float, float]] = []  # (req/s, CPU-s per 1k requests)
        our_rounds: list[tuple[float, float, float]] = []  # (req/s, CPU-s per 1k, CPU %)
        errors = 0
        reasons: list[str] = []
        connections = CLOSING_CONNECTIONS if kind in CLOSING_SERVERS else CONNECTIONS
        goal_rps = GOAL_CLOSING_RPS_RATIO if kind in CLOSING_SERVERS else GOAL_RPS_RATIO
        with server(kind, args.server_cpu) as url:
            run_wrk(url, args.gen_cpu, 1.0, connections)  # warm the server, discarded
            # alternate, so a noisy neighbour or a warming server hurts both alike
            for _ in range(args.rounds):
                rps, cpu_s, out = run_wrk(url, args.gen_cpu, args.duration, connections)
                found = re.search(r"(\d+) requests in", out)
                assert found is not None
                wrk_rounds.append((rps, 1000.0 * cpu_s / int(found.group(1))))
                ours = run_ours(url, args.gen_cpu, args.duration, connections)
                our_rounds.append((ours.achieved_rps,
                                   1000.0 * ours.generator_cpu_s / max(1, ours.requests),
                                   ours.generator_cpu_pct))
                errors += ours.errors["total"]
                reasons += ours.saturation_reasons
        wrk_rps = statistics.median(r[0] for r in wrk_rounds)
        wrk_per_k = statistics.median(r[1] for r in wrk_rounds)
        our_rps = statistics.median(r[0] for r in our_rounds)
        ours_per_k = statistics.median(r[1] for r in our_rounds)
        our_pct = statistics.median(r[2] for r in our_rounds)
        rps_ratio = our_rps / wrk_rps
        cpu_ratio = ours_per_k / wrk_per_k
        print(f"{kind:<13} {wrk_rps:>10.0f} {our_rps:>11.0f} {rps_ratio:>6.2f}   "
              f"{wrk_per_k:>12.4f} {ours_per_k:>13.4f} {cpu_ratio:>6.2f}  "
              f"{our_pct:>7.0f}%  {errors}")
        print(f"{'':<13} rounds wrk req/s {[round(r[0]) for r in wrk_rounds]}, ours "
              f"{[round(r[0]) for r in our_rounds]}")
        verdict_rps = "ok" if rps_ratio >= goal_rps else "BELOW GOAL"
        verdict_cpu = "ok" if cpu_ratio <= GOAL_CPU_RATIO else "ABOVE GOAL"
        print(f"{'':<13} req/s ratio goal >= {goal_rps}: {verdict_rps}; "
              f"CPU ratio goal <= {GOAL_CPU_RATIO}: {verdict_cpu}"
              + (f"; saturated: {reasons}" if reasons else ""))


def _row(label: str, pct: dict[str, float | None]) -> str:
    keys = ("p50", "p90", "p99", "p99_9", "max")
    return f"  {label:<26}" + "".join(
        f"{k}={pct[k]:8.3f}  " if pct[k] is not None else f"{k}=       -  " for k in keys)


def accuracy(args: argparse.Namespace) -> None:
    print(f"\n== Accuracy: server answers after exactly {DELAY_MS:g} ms; open loop "
          f"{DELAY_RATE:g} req/s, {args.duration:g}s (ms) ==")
    with server("testserver", args.server_cpu, "--delay-ms", str(DELAY_MS)) as url:
        result = run_load(LoadSpec(url=url, rate=DELAY_RATE, duration_s=args.duration,
                                   warmup_s=1.0, cpus=(args.gen_cpu,)))
    lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
    print(_row("corrected (from due time)", lat))
    print(_row("service (from send)", svc))
    added = {k: (lat[k] or 0.0) - (svc[k] or 0.0) for k in ("p50", "p90", "p99")}
    print("  generator's own share (corrected - service): "
          + ", ".join(f"{k} {v:+.3f} ms" for k, v in added.items()))
    print(f"  p50 error vs {DELAY_MS:g} ms: {(lat['p50'] or 0) - DELAY_MS:+.3f} ms;  "
          f"p99 error: {(lat['p99'] or 0) - DELAY_MS:+.3f} ms;  requests {result.requests}, "
          f"errors {result.errors['total']}, latest send {result.late_max_ms:.3f} ms after due, "
          f"generator CPU {result.generator_cpu_pct:.0f}%")


def stall(args: argparse.Namespace) -> None:
    duration = max(args.duration, STALL_AT_S + 2.0)
    print(f"\n== Coordinated omission: one {STALL_MS:g} ms stall at {STALL_AT_S:g}s; "
          f"{duration:g}s; {STALL_POOL} connections (ms) ==")
    extra = ("--stall-at-s", str(STALL_AT_S), "--stall-ms", str(STALL_MS))
    with server("testserver", args.server_cpu, *extra) as url:
        result = run_load(LoadSpec(url=url, rate=STALL_RATE, duration_s=duration,
                                   max_connections=STALL_POOL, cpus=(args.gen_cpu,)))
    print(f"  open loop {STALL_RATE:g} req/s, pool capped at {STALL_POOL}:")
    print(_row("corrected (from due time)", percentiles_ms(result.latency)))
    print(_row("service (from send)", percentiles_ms(result.service_time)))
    print(f"  behind schedule: {result.behind} of {result.scheduled}; saturated flag: "
          f"{result.saturated}")
    with server("testserver", args.server_cpu, *extra) as url:
        _, _, out = run_wrk(url, args.gen_cpu, duration, STALL_POOL)
    dist = re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)
    print(f"  wrk -c{STALL_POOL} (closed loop) on the same stall: "
          + ", ".join(f"p{p}={v}" for p, v in dist))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--gen-cpu", type=int, default=0)
    parser.add_argument("--servers", default="uvicorn,granian,uwsgi,gunicorn-sync")
    parser.add_argument("--skip", default="", help="comma list of: throughput,accuracy,stall")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    skip = set(args.skip.split(","))
    if "throughput" not in skip:
        throughput([s for s in args.servers.split(",") if s], args)
    if "accuracy" not in skip:
        accuracy(args)
    if "stall" not in skip:
        stall(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
