"""Synthetic run folders for tests, benchmarks and notebook development. Not measurements.

The folders are written with harness.results.RunWriter, with real HDR histograms recorded from
generated latencies, so every reader sees exactly the format a real run has. The numbers follow
a crude I/O-bound model (each request waits ``IO_WAIT_MS``; a sync worker serves one request at
a time, an event loop many) so plots and guidance have something sensible to show.

    python -m tests.support.synthetic OUT_DIR [--repeats N]
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

from harness.noise import Noise
from harness.results import (
    CapacityRecord,
    LoadModel,
    Outcome,
    RunWriter,
    TrialRecord,
    TrialStatus,
    trial_id,
)
from harness.slo import CapacitySearch, SearchPolicy, Slo, judge_open_loop, parse_slo

IO_WAIT_MS = 50.0
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_SIGNIFICANT_FIGURES = 3
# Recording every sample would cost seconds per trial; this many, with weights, keeps the shape.
SAMPLES_PER_TRIAL = 4000
# run.json's notice (harness.results): the report says these numbers were made up.
SYNTHETIC_NOTICE = "synthetic data for development, not a measurement"


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
    """What to generate.

    ``overloaded``: (server, concurrency) pairs whose trials fail 4 % of their requests (the
    server did not keep up: outcome overloaded); ``invalid``: pairs whose generator saturated
    (outcome invalid). Open-loop levels past a server's capacity are overloaded (it fell
    behind with every connection busy). ``busy``: (server, concurrency) pairs taken while
    other processes used the machine (notes and ``others_cpu_pct`` say so). ``slo``: a
    latency objective: each server and repeat then gets a capacity search (phase "search"
    trials, judged by harness.slo's own search) and a capacity.csv row.
    """

    servers: tuple[FakeServer, ...] = DEFAULT_SERVERS
    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    rates: tuple[float, ...] = (50.0, 200.0, 800.0)
    repeats: int = 1
    duration_s: float = 5.0
    seed: int = 7
    scenario: str = "io_bound"
    kind: str = "io"
    overloaded: tuple[tuple[str, int], ...] = (("gunicorn-sync", 256),)
    invalid: tuple[tuple[str, int], ...] = (("hypercorn", 256),)
    busy: tuple[tuple[str, int], ...] = ()
    noisy: tuple[str, ...] = ()  # servers whose repeats vary by ~25 %
    slo: Slo | None = None
    search_steps: int = 10  # hypercorn, its 256 level invalid, takes 9 from its 16-client peak
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
    # One record per bucket, at its smallest value with its values' weights summed: the same
    # counts (and the same bucket for the minimum and the maximum) as a record per value, in
    # fewer calls (tests/test_synthetic.py).
    if not len(unique):
        return hist
    index = _counts_indexes(hist, unique)
    firsts = np.flatnonzero(np.diff(index, prepend=-1))  # ``unique`` is sorted: so is ``index``
    for value, weight in zip(unique[firsts].tolist(), np.add.reduceat(weights, firsts).tolist(),
                             strict=True):
        hist.record_value(value, weight)
    return hist


def _counts_indexes(hist: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """Where ``hist`` counts each of ``values`` (positive): hdrh's ``_counts_index_for``, for an
    array at once."""
    mask: int = hist.sub_bucket_mask
    unit: int = hist.unit_magnitude
    half_magnitude: int = hist.sub_bucket_half_count_magnitude
    half_count: int = hist.sub_bucket_half_count
    _, bit_length = np.frexp((values | mask).astype(np.float64))  # exact below 2**53
    bucket = bit_length.astype(np.int64) - unit - (half_magnitude + 1)
    sub_bucket = values >> (bucket + unit)
    indexes: np.ndarray = ((bucket + 1) << half_magnitude) + sub_bucket - half_count
    return indexes


# hdrh's percentile and mean walk every one of a histogram's 17,408 buckets in Python: they were
# most of the time a synthetic run took (and of the fast test tier). _ms and _mean_ms give the
# very same numbers (tests/test_synthetic.py) from the counts, by numpy.


def _counts(hist: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts)  # hdrh's own counts (a ctypes array), not a copy


def _ms(hist: HdrHistogram, percentile: float) -> float | None:
    """``hist.get_value_at_percentile(percentile)`` in ms; None when nothing was recorded."""
    if hist.get_total_count() == 0:
        return None
    target = hist.get_target_count_at_percentile(percentile)
    # the first bucket where the running count reaches the target, as hdrh's walk finds it
    value = hist.get_value_from_index(int(np.searchsorted(np.cumsum(_counts(hist)), target)))
    edge = (hist.get_highest_equivalent_value(value) if percentile else
            hist.get_lowest_equivalent_value(value))
    return float(edge) / 1000.0


def _mean_ms(hist: HdrHistogram) -> float:
    """``hist.get_mean_value()`` in ms: each count at the middle of its bucket, summed as
    integers (so the same sum in any order), over the buckets that have counts."""
    count: int = hist.get_total_count()
    if count == 0:
        return 0.0
    counts = _counts(hist)
    total = sum(int(counts[index]) * hist._hdr_median_equiv_value(hist.get_value_from_index(index))
                for index in np.flatnonzero(counts).tolist())
    return float(total) / count / 1000.0


def _meta(spec: SyntheticSpec) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "started_at": "2026-11-24T23:15:00+0000",
        "finished_at": "2026-11-24T23:25:00+0000",
        "status": "complete",
        # what the report shows first in this run's section and its facts
        "notice": SYNTHETIC_NOTICE,
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
        "plan": ({"slo": spec.slo.to_dict()} if spec.slo is not None else {}),
        **spec.extra_meta,
    }


def write_synthetic_run(run_dir: Path, spec: SyntheticSpec | None = None) -> Path:
    """Write a complete synthetic run folder at ``run_dir`` and return it."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    writer = RunWriter(run_dir, _meta(spec))
    index = 0
    levels: list[tuple[LoadModel, float]] = [("closed", float(c)) for c in spec.concurrency]
    levels += [("open", r) for r in spec.rates]
    for server in spec.servers:
        peaks: list[float] = []
        for load_model, level in levels:
            for repeat in range(1, spec.repeats + 1):
                index += 1
                record, hist, series = _trial(rng, spec, server, load_model, level, repeat, index)
                writer.append_trial(record, latency_hdr=hist.encode(), series=series)
                if record.load_model == "closed" and record.valid:
                    peaks.append(record.achieved_rps)
        if spec.slo is None:
            continue
        for repeat in range(1, spec.repeats + 1):
            index = _search(rng, spec, spec.slo, writer, server, repeat, index, peaks)
    return run_dir


def _search(rng: np.random.Generator, spec: SyntheticSpec, slo: Slo, writer: RunWriter,
            server: FakeServer, repeat: int, index: int, peaks: list[float]) -> int:
    """One capacity search of ``server`` (harness.slo's own state machine); returns the index
    of the last trial written."""
    search = CapacitySearch(SearchPolicy(max_steps=spec.search_steps),
                            peak_rps=max(peaks, default=None))
    while (rate := search.next_rate()) is not None:
        index += 1
        record, hist, series = _trial(rng, spec, server, "open", rate, repeat, index,
                                      phase="search")
        writer.append_trial(record, latency_hdr=hist.encode(), series=series)
        if record.outcome == "invalid":
            search.record(rate, record.trial_id, None, undetermined=record.invalid_reason)
        else:
            why = record.invalid_reason if record.outcome == "overloaded" else slo.check(record)
            search.record(rate, record.trial_id, why)
    found = search.result()
    writer.append_capacity(CapacityRecord(
        server=server.name, repeat=repeat, gateway=server.gateway, app="raw",
        slo=slo.describe(), status=found.status, capacity_rps=found.capacity_rps,
        proof_trial=found.proof_trial, failed_rate=found.failed_rate,
        failed_trial=found.failed_trial, steps=found.steps, note=found.note))
    return index


def _trial(rng: np.random.Generator, spec: SyntheticSpec, server: FakeServer,
           load_model: LoadModel,
           level: float, repeat: int, index: int, *, phase: str = "sweep"
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
            IO_WAIT_MS * 1.03 + 1000.0 * spec.duration_s * max(0.0, 1.0 - capacity / level) / 2.0)
        offered = level
    requests = int(rps * spec.duration_s)
    closed_key = (server.name, int(level)) if load_model == "closed" else None
    broken = closed_key in spec.overloaded
    saturated = closed_key in spec.invalid
    errors = int(requests * 0.04) if broken else 0
    behind = 0 if load_model == "closed" else max(0, int(level - capacity))
    samples = _latencies_us(rng, median_ms, SAMPLES_PER_TRIAL)
    hist = _histogram(samples, requests)
    cpu_pct = min(100.0, rps * server.cpu_per_request_ms / 10.0 + 2.0)
    rss = server.rss_mb * (1.0 + min(level, 512) / 2048.0)
    reasons = []
    if behind:
        reasons.append(f"connection cap reached: {behind * int(spec.duration_s)} requests "
                       "waited for a connection, with every connection busy on a server that "
                       f"fell behind {level:g} req/s")
    if broken:
        reasons.append(f"errors {errors / (requests + errors):.2%} of requests (limit 0.1%)")
    if saturated:
        reasons.append("generator saturated: the generator's CPUs (0) were 97% busy (> 90%)")
    outcome: Outcome = "invalid" if saturated else "overloaded" if reasons else "valid"
    machine = (Noise(others_cpu_pct=float(rng.uniform(30.0, 60.0)), steal_pct=0.0)
               if closed_key in spec.busy else
               Noise(others_cpu_pct=float(rng.uniform(1.0, 6.0)), steal_pct=0.0))
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
        max_ms=hist.get_max_value() / 1000.0, mean_ms=_mean_ms(hist),
        service_p50_ms=None, service_p99_ms=None, behind=behind, out_of_range=0,
        server_cpu_pct=cpu_pct, server_rss_mb=rss, server_pss_mb=rss * 0.8,
        loadgen_cpu_pct=97.0 if saturated else min(85.0, rps / 40.0), saturated=saturated,
        valid=outcome == "valid", invalid_reason="; ".join(reasons), status=TrialStatus.OK,
        workers=server.workers, threads=server.threads,
        server_cpus="1", loadgen_cpus="0", started_at="2026-11-24T23:16:00+00:00",
        notes=machine.note() if machine.busy else "", outcome=outcome, phase=phase,
        others_cpu_pct=machine.others_cpu_pct, steal_pct=machine.steal_pct,
    )
    record = judge_open_loop(record, spec.slo)  # as the runner judges its open-loop trials
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


