"""The answer first: the "What to run" rows, one per question a run answers, read from its
findings (never from their sentences).

A row says, for one kind of work: run this (gateway and servers), instead of that (the best of
the other gateway, and the classic choice), by how much, how sure, and why (the physics in a
few words). HTTP runs answer with their capacity comparison where the run searched one, else
with throughput at the most demanding level both gateways held; a run of several app families
answers each family group; a WebSocket run answers echo, broadcast and idle memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.findings.background import is_background
from harness.analysis.findings.disconnect import is_disconnect
from harness.analysis.findings.mixed import is_mixed
from harness.analysis.findings.pools import caps_phrase, pool_caps
from harness.analysis.findings.record import NO_DIFFERENCE, NOT_RANKED, RANKED, Finding
from harness.analysis.findings.slow_clients import is_slow_clients
from harness.analysis.findings.streams import is_streams
from harness.analysis.findings.upload import is_upload
from harness.analysis.rundata import RunData
from harness.analysis.stats import SIGNIFICANCE_LEVEL, SINGLE_RUN_NOISE_FRACTION
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    fmt_mb,
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    kind_label,
    names_text,
    p_text,
    side_text,
)

# The order of the rows across runs: the kinds of work a team asks about most first.
KIND_ORDER = ("io", "db", "mixed", "cpu", "hello", "json", "websocket", "ws", "stream", "upload",
              "background", "disconnect")
CLASSIC_SYNC = "gunicorn-sync"
WHY_CPU = ("the work holds the CPU: an event loop runs it one request at a time, as a sync "
           "worker does")
WHY_HELLO = "no wait to overlap: each server's own cost per request decides"
WHY_WEBSOCKET = ("WSGI has no way to hold a connection open; one event loop holds them all")
WHY_FAMILIES = "behind an event loop the framework's own cost shows"
# A database group's reason when no wait is declared (queries take what they take).
DB_GROUP_WHY = {
    "django": "the ORM is sync: from asgi.py, sync views and the async a-methods run it in "
              "threads (sync_to_async)",
}
WHY_DB = "each query's cost in the driver and the framework, on the server's one CPU"
WHY_STREAMS = ("what holds a connection decides: a sync worker or thread is held by its stream "
               "for the whole of it; an event loop, gevent's greenlets or granian's Rust I/O "
               "hold them all")
WHY_UPLOAD = ("every byte is read off the socket by the server and hashed by the app on the "
              "server's CPUs: the server's own cost per byte decides; a server that held "
              "whole bodies shows it in memory")
WHY_MIXED = ("a heavy request computed on an event loop holds every request on that loop; "
             "on a sync worker it holds only that worker; offloaded, the loop goes on (to a "
             "thread it still shares the GIL, to a process it pays a pickle and a hop)")
# A server whose memory at the largest upload grew by this many bodies over its own at the
# smallest held whole bodies at once (buffered them), rather than a chunk of each.
WHOLE_BODIES_MIN = 1.0
WHY_SLOW = ("a sync worker or thread reading a slow client's request is held for as long as "
            "it trickles; an event loop, gevent's greenlets or granian's Rust HTTP parks it")
WHY_BACKGROUND = ("work after the answer holds what served the request: a sync worker takes no "
                  "other request until it ends; a thread, a greenlet or a coroutine holds only "
                  "itself")
WHY_SIGTERM = ("what a server does on SIGTERM decides: one that waits for its workers' "
               "requests (and their work after the answer) to end loses none; one that cancels "
               "its handlers or kills its workers loses what they held")
# ... with the run's servers named on each side
WHY_SIGTERM_NAMED = ("{kept} waited for each request's handler, its work after the answer "
                     "included, before exiting; {lost} stopped with work still running")
WHY_DISCONNECT = ("an ASGI app hears http.disconnect at once; a WSGI app learns of a closed "
                  "connection only when a write fails: at the next event, or the one after")
# The servers a count row names, most first, before "and N more".
COUNT_NAMES_MAX = 4


@dataclass(frozen=True, kw_only=True)
class AnswerRow:
    """One row of "What to run"; ``anchor``: where its evidence is in the report."""

    work: str
    run: str
    instead_of: str
    by: str
    sure: str
    why: str
    run_id: str
    anchor: str

    def cells(self) -> dict[str, str]:
        return {"work": self.work, "run": self.run, "instead of": self.instead_of,
                "by how much": self.by, "how sure": self.sure, "why": self.why}


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


def _http_rows(run: RunData, findings: Sequence[Finding], wait_s: float | None,
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
             else f"{_repeats(run)} repeats")
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


def _repeats(run: RunData) -> int:
    plan: Mapping[str, Any] = run.meta.get("plan") or {}
    return int(plan.get("repeat") or plan.get("repeats") or 1)


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
    repeats = _repeats(run)
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


def _family_rows(run: RunData, findings: Sequence[Finding], wait_s: float | None,
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


def _echo_row(run: RunData, f: Finding, instead: str, anchor: str) -> AnswerRow:
    q = f.question
    if f.verdict == RANKED:
        run_text = side_text(f.winners, "ASGI")
        by = f"{_by(f, 'msgs/s')} (the next best, {q.get('other')})"
        sure = _sure(f, f"{_repeats(run)} repeats")
    else:
        run_text = "any of " + side_text(q.get("winner_side") or f.others, "ASGI")
        by = "—"
        sure = (_sure(f, f"{_repeats(run)} repeats") if f.verdict == NO_DIFFERENCE
                else "one server measured")
    return AnswerRow(work=str(q.get("where", "WebSocket echo")), run=run_text,
                     instead_of=instead, by=by, sure=sure, why=WHY_WEBSOCKET,
                     run_id=run.run_id, anchor=anchor)


def _websocket_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    unsupported = next((f for f in findings if f.topic == "ws_unsupported"), None)
    instead = ("WSGI: cannot hold a WebSocket" + (f" ({names_text(unsupported.others)})"
                                                   if unsupported and unsupported.others else ""))
    picks = []
    closed = [f for f in findings if f.topic == "ws_echo_closed"]
    if closed:
        picks.append(closed[0])
    for topic in ("ws_broadcast", "ws_idle"):
        mine = [f for f in findings if f.topic == topic]
        if mine:
            picks.append(mine[-1])
    rows = []
    for f in picks:
        if not f.winners and f.topic != "ws_echo_closed":
            continue
        if f.topic == "ws_echo_closed":
            rows.append(_echo_row(run, f, instead, anchor))
            continue
        elif f.topic == "ws_broadcast":
            work = f"WebSocket broadcast, {f.question.get('level', 0):g} subscribers"
            by = "lowest p99 delivery"
        else:
            work = f"WebSocket idle, {f.question.get('level', 0):g} connections"
            by = "least memory per connection"
        rows.append(AnswerRow(work=work, run=f"ASGI: {f.winners[0]}", instead_of=instead,
                              by=by, sure=f"{_repeats(run)} repeats pooled; no test",
                              why=WHY_WEBSOCKET, run_id=run.run_id, anchor=anchor))
    return rows


def _largest(findings: Sequence[Finding], topic: str) -> Finding | None:
    """The finding of ``topic`` at the largest level its question names by the same key (the
    most slow clients, the most streams): the row a team lead reads."""
    mine = [f for f in findings if f.topic == topic]
    return max(mine, key=lambda f: float(f.question.get(topic, 0))) if mine else None


def _slow_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The most slow clients the run held: where the others were still served."""
    f = _largest(findings, "slow_clients")
    if f is None:
        return []
    count = float(f.question["slow_clients"])
    p99 = {k.removeprefix("p99_"): v for k, v in f.values.items()}
    held = sorted(f.winners, key=lambda s: p99.get(s, math.inf))
    gave_way = list(f.question.get("gave_way") or [])
    by = (f"p99 {fmt_ms(p99[held[0]])} ms on {held[0]}" if held and held[0] in p99 else "")
    if gave_way:
        by += f"{'; ' if by else ''}{names_text(gave_way, HEADLINE_NAMES_MAX)} answered " \
              "(nearly) none"
    repeats = _repeats(run)
    return [AnswerRow(work=f"{count:g} slow clients connected, {kind_label(run.meta)}",
                      run=names_text(held, HEADLINE_NAMES_MAX) if held else "—",
                      instead_of=names_text(list(f.others), HEADLINE_NAMES_MAX)
                      if f.others else "—",
                      by=by, sure=f"{repeats} repeat{'s' if repeats != 1 else ''}; each server "
                      "against itself with none", why=WHY_SLOW,
                      run_id=run.run_id, anchor=anchor)]


