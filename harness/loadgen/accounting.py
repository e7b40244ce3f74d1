"""The accounting of one generator process: what counts, in which second, and how late.

Which requests count: a request belongs to the measurement when it was *due* (open loop: its
intended time; closed loop: its send time) inside the measured window ``[m0, m1)``. Its latency
goes into the second it was due in (the latency of the load offered in that second); a success
answered inside the window counts as throughput in the second it was answered, whenever it was
due. After the window the worker waits up to the timeout for those still outstanding; whatever
is then still in flight or queued counts as a timeout, so a server that stalls at the end
cannot hide.

The hot path (a connection's response handler) appends to ``lat``/``svc`` and bumps
``completed``/``done_sec`` directly: one attribute load each, no call.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field

from harness.loadgen.histograms import NS_PER_S, SecondBook
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.schedule import Window

# Open loop: a request sent more than this after its due time counts as "behind".
BEHIND_THRESHOLD_MS = 10.0
BEHIND_THRESHOLD_NS = int(BEHIND_THRESHOLD_MS * 1_000_000)
# Why an open-loop request went out late: not the generator's doing (a new connection was slow to
# be accepted), the generator itself was late, or every connection up to its cap was busy.
NOT_GENERATOR, GENERATOR_LATE, AT_CAP = 0, 1, 2


@dataclass(frozen=True, kw_only=True)
class WorkerReport:
    """What a generator process sends back: encoded histograms and counts, nothing derived."""

    proc: int
    requests: int
    errors: dict[str, int]
    latency_hdr: bytes
    service_hdr: bytes | None
    out_of_range: int
    second_requests: list[int]  # by the second each request was due (the latency sample)
    second_completed: list[int]  # successes by the second they were answered (throughput)
    second_errors: list[int]
    second_latency_hdr: list[bytes | None]
    behind: int  # measured open-loop requests sent > BEHIND_THRESHOLD_MS late, any cause
    behind_generator: int  # ... of which the generator's fault (late itself, or at its cap)
    behind_at_cap: int  # ... of those, the ones that waited because every connection was busy
    completed: int  # successes answered inside the window (due in it or not): the throughput
    resent: int  # requests sent again after the server closed a reused connection (RFC 9112)
    window_start_ns: int  # the measured window on time.monotonic_ns(), shared by all processes
    window_end_ns: int
    scheduled: int  # open loop: this process's requests due in the window
    cpu_s: float
    window_s: float
    peak_connections: int
    open_at_end: int = 0  # connections still open when the load ended (held, not lost)
    max_connections: int  # this process's cap: open and opening connections together
    precise_timer: bool
    late_max_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    # a request mix: each kind's own report (its counts are in this one's too), by name
    kinds: dict[str, WorkerReport] = field(default_factory=dict)


class Book:
    """Counts, errors by kind and second, latency samples, lateness and the CPU window."""

    def __init__(self, *, service_time: bool) -> None:
        self.service_time = service_time
        self.m0 = 0
        self.m1 = 0  # nothing is measured until arm() sets the window
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.err_sec: list[int] = []
        self.lat_book = SecondBook(0)
        self.svc_book: SecondBook | None = None
        self.lat: list[array[int]] = self.lat_book.buckets
        self.svc: list[array[int]] | None = None
        # successes answered inside the window, whenever they were due: the throughput. (The
        # requests due in the window are the latency sample; in open loop against a server
        # that cannot keep up they are answered late, after the window, so counting them as
        # throughput would report the offered rate instead of what the server delivered.)
        self.completed = 0
        self.done_sec: list[int] = []  # ... and by the second they were answered in
        self.behind = 0
        self.behind_generator = 0
        self.behind_at_cap = 0
        self.late_max_ns = 0
        self.scheduled = 0
        self.resent = 0
        self.cpu0 = self.cpu1 = 0
        self.t_cpu0 = self.t_cpu1 = 0

    def arm(self, window: Window) -> None:
        seconds = window.seconds
        self.lat_book = SecondBook(seconds)
        self.lat = self.lat_book.buckets
        if self.service_time:
            self.svc_book = SecondBook(seconds)
            self.svc = self.svc_book.buckets
        self.err_sec = [0] * seconds
        self.done_sec = [0] * seconds
        self.m0, self.m1 = window.m0_ns, window.m1_ns

    def answered(self, due: int, sent: int, now: int, error: str | None) -> None:
        """An answer arrived at ``now`` to what was due at ``due`` and sent at ``sent``:
        ``error`` is its kind when it was wrong (a status, a body), None when it succeeded.

        A success answered inside the window is throughput, whenever it was due; one due
        inside the window is a latency sample (from ``due``; the service time from ``sent``).
        """
        m0, m1 = self.m0, self.m1
        due_in_window = m0 <= due < m1
        if error is not None:
            if due_in_window:
                self.count_error(error, due)
            return
        if m0 <= now < m1:
            self.completed += 1
            self.done_sec[(now - m0) // NS_PER_S] += 1
        if due_in_window:
            sec = (due - m0) // NS_PER_S
            self.lat[sec].append(now - due)
            svc = self.svc
            if svc is not None:
                svc[sec].append(now - sent)

    def count_error(self, kind: str, t_ns: int) -> None:
        if self.m0 <= t_ns < self.m1:
            self.errors[kind] += 1
            self.err_sec[(t_ns - self.m0) // NS_PER_S] += 1

    def sent_late(self, due: int, now: int, cause: int) -> None:
        """Open loop: how late a request went out, and whose fault that was."""
        if not self.m0 <= due < self.m1:
            return
        late = now - due
        if late > BEHIND_THRESHOLD_NS:
            self.behind += 1
            if cause != NOT_GENERATOR:
                self.behind_generator += 1
                if cause == AT_CAP:
                    self.behind_at_cap += 1
        if late > self.late_max_ns:
            self.late_max_ns = late

    def mark_start(self) -> None:
        self.t_cpu0 = time.monotonic_ns()
        self.cpu0 = time.process_time_ns()

    def mark_end(self) -> None:
        self.t_cpu1 = time.monotonic_ns()
        self.cpu1 = time.process_time_ns()

    def flush(self) -> None:
        self.lat_book.flush()
        if self.svc_book is not None:
            self.svc_book.flush()

    def absorb(self, kind: Book) -> None:
        """Add a request kind's counts into this book, the total (both flushed first): the
        kind books count answers, errors and latency; this one the rest (connects, lateness,
        resends, the schedule and the CPU window)."""
        kind.flush()
        self.flush()
        self.lat_book.add(kind.lat_book)
        if self.svc_book is not None and kind.svc_book is not None:
            self.svc_book.add(kind.svc_book)
        for name, count in kind.errors.items():
            self.errors[name] += count
        self.completed += kind.completed
        for sec, count in enumerate(kind.err_sec):
            self.err_sec[sec] += count
        for sec, count in enumerate(kind.done_sec):
            self.done_sec[sec] += count

    def report(self, *, proc: int, peak_connections: int, open_at_end: int,
               max_connections: int,
               precise_timer: bool, notes: list[str]) -> WorkerReport:
        self.flush()
        if self.t_cpu1 == 0:
            self.mark_end()
        book = self.lat_book
        second_requests = [
            (h.get_total_count() if h is not None else 0) + lost
            for h, lost in zip(book.per_second, book.out_of_range_per_second, strict=True)
        ]
        window_ns = max(1, self.t_cpu1 - self.t_cpu0) if self.t_cpu0 else max(
            1, self.m1 - self.m0)
        errors = dict(self.errors)
        errors["total"] = sum(self.errors.values())
        return WorkerReport(
            proc=proc,
            requests=book.total.get_total_count() + book.out_of_range,
            errors=errors,
            latency_hdr=book.total.encode(),
            service_hdr=self.svc_book.total.encode() if self.svc_book is not None else None,
            out_of_range=book.out_of_range,
            second_requests=second_requests,
            second_completed=list(self.done_sec),
            second_errors=list(self.err_sec),
            second_latency_hdr=book.encoded_seconds(),
            behind=self.behind,
            behind_generator=self.behind_generator,
            behind_at_cap=self.behind_at_cap,
            completed=self.completed,
            resent=self.resent,
            window_start_ns=self.m0,
            window_end_ns=self.m1,
            scheduled=self.scheduled,
            cpu_s=(self.cpu1 - self.cpu0) / NS_PER_S if self.t_cpu0 else 0.0,
            window_s=window_ns / NS_PER_S,
            peak_connections=peak_connections,
            open_at_end=open_at_end,
            max_connections=max_connections,
            precise_timer=precise_timer,
            late_max_ms=self.late_max_ns / 1e6,
            notes=notes,
        )
