"""Run folders as typed pandas frames, HDR histograms and per-second series.

Everything here is recomputed from the files of a run folder (harness.results); nothing is
cached. Percentiles of several repeats come from their histograms added together, never from
averaged percentiles.

>>> df = load_run("results/20261124-231500-io_bound")          # doctest: +SKIP
>>> df.groupby(["server", "concurrency"], observed=True).achieved_rps.mean()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.histograms import (
    histogram_ms,
    merged_histogram,
)
from harness.analysis.migrate import (
    migrate_capacity,
    migrate_meta,
    migrate_series,
    migrate_trials,
)
from harness.errors import UsageError
from harness.noise import is_busy
from harness.results import (
    CAPACITY_COLUMNS,
    KIND_COLUMNS,
    KINDS_FILE,
    RUN_FILE,
    SERIES_COLUMNS,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    TrialRecord,
    read_capacity_rows,
    read_kind_rows,
    read_meta,
    series_path,
)

# Columns that name a small set of values: categories make grouping and plotting cheap.
CATEGORY_COLUMNS = ("server", "gateway", "load_model")
# The key of one load level of one target; repeats of it are merged. ``message_size`` (bytes
# per WebSocket message) keeps a 64 B and an 8 KiB level of the same connection count apart;
# it is empty (NA) for HTTP trials and for idle connections, which send nothing. ``app`` (the
# app family) keeps two families on one server apart (harness.analysis.families).
# ``upload_bytes`` keeps an upload scenario's body sizes apart (NA for every other trial).
GROUP_KEYS = ("run_id", "scenario", "server", "app", "gateway", "load_model", "message_size",
              "upload_bytes", "level")


def _dtype_for(annotation: str) -> str:
    # TrialRecord's annotations are strings (postponed evaluation): "int | None", "float", ...
    base = annotation.replace(" ", "").replace("|None", "")
    return {"int": "Int64", "float": "float64", "bool": "bool"}.get(base, "string")


TRIAL_DTYPES: dict[str, str] = {
    f.name: ("category" if f.name in CATEGORY_COLUMNS else _dtype_for(str(f.type)))
    for f in dataclasses.fields(TrialRecord)
}


def check_run_dir(path: Path | str) -> Path:
    """The run folder as a Path, or UsageError naming what is missing."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a folder: expected a run folder holding {RUN_FILE}")
    if not (run_dir / RUN_FILE).is_file():
        raise UsageError(f"{run_dir}: no {RUN_FILE}: expected a run folder written by "
                         "'harness run'")
    if not (run_dir / TRIALS_FILE).is_file():
        raise UsageError(f"{run_dir}: no {TRIALS_FILE}: expected a run folder written by "
                         "'harness run'")
    return run_dir


def load_meta(path: Path | str) -> dict[str, Any]:
    """run.json of a run folder, in today's shape (harness.analysis.migrate); UsageError if it
    is missing, unreadable or of another schema."""
    run_dir = check_run_dir(path)
    try:
        meta = read_meta(run_dir)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        raise UsageError(f"{run_dir / RUN_FILE}: {exc}") from None
    return migrate_meta(meta)


def _convert(column: pd.Series, dtype: str, where: str) -> pd.Series:
    if dtype == "string":
        return column.astype("string")
    if dtype == "category":
        return column.astype("category")
    if dtype == "bool":
        lowered = column.str.strip().str.lower()
        bad = ~lowered.isin(["true", "false"])
        if bad.any():
            raise UsageError(f"{where}: expected true or false, got {column[bad].iloc[0]!r}")
        return lowered == "true"
    blank = column.str.strip() == ""
    numbers = pd.to_numeric(column.where(~blank, None), errors="coerce")
    bad = numbers.isna() & ~blank
    if bad.any():
        raise UsageError(f"{where}: expected a number, got {column[bad].iloc[0]!r}")
    if dtype == "Int64":
        whole = numbers.dropna()
        fractional = whole[whole != whole.round()]
        if not fractional.empty:
            raise UsageError(f"{where}: expected an integer, got {fractional.iloc[0]!r}")
        return numbers.astype("Int64")
    return numbers.astype("float64")


