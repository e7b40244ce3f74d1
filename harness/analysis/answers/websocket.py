"""The "What to run" rows of a WebSocket run: echo, broadcast and idle memory."""

from __future__ import annotations

from collections.abc import Sequence

from harness.analysis.answers.http import _by, _sure
from harness.analysis.answers.row import AnswerRow, repeat_count
from harness.analysis.findings.record import NO_DIFFERENCE, RANKED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import (
    names_text,
    side_text,
)

WHY_WEBSOCKET = ("WSGI has no way to hold a connection open; one event loop holds them all")


def _echo_row(run: RunData, f: Finding, instead: str, anchor: str) -> AnswerRow:
    q = f.question
    if f.verdict == RANKED:
        run_text = side_text(f.winners, "ASGI")
        by = f"{_by(f, 'msgs/s')} (the next best, {q.get('other')})"
        sure = _sure(f, f"{repeat_count(run)} repeats")
    else:
        run_text = "any of " + side_text(q.get("winner_side") or f.others, "ASGI")
        by = "—"
        sure = (_sure(f, f"{repeat_count(run)} repeats") if f.verdict == NO_DIFFERENCE
                else "one server measured")
    return AnswerRow(work=str(q.get("where", "WebSocket echo")), run=run_text,
                     instead_of=instead, by=by, sure=sure, why=WHY_WEBSOCKET,
                     run_id=run.run_id, anchor=anchor)


def websocket_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
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
                              by=by, sure=f"{repeat_count(run)} repeats pooled; no test",
                              why=WHY_WEBSOCKET, run_id=run.run_id, anchor=anchor))
    return rows
