"""What a container costs: the same servers, local processes vs Compose containers, one run.

    .venv/bin/python benchmarks/compose_vs_local.py [--servers gunicorn-sync,uvicorn]
        [--repeat 2] [--duration 5] [--concurrency 64]

Each server runs with its preset on the server CPUs (on 2 cores: CPU 1), started by the local
backend and by the compose backend in turn (alternating which goes first in each repeat, so a
drift of the machine falls on both), and is driven on ``/hello`` (gateway overhead) and on
``/io?ms=50`` (one upstream call of 50 ms) by the built-in generator on the other CPUs (closed
loop, ``--concurrency`` connections). One upstream, a local process, serves both backends, so
the difference is the server's container alone: host networking, cgroup CPU pinning, the
image's library versions. Prints req/s, p99 and server CPU per backend, and the ratio
compose / local per server and endpoint (median over the repeats).

Needs a Docker engine (DOCKER_HOST) and Docker Compose, as ``harness run --backend compose``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from harness.backends.base import Backend
from harness.backends.compose import ComposeBackend
from harness.backends.local import LocalBackend
from harness.catalogue import get_server, make_target
from harness.cpus import allocate_cpus
from harness.loadgen import LoadSpec, percentiles_ms, run_load

ENDPOINTS = {"hello": "/hello", "io": "/io?ms=50"}
WARMUP_S = 1.0


def measure(backend: Backend, server: str, *, cpus: tuple[int, ...], loadgen: tuple[int, ...],
            upstream_url: str, duration_s: float, concurrency: int) -> dict[str, dict[str, Any]]:
    """Start ``server`` on ``backend``, load each endpoint in turn, stop it."""
    target = make_target(get_server(server), app="raw", cpus=len(cpus))
    rows: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with backend.start_target(target, cpus=cpus, upstream_url=upstream_url) as running:
        start_s = time.monotonic() - started
        for name, path in ENDPOINTS.items():
            sampler = running.sampler(watch_cpus=loadgen)
            sampler.start()
            result = run_load(LoadSpec(url=running.url + path, concurrency=concurrency,
                                       duration_s=duration_s, warmup_s=WARMUP_S,
                                       cpus=loadgen))
            usage = sampler.stop()
            t0, t1 = result.window_start_ns, result.window_end_ns
            errors = sum(result.errors.values())
            rows[name] = {
                "rps": result.achieved_rps,
                "p99_ms": percentiles_ms(result.latency).get("p99"),
                "cpu_pct": usage.cpu_pct(t0, t1),
                "rss_mb": usage.peak_mb(t0, t1)[0],
                "errors": errors,
                "start_s": start_s,
            }
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="gunicorn-sync,uvicorn")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", help="also write the raw rows to this file")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    plan = allocate_cpus()
    os.sched_setaffinity(0, plan.loadgen)  # the harness itself stays off the server's CPUs
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    with LocalBackend() as local, ComposeBackend() as compose:
        print(f"compose image {compose.image} ({'built' if compose.image_built else 'cached'}"
              f" in {compose.build_s or 0:.0f}s); server CPUs {plan.server}, generator "
              f"{plan.loadgen}", flush=True)
        with local.start_upstream(cpus=plan.loadgen) as upstream:
            for repeat in range(args.repeat):
                order: list[Backend] = [local, compose] if repeat % 2 == 0 else [compose, local]
                for server in servers:
                    for backend in order:
                        rows = measure(backend, server, cpus=plan.server, loadgen=plan.loadgen,
                                       upstream_url=upstream.url, duration_s=args.duration,
                                       concurrency=args.concurrency)
                        for endpoint, row in rows.items():
                            results[(server, endpoint, backend.name)].append(row)
                            print(f"  repeat {repeat + 1} {server:<16} {endpoint:<6} "
                                  f"{backend.name:<8} {row['rps']:>9.0f} req/s  p99 "
                                  f"{row['p99_ms'] or 0:>8.1f} ms  CPU "
                                  f"{row['cpu_pct'] or 0:>5.0f}%  errors {row['errors']}",
                                  file=sys.stderr, flush=True)
    print(table(results, servers))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{"server": s, "endpoint": e, "backend": b, "runs": rows}
                       for (s, e, b), rows in results.items()], handle, indent=1)
    return 0


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: dict[tuple[str, str, str], list[dict[str, Any]]],
          servers: list[str]) -> str:
    lines = ["| server | endpoint | local req/s | compose req/s | ratio | local p99 ms | "
             "compose p99 ms | local CPU % | compose CPU % | start s (local / compose) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for server in servers:
        for endpoint in ENDPOINTS:
            local = results[(server, endpoint, "local")]
            compose = results[(server, endpoint, "compose")]
            l_rps, c_rps = _median(local, "rps"), _median(compose, "rps")
            ratio = c_rps / l_rps if l_rps and c_rps is not None else None
            lines.append(
                f"| {server} | {endpoint} | {_fmt(l_rps, ',.0f')} | {_fmt(c_rps, ',.0f')} | "
                f"{_fmt(ratio, '.2f')} | {_fmt(_median(local, 'p99_ms'), '.1f')} | "
                f"{_fmt(_median(compose, 'p99_ms'), '.1f')} | "
                f"{_fmt(_median(local, 'cpu_pct'), '.0f')} | "
                f"{_fmt(_median(compose, 'cpu_pct'), '.0f')} | "
                f"{_fmt(_median(local, 'start_s'), '.1f')} / "
                f"{_fmt(_median(compose, 'start_s'), '.1f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