def load_run(path: Path | str) -> pd.DataFrame:
    """The trials table of one run folder, typed, with ``run_id`` and ``level`` columns.

    Integers are nullable ``Int64``, measurements ``float64``, ``valid``/``saturated`` bool,
    ``server``/``gateway``/``load_model`` categories. ``level`` is the concurrency of a closed
    loop trial or the offered rate of an open loop one. An older folder reads in today's shape
    (harness.analysis.migrate).
    """
    run_dir = check_run_dir(path)
    return _read_trials(run_dir, load_meta(run_dir))


def _read_trials(run_dir: Path, meta: dict[str, Any]) -> pd.DataFrame:
    csv_path = run_dir / TRIALS_FILE
    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(f"{csv_path}: not a readable CSV table ({exc})") from None
    raw = migrate_trials(meta, raw)
    missing = [c for c in TRIAL_COLUMNS if c not in raw.columns]
    if missing:
        raise UsageError(f"{csv_path}: missing column(s) {', '.join(missing)}: expected the "
                         f"columns of schema version {meta.get('schema_version')}")
    frame = pd.DataFrame(index=raw.index)
    frame["run_id"] = pd.Series(str(meta.get("run_id") or run_dir.name), index=raw.index,
                                dtype="string")
    for name in raw.columns:
        dtype = TRIAL_DTYPES.get(name, "string")
        frame[name] = _convert(raw[name], dtype, f"{csv_path}: column {name}")
    # the rate for the open loop; connections (clients, subscribers, idle) for the others
    by_rate = frame["load_model"].astype("string") == "open"
    frame["level"] = frame["rate"].where(by_rate, frame["concurrency"].astype("float64"))
    # a slow-clients level is its count of slow clients (the measured clients are the plan's)
    by_slow = frame["load_model"].astype("string") == "slow"
    frame["level"] = frame["slow_clients"].astype("float64").where(by_slow, frame["level"])
    return frame


def load_runs(paths: Iterable[Path | str]) -> pd.DataFrame:
    """Several run folders in one table; ``run_id`` tells them apart."""
    frames = [load_run(p) for p in paths]
    if not frames:
        raise UsageError("no run folder given: expected at least one")
    combined = pd.concat(frames, ignore_index=True)
    for name in CATEGORY_COLUMNS:
        combined[name] = combined[name].astype("string").astype("category")
    return combined


# capacity.csv's columns by type (the rest are strings).
_CAPACITY_INTS = ("repeat", "steps", "pair")
_CAPACITY_FLOATS = ("capacity_rps", "failed_rate")


def load_capacity(path: Path | str) -> pd.DataFrame:
    """capacity.csv of a run folder, typed: one row per target and repeat of the capacity
    search at the run's latency objective, with ``run_id``.

    Columns: run_id, CAPACITY_COLUMNS (``repeat``/``steps``/``pair`` Int64, ``capacity_rps``/
    ``failed_rate`` float64, the others strings; empty trial ids are NA, and ``pair`` is NA
    but for a head-to-head search). An empty frame with those columns when the run searched
    no capacity.
    """
    run_dir = check_run_dir(path)
    meta = load_meta(run_dir)
    rows = migrate_capacity(read_capacity_rows(run_dir))
    raw = pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS), dtype=str).fillna("")
    frame = pd.DataFrame(index=raw.index)
    frame["run_id"] = pd.Series(str(meta.get("run_id") or run_dir.name), index=raw.index,
                                dtype="string")
    where = run_dir / "capacity.csv"
    for name in CAPACITY_COLUMNS:
        dtype = ("Int64" if name in _CAPACITY_INTS else
                 "float64" if name in _CAPACITY_FLOATS else "string")
        frame[name] = _convert(raw[name].astype(str), dtype, f"{where}: column {name}")
    for name in ("proof_trial", "failed_trial"):
        frame[name] = frame[name].mask(frame[name].str.strip() == "")
    return frame


def head_to_head_rows(capacity: pd.DataFrame) -> pd.Series:
    """Which rows of ``load_capacity``'s frame are head-to-head searches (run --head-to-head:
    a ``pair`` number), not the plan's."""
    return capacity["pair"].notna()


