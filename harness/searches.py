"""The capacity searches of a run (capacity.csv) and its head-to-head pairs.

A search finds the highest open-loop rate that meets the run's objective (harness.slo), each
step a trial (harness.trials). After the plan, with --head-to-head, the best WSGI and the best
ASGI target by the plan's searches (harness.pairing: the report's rule) are searched again in
turn, A B, B A, A B, ...; the runner (harness.runner) starts each of those searches on a new
server, numbered by its pair.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence

from harness import pairing
from harness.backends.base import RunningTarget
from harness.drivers import Driver
from harness.errors import TargetError
from harness.plan import SEARCH_REWARM_S, Level, Plan, PlannedTarget
from harness.results import CapacityRecord, RunWriter, TargetStatus, TrialStatus
from harness.run_state import RunObserver, RunOutcome, RunTargets
from harness.slo import CapacitySearch, Slo
from harness.trials import Expected, Trials


class CapacitySearches:
    """Every capacity search of a run, in capacity.csv and in ``capacities``; and the choice of
    the head-to-head pair from the plan's searches."""

    def __init__(self, plan: Plan, writer: RunWriter, observer: RunObserver, *,
                 driver: Driver, outcome: RunOutcome, targets: RunTargets,
                 trials: Trials) -> None:
        self.plan = plan
        self.writer = writer
        self.observer = observer
        self.driver = driver
        self.outcome = outcome
        self.targets = targets
        self.trials = trials
        self.capacities: list[tuple[PlannedTarget, CapacityRecord]] = []  # every search's

    def search(self, planned: PlannedTarget, server: RunningTarget, upstream_url: str | None,
               expected: Expected, slo: Slo, repeat: int, *, warmed: bool = True,
               pair: int | None = None) -> bool:
        """The highest open-loop rate that meets ``slo`` (harness.slo), each step a trial;
        the answer goes to capacity.csv. False when the server failed under it.

        The first step runs on the server the levels warmed; a step that missed the
        objective stops its server, and the next step runs on a new one, with a warm-up at
        the step's rate longer by SEARCH_REWARM_S. Why: overload leaves a server slower for a
        while, and a new process is slower than a warmed one, so neither the same server for
        every step nor a new one with only the usual warm-up finds the capacity a warmed,
        unharmed server has (the measurements: docs/history.md, "The runner's measured
        decisions").

        In a round without levels (``warmed`` false: past timing.repeat, --searches) the first
        step, too, runs on a new server with the longer warm-up, and the ramp starts from the
        median of the earlier rounds' closed-loop peaks."""
        search = CapacitySearch(self.plan.search, peak_rps=self._closed_loop_peak(planned,
                                                                                 repeat))
        alive = self._steps(search, planned, server, upstream_url, expected, slo, repeat,
                            warmed=warmed)
        found = search.result()
        answer = CapacityRecord(
            server=planned.server, repeat=repeat, gateway=planned.target.server.gateway,
            app=planned.target.app, slo=slo.describe(), status=found.status,
            capacity_rps=found.capacity_rps, proof_trial=found.proof_trial,
            failed_rate=found.failed_rate, failed_trial=found.failed_trial, steps=found.steps,
            note=found.note, pair=pair)
        self.writer.append_capacity(answer)
        self.capacities.append((planned, answer))
        self.observer.capacity_found(planned, slo, found)
        return alive

    def _closed_loop_peak(self, planned: PlannedTarget, repeat: int) -> float | None:
        """The round's closed-loop peak of ``planned``, else the median of the other rounds'
        (None before any): where the search's ramp starts."""
        peaks: dict[int, float] = {}  # each round's closed-loop peak
        for r in self.outcome.records:
            if r.server == planned.server and r.app == planned.target.app and r.valid \
                    and r.load_model == "closed":
                peaks[r.repeat] = max(peaks.get(r.repeat, 0.0), r.achieved_rps)
        return peaks.get(repeat, statistics.median(peaks.values()) if peaks else None)

    def _steps(self, search: CapacitySearch, planned: PlannedTarget, server: RunningTarget,
               upstream_url: str | None, expected: Expected, slo: Slo, repeat: int, *,
               warmed: bool) -> bool:
        """Each step of ``search``, a trial, until it is done; a new server after a step that
        missed. False when the server failed under it (or did not start again)."""
        alive = True
        current: RunningTarget | None = server  # the caller stops ``server``; this, the rest
        fresh = not warmed  # ``current`` warmed by neither the levels nor a step yet
        try:
            while (rate := search.next_rate()) is not None:
                level = Level(load_model="open", rate=rate)
                if current is None:
                    try:
                        current = self.targets.start(planned, upstream_url)
                    except TargetError as exc:
                        reason = f"the server did not start again for the step at {rate:g} " \
                                 f"req/s: {exc}"
                        self.targets.set_status(planned, TargetStatus.FAILED, reason)
                        search.record(rate, "", None, undetermined=reason)
                        alive = False
                        break
                    fresh = True
                warm = SEARCH_REWARM_S if fresh else 0.0
                fresh = False
                if (why := self.driver.supports(self.trials.spec(planned, current, expected,
                                                                 level))):
                    search.record(rate, "", None, undetermined=f"unsupported by the "
                                  f"{self.driver.name} driver: {why}")
                    break
                record = self.trials.run(planned, current, expected, level, repeat,
                                         phase="search", more_warmup_s=warm)
                if record.outcome == "invalid" and record.status == TrialStatus.OK:
                    # once more: a noisy neighbour on the generator's CPUs is the usual cause
                    record = self.trials.run(planned, current, expected, level, repeat,
                                             phase="search")
                if record.status == TrialStatus.FAILED:
                    state = TargetStatus.FAILED if current.alive() else TargetStatus.DIED
                    self.targets.set_status(planned, state, record.invalid_reason)
                    search.record(rate, record.trial_id, None,
                                  undetermined=record.invalid_reason)
                    alive = False
                    break
                if record.outcome == "invalid":
                    search.record(rate, record.trial_id, None,
                                  undetermined=record.invalid_reason)
                    continue
                why = (record.invalid_reason if record.outcome == "overloaded"
                       else slo.check(record))
                search.record(rate, record.trial_id, why)
                if why is not None and not search.done:
                    current.stop()  # the next step starts on a server that was not overloaded
                    current = None
        finally:
            if current is not None and current is not server:
                current.stop()
        return alive

    def choose_pair(self, runnable: Sequence[PlannedTarget]
                    ) -> tuple[PlannedTarget, PlannedTarget] | None:
        """The head-to-head pair, the best WSGI and the best ASGI of ``runnable`` by the plan's
        searches (``best_of_each_gateway``), in run.json and told to the observer; None (and
        why, in run.json) when there is none."""
        pair = best_of_each_gateway(runnable, self.capacities)
        if pair is None:
            why = ("a WSGI and an ASGI target with a capacity in every search of the plan "
                   "were expected")
            self.writer.update_meta(head_to_head={"pairs": 0, "skipped": why})
            self.observer.head_to_head(None, why)
            return None
        self.writer.update_meta(head_to_head={
            "servers": [p.name for p in pair], "pairs": self.plan.head_to_head,
            "chosen_by": "the highest mean capacity of each gateway over the plan's searches"})
        self.observer.head_to_head(pair, "")
        return pair


