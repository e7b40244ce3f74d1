"""The built-in generator against Locust (through the harness's locust driver), same server,
same pinning, one run, side by side.

    .venv/bin/python benchmarks/locust_vs_builtin.py [--duration 5] [--concurrency 64]
        [--workers 2] [--server-cpu 1] [--gen-cpu 0]

1. Throughput and cost: the raw ASGI hello app on uvicorn pinned to one CPU, driven closed
   loop at one level by the built-in generator, by Locust in one process and by Locust's master
   with N workers, all pinned to the generator CPU. Prints req/s, the ratio to the built-in
   generator, generator CPU per 1,000 requests, p50/p99, and whether the driver marked itself
   the limit.
2. A stall: a server (tests.support.testserver) that holds every answer back once for 1 s,
   2 s into the load. The built-in open loop times latency from each request's intended send,
   so the ~1,000 requests due during the stall show in its p99; a closed loop (the built-in's,
   and Locust's, which has no other) sends nothing while its users wait, so the stall is a
   handful of slow requests among tens of thousands and its p99 hides it.

Needs the locust extra (pip install -e '.[locust]'). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.backends.local import start_target
from harness.catalogue import get_server, make_target
from harness.drivers import Driver
from harness.drivers.builtin import BuiltinDriver
from harness.drivers.locust import LocustDriver
from harness.loadgen import LoadResult, LoadSpec, percentiles_ms
from harness.runner import LOADGEN_CPUS_BUSY_MAX_PCT
from harness.sampling import watched_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 10.0
STALL_AT_S = 2.0
STALL_MS = 1000.0
STALL_RATE = 1000.0
STALL_CLIENTS = 16
MS_PER_S = 1000


@contextmanager
def stalling_server(cpu: int) -> Iterator[str]:
    """tests.support.testserver, pinned, holding its answers back once for STALL_MS (run from
    the repository's root, where ``python -m`` finds the ``tests`` package)."""
    proc = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-m",
                             "tests.support.testserver", "--port", "0", "--stall-at-s",
                             f"{STALL_AT_S:g}", "--stall-ms", f"{STALL_MS:g}",
                             "--lifetime-s", "120"], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"test server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/hello"
    finally:
        proc.kill()
        proc.wait()


def _ms(value: float | None) -> str:
    return f"{value:9.2f}" if value is not None else f"{'-':>9}"


def row(label: str, result: LoadResult, base_rps: float | None, busy: float | None) -> str:
    pct = percentiles_ms(result.latency)
    # generator CPU seconds per request, in ms per 1,000 requests
    per_k = MS_PER_S * 1000 * result.generator_cpu_s / result.completed \
        if result.completed else None
    ratio = f"{result.achieved_rps / base_rps:6.2f}" if base_rps else f"{'1.00':>6}"
    # as the runner judges: the driver's own check, and its CPUs busy (starved by others)
    limit = "LIMIT" if result.saturated else "busy" if busy is not None \
        and busy > LOADGEN_CPUS_BUSY_MAX_PCT else "-"
    return (f"{label:<24} {result.achieved_rps:9.0f} {ratio} {_ms(per_k)} "
            f"{result.generator_cpu_pct:7.0f} {_pct(busy)} {_ms(pct['p50'])} {_ms(pct['p99'])} "
            f"{_ms(pct['p99_9'])} {_ms(pct['max'])} {result.errors['total']:6} {limit:>5}")


HEADER = (f"{'driver':<24} {'req/s':>9} {'ratio':>6} {'CPU ms/1k':>9} {'gen CPU%':>7} "
          f"{'busy%':>5} "
          f"{'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'max ms':>9} {'errors':>6} "
          f"{'limit':>5}")


def _pct(value: float | None) -> str:
    return f"{value:5.0f}" if value is not None else f"{'-':>5}"


def measure(driver: Driver, spec: LoadSpec) -> tuple[LoadResult, float | None]:
    """The result, and how busy the generator's CPUs were meanwhile (everything on them:
    other processes too), percent."""
    cpus = spec.cpus or ()
    busy0, total0 = watched_cpu_seconds(cpus)
    result = driver.measure(spec)
    busy1, total1 = watched_cpu_seconds(cpus)
    for reason in result.saturation_reasons:
        print(f"    ({type(driver).__name__}: {reason})", file=sys.stderr)
    busy = 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
    return result, busy


def throughput(args: argparse.Namespace) -> None:
    print(f"\n1. uvicorn (raw ASGI app) on CPU {args.server_cpu}, closed loop "
          f"{args.concurrency} clients, {args.duration:g} s after {args.warmup:g} s warm-up, "
          f"generator on CPU {args.gen_cpu}")
    print(HEADER)
    target = start_target(make_target(get_server("uvicorn")), cpus=(args.server_cpu,))
    try:
        spec = LoadSpec(url=target.url + "/hello", concurrency=args.concurrency,
                        duration_s=args.duration, warmup_s=args.warmup, cpus=(args.gen_cpu,),
                        expect_body=b"Hello, World!")
        base, busy = measure(BuiltinDriver(), spec)
        print(row("builtin", base, None, busy), flush=True)
        one, busy = measure(LocustDriver(), spec)
        print(row("locust, 1 process", one, base.achieved_rps, busy), flush=True)
        many, busy = measure(LocustDriver(workers=args.workers), spec)
        print(row(f"locust, {args.workers} workers", many, base.achieved_rps, busy),
              flush=True)
    finally:
        target.stop()


def stall(args: argparse.Namespace) -> None:
    print(f"\n2. a server that stalls once for {STALL_MS:g} ms, {STALL_AT_S:g} s into the load "
          f"(tests.support.testserver on CPU {args.server_cpu}); {args.duration:g} s "
          f"measured after {args.warmup:g} s")
    print(HEADER)
    common = {"duration_s": args.duration, "warmup_s": args.warmup, "cpus": (args.gen_cpu,),
              "expect_body": b"hello"}
    runs: list[tuple[str, Driver, LoadSpec]] = [
        (f"builtin open {STALL_RATE:g}/s", BuiltinDriver(), LoadSpec(url="http://x/",
                                                                     rate=STALL_RATE)),
        (f"builtin closed {STALL_CLIENTS}", BuiltinDriver(),
         LoadSpec(url="http://x/", concurrency=STALL_CLIENTS)),
        (f"locust {STALL_CLIENTS} users", LocustDriver(),
         LoadSpec(url="http://x/", concurrency=STALL_CLIENTS)),
    ]
    for label, driver, template in runs:
        with stalling_server(args.server_cpu) as url:
            spec = LoadSpec(url=url, concurrency=template.concurrency, rate=template.rate,
                            **common)  # type: ignore[arg-type]
            result, busy = measure(driver, spec)
            print(row(label, result, None, busy), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="Locust workers in round 3")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--gen-cpu", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma list of: throughput,stall")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()
    if "throughput" not in skip:
        throughput(args)
    if "stall" not in skip:
        stall(args)
    print(f"\n({time.monotonic() - started:.0f} s; 'ratio' is req/s over the built-in "
          "generator's; 'limit' marks a trial whose driver says it, not the server, was the "
          "limit, 'busy' one whose generator CPU was over 90 % busy (the runner marks both "
          "invalid); CPU ms/1k is generator CPU time per 1,000 answered requests; busy% is how "
          "busy the generator's CPU was, by anything, warm-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
