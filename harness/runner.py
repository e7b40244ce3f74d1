"""The one place that knows the order of a run.

For each target: start it pinned to the server CPUs, verify it against the app contract, then for
each load level and repeat: warm up (not recorded), measure, sample the server's CPU and memory,
write the trial at once. Stop the target (TERM, then KILL; every child reaped). A target that
fails to start or to verify is skipped with the reason; a server that dies marks its trial failed
and the run goes on with the next target. On Ctrl-C the servers are stopped and everything
measured so far is already on disk.
"""

from __future__ import annotations

import contextlib
import http.client
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.backends.base import Backend, RunningTarget
from harness.cpus import cpus_text
from harness.cpuspeed import (
    BASELINE_TRIALS,
    MAX_PROBED_CPUS,
    PROBE_INTERVAL_S,
    PROBE_LOOPS,
    CpuSpeed,
)
from harness.drivers import Driver
from harness.errors import GeneratorError, TargetError, UnreachableError
from harness.loadgen import LoadResult, LoadSpec
from harness.loadgen.histograms import percentiles_ms
from harness.noise import SLOW_CPU_FACTOR, Noise, NoiseProbe
from harness.plan import SEARCH_REWARM_S, Level, Plan, PlannedTarget
from harness.results import (
    CapacityRecord,
    RunWriter,
    TargetStatus,
    TrialRecord,
    TrialStatus,
    judge,
    trial_id,
)
from harness.sampling import Usage
from harness.slo import Capacity, CapacitySearch, Slo, judge_open_loop
from harness.verify import verify_family_target

PROGRESS_TICK_S = 0.25
# The generator shares its CPUs with the upstream delay service and the harness. Its own CPU
# time cannot show that it was starved of CPU; how busy its CPUs were can.
LOADGEN_CPUS_BUSY_MAX_PCT = 90.0
EXPECTED_BODY_TIMEOUT_S = 30.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fetch_expected_body(url: str, method: str, headers: Sequence[tuple[str, str]] = (),
                        body: bytes = b"") -> bytes | None:
    """One request to a verified target (the very request the load will send): its body is
    what every measured answer must match."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                      timeout=EXPECTED_BODY_TIMEOUT_S)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body or None, headers=dict(headers))
        response = conn.getresponse()
        body = response.read()
        return body if 200 <= response.status < 300 else None
    except OSError:
        return None
    finally:
        conn.close()


class RunObserver(Protocol):
    """What the console (or a test) hears of a run's progress."""

    def target_started(self, planned: PlannedTarget) -> None: ...
    def target_skipped(self, planned: PlannedTarget, status: TargetStatus,
                       reason: str) -> None: ...
    def trial_started(self, planned: PlannedTarget, level: Level, repeat: int,
                      seconds: float) -> None: ...
    def trial_done(self, record: TrialRecord) -> None: ...
    def capacity_found(self, planned: PlannedTarget, slo: Slo, capacity: Capacity) -> None: ...
    def head_to_head(self, pair: tuple[PlannedTarget, PlannedTarget] | None,
                     why_not: str) -> None: ...