# -- WebSocket ---------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FakeWsServer:
    """An ASGI server of the synthetic WebSocket model."""

    name: str
    echo_capacity: float  # 64 B echo round trips per second at saturation
    idle_kib: float  # memory per idle connection
    rss_mb: float
    max_idle: int = 1_000_000  # connections it holds before it drops the rest


DEFAULT_WS_SERVERS: tuple[FakeWsServer, ...] = (
    FakeWsServer(name="uvicorn", echo_capacity=18_000.0, idle_kib=21.5, rss_mb=40.0),
    FakeWsServer(name="daphne", echo_capacity=7_000.0, idle_kib=13.2, rss_mb=60.0,
                 max_idle=9_000),
    FakeWsServer(name="granian-asgi", echo_capacity=30_000.0, idle_kib=8.7, rss_mb=35.0),
)
# WSGI servers are listed as unsupported, as the runner does.
UNSUPPORTED_WS = ("gunicorn-sync", "uwsgi")
WS_UNSUPPORTED_REASON = "the WSGI interface has no way to hold a WebSocket connection"
# An 8 KiB message costs the server this much more than a 64 B one.
LARGE_MESSAGE_COST = 2.5


@dataclass(frozen=True, kw_only=True)
class SyntheticWsSpec:
    """What to generate for a WebSocket run. ``invalid`` names (server, load_model, level)
    triples whose trials are marked invalid (the generator saturated)."""

    servers: tuple[FakeWsServer, ...] = DEFAULT_WS_SERVERS
    connections: tuple[int, ...] = (1, 16, 64)
    rates: tuple[float, ...] = (1000.0, 5000.0)
    message_sizes: tuple[int, ...] = (64, 8192)
    subscribers: tuple[int, ...] = (100, 1000)
    broadcast_rate: float = 50.0
    idle: tuple[int, ...] = (1000, 10_000)
    duration_s: float = 4.0
    seed: int = 11
    invalid: tuple[tuple[str, str, float], ...] = (("uvicorn", "open", 5000.0),)
    run_id: str = "synthetic-websocket"


