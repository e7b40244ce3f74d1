"""The "What to run" rows of an HTTP run: its capacity comparison where it searched one, else
throughput at the most demanding level both gateways held; a run of several app families
answers each family group (frameworks, database drivers, offload)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.analysis.answers.row import CLASSIC_SYNC, AnswerRow, repeat_count
from harness.analysis.findings.pools import caps_phrase, pool_caps
from harness.analysis.findings.record import NOT_RANKED, RANKED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import SIGNIFICANCE_LEVEL, SINGLE_RUN_NOISE_FRACTION
from harness.analysis.wording import (
    fmt_ratio,
    fmt_rps,
    kind_label,
    p_text,
    side_text,
)

WHY_CPU = ("the work holds the CPU: an event loop runs it one request at a time, as a sync "
           "worker does")


WHY_HELLO = "no wait to overlap: each server's own cost per request decides"


WHY_FAMILIES = "behind an event loop the framework's own cost shows"


# A database group's reason when no wait is declared (queries take what they take).
DB_GROUP_WHY = {
    "django": "the ORM is sync: from asgi.py, sync views and the async a-methods run it in "
              "threads (sync_to_async)",
}


WHY_DB = "each query's cost in the driver and the framework, on the server's one CPU"


def _sides(f: Finding) -> tuple[str, str]:
    q = f.question
    return (side_text(q.get("winner_side") or f.winners, str(q.get("winner_gateway", ""))),
            side_text(q.get("other_side") or f.others, str(q.get("other_gateway", ""))))


def _sure(f: Finding, count: str) -> str:
    if f.verdict == RANKED:
        return f"{p_text(f.p_value)}, {count}" if f.p_value is not None else "measured once"
    if f.verdict == NOT_RANKED:
        return f"not ranked: {f.why}"
    return f"no significant difference ({p_text(f.p_value) or f.why}), {count}"


def _by(f: Finding, unit: str) -> str:
    if f.figures is None or f.ratio is None:
        return ""
    ratio = fmt_ratio(f.ratio)
    if f.ratio_ci is not None and f.verdict == RANKED:
        ratio += f" (95 % CI {f.ratio_ci[0]:.1f}–{f.ratio_ci[1]:.1f})"
    return f"{ratio}: {fmt_rps(f.figures[0])} vs {fmt_rps(f.figures[1])} {unit}"


def _worker_cap(run: RunData, server: str, wait_s: float) -> str:
    """"3 workers ÷ 50 ms = 60 req/s" for a sync server of the run, from run.json's preset."""
    for target in run.meta.get("targets") or []:
        if target.get("server") != server:
            continue
        workers = int(target.get("workers") or 1)
        threads = int(target.get("threads") or 1)
        slots = workers * threads
        what = f"{workers} workers" + (f" × {threads} threads" if threads > 1 else "")
        return f"{what} ÷ {1000 * wait_s:g} ms = {slots / wait_s:,.0f} req/s"
    return ""


def _why_http(run: RunData, kind: str, classic: Finding | None, wait_s: float | None) -> str:
    if kind == "cpu":
        return WHY_CPU
    if kind in ("hello", "json"):
        return WHY_HELLO
    if wait_s is not None:
        cap = _worker_cap(run, CLASSIC_SYNC, wait_s)
        if cap:
            return (f"a sync worker holds each request through its wait: {CLASSIC_SYNC} caps "
                    f"at {cap}; an event loop overlaps the waits")
    return "an event loop overlaps the waits that hold a sync worker"


def http_rows(run: RunData, findings: Sequence[Finding], wait_s: float | None,
               anchor: str) -> list[AnswerRow]:
    by_topic: dict[str, Finding] = {}
    for f in findings:
        by_topic.setdefault(f.topic, f)
    capacity = "capacity_wsgi_vs_asgi" in by_topic
    main = by_topic.get("capacity_wsgi_vs_asgi" if capacity else "wsgi_vs_asgi")
    if main is None:
        return []
    classic = by_topic.get("capacity_classic" if capacity else "classic")
    kind = str((run.meta.get("scenario") or {}).get("kind") or "")
    where = str(main.question.get("where", ""))
    work = f"{kind_label(run.meta)}, {'capacity ' if capacity else 'throughput '}{where}"
    winners, others = _sides(main)
    searches = main.question.get("searches")
    count = (f"{searches[0]} vs {searches[1]} searches" if searches
             else f"{repeat_count(run)} repeats")
    unit = "req/s"
    by = _by(main, unit)
    instead = f"{others} (best of its gateway)"
    if classic is not None:
        c_other = _sides(classic)[1]
        instead += f"; {c_other} (classic)" if CLASSIC_SYNC in c_other else ""
        if classic.ratio is not None and classic.verdict == RANKED:
            by += f"; {fmt_ratio(classic.ratio)} {CLASSIC_SYNC}"
    if main.verdict == RANKED:
        run_text = winners
    else:
        q = main.question
        run_text = ("either gateway: the best, "
                    f"{side_text([str(q.get('winner'))], str(q.get('winner_gateway', '')))} and "
                    f"{side_text([str(q.get('other'))], str(q.get('other_gateway', '')))}")
        instead = "—"
    return [AnswerRow(work=work, run=run_text, instead_of=instead, by=by,
                      sure=_sure(main, count), why=_why_http(run, kind, classic, wait_s),
                      run_id=run.run_id, anchor=anchor)]