class RichObserver:
    """A progress bar across the plan and one for the trial in flight."""

    def __init__(self, console: Console, plan: Plan) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self.overall: TaskID = self.progress.add_task("plan", total=plan.trial_count)
        self.trial: TaskID | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._trial_t0 = 0.0

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._end_ticker()
        self.progress.stop()

    def _end_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.trial is not None:
            self.progress.remove_task(self.trial)
            self.trial = None

    def target_started(self, planned: PlannedTarget) -> None:
        preset = planned.target.preset
        self.console.print(f"[bold]{planned.name}[/] ({planned.target.server.gateway}) "
                           f"workers={preset.workers} threads={preset.threads}")

    def target_skipped(self, planned: PlannedTarget, status: TargetStatus,
                       reason: str) -> None:
        self.console.print(f"[yellow]{planned.name}: {status.label}[/]: {reason}")

    def trial_started(self, planned: PlannedTarget, level: Level, repeat: int,
                      seconds: float) -> None:
        self._end_ticker()
        self.trial = self.progress.add_task(f"  {planned.name} {level.label()} #{repeat}",
                                            total=max(seconds, 0.1))
        self._trial_t0 = time.monotonic()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(self.trial,), daemon=True)
        self._ticker.start()

    def _tick(self, task: TaskID) -> None:
        while not self._stop.wait(PROGRESS_TICK_S):
            self.progress.update(task, completed=time.monotonic() - self._trial_t0)

    def trial_done(self, record: TrialRecord) -> None:
        self._end_ticker()
        task = next(t for t in self.progress.tasks if t.id == self.overall)
        if task.total is not None and task.completed + 1 > task.total:
            # capacity-search steps: their number is known only as the search goes
            self.progress.update(self.overall, total=task.completed + 1)
        self.progress.advance(self.overall)
        flag = "" if record.valid else (f" [red]{record.outcome}: {record.invalid_reason}[/]"
                                         if record.outcome == "invalid" else
                                         f" [yellow]{record.outcome}: {record.invalid_reason}[/]")
        p99 = f"{record.p99_ms:.1f} ms" if record.p99_ms is not None else "-"
        phase = "search " if record.phase == "search" else ""
        level = record.concurrency or record.rate
        level_text = "-" if level is None else f"{level:g}"  # a bisected rate: 3793.2
        self.console.print(f"    {phase}{record.load_model} {level_text:>6}: "
                           f"{record.achieved_rps:9.1f} req/s  p99 {p99}  "
                           f"errors {record.errors}{flag}")


    def capacity_found(self, planned: PlannedTarget, slo: Slo, capacity: Capacity) -> None:
        rate = f"{capacity.capacity_rps:,.0f} req/s" if capacity.capacity_rps else "none"
        self.console.print(f"    [bold]capacity at {slo.describe()}[/]: {rate} "
                           f"({capacity.status}, {capacity.steps} steps"
                           + (f"; {capacity.note}" if capacity.note else "") + ")")

    def head_to_head(self, pair: tuple[PlannedTarget, PlannedTarget] | None,
                     why_not: str) -> None:
        if pair is None:
            self.console.print(f"[yellow]no head-to-head searches[/]: {why_not}")
        else:
            self.console.print(f"[bold]head to head[/]: {pair[0].name} vs {pair[1].name}, "
                               "capacity searched in turn")


