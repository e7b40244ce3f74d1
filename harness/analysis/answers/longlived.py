"""The "What to run" rows of the long-lived runs: slow clients, event streams, uploads,
background work (and SIGTERM) and clients that leave a stream."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.analysis.answers.row import (
    CLASSIC_SYNC,
    COUNT_NAMES_MAX,
    AnswerRow,
    counted,
    largest,
    names_cell,
    prefixed,
    repeat_count,
)
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    fmt_mb,
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    kind_label,
    names_text,
)

WHY_STREAMS = ("what holds a connection decides: a sync worker or thread is held by its stream "
               "for the whole of it; an event loop, gevent's greenlets or granian's Rust I/O "
               "hold them all")


WHY_UPLOAD = ("every byte is read off the socket by the server and hashed by the app on the "
              "server's CPUs: the server's own cost per byte decides; a server that held "
              "whole bodies shows it in memory")


# A server whose memory at the largest upload grew by this many bodies over its own at the
# smallest held whole bodies at once (buffered them), rather than a chunk of each. Not one: the
# three gunicorn WSGI workers grew by 1.1-1.3 bodies of 16 MiB over 3 worker processes at 8
# clients, which is each heap keeping what its chunked reads allocated; a server that buffered
# bodies would hold one per client (8 here).
WHOLE_BODIES_MIN = 2.0


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


def slow_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The most slow clients the run held: where the others were still served."""
    f = largest(findings, "slow_clients")
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
    repeats = repeat_count(run)
    return [AnswerRow(work=f"{count:g} slow clients connected, {kind_label(run.meta)}",
                      run=names_cell(held),
                      instead_of=names_cell(f.others),
                      by=by, sure=counted(repeats, "each server against itself with none"),
                      why=WHY_SLOW,
                      run_id=run.run_id, anchor=anchor)]


def stream_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The most streams the run held at once: who held them all."""
    f = largest(findings, "streams")
    if f is None:
        return []
    count = float(f.question["streams"])
    done = {k.removeprefix("completed_"): v for k, v in f.values.items()}
    by = (f"all {count:g} completed vs {', '.join(f'{done[s]:g} on {s}' for s in f.others[:2])}"
          if f.winners and f.others else "")
    repeats = repeat_count(run)
    return [AnswerRow(work=f"{count:g} event streams held at once",
                      run=names_cell(f.winners),
                      instead_of=names_cell(f.others), by=by,
                      sure=counted(repeats, "streams counted"),
                      why=WHY_STREAMS, run_id=run.run_id, anchor=anchor)]


def upload_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The largest body the run uploaded: the most MB/s, against the slowest server and the
    classic sync one, each with its peak memory (and that over its own at the smallest body)."""
    f = max((f for f in findings if f.topic == "upload"),
            key=lambda f: float(f.question.get("upload", 0)), default=None)
    if f is None:
        return []
    memory = next((m for m in findings if m.topic == "upload_memory"
                   and m.question.get("upload") == f.question.get("upload")), None)
    mb_s = prefixed(f.values, "mb_s_")
    peak = prefixed(memory.values, "peak_") if memory is not None else {}
    ratio = prefixed(memory.values, "ratio_") if memory is not None else {}
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
    bodies = prefixed(memory.values, "bodies_") if memory is not None else {}
    held = [s for s in sorted(bodies) if bodies[s] >= WHOLE_BODIES_MIN]
    why = WHY_UPLOAD
    if held:
        why += f": {names_text(held, HEADLINE_NAMES_MAX)} did"
    elif bodies:
        why += (f"; none did (at most {max(bodies.values()):.1f} bodies over its own at "
                f"{baseline})")
    repeats = repeat_count(run)
    return [AnswerRow(work=f"{f.question.get('size')} uploads, closed loop",
                      run=names_cell(f.winners),
                      instead_of=names_text(instead) if instead else "—",
                      by="; ".join(said(s) for s in dict.fromkeys(named)),
                      sure=counted(repeats, "every answer's length and SHA-256 checked"), why=why,
                      run_id=run.run_id, anchor=anchor)]


def background_rows(run: RunData, findings: Sequence[Finding], anchor: str
                     ) -> list[AnswerRow]:
    """The most clients' rate of finished tasks, and the tasks lost on SIGTERM."""
    rows = []
    repeats = repeat_count(run)
    f = largest(findings, "background")
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
            run=names_cell(f.winners),
            instead_of=names_cell(f.others),
            by=by, sure=counted(repeats, "tasks counted in every worker's log"),
            why=WHY_BACKGROUND, run_id=run.run_id, anchor=anchor))
    f = largest(findings, "background_sigterm")
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
            run=names_cell(f.winners),
            instead_of=names_cell(f.others),
            by=", ".join(counts) + (f" and {more} more" if more > 0 else "")
            + (f"; {names_text(killed, HEADLINE_NAMES_MAX)} killed at the bound"
               if killed else ""),
            sure=counted(repeats, "accepted vs finished, counted after the exit"),
            why=why, run_id=run.run_id, anchor=anchor))
    return rows


def disconnect_rows(run: RunData, findings: Sequence[Finding], anchor: str
                     ) -> list[AnswerRow]:
    """The most clients that left at once: who stopped producing at once, who did not."""
    f = largest(findings, "disconnect")
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
        run=names_cell(f.winners),
        instead_of=names_cell(f.others),
        by=" vs ".join(parts),
        sure=counted(repeat_count(run), "each stream's end in the app's log"),
        why=WHY_DISCONNECT, run_id=run.run_id, anchor=anchor)]
