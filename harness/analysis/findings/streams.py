"""Server-sent event streams held at once (load model ``stream``): which servers held every
stream to its end, how many each held at once, and how far the gaps between events strayed
from the declared interval (a server that buffers a stream shows gaps near 0 and a late first
event). Read from trials.csv's stream rows: ``requests`` the streams completed, ``errors`` the
others, ``connections_at_end`` the most open at once, the latency columns the gaps and the
service-time columns the time to first event (harness.loadgen.streams.as_load_result).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context, trial_figures, trial_ids_of
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import HEADLINE_NAMES_MAX, fmt_ms, names_text
from harness.errors import UsageError
from harness.units import parse_duration

STREAM_LOAD_MODEL = "stream"


def is_streams(meta: Mapping[str, Any]) -> bool:
    """Whether a run's plan holds streams (run.json plan.levels)."""
    levels = (meta.get("plan") or {}).get("levels") or []
    return any(level.get("load_model") == STREAM_LOAD_MODEL for level in levels)


def _interval_ms(meta: Mapping[str, Any]) -> float | None:
    shape = ((meta.get("scenario") or {}).get("definition") or {}).get("stream") or {}
    try:
        return parse_duration(str(shape.get("interval") or "")) * 1000
    except UsageError:
        return None


def _part(run: RunData, row: pd.Series) -> str:
    completed, errors = int(row["requests"]), int(row["errors"])
    total = completed + errors
    # per trial, as written (the summary keeps neither for HTTP rows): the worst repeat
    held = trial_figures(run, row, "connections_at_end")
    first = trial_figures(run, row, "service_p99_ms")
    at_once = f", at most {min(held):g} at once" if held else ""
    gaps = (f"; gap p99 {fmt_ms(row['p99_ms'])} ms" if pd.notna(row["p99_ms"]) else "")
    gaps += f", first event p99 {fmt_ms(max(first))} ms" if first else ""
    return f"{row['server']} ({completed} of {total} completed{at_once}{gaps})"


def _finding(ctx: Context, rows: pd.DataFrame, level: float) -> Finding:
    ordered = rows.sort_values(["requests", "p99_ms", "server"],
                               ascending=[False, True, True], na_position="last")
    every = [r for _, r in ordered.iterrows()]
    complete = [int(r["errors"]) == 0 and int(r["requests"]) > 0 for r in every]
    held = [r for r, ok in zip(every, complete, strict=True) if ok]
    short = [r for r, ok in zip(every, complete, strict=True) if not ok]
    interval = _interval_ms(ctx.run.meta)
    declared = f" (events {interval:g} ms apart)" if interval else ""
    text = (f"{level:g} streams held at once{declared}: held every stream to its end: "
            + (", ".join(_part(ctx.run, r) for r in held) or "none")
            + ("; fell short: " + ", ".join(_part(ctx.run, r) for r in short) if short else "")
            + ".")
    names = [str(r["server"]) for r in held]
    lost = [str(r["server"]) for r in short]
    headline = (f"{level:g} event streams at once: "
                + (f"all held by {names_text(names, HEADLINE_NAMES_MAX)}" if names
                   else "no server held them all")
                + (f"; {names_text(lost, HEADLINE_NAMES_MAX)} completed "
                   f"{int(min(r['requests'] for r in short))}–"
                   f"{int(max(r['requests'] for r in short))}" if short else "") + ".")
    return Finding(topic="streams", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=tuple(names), others=tuple(lost), unit="streams",
                   question={"streams": level, "interval_ms": interval},
                   trial_ids=trial_ids_of(*every),
                   values={f"completed_{r['server']}": float(r["requests"]) for r in every})


def find(ctx: Context) -> list[Finding]:
    rows = ctx.summary[ctx.summary["load_model"] == STREAM_LOAD_MODEL]
    return [_finding(ctx, rows[rows["level"] == level], level)
            for level in sorted(set(rows["level"].astype("float64")))]
