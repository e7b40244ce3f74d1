"""Run folders for the analysis and report tests, written with RunWriter and real histograms."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.results import RunWriter, TrialRecord
from tests.support.synthetic import SyntheticSpec, write_synthetic_run

HIST_HIGHEST_US = 60_000_000


def histogram(values_us: Sequence[int]) -> HdrHistogram:
    hist = HdrHistogram(1, HIST_HIGHEST_US, 3)
    for value in values_us:
        hist.record_value(int(value))
    return hist


def record(tid: str, **overrides: Any) -> TrialRecord:
    """A valid closed-loop trial of uvicorn; override any field."""
    base: dict[str, Any] = dict(
        trial_id=tid, scenario="io_bound", server="uvicorn", gateway="asgi", app="raw",
        endpoint="/io?ms=50", load_model="closed", concurrency=16, rate=None, repeat=1,
        duration_s=2.0, requests=200, achieved_rps=100.0, offered_rps=None, errors=0,
        error_rate=0.0, errors_connect=0, errors_io=0, errors_timeout=0, errors_status=0,
        errors_body=0, p50_ms=50.0, p75_ms=55.0, p90_ms=60.0, p99_ms=70.0, p99_9_ms=80.0,
        p99_99_ms=90.0, max_ms=95.0, mean_ms=52.0, service_p50_ms=None, service_p99_ms=None,
        behind=0, out_of_range=0, server_cpu_pct=50.0, server_rss_mb=30.0, server_pss_mb=25.0,
        loadgen_cpu_pct=20.0, saturated=False, valid=True, invalid_reason="", status="ok",
        workers=1, threads=None, server_cpus="1", loadgen_cpus="0",
        started_at="2026-11-24T23:16:00+00:00")
    base.update(overrides)
    return TrialRecord(**base)


def meta(run_id: str = "test-run", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": run_id, "started_at": "2026-11-24T23:15:00+0000",
        "finished_at": "2026-11-24T23:16:00+0000", "status": "complete",
        "command_line": ["harness", "run", "--scenario", "io_bound", "--quick"],
        "scenario": {"name": "io_bound", "kind": "io", "endpoint": "/io?ms=50",
                     "description": "every request waits 50 ms", "hash": "sha256:abc"},
        "environment": {"cpu_model": "Test CPU", "cpu_count": 2, "kernel": "6.1", "os": "Linux",
                        "python": "3.11.2", "versions": {"uvicorn": "0.34.0"},
                        "git_commit": None, "env": {}},
        "cpus": {"server": [1], "loadgen": [0]},
        "targets": [],
    }
    base.update(overrides)
    return base


def write_run(run_dir: Path, trials: Sequence[tuple[TrialRecord, Sequence[int] | None]],
              **meta_overrides: Any) -> Path:
    """A run folder holding ``trials``: (record, latency values in µs or None for no file).

    When values are given, the record's percentiles are replaced by the histogram's, as the
    runner does, so rows and histograms agree.
    """
    writer = RunWriter(run_dir, meta(run_dir.name, **meta_overrides))
    for rec, values in trials:
        encoded = None
        if values is not None:
            hist = histogram(values)
            encoded = hist.encode()
            rec = dataclasses.replace(
                rec,
                p50_ms=hist.get_value_at_percentile(50) / 1000.0,
                p99_ms=hist.get_value_at_percentile(99) / 1000.0,
                p99_9_ms=hist.get_value_at_percentile(99.9) / 1000.0,
                max_ms=hist.get_max_value() / 1000.0)
        series = [{"second": s, "requests": int(rec.achieved_rps), "errors": 0,
                   "p50_ms": rec.p50_ms, "p99_ms": rec.p99_ms,
                   "server_cpu_pct": rec.server_cpu_pct, "server_rss_mb": rec.server_rss_mb}
                  for s in range(int(rec.duration_s))]
        writer.append_trial(rec, latency_hdr=encoded, series=series)
    return run_dir


def synthetic_run(run_dir: Path, **spec: Any) -> Path:
    """The synthetic I/O-bound model (4 servers, closed and open levels, one invalid level)."""
    return write_synthetic_run(run_dir, SyntheticSpec(run_id=run_dir.name, **spec))


def report_text(folder: Path, kind: str = "md") -> str:
    """A report and its appendix (the per-level and per-trial tables) as one text."""
    names = ("report.md", "trials.md") if kind == "md" else ("report.html", "trials.html")
    return "\n".join((folder / name).read_text(encoding="utf-8") for name in names)