def busy_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials taken on a busy machine, by the runner's rule (harness.noise.is_busy): their
    notes say so, or the CPU used by processes outside the harness, steal, or how much slower
    the server's CPU ran were above the limits (a reading that is empty is not over its
    limit)."""
    if trials.empty:
        return trials
    rows = zip(*(trials[c].astype("float64").tolist()
                 for c in ("others_cpu_pct", "steal_pct", "cpu_slowdown")),
               trials["notes"].astype("string").fillna("").tolist(), strict=True)
    busy = [is_busy(others, steal, slowdown, notes=notes)
            for others, steal, slowdown, notes in rows]
    return trials[np.array(busy, dtype=bool)]


# the trial's columns a request mix's kinds.csv rows are read with
KIND_TRIAL_COLUMNS = ("run_id", "server", "gateway", "app", "load_model", "level", "repeat",
                      "phase", "valid", "outcome")


def load_kinds(run: RunData) -> pd.DataFrame:
    """A request mix's row per trial and kind of request (kinds.csv, typed), with its trial's
    server, app, level, repeat, phase and outcome; empty when the run sent no mix.

    >>> load_kinds(RunData.load("results/reference/mixed"))  # doctest: +SKIP
    """
    rows = read_kind_rows(run.run_dir)
    if not rows:
        return pd.DataFrame(columns=[*KIND_COLUMNS, *KIND_TRIAL_COLUMNS])
    raw = pd.DataFrame(rows, dtype=str)
    frame = pd.DataFrame(index=raw.index)
    where = f"{run.run_dir / KINDS_FILE}"
    for name in KIND_COLUMNS:
        column = raw[name] if name in raw.columns else pd.Series("", index=raw.index)
        dtype = ("string" if name in ("trial_id", "kind", "path")
                 else "Int64" if name in ("requests", "errors") else "float64")
        frame[name] = _convert(column.astype(str), dtype, f"{where}: column {name}")
    trials = run.trials.set_index("trial_id")[list(KIND_TRIAL_COLUMNS)]
    return frame.join(trials, on="trial_id")


def load_series(run_dir: Path | str, trial_id: str) -> pd.DataFrame:
    """The per-second series of one trial (SERIES_COLUMNS, floats; ``second`` Int64).

    An empty frame with those columns when the trial wrote no series.
    """
    path = series_path(Path(run_dir), trial_id)
    if not path.is_file():
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in SERIES_COLUMNS})
        empty["second"] = empty["second"].astype("Int64")
        return empty
    raw = migrate_series(pd.read_csv(path, dtype=str, keep_default_na=False))
    frame = pd.DataFrame(index=raw.index)
    for name in SERIES_COLUMNS:
        column = raw[name] if name in raw.columns else pd.Series("", index=raw.index)
        dtype = "Int64" if name in ("second", "requests", "completed", "errors") else "float64"
        frame[name] = _convert(column.astype(str), dtype, f"{path}: column {name}")
    return frame


@dataclass(frozen=True, kw_only=True)
class RunData:
    """One run folder, loaded: its run.json and its typed trials table."""

    run_dir: Path
    meta: dict[str, Any]
    trials: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.run_dir.name)

    @classmethod
    def load(cls, path: Path | str) -> RunData:
        run_dir = check_run_dir(path)
        meta = load_meta(run_dir)
        return cls(run_dir=run_dir, meta=meta, trials=_read_trials(run_dir, meta))


def _reasons(group: pd.DataFrame) -> str:
    """The invalid reasons of a level's repeats: once if they agree, else per repeat."""
    bad = group[group["invalid_reason"].astype(str) != ""]
    unique = list(dict.fromkeys(bad["invalid_reason"].astype(str)))
    if len(unique) <= 1:
        return unique[0] if unique else ""
    return "; ".join(f"repeat {r}: {why}"
                     for r, why in zip(bad["repeat"], bad["invalid_reason"], strict=True))


