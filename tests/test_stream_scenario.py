"""Event streams in a run: the [stream] table, the plan's levels, and a real run where uvicorn
holds every stream and gunicorn-sync only as many as its workers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.plan import PlanOptions, build_plan
from harness.scenarios import load_scenario, parse_scenario
from tests.runhelpers import REPO, harness_cmd, read_rows

_BASE = """
name = "s"
description = "d"
kind = "stream"
servers = ["uvicorn"]
[request]
path = "/stream"
[load]
concurrency = [4]
"""


def test_a_stream_level_per_count_of_streams() -> None:
    scenario = load_scenario("streams")
    assert scenario.stream is not None
    assert (scenario.stream.events, scenario.stream.interval_ms) == (20, 100.0)
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1)))
    assert [(lv.load_model, lv.concurrency, lv.label()) for lv in plan.levels] == [
        ("stream", 10, "10 streams"), ("stream", 100, "100 streams")]


@pytest.mark.parametrize(("table", "message"), [
    ("events = 0", "field 'stream.events'"),
    ('interval = "2min"', "field 'stream.interval': expected at most 60s"),
    ("pace = 1", "unknown key 'pace' in table \\[stream\\]"),
])
def test_a_bad_stream_table_is_one_line(table: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_scenario(_BASE + "[stream]\n" + table + "\n", "s.toml")


@pytest.mark.e2e
def test_uvicorn_holds_every_stream_and_gunicorn_sync_its_workers(tmp_path: Path) -> None:
    scenario = tmp_path / "streams.toml"
    scenario.write_text((REPO / "scenarios" / "streams.toml").read_text()
                        .replace("concurrency = [100]", "concurrency = [12]")
                        .replace("events = 20", "events = 5"))
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", str(scenario), "--quick", "--servers",
                    "gunicorn-sync,uvicorn", "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["server"]: r for r in read_rows(out / "trials.csv")}
    uvicorn, sync = rows["uvicorn"], rows["gunicorn-sync"]
    assert (uvicorn["requests"], uvicorn["errors"], uvicorn["connections_at_end"]) == \
        ("12", "0", "12")
    assert 95.0 <= float(uvicorn["p50_ms"]) <= 110.0  # the gaps: the declared 100 ms
    # three workers, each held by one stream for its whole 0.4 s
    assert int(sync["connections_at_end"]) <= 3
    findings = json.loads((out / "findings.json").read_text())["findings"]
    streams = next(f for f in findings if f["topic"] == "streams")
    assert "uvicorn" in streams["winners"]