def _ws_meta(spec: SyntheticWsSpec) -> dict[str, Any]:
    meta = _meta(SyntheticSpec(scenario="websocket", kind="websocket", run_id=spec.run_id))
    meta["command_line"] = ["harness", "run", "--scenario", "websocket"]
    meta["scenario"].update(endpoint="/ws/echo", description=(
        "Synthetic WebSocket data: echo, broadcast and idle connections."))
    meta["targets"] = [
        {"server": s.name, "gateway": "asgi", "app": "raw", "workers": 1, "threads": None,
         "preset_note": "one worker per core", "version": "0.0", "websocket": True,
         "command": [s.name, "apps.raw.asgi:app"], "status": "ok", "reason": ""}
        for s in spec.servers]
    meta["targets"] += [
        {"server": name, "gateway": "wsgi", "app": "raw", "workers": 3, "threads": None,
         "preset_note": "", "version": "0.0", "websocket": False, "status": "unsupported",
         "reason": f"{name} is a WSGI server: {WS_UNSUPPORTED_REASON}"}
        for name in UNSUPPORTED_WS]
    return meta


def write_synthetic_ws_run(run_dir: Path, spec: SyntheticWsSpec | None = None) -> Path:
    """Write a synthetic WebSocket run folder (echo closed/open per message size, broadcast,
    idle) at ``run_dir`` and return it."""
    spec = spec or SyntheticWsSpec()
    rng = np.random.default_rng(spec.seed)
    writer = RunWriter(run_dir, _ws_meta(spec))
    levels: list[tuple[LoadModel, float, int | None]] = []
    for message_size in spec.message_sizes:
        levels += [("closed", float(c), message_size) for c in spec.connections]
        levels += [("open", r, message_size) for r in spec.rates]
    levels += [("broadcast", float(n), spec.message_sizes[0]) for n in spec.subscribers]
    levels += [("idle", float(n), None) for n in spec.idle]
    index = 0
    for server in spec.servers:
        for load_model, level, size in levels:
            index += 1
            record, hist, service = _ws_trial(rng, spec, server, load_model, level, size, index)
            writer.append_trial(record, latency_hdr=hist.encode() if hist else None,
                                service_hdr=service.encode() if service else None)
    return run_dir


