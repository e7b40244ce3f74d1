"""Does a second run confirm the first? Their findings side by side, record by record.

Two runs of the same plan agree on a finding when its record gives the same answer in both
(``Finding.answer``): a ranking names the same winners, whoever the losing side's tied group
holds ("granian-asgi, tied with gunicorn-uvicorn and uvicorn, served 1.8x granian-wsgi" and
"uvicorn, tied with granian-asgi and gunicorn-uvicorn, served 2.2x gunicorn-gevent" give the
same answer to "best WSGI or best ASGI?"); a comparison that names no winner in either run (no
significant difference, or not ranked) agrees whichever servers its sides hold; a statement
(each server's capacity, a level a server did not keep up with) names the same servers. A
sentence naming both ends of a ranking (the most and the least efficient, memory, tail
latency) has the best end as its winners. Compare reads records, never the sentences: a
finding reworded gives the same result. Caveats (a busy machine, noisy repeats) and the note
that repeats agreed describe how a run was measured, not what it found: shown, not judged.

>>> rows = compare_runs("results/run-a", "results/run-b")  # doctest: +SKIP
>>> [r.topic for r in rows if r.finding and not r.same]  # doctest: +SKIP
[]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.findings.record import NO_DIFFERENCE, NOT_RANKED, Finding
from harness.analysis.guidance import compute_guidance
from harness.analysis.rundata import RunData, busy_trials
from harness.noise import BUSY_OTHERS_PCT, BUSY_STEAL_PCT, SLOW_CPU_FACTOR

# Not caveats in the report (good news reads as a finding), but about the measurement:
# "repeats agreed within 2 %, worst: uvicorn" ranks no server.
MEASUREMENT_TOPICS = frozenset({"stable"})
# A run with more than this share of its trials on a busy machine (harness.noise) is no fair
# check of the other (docs/history.md: a busy second run had 3 of 9 findings in common).
BUSY_SHARE_MAX = 0.05
_UNRANKED = (NO_DIFFERENCE, NOT_RANKED)


@dataclass(frozen=True)
class Agreement:
    """One topic's finding (the k-th of its topic) in run A and in run B."""

    topic: str
    first: Finding | None  # None: run A has no such finding
    second: Finding | None
    finding: bool  # a finding (judged), not a caveat

    @property
    def a(self) -> str | None:
        return self.first.text if self.first is not None else None

    @property
    def b(self) -> str | None:
        return self.second.text if self.second is not None else None

    @property
    def same(self) -> bool:
        return (self.first is not None and self.second is not None
                and self.first.answer() == self.second.answer())

    @property
    def unranked(self) -> bool:
        """A comparison that named no winner in either run."""
        return (self.first is not None and self.second is not None
                and self.first.verdict in _UNRANKED and self.second.verdict in _UNRANKED)

    @property
    def same_winners(self) -> bool:
        """A ranking that named the same winners in both runs."""
        return (self.same and self.first is not None and self.first.ranked
                and bool(self.first.winners))

    @property
    def identical(self) -> bool:
        """The same answer, and the same other side in the same order too."""
        return (self.same and self.first is not None and self.second is not None
                and self.first.others == self.second.others)


def _by_topic(items: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for item in items:
        grouped[item.topic].append(item)
    return grouped


def compare_runs(run_a: Path | str | RunData, run_b: Path | str | RunData) -> list[Agreement]:
    """The findings of both runs, paired by topic (in run A's order, then B's extra topics)."""
    guidance = []
    for given in (run_a, run_b):
        run = given if isinstance(given, RunData) else RunData.load(given)
        guidance.append(compute_guidance(run))
    return compare_guidance(*guidance)


def compare_guidance(items_a: list[Finding], items_b: list[Finding]) -> list[Agreement]:
    """Two runs' findings paired by topic (run A's order, then B's extra topics)."""
    a, b = _by_topic(items_a), _by_topic(items_b)
    topics = list(dict.fromkeys([i.topic for i in items_a] + [i.topic for i in items_b]))
    rows = []
    for topic in topics:
        # Pair the same answer first (a topic can hold one per server or per level), then
        # what is left, in order: a finding only one run has is a difference.
        mine, theirs = list(a.get(topic, [])), list(b.get(topic, []))
        pairs: list[tuple[Finding | None, Finding | None]] = []
        for item in list(mine):
            match = next((t for t in theirs if t.answer() == item.answer()), None)
            if match is not None:
                pairs.append((item, match))
                mine.remove(item)
                theirs.remove(match)
        for k in range(max(len(mine), len(theirs))):
            pairs.append((mine[k] if k < len(mine) else None,
                          theirs[k] if k < len(theirs) else None))
        for first, second in pairs:
            caveat = (first or second).caveat  # type: ignore[union-attr]
            rows.append(Agreement(topic=topic, first=first, second=second,
                                  finding=not caveat and topic not in MEASUREMENT_TOPICS))
    return rows


def busy_runs(*runs: RunData) -> list[str]:
    """One line for each run with more than BUSY_SHARE_MAX of its trials on a busy machine."""
    lines = []
    for label, run in zip("AB", runs, strict=False):
        trials = run.trials
        busy = len(busy_trials(trials))
        if trials.empty or busy / len(trials) <= BUSY_SHARE_MAX:
            continue
        lines.append(f"run {label} ({run.run_dir}): {busy} of {len(trials)} trials were taken "
                     f"on a busy machine (steal above {BUSY_STEAL_PCT:g} %, other processes "
                     f"above {BUSY_OTHERS_PCT:g} % of a CPU, or the server's CPU more than "
                     f"{SLOW_CPU_FACTOR:g}x slower than its recent pace), more than "
                     f"{BUSY_SHARE_MAX:.0%}: "
                     "where the runs differ, the machine may be why; run it again on a quiet "
                     "one")
    return lines
