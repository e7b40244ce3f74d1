"""A client that leaves mid-stream (load model ``disconnect``, harness.tasktrials): how long
each server kept producing the stream after the client closed its connection, and how many
events it made for no one.

Read from trials.csv's disconnect rows (``requests``: the streams whose clients left): the
latency columns are the time from a client's close to the server's end of that stream (the
app's task log, on the same clock), merged over repeats in the summary;
``events_after_close_p50``/``_max`` the events made after the close; ``streams_never_ended``
the streams still going past the bound (the stream's own length after the last close).

A server stops at once when no stream got another event after its client left (an ASGI app
hears ``http.disconnect``); else it stopped after its next writes failed (a WSGI server
learns of a closed connection only so), or never noticed and made every event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context, trial_ids_of
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.wording import HEADLINE_NAMES_MAX, fmt_ms, names_text
from harness.scenario_tables import DISCONNECT_READ

DISCONNECT_LOAD_MODEL = "disconnect"


def is_disconnect(meta: Mapping[str, Any]) -> bool:
    """Whether a run's plan holds clients that leave a stream (run.json plan.levels)."""
    levels = (meta.get("plan") or {}).get("levels") or []
    return any(level.get("load_model") == DISCONNECT_LOAD_MODEL for level in levels)


@dataclass(frozen=True, kw_only=True)
class ServerStop:
    """One server's stop after its clients left, at one level (repeats pooled)."""

    server: str
    stop_p50_ms: float | None
    stop_max_ms: float | None
    after_p50: float | None  # the median repeat's median
    after_max: int | None
    never_ended: int
    measured: int  # streams whose end was seen (the clients' left, less the never ended)
    reason: str

    @property
    def at_once(self) -> bool:
        return self.after_max == 0 and self.never_ended == 0 and self.measured > 0


def server_stops(ctx: Context, level: float) -> list[ServerStop]:
    summary = ctx.summary[(ctx.summary["load_model"] == DISCONNECT_LOAD_MODEL)
                          & (ctx.summary["level"] == level)]
    trials = ctx.run.trials
    out = []
    for _, row in summary.iterrows():
        ids = [str(t) for t in row["trial_ids"]]
        rows = trials[trials["trial_id"].astype("string").isin(ids)
                      & (trials["status"].astype("string") == "ok")]
        if rows.empty:
            continue
        after = rows["events_after_close_p50"].astype("float64").dropna()
        most = rows["events_after_close_max"].dropna()
        out.append(ServerStop(
            server=str(row["server"]),
            stop_p50_ms=float(row["p50_ms"]) if pd.notna(row["p50_ms"]) else None,
            stop_max_ms=float(row["max_ms"]) if pd.notna(row["max_ms"]) else None,
            after_p50=float(after.median()) if len(after) else None,
            after_max=int(most.max()) if len(most) else None,
            never_ended=int(rows["streams_never_ended"].fillna(0).sum()),
            measured=int(rows["requests"].sum()) - int(rows["streams_never_ended"].fillna(0)
                                                       .sum()),
            reason=str(row["invalid_reason"] or "")))
    return out


def _part(s: ServerStop) -> str:
    if not s.measured:
        return f"{s.server} (no stream's end seen)"
    stop = (f"stopped {fmt_ms(s.stop_p50_ms)} ms after the close (p50; max "
            f"{fmt_ms(s.stop_max_ms or 0.0)} ms)" if s.stop_p50_ms is not None else "")
    after = (f", {s.after_p50:g} more events (max {s.after_max})"
             if s.after_p50 is not None else "")
    never = f", {s.never_ended} never ended" if s.never_ended else ""
    caveat = "; not vouched for: see the caveats" if s.reason else ""
    return f"{s.server} {stop}{after}{never}{caveat}"


def _finding(ctx: Context, level: float, stops: list[ServerStop], read: int | None) -> Finding:
    ordered = sorted(stops, key=lambda s: (s.never_ended, s.after_max if s.after_max is not None
                                           else 1 << 30,
                                           s.stop_p50_ms if s.stop_p50_ms is not None
                                           else float("inf"), s.server))
    at_once = [s for s in ordered if s.at_once]
    later = [s for s in ordered if not s.at_once]
    after_read = f" after {read} events" if read else ""
    text = (f"{level:g} clients leave a stream{after_read}: "
            + ("stopped at once (no event after the close): "
               + "; ".join(_part(s) for s in at_once) if at_once else "no server stopped at once")
            + ("; kept producing: " + "; ".join(_part(s) for s in later) if later else "")
            + ".")
    more = [s.after_max for s in later if s.after_max is not None]
    longest = [s.stop_max_ms for s in later if s.stop_max_ms is not None]
    headline = ("A client that leaves a stream: "
                + (f"{names_text([s.server for s in at_once], HEADLINE_NAMES_MAX)} stopped "
                   f"within {fmt_ms(max(s.stop_max_ms or 0.0 for s in at_once))} ms"
                   if at_once else "no server stopped at once")
                + (f"; {names_text([s.server for s in later], HEADLINE_NAMES_MAX)} made "
                   f"{_span(more)} more events, for up to {fmt_ms(max(longest))} ms"
                   if more and longest else "") + ".")
    values: dict[str, float] = {}
    for s in stops:
        if s.stop_p50_ms is not None:
            values[f"stop_p50_ms_{s.server}"] = s.stop_p50_ms
        if s.stop_max_ms is not None:
            values[f"stop_max_ms_{s.server}"] = s.stop_max_ms
        if s.after_max is not None:
            values[f"after_max_{s.server}"] = float(s.after_max)
        if s.after_p50 is not None:
            values[f"after_p50_{s.server}"] = s.after_p50
        values[f"never_ended_{s.server}"] = float(s.never_ended)
    summary = ctx.summary[(ctx.summary["load_model"] == DISCONNECT_LOAD_MODEL)
                          & (ctx.summary["level"] == level)]
    return Finding(topic="disconnect", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=tuple(s.server for s in at_once),
                   others=tuple(s.server for s in later), unit="ms",
                   question={"disconnect": level, "read": read},
                   trial_ids=trial_ids_of(*(r for _, r in summary.iterrows())), values=values)


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def _read(meta: Mapping[str, Any]) -> int | None:
    shape = ((meta.get("scenario") or {}).get("definition") or {}).get("disconnect") or {}
    read = shape.get("read", DISCONNECT_READ)
    return read if isinstance(read, int) else None


def find(ctx: Context) -> list[Finding]:
    rows = ctx.summary[ctx.summary["load_model"] == DISCONNECT_LOAD_MODEL]
    found = []
    for level in sorted(set(rows["level"].astype("float64"))):
        stops = server_stops(ctx, level)
        if stops:
            found.append(_finding(ctx, level, stops, _read(ctx.run.meta)))
    return found