def _ws_trial(rng: np.random.Generator, spec: SyntheticWsSpec, server: FakeWsServer,
              load_model: LoadModel, level: float, size: int | None, index: int
              ) -> tuple[TrialRecord, HdrHistogram | None, HdrHistogram | None]:
    factor = float(np.clip(rng.normal(1.0, 0.03), 0.9, 1.1))
    capacity = server.echo_capacity * factor / (LARGE_MESSAGE_COST if (size or 0) > 1024
                                                else 1.0)
    service_ms = 1000.0 / capacity
    hist: HdrHistogram | None = None
    service: HdrHistogram | None = None
    notes: list[str] = []
    held = int(level)
    memory_kb: float | None = None
    errors_timeout = 0
    if load_model == "closed":
        rps = min(level * 1000.0 / (0.05 + service_ms), capacity)
        hist = _histogram(_latencies_us(rng, level * 1000.0 / rps, SAMPLES_PER_TRIAL),
                          int(rps * spec.duration_s))
    elif load_model == "open":
        rps = min(level, capacity)
        busy = level / capacity
        median = service_ms / max(1.0 - busy, 0.05)
        hist = _histogram(_latencies_us(rng, median * 1.1, SAMPLES_PER_TRIAL),
                          int(rps * spec.duration_s))
        service = _histogram(_latencies_us(rng, median, SAMPLES_PER_TRIAL),
                             int(rps * spec.duration_s))
        held = min(MAX_WS_CONNECTIONS, max(1, int(level * median / 1000.0) + 1))
    elif load_model == "broadcast":
        expected = int(spec.broadcast_rate * spec.duration_s * level)
        delivered = expected - (int(expected * 0.002) if level >= 1000 else 0)
        errors_timeout = expected - delivered
        rps = delivered / spec.duration_s
        hist = _histogram(_latencies_us(rng, service_ms * level / 4.0, SAMPLES_PER_TRIAL),
                          delivered)
        held = int(level) + 1
        notes += [f"broadcast: {int(level)} of {int(level)} subscribers shared the publisher's "
                  "server worker process and were expected to receive each message (a "
                  "broadcast does not cross worker processes without a broker)",
                  f"broadcast: {delivered} of {expected} expected deliveries arrived "
                  f"({delivered / expected:.2%})"]
    else:
        rps = 0.0
        held = min(int(level), server.max_idle)
        memory_kb = server.idle_kib * float(rng.uniform(0.97, 1.03))
        notes.append(f"idle: the server held {held} of {int(level)} connections to the end")
    requests = int(rps * spec.duration_s)
    reasons: list[str] = []
    outcome: Outcome = "valid"
    if (server.name, load_model, level) in spec.invalid:
        reasons.append("generator saturated: the generator's CPUs (0) were 97% busy (> 90%)")
        outcome = "invalid"
    elif load_model == "idle" and held < level:
        reasons.append(f"the server held only {held} of {int(level)} idle connections to the "
                       "end")
        outcome = "overloaded"
    rss = server.rss_mb + (memory_kb or 0.0) * held / 1024.0
    cpu_pct = min(100.0, 100.0 * rps / capacity) if load_model != "idle" else 0.5
    tid = trial_id(index, server.name, load_model, level, 1,
                   size if load_model in ("closed", "open") else None)
    record = TrialRecord(
        trial_id=tid, scenario="websocket", server=server.name, gateway="asgi", app="raw",
        endpoint="/ws/echo", load_model=load_model,
        concurrency=None if load_model == "open" else int(level),
        rate=level if load_model == "open" else (
            spec.broadcast_rate if load_model == "broadcast" else None),
        repeat=1, duration_s=spec.duration_s, requests=requests,
        achieved_rps=requests / spec.duration_s,
        offered_rps=level if load_model == "open" else (
            spec.broadcast_rate if load_model == "broadcast" else None),
        errors=errors_timeout, error_rate=errors_timeout / max(requests + errors_timeout, 1),
        errors_connect=0, errors_io=0, errors_timeout=errors_timeout, errors_status=0,
        errors_body=0,
        p50_ms=_ms(hist, 50) if hist else None, p75_ms=_ms(hist, 75) if hist else None,
        p90_ms=_ms(hist, 90) if hist else None, p99_ms=_ms(hist, 99) if hist else None,
        p99_9_ms=_ms(hist, 99.9) if hist else None, p99_99_ms=_ms(hist, 99.99) if hist else None,
        max_ms=hist.get_max_value() / 1000.0 if hist else None,
        mean_ms=_mean_ms(hist) if hist else None,
        service_p50_ms=_ms(service, 50) if service else None,
        service_p99_ms=_ms(service, 99) if service else None,
        behind=0, out_of_range=0, server_cpu_pct=cpu_pct, server_rss_mb=rss,
        server_pss_mb=rss * 0.85, loadgen_cpu_pct=40.0, saturated=outcome == "invalid",
        valid=outcome == "valid", invalid_reason="; ".join(reasons), status=TrialStatus.OK,
        workers=1, threads=None, server_cpus="1", loadgen_cpus="0",
        started_at="2026-11-24T23:16:00+00:00", notes="; ".join(notes), protocol="websocket",
        message_size=size, connections_at_end=held, memory_per_connection_kb=memory_kb,
        outcome=outcome,
    )
    return record, hist, service


