"""What the parts of a run share: what it has done so far (``RunOutcome``), who hears of its
progress (``RunObserver``: the console, or a test), and its targets (``RunTargets``: each one's
servers and its status in run.json).

The runner (harness.runner) puts a run together from these, the trials (harness.trials) and the
capacity searches (harness.searches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.backends.base import Backend, RunningTarget
from harness.plan import Level, Plan, PlannedTarget
from harness.results import RunWriter, TargetStatus, TrialRecord
from harness.slo import Capacity, Slo


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


@dataclass(kw_only=True)
class RunOutcome:
    records: list[TrialRecord] = field(default_factory=list)
    target_status: dict[str, tuple[TargetStatus, str]] = field(default_factory=dict)


class RunTargets:
    """The plan's targets: a new server for one (started by ``backend``), and each one's status,
    kept in the outcome and in run.json's ``targets``."""

    def __init__(self, plan: Plan, writer: RunWriter, backend: Backend,
                 outcome: RunOutcome) -> None:
        self.plan = plan
        self.writer = writer
        self.backend = backend
        self.outcome = outcome
        self.db_url: str | None = None  # the run's database, once it is up (harness.runner)

    def write_all(self) -> None:
        """Every target into run.json, pending (or unsupported, with the reason)."""
        self.writer.update_meta(targets=[
            {**p.target.to_dict(), "target": p.name,
             "status": TargetStatus.PENDING if p.supported else TargetStatus.UNSUPPORTED,
             "reason": p.reason} for p in self.plan.targets])

    def set_status(self, planned: PlannedTarget, status: TargetStatus, reason: str = "",
                   **extra: Any) -> None:
        self.outcome.target_status[planned.name] = (status, reason)
        targets = self.writer.meta.get("targets", [])
        for entry in targets:
            if entry.get("target") == planned.name:
                entry.update(status=status, reason=reason, **extra)
        self.writer.update_meta(targets=targets)

    def start(self, planned: PlannedTarget, upstream_url: str | None) -> RunningTarget:
        """A new server for ``planned``, pinned to the server CPUs (TargetError if it would
        not start), with a task log of its own when the scenario reads one."""
        if self.plan.scenario.needs_task_log:
            # asked only then, so a backend written before task logs still starts the others
            return self.backend.start_target(planned.target, cpus=self.plan.server_cpus,
                                             port=0, upstream_url=upstream_url,
                                             db_url=self.db_url, task_log=True)
        return self.backend.start_target(planned.target, cpus=self.plan.server_cpus, port=0,
                                         upstream_url=upstream_url, db_url=self.db_url)
