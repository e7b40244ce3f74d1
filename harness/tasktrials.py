"""The trials that read the app's task log (apps/raw/tasklog.py): requests whose answers start
background work (``background``), the same load stopped by SIGTERM halfway (``sigterm``), and
clients that leave a stream mid-way (``disconnect``).

The log is a folder the local backend gives each server it starts (``RunningTarget.task_log``,
removed when the server is stopped): every worker process of the server appends to it, so
what it says covers all of them, and outlives them.

- ``background``: closed-loop ``GET /background?ms=N`` (harness.loadgen.background). Before
  it the tasks of what came earlier (verify, the last level) are let finish; the log is read
  at the window's start and end: tasks started and finished in the window (finished per
  second: the rate the server gets through its background work), beside the answers and their
  latency.
- ``sigterm``: the same load; halfway through the window the server's main process gets
  SIGTERM, the graceful stop every server documents and every process manager sends. The
  load goes on to the window's end (refused connects are errors, not held against the trial:
  the stop is the measurement), then the harness waits for every process to exit, at most
  SIGTERM_EXIT_TIMEOUT_S after the signal, then kills them, and counts from the trial's start:
  tasks accepted (2xx answers the clients received: work the server promised), started and
  finished; lost = accepted - finished. The server is not used again (the plan puts this level
  last; the runner's stop of an exited server only cleans up).
- ``disconnect``: K clients each ask for ``/stream?events=N&interval_ms=M&id=...``, read E
  events and close (harness.loadgen.streams, ``leave_after``). The app logs each stream's end
  with its id, the events it handed to the server, and ``time.monotonic_ns()``, the clock the
  clients stamped their close with: per stream, the events made after the client left and the
  time from its close to the server's end; a stream not ended within the stream's own length
  plus STREAM_END_GRACE_S after the last close never ended.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apps.raw.tasklog import StreamEnd, TaskCounts, read_stream_ends, read_task_counts
from harness.backends.base import RunningTarget
from harness.loadgen.background import as_load_result, measure_background
from harness.loadgen.histograms import HIGHEST_US, NS_PER_US, new_histogram
from harness.loadgen.result import LoadResult
from harness.loadgen.streams import measure_streams
from harness.results import TrialRecord

TASK_LOG_MODELS = ("background", "sigterm", "disconnect")
# gunicorn's default graceful_timeout is 30 s: a server that waits for its workers that long
# still exits within this; one that does not exit by then is killed, and that is its result.
SIGTERM_EXIT_TIMEOUT_S = 40.0
# Before a background level: the tasks of what came before are done when none is running and
# the counts have not moved for SETTLE_QUIET_S (a queued request may still start one), polled
# every SETTLE_POLL_S, for at most SETTLE_TIMEOUT_S.
SETTLE_QUIET_S = 0.3
SETTLE_POLL_S = 0.05
SETTLE_TIMEOUT_S = 15.0
# A stream a client left ends, at the latest, when its last event is made: the stream's length
# after the last close, plus this, is the bound past which it never ended.
STREAM_END_GRACE_S = 2.0
STREAM_END_POLL_S = 0.05
# A stream id: this many hex digits of a random UUID per trial, then the stream's number.
STREAM_ID_HEX = 12


@dataclass(frozen=True, kw_only=True)
class TaskFigures:
    """What a task-log level adds to its trial's row (harness.results.TrialRecord's columns,
    and how the trial is judged)."""

    tasks_accepted: int | None = None
    tasks_started: int | None = None
    tasks_finished: int | None = None
    exit_after_s: float | None = None
    events_after_close_p50: float | None = None
    events_after_close_max: int | None = None
    streams_never_ended: int | None = None
    # a SIGTERM level: the server's exit was asked for, and is no death; ``died`` when it had
    # died before the signal
    stopped: bool = False
    died: str | None = None
    # the errors held against the trial (a SIGTERM level: those before the signal)
    errors_judged: int | None = None

    @property
    def tasks_lost(self) -> int | None:
        if self.tasks_accepted is None or self.tasks_finished is None:
            return None
        return max(0, self.tasks_accepted - self.tasks_finished)


_COLUMNS = ("tasks_accepted", "tasks_started", "tasks_finished", "exit_after_s",
            "events_after_close_p50", "events_after_close_max", "streams_never_ended")


def with_tasks(record: TrialRecord, tasks: TaskFigures | None) -> TrialRecord:
    """``record`` with the task-log columns of ``tasks`` (unchanged when None)."""
    if tasks is None:
        return record
    return dataclasses.replace(record, **{name: getattr(tasks, name) for name in _COLUMNS})


def unsupported(server: RunningTarget) -> str | None:
    """Why a task-log level cannot run on ``server`` (None: it can)."""
    if server.task_log is None:
        return ("the app's task log and the server's processes are out of the harness's reach "
                "here (a container): run it with the local backend")
    return None


def settle(server: RunningTarget) -> tuple[TaskCounts, bool]:
    """The task counts once no task is running and none has started for SETTLE_QUIET_S, and
    whether that happened within SETTLE_TIMEOUT_S (else the counts then)."""
    assert server.task_log is not None
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = read_task_counts(server.task_log)
    quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        if last.running == 0 and now - quiet_since >= SETTLE_QUIET_S:
            return last, True
        if now >= deadline:
            return last, False
        time.sleep(SETTLE_POLL_S)
        counts = read_task_counts(server.task_log)
        if counts != last:
            last, quiet_since = counts, time.monotonic()


class _ExitWatch:
    """After the SIGTERM: waits (in a thread, while the load goes on) for every process of
    the server to exit, and notes when."""

    def __init__(self, server: RunningTarget) -> None:
        self.server = server
        self.sent_ns = 0
        self.exited_ns: int | None = None
        self.alive_at_signal = True
        self.died: str | None = None
        self._thread = threading.Thread(target=self._wait, name="harness-exit-watch",
                                        daemon=True)

    def signal(self) -> None:
        self.alive_at_signal = self.server.alive()
        if not self.alive_at_signal:
            self.died = self.server.exit_reason()
        self.sent_ns = time.monotonic_ns()
        self.server.send_stop_signal()
        self._thread.start()

    def _wait(self) -> None:
        if self.server.wait_exited(SIGTERM_EXIT_TIMEOUT_S):
            self.exited_ns = time.monotonic_ns()

    def finish(self) -> bool:
        """Wait out the bound; True when the server exited by itself, else it is killed."""
        if self.sent_ns == 0:  # the load failed before the signal: send it now
            self.signal()
        left_s = SIGTERM_EXIT_TIMEOUT_S - (time.monotonic_ns() - self.sent_ns) / 1e9
        self._thread.join(max(0.0, left_s) + 1.0)
        if self.exited_ns is not None:
            return True
        self.server.kill_now()
        return False


def run_background(server: RunningTarget, url: str, *, load_model: str, clients: int,
                   warmup_s: float, duration_s: float, timeout_s: float, think_s: float,
                   expect_body: bytes | None, cpus: Sequence[int]
                   ) -> tuple[LoadResult, TaskFigures]:
    """A ``background`` or ``sigterm`` level (the module's docstring)."""
    assert server.task_log is not None
    folder = server.task_log
    base, settled = settle(server)
    marks: dict[str, TaskCounts] = {}

    def snapshot(name: str) -> Callable[[], None]:
        return lambda: marks.__setitem__(name, read_task_counts(folder))

    at: list[tuple[float, Callable[[], None]]] = [(0.0, snapshot("start")),
                                                   (duration_s, snapshot("end"))]
    sigterm = load_model == "sigterm"
    watch = _ExitWatch(server)
    if sigterm:
        at.append((duration_s / 2, watch.signal))
    notes = [] if settled else [
        f"background: the tasks before the level were still running {SETTLE_TIMEOUT_S:g} s "
        f"on ({base.running}); counted from then"]
    # an exception (the clients failed, Ctrl-C) goes up as it is: the runner stops the server
    result = measure_background(url, clients=clients, warmup_s=warmup_s,
                                duration_s=duration_s, timeout_s=timeout_s, think_s=think_s,
                                expect_body=expect_body,
                                split_s=duration_s / 2 if sigterm else None, at=at, cpus=cpus)
    exited = watch.finish() if sigterm else True
    load = as_load_result(result, load_model=load_model)
    if not sigterm:
        start, end = marks["start"], marks["end"]
        finished = end.finished - start.finished
        figures = TaskFigures(tasks_accepted=result.requests,
                              tasks_started=end.started - start.started,
                              tasks_finished=finished)
        notes.append(f"background: {finished} tasks finished in the {duration_s:g} s window "
                     f"({finished / duration_s:.1f}/s), {result.requests} accepted")
        load.notes.extend(notes)
        return load, figures
    final = read_task_counts(folder)
    exit_s = (watch.exited_ns - watch.sent_ns) / 1e9 if watch.exited_ns is not None else None
    figures = TaskFigures(
        tasks_accepted=result.accepted, tasks_started=final.started - base.started,
        tasks_finished=final.finished - base.finished, exit_after_s=exit_s, stopped=True,
        died=watch.died, errors_judged=result.errors_before_split)
    notes.append(sigterm_note(figures, exited))
    load.notes.extend(notes)
    return load, figures


def sigterm_note(figures: TaskFigures, exited: bool) -> str:
    """What the SIGTERM level counted, for the trial's notes."""
    how = (f"exited {figures.exit_after_s:.1f} s after SIGTERM"
           if exited and figures.exit_after_s is not None
           else f"did not exit within {SIGTERM_EXIT_TIMEOUT_S:g} s of SIGTERM: killed")
    return (f"sigterm: {how}; tasks accepted {figures.tasks_accepted}, started "
            f"{figures.tasks_started}, finished {figures.tasks_finished}, lost "
            f"{figures.tasks_lost}")


def run_disconnect(server: RunningTarget, url: str, *, clients: int, events: int,
                   interval_ms: float, read: int, timeout_s: float,
                   cpus: Sequence[int]) -> tuple[LoadResult, TaskFigures]:
    """A ``disconnect`` level (the module's docstring)."""
    assert server.task_log is not None
    prefix = f"{uuid.uuid4().hex[:STREAM_ID_HEX]}-"
    start_ns = time.monotonic_ns()
    streams = measure_streams(url, streams=clients, events=events, interval_ms=interval_ms,
                              timeout_s=timeout_s, cpus=cpus, leave_after=read,
                              id_prefix=prefix)
    left = {sid: (received, closed_ns) for sid, received, closed_ns in streams.left}
    ends: dict[str, StreamEnd] = {}
    if left:
        bound_ns = max(closed for _, closed in left.values()) + int(
            ((events - 1) * interval_ms / 1000 + STREAM_END_GRACE_S) * 1e9)
        while True:
            ends = {e.stream_id: e for e in read_stream_ends(server.task_log)
                    if e.stream_id in left}
            if len(ends) == len(left) or time.monotonic_ns() >= bound_ns:
                break
            time.sleep(STREAM_END_POLL_S)
    delays = new_histogram()
    after: list[int] = []
    for sid, end in ends.items():
        received, closed_ns = left[sid]
        delay_us = (end.end_ns - closed_ns) // NS_PER_US
        delays.record_value(min(max(delay_us, 1), HIGHEST_US))
        after.append(max(0, end.sent - received))
    end_ns = time.monotonic_ns()
    duration_s = (end_ns - start_ns) / 1e9
    never = len(left) - len(ends)
    ran_to_end = sum(e.how == "done" for e in ends.values())
    errors = dict(streams.errors)
    errors["total"] = streams.cut + streams.never_started
    note = (f"disconnect: {len(left)} of {clients} clients left after {read} of {events} "
            f"events; the server ended {len(ends)} of those streams within the bound"
            + (f", {never} not" if never else "")
            + (f"; {ran_to_end} made every event (it never noticed)" if ran_to_end else ""))
    load = LoadResult(
        load_model="disconnect", url=streams.url, concurrency=clients, requests=len(left),
        duration_s=duration_s, achieved_rps=len(left) / max(duration_s, 1e-9),
        offered_rps=None, errors=errors, latency=delays, service_time=streams.first_event,
        out_of_range=streams.out_of_range, behind=0, behind_generator=0, behind_at_cap=0,
        scheduled=0, saturated=False, saturation_reasons=[], generator_cpu_pct=0.0,
        generator_cpu_s=0.0, generator_proc_cpu_pct=[],
        peak_connections=streams.peak_connections, procs=1, window_start_ns=start_ns,
        window_end_ns=end_ns, open_at_end=streams.max_concurrent, notes=[note])
    figures = TaskFigures(
        events_after_close_p50=float(statistics.median(after)) if after else None,
        events_after_close_max=max(after) if after else None, streams_never_ended=never)
    return load, figures
