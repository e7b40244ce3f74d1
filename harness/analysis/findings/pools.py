"""Pool physics: with a known wait D inside the database, a target holds at most as many
queries at once as its request slots (a sync worker's threads) and its pooled connections
allow, so it caps near min(slots, connections) / D. Stated beside what each target measured, as
the I/O-bound worker physics are: an event loop with a pool of 4 caps where 4 sync workers do.

Read from run.json's targets (workers, threads, ``database.pool_per_process``) and the
scenario's declared wait (``/db/sleep?ms=N``); a run without both states nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context, best_row, trial_ids_of
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import fmt_rps

# Threads per worker of a WSGI server whose preset leaves them to the server (None): one.
DEFAULT_THREADS = 1


@dataclass(frozen=True, kw_only=True)
class PoolCap:
    """One target's limit on queries held at once, and the throughput it allows."""

    server: str
    app: str
    gateway: str
    limit: int
    what: str  # "3 workers", "3 workers × 2 threads", "4 connections a process"
    short: str  # "3 workers", "6 threads", "4 connections", "12 connections"
    cap_rps: float


def _limit(target: Mapping[str, Any]) -> tuple[int, str, str] | None:
    db = target.get("database")
    if not isinstance(db, Mapping) or not db.get("pool_per_process"):
        return None
    workers = int(target.get("workers") or 1)
    pool = int(db["pool_per_process"])
    connections = (pool * workers, f"{pool} connections a process"
                   + (f" × {workers} processes" if workers > 1 else ""),
                   f"{pool * workers} connections")
    if str(target.get("gateway") or "").lower() != "wsgi":
        return connections
    threads = int(target.get("threads") or DEFAULT_THREADS)
    slots = (workers * threads, f"{workers} workers"
             + (f" × {threads} threads" if threads > 1 else ""),
             f"{workers * threads} {'threads' if threads > 1 else 'workers'}")
    return min(slots, connections, key=lambda limit: limit[0])


def pool_caps(run: RunData, wait_s: float) -> list[PoolCap]:
    """Every planned database target's cap at a wait of ``wait_s`` per query."""
    caps = []
    for target in run.meta.get("targets") or []:
        if str(target.get("status") or "") == "unsupported":
            continue
        limit = _limit(target)
        if limit is None:
            continue
        caps.append(PoolCap(server=str(target.get("server")), app=str(target.get("app")),
                            gateway=str(target.get("gateway") or "").lower(), limit=limit[0],
                            what=limit[1], short=limit[2], cap_rps=limit[0] / wait_s))
    return caps


def caps_phrase(caps: Sequence[PoolCap], wait_s: float) -> str:
    """"4 connections a process ÷ 50 ms = 80 req/s (uvicorn · raw, ...); ..." by limit."""
    by_what: dict[tuple[float, str], list[str]] = {}
    for cap in sorted(caps, key=lambda c: (c.cap_rps, c.what)):
        by_what.setdefault((cap.cap_rps, cap.what), []).append(f"{cap.server} · {cap.app}")
    return "; ".join(f"{what} ÷ {1000 * wait_s:g} ms = {fmt_rps(rps)} req/s "
                     f"({', '.join(names)})" for (rps, what), names in by_what.items())


def _peak(summary: pd.DataFrame, cap: PoolCap) -> pd.Series | None:
    rows = summary[(summary["server"] == cap.server) & (summary["app"] == cap.app)
                   & (summary["load_model"] == "closed") & summary["valid"].astype(bool)]
    return None if rows.empty else best_row(rows)


def find(ctx: Context) -> list[Finding]:
    floor = ctx.floor
    if floor is None or not floor.declared or "app" not in ctx.by_server_summary:
        return []
    caps = pool_caps(ctx.by_server_run, floor.seconds)
    measured = [(cap, row) for cap in caps
                if (row := _peak(ctx.by_server_summary, cap)) is not None]
    if not measured:
        return []
    wait = f"{1000 * floor.seconds:g} ms"
    parts = [f"{cap.server} · {cap.app}: {cap.what} → {fmt_rps(cap.cap_rps)} req/s, measured "
             f"{fmt_rps(row['achieved_rps'])} ({row['achieved_rps'] / cap.cap_rps:.0%})"
             for cap, row in measured]
    by_cap: dict[tuple[float, str], list[float]] = {}
    for cap, row in sorted(measured, key=lambda pair: pair[0].cap_rps):
        by_cap.setdefault((cap.cap_rps, cap.short), []).append(float(row["achieved_rps"]))

    def span(got: list[float]) -> str:
        low, high = fmt_rps(min(got)), fmt_rps(max(got))
        return low if low == high else f"{low}–{high}"

    brief = ", ".join(f"{what} {fmt_rps(rps)} ({span(got)})"
                      for (rps, what), got in by_cap.items())
    text = (f"Pool physics, {wait} inside the database a request: each target holds at most "
            f"min(its request slots, its pooled connections) queries at once, so it caps near "
            f"that ÷ {wait}: " + "; ".join(parts) + ".")
    headline = (f"A {wait} database wait caps each target at its workers or its pool ÷ "
                f"{wait}: {brief} req/s (measured).")
    return [Finding(topic="pool_physics", run_id=ctx.run.run_id, text=text, headline=headline,
                    verdict=STATED, winners=tuple(f"{c.server} · {c.app}" for c, _ in measured),
                    unit="req/s", question={"wait_ms": 1000 * floor.seconds},
                    trial_ids=trial_ids_of(*(row for _, row in measured)),
                    values={f"cap_{c.server}_{c.app}": c.cap_rps for c, _ in measured})]
