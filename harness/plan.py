"""Expand a request into trials (target x load level x repeat) and allocate the CPUs.

The server under test and the load generator get disjoint CPU sets, so neither steals the
other's time: on 2 cores the server gets CPU 1, the generator and the upstream delay service
CPU 0. The plan and an estimate of its duration are shown before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from harness import catalogue
from harness.errors import UsageError
from harness.scenarios import MAX_CONCURRENCY, Levels, Scenario, Timing

LoadModel = Literal["closed", "open"]

# Estimated fixed costs, from watching runs on a 2-core machine: start + ready + verify + stop
# of one target, and the generator's own start and merge per trial.
TARGET_OVERHEAD_S = 4.0
TRIAL_OVERHEAD_S = 0.7


@dataclass(frozen=True, kw_only=True)
class Level:
    """One load level: a closed-loop concurrency or an open-loop rate."""

    load_model: LoadModel
    concurrency: int | None = None
    rate: float | None = None

    @property
    def value(self) -> float:
        if self.load_model == "closed":
            return float(self.concurrency or 0)
        return float(self.rate or 0.0)

    def label(self) -> str:
        if self.load_model == "closed":
            return f"{self.concurrency} conn"
        return f"{self.rate:g} req/s"


@dataclass(frozen=True, kw_only=True)
class PlannedTarget:
    """A server x app pair of the plan; unsupported pairs stay in the plan with the reason."""

    target: catalogue.Target
    supported: bool
    reason: str = ""

    @property
    def server(self) -> str:
        return self.target.server.name


@dataclass(frozen=True, kw_only=True)
class Plan:
    scenario: Scenario
    targets: tuple[PlannedTarget, ...]
    levels: tuple[Level, ...]
    timing: Timing
    server_cpus: tuple[int, ...]
    loadgen_cpus: tuple[int, ...]
    quick: bool

    @property
    def runnable(self) -> tuple[PlannedTarget, ...]:
        return tuple(t for t in self.targets if t.supported)

    @property
    def trials_per_target(self) -> int:
        return len(self.levels) * self.timing.repeat

    @property
    def trial_count(self) -> int:
        return len(self.runnable) * self.trials_per_target

    def estimate_s(self) -> float:
        per_trial = self.timing.warmup_s + self.timing.duration_s + TRIAL_OVERHEAD_S
        return len(self.runnable) * (TARGET_OVERHEAD_S + self.trials_per_target * per_trial)

    def summary(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "levels": [{"load_model": lv.load_model, "concurrency": lv.concurrency,
                        "rate": lv.rate} for lv in self.levels],
            "warmup_s": self.timing.warmup_s,
            "duration_s": self.timing.duration_s,
            "repeat": self.timing.repeat,
            "trial_count": self.trial_count,
            "estimate_s": round(self.estimate_s(), 1),
        }


def allocate_cpus(
    available: Sequence[int],
    server: Sequence[int] | None = None,
    loadgen: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Disjoint (server, loadgen) CPU sets. By default the server gets the upper half of the
    available CPUs (at least one) and the generator the rest."""
    avail = sorted(set(available))
    for name, cpus in (("--server-cpus", server), ("--loadgen-cpus", loadgen)):
        missing = sorted(set(cpus or ()) - set(avail))
        if missing:
            raise UsageError(f"{name}: CPU {missing[0]} is not available to this process: "
                             f"expected CPUs from {avail}")
    if server is None and loadgen is None:
        if len(avail) < 2:
            raise UsageError("only one CPU is available: the server and the load generator need "
                             "disjoint CPUs (give --server-cpus and --loadgen-cpus to share "
                             "one on purpose)")
        half = len(avail) // 2
        return tuple(avail[half:]), tuple(avail[:half])
    if server is None:
        server = [c for c in avail if c not in set(loadgen or ())]
    if loadgen is None:
        loadgen = [c for c in avail if c not in set(server)]
    if not server or not loadgen:
        raise UsageError("no CPU left for the "
                         f"{'server' if not server else 'load generator'}: expected disjoint "
                         "--server-cpus and --loadgen-cpus")
    overlap = sorted(set(server) & set(loadgen))
    if overlap:
        raise UsageError(f"--server-cpus and --loadgen-cpus share CPU {overlap[0]}: expected "
                         "disjoint sets, so the generator does not steal the server's time")
    return tuple(sorted(set(server))), tuple(sorted(set(loadgen)))


def _levels(levels: Levels, concurrency: Sequence[int] | None,
            rate: Sequence[float] | None) -> tuple[Level, ...]:
    # Levels given on the command line replace the scenario's; giving only one kind of level
    # means "only that kind".
    if concurrency is not None or rate is not None:
        levels = Levels(concurrency=tuple(concurrency or ()), rate=tuple(rate or ()))
    if any(c > MAX_CONCURRENCY for c in levels.concurrency):
        raise UsageError(f"--concurrency: expected at most {MAX_CONCURRENCY} connections")
    closed = [Level(load_model="closed", concurrency=c) for c in levels.concurrency]
    opened = [Level(load_model="open", rate=r) for r in levels.rate]
    return tuple(closed + opened)


def build_plan(
    scenario: Scenario,
    *,
    servers: Sequence[str] | None = None,
    app: str | None = None,
    quick: bool = False,
    concurrency: Sequence[int] | None = None,
    rate: Sequence[float] | None = None,
    duration_s: float | None = None,
    warmup_s: float | None = None,
    repeat: int | None = None,
    server_cpus: Sequence[int] | None = None,
    loadgen_cpus: Sequence[int] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    available_cpus: Sequence[int] | None = None,
) -> Plan:
    """Validate every choice and expand it; raises UsageError before anything starts."""
    cpus_server, cpus_loadgen = allocate_cpus(
        sorted(available_cpus if available_cpus is not None else os.sched_getaffinity(0)),
        server_cpus, loadgen_cpus)
    timing = scenario.quick_timing if quick else scenario.timing
    if duration_s is not None:
        if duration_s <= 0:
            raise UsageError("--duration: expected a duration above 0")
        timing = replace(timing, duration_s=duration_s)
    if warmup_s is not None:
        timing = replace(timing, warmup_s=warmup_s)
    if repeat is not None:
        if repeat <= 0:
            raise UsageError(f"--repeat: expected a positive integer, got {repeat}")
        timing = replace(timing, repeat=repeat)
    for flag, value in (("--workers", workers), ("--threads", threads)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag}: expected a positive integer, got {value}")
    levels = _levels(scenario.quick_levels if quick else scenario.levels, concurrency, rate)

    names = list(servers) if servers else list(scenario.servers)
    if len(set(names)) != len(names):
        raise UsageError(f"--servers: a server is named twice in {','.join(names)}")
    app_name = app or scenario.app
    planned: list[PlannedTarget] = []
    for name in names:
        server = catalogue.get_server(name)  # UsageError listing the known names
        target = catalogue.make_target(server, app=app_name, cpus=len(cpus_server),
                                       workers=workers, threads=threads)
        ok, reason = catalogue.supports(server, websocket=scenario.kind == "websocket")
        planned.append(PlannedTarget(target=target, supported=ok, reason=reason))
    return Plan(scenario=scenario, targets=tuple(planned), levels=levels, timing=timing,
                server_cpus=cpus_server, loadgen_cpus=cpus_loadgen, quick=quick)
