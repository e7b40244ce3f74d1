"""Slow clients in a run: the [slow_clients] table, the plan's levels, the verdict of a server
held by them, the finding, and a real run where gunicorn-sync gives way and uvicorn does not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.findings.slow_clients import _group
from harness.errors import UsageError
from harness.plan import PlanOptions, build_plan
from harness.results import judge
from harness.scenarios import load_scenario, parse_scenario
from tests.runhelpers import REPO, harness_cmd, read_rows

_BASE = """
name = "s"
description = "d"
kind = "hello"
servers = ["uvicorn"]
[request]
path = "/hello"
[load]
concurrency = [4]
"""


def test_each_closed_level_runs_once_per_count_of_slow_clients() -> None:
    plan = build_plan(load_scenario("slow_clients"), PlanOptions(available_cpus=(0, 1)))
    assert [(lv.load_model, lv.concurrency, lv.slow_clients, lv.value) for lv in plan.levels] \
        == [("slow", 16, 0, 0.0), ("slow", 16, 3, 3.0), ("slow", 16, 100, 100.0)]
    assert plan.levels[1].label() == "16 conn + 3 slow"


@pytest.mark.parametrize(("table", "message"), [
    ('counts = [3, 3]', "a list of distinct integers"),
    ('counts = [-1]', "a list of distinct integers"),
    ('counts = [3]\nmode = "both"', "one of headers, read"),
    ('counts = [3]\nspeed = 1', "unknown key 'speed' in table \\[slow_clients\\]"),
])
def test_a_bad_slow_clients_table_is_one_line(table: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_scenario(_BASE + "[slow_clients]\n" + table + "\n", "s.toml")


def test_a_server_that_answers_none_while_held_did_not_keep_up() -> None:
    held = judge(requests=0, errors=0, saturation_reasons=(), died=None,
                 held_by="3 slow clients")
    assert (held.outcome, held.reason) == (
        "overloaded", "answered no measured request while 3 slow clients were held")
    alone = judge(requests=0, errors=0, saturation_reasons=(), died=None)
    assert alone.outcome == "invalid"


def _row(p99: float, rps: float, outcome: str = "valid") -> pd.Series:
    return pd.Series({"p99_ms": p99, "achieved_rps": rps, "valid": outcome == "valid",
                      "outcome": outcome, "server": "s", "invalid_reason": ""})


def test_held_slowed_and_gave_way_are_told_apart() -> None:
    base = _row(3.0, 20_000)
    assert _group(base, _row(5.9, 19_000)) == "held"  # within twice the baseline
    assert _group(base, _row(30.0, 19_000)) == "slowed"
    assert _group(base, _row(3.0, 5_000)) == "slowed"  # under half the throughput
    assert _group(base, _row(float("nan"), 0, "overloaded")) == "gave_way"
    assert _group(None, _row(3.0, 20_000)) == "unknown"


@pytest.mark.e2e
def test_three_slow_clients_stop_gunicorn_sync_and_not_uvicorn(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text((REPO / "scenarios" / "slow_clients.toml").read_text()
                        .replace("counts = [0, 3, 100]", "counts = [0, 3]"))
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", str(scenario), "--quick", "--servers",
                    "gunicorn-sync,uvicorn", "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {(r["server"], r["slow_clients"]): r for r in read_rows(out / "trials.csv")}
    held = rows[("gunicorn-sync", "3")]
    # its 3 workers each read a slow client's headers: the 16 measured clients get nothing
    assert held["outcome"] == "overloaded", held
    assert float(held["achieved_rps"]) < 0.05 * float(rows[("uvicorn", "3")]["achieved_rps"])
    assert "3 of 3 held at the end" in held["notes"]
    assert rows[("uvicorn", "3")]["status"] == "ok"
    findings = json.loads((out / "findings.json").read_text())["findings"]
    slow = next(f for f in findings if f["topic"] == "slow_clients")
    assert "gunicorn-sync" in slow["question"]["gave_way"]