def head_to_head_order(pair: tuple[PlannedTarget, PlannedTarget], pairs: int
                       ) -> Iterator[tuple[int, PlannedTarget]]:
    """(pair number, target) for ``pairs`` pairs: A B, then B A, ...: neither server is always
    the one searched later in a pair."""
    first, second = pair
    for number in range(1, pairs + 1):
        for planned in (first, second) if number % 2 else (second, first):
            yield number, planned


def best_of_each_gateway(runnable: Sequence[PlannedTarget],
                         capacities: Sequence[tuple[PlannedTarget, CapacityRecord]]
                         ) -> tuple[PlannedTarget, PlannedTarget] | None:
    """(best WSGI, best ASGI) of ``runnable`` by their capacities in the plan's searches (not
    the head-to-head ones), by the report's rule (harness.pairing.best_of_each_gateway); None
    unless both gateways have a target that rule counts."""
    figures: dict[str, list[float | None]] = {}
    for planned, record in capacities:
        if record.pair is None:
            # a search without a capacity found none (below_min, undetermined before any)
            figures.setdefault(planned.name, []).append(record.capacity_rps)
    by_name = {planned.name: planned for planned in runnable}
    best = pairing.best_of_each_gateway(
        pairing.Contender(name=planned.name, gateway=planned.target.server.gateway,
                          figures=figures.get(planned.name, []))
        for planned in runnable)
    return None if best is None else (by_name[best[0]], by_name[best[1]])
