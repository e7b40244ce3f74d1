"""The open-loop schedule: request i is due at start + i/R, whatever happened before it.

With several generator processes, process k of P sends requests k, k+P, k+2P, ... of the one
global schedule, so the combined arrivals are evenly spaced at the full rate R.

With a ramp of T seconds (a share of the unrecorded warm-up), the rate rises linearly from 0 to
R over T, then holds: request i is due at sqrt(2 T i / R) while i < R T / 2, then at
i/R + T/2. A server that starts cold (no connections yet, no pooled upstream ones) meets the
full rate at once otherwise: every request in the first moments pays for new connections, the
backlog that builds needs still more of them, and the transient can outlast a short warm-up.
(uvicorn started for each step, 1 s warm-up: without the ramp it missed p99 <= 200 ms at 2,400
and 3,150 req/s, 361 and 239 ms; with it, minutes later, it met it up to 3,875 and 4,388.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class Window:
    """Absolute monotonic nanoseconds: warm-up from ``start_ns``, measured ``[m0_ns, m1_ns)``."""

    start_ns: int
    m0_ns: int
    m1_ns: int

    @property
    def seconds(self) -> int:
        return max(1, math.ceil((self.m1_ns - self.m0_ns) / NS_PER_S))


class OpenLoopSchedule:
    """Due times of one process's share of a constant-rate schedule, ending before ``end_ns``."""

    def __init__(self, *, start_ns: int, end_ns: int, rate: float, proc: int = 0,
                 procs: int = 1, ramp_ns: int = 0) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self._rate = rate
        self._proc = proc
        self._procs = procs
        self._ramp_ns = max(0, ramp_ns)
        self._ramp_requests = rate * self._ramp_ns / NS_PER_S / 2.0  # due during the ramp
        self.next_index = 0  # the next of this process's requests not yet handed out

    def due_ns(self, j: int) -> int:
        i = self._proc + j * self._procs  # this process owns global requests proc + j*procs
        if i < self._ramp_requests:
            return self.start_ns + int(math.sqrt(2.0 * self._ramp_ns * NS_PER_S * i
                                                 / self._rate))
        return self.start_ns + int(i * NS_PER_S / self._rate + self._ramp_ns / 2.0)

    @property
    def finished(self) -> bool:
        return self.due_ns(self.next_index) >= self.end_ns

    def take_due(self, now_ns: int) -> list[int]:
        """Hand out every request due at or before ``now_ns`` (in order) and advance."""
        out: list[int] = []
        j = self.next_index
        due = self.due_ns(j)
        while due <= now_ns and due < self.end_ns:
            out.append(due)
            j += 1
            due = self.due_ns(j)
        self.next_index = j
        return out

    def next_due_ns(self) -> int | None:
        """When the next request is due, or None when the schedule is over."""
        due = self.due_ns(self.next_index)
        return None if due >= self.end_ns else due
