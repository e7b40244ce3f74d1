"""Slow clients: how the ordinary clients fare while K slow ones are held (load model
``slow``), against the same server with none (K = 0).

A server held up when its measured clients' p99 stayed within HELD_P99_FACTOR of its own
baseline (or HELD_P99_SLACK_MS above it, for sub-millisecond baselines) and its throughput
above HELD_RPS_FRACTION of it; it gave way when it did not keep up (it answered no measured
request, or too many failed: the trial is ``overloaded``) or was slowed past those bounds. One
statement per K, every server in one of the groups, with each figure and trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context, trial_ids_of
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.wording import HEADLINE_NAMES_MAX, fmt_ms, fmt_rps, names_text

HELD_P99_FACTOR = 2.0
HELD_P99_SLACK_MS = 5.0
HELD_RPS_FRACTION = 0.5
SLOW_LOAD_MODEL = "slow"


def is_slow_clients(meta: Mapping[str, Any]) -> bool:
    """Whether a run's plan has slow-clients levels (run.json plan.levels)."""
    levels = (meta.get("plan") or {}).get("levels") or []
    return any(level.get("load_model") == SLOW_LOAD_MODEL for level in levels)


def _group(base: pd.Series | None, row: pd.Series) -> str:
    """held, slowed, gave_way or unknown, for one server at one count of slow clients."""
    if str(row["outcome"]) == "overloaded":
        return "gave_way"
    if base is None or not bool(base["valid"]) or not bool(row["valid"]):
        return "unknown"
    p99, base_p99 = float(row["p99_ms"]), float(base["p99_ms"])
    held = (p99 <= max(HELD_P99_FACTOR * base_p99, base_p99 + HELD_P99_SLACK_MS)
            and float(row["achieved_rps"]) >= HELD_RPS_FRACTION * float(base["achieved_rps"]))
    return "held" if held else "slowed"


def _part(base: pd.Series | None, row: pd.Series, group: str) -> str:
    name = str(row["server"])
    if group == "gave_way":
        return f"{name} ({str(row['invalid_reason']).split(';')[0]})"
    if group == "unknown":
        return f"{name} (not a valid comparison: {row['invalid_reason'] or 'no valid baseline'})"
    assert base is not None
    return (f"{name} (p99 {fmt_ms(row['p99_ms'])} ms, {fmt_rps(row['achieved_rps'])} req/s; "
            f"without: {fmt_ms(base['p99_ms'])} ms, {fmt_rps(base['achieved_rps'])} req/s)")


def _finding(ctx: Context, rows: pd.DataFrame, bases: Mapping[str, pd.Series],
             count: float) -> Finding:
    groups: dict[str, list[tuple[pd.Series | None, pd.Series]]] = {
        "held": [], "slowed": [], "gave_way": [], "unknown": []}
    for _, row in rows.sort_values(["p99_ms", "server"], na_position="last").iterrows():
        base = bases.get(str(row["server"]))
        groups[_group(base, row)].append((base, row))
    labels = {"held": "held up", "slowed": "slowed", "gave_way": "gave way",
              "unknown": "not compared"}
    text = (f"With {count:g} slow clients held, the measured clients: "
            + "; ".join(f"{labels[g]}: " + ", ".join(_part(b, r, g) for b, r in members)
                        for g, members in groups.items() if members) + ".")
    held = [str(r["server"]) for _, r in groups["held"]]
    lost = [str(r["server"]) for _, r in groups["gave_way"] + groups["slowed"]]
    parts = []
    if held:
        parts.append(f"held up on {names_text(held, HEADLINE_NAMES_MAX)}")
    if lost:
        parts.append(f"gave way or slowed on {names_text(lost, HEADLINE_NAMES_MAX)}")
    headline = (f"With {count:g} slow clients connected, {ctx.kind.lower()} "
                + ("; ".join(parts) or "was not measured validly") + ".")
    every = [r for members in groups.values() for _, r in members]
    return Finding(topic="slow_clients", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=tuple(held), others=tuple(lost), unit="ms",
                   question={"slow_clients": count,
                             "gave_way": [str(r["server"]) for _, r in groups["gave_way"]]},
                   trial_ids=trial_ids_of(*every, *(b for b in bases.values())),
                   values={f"p99_{r['server']}": float(r["p99_ms"]) for r in every
                           if pd.notna(r["p99_ms"])})


def find(ctx: Context) -> list[Finding]:
    rows = ctx.summary[ctx.summary["load_model"] == SLOW_LOAD_MODEL]
    if rows.empty:
        return []
    bases = {str(r["server"]): r for _, r in rows[rows["level"] == 0].iterrows()}
    return [_finding(ctx, rows[rows["level"] == count], bases, count)
            for count in sorted(set(rows["level"].astype("float64"))) if count > 0]