def _stream_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The most streams the run held at once: who held them all."""
    f = _largest(findings, "streams")
    if f is None:
        return []
    count = float(f.question["streams"])
    done = {k.removeprefix("completed_"): v for k, v in f.values.items()}
    by = (f"all {count:g} completed vs {', '.join(f'{done[s]:g} on {s}' for s in f.others[:2])}"
          if f.winners and f.others else "")
    repeats = _repeats(run)
    return [AnswerRow(work=f"{count:g} event streams held at once",
                      run=names_text(list(f.winners), HEADLINE_NAMES_MAX) if f.winners else "—",
                      instead_of=names_text(list(f.others), HEADLINE_NAMES_MAX)
                      if f.others else "—", by=by,
                      sure=f"{repeats} repeat{'s' if repeats != 1 else ''}; streams counted",
                      why=WHY_STREAMS, run_id=run.run_id, anchor=anchor)]


def _prefixed(values: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


def _upload_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The largest body the run uploaded: the most MB/s, against the slowest server and the
    classic sync one, each with its peak memory (and that over its own at the smallest body)."""
    f = max((f for f in findings if f.topic == "upload"),
            key=lambda f: float(f.question.get("upload", 0)), default=None)
    if f is None:
        return []
    memory = next((m for m in findings if m.topic == "upload_memory"
                   and m.question.get("upload") == f.question.get("upload")), None)
    mb_s = _prefixed(f.values, "mb_s_")
    peak = _prefixed(memory.values, "peak_") if memory is not None else {}
    ratio = _prefixed(memory.values, "ratio_") if memory is not None else {}
    baseline = memory.question.get("baseline") if memory is not None else None

    def said(server: str) -> str:
        text = f"{fmt_rps(mb_s[server])} MB/s on {server}"
        if server in peak:
            text += f", peak memory {fmt_mb(peak[server])} MB"
            if server in ratio and baseline:
                text += f" ({fmt_ratio(ratio[server])} its own at {baseline})"
        return text

    ordered = sorted(mb_s, key=lambda s: (-mb_s[s], s))
    best = [s for s in ordered if s in f.winners][:1]
    named = [*best, *(s for s in (CLASSIC_SYNC, *ordered[-1:])
                      if s in mb_s and s not in f.winners)]
    instead = list(dict.fromkeys(s for s in named if s not in f.winners))
    # the physics, as this run measured it: who held whole bodies in memory, if anyone did
    bodies = _prefixed(memory.values, "bodies_") if memory is not None else {}
    held = [s for s in sorted(bodies) if bodies[s] >= WHOLE_BODIES_MIN]
    why = WHY_UPLOAD
    if held:
        why += f": {names_text(held, HEADLINE_NAMES_MAX)} did"
    elif bodies:
        why += (f"; none did (at most {max(bodies.values()):.1f} bodies over its own at "
                f"{baseline})")
    repeats = _repeats(run)
    return [AnswerRow(work=f"{f.question.get('size')} uploads, closed loop",
                      run=names_text(list(f.winners), HEADLINE_NAMES_MAX) if f.winners else "—",
                      instead_of=names_text(instead) if instead else "—",
                      by="; ".join(said(s) for s in dict.fromkeys(named)),
                      sure=f"{repeats} repeat{'s' if repeats != 1 else ''}; every answer's "
                      "length and SHA-256 checked", why=why,
                      run_id=run.run_id, anchor=anchor)]


