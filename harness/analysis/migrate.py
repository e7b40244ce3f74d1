"""Run folders written by an older harness, read in today's shape: every fix for one, in one
place, applied as the folder's files are read (harness.analysis.rundata), so the rest of the
analysis reads one current shape and never asks how old a folder is.

What an older folder lacks, and what it meant:

- trials.csv of schema version 1 has no ``outcome``: derived from ``valid`` and the reason
  (``legacy_outcome``);
- trials.csv columns added since (``OPTIONAL_TRIAL_COLUMNS``): their default, as if written;
- open-loop trials of the plan's levels judged valid though their latency missed the run's
  objective (folders that judged only the capacity search's steps against it): overloaded,
  by the runner's rule (harness.slo.open_loop_overload); on a newer folder nothing changes;
- run.json targets without ``family`` (runs before app families): the catalogue's family of
  their app, its comparison groups;
- capacity.csv without ``pair`` (before head-to-head searches): empty, a search of the plan;
- a per-second series without ``completed``: its ``requests`` stand in.

Each function takes what was read from disk (strings, as in the files, before any typing)
and returns it migrated; none writes to the folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.catalogue import APPS
from harness.slo import Slo, open_loop_overload

# Columns added after schema version 1 was first written, with what older runs mean by them.
OPTIONAL_TRIAL_COLUMNS = {"notes": "", "protocol": "http", "message_size": "",
                          "connections_at_end": "", "memory_per_connection_kb": "",
                          "phase": "sweep", "others_cpu_pct": "", "steal_pct": "",
                          "connections_per_worker": "", "cpu_slowdown": "", "slow_clients": "",
                          "upload_bytes": "", "tasks_accepted": "", "tasks_started": "",
                          "tasks_finished": "", "exit_after_s": "",
                          "events_after_close_p50": "", "events_after_close_max": "",
                          "streams_never_ended": ""}
# capacity.csv columns added after it first appeared, likewise.
OPTIONAL_CAPACITY_COLUMNS = {"pair": ""}

# Reasons that, in a version 1 run, meant the harness could not vouch for the trial; any other
# reason was the server failing the load (errors, a connection cap against a slow server).
_LEGACY_INVALID = ("server died", "no successful request", "generator process",
                   "itself was late", "may have been starved", "not measured",
                   "generator failed")


def legacy_outcome(valid: str, reason: str) -> str:
    """The outcome of a schema version 1 row (which had only ``valid``)."""
    if valid.strip().lower() == "true":
        return "valid"
    return "invalid" if any(word in reason for word in _LEGACY_INVALID) else "overloaded"


def migrate_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """run.json in today's shape: every target that ran an app names its family."""
    targets = meta.get("targets")
    if not isinstance(targets, list):
        return dict(meta)
    return {**meta, "targets": [_with_family(t) if isinstance(t, Mapping) else t
                                for t in targets]}


def _with_family(target: Mapping[str, Any]) -> Mapping[str, Any]:
    # Runs before app families recorded none: the catalogue's is what they ran (an app it no
    # longer knows belongs to no comparison group).
    app = str(target.get("app") or "")
    if not app or isinstance(target.get("family"), Mapping):
        return target
    family = APPS.get(app)
    return {**target, "family": {
        "name": app, "description": family.description if family else "",
        "groups": list(family.groups) if family else []}}


def migrate_trials(meta: Mapping[str, Any], raw: pd.DataFrame) -> pd.DataFrame:
    """trials.csv as read (every cell a string) in today's shape: missing columns filled, the
    outcome derived where absent, and the run's objective applied to its open-loop trials."""
    raw = raw.copy()
    for column, default in OPTIONAL_TRIAL_COLUMNS.items():
        if column not in raw.columns:
            raw[column] = default
    if "outcome" not in raw.columns and {"valid", "invalid_reason"} <= set(raw.columns):
        raw["outcome"] = [legacy_outcome(v, r) for v, r in
                          zip(raw["valid"], raw["invalid_reason"], strict=True)]
    _judge_objective(raw, Slo.from_dict((meta.get("plan") or {}).get("slo")))
    return raw


def _numbers(column: pd.Series) -> pd.Series:
    # Blank is unmeasured (NaN); a cell that is no number is left to the typed reading to name.
    return pd.to_numeric(column.where(column.str.strip() != "", None), errors="coerce")


def _judge_objective(raw: pd.DataFrame, slo: Slo | None) -> None:
    """Mark, in place, the valid open-loop trials whose latency missed ``slo`` overloaded."""
    needed = {"load_model", "outcome", "valid", "invalid_reason", "error_rate"}
    if slo is None or raw.empty or not needed | {slo.column} <= set(raw.columns):
        return  # a folder missing columns is named as such by the typed reading
    rows = zip(raw.index, raw["load_model"].tolist(), raw["outcome"].tolist(),
               _numbers(raw[slo.column]).astype("float64").tolist(),
               _numbers(raw["error_rate"]).astype("float64").fillna(0.0).tolist(),
               strict=True)
    for index, load_model, outcome, value, error_rate in rows:
        why = open_loop_overload(slo, load_model, outcome, value, error_rate)  # NaN: unmeasured
        if why is not None:
            raw.at[index, "outcome"] = "overloaded"
            raw.at[index, "valid"] = "false"
            raw.at[index, "invalid_reason"] = why


def migrate_capacity(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """capacity.csv's rows as read, each with every column of today's."""
    return [{**OPTIONAL_CAPACITY_COLUMNS, **row} for row in rows]


def migrate_series(raw: pd.DataFrame) -> pd.DataFrame:
    """A per-second series as read, with ``completed`` (answers by the second they arrived).

    A series written before it existed counted only ``requests`` by the second they were due:
    the nearest it has, the same count in a closed loop, the offered schedule in an open one.
    (A column with every cell blank is as absent: a writer that had it filled each second.)"""
    if "requests" not in raw.columns or (
            "completed" in raw.columns and (raw["completed"].str.strip() != "").any()):
        return raw
    return raw.assign(completed=raw["requests"])
