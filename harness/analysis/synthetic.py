"""Synthetic run folders for tests, benchmarks and notebook development. Not measurements.

The folders are written with harness.results.RunWriter, with real HDR histograms recorded from
generated latencies, so every reader sees exactly the format a real run has. The numbers follow
a crude I/O-bound model (each request waits ``IO_WAIT_MS``; a sync worker serves one request at
a time, an event loop many) so plots and guidance have something sensible to show.

    python -m harness.analysis.synthetic OUT_DIR [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.results import RunWriter, TrialRecord, trial_id

IO_WAIT_MS = 50.0
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_SIGNIFICANT_FIGURES = 3
# Recording every sample would cost seconds per trial; this many, with weights, keeps the shape.
SAMPLES_PER_TRIAL = 4000


@dataclass(frozen=True, kw_only=True)
class FakeServer:
    """A server of the synthetic model: its gateway and the request rate it saturates at."""

    name: str
    gateway: str
    capacity_rps: float
    cpu_per_request_ms: float
    rss_mb: float
    workers: int = 1
    threads: int | None = None
    note: str = ""


DEFAULT_SERVERS: tuple[FakeServer, ...] = (
    FakeServer(name="gunicorn-sync", gateway="wsgi", capacity_rps=2 * 1000 / IO_WAIT_MS,
               cpu_per_request_ms=1.2, rss_mb=48.0, workers=2,
               note="gunicorn docs: (2 x $num_cores) + 1 workers, trimmed to the CPU set"),
    FakeServer(name="gunicorn-gthread", gateway="wsgi", capacity_rps=8 * 1000 / IO_WAIT_MS,
               cpu_per_request_ms=1.0, rss_mb=52.0, workers=2, threads=4,
               note="gunicorn docs: threads for I/O-bound apps"),
    FakeServer(name="uvicorn", gateway="asgi", capacity_rps=2400.0, cpu_per_request_ms=0.38,
               rss_mb=31.0, note="uvicorn docs: one worker per core"),
    FakeServer(name="hypercorn", gateway="asgi", capacity_rps=1300.0, cpu_per_request_ms=0.7,
               rss_mb=38.0, note="hypercorn docs: one worker per core"),
)


@dataclass(frozen=True, kw_only=True)
class SyntheticSpec:
    """What to generate. ``invalid`` names (server, concurrency) pairs whose trials fail."""

    servers: tuple[FakeServer, ...] = DEFAULT_SERVERS
    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    rates: tuple[float, ...] = (50.0, 200.0, 800.0)
    repeats: int = 1
    duration_s: float = 5.0
    seed: int = 7
    scenario: str = "io_bound"
    kind: str = "io"
    invalid: tuple[tuple[str, int], ...] = (("gunicorn-sync", 256),)
    noisy: tuple[str, ...] = ()  # servers whose repeats vary by ~25 %
    run_id: str = "synthetic-io_bound"
    extra_meta: dict[str, Any] = field(default_factory=dict)


def _latencies_us(rng: np.random.Generator, median_ms: float, n: int) -> np.ndarray:
    # Lognormal body plus a heavier tail: what a loaded server's latency tends to look like.
    body = rng.lognormal(mean=math.log(median_ms * 1000.0), sigma=0.12, size=n)
    tail = rng.random(n) < 0.02
    body[tail] *= rng.uniform(1.5, 4.0, size=int(tail.sum()))
    return np.clip(np.round(body), HIST_LOWEST_US, HIST_HIGHEST_US).astype(np.int64)


def _histogram(values_us: np.ndarray, total: int) -> HdrHistogram:
    hist = HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_FIGURES)
    unique, counts = np.unique(values_us, return_counts=True)
    # Scale the sample's counts to the trial's request count so percentiles keep their meaning.
    weights = np.maximum(np.round(counts * total / max(len(values_us), 1)), 1).astype(np.int64)
    for value, weight in zip(unique.tolist(), weights.tolist(), strict=True):
        hist.record_value(int(value), int(weight))
    return hist


def _ms(hist: HdrHistogram, percentile: float) -> float | None:
    if hist.get_total_count() == 0:
        return None
    return float(hist.get_value_at_percentile(percentile)) / 1000.0


def _meta(spec: SyntheticSpec) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "started_at": "2026-11-24T23:15:00+0000",
        "finished_at": "2026-11-24T23:25:00+0000",
        "status": "complete",
        "synthetic": True,
        "command_line": ["harness", "run", "--scenario", spec.scenario, "--quick"],
        "scenario": {"name": spec.scenario, "kind": spec.kind, "endpoint": "/io?ms=50",
                     "description": "Synthetic I/O-bound data: every request waits 50 ms.",
                     "hash": "sha256:" + "0" * 64},
        "environment": {"cpu_model": "Synthetic CPU @ 3.0GHz", "cpu_count": 2,
                        "kernel": "6.1.0-synthetic", "os": "Linux-6.1.0-synthetic-x86_64",
                        "python": "3.11.2",
                        "versions": {"gunicorn": "23.0.0", "uvicorn": "0.34.0",
                                     "hypercorn": "0.17.3", "hdrhistogram": "0.10.3"},
                        "git_commit": None, "env": {"PYTHONHASHSEED": "0"}},
        "cpus": {"server": [1], "loadgen": [0]},
        "targets": [{"server": s.name, "gateway": s.gateway, "app": "raw", "workers": s.workers,
                     "threads": s.threads, "preset_note": s.note, "version": "0.0",
                     "command": [s.name, "apps.raw"], "status": "ok", "reason": ""}
                    for s in spec.servers],
        **spec.extra_meta,
    }


def write_synthetic_run(run_dir: Path, spec: SyntheticSpec | None = None) -> Path:
    """Write a complete synthetic run folder at ``run_dir`` and return it."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    writer = RunWriter(run_dir, _meta(spec))
    index = 0
    levels: list[tuple[str, float]] = [("closed", float(c)) for c in spec.concurrency]
    levels += [("open", r) for r in spec.rates]
    for server in spec.servers:
        for load_model, level in levels:
            for repeat in range(1, spec.repeats + 1):
                index += 1
                record, hist, series = _trial(rng, spec, server, load_model, level, repeat, index)
                writer.append_trial(record, latency_hdr=hist.encode(), series=series)
    return run_dir