def _counted(repeats: int, what: str) -> str:
    return f"{repeats} repeat{'s' if repeats != 1 else ''}; {what}"


def _background_rows(run: RunData, findings: Sequence[Finding], anchor: str
                     ) -> list[AnswerRow]:
    """The most clients' rate of finished tasks, and the tasks lost on SIGTERM."""
    rows = []
    repeats = _repeats(run)
    f = _largest(findings, "background")
    if f is not None:
        rate = {k.removeprefix("finished_per_s_"): v for k, v in f.values.items()
                if k.startswith("finished_per_s_")}
        top = max(rate, key=lambda s: (rate[s], s)) if rate else None
        low = min(rate, key=lambda s: (rate[s], s)) if rate else None
        by = (f"{fmt_rps(rate[top])} tasks/s ({top}) vs {fmt_rps(rate[low])} ({low})"
              if top is not None and low is not None and f.others else
              f"{fmt_rps(rate[top])} tasks/s" if top is not None else "")
        rows.append(AnswerRow(
            work=f"work after each answer, {float(f.question['background']):g} clients",
            run=names_text(list(f.winners), HEADLINE_NAMES_MAX) if f.winners else "—",
            instead_of=names_text(list(f.others), HEADLINE_NAMES_MAX) if f.others else "—",
            by=by, sure=_counted(repeats, "tasks counted in every worker's log"),
            why=WHY_BACKGROUND, run_id=run.run_id, anchor=anchor))
    f = _largest(findings, "background_sigterm")
    if f is not None:
        lost = {k.removeprefix("lost_"): v for k, v in f.values.items()
                if k.startswith("lost_")}
        # who lost the most, then the classic pair, whatever they lost
        named = [s for s in sorted(lost, key=lambda s: (-lost[s], s)) if lost[s] > 0]
        named = named[:COUNT_NAMES_MAX]
        named += [s for s in (CLASSIC_SYNC, "uvicorn") if s in lost and s not in named]
        counts = [f"{s} {lost[s]:g} of {f.values.get(f'accepted_{s}', 0.0):g}" for s in named]
        more = len(lost) - len(named)
        killed = list(f.question.get("killed") or [])
        why = WHY_SIGTERM_NAMED.format(kept=names_text(list(f.winners), HEADLINE_NAMES_MAX),
                                       lost=names_text(list(f.others), HEADLINE_NAMES_MAX)) \
            if f.winners and f.others else WHY_SIGTERM
        rows.append(AnswerRow(
            work=f"background tasks lost on SIGTERM, {float(f.question['background_sigterm']):g}"
                 " clients",
            run=names_text(list(f.winners), HEADLINE_NAMES_MAX) if f.winners else "—",
            instead_of=names_text(list(f.others), HEADLINE_NAMES_MAX) if f.others else "—",
            by=", ".join(counts) + (f" and {more} more" if more > 0 else "")
            + (f"; {names_text(killed, HEADLINE_NAMES_MAX)} killed at the bound"
               if killed else ""),
            sure=_counted(repeats, "accepted vs finished, counted after the exit"),
            why=why, run_id=run.run_id, anchor=anchor))
    return rows