@dataclass(kw_only=True)
class RunOutcome:
    records: list[TrialRecord] = field(default_factory=list)
    target_status: dict[str, tuple[TargetStatus, str]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TrialKey:
    """Which trial a record is of."""

    trial_id: str
    planned: PlannedTarget
    level: Level
    repeat: int
    started_at: str
    phase: str = "sweep"


def saturation_reasons(result: LoadResult, usage: Usage, loadgen_cpus: tuple[int, ...],
                       ) -> list[str]:
    """Why the generator may have been the limit: its own self-check, and how busy its CPUs
    were (it shares them with the upstream and the harness, and its own CPU time cannot show
    that it was starved)."""
    reasons = list(result.saturation_reasons)
    busy = usage.watched_busy_pct(result.window_start_ns, result.window_end_ns)
    if busy is not None and busy > LOADGEN_CPUS_BUSY_MAX_PCT:
        reasons.append(
            f"the generator's CPUs ({cpus_text(loadgen_cpus)}) were {busy:.0f}% "
            f"busy (> {LOADGEN_CPUS_BUSY_MAX_PCT:.0f}%; the generator shares them with the "
            "upstream and the harness): the generator may have been starved")
    return reasons


class Runner:
    """Runs a plan into a RunWriter: targets started by ``backend``, load from ``driver``."""

    def __init__(self, plan: Plan, writer: RunWriter, observer: RunObserver, *,
                 backend: Backend, driver: Driver) -> None:
        self.plan = plan
        self.writer = writer
        self.observer = observer
        self.backend = backend
        self.driver = driver
        self.outcome = RunOutcome()
        self._index = 0
        self._speed: CpuSpeed | None = None
        self._capacities: list[tuple[PlannedTarget, CapacityRecord]] = []  # every search's

    def run(self) -> RunOutcome:
        """Every repeat restarts every server, and each repeat starts the round of targets
        further along (``repeat_order``): a slow drift of the machine is spread over every
        server instead of landing on one, and the spread between repeats includes what varies
        between server starts (what two runs differ by), not only between back-to-back
        trials."""
        self._set_targets_meta()
        for planned in self.plan.targets:
            if not planned.supported:
                self._target_status(planned, TargetStatus.UNSUPPORTED, planned.reason)
                self.observer.target_skipped(planned, TargetStatus.UNSUPPORTED, planned.reason)
        runnable = list(self.plan.runnable)
        broken: set[str] = set()  # targets that failed to start or verify: not tried again
        with self._upstream() as upstream_url, \
                CpuSpeed(self.plan.server_cpus[:MAX_PROBED_CPUS]) as self._speed:
            self.writer.update_meta(cpu_speed_probe={
                "cpus": list(self._speed.cpus), "loops": PROBE_LOOPS,
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
        (``best_of_each_gateway``, the rule the report's comparison uses) are searched in
        turn, A B, B A, A B, ...: each on a freshly started server, recorded with its pair's
        number (repeat: rounds + pair). The report's best WSGI vs best ASGI then takes every
        search of the two.

        Why: a search's figure moves by about a fifth from one search to the next on the
        reference VM (standard deviation 0.2 of the log capacity), so with the plan's three
        searches a server, 1.3x between the best of each gateway was significant in one run
        and not in the next. More rounds search every server again; these search only the two
        that the comparison names. In turn, so neither is always the later one of a pair while
        the machine drifts. (A paired test on each pair's ratio was tried and dropped: in a
        reference run the pairs' log ratios spread 0.35, more than either server's searches,
        0.23 and 0.17; a search's own noise, not a drift the pair shares, dominates.)"""
        pair = best_of_each_gateway(runnable, self._capacities)
        if pair is None:
            why = ("a WSGI and an ASGI target with a capacity in every search of the plan "
                   "were expected")
            self.writer.update_meta(head_to_head={"pairs": 0, "skipped": why})
            self.observer.head_to_head(None, why)
            return
        self.writer.update_meta(head_to_head={
            "servers": [p.name for p in pair], "pairs": self.plan.head_to_head,
            "chosen_by": "the highest mean capacity of each gateway over the plan's searches"})
        self.observer.head_to_head(pair, "")
        first, second = pair
        for number in range(1, self.plan.head_to_head + 1):
            # A B, then B A: neither server is always the one searched later in a pair
            for planned in (first, second) if number % 2 else (second, first):
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

    def _set_targets_meta(self) -> None:
        self.writer.update_meta(targets=[
            {**p.target.to_dict(), "target": p.name,
             "status": TargetStatus.PENDING if p.supported else TargetStatus.UNSUPPORTED,
             "reason": p.reason} for p in self.plan.targets])

    def _target_status(self, planned: PlannedTarget, status: TargetStatus, reason: str = "",
                       **extra: Any) -> None:
        self.outcome.target_status[planned.name] = (status, reason)
        targets = self.writer.meta.get("targets", [])
        for entry in targets:
            if entry.get("target") == planned.name:
                entry.update(status=status, reason=reason, **extra)
        self.writer.update_meta(targets=targets)

    def _run_target(self, planned: PlannedTarget, upstream_url: str | None,
                    repeat: int, *, pair: int | None = None) -> bool:
        """One repeat of one target on a freshly started server: verify, every level (in the
        plan's first timing.repeat rounds), the capacity search (in its first search_rounds,
        and in a head-to-head ``pair``: the search alone). False when it could not start or
        verify (not worth another try)."""
        self.observer.target_started(planned)
        try:
            server = self._start(planned, upstream_url)
        except TargetError as exc:
            self._target_status(planned, TargetStatus.START_FAILED, str(exc))
            self.observer.target_skipped(planned, TargetStatus.START_FAILED, str(exc))
            return False
        try:
            report = verify_family_target(server.url, planned.target,
                                          io=upstream_url is not None)
            if not report.ok:
                reason = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
                self._target_status(planned, TargetStatus.VERIFY_FAILED, reason)
                self.observer.target_skipped(planned, TargetStatus.VERIFY_FAILED, reason)
                return False
            self._target_status(planned, TargetStatus.RUNNING, **server.describe())
            scenario = self.plan.scenario
            url = server.url + self._path(planned)
            expected = None if scenario.websocket else fetch_expected_body(
                url, scenario.method, scenario.headers, scenario.body)
            levels = self.plan.levels if pair is None and repeat <= self.plan.timing.repeat \
                else ()
            for level in levels:
                record = self._trial(planned, server, expected, level, repeat)
                if record.status == TrialStatus.FAILED:
                    state = TargetStatus.FAILED if server.alive() else TargetStatus.DIED
                    self._target_status(planned, state, record.invalid_reason)
                    return True  # the next repeat starts it again
            if (repeat <= self.plan.search_rounds or pair is not None) \
                    and self.plan.slo is not None \
                    and not self._search_capacity(planned, server, upstream_url, expected,
                                                  self.plan.slo, repeat, warmed=bool(levels),
                                                  pair=pair):
                return True
            if self.outcome.target_status.get(planned.name, (None,))[0] not in (
                    TargetStatus.FAILED, TargetStatus.DIED):
                self._target_status(planned, TargetStatus.OK)
            return True
        finally:
            server.stop()

    def _search_capacity(self, planned: PlannedTarget, server: RunningTarget,
                         upstream_url: str | None, expected: bytes | None, slo: Slo,
                         repeat: int, *, warmed: bool = True, pair: int | None = None) -> bool:
        """The highest open-loop rate that meets ``slo`` (harness.slo), each step a trial;
        the answer goes to capacity.csv. False when the server failed under it.

        The first step runs on the server the levels warmed; a step that missed the
        objective stops its server, and the next step runs on a new one, with a warm-up at
        the step's rate longer by SEARCH_REWARM_S. Overload leaves a server slower for a
        while: after one step at 14,000 req/s, uvicorn's p99 at 3,500 req/s went from
        58-82 ms to 191, then 138, then 110 ms over the next 15 s, so a search that
        overshot found a lower capacity than one that did not. A new server for every step,
        with only its 1 s warm-up, would not do either: side by side over 3 rounds of 2
        repeats, uvicorn's capacity found that way was 2-30 % below the one found on a kept
        server, and 0.67-0.95 of its closed-loop peak against 0.85-0.98: a fresh process had
        not yet reached a warmed one's pace, and every step measured another process.

        In a round without levels (``warmed`` false: past timing.repeat, --searches) the first
        step, too, runs on a new server with the longer warm-up, and the ramp starts from the
        median of the earlier rounds' closed-loop peaks."""
        peaks: dict[int, float] = {}  # each round's closed-loop peak
        for r in self.outcome.records:
            if r.server == planned.server and r.app == planned.target.app and r.valid \
                    and r.load_model == "closed":
                peaks[r.repeat] = max(peaks.get(r.repeat, 0.0), r.achieved_rps)
        peak = peaks.get(repeat, statistics.median(peaks.values()) if peaks else None)
        search = CapacitySearch(self.plan.search, peak_rps=peak)
        alive = True
        current: RunningTarget | None = server  # the caller stops ``server``; this, the rest
        fresh = not warmed  # ``current`` warmed by neither the levels nor a step yet
        try:
            while (rate := search.next_rate()) is not None:
                level = Level(load_model="open", rate=rate)
                if current is None:
                    try:
                        current = self._start(planned, upstream_url)
                    except TargetError as exc:
                        reason = f"the server did not start again for the step at {rate:g} " \
                                 f"req/s: {exc}"
                        self._target_status(planned, TargetStatus.FAILED, reason)
                        search.record(rate, "", None, undetermined=reason)
                        alive = False
                        break
                    fresh = True
                warm = SEARCH_REWARM_S if fresh else 0.0
                fresh = False
                if (why := self.driver.supports(self._spec(planned, current, expected,
                                                           level))):
                    search.record(rate, "", None, undetermined=f"unsupported by the "
                                  f"{self.driver.name} driver: {why}")
                    break
                record = self._trial(planned, current, expected, level, repeat,
                                     phase="search", more_warmup_s=warm)
                if record.outcome == "invalid" and record.status == TrialStatus.OK:
                    # once more: a noisy neighbour on the generator's CPUs is the usual cause
                    record = self._trial(planned, current, expected, level, repeat,
                                         phase="search")
                if record.status == TrialStatus.FAILED:
                    state = TargetStatus.FAILED if current.alive() else TargetStatus.DIED
                    self._target_status(planned, state, record.invalid_reason)
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
        found = search.result()
        answer = CapacityRecord(
            server=planned.server, repeat=repeat, gateway=planned.target.server.gateway,
            app=planned.target.app, slo=slo.describe(), status=found.status,
            capacity_rps=found.capacity_rps, proof_trial=found.proof_trial,
            failed_rate=found.failed_rate, failed_trial=found.failed_trial, steps=found.steps,
            note=found.note, pair=pair)
        self.writer.append_capacity(answer)
        self._capacities.append((planned, answer))
        self.observer.capacity_found(planned, slo, found)
        return alive

    def _start(self, planned: PlannedTarget, upstream_url: str | None) -> RunningTarget:
        """A new server for ``planned``, pinned to the server CPUs (TargetError if it would
        not start)."""
        return self.backend.start_target(planned.target, cpus=self.plan.server_cpus, port=0,
                                         upstream_url=upstream_url)

    def _path(self, planned: PlannedTarget) -> str:
        """The scenario's request, or a user's own app's path (the contract's endpoints and
        their parameters mean nothing to it)."""
        own = planned.target.family.check_path
        return own if own is not None else self.plan.scenario.path

    def _spec(self, planned: PlannedTarget, server: RunningTarget, expected: bytes | None,
              level: Level, *, phase: str = "sweep", more_warmup_s: float = 0.0) -> LoadSpec:
        """What the generator is asked to do for one level (HTTP, or WebSocket)."""
        timing = self.plan.search_timing if phase == "search" else self.plan.timing
        scenario = self.plan.scenario
        common = dict(duration_s=timing.duration_s, warmup_s=timing.warmup_s + more_warmup_s,
                      timeout_s=scenario.timeout_s, procs=1, cpus=self.plan.loadgen_cpus,
                      max_connections=scenario.max_connections)
        ws = scenario.websocket
        if ws is None:
            return LoadSpec(url=server.url + self._path(planned), method=scenario.method,
                            headers=scenario.headers, body=scenario.body,
                            concurrency=level.concurrency, rate=level.rate,
                            expect_body=expected, **common)  # type: ignore[arg-type]
        base = "ws://" + server.url.removeprefix("http://")
        mode = {"broadcast": "broadcast", "idle": "idle"}.get(level.load_model, "echo")
        path = ws.broadcast_path if mode == "broadcast" else scenario.path
        return LoadSpec(url=base + path, concurrency=level.concurrency, rate=level.rate,
                        message_size=level.message_size or ws.message_sizes[0], text=ws.text,
                        websocket_mode=mode, **common)  # type: ignore[arg-type]

    def _trial(self, planned: PlannedTarget, server: RunningTarget, expected: bytes | None,
               level: Level, repeat: int, *, phase: str = "sweep",
               more_warmup_s: float = 0.0) -> TrialRecord:
        spec = self._spec(planned, server, expected, level, phase=phase,
                          more_warmup_s=more_warmup_s)
        self._index += 1
        key = TrialKey(trial_id=trial_id(self._index, planned.name, level.load_model,
                                         level.value, repeat,
                                         level.message_size if level.load_model in
                                         ("closed", "open") else None),
                       planned=planned, level=level, repeat=repeat, started_at=_now_iso(),
                       phase=phase)
        unsupported = self.driver.supports(spec)
        if unsupported is not None:
            record = self._record(key, failure=f"unsupported by the {self.driver.name} driver: "
                                  f"{unsupported}", unsupported=True)
            self.writer.append_trial(record)
            self.outcome.records.append(record)
            self.observer.trial_done(record)
            return record
        self.observer.trial_started(planned, level, repeat, spec.warmup_s + spec.duration_s)
        # the census of connections per worker: in the middle of the measured window
        sampler = server.sampler(watch_cpus=self.plan.loadgen_cpus,
                                 census_after_s=spec.warmup_s + spec.duration_s / 2)
        noise = NoiseProbe(self._speed)
        noise.start()
        sampler.start()
        try:
            result = self.driver.measure(spec)
        except (UnreachableError, GeneratorError) as exc:
            # The generator checks the target before it starts: a server that died (or stopped
            # accepting) since the last trial is this trial's failure, not the run's; so is a
            # generator process that failed, with its reason.
            sampler.stop()
            died = None if server.alive() else server.exit_reason()
            what = "not measured" if isinstance(exc, UnreachableError) else "generator failed"
            record = self._record(key, failure=f"server died: {died}" if died
                                  else f"{what}: {exc}")
            self.writer.append_trial(record)
        else:
            usage = sampler.stop()
            died = None if server.alive() else server.exit_reason()
            server_cpu_s = 0.0 if server.in_harness_tree else usage.cpu_seconds()
            record = self._record(key, result=result, usage=usage, died=died,
                                  noise=noise.stop(extra_cpu_s=server_cpu_s,
                                                   window=(result.window_start_ns,
                                                           result.window_end_ns)))
            self.writer.append_trial(
                record,
                latency_hdr=result.latency.encode(),
                service_hdr=result.service_time.encode()
                if result.service_time is not None else None,
                series=self._series(result, usage),
                by_name={name: {"latency_hdr": hist.encode().decode("ascii"),
                                "errors": result.by_name_errors.get(name, 0)}
                         for name, hist in result.by_name.items()},
            )
        finally:
            if sampler.running:
                sampler.stop()
        self.outcome.records.append(record)
        self.observer.trial_done(record)
        return record

    @staticmethod
    def _series(result: LoadResult, usage: Usage) -> list[dict[str, object]]:
        # The generator's seconds start at its measured window; so do the server's rows.
        server = usage.per_second(result.window_start_ns, len(result.series))
        return [{"second": point.second, "requests": point.requests,
                 "completed": point.completed, "errors": point.errors,
                 "p50_ms": point.p50_ms, "p99_ms": point.p99_ms,
                 "server_cpu_pct": srv["cpu_pct"], "server_rss_mb": srv["rss_mb"]}
                for point, srv in zip(result.series, server, strict=True)]

    def _record(self, key: TrialKey, *, result: LoadResult | None = None,
                usage: Usage | None = None, died: str | None = None,
                failure: str | None = None, unsupported: bool = False,
                noise: Noise | None = None) -> TrialRecord:
        """The one builder of a trial's row: measured (``result`` and ``usage``), or not
        measured (``failure``: kept, status failed, with the reason)."""
        planned, level = key.planned, key.level
        if result is None:
            result = LoadResult.unmeasured(url=self.plan.scenario.path,
                                           concurrency=level.concurrency, rate=level.rate)
        usage = usage if usage is not None else Usage()
        errors = result.errors
        total_errors = errors.get("total", 0)
        window = (result.window_start_ns, result.window_end_ns)
        saturation = [] if failure else saturation_reasons(result, usage,
                                                           self.plan.loadgen_cpus)
        idle = level.load_model == "idle"
        short = (f"the server held only {result.open_at_end} of {level.concurrency} idle "
                 "connections to the end") if idle and not failure \
            and result.open_at_end < (level.concurrency or 0) else None
        verdict = judge(requests=result.requests, errors=total_errors,
                        saturation_reasons=saturation, died=died, failure=failure,
                        overload_reasons=result.overload_reasons, connections_short=short,
                        expect_requests=not idle, sent_late=result.sent_late)
        attempts = result.requests + total_errors
        lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
        rss_mb, pss_mb = usage.peak_mb(*window)
        preset = planned.target.preset
        # an open-loop rate whose latency missed the objective is overloaded (harness.slo)
        return judge_open_loop(TrialRecord(
            trial_id=key.trial_id, scenario=self.plan.scenario.name, server=planned.server,
            gateway=planned.target.server.gateway, app=planned.target.app,
            endpoint=self.plan.scenario.path, load_model=level.load_model,
            concurrency=level.concurrency, rate=level.rate, repeat=key.repeat,
            duration_s=result.duration_s, requests=result.requests,
            achieved_rps=result.achieved_rps, offered_rps=result.offered_rps,
            errors=total_errors, error_rate=total_errors / attempts if attempts else 0.0,
            errors_connect=errors.get("connect", 0), errors_io=errors.get("io", 0),
            errors_timeout=errors.get("timeout", 0), errors_status=errors.get("status", 0),
            errors_body=errors.get("body", 0),
            p50_ms=lat["p50"], p75_ms=lat["p75"], p90_ms=lat["p90"], p99_ms=lat["p99"],
            p99_9_ms=lat["p99_9"], p99_99_ms=lat["p99_99"], max_ms=lat["max"],
            mean_ms=lat["mean"], service_p50_ms=svc["p50"], service_p99_ms=svc["p99"],
            behind=result.behind, out_of_range=result.out_of_range,
            server_cpu_pct=usage.cpu_pct(*window), server_rss_mb=rss_mb,
            server_pss_mb=pss_mb,
            loadgen_cpu_pct=None if failure else result.generator_cpu_pct,
            saturated=bool(saturation), valid=verdict.valid, invalid_reason=verdict.reason,
            outcome=verdict.outcome, phase=key.phase,
            status=TrialStatus.UNSUPPORTED if unsupported
            else TrialStatus.FAILED if died or failure else TrialStatus.OK,
            workers=preset.workers, threads=preset.threads,
            server_cpus=cpus_text(self.plan.server_cpus),
            loadgen_cpus=cpus_text(self.plan.loadgen_cpus), started_at=key.started_at,
            notes="; ".join([*result.notes, *([noise.note()] if noise and noise.busy else [])]),
            others_cpu_pct=noise.others_cpu_pct if noise else None,
            steal_pct=noise.steal_pct if noise else None,
            cpu_slowdown=noise.cpu_slowdown if noise else None,
            protocol=result.protocol if not failure else (
                "websocket" if self.plan.scenario.websocket else "http"),
            message_size=level.message_size,
            connections_at_end=None if failure else result.open_at_end,
            connections_per_worker=" ".join(map(str, usage.connections_by_process))
            if usage.connections_by_process and not failure else "",
            memory_per_connection_kb=_memory_per_connection_kb(usage, window, level)
            if idle and not failure else None,
        ), self.plan.slo)


def _memory_per_connection_kb(usage: Usage, window: tuple[int, int],
                              level: Level) -> float | None:
    """The server's memory growth while it held the idle connections, per connection: peak
    PSS (RSS where PSS is unreadable) in the window minus the first sample, taken before the
    generator connected."""
    if not usage.samples or not level.concurrency:
        return None
    first = usage.samples[0]
    rss, pss = usage.peak_mb(*window)
    if pss is not None and first.pss_mb is not None:
        grown = pss - first.pss_mb
    elif rss is not None:
        grown = rss - first.rss_mb
    else:
        return None
    return grown * 1024.0 / level.concurrency


def best_of_each_gateway(runnable: Sequence[PlannedTarget],
                         capacities: Sequence[tuple[PlannedTarget, CapacityRecord]]
                         ) -> tuple[PlannedTarget, PlannedTarget] | None:
    """(best WSGI, best ASGI) of ``runnable`` by mean capacity over the plan's searches, each
    target counted only when every one of its searches has a figure; ties by name. The
    report's rule (harness.analysis.capacity.best_of_each_gateway); None unless both
    gateways have such a target."""
    figures: dict[str, list[float | None]] = {}
    for planned, record in capacities:
        if record.pair is None:
            # a search without a capacity found none (below_min, undetermined before any)
            figures.setdefault(planned.name, []).append(record.capacity_rps)
    best: dict[str, tuple[float, str, PlannedTarget]] = {}
    for planned in runnable:
        mine = figures.get(planned.name, [])
        if not mine or any(f is None for f in mine):
            continue
        mean = statistics.fmean(f for f in mine if f is not None)
        gateway = planned.target.server.gateway.lower()
        if mean > 0 and (gateway not in best or (-mean, planned.name)
                         < (-best[gateway][0], best[gateway][1])):
            best[gateway] = (mean, planned.name, planned)
    if "wsgi" not in best or "asgi" not in best:
        return None
    return best["wsgi"][2], best["asgi"][2]


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