MAX_WS_CONNECTIONS = 256


# -- several app families ------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FakeFamilyTarget:
    """One server running one app family in the synthetic model (harness.analysis.families):
    the request rate it saturates at, and its CPU cost per request."""

    server: str
    gateway: str
    app: str
    capacity_rps: float
    cpu_per_request_ms: float = 1.0
    rss_mb: float = 60.0
    workers: int = 1


# Groups as harness.catalogue.APPS names them (copied: a synthetic run must not change when
# the catalogue does).
FAMILY_GROUPS: dict[str, tuple[str, ...]] = {
    "raw": (), "django": ("django",), "django-async": ("django",),
    "flask": ("flask-quart", "flask-fastapi"), "quart": ("flask-quart",),
    "fastapi": ("flask-fastapi",), "starlette": ("starlette-pyramid",),
    "pyramid": ("starlette-pyramid",),
}
DEFAULT_FAMILY_TARGETS: tuple[FakeFamilyTarget, ...] = (
    FakeFamilyTarget(server="gunicorn-sync", gateway="wsgi", app="raw", capacity_rps=58.0,
                     workers=3),
    FakeFamilyTarget(server="gunicorn-sync", gateway="wsgi", app="django", capacity_rps=52.0,
                     cpu_per_request_ms=4.0, workers=3),
    FakeFamilyTarget(server="gunicorn-sync", gateway="wsgi", app="flask", capacity_rps=56.0,
                     cpu_per_request_ms=2.0, workers=3),
    FakeFamilyTarget(server="gunicorn-sync", gateway="wsgi", app="pyramid", capacity_rps=55.0,
                     cpu_per_request_ms=2.5, workers=3),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="raw", capacity_rps=2400.0,
                     cpu_per_request_ms=0.4),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="django", capacity_rps=300.0,
                     cpu_per_request_ms=3.2),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="django-async", capacity_rps=900.0,
                     cpu_per_request_ms=1.1),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="quart", capacity_rps=700.0,
                     cpu_per_request_ms=1.4),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="fastapi", capacity_rps=1500.0,
                     cpu_per_request_ms=0.7),
    FakeFamilyTarget(server="uvicorn", gateway="asgi", app="starlette", capacity_rps=2000.0,
                     cpu_per_request_ms=0.5),
)