def _disconnect_rows(run: RunData, findings: Sequence[Finding], anchor: str
                     ) -> list[AnswerRow]:
    """The most clients that left at once: who stopped producing at once, who did not."""
    f = _largest(findings, "disconnect")
    if f is None:
        return []
    stop = {k.removeprefix("stop_p50_ms_"): v for k, v in f.values.items()
            if k.startswith("stop_p50_ms_")}
    after = {k.removeprefix("after_max_"): v for k, v in f.values.items()
             if k.startswith("after_max_")}
    # uvicorn and gunicorn-sync where the run has them: the pair most teams weigh
    first = "uvicorn" if "uvicorn" in f.winners else f.winners[0] if f.winners else None
    last = CLASSIC_SYNC if CLASSIC_SYNC in f.others else f.others[-1] if f.others else None
    parts = []
    if first is not None and first in stop:
        parts.append(f"stops {fmt_ms(stop[first])} ms after the close ({first})")
    if last is not None and last in stop:
        parts.append(f"{fmt_ms(stop[last])} ms, after {after.get(last, 0.0):g} more events "
                     f"({last})")
    return [AnswerRow(
        work=f"a client that leaves a stream, {float(f.question['disconnect']):g} at once",
        run=names_text(list(f.winners), HEADLINE_NAMES_MAX) if f.winners else "—",
        instead_of=names_text(list(f.others), HEADLINE_NAMES_MAX) if f.others else "—",
        by=" vs ".join(parts), sure=_counted(_repeats(run), "each stream's end in the app's log"),
        why=WHY_DISCONNECT, run_id=run.run_id, anchor=anchor)]


