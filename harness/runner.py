"""The one place that knows the order of a run.

For each target: start it pinned to the server CPUs, verify it against the app contract, then for
each load level and repeat: warm up (not recorded), measure, sample the server's CPU and memory,
write the trial at once. Stop the target (TERM, then KILL; every child reaped). A target that
fails to start or to verify is skipped with the reason; a server that dies marks its trial failed
and the run goes on with the next target. On Ctrl-C the servers are stopped and everything
measured so far is already on disk.

Its parts: one trial (harness.trials), the capacity searches and the head-to-head pairs
(harness.searches), what they share (harness.run_state); the console is harness.console.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from harness.backends.base import Backend
from harness.cpuspeed import (
    BASELINE_TRIALS,
    MAX_PROBED_CPUS,
    PROBE_INTERVAL_S,
    PROBE_LOOPS,
    CpuSpeed,
)
from harness.drivers import Driver
from harness.errors import TargetError
from harness.httpget import fetch
from harness.noise import SLOW_CPU_FACTOR
from harness.plan import Plan, PlannedTarget
from harness.results import RunWriter, TargetStatus, TrialStatus
from harness.run_state import RunObserver, RunOutcome, RunTargets
from harness.searches import CapacitySearches, head_to_head_order
from harness.services import database
from harness.trials import Expected, Trials
from harness.verify import verify_family_target

# The generator shares its CPUs with the upstream delay service and the harness. Its own CPU
# time cannot show that it was starved of CPU; how busy its CPUs were can: busier than this, a
# trial is marked as possibly starved (harness.trials.saturation_reasons; read by each Runner
# as it is made).
LOADGEN_CPUS_BUSY_MAX_PCT = 90.0
EXPECTED_BODY_TIMEOUT_S = 30.0
# Answers fetched before the load: a body every measured answer must match only when they all
# agree (random database rows differ from one answer to the next; verify checked their shape).
EXPECTED_BODY_FETCHES = 3


def fetch_expected_body(url: str, method: str, headers: Sequence[tuple[str, str]] = (),
                        body: bytes = b"") -> bytes | None:
    """Requests to a verified target (the very request the load will send): their body, when
    every answer gave the same one, is what every measured answer must match."""
    bodies = set()
    for _ in range(EXPECTED_BODY_FETCHES):
        try:
            answer = fetch(url, timeout_s=EXPECTED_BODY_TIMEOUT_S, headers=headers,
                           method=method, body=body)
        except OSError:
            return None
        if not 200 <= answer.status < 300:
            return None
        bodies.add(answer.body)
    return bodies.pop() if len(bodies) == 1 else None


class Runner:
    """Runs a plan into a RunWriter: targets started by ``backend``, load from ``driver``.

    The order is kept here: ``trials`` takes one trial (harness.trials), ``searches`` the
    capacity searches and picks the head-to-head pair (harness.searches), and ``targets``
    starts the targets' servers and keeps their statuses (harness.run_state)."""

    def __init__(self, plan: Plan, writer: RunWriter, observer: RunObserver, *,
                 backend: Backend, driver: Driver) -> None:
        self.plan = plan
        self.writer = writer
        self.observer = observer
        self.backend = backend
        self.driver = driver
        self.outcome = RunOutcome()
        self.targets = RunTargets(plan, writer, backend, self.outcome)
        # LOADGEN_CPUS_BUSY_MAX_PCT as it is now (a test sets another before a run)
        self.trials = Trials(plan, writer, observer, driver=driver, outcome=self.outcome,
                             loadgen_cpus_busy_max_pct=LOADGEN_CPUS_BUSY_MAX_PCT)
        self.searches = CapacitySearches(plan, writer, observer, driver=driver,
                                         outcome=self.outcome, targets=self.targets,
                                         trials=self.trials)

    def run(self) -> RunOutcome:
        """Every repeat restarts every server, and each repeat starts the round of targets
        further along (``repeat_order``): a slow drift of the machine is spread over every
        server instead of landing on one, and the spread between repeats includes what varies
        between server starts (what two runs differ by), not only between back-to-back
        trials."""
        self.targets.write_all()
        for planned in self.plan.targets:
            if not planned.supported:
                self.targets.set_status(planned, TargetStatus.UNSUPPORTED, planned.reason)
                self.observer.target_skipped(planned, TargetStatus.UNSUPPORTED, planned.reason)
        runnable = list(self.plan.runnable)
        broken: set[str] = set()  # targets that failed to start or verify: not tried again
        with self._upstream() as upstream_url, self._database() as db_url, \
                CpuSpeed(self.plan.server_cpus[:MAX_PROBED_CPUS]) as speed:
            self.trials.speed = speed
            self.targets.db_url = db_url
            self.writer.update_meta(cpu_speed_probe={
                "cpus": list(speed.cpus), "loops": PROBE_LOOPS,
                "interval_s": PROBE_INTERVAL_S, "baseline_trials": BASELINE_TRIALS,
                "slow_factor": SLOW_CPU_FACTOR})
            rounds = self.plan.rounds
            for repeat in range(1, rounds + 1):
                for planned in repeat_order(runnable, repeat, rounds):
                    if planned.name not in broken and not self._run_target(
                            planned, upstream_url, repeat):
                        broken.add(planned.name)
            if self.plan.head_to_head:
                self._head_to_head([p for p in runnable if p.name not in broken],
                                   upstream_url, rounds)
        return self.outcome

    def _head_to_head(self, runnable: Sequence[PlannedTarget], upstream_url: str | None,
                      rounds: int) -> None:
        """After the plan, the best WSGI and the best ASGI target by the plan's capacities
        (``CapacitySearches.choose_pair``, the rule the report's comparison uses) are searched
        in turn, A B, B A, A B, ...: each on a freshly started server, recorded with its pair's
        number (repeat: rounds + pair). The report's best WSGI vs best ASGI then takes every
        search of the two.

        Why: one search's figure moves too much from one search to the next for the plan's
        few searches a server to tell the two apart, so these search again only the two that
        the comparison names, in turn so that neither is always the later one while the
        machine drifts (the measurements: docs/history.md, "The runner's measured
        decisions")."""
        pair = self.searches.choose_pair(runnable)
        if pair is None:
            return
        for number, planned in head_to_head_order(pair, self.plan.head_to_head):
            if not self._run_target(planned, upstream_url, rounds + number, pair=number):
                return  # it would not start or verify: no more pairs to be had

    @contextlib.contextmanager
    def _upstream(self) -> Iterator[str | None]:
        if not self.plan.scenario.needs_upstream:
            yield None
            return
        upstream = self.backend.start_upstream(cpus=self.plan.loadgen_cpus)
        try:
            self.writer.update_meta(upstream={"url": upstream.url,
                                              "cpus": list(self.plan.loadgen_cpus)})
            yield upstream.url
        finally:
            upstream.stop()

    @contextlib.contextmanager
    def _database(self) -> Iterator[str | None]:
        """The user's own database (checked, and seeded when asked, by ``database.prepare``
        before the run), or a scratch one started here."""
        db = self.plan.database
        if db is None:
            yield None
            return
        if db.url is not None:
            self.writer.update_meta(database={**database.describe(db.url), "own": True,
                                              "seeded": db.seed})
            yield db.url
            return
        server = self.backend.start_database(cpus=db.cpus, connections=db.connections)
        self.trials.services.append(server)
        try:
            self.writer.update_meta(database={**database.describe(server.url), "own": False,
                                              "cpus": list(db.cpus),
                                              "max_connections": db.connections})
            yield server.url
        finally:
            self.trials.services.remove(server)
            server.stop()

    def _run_target(self, planned: PlannedTarget, upstream_url: str | None,
                    repeat: int, *, pair: int | None = None) -> bool:
        """One repeat of one target on a freshly started server: verify, every level (in the
        plan's first timing.repeat rounds), the capacity search (in its first search_rounds,
        and in a head-to-head ``pair``: the search alone). False when it could not start or
        verify (not worth another try)."""
        self.observer.target_started(planned)
        try:
            server = self.targets.start(planned, upstream_url)
        except TargetError as exc:
            self.targets.set_status(planned, TargetStatus.START_FAILED, str(exc))
            self.observer.target_skipped(planned, TargetStatus.START_FAILED, str(exc))
            return False
        try:
            report = verify_family_target(server.url, planned.target,
                                          io=upstream_url is not None,
                                          db_url=self.targets.db_url)
            if not report.ok:
                reason = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
                self.targets.set_status(planned, TargetStatus.VERIFY_FAILED, reason)
                self.observer.target_skipped(planned, TargetStatus.VERIFY_FAILED, reason)
                return False
            self.targets.set_status(planned, TargetStatus.RUNNING, **server.describe())
            scenario = self.plan.scenario
            url = server.url + self.trials.path(planned)
            # a stream's body takes its whole length to fetch, and verify checked its bytes
            expected: Expected = None if scenario.websocket or scenario.stream \
                or scenario.disconnect \
                else {kind.name: fetch_expected_body(server.url + kind.path, kind.method,
                                                     scenario.headers, kind.body)
                      for kind in scenario.mix} if scenario.mix \
                else fetch_expected_body(url, scenario.method, scenario.headers, scenario.body)
            levels = self.plan.levels if pair is None and repeat <= self.plan.timing.repeat \
                else ()
            for level in levels:
                record = self.trials.run(planned, server, expected, level, repeat)
                if record.status == TrialStatus.FAILED:
                    state = TargetStatus.FAILED if server.alive() else TargetStatus.DIED
                    self.targets.set_status(planned, state, record.invalid_reason)
                    return True  # the next repeat starts it again
            if (repeat <= self.plan.search_rounds or pair is not None) \
                    and self.plan.slo is not None \
                    and not self.searches.search(planned, server, upstream_url, expected,
                                                 self.plan.slo, repeat, warmed=bool(levels),
                                                 pair=pair):
                return True
            if self.outcome.target_status.get(planned.name, (None,))[0] not in (
                    TargetStatus.FAILED, TargetStatus.DIED):
                self.targets.set_status(planned, TargetStatus.OK)
            return True
        finally:
            server.stop()


T = TypeVar("T")


def repeat_order(targets: Sequence[T], repeat: int, repeats: int) -> list[T]:
    """The round of ``targets`` for ``repeat`` (1-based) of ``repeats``: rotated by an equal
    share of the round each repeat (20 targets, 3 repeats: start at 0, 6, 12), so each target
    is measured early, midway and late in a round, not at nearly the same time of every round
    (a rotation by one moves each target only one slot); by one slot when there are more
    repeats than targets (A B, B A, A B)."""
    if not targets:
        return []
    count = len(targets)
    shift = ((repeat - 1) * max(1, count // max(1, repeats))) % count
    return [*targets[shift:], *targets[:shift]]


def default_run_dir(scenario: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Path("results") / f"{stamp}-{scenario}"
