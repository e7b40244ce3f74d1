"""The "What to run" row of a request mix: the common requests' p99 beside the heavy ones."""

from __future__ import annotations

from collections.abc import Sequence

from harness.analysis.answers.row import CLASSIC_SYNC, AnswerRow, counted, prefixed, repeat_count
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import (
    fmt_ms,
    names_text,
)

WHY_MIXED = ("a heavy request computed on an event loop holds every request on that loop; "
             "on a sync worker it holds only that worker; offloaded, the loop goes on (to a "
             "thread it still shares the GIL, to a process it pays a pickle and a hop)")


def mixed_rows(run: RunData, findings: Sequence[Finding], anchor: str) -> list[AnswerRow]:
    """The highest rate of a request mix with a ranked server: whose common requests kept the
    lowest p99, against the same server's other variants (inline, offloaded to a thread) and
    the classic sync worker."""
    ranked = [f for f in findings if f.topic == "mixed" and f.winners]
    f = max(ranked, key=lambda f: float(f.question.get("mixed", 0)), default=None)
    if f is None:
        return []
    kind = str(f.question["kind"])
    p99 = prefixed(f.values, f"p99_{kind}_")
    best = f.winners[0]
    server = best.split(" · ")[0]
    # the comparisons a team asks for: the same server run the other ways, and gunicorn-sync
    same = sorted((s for s in p99 if s.split(" · ")[0] == server and s != best),
                  key=lambda s: p99[s])
    classic = [s for s in p99 if s.split(" · ")[0] == CLASSIC_SYNC and s != best][:1]
    instead = list(dict.fromkeys([*same, *classic]))
    by = "; ".join(f"p99 {fmt_ms(p99[s])} ms on {s}" for s in [best, *instead])
    repeats = repeat_count(run)
    share = float(f.question.get("heavy_share", 0))
    return [AnswerRow(work=f"{share:.0%} {f.question.get('heavy')} requests among {kind} ones "
                           f"({f.question.get('mixed'):g} req/s): the {kind} requests' p99",
                      run=best, instead_of=names_text(instead) if instead else "—", by=by,
                      sure=counted(repeats, "each kind's histogram of its own"), why=WHY_MIXED,
                      run_id=run.run_id, anchor=anchor)]
