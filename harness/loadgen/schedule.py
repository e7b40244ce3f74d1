"""The open-loop schedule: request i is due at start + i/R, whatever happened before it.

With several generator processes, process k of P sends requests k, k+P, k+2P, ... of the one
global schedule, so the combined arrivals are evenly spaced at the full rate R.
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
                 procs: int = 1) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        # global request i is due at start + i * 1e9/R; this process owns i = proc + j*procs
        self._first_ns = start_ns + proc * NS_PER_S / rate
        self._step_ns = procs * NS_PER_S / rate
        self.next_index = 0  # the next of this process's requests not yet handed out

    def due_ns(self, j: int) -> int:
        return int(self._first_ns + j * self._step_ns)

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
