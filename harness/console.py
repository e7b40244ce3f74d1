"""What `harness run` shows on the console while a run goes on: a progress bar across the plan,
one for the trial in flight, and a line for each target, trial, capacity and head-to-head pair.

``RichObserver`` is the console's ``RunObserver`` (harness.run_state): the runner tells it what
happens and it only prints.
"""

from __future__ import annotations

import threading
import time

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

from harness.plan import Level, Plan, PlannedTarget
from harness.results import TargetStatus, TrialRecord
from harness.sampling import MB
from harness.slo import Capacity, Slo
from harness.units import format_size

PROGRESS_TICK_S = 0.25


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
        # an upload level: its body size, and the bytes it moved
        upload = "" if record.upload_bytes is None else (
            f" x {format_size(record.upload_bytes)}  "
            f"{record.achieved_rps * record.upload_bytes / MB:,.0f} MB/s")
        self.console.print(f"    {phase}{record.load_model} {level_text:>6}{upload}: "
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