def _trial(rng: np.random.Generator, spec: SyntheticSpec, server: FakeServer, load_model: str,
           level: float, repeat: int, index: int
           ) -> tuple[TrialRecord, HdrHistogram, list[dict[str, object]]]:
    noise = 0.25 if server.name in spec.noisy else 0.03
    factor = float(np.clip(rng.normal(1.0, noise), 0.5, 1.5))
    capacity = server.capacity_rps * factor
    if load_model == "closed":
        # Little's law: N clients each waiting at least IO_WAIT_MS.
        rps = min(level * 1000.0 / IO_WAIT_MS, capacity) * 0.97
        median_ms = max(IO_WAIT_MS * 1.02, level * 1000.0 / rps)
        offered = None
    else:
        rps = min(level, capacity)
        # Past capacity the open-loop queue grows for the whole trial.
        median_ms = IO_WAIT_MS * 1.03 if level < capacity * 0.9 else (
            IO_WAIT_MS + 1000.0 * spec.duration_s * (1.0 - capacity / level) / 2.0)
        offered = level
    requests = int(rps * spec.duration_s)
    broken = load_model == "closed" and (server.name, int(level)) in spec.invalid
    errors = int(requests * 0.04) if broken else 0
    behind = 0 if load_model == "closed" or level < capacity * 0.9 else int(level - capacity)
    samples = _latencies_us(rng, median_ms, SAMPLES_PER_TRIAL)
    hist = _histogram(samples, requests)
    cpu_pct = min(100.0, rps * server.cpu_per_request_ms / 10.0 + 2.0)
    rss = server.rss_mb * (1.0 + min(level, 512) / 2048.0)
    reasons = []
    if broken:
        reasons.append(f"errors {errors / (requests + errors):.2%} of requests (limit 0.1%)")
    if behind:
        reasons.append(f"generator saturated: {behind} requests behind schedule")
    tid = trial_id(index, server.name, load_model, level, repeat)
    record = TrialRecord(
        trial_id=tid, scenario=spec.scenario, server=server.name, gateway=server.gateway,
        app="raw", endpoint="/io?ms=50", load_model=load_model,
        concurrency=int(level) if load_model == "closed" else None,
        rate=level if load_model == "open" else None, repeat=repeat,
        duration_s=spec.duration_s, requests=requests, achieved_rps=requests / spec.duration_s,
        offered_rps=offered, errors=errors,
        error_rate=errors / (requests + errors) if requests + errors else 0.0,
        errors_connect=0, errors_io=errors, errors_timeout=0, errors_status=0, errors_body=0,
        p50_ms=_ms(hist, 50), p75_ms=_ms(hist, 75), p90_ms=_ms(hist, 90), p99_ms=_ms(hist, 99),
        p99_9_ms=_ms(hist, 99.9), p99_99_ms=_ms(hist, 99.99),
        max_ms=hist.get_max_value() / 1000.0, mean_ms=hist.get_mean_value() / 1000.0,
        service_p50_ms=None, service_p99_ms=None, behind=behind, out_of_range=0,
        server_cpu_pct=cpu_pct, server_rss_mb=rss, server_pss_mb=rss * 0.8,
        loadgen_cpu_pct=min(85.0, rps / 40.0), saturated=bool(behind), valid=not reasons,
        invalid_reason="; ".join(reasons), status="ok", workers=server.workers,
        threads=server.threads,
        server_cpus="1", loadgen_cpus="0", started_at="2026-11-24T23:16:00+00:00",
    )
    series: list[dict[str, object]] = []
    for second in range(int(spec.duration_s)):
        jitter = float(rng.normal(1.0, 0.04))
        series.append({
            "second": second, "requests": int(rps * jitter), "completed": int(rps * jitter),
            "errors": int(errors / spec.duration_s), "p50_ms": record.p50_ms,
            "p99_ms": (record.p99_ms or 0.0) * float(rng.uniform(0.8, 1.2)),
            "server_cpu_pct": cpu_pct * jitter, "server_rss_mb": rss,
        })
    return record, hist, series


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write a synthetic run folder (not a measurement)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    path = write_synthetic_run(args.out, SyntheticSpec(repeats=args.repeats, noisy=("hypercorn",)))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
