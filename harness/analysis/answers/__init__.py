"""The answer first: the "What to run" rows, one per question a run answers, read from its
findings (never from their sentences).

A row says, for one kind of work: run this (gateway and servers), instead of that (the best of
the other gateway, and the classic choice), by how much, how sure, and why (the physics in a
few words). The kind of run decides which rows answer it (harness.analysis.runkind); each
kind's rows are a module of this package: ``http`` (capacity where the run searched it, else
throughput at the most demanding level both gateways held; a run of several app families
answers each family group), ``websocket``, ``longlived`` and ``mixed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.analysis.answers.http import family_rows, http_rows
from harness.analysis.answers.longlived import (
    background_rows,
    disconnect_rows,
    slow_rows,
    stream_rows,
    upload_rows,
)
from harness.analysis.answers.mixed import mixed_rows
from harness.analysis.answers.row import AnswerRow
from harness.analysis.answers.websocket import websocket_rows
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.runkind import HTTP, run_kind

__all__ = ["KIND_ORDER", "AnswerRow", "answer_rows", "kind_rank"]

# The order of the rows across runs: the kinds of work a team asks about most first.
KIND_ORDER = ("io", "db", "mixed", "cpu", "hello", "json", "websocket", "ws", "stream", "upload",
              "background", "disconnect")

Rows = Callable[[RunData, Sequence[Finding], str], list[AnswerRow]]
# Each kind of run's rows (an HTTP run's: its family groups', else its own, below).
ROWS: dict[str, Rows] = {
    "websocket": websocket_rows,
    "slow_clients": slow_rows,
    "streams": stream_rows,
    "background": background_rows,
    "disconnect": disconnect_rows,
    "upload": upload_rows,
    "mixed": mixed_rows,
}


def answer_rows(run: RunData, findings: Sequence[Finding], *, wait_s: float | None = None,
                anchor: str = "") -> list[AnswerRow]:
    """The "What to run" rows one run answers (``wait_s``: the scenario's declared wait)."""
    kind = run_kind(run.meta)
    if kind != HTTP:
        return ROWS[kind](run, findings, anchor)
    return family_rows(run, findings, wait_s, anchor) or http_rows(run, findings, wait_s, anchor)


def kind_rank(run: RunData) -> int:
    """Where a run's rows go in the table: by its kind of work; an HTTP run of several app
    families (its family groups) after every single-family one."""
    kind = str((run.meta.get("scenario") or {}).get("kind") or "")
    families = run_kind(run.meta) == HTTP \
        and len({str(t.get("app")) for t in run.meta.get("targets") or []}) > 1
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank + (len(KIND_ORDER) if families else 0)