def summarize(run: RunData, phases: Sequence[str] | None = ("sweep",)) -> pd.DataFrame:
    """One row per target and load level, repeats pooled.

    ``phases``: the trials of these phases only (default: the plan's levels, not the steps of
    a capacity search, whose rates differ between repeats; None: every trial).

    Throughput, CPU and error counts are means/sums over repeats; p50/p99 come from the
    repeats' histograms added together (falling back to the worst repeat's value when a
    histogram is missing); RSS is the peak. A level is ``valid`` only when every repeat is
    valid and measured: a level with one bad repeat is shown, never ranked.
    Columns: GROUP_KEYS, trial_ids (tuple), repeats, measured_repeats, achieved_rps, rps_std,
    rps_cv, requests, errors, error_rate, p50_ms, p90_ms, p99_ms, p99_9_ms, max_ms,
    server_cpu_pct, server_rss_mb, server_pss_mb, loadgen_cpu_pct, rps_per_cpu_s, workers,
    threads, server_cpus, valid,
    invalid_reason, outcome (the worst of the repeats': invalid, overloaded, valid), and
    WS_SUMMARY_COLUMNS (filled for WebSocket levels: see there).
    """
    trials = run.trials
    if phases is not None:
        trials = trials[trials["phase"].astype("string").isin(list(phases))]
    columns = [*GROUP_KEYS, "trial_ids", "repeats", "measured_repeats", "achieved_rps",
               "rps_std", "rps_cv", "requests", "errors", "error_rate", "p50_ms", "p90_ms",
               "p99_ms", "p99_9_ms", "max_ms",
               "server_cpu_pct", "server_rss_mb", "server_pss_mb", "loadgen_cpu_pct",
               "rps_per_cpu_s", "workers", "threads", "server_cpus", "valid", "invalid_reason",
               "outcome", *WS_SUMMARY_COLUMNS]
    rows: list[dict[str, Any]] = []
    if trials.empty:
        return pd.DataFrame(columns=columns)
    keyed = trials.assign(**{k: trials[k].astype("string") for k in CATEGORY_COLUMNS})
    for key, group in keyed.groupby(list(GROUP_KEYS), sort=True, dropna=False):
        rows.append(_summary_row(run, key, group))
    summary = pd.DataFrame(rows, columns=columns)
    for name in ("server", "app", "gateway", "load_model", "protocol", "outcome"):
        summary[name] = summary[name].astype("string")
    summary["level"] = summary["level"].astype("float64")
    for name in ("message_size", "upload_bytes", "connections_at_end", "deliveries_expected",
                 "subscribers_reached"):
        summary[name] = summary[name].astype("Int64")
    return summary


def _summary_row(run: RunData, key: Any, group: pd.DataFrame) -> dict[str, Any]:
    """One level's repeats pooled (``summarize``)."""
    ids = tuple(str(t) for t in group["trial_id"])
    hist = merged_histogram(run.run_dir, ids)
    # Throughput and CPU from the repeats that were measured: a repeat whose server died
    # before it (status "failed", 0 req/s) would drag the mean down, not describe it.
    measured = group[group["status"] == "ok"]
    rps = measured["achieved_rps"].astype("float64")
    mean_rps = float(rps.mean()) if len(rps) else math.nan
    std = float(rps.std(ddof=1)) if len(rps) > 1 else math.nan
    cpu = measured["server_cpu_pct"].astype("float64")
    mean_cpu = float(cpu.mean()) if len(cpu) and cpu.notna().all() else math.nan
    requests = int(group["requests"].sum())
    errors = int(group["errors"].sum())
    valid = bool(group["valid"].all()) and bool((group["status"] == "ok").all())
    reason = _reasons(group)
    if not valid and not reason:
        reason = "trial not measured (status " + ", ".join(
            sorted(set(group["status"].astype(str)) - {"ok"})) + ")"

    def pooled(percentile: float, column: str) -> float:
        value = histogram_ms(hist, percentile)
        if value is not None:
            return value
        worst = group[column].astype("float64").max()
        return float(worst) if pd.notna(worst) else math.nan

    return {
        **dict(zip(GROUP_KEYS, key, strict=True)),
        "trial_ids": ids,
        "repeats": len(group),
        "measured_repeats": len(measured),
        "achieved_rps": mean_rps,
        "rps_std": std,
        "rps_cv": std / mean_rps if mean_rps > 0 and not math.isnan(std) else math.nan,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / (requests + errors) if requests + errors else 0.0,
        "p50_ms": pooled(50, "p50_ms"),
        "p90_ms": pooled(90, "p90_ms"),
        "p99_ms": pooled(99, "p99_ms"),
        "p99_9_ms": pooled(99.9, "p99_9_ms"),
        "max_ms": float(group["max_ms"].astype("float64").max()),
        "server_cpu_pct": mean_cpu,
        "server_rss_mb": float(group["server_rss_mb"].astype("float64").max()),
        "server_pss_mb": float(group["server_pss_mb"].astype("float64").max()),
        "loadgen_cpu_pct": float(group["loadgen_cpu_pct"].astype("float64").max()),
        "rps_per_cpu_s": (mean_rps / (mean_cpu / 100.0)
                          if mean_cpu and not math.isnan(mean_cpu) else math.nan),
        "workers": group["workers"].iloc[0],
        "threads": group["threads"].iloc[0],
        "server_cpus": str(group["server_cpus"].iloc[0]),
        "valid": valid,
        "invalid_reason": reason,
        "outcome": _worst_outcome(group),
        **_websocket_fields(run.run_dir, group, ids),
    }