def _family_why(run: RunData, base: str, wait_s: float | None) -> str:
    server = base.rpartition(" on ")[2]
    cap = _worker_cap(run, server, wait_s) if wait_s is not None else ""
    return (f"{base} sits at its worker limit, {cap}; behind an event loop the framework's own "
            "cost shows" if cap else WHY_FAMILIES)


def _database_why(run: RunData, f: Finding, wait_s: float | None) -> str:
    """A database group's row: the pool physics of its two targets when the wait is declared,
    else what the group isolates."""
    group = str(f.question.get("group", ""))
    if wait_s is None:
        return DB_GROUP_WHY.get(group, WHY_DB)
    servers = {side.rpartition(" on ")[2] for side in f.others[:2]}
    apps = {str(t.get("app")) for t in run.meta.get("targets") or []
            if group in ((t.get("family") or {}).get("groups") or ())}
    caps = [c for c in pool_caps(run, wait_s) if c.server in servers and c.app in apps]
    return ("each target holds at most min(request slots, pooled connections) queries at "
            f"once: {caps_phrase(caps, wait_s)}" if caps else DB_GROUP_WHY.get(group, WHY_DB))


# A database run's driver group answers two questions, each its own row: the same driver on
# both gateways, and asyncpg against psycopg under ASGI (keys: "app_gateway").
DRIVER_PAIRS = (
    (("raw_wsgi", "raw_asgi"), "the same driver (psycopg), sync vs async",
     "the gateway is the only change: sync workers, each with its own pool, against one event "
     "loop with one pool"),
    (("raw_asgi", "raw-asyncpg_asgi"), "asyncpg vs psycopg under ASGI",
     "the same event loop, another driver: asyncpg's own protocol and its larger default pool"),
)


def _pair_row(run: RunData, f: Finding, keys: tuple[str, str], what: str, why: str,
              anchor: str) -> AnswerRow | None:
    """One row of a group: the faster of two variants, or either when the difference is not
    significant over repeats (or, measured once, within run-to-run noise)."""
    sides = f.question.get("sides") or {}
    rps = {k.removeprefix("rps_"): v for k, v in f.values.items() if k.startswith("rps_")}
    base_key = next(iter(sides), "")
    rps[base_key] = f.values.get("rps_base", math.nan)
    if not all(k in sides and k in rps for k in keys):
        return None
    (a, b), ratio = keys, rps[keys[1]] / rps[keys[0]]
    p = f.values.get(f"p_value_{keys[1]}") if keys[0] == base_key else None
    run_side, instead = (sides[b], sides[a]) if ratio >= 1.0 else (sides[a], sides[b])
    ratio = max(ratio, 1.0 / ratio)
    repeats = repeat_count(run)
    if p is not None:
        sure = f"{p_text(p)}, {repeats} repeats"
        noise = p >= SIGNIFICANCE_LEVEL
    else:
        sure = f"{repeats} repeat{'s' if repeats != 1 else ''} pooled; no test"
        noise = repeats == 1 and ratio < 1.0 + SINGLE_RUN_NOISE_FRACTION
    level = f.question.get("level")
    work = (f"{what}, {f.question.get('kind')}, {level:g} clients" if isinstance(level, float)
            else what)
    if noise:
        return AnswerRow(work=work, run=f"either: {run_side} or {instead}", instead_of="—",
                         by=f"{fmt_ratio(ratio)} apart: "
                         + ("no significant difference" if p is not None
                            else "within run-to-run noise (measured once)"),
                         sure=sure, why=why, run_id=run.run_id, anchor=anchor)
    return AnswerRow(work=work, run=run_side, instead_of=instead, by=fmt_ratio(ratio),
                     sure=sure, why=why, run_id=run.run_id, anchor=anchor)


def family_rows(run: RunData, findings: Sequence[Finding], wait_s: float | None,
                 anchor: str) -> list[AnswerRow]:
    database = str((run.meta.get("scenario") or {}).get("kind") or "") == "db"
    rows = []
    for f in findings:
        if f.topic != "family_group" or f.caveat or len(f.others) < 2:
            continue
        why = (_database_why(run, f, wait_s) if database
               else _family_why(run, f.others[0], wait_s))
        sides = list(f.question.get("sides") or {})
        if f.question.get("group") == "drivers":
            # a declared wait's pool physics say why better than the drivers do
            pairs = [(keys, what, why if wait_s is not None else driver_why)
                     for keys, what, driver_why in DRIVER_PAIRS]
        else:
            # the base against the best of the others (``sides`` is in that order)
            pairs = [((sides[0], sides[1]), str(f.question.get("title")), why)] \
                if len(sides) > 1 else []
        rows += [row for keys, what, row_why in pairs
                 if (row := _pair_row(run, f, keys, what, row_why, anchor)) is not None]
    return rows
