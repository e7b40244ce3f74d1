"""One trial: what the generator is asked to do at a level, the measurement (warm-up not recorded;
the server's CPU and memory sampled and the machine's noise probed over the measured window),
and the row it writes at once (trials.csv, its histograms and per-second series).

A trial the driver cannot run, or one whose server died or whose generator failed, is kept as a
failed row with the reason; a measured one is judged (harness.results.judge, and an open-loop
rate against the objective: harness.slo.judge_open_loop).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from harness.backends.base import RunningTarget
from harness.cpus import cpus_text
from harness.cpuspeed import CpuSpeed
from harness.drivers import Driver
from harness.errors import GeneratorError, UnreachableError
from harness.loadgen import LoadResult, LoadSpec
from harness.loadgen.histograms import percentiles_ms
from harness.loadgen.slowclients import SlowClients, SlowClientsResult
from harness.loadgen.streams import as_load_result, measure_streams
from harness.noise import Noise, NoiseProbe
from harness.plan import Level, Plan, PlannedTarget
from harness.results import RunWriter, TrialRecord, TrialStatus, judge, trial_id
from harness.run_state import RunObserver, RunOutcome
from harness.sampling import Usage
from harness.slo import judge_open_loop
from harness.tasktrials import (
    TASK_LOG_MODELS,
    TaskFigures,
    run_background,
    run_disconnect,
    with_tasks,
)
from harness.tasktrials import unsupported as task_log_unsupported
from harness.uploads import upload_request

# Slow clients are held this much past the trial's own warm-up, duration and timeout, so they
# outlast the measured window whatever the generator's start-up takes.
SLOW_CLIENTS_SLACK_S = 5.0
# What every measured answer must be: one body, a mix's body per kind by name, or unchecked.
Expected = bytes | Mapping[str, bytes | None] | None


def kind_histograms(result: LoadResult) -> dict[str, dict[str, object]]:
    """A mix's histograms, errors and per-second series per kind (histograms/*.by-name.json)."""
    return {name: {"latency_hdr": kind.latency.encode().decode("ascii"),
                   "service_hdr": kind.service_time.encode().decode("ascii")
                   if kind.service_time is not None else None,
                   "requests": kind.requests, "errors": dict(kind.errors),
                   "series": [dataclasses.asdict(point) for point in kind.series]}
            for name, kind in result.kinds.items()}


def slow_note(slow: SlowClientsResult) -> str:
    """What the slow clients saw, for the trial's notes: how many were held to the end, and
    how many times the server gave up on one, after how long."""
    held = slow.held_before_close_s
    closed = (f", the server closed {slow.closed_by_server} (held p50 "
              f"{held['p50']:.1f} s, max {held['max']:.1f} s)"
              if slow.closed_by_server and held["p50"] is not None and held["max"] is not None
              else ", the server closed none")
    return (f"slow clients ({slow.mode}, a byte every {slow.byte_interval_s:g} s): "
            f"{slow.held_at_end} of {slow.count} held at the end{closed}")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
                       busy_max_pct: float, *, sharing: str = "the upstream and the harness",
                       ) -> list[str]:
    """Why the generator may have been the limit: its own self-check, and how busy its CPUs
    were, above ``busy_max_pct`` (it shares them with ``sharing``, and its own CPU time cannot
    show that it was starved)."""
    reasons = list(result.saturation_reasons)
    busy = usage.watched_busy_pct(result.window_start_ns, result.window_end_ns)
    if busy is not None and busy > busy_max_pct:
        reasons.append(
            f"the generator's CPUs ({cpus_text(loadgen_cpus)}) were {busy:.0f}% "
            f"busy (> {busy_max_pct:.0f}%; the generator shares them with {sharing}): "
            "the generator may have been starved")
    return reasons


