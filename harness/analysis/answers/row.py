"""One row of "What to run", and what every kind of run's rows share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import HEADLINE_NAMES_MAX, names_text

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


CLASSIC_SYNC = "gunicorn-sync"


def repeat_count(run: RunData) -> int:
    plan: Mapping[str, Any] = run.meta.get("plan") or {}
    return int(plan.get("repeat") or plan.get("repeats") or 1)


def largest(findings: Sequence[Finding], topic: str) -> Finding | None:
    """The finding of ``topic`` at the largest level its question names by the same key (the
    most slow clients, the most streams): the row a team lead reads."""
    mine = [f for f in findings if f.topic == topic]
    return max(mine, key=lambda f: float(f.question.get(topic, 0))) if mine else None


def prefixed(values: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


def counted(repeats: int, what: str) -> str:
    return f"{repeats} repeat{'s' if repeats != 1 else ''}; {what}"


def names_cell(servers: Sequence[str]) -> str:
    """A row's cell naming ``servers`` (the first few, then "and N more"), or a dash."""
    return names_text(list(servers), HEADLINE_NAMES_MAX) if servers else "—"
