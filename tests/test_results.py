"""The run folder: rows written at once, readable back, versioned; honesty flags."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from harness.results import (
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    RunWriter,
    TrialRecord,
    histogram_path,
    judge,
    read_meta,
    read_trials_rows,
    series_path,
    trial_id,
)


def _record(tid: str, **overrides: object) -> TrialRecord:
    base: dict[str, object] = {name: None for name in TRIAL_COLUMNS}
    base.update(trial_id=tid, scenario="s", server="uvicorn", gateway="asgi", app="raw",
                endpoint="/hello", load_model="closed", concurrency=8, repeat=1, duration_s=1.0,
                requests=100, achieved_rps=100.0, errors=0, error_rate=0.0, errors_connect=0,
                errors_io=0, errors_timeout=0, errors_status=0, errors_body=0, behind=0,
                out_of_range=0, saturated=False, valid=True, invalid_reason="", status="ok",
                server_cpus="1", loadgen_cpus="0", started_at="now")
    base.update(overrides)
    return TrialRecord(**base)  # type: ignore[arg-type]


def test_rows_are_on_disk_as_soon_as_appended(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path / "run", {"run_id": "r1"})
    hist = HdrHistogram(1, 60_000_000, 3)
    for value in (1000, 2000, 3000):
        hist.record_value(value)
    writer.append_trial(_record("0001-uvicorn-c8-r1", p99_ms=3.0), latency_hdr=hist.encode(),
                        series=[{"second": 0, "requests": 50, "errors": 0, "p50_ms": 2.0,
                                 "p99_ms": 3.0}])
    rows = read_trials_rows(tmp_path / "run")
    assert [r["trial_id"] for r in rows] == ["0001-uvicorn-c8-r1"]
    assert rows[0]["valid"] == "true" and rows[0]["rate"] == ""
    decoded = HdrHistogram.decode(histogram_path(tmp_path / "run", "0001-uvicorn-c8-r1")
                                  .read_text().strip())
    assert decoded.get_total_count() == 3
    assert series_path(tmp_path / "run", "0001-uvicorn-c8-r1").read_text().startswith("second,")
    writer.append_trial(_record("0002-uvicorn-c8-r2", valid=False, invalid_reason="x"))
    assert len(read_trials_rows(tmp_path / "run")) == 2


def test_meta_is_versioned(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path / "run", {"run_id": "r1"})
    writer.update_meta(status="complete")
    meta = read_meta(tmp_path / "run")
    assert meta["schema_version"] == SCHEMA_VERSION and meta["status"] == "complete"
    data = json.loads((tmp_path / "run" / "run.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "run" / "run.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="schema_version"):
        read_meta(tmp_path / "run")


def test_trial_ids() -> None:
    assert trial_id(7, "uvicorn", "closed", 64, 1) == "0007-uvicorn-c64-r1"
    assert trial_id(12, "uwsgi", "open", 500.0, 2) == "0012-uwsgi-R500-r2"


def test_columns_cover_the_issue() -> None:
    required = ("scenario server gateway app load_model concurrency rate repeat duration_s "
                "requests achieved_rps errors p50_ms p90_ms p99_ms p99_9_ms max_ms "
                "server_cpu_pct server_rss_mb loadgen_cpu_pct saturated valid invalid_reason")
    assert set(required.split()) <= set(TRIAL_COLUMNS)
    assert len(TRIAL_COLUMNS) == len(dataclasses.fields(TrialRecord))


@pytest.mark.parametrize(
    ("kwargs", "outcome", "fragment"),
    [
        ({"requests": 10_000, "errors": 10}, "valid", ""),
        # the server failing the load is a result about it, not a bad measurement (issue 13)
        ({"requests": 10_000, "errors": 11}, "overloaded", "errors 0.11%"),
        ({"requests": 0, "errors": 50}, "overloaded", "errors 100.00%"),
        ({"requests": 100, "errors": 0, "overload_reasons": ["connection cap reached"]},
         "overloaded", "connection cap reached"),
        ({"requests": 0, "errors": 0, "expect_requests": False,
          "connections_short": "held only 900 of 1000"}, "overloaded", "held only 900"),
        ({"requests": 0, "errors": 0}, "invalid", "no successful request"),
        ({"requests": 100, "errors": 0,
          "saturation_reasons": ["generator CPU 97%"]}, "invalid", "generator CPU 97%"),
        ({"requests": 100, "errors": 20, "saturation_reasons": ["generator CPU 97%"]},
         "invalid", "errors 16.67%"),  # the harness cannot vouch, whatever else happened
        # open loop, the generator late on 186 sends (the io_bound granian-asgi step at 4,650
        # req/s): 576 timeouts are the server's whatever those 186 did
        ({"requests": 13_374, "errors": 576, "sent_late": 186,
          "saturation_reasons": ["open-loop schedule fell behind"]}, "overloaded",
         "2.80% even had each of the 186 requests the generator sent late failed"),
        # ... but errors that the late sends could explain leave it unjudged
        ({"requests": 10_000, "errors": 100, "sent_late": 95,
          "saturation_reasons": ["open-loop schedule fell behind"]}, "invalid",
         "generator saturated"),
        ({"requests": 10_000, "errors": 500, "sent_late": 10, "died": "exit code -9",
          "saturation_reasons": ["open-loop schedule fell behind"]}, "invalid", "server died"),
        ({"requests": 100, "errors": 0, "failure": "not measured: refused"}, "invalid",
         "not measured: refused"),
        ({"requests": 100, "errors": 0, "died": "exit code -9"}, "invalid", "server died"),
    ],
)
def test_three_outcomes(kwargs: dict[str, object], outcome: str, fragment: str) -> None:
    args: dict[str, object] = {"saturation_reasons": [], "died": None}
    args.update(kwargs)
    verdict = judge(**args)  # type: ignore[arg-type]
    assert verdict.outcome == outcome and verdict.valid is (outcome == "valid")
    assert fragment in verdict.reason


def test_schema_version_1_folders_still_load(tmp_path: Path) -> None:
    """Old runs read: their rows get an outcome derived from valid and the reason."""
    from harness.analysis import load_run
    # the io_bound reference run as published before schema 2 (run.json and trials.csv)
    run = load_run(Path(__file__).resolve().parent / "data" / "schema_v1_io_bound")
    assert set(run["outcome"]) <= {"valid", "overloaded", "invalid"}
    overloaded = run[run["outcome"] == "overloaded"]
    assert not overloaded.empty  # gunicorn-sync offered 4x its capacity, for one
    assert all(r.startswith(("errors", "generator saturated: connection cap"))
               or "connection cap reached" in r for r in overloaded["invalid_reason"])


def test_a_folder_judged_before_the_objective_applied_to_the_sweep_loads_it_applied() -> None:
    """The io_bound reference run of Dec 3 judged only its capacity search against p99 <= 200
    ms: gunicorn-gthread's 50 req/s trials (its capacity 39.9) read "valid" on disk, p99 up to
    405 ms. Loaded, they are overloaded, as a run now writes them; the rest of the sweep at
    50 req/s met the objective and stays valid. (Its run.json and its trials at 50 req/s.)"""
    from harness.analysis import load_run
    run_dir = Path(__file__).resolve().parent / "data" / "io_bound_sweep_judged_before_objective"
    on_disk = {row["trial_id"]: row for row in read_trials_rows(run_dir)}
    run = load_run(run_dir)
    at50 = run[(run["load_model"] == "open") & (run["level"] == 50.0)
               & (run["phase"] == "sweep")]
    gthread = at50[at50["server"] == "gunicorn-gthread"]
    missed = gthread[gthread["p99_ms"] > 200.0]
    assert len(missed) >= 2
    assert all(on_disk[t]["outcome"] == "valid" for t in missed["trial_id"])
    assert set(missed["outcome"]) == {"overloaded"} and not missed["valid"].any()
    assert all(r.endswith("> 200 ms, the objective") for r in missed["invalid_reason"])
    rest = at50[at50["p99_ms"] <= 200.0]
    assert len(rest) >= 30 and set(rest["outcome"]) == {"valid"}
