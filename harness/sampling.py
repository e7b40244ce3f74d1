"""Server CPU and memory, sampled during a trial over the server's whole process tree.

A background thread samples once per SAMPLE_INTERVAL_S. CPU is the sum of user+system time of
every process in the tree (workers come and go, so the tree is re-read each sample) and is
reported as percent of one CPU. Memory is reported twice: RSS summed over the tree (what most
tools show; it counts pages shared by forked workers once per worker) and PSS (proportional set
size, shared pages split between the processes that share them), the honest figure for a
pre-forked server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

SAMPLE_INTERVAL_S = 1.0
MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Sample:
    t_s: float  # seconds since the sampler started
    cpu_s: float  # cumulative CPU seconds of the tree since the sampler started
    rss_mb: float
    pss_mb: float | None


@dataclass(kw_only=True)
class Usage:
    """What a trial reports: mean CPU over the window and peak memory."""

    cpu_pct: float | None
    rss_mb: float | None
    pss_mb: float | None
    samples: list[Sample] = field(default_factory=list)

    def per_second(self) -> list[dict[str, float | None]]:
        """CPU percent and memory in each sampled second, for the per-second series."""
        rows: list[dict[str, float | None]] = []
        for prev, cur in zip(self.samples, self.samples[1:], strict=False):
            span = cur.t_s - prev.t_s
            rows.append({
                "cpu_pct": 100.0 * (cur.cpu_s - prev.cpu_s) / span if span > 0 else None,
                "rss_mb": cur.rss_mb,
            })
        return rows


class TreeSampler:
    """Samples a process tree's CPU and memory in a thread between start() and stop().

    ``processes`` returns the tree's processes now; it is called every sample so workers that
    are respawned are counted.
    """

    def __init__(self, processes: Callable[[], Sequence[psutil.Process]],
                 interval_s: float = SAMPLE_INTERVAL_S,
                 on_sample: Callable[[Sample], None] | None = None) -> None:
        self._processes = processes
        self._interval_s = interval_s
        self._on_sample = on_sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # CPU seconds per pid at the start of the window, and the last seen for each pid, so
        # time spent by a worker that exits mid-trial is still counted.
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._t0 = 0.0
        self.samples: list[Sample] = []

    def _cpu_now(self, procs: Sequence[psutil.Process]) -> None:
        for proc in procs:
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total = times.user + times.system
            self._base.setdefault(proc.pid, total if self._t0 == 0.0 else 0.0)
            self._last[proc.pid] = total

    def _take(self) -> Sample:
        procs = list(self._processes())
        self._cpu_now(procs)
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
                pss = None
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        cpu_s = sum(self._last[p] - self._base.get(p, 0.0) for p in self._last)
        return Sample(t_s=time.monotonic() - self._t0, cpu_s=cpu_s, rss_mb=rss / MB,
                      pss_mb=pss / MB if pss is not None else None)

    def start(self) -> None:
        self._t0 = 0.0
        self._cpu_now(list(self._processes()))  # the window's baseline
        self._t0 = time.monotonic()
        self.samples = [self._take()]
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            sample = self._take()
            self.samples.append(sample)
            if self._on_sample is not None:
                self._on_sample(sample)

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self._take())
        first, last = self.samples[0], self.samples[-1]
        span = last.t_s - first.t_s
        pss_values = [s.pss_mb for s in self.samples if s.pss_mb is not None]
        return Usage(
            cpu_pct=100.0 * (last.cpu_s - first.cpu_s) / span if span > 0 else None,
            rss_mb=max(s.rss_mb for s in self.samples),
            pss_mb=max(pss_values) if pss_values else None,
            samples=self.samples,
        )
