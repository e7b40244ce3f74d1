"""How fast the server's CPUs ran during a trial: a host that slows a guest's CPU shows no steal.

On the shared 2-core VM of the reference runs, uvicorn at 512 clients served 2,900 to 5,500
req/s from one second to the next of a single 60 s load, at 99 % of its CPU throughout, with
steal at 0-1 %: the same process did less work per CPU-second, for tens of seconds at a time.
A fixed piece of pure-Python work on the server's CPU, timed in its own CPU time (150,000 loop
iterations of the probe's kind), took 11 ms in the fast stretches and 15-20 ms in the slow
ones (per-second throughput against it: r = -0.72; a second 60 s load, with the probe as
shipped, benchmarks/cpu_pace.py: -0.64, and -0.84 over 5-second windows).
Over a run of 24 trials at 512 clients (four servers, six repeats each), the three that the
probe put at 1.7-2.0x were each the lowest of their server's repeats, at 0.2-0.6 of the mean of
the others; the rest ran at 0.95-1.25x.

So a probe process per server CPU runs that work every PROBE_INTERVAL_S, pinned there, and
reports how long it took; a trial's ``cpu_slowdown`` is the median over its window against the
CPU's recent pace: the median of the last BASELINE_TRIALS trials' medians (before the first, the
readings taken before it). Recent, not the run's best, because the pace also shifts for tens of
minutes: the probe took 1.9 ms through one 5-minute run and 0.9 ms in loads a few minutes
later, while uvicorn's throughput moved 20 %; a slow stretch that lands on one trial, making it
an outlier among its server's repeats, is what the baseline must catch. The probe costs the
server under 1 % of its CPU. It is a child of the harness (its CPU counts as the harness's own,
not as a neighbour's), and it exits when the harness goes: its next report finds the pipe
closed.

What the harness does with it: it flags the trial (harness.noise), nothing more. Over 240
trials of five servers at full CPU, the probe explained a seventh of the spread between repeats
(r = -0.38 between the logarithms; benchmarks/cpu_pace.py runs). Waiting before each trial for
a slowed CPU to return to its pace, and measuring a busy trial again, were tried: over two runs
with them and two without, alternating, the spread of the repeats did not shrink (mean standard
deviation of log throughput 0.140 and 0.136 with, 0.146 and 0.085 without), so the harness does
not spend the time on them.

Run as ``python -m harness.cpuspeed CPU``: one line ``MONOTONIC_NS SPENT_NS`` per probe.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType

# The work: this many iterations of a pure-Python loop, about 2 ms of CPU on the reference
# machine at full speed (a Python server's own kind of work: interpreter dispatch, integers).
PROBE_LOOPS = 30_000
# One probe every this many seconds: 2 ms in 250 is under 1 % of the server's CPU, and a 5 s
# trial gets about 20 readings, enough for a median that one preempted probe does not move.
PROBE_INTERVAL_S = 0.25
# Probes on at most this many of the server's CPUs: the host slows a guest's CPUs together or
# one at a time, and a few show either without taking a core's worth from a large server.
MAX_PROBED_CPUS = 4
# Fewest readings in a trial's window for a slowdown figure.
MIN_READINGS = 3
# Readings kept in memory: a day at one per PROBE_INTERVAL_S per CPU is 350,000 pairs; this
# bounds a run of any length (the oldest go first; trials read only recent windows).
MAX_READINGS = 100_000
# The CPU's recent pace: the median of this many trials' medians (about two minutes of trials).
BASELINE_TRIALS = 12
# How long the harness waits for a probe to exit when the run ends.
STOP_TIMEOUT_S = 5.0


def probe_forever(cpu: int | None, loops: int = PROBE_LOOPS,
                  interval_s: float = PROBE_INTERVAL_S) -> None:
    """The child: pin to ``cpu``, then time the work in this thread's CPU time, forever."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    out = sys.stdout
    while True:
        started = time.thread_time_ns()
        x = 0
        for i in range(loops):
            x += i * i
        spent = time.thread_time_ns() - started
        try:
            out.write(f"{time.monotonic_ns()} {spent}\n")
            out.flush()
        except OSError:  # a broken pipe: the harness is gone, so is the probe
            return
        time.sleep(interval_s)


class CpuSpeed:
    """A probe per CPU in ``cpus`` for as long as the ``with`` block runs.

    ``slowdown(start_ns, end_ns)``: the median probe time in that window (CLOCK_MONOTONIC, the
    generator's clock too) over the recent pace (module docstring): 1.0 at the usual speed.
    """

    def __init__(self, cpus: Sequence[int], *, loops: int = PROBE_LOOPS,
                 interval_s: float = PROBE_INTERVAL_S) -> None:
        self.cpus = tuple(cpus)
        self._loops = loops
        self._interval_s = interval_s
        self._procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._readings: list[tuple[int, int]] = []
        self._recent: list[float] = []  # the last BASELINE_TRIALS windows' medians

    def __enter__(self) -> CpuSpeed:
        try:
            for cpu in self.cpus:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.cpuspeed", str(cpu), str(self._loops),
                     str(self._interval_s)],
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                self._procs.append(proc)
                reader = threading.Thread(target=self._read, args=(proc,), daemon=True,
                                          name=f"cpuspeed-{cpu}")
                reader.start()
                self._readers.append(reader)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2:
                self.add_reading(int(parts[0]), int(parts[1]))

    def add_reading(self, at_ns: int, spent_ns: int) -> None:
        """One probe's report: when (CLOCK_MONOTONIC) and how long the work took (ns)."""
        with self._lock:
            self._readings.append((at_ns, spent_ns))
            if len(self._readings) > MAX_READINGS:
                del self._readings[: len(self._readings) - MAX_READINGS]

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # the readers end at the pipes' end; closed under them, they would raise
        for reader in self._readers:
            reader.join(timeout=STOP_TIMEOUT_S)
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()
        self._readers.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def readings(self, start_ns: int, end_ns: int) -> list[int]:
        """The probe times (ns) of the readings taken in ``[start_ns, end_ns]``."""
        with self._lock:
            return [spent for at, spent in self._readings if start_ns <= at <= end_ns]

    def _baseline(self, before_ns: int) -> float | None:
        if self._recent:
            return float(statistics.median(self._recent))
        before = self.readings(0, before_ns - 1)
        return float(statistics.median(before)) if len(before) >= MIN_READINGS else None

    def slowdown(self, start_ns: int, end_ns: int) -> float | None:
        """How many times slower than its recent pace the CPU ran in the window; None with
        fewer than MIN_READINGS readings in it (or none before the first window)."""
        window = self.readings(start_ns, end_ns)
        if len(window) < MIN_READINGS:
            return None
        median = float(statistics.median(window))
        baseline = self._baseline(start_ns)
        self._recent = [*self._recent, median][-BASELINE_TRIALS:]
        return median / baseline if baseline else None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cpu = int(args[0]) if args else None
    loops = int(args[1]) if len(args) > 1 else PROBE_LOOPS
    interval_s = float(args[2]) if len(args) > 2 else PROBE_INTERVAL_S
    with contextlib.suppress(KeyboardInterrupt):
        probe_forever(cpu, loops, interval_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