class Trials:
    """Every trial of a run, numbered in the order taken; each one's row written at once and
    kept in the outcome. ``loadgen_cpus_busy_max_pct``: the generator's CPUs busier than this
    over a trial mark it as possibly starved (harness.runner.LOADGEN_CPUS_BUSY_MAX_PCT)."""

    def __init__(self, plan: Plan, writer: RunWriter, observer: RunObserver, *,
                 driver: Driver, outcome: RunOutcome, loadgen_cpus_busy_max_pct: float) -> None:
        self.plan = plan
        self.writer = writer
        self.observer = observer
        self.driver = driver
        self.outcome = outcome
        self.loadgen_cpus_busy_max_pct = loadgen_cpus_busy_max_pct
        # the run's probe of the server CPUs' speed, once it has its baseline (harness.noise)
        self.speed: CpuSpeed | None = None
        db = plan.database
        # what the run started beside the targets (its database), set by the runner
        self.services: list[RunningTarget] = []
        # what else runs on the generator's CPUs, named when a trial finds them busy
        self._sharing = ("the database, the upstream and the harness"
                         if db is not None and db.url is None
                         and set(db.cpus) & set(plan.loadgen_cpus)
                         else "the upstream and the harness")
        self._index = 0

    def path(self, planned: PlannedTarget) -> str:
        """The scenario's request, or a user's own app's path (the contract's endpoints and
        their parameters mean nothing to it)."""
        own = planned.target.family.check_path
        return own if own is not None else self.plan.scenario.path

    def spec(self, planned: PlannedTarget, server: RunningTarget, expected: Expected,
             level: Level, *, phase: str = "sweep", more_warmup_s: float = 0.0) -> LoadSpec:
        """What the generator is asked to do for one level (HTTP, or WebSocket)."""
        timing = self.plan.search_timing if phase == "search" else self.plan.timing
        scenario = self.plan.scenario
        common = dict(duration_s=timing.duration_s, warmup_s=timing.warmup_s + more_warmup_s,
                      timeout_s=scenario.timeout_s, procs=1, cpus=self.plan.loadgen_cpus,
                      max_connections=scenario.max_connections)
        ws = scenario.websocket
        if scenario.mix:
            bodies = expected if isinstance(expected, Mapping) else {}
            # every kind's answers are checked, or none's (a kind whose answers vary)
            checked = all(bodies.get(kind.name) is not None for kind in scenario.mix)
            return LoadSpec(url=server.url + "/", headers=scenario.headers,
                            concurrency=level.concurrency, rate=level.rate,
                            mix=tuple(dataclasses.replace(
                                kind, expect_body=bodies[kind.name] if checked else None)
                                for kind in scenario.mix),
                            **common)  # type: ignore[arg-type]
        if ws is None:
            body = scenario.body
            if level.upload_bytes is not None:
                # the body of this level's size, and the answer the harness computed for it
                body, expected = upload_request(level.upload_bytes)
            # /upload has no side effects: a POST a server dropped unread (uWSGI closes a
            # kept-alive connection after its answer without saying so) is sent again
            return LoadSpec(url=server.url + self.path(planned), method=scenario.method,
                            headers=scenario.headers, body=body,
                            resend=level.upload_bytes is not None,
                            concurrency=level.concurrency, rate=level.rate,
                            expect_body=expected, **common)  # type: ignore[arg-type]
        base = "ws://" + server.url.removeprefix("http://")
        mode = {"broadcast": "broadcast", "idle": "idle"}.get(level.load_model, "echo")
        path = ws.broadcast_path if mode == "broadcast" else scenario.path
        return LoadSpec(url=base + path, concurrency=level.concurrency, rate=level.rate,
                        message_size=level.message_size or ws.message_sizes[0], text=ws.text,
                        websocket_mode=mode, **common)  # type: ignore[arg-type]

    def run(self, planned: PlannedTarget, server: RunningTarget, expected: Expected,
            level: Level, repeat: int, *, phase: str = "sweep",
            more_warmup_s: float = 0.0) -> TrialRecord:
        """One trial of ``planned`` at ``level`` on ``server``: its row, already written."""
        spec = self.spec(planned, server, expected, level, phase=phase,
                         more_warmup_s=more_warmup_s)
        self._index += 1
        key = TrialKey(trial_id=trial_id(self._index, planned.name, level.load_model,
                                         level.value, repeat,
                                         level.message_size if level.load_model in
                                         ("closed", "open") else None, level.upload_bytes),
                       planned=planned, level=level, repeat=repeat, started_at=_now_iso(),
                       phase=phase)
        # a task-log level runs its own clients (harness.tasktrials), not the driver
        task_level = level.load_model in TASK_LOG_MODELS
        unsupported = task_log_unsupported(server) if task_level \
            else self.driver.supports(spec)
        if unsupported is not None:
            record = self._record(key, failure=unsupported if task_level else
                                  f"unsupported by the {self.driver.name} driver: "
                                  f"{unsupported}", unsupported=True)
            self.writer.append_trial(record)
        else:
            self.observer.trial_started(planned, level, repeat,
                                        spec.warmup_s + spec.duration_s)
            record = self._measure(key, server, spec)
        self.outcome.records.append(record)
        self.observer.trial_done(record)
        return record

    def _measure(self, key: TrialKey, server: RunningTarget, spec: LoadSpec) -> TrialRecord:
        """The load of ``spec`` with the server sampled and the noise probed: the row, written
        (with its histograms and series when measured)."""
        # the census of connections per worker: in the middle of the measured window
        sampler = server.sampler(watch_cpus=self.plan.loadgen_cpus,
                                 census_after_s=spec.warmup_s + spec.duration_s / 2)
        noise = NoiseProbe(self.speed)
        # a service outside the harness's process tree (a database container) is part of the
        # run, not noise: its CPU is sampled and set against the machine's
        services = [svc.sampler() for svc in self.services if not svc.in_harness_tree]
        noise.start()
        sampler.start()
        for svc in services:
            svc.start()
        slow: SlowClients | None = None
        tasks: TaskFigures | None = None
        try:
            with contextlib.ExitStack() as stack:
                slow = self._slow_clients(stack, key.level, server, spec)
                if key.level.load_model in TASK_LOG_MODELS:
                    result, tasks = self._task_load(key.level, server, spec)
                else:
                    result = self._load(key.level, server, spec)
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
            # a SIGTERM level asked the server to exit: only a death before that is one
            died = tasks.died if tasks is not None and tasks.stopped \
                else None if server.alive() else server.exit_reason()
            server_cpu_s = 0.0 if server.in_harness_tree else usage.cpu_seconds()
            server_cpu_s += sum(svc.stop().cpu_seconds() for svc in services)
            record = self._record(key, result=result, usage=usage, died=died,
                                  noise=noise.stop(extra_cpu_s=server_cpu_s,
                                                   window=(result.window_start_ns,
                                                           result.window_end_ns)),
                                  slow=slow.result if slow is not None else None, tasks=tasks)
            self.writer.append_trial(
                record,
                latency_hdr=result.latency.encode(),
                service_hdr=result.service_time.encode()
                if result.service_time is not None else None,
                series=self._series(result, usage),
                by_name=kind_histograms(result) if result.kinds else
                {name: {"latency_hdr": hist.encode().decode("ascii"),
                        "errors": result.by_name_errors.get(name, 0)}
                 for name, hist in result.by_name.items()},
                kinds=self._kind_rows(record, result),
            )
        finally:
            for running in (sampler, *services):
                if running.running:
                    running.stop()
        return record

    def _load(self, level: Level, server: RunningTarget, spec: LoadSpec) -> LoadResult:
        """The level's load: the driver's, or a stream level's streams held at once (each
        lasting the scenario's events x interval, no warm-up: a stream is its own unit)."""
        shape = self.plan.scenario.stream
        if level.load_model != "stream" or shape is None:
            return self.driver.measure(spec)
        start = time.monotonic_ns()
        result = measure_streams(spec.url, streams=level.concurrency or 1, events=shape.events,
                                 interval_ms=shape.interval_ms, timeout_s=spec.timeout_s,
                                 cpus=self.plan.loadgen_cpus)
        return as_load_result(result, window_start_ns=start, window_end_ns=time.monotonic_ns())

    def _task_load(self, level: Level, server: RunningTarget, spec: LoadSpec
                   ) -> tuple[LoadResult, TaskFigures]:
        """A level that reads the app's task log: background work, a SIGTERM, clients that
        leave a stream (harness.tasktrials)."""
        cpus, clients = self.plan.loadgen_cpus, level.concurrency or 1
        shape = self.plan.scenario.disconnect
        if level.load_model == "disconnect" and shape is not None:
            return run_disconnect(server, spec.url, clients=clients, events=shape.events,
                                  interval_ms=shape.interval_ms, read=shape.read,
                                  timeout_s=spec.timeout_s, cpus=cpus)
        think_s = self.plan.scenario.background.think_s \
            if self.plan.scenario.background is not None else 0.0
        return run_background(server, spec.url, load_model=level.load_model, clients=clients,
                              warmup_s=spec.warmup_s, duration_s=spec.duration_s,
                              timeout_s=spec.timeout_s, think_s=think_s,
                              expect_body=spec.expect_body, cpus=cpus)

    def _slow_clients(self, stack: contextlib.ExitStack, level: Level, server: RunningTarget,
                      spec: LoadSpec) -> SlowClients | None:
        """The level's slow clients, connected before the load starts and held through it
        (on the generator's CPUs, in a process of their own); None when it has none."""
        scenario = self.plan.scenario.slow_clients
        if level.load_model != "slow" or not level.slow_clients or scenario is None:
            return None
        parts = urlsplit(server.url)
        held_s = spec.warmup_s + spec.duration_s + spec.timeout_s + SLOW_CLIENTS_SLACK_S
        return stack.enter_context(SlowClients(
            parts.hostname or "127.0.0.1", parts.port or 80, level.slow_clients,
            mode=scenario.mode, byte_interval_s=scenario.byte_interval_s, duration_s=held_s,
            path=scenario.path, cpus=self.plan.loadgen_cpus))

    def _kind_rows(self, record: TrialRecord, result: LoadResult) -> list[dict[str, object]]:
        """A mix's row per kind of request (kinds.csv): its share, counts and latency."""
        mix = {kind.name: kind for kind in self.plan.scenario.mix}
        total = sum(kind.weight for kind in mix.values())
        rows: list[dict[str, object]] = []
        for name, kind in result.kinds.items():
            errors = kind.errors.get("total", 0)
            lat, svc = percentiles_ms(kind.latency), percentiles_ms(kind.service_time)
            rows.append({
                "trial_id": record.trial_id, "kind": name,
                "path": mix[name].path if name in mix else "",
                "share": round(mix[name].weight / total, 6) if name in mix else None,
                "requests": kind.requests, "errors": errors,
                "error_rate": errors / (kind.requests + errors) if kind.requests + errors else 0.0,
                "achieved_rps": kind.achieved_rps,
                "p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"],
                "p99_9_ms": lat["p99_9"], "max_ms": lat["max"], "mean_ms": lat["mean"],
                "service_p50_ms": svc["p50"], "service_p99_ms": svc["p99"]})
        return rows

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
                noise: Noise | None = None, slow: SlowClientsResult | None = None,
                tasks: TaskFigures | None = None) -> TrialRecord:
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
        saturation = [] if failure else saturation_reasons(
            result, usage, self.plan.loadgen_cpus, self.loadgen_cpus_busy_max_pct,
            sharing=self._sharing)
        idle = level.load_model == "idle"
        short = (f"the server held only {result.open_at_end} of {level.concurrency} idle "
                 "connections to the end") if idle and not failure \
            and result.open_at_end < (level.concurrency or 0) else None
        verdict = judge(requests=result.requests,
                        errors=tasks.errors_judged if tasks is not None
                        and tasks.errors_judged is not None else total_errors,
                        saturation_reasons=saturation, died=died, failure=failure,
                        overload_reasons=result.overload_reasons, connections_short=short,
                        expect_requests=not idle, sent_late=result.sent_late,
                        held_by=f"{level.slow_clients} slow clients"
                        if level.load_model == "slow" and level.slow_clients else None)
        attempts = result.requests + total_errors
        lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
        rss_mb, pss_mb = usage.peak_mb(*window)
        preset = planned.target.preset
        # an open-loop rate whose latency missed the objective is overloaded (harness.slo)
        return judge_open_loop(with_tasks(TrialRecord(
            trial_id=key.trial_id, scenario=self.plan.scenario.name, server=planned.server,
            gateway=planned.target.server.gateway, app=planned.target.app,
            endpoint=self.plan.scenario.endpoint, load_model=level.load_model,
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
            notes="; ".join([*result.notes, *([noise.note()] if noise and noise.busy else []),
                             *([slow_note(slow)] if slow is not None else [])]),
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
            slow_clients=level.slow_clients,
            upload_bytes=level.upload_bytes,
        ), tasks), self.plan.slo)


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