def _worst_outcome(group: pd.DataFrame) -> str:
    outcomes = set(group["outcome"].astype(str))
    if not (group["status"] == "ok").all() or "invalid" in outcomes:
        return "invalid"
    if "overloaded" in outcomes:
        return "overloaded"
    return "valid" if bool(group["valid"].all()) else "invalid"


# Summary columns about WebSocket levels (NaN/NA for HTTP ones, except protocol):
# protocol; service_p50_ms/service_p99_ms: open loop, timed from the actual send (the repeats'
# service histograms added); connections_at_end: the fewest connections any repeat still held;
# memory_per_connection_kb: idle, mean of the measured repeats; deliveries_expected and
# delivered_fraction: broadcast, summed over repeats (from the generator's notes);
# subscribers_reached: broadcast, the fewest subscribers that shared the publisher's worker.
WS_SUMMARY_COLUMNS = ("protocol", "service_p50_ms", "service_p99_ms", "connections_at_end",
                      "memory_per_connection_kb", "deliveries_expected", "delivered_fraction",
                      "subscribers_reached")
# The generator's broadcast notes (harness.loadgen.models.ws_fanout): "broadcast: 19990 of
# 20000 expected deliveries arrived (99.95%)" and "broadcast: 100 of 100 subscribers shared
# the publisher's server worker process ...".
_DELIVERED = re.compile(r"broadcast: (\d+) of (\d+) expected deliveries arrived")
_REACHED = re.compile(r"broadcast: (\d+) of (\d+) subscribers shared the publisher")


def broadcast_counts(notes: str) -> tuple[int, int] | None:
    """(delivered, expected) from a broadcast trial's notes, or None when they do not say."""
    match = _DELIVERED.search(notes)
    return (int(match.group(1)), int(match.group(2))) if match else None


def subscribers_reached(notes: str) -> tuple[int, int] | None:
    """(subscribers on the publisher's worker, subscribers) from a broadcast trial's notes."""
    match = _REACHED.search(notes)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _websocket_fields(run_dir: Path, group: pd.DataFrame, ids: tuple[str, ...]
                      ) -> dict[str, Any]:
    protocol = str(group["protocol"].iloc[0])
    fields: dict[str, Any] = {"protocol": protocol, "service_p50_ms": math.nan,
                              "service_p99_ms": math.nan, "connections_at_end": pd.NA,
                              "memory_per_connection_kb": math.nan,
                              "deliveries_expected": pd.NA, "delivered_fraction": math.nan,
                              "subscribers_reached": pd.NA}
    if protocol != "websocket":
        return fields
    measured = group[group["status"] == "ok"]
    held = measured["connections_at_end"].dropna()
    if len(held):
        fields["connections_at_end"] = int(held.min())
    memory = measured["memory_per_connection_kb"].astype("float64").dropna()
    if len(memory):
        fields["memory_per_connection_kb"] = float(memory.mean())
    service = merged_histogram(run_dir, ids, "service")
    for percentile, column in ((50, "service_p50_ms"), (99, "service_p99_ms")):
        value = histogram_ms(service, percentile)
        worst = group[column].astype("float64").max()
        fields[column] = value if value is not None else (
            float(worst) if pd.notna(worst) else math.nan)
    notes = [str(n) for n in measured["notes"].fillna("")]
    counts = [c for c in map(broadcast_counts, notes) if c is not None]
    if counts and len(counts) == len(notes):
        expected = sum(c[1] for c in counts)
        fields["deliveries_expected"] = expected
        fields["delivered_fraction"] = (sum(c[0] for c in counts) / expected if expected
                                        else math.nan)
    reached = [r for r in map(subscribers_reached, notes) if r is not None]
    if reached:
        fields["subscribers_reached"] = min(r[0] for r in reached)
    return fields