@dataclass(frozen=True, kw_only=True)
class SyntheticFamiliesSpec:
    """A run of several app families on several servers (the ``frameworks`` scenario).

    Trial ids name the target "server+family" as a real run does. ``overloaded`` and
    ``invalid``: (server, app, concurrency) triples (4 % errors; generator saturated).
    ``failed``: (server, app, status, reason) of targets run.json lists as never measured.
    Every family is listed on every server; the other gateway's are "unsupported". Throughput
    is the model's exactly (no noise), so tests can predict the guidance.
    """

    targets: tuple[FakeFamilyTarget, ...] = DEFAULT_FAMILY_TARGETS
    concurrency: tuple[int, ...] = (1, 64, 256)
    repeats: int = 1
    duration_s: float = 5.0
    seed: int = 13
    overloaded: tuple[tuple[str, str, int], ...] = (("gunicorn-sync", "flask", 256),)
    invalid: tuple[tuple[str, str, int], ...] = (
        ("uvicorn", "starlette", 1), ("uvicorn", "starlette", 64), ("uvicorn", "starlette", 256))
    failed: tuple[tuple[str, str, str, str], ...] = ()
    run_id: str = "synthetic-frameworks"


def _families_meta(spec: SyntheticFamiliesSpec) -> dict[str, Any]:
    meta = _meta(SyntheticSpec(scenario="frameworks", run_id=spec.run_id))
    meta["command_line"] = ["harness", "run", "--scenario", "frameworks"]
    meta["scenario"]["description"] = "Synthetic frameworks data: every request waits 50 ms."
    failed = {(s, a): (status, reason) for s, a, status, reason in spec.failed}
    servers = {t.server: t.gateway for t in spec.targets}
    measured = {(t.server, t.app) for t in spec.targets}
    targets = []
    for app in dict.fromkeys(t.app for t in spec.targets):
        for server, gateway in servers.items():
            status, reason = failed.get((server, app), ("ok", ""))
            if (server, app) not in measured and (server, app) not in failed:
                status = "unsupported"
                reason = f"app family '{app}' has no {gateway.upper()} app"
            targets.append({
                "server": server, "gateway": gateway, "app": app, "target": f"{server}+{app}",
                "workers": 1, "threads": None, "preset_note": "", "version": "0.0",
                "command": [server, f"apps.{app}"], "status": status, "reason": reason,
                "family": {"name": app, "description": f"synthetic {app}",
                           "groups": list(FAMILY_GROUPS.get(app, ())), "versions": {}}})
    meta["targets"] = targets
    return meta


