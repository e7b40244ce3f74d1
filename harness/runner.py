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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
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

from harness.backends import local
from harness.errors import TargetError, UsageError
from harness.loadgen import LoadResult, LoadSpec, run_load
from harness.loadgen.histograms import percentiles_ms
from harness.plan import Level, Plan, PlannedTarget
from harness.results import RunWriter, TrialRecord, judge, trial_id
from harness.sampling import TreeSampler, Usage
from harness.verify import verify_target

PROGRESS_TICK_S = 0.25
# The generator shares its CPUs with the upstream delay service and the harness. Its own CPU
# time cannot show that it was starved of CPU; how busy its CPUs were can.
LOADGEN_CPUS_BUSY_MAX_PCT = 90.0
EXPECTED_BODY_TIMEOUT_S = 30.0


def cpus_text(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fetch_expected_body(url: str, method: str) -> bytes | None:
    """One request to a verified target: its body is what every measured answer must match."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                      timeout=EXPECTED_BODY_TIMEOUT_S)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path)
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
    def target_skipped(self, planned: PlannedTarget, status: str, reason: str) -> None: ...
    def trial_started(self, planned: PlannedTarget, level: Level, repeat: int,
                      seconds: float) -> None: ...
    def trial_done(self, record: TrialRecord) -> None: ...


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
        self.console.print(f"[bold]{planned.server}[/] ({planned.target.server.gateway}) "
                           f"workers={preset.workers} threads={preset.threads}")

    def target_skipped(self, planned: PlannedTarget, status: str, reason: str) -> None:
        self.console.print(f"[yellow]{planned.server}: {status}[/]: {reason}")

    def trial_started(self, planned: PlannedTarget, level: Level, repeat: int,
                      seconds: float) -> None:
        self._end_ticker()
        self.trial = self.progress.add_task(f"  {planned.server} {level.label()} #{repeat}",
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
        self.progress.advance(self.overall)
        flag = "" if record.valid else f" [red]invalid: {record.invalid_reason}[/]"
        p99 = f"{record.p99_ms:.1f} ms" if record.p99_ms is not None else "-"
        self.console.print(f"    {record.load_model} {record.concurrency or record.rate:>6}: "
                           f"{record.achieved_rps:9.1f} req/s  p99 {p99}  "
                           f"errors {record.errors}{flag}")


@dataclass(kw_only=True)
class RunOutcome:
    records: list[TrialRecord] = field(default_factory=list)
    target_status: dict[str, tuple[str, str]] = field(default_factory=dict)


class Runner:
    """Runs a plan into a RunWriter. ``measure`` is the load generator (run_load by default)."""

    def __init__(self, plan: Plan, writer: RunWriter, observer: RunObserver,
                 measure: Callable[[LoadSpec], LoadResult] = run_load) -> None:
        self.plan = plan
        self.writer = writer
        self.observer = observer
        self.measure = measure
        self.outcome = RunOutcome()
        self._index = 0

    def run(self) -> RunOutcome:
        self._set_targets_meta()
        with self._upstream() as upstream_url:
            for planned in self.plan.targets:
                if not planned.supported:
                    self._target_status(planned, "unsupported", planned.reason)
                    self.observer.target_skipped(planned, "unsupported", planned.reason)
                    continue
                self._run_target(planned, upstream_url)
        return self.outcome

    @contextlib.contextmanager
    def _upstream(self) -> Iterator[str | None]:
        if not self.plan.scenario.needs_upstream:
            yield None
            return
        upstream = local.start_upstream(cpus=self.plan.loadgen_cpus)
        try:
            self.writer.update_meta(upstream={"url": upstream.url,
                                              "cpus": list(self.plan.loadgen_cpus)})
            yield upstream.url
        finally:
            upstream.stop()

    def _set_targets_meta(self) -> None:
        self.writer.update_meta(targets=[
            {**p.target.to_dict(), "status": "pending" if p.supported else "unsupported",
             "reason": p.reason} for p in self.plan.targets])

    def _target_status(self, planned: PlannedTarget, status: str, reason: str = "",
                       **extra: Any) -> None:
        self.outcome.target_status[planned.server] = (status, reason)
        targets = self.writer.meta.get("targets", [])
        for entry in targets:
            if entry.get("server") == planned.server:
                entry.update(status=status, reason=reason, **extra)
        self.writer.update_meta(targets=targets)

    def _run_target(self, planned: PlannedTarget, upstream_url: str | None) -> None:
        self.observer.target_started(planned)
        try:
            server = local.start_target(planned.target, cpus=self.plan.server_cpus, port=0,
                                        upstream_url=upstream_url)
        except TargetError as exc:
            self._target_status(planned, "start_failed", str(exc))
            self.observer.target_skipped(planned, "start failed", str(exc))
            return
        try:
            report = verify_target(server.url, websocket=planned.target.server.websocket,
                                   io=upstream_url is not None)
            if not report.ok:
                reason = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
                self._target_status(planned, "verify_failed", reason)
                self.observer.target_skipped(planned, "verify failed", reason)
                return
            self._target_status(planned, "running", command=server.command)
            url = server.url + self.plan.scenario.path
            expected = fetch_expected_body(url, self.plan.scenario.method)
            for level in self.plan.levels:
                for repeat in range(1, self.plan.timing.repeat + 1):
                    record = self._trial(planned, server, url, expected, level, repeat)
                    if record.status == "failed":
                        state = "failed" if server.alive() else "died"
                        self._target_status(planned, state, record.invalid_reason)
                        return
            self._target_status(planned, "ok")
        finally:
            server.stop()

    def _trial(self, planned: PlannedTarget, server: local.RunningServer, url: str,
               expected: bytes | None, level: Level, repeat: int) -> TrialRecord:
        timing = self.plan.timing
        scenario = self.plan.scenario
        spec = LoadSpec(
            url=url, method=scenario.method, concurrency=level.concurrency, rate=level.rate,
            duration_s=timing.duration_s, warmup_s=timing.warmup_s,
            timeout_s=scenario.timeout_s, procs=1, cpus=self.plan.loadgen_cpus,
            expect_body=expected, max_connections=scenario.max_connections,
        )
        self._index += 1
        tid = trial_id(self._index, planned.server, level.load_model, level.value, repeat)
        started_at = _now_iso()
        self.observer.trial_started(planned, level, repeat, timing.warmup_s + timing.duration_s)
        sampler = TreeSampler(server.processes, watch_cpus=self.plan.loadgen_cpus)
        sampler.start()
        try:
            result = self.measure(spec)
        except (UsageError, RuntimeError) as exc:
            # The generator checks the target before it starts: a server that died (or stopped
            # accepting) since the last trial is this trial's failure, not the run's; so is a
            # generator process that failed (RuntimeError), with its reason.
            sampler.stop()
            died = None if server.alive() else server.exit_reason()
            what = "not measured" if isinstance(exc, UsageError) else "generator failed"
            record = self._unmeasured(tid, planned, level, repeat, started_at,
                                      f"server died: {died}" if died else f"{what}: {exc}")
            self.writer.append_trial(record)
        else:
            usage = sampler.stop()
            died = None if server.alive() else server.exit_reason()
            record = self._record(tid, planned, level, repeat, result, usage, died, started_at)
            self.writer.append_trial(
                record,
                latency_hdr=result.latency.encode(),
                service_hdr=result.service_time.encode()
                if result.service_time is not None else None,
                series=self._series(result, usage),
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

    def _unmeasured(self, tid: str, planned: PlannedTarget, level: Level, repeat: int,
                    started_at: str, reason: str) -> TrialRecord:
        """The row of a trial that could not run: kept, failed, with the reason."""
        preset = planned.target.preset
        return TrialRecord(
            trial_id=tid, scenario=self.plan.scenario.name, server=planned.server,
            gateway=planned.target.server.gateway, app=planned.target.app,
            endpoint=self.plan.scenario.path, load_model=level.load_model,
            concurrency=level.concurrency, rate=level.rate, repeat=repeat,
            duration_s=0.0, requests=0, achieved_rps=0.0, offered_rps=level.rate, errors=0,
            error_rate=0.0, errors_connect=0, errors_io=0, errors_timeout=0, errors_status=0,
            errors_body=0, p50_ms=None, p75_ms=None, p90_ms=None, p99_ms=None, p99_9_ms=None,
            p99_99_ms=None, max_ms=None, mean_ms=None, service_p50_ms=None,
            service_p99_ms=None, behind=0, out_of_range=0, server_cpu_pct=None,
            server_rss_mb=None, server_pss_mb=None, loadgen_cpu_pct=None, saturated=False,
            valid=False, invalid_reason=reason, status="failed", workers=preset.workers,
            threads=preset.threads, server_cpus=cpus_text(self.plan.server_cpus),
            loadgen_cpus=cpus_text(self.plan.loadgen_cpus), started_at=started_at,
        )

    def _record(self, tid: str, planned: PlannedTarget, level: Level, repeat: int,
                result: LoadResult, usage: Usage, died: str | None,
                started_at: str) -> TrialRecord:
        errors = result.errors
        total_errors = errors.get("total", 0)
        window = (result.window_start_ns, result.window_end_ns)
        saturation = list(result.saturation_reasons)
        busy = usage.watched_busy_pct(*window)
        if busy is not None and busy > LOADGEN_CPUS_BUSY_MAX_PCT:
            saturation.append(
                f"the generator's CPUs ({cpus_text(self.plan.loadgen_cpus)}) were {busy:.0f}% "
                f"busy (> {LOADGEN_CPUS_BUSY_MAX_PCT:.0f}%; the generator shares them with the "
                "upstream and the harness): the generator may have been starved")
        valid, reason = judge(requests=result.requests, errors=total_errors,
                              saturated=bool(saturation), saturation_reasons=saturation,
                              died=died)
        attempts = result.requests + total_errors
        lat, svc = percentiles_ms(result.latency), percentiles_ms(result.service_time)
        preset = planned.target.preset
        rss_mb, pss_mb = usage.peak_mb(*window)
        return TrialRecord(
            trial_id=tid, scenario=self.plan.scenario.name, server=planned.server,
            gateway=planned.target.server.gateway, app=planned.target.app,
            endpoint=self.plan.scenario.path, load_model=level.load_model,
            concurrency=level.concurrency, rate=level.rate, repeat=repeat,
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
            server_pss_mb=pss_mb, loadgen_cpu_pct=result.generator_cpu_pct,
            saturated=bool(saturation), valid=valid, invalid_reason=reason,
            status="failed" if died else "ok", workers=preset.workers, threads=preset.threads,
            server_cpus=cpus_text(self.plan.server_cpus),
            loadgen_cpus=cpus_text(self.plan.loadgen_cpus), started_at=started_at,
        )


def default_run_dir(scenario: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Path("results") / f"{stamp}-{scenario}"
