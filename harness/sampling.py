"""Server CPU and memory, sampled during a trial over the server's whole process tree.

A background thread samples once per SAMPLE_INTERVAL_S. CPU is the sum of user+system time of
every process in the tree (workers come and go, so the tree is re-read each sample) and is
reported as percent of one CPU. Memory is reported twice: RSS summed over the tree (what most
tools show; it counts pages shared by forked workers once per worker) and PSS (proportional set
size, shared pages split between the processes that share them), the honest figure for a
pre-forked server.

Once per trial, in the middle of its measured window, the sampler also counts the connections
each of the server's processes holds on the server's port (a census): a pre-forked worker
serves only the connections it accepted, so a worker holding most of them leaves its siblings
idle, which explains a server that falls short of its worker limit (gunicorn's gthread workers
accept whether or not a thread is free).
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

# Cheap enough (psutil reads /proc: ~0.3 ms per process with PSS) to sample often, which lets
# the CPU of exactly the generator's measured window be interpolated from the samples.
SAMPLE_INTERVAL_S = 0.25
MB = 1024 * 1024
NS_PER_S = 1_000_000_000
# The census is one /proc scan per process; a connection counts once it is established.
_CENSUS_STATES = frozenset({psutil.CONN_ESTABLISHED})


@dataclass(frozen=True, kw_only=True)
class Sample:
    t_ns: int  # time.monotonic_ns(): the same clock as the load generator's, in every process
    cpu_s: float  # cumulative CPU seconds of the tree since the sampler started
    rss_mb: float
    pss_mb: float | None
    # cumulative busy and total CPU seconds of the watched CPUs (the generator's CPU set)
    cpus_busy_s: float = 0.0
    cpus_total_s: float = 0.0


@dataclass(kw_only=True)
class Usage:
    """The samples of one trial, and what they say about a time window."""

    samples: list[Sample] = field(default_factory=list)
    # the census (module docstring): connections on the server's port per serving process,
    # most first; None when none was taken (no port given, or the trial ended first)
    connections_by_process: tuple[int, ...] | None = None

    def cpu_at(self, t_ns: int) -> float:
        """Cumulative CPU seconds at ``t_ns``, interpolated between the samples around it."""
        return self._at(t_ns, lambda s: s.cpu_s)

    def _at(self, t_ns: int, value: Callable[[Sample], float]) -> float:
        samples = self.samples
        if t_ns <= samples[0].t_ns:
            return value(samples[0])
        for prev, cur in itertools.pairwise(samples):
            if t_ns <= cur.t_ns:
                span = cur.t_ns - prev.t_ns
                frac = (t_ns - prev.t_ns) / span if span else 1.0
                return value(prev) + frac * (value(cur) - value(prev))
        return value(samples[-1])

    def watched_busy_pct(self, t0_ns: int, t1_ns: int) -> float | None:
        """How busy the watched CPUs were over [t0, t1], percent (all their users together)."""
        if not self.samples:
            return None
        total = self._at(t1_ns, lambda s: s.cpus_total_s) - self._at(
            t0_ns, lambda s: s.cpus_total_s)
        busy = self._at(t1_ns, lambda s: s.cpus_busy_s) - self._at(
            t0_ns, lambda s: s.cpus_busy_s)
        return 100.0 * busy / total if total > 0 else None

    def cpu_seconds(self) -> float:
        """CPU seconds of the tree over all the samples."""
        return self.samples[-1].cpu_s - self.samples[0].cpu_s if self.samples else 0.0

    def cpu_pct(self, t0_ns: int, t1_ns: int) -> float | None:
        """Mean CPU of the tree over [t0, t1], percent of one CPU."""
        if not self.samples or t1_ns <= t0_ns:
            return None
        t0_ns = max(t0_ns, self.samples[0].t_ns)
        t1_ns = min(t1_ns, self.samples[-1].t_ns)
        if t1_ns <= t0_ns:
            return None
        return 100.0 * (self.cpu_at(t1_ns) - self.cpu_at(t0_ns)) * NS_PER_S / (t1_ns - t0_ns)

    def peak_mb(self, t0_ns: int, t1_ns: int) -> tuple[float | None, float | None]:
        """Peak (RSS, PSS) of the tree over samples in [t0, t1] (all samples if none fall in)."""
        inside = [s for s in self.samples if t0_ns <= s.t_ns <= t1_ns] or self.samples
        if not inside:
            return None, None
        pss = [s.pss_mb for s in inside if s.pss_mb is not None]
        return max(s.rss_mb for s in inside), (max(pss) if pss else None)

    def per_second(self, t0_ns: int, seconds: int) -> list[dict[str, float | None]]:
        """CPU percent and peak RSS in each second [t0 + k, t0 + k + 1) of a window."""
        rows: list[dict[str, float | None]] = []
        for k in range(seconds):
            a, b = t0_ns + k * NS_PER_S, t0_ns + (k + 1) * NS_PER_S
            rows.append({"cpu_pct": self.cpu_pct(a, b), "rss_mb": self.peak_mb(a, b)[0]})
        return rows


def watched_cpu_seconds(cpus: Sequence[int]) -> tuple[float, float]:
    """Cumulative (busy, total) CPU seconds of ``cpus`` on this machine (/proc/stat), for how
    busy the generator's CPUs were; (0, 0) for none."""
    busy_s = total_s = 0.0
    if cpus:
        per_cpu = psutil.cpu_times(percpu=True)
        for cpu in cpus:
            if cpu < len(per_cpu):
                times = per_cpu[cpu]
                idle = times.idle + getattr(times, "iowait", 0.0)
                total = sum(times)
                busy_s += total - idle
                total_s += total
    return busy_s, total_s