def _mixed_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The highest rate of a request mix with a ranked server: whose common requests kept the
    lowest p99, against the same server inline and the classic sync worker."""
    ranked = [f for f in findings if f.topic == "mixed" and f.winners]
    f = max(ranked, key=lambda f: float(f.question.get("mixed", 0)), default=None)
    if f is None:
        return []
    kind = str(f.question["kind"])
    p99 = _prefixed(f.values, f"p99_{kind}_")
    best = f.winners[0]
    server = best.split(" · ")[0]
    # the comparisons a team asks for: the same server computing inline, and gunicorn-sync
    inline = next((s for s in p99 if s.split(" · ")[0] == server and s.endswith(" · raw")),
                  None)
    classic = next((s for s in p99 if s.split(" · ")[0] == CLASSIC_SYNC), None)
    instead = [s for s in dict.fromkeys((inline, classic)) if s is not None and s != best]
    by = "; ".join(f"p99 {fmt_ms(p99[s])} ms on {s}" for s in [best, *instead])
    repeats = _repeats(run)
    share = float(f.question.get("heavy_share", 0))
    return [AnswerRow(work=f"{share:.0%} {f.question.get('heavy')} requests among {kind} ones "
                           f"({f.question.get('mixed'):g} req/s): the {kind} requests' p99",
                      run=best, instead_of=names_text(instead) if instead else "—", by=by,
                      sure=f"{repeats} repeat{'s' if repeats != 1 else ''}; each kind's "
                      "histogram of its own", why=WHY_MIXED, run_id=run.run_id, anchor=anchor)]


def answer_rows(run: RunData, findings: Sequence[Finding], *, wait_s: float | None = None,
                anchor: str = "") -> list[AnswerRow]:
    """The "What to run" rows one run answers (``wait_s``: the scenario's declared wait)."""
    kind = str((run.meta.get("scenario") or {}).get("kind") or "")
    if kind in ("websocket", "ws"):
        return _websocket_rows(run, findings, anchor)
    if is_slow_clients(run.meta):
        return _slow_rows(run, findings, anchor)
    if is_streams(run.meta):
        return _stream_rows(run, findings, anchor)
    if is_background(run.meta):
        return _background_rows(run, findings, anchor)
    if is_disconnect(run.meta):
        return _disconnect_rows(run, findings, anchor)
    if is_upload(run.meta):
        return _upload_rows(run, findings, anchor)
    if is_mixed(run.meta):
        return _mixed_rows(run, findings, anchor)
    family = _family_rows(run, findings, wait_s, anchor)
    if family:
        return family
    return _http_rows(run, findings, wait_s, anchor)


def kind_rank(run: RunData) -> int:
    kind = str((run.meta.get("scenario") or {}).get("kind") or "")
    families = len({str(t.get("app")) for t in run.meta.get("targets") or []}) > 1
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank + (len(KIND_ORDER) if families else 0)