def write_synthetic_families_run(run_dir: Path,
                                 spec: SyntheticFamiliesSpec | None = None) -> Path:
    """Write a synthetic run of several app families at ``run_dir`` and return it."""
    spec = spec or SyntheticFamiliesSpec()
    rng = np.random.default_rng(spec.seed)
    writer = RunWriter(run_dir, _families_meta(spec))
    failed = {(s, a) for s, a, _status, _reason in spec.failed}
    index = 0
    for target in spec.targets:
        if (target.server, target.app) in failed:
            continue
        for clients in spec.concurrency:
            for repeat in range(1, spec.repeats + 1):
                index += 1
                record, hist = _family_trial(rng, spec, target, clients, repeat, index)
                writer.append_trial(record, latency_hdr=hist.encode())
    return run_dir


def _family_trial(rng: np.random.Generator, spec: SyntheticFamiliesSpec,
                  target: FakeFamilyTarget, clients: int, repeat: int, index: int
                  ) -> tuple[TrialRecord, HdrHistogram]:
    rps = min(clients * 1000.0 / IO_WAIT_MS * 0.97, target.capacity_rps)
    requests = int(rps * spec.duration_s)
    median_ms = max(IO_WAIT_MS * 1.02, clients * 1000.0 / rps)
    hist = _histogram(_latencies_us(rng, median_ms, SAMPLES_PER_TRIAL), requests)
    key = (target.server, target.app, clients)
    broken, saturated = key in spec.overloaded, key in spec.invalid
    errors = int(requests * 0.04) if broken else 0
    reason = ("generator saturated: the generator's CPUs (0) were 97% busy (> 90%)" if saturated
              else f"errors {errors / (requests + errors):.2%} of requests (limit 0.1%)"
              if broken else "")
    outcome: Outcome = "invalid" if saturated else "overloaded" if broken else "valid"
    cpu_pct = min(100.0, rps * target.cpu_per_request_ms / 10.0 + 2.0)
    name = f"{target.server}+{target.app}"
    record = TrialRecord(
        trial_id=trial_id(index, name, "closed", float(clients), repeat), scenario="frameworks",
        server=target.server, gateway=target.gateway, app=target.app, endpoint="/io?ms=50",
        load_model="closed", concurrency=clients, rate=None, repeat=repeat,
        duration_s=spec.duration_s, requests=requests, achieved_rps=requests / spec.duration_s,
        offered_rps=None, errors=errors,
        error_rate=errors / (requests + errors) if requests + errors else 0.0,
        errors_connect=0, errors_io=errors, errors_timeout=0, errors_status=0, errors_body=0,
        p50_ms=_ms(hist, 50), p75_ms=_ms(hist, 75), p90_ms=_ms(hist, 90), p99_ms=_ms(hist, 99),
        p99_9_ms=_ms(hist, 99.9), p99_99_ms=_ms(hist, 99.99),
        max_ms=hist.get_max_value() / 1000.0, mean_ms=_mean_ms(hist),
        service_p50_ms=None, service_p99_ms=None, behind=0, out_of_range=0,
        server_cpu_pct=cpu_pct, server_rss_mb=target.rss_mb, server_pss_mb=target.rss_mb * 0.8,
        loadgen_cpu_pct=97.0 if saturated else min(85.0, rps / 40.0), saturated=saturated,
        valid=outcome == "valid", invalid_reason=reason, status=TrialStatus.OK,
        workers=target.workers, threads=None, server_cpus="1", loadgen_cpus="0",
        started_at="2026-11-24T23:16:00+00:00", outcome=outcome,
    )
    return record, hist


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write a synthetic run folder (not a measurement)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slo", help="a latency objective, e.g. p99=200ms: adds capacity "
                        "searches and capacity.csv")
    args = parser.parse_args(argv)
    path = write_synthetic_run(args.out, SyntheticSpec(
        repeats=args.repeats, noisy=("hypercorn",),
        slo=parse_slo(args.slo) if args.slo else None))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