def connections_by_process(procs: Sequence[psutil.Process], port: int) -> tuple[int, ...]:
    """Established TCP connections whose local port is ``port``, per process that serves it
    (holds such a connection or listens on it), most first.

    A supervisor that listens but never accepts (gunicorn's arbiter, uWSGI's master: the
    first process of a tree whose children also listen) holds none and is left out, so the
    counts are the workers'. Processes that vanish or cannot be read are skipped.
    """
    counts: list[tuple[int, int]] = []  # (position in procs, established connections)
    for position, proc in enumerate(procs):
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        mine = [c for c in conns if c.laddr and c.laddr.port == port]
        if mine:  # it listens on the port, or holds connections on it
            counts.append((position, sum(1 for c in mine if c.status in _CENSUS_STATES)))
    if len(counts) > 1 and counts[0] == (0, 0):  # the supervisor: first, and idle
        counts = counts[1:]
    return tuple(sorted((n for _, n in counts), reverse=True))


class PeriodicSampler(abc.ABC):
    """Takes a Sample every ``interval_s`` in a thread between ``start()`` and ``stop()``;
    subclasses say how (``_take``), and what to do first (``_begin``)."""

    def __init__(self, *, interval_s: float = SAMPLE_INTERVAL_S,
                 on_sample: Callable[[Sample], None] | None = None,
                 watch_cpus: Sequence[int] = ()) -> None:
        self._interval_s = interval_s
        self._on_sample = on_sample
        self._watch_cpus = tuple(watch_cpus)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[Sample] = []

    @abc.abstractmethod
    def _take(self) -> Sample:
        """One sample, now."""

    def _begin(self) -> None:  # noqa: B027 - optional hook
        """Before the first sample (a baseline)."""

    def start(self) -> None:
        self._begin()
        self.samples = [self._take()]
        self._thread = threading.Thread(target=self._run, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self._interval_s):
            sample = self._take()
            self.samples.append(sample)
            if self._on_sample is not None:
                self._on_sample(sample)
            self._after_sample(time.monotonic() - started)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _after_sample(self, elapsed_s: float) -> None:  # noqa: B027 - optional hook
        """After each periodic sample, ``elapsed_s`` after ``start()``."""

    def _usage(self) -> Usage:
        return Usage(samples=self.samples)

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self._take())
        return self._usage()


class TreeSampler(PeriodicSampler):
    """Samples a process tree's CPU and memory in a thread between start() and stop().

    ``processes`` returns the tree's processes now; it is called every sample so workers that
    are respawned are counted. With ``census_port`` and ``census_after_s``, the first sample
    at least ``census_after_s`` after ``start()`` is followed by the census (module docstring).
    """

    def __init__(self, processes: Callable[[], Sequence[psutil.Process]],
                 interval_s: float = SAMPLE_INTERVAL_S,
                 on_sample: Callable[[Sample], None] | None = None,
                 watch_cpus: Sequence[int] = (), census_port: int | None = None,
                 census_after_s: float | None = None) -> None:
        super().__init__(interval_s=interval_s, on_sample=on_sample, watch_cpus=watch_cpus)
        self._processes = processes
        self._census_port = census_port
        self._census_after_s = census_after_s
        self._census: tuple[int, ...] | None = None
        # CPU seconds per pid at the start of the window, and the last seen for each pid, so
        # time spent by a worker that exits mid-trial is still counted.
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._started = False

    def _cpu_now(self, procs: Sequence[psutil.Process]) -> None:
        for proc in procs:
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total = times.user + times.system
            # a process born during the window counts from zero; one alive at the start, from
            # its CPU time then
            self._base.setdefault(proc.pid, 0.0 if self._started else total)
            self._last[proc.pid] = total

    def _take(self) -> Sample:
        procs = list(self._processes())
        self._cpu_now(procs)
        t_ns = time.monotonic_ns()  # when the CPU times were read, not after the memory reads
        busy_s, total_s = watched_cpu_seconds(self._watch_cpus)
        rss = 0
        pss: int | None = 0
        for proc in procs:
            try:
                if pss is not None:
                    full = proc.memory_full_info()
                    rss += full.rss
                    pss += getattr(full, "pss", 0)
                else:
                    rss += proc.memory_info().rss
            except psutil.AccessDenied:
                pss = None  # PSS needs /proc/PID/smaps; RSS does not
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        cpu_s = sum(self._last[p] - self._base.get(p, 0.0) for p in self._last)
        return Sample(t_ns=t_ns, cpu_s=cpu_s, rss_mb=rss / MB,
                      pss_mb=pss / MB if pss is not None else None, cpus_busy_s=busy_s,
                      cpus_total_s=total_s)

    def _begin(self) -> None:
        self._cpu_now(list(self._processes()))  # the window's baseline
        self._started = True

    def _after_sample(self, elapsed_s: float) -> None:
        if (self._census is None and self._census_port is not None
                and self._census_after_s is not None and elapsed_s >= self._census_after_s):
            self._census = connections_by_process(list(self._processes()), self._census_port)

    def _usage(self) -> Usage:
        return Usage(samples=self.samples, connections_by_process=self._census)
