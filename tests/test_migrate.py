"""Older run folders load in today's shape (harness.analysis.migrate), and a current folder
loads unchanged. Fast: small files and the committed test folders."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd

from harness.analysis.families import family_groups
from harness.analysis.migrate import (
    OPTIONAL_TRIAL_COLUMNS,
    migrate_capacity,
    migrate_meta,
    migrate_series,
    migrate_trials,
)
from harness.analysis.rundata import RunData, head_to_head_rows, load_capacity, load_series
from harness.catalogue import APPS
from harness.results import CAPACITY_COLUMNS, TRIAL_COLUMNS

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def test_a_schema_version_1_folder_reads_as_a_current_one() -> None:
    run = RunData.load(DATA / "schema_v1_io_bound")
    assert set(TRIAL_COLUMNS) <= set(run.trials.columns)
    assert set(run.trials["phase"]) == {"sweep"} and set(run.trials["protocol"]) == {"http"}
    # its targets name no family: the catalogue's, so the groups need no second look-up
    targets = run.meta["targets"]
    assert targets and all(t["family"]["name"] == t["app"] for t in targets)
    assert family_groups(run) == {"raw": tuple(APPS["raw"].groups)}


def test_a_current_folder_is_left_as_written() -> None:
    """Every column and value it has is kept; only columns added since it was written (the
    slow-clients count) are added, empty."""
    folder = REFERENCE / "io_bound"
    meta = json.loads((folder / "run.json").read_text())
    assert migrate_meta(meta) == meta
    raw = pd.read_csv(folder / "trials.csv", dtype=str, keep_default_na=False)
    migrated = migrate_trials(meta, raw)
    assert migrated[list(raw.columns)].equals(raw)
    assert set(migrated.columns) - set(raw.columns) <= set(OPTIONAL_TRIAL_COLUMNS)
    with open(folder / "capacity.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert migrate_capacity(rows) == rows


def test_columns_added_later_get_what_older_runs_meant() -> None:
    raw = pd.DataFrame({"valid": ["true", "false", "false"],
                        "invalid_reason": ["", "errors 5.00% of requests", "server died: -9"]})
    migrated = migrate_trials({}, raw)
    assert list(migrated["outcome"]) == ["valid", "overloaded", "invalid"]
    for column, default in OPTIONAL_TRIAL_COLUMNS.items():
        assert set(migrated[column]) == {default}
    assert "outcome" not in raw.columns  # what was read is not changed in place


def test_an_unknown_app_of_an_old_run_is_in_no_group() -> None:
    meta = {"targets": [{"server": "uvicorn", "app": "mine"}, {"server": "uwsgi"}]}
    targets = migrate_meta(meta)["targets"]
    assert targets[0]["family"]["groups"] == [] and "family" not in targets[1]


def test_capacity_before_head_to_head_searches(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(DATA / "schema_v1_io_bound", run_dir)
    old = [c for c in CAPACITY_COLUMNS if c != "pair"]
    with open(run_dir / "capacity.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(old)
        writer.writerow(["uvicorn" if c == "server" else "1" if c in ("repeat", "steps")
                         else "" for c in old])
    capacity = load_capacity(run_dir)
    assert capacity["pair"].isna().all() and not head_to_head_rows(capacity).any()


def test_a_series_before_completed_existed(tmp_path: Path) -> None:
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "0001-uvicorn-c1-r1.csv").write_text(
        "second,requests,errors,p50_ms,p99_ms,server_cpu_pct,server_rss_mb\n"
        "0,19,0,52,55,3,40\n1,20,0,52,56,3,40\n")
    series = load_series(tmp_path, "0001-uvicorn-c1-r1")
    assert series["completed"].tolist() == [19, 20]
    current = pd.DataFrame({"requests": ["5"], "completed": ["4"]})
    assert migrate_series(current) is current
