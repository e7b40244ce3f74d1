"""What else used the machine during a trial: CPU time of processes outside the harness (its
own process, the generator, the upstream and the servers it started), steal time (CPU the
hypervisor gave to other guests), and how much slower than its recent pace the server's CPU
ran (harness.cpuspeed: a host that slows a guest's CPU shows no steal).

Two readings of cumulative counters, at the start and the end of a trial, are enough: the
machine's busy and steal time (/proc/stat), the harness's own CPU with its reaped children
(``os.times``: the generator processes, joined before the end), and the CPU of its live
descendants (the upstream, the servers). What the machine spent beyond those was someone
else's. Runs on a shared machine are then flagged, not silently trusted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from harness.cpuspeed import CpuSpeed

NS_PER_S = 1_000_000_000
# A trial is flagged as taken on a busy machine above this much CPU used by other processes
# (percent of one CPU) or this much steal.
BUSY_OTHERS_PCT = 20.0
BUSY_STEAL_PCT = 5.0
# ... or when the server's CPU ran this many times slower than its recent pace (harness.cpuspeed).
# Over 240 trials of servers at full CPU, those at 0.9-1.1x served within 1 % of their server's
# median repeat, those at 1.3-1.7x 10-14 % less (benchmarks/cpu_pace.py runs).
SLOW_CPU_FACTOR = 1.3
# How a busy trial's note (Noise.note, in trials.csv's notes) begins.
BUSY_NOTE = "busy machine"


def is_busy(others_cpu_pct: float | None, steal_pct: float | None,
            cpu_slowdown: float | None, *, notes: str = "") -> bool:
    """The busy-machine rule, for a trial being measured (Noise.busy) and for one read back
    from a run folder (harness.analysis.rundata.busy_trials): processes outside the harness used
    more than BUSY_OTHERS_PCT of a CPU, steal was above BUSY_STEAL_PCT, or the server's CPU ran
    more than SLOW_CPU_FACTOR times slower than its recent pace; or the trial's ``notes`` say
    so (BUSY_NOTE). A reading that is missing (None, or NaN in a run folder: not probed, or
    written before its column existed) is not over its limit."""
    return (_over(others_cpu_pct, BUSY_OTHERS_PCT) or _over(steal_pct, BUSY_STEAL_PCT)
            or _over(cpu_slowdown, SLOW_CPU_FACTOR) or BUSY_NOTE in notes)


def _over(value: float | None, limit: float) -> bool:
    return value is not None and value > limit  # NaN > limit is False


@dataclass(frozen=True, kw_only=True)
class Noise:
    """Over one trial, percent of one CPU: used by processes outside the harness, stolen;
    and how many times slower than its recent pace the server's CPU ran (None: not probed)."""

    others_cpu_pct: float
    steal_pct: float
    cpu_slowdown: float | None = None

    @property
    def slowed(self) -> bool:
        return _over(self.cpu_slowdown, SLOW_CPU_FACTOR)

    @property
    def busy(self) -> bool:
        return is_busy(self.others_cpu_pct, self.steal_pct, self.cpu_slowdown)

    def note(self) -> str:
        parts = []
        if self.others_cpu_pct > BUSY_OTHERS_PCT or self.steal_pct > BUSY_STEAL_PCT \
                or not self.slowed:
            parts.append(f"processes outside the harness used {self.others_cpu_pct:.0f}% of a "
                         f"CPU and steal was {self.steal_pct:.0f}%")
        if self.slowed:
            parts.append(f"the server's CPU ran {self.cpu_slowdown:.1f}x slower than its "
                         f"recent pace (a fixed probe on it, timed in its own CPU time)")
        return f"{BUSY_NOTE}: {'; '.join(parts)} during the trial"


def _machine() -> tuple[float, float]:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle, getattr(times, "steal", 0.0)


def _self_and_reaped() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class NoiseProbe:
    """``start()`` before a trial, ``stop()`` after it; ``extra_cpu_s`` is CPU of the server
    that is not a descendant of the harness (a container), which is ours too. With ``speed``
    (the run's probes on the server's CPUs), ``stop(window=...)`` also says how fast they ran
    over the measured window (CLOCK_MONOTONIC ns; default: from start() to stop())."""

    def __init__(self, speed: CpuSpeed | None = None) -> None:
        self._speed = speed
        self._t0 = 0
        self._machine0 = (0.0, 0.0)
        self._self0 = 0.0
        self._live0: dict[int, float] = {}

    @staticmethod
    def _descendants() -> dict[int, float]:
        found: dict[int, float] = {}
        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return found
        for child in children:
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            found[child.pid] = times.user + times.system
        return found

    def start(self) -> None:
        self._live0 = self._descendants()
        self._self0 = _self_and_reaped()
        self._machine0 = _machine()
        self._t0 = time.monotonic_ns()

    def stop(self, *, extra_cpu_s: float = 0.0,
             window: tuple[int, int] | None = None) -> Noise:
        busy1, steal1 = _machine()
        t1 = time.monotonic_ns()
        self_s = _self_and_reaped() - self._self0
        live1 = self._descendants()
        # a descendant alive at both readings counts its difference; one born since, all of
        # its time; one gone since was reaped (in os.times) or not ours to wait for
        live_s = sum(cpu - self._live0.get(pid, 0.0) for pid, cpu in live1.items())
        wall_s = max(1e-9, (t1 - self._t0) / NS_PER_S)
        busy_s = busy1 - self._machine0[0]
        others_s = max(0.0, busy_s - self_s - live_s - extra_cpu_s)
        start_ns, end_ns = window if window and window[1] > window[0] else (self._t0, t1)
        return Noise(others_cpu_pct=100.0 * others_s / wall_s,
                     steal_pct=100.0 * max(0.0, steal1 - self._machine0[1]) / wall_s,
                     cpu_slowdown=self._speed.slowdown(start_ns, end_ns)
                     if self._speed is not None else None)
