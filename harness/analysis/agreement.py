"""Does a second run confirm the first? Their guidance side by side, sentence by sentence.

Two runs of the same plan agree on a finding when its sentence has the same *shape* in both:
the same servers in the same roles, the same verdict ("served 1.5x the throughput of", "no
significant difference", "not ranked here"), only the figures differing. A comparison that
names no winner in either run (no significant difference, or not ranked: its ``ranked`` value
is 0) agrees whichever servers the two runs' tied groups hold: it ranks none of them. A
comparison that names winners in both runs agrees when it names the same winners (its
``winners``), whoever the losing side's tied group holds: "granian-asgi (tied with
gunicorn-uvicorn and uvicorn) served 1.8x the throughput of granian-wsgi" and "uvicorn (tied
with granian-asgi and gunicorn-uvicorn) served 2.2x the throughput of gunicorn-gevent (tied
with granian-wsgi)" give the same answer to "best WSGI or best ASGI?". A sentence naming both
ends of a ranking (the most and the least efficient, memory, tail latency) has the best end's
servers as its winners, the other end as its losing side (``guidance.ends_winners``).
Caveats (a busy machine, noisy repeats) and the note that repeats agreed describe how a run
was measured, not what it found: they are shown but not judged.

>>> rows = compare_runs("results/run-a", "results/run-b")  # doctest: +SKIP
>>> [r.topic for r in rows if r.finding and not r.same]  # doctest: +SKIP
[]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.analysis.findings.record import Finding
from harness.analysis.frames import RunData, busy_trials, summarize
from harness.analysis.guidance import compute_guidance
from harness.analysis.wording import FIGURE_RE
from harness.noise import BUSY_OTHERS_PCT, BUSY_STEAL_PCT, SLOW_CPU_FACTOR

# Not caveats in the report (good news reads as a finding), but about the measurement:
# "repeats agreed within 2 %, worst: uvicorn" ranks no server.
MEASUREMENT_TOPICS = frozenset({"stable"})
# A run with more than this share of its trials on a busy machine (harness.noise) is no fair
# check of the other: a second io_bound reference run with 82 of 388 trials busy (steal up to
# 68 %) had closed-loop peaks a third lower than the first's, and 3 of 9 findings in common.
BUSY_SHARE_MAX = 0.05


def shape(text: str) -> str:
    """A sentence with its figures replaced by ``#``."""
    return FIGURE_RE.sub("#", text)  # what remains are names, roles and verdicts


@dataclass(frozen=True)
class Agreement:
    """One topic's sentence (the k-th of its topic) in run A and in run B."""

    topic: str
    a: str | None  # None: run A has no such sentence
    b: str | None
    finding: bool  # a finding (judged), not a caveat
    unranked: bool = False  # a comparison that named no winner in either run
    same_winners: bool = False  # a comparison that named the same winners in both runs

    @property
    def same(self) -> bool:
        return self.a is not None and self.b is not None and (
            self.unranked or self.same_winners or shape(self.a) == shape(self.b))


def _unranked(item: Finding | None) -> bool:
    return item is not None and item.values.get("ranked") == 0.0


def _same_winners(first: Finding | None, second: Finding | None) -> bool:
    return (first is not None and second is not None and bool(first.winners)
            and first.winners == second.winners)


def _by_topic(items: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for item in items:
        grouped[item.topic].append(item)
    return grouped


def compare_runs(run_a: Path | str | RunData, run_b: Path | str | RunData) -> list[Agreement]:
    """The guidance of both runs, paired by topic (in run A's order, then B's extra topics)."""
    guidance = []
    for given in (run_a, run_b):
        run = given if isinstance(given, RunData) else RunData.load(given)
        guidance.append(compute_guidance(run, summarize(run)))
    return compare_guidance(*guidance)


def compare_guidance(items_a: list[Finding], items_b: list[Finding]
                     ) -> list[Agreement]:
    """Two runs' guidance items paired by topic (run A's order, then B's extra topics)."""
    a, b = _by_topic(items_a), _by_topic(items_b)
    topics = list(dict.fromkeys([i.topic for i in items_a] + [i.topic for i in items_b]))
    rows = []
    for topic in topics:
        # Pair the same sentence first (a topic can hold one per server or per level), then
        # what is left, in order: a sentence only one run has is a difference.
        mine, theirs = list(a.get(topic, [])), list(b.get(topic, []))
        pairs: list[tuple[Finding | None, Finding | None]] = []
        for item in list(mine):
            match = next((t for t in theirs if shape(t.text) == shape(item.text)), None)
            if match is not None:
                pairs.append((item, match))
                mine.remove(item)
                theirs.remove(match)
        for k in range(max(len(mine), len(theirs))):
            pairs.append((mine[k] if k < len(mine) else None,
                          theirs[k] if k < len(theirs) else None))
        for first, second in pairs:
            caveat = (first or second).caveat  # type: ignore[union-attr]
            rows.append(Agreement(topic=topic, a=first.text if first else None,
                                  b=second.text if second else None,
                                  finding=not caveat and topic not in MEASUREMENT_TOPICS,
                                  unranked=_unranked(first) and _unranked(second),
                                  same_winners=_same_winners(first, second)))
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
