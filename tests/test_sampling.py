"""The sampler's window arithmetic (fake samples) and one real process tree."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import psutil
import pytest

from harness.sampling import NS_PER_S, Sample, TreeSampler, Usage, connections_by_process

S = NS_PER_S


def _usage(points: list[tuple[float, float]]) -> Usage:
    return Usage(samples=[Sample(t_ns=int(t * S), cpu_s=c, rss_mb=10.0 + t, pss_mb=5.0)
                          for t, c in points])


def test_cpu_is_interpolated_over_the_window() -> None:
    # half a CPU for two seconds, then a full CPU for two seconds
    usage = _usage([(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0)])
    assert usage.cpu_pct(0, 2 * S) == pytest.approx(50.0)
    assert usage.cpu_pct(2 * S, 4 * S) == pytest.approx(100.0)
    assert usage.cpu_pct(int(1.5 * S), int(2.5 * S)) == pytest.approx(75.0)
    assert usage.cpu_pct(3 * S, 3 * S) is None


def test_per_second_rows_and_peaks() -> None:
    usage = _usage([(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0)])
    rows = usage.per_second(1 * S, 2)
    assert [r["cpu_pct"] for r in rows] == [pytest.approx(50.0), pytest.approx(100.0)]
    assert usage.peak_mb(0, 1 * S) == (11.0, 5.0)


SPIN_S = 3  # the spinning child ends by itself after this
WINDOW_S = 1.0


def _sample_while_spinning(
        make: Callable[[psutil.Process], TreeSampler], cpu: int | None = None,
) -> tuple[Usage, int, int]:
    """Spin one child process (pinned to ``cpu`` if given) and sample it for WINDOW_S; return
    the usage and the window."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    busy = subprocess.Popen([*pin, sys.executable, "-c",
                             f"import time\nt=time.time()\nwhile time.time()-t<{SPIN_S}: pass"])
    try:
        sampler = make(psutil.Process(busy.pid))
        sampler.start()
        t0 = time.monotonic_ns()
        deadline = time.monotonic() + WINDOW_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
        t1 = time.monotonic_ns()
        usage = sampler.stop()
    finally:
        busy.kill()
        busy.wait()
    return usage, t0, t1


# spinning child processes, sampled on the real machine: out of the fast tier
@pytest.mark.e2e
def test_real_busy_child_is_measured() -> None:
    usage, t0, t1 = _sample_while_spinning(lambda proc: TreeSampler(lambda: [proc],
                                                                    interval_s=0.1))
    cpu = usage.cpu_pct(t0, t1)
    assert cpu is not None and 30.0 < cpu <= 110.0  # one spinning process: about one CPU
    rss, pss = usage.peak_mb(t0, t1)
    assert rss is not None and rss > 1.0
    assert pss is not None and 0.0 < pss <= rss


def test_watched_cpus_busy_share_over_a_window() -> None:
    # the generator's CPU: 2 s at 50 % busy, then 2 s at 95 % busy (upstream and generator)
    samples = [Sample(t_ns=int(t * S), cpu_s=0.0, rss_mb=1.0, pss_mb=None,
                      cpus_busy_s=busy, cpus_total_s=float(t))
               for t, busy in [(0, 0.0), (2, 1.0), (4, 2.9)]]
    usage = Usage(samples=samples)
    assert usage.watched_busy_pct(0, 2 * S) == pytest.approx(50.0)
    assert usage.watched_busy_pct(2 * S, 4 * S) == pytest.approx(95.0)
    assert usage.watched_busy_pct(S, 3 * S) == pytest.approx(72.5)


@pytest.mark.e2e
def test_a_busy_watched_cpu_is_seen() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    usage, t0, t1 = _sample_while_spinning(
        lambda _: TreeSampler(lambda: [], interval_s=0.1, watch_cpus=[cpu]), cpu)
    share = usage.watched_busy_pct(t0, t1)
    assert share is not None and share > 80.0  # a spinning process keeps its CPU busy


# A supervisor that listens and never accepts, and two workers that accept on its socket (the
# pre-fork model of gunicorn and uWSGI), as real processes on a real loopback socket.
_WORKER = """
import socket, sys, time
listener = socket.socket(fileno=int(sys.argv[1]))
held = []
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        held.append(listener.accept()[0])
    except BlockingIOError:
        time.sleep(0.01)
"""
_SUPERVISOR = """
import os, socket, subprocess, sys, time
listener = socket.create_server(("127.0.0.1", 0))
listener.setblocking(False)
workers = [subprocess.Popen([sys.executable, "-c", sys.argv[1], str(listener.fileno())],
                            pass_fds=[listener.fileno()]) for _ in range(2)]
print(listener.getsockname()[1], flush=True)
time.sleep(30)
"""
CENSUS_CLIENTS = 6
CENSUS_WAIT_S = 10.0


def _samples_past(sampler: TreeSampler, seconds: float) -> Usage:
    """Run ``sampler`` until it has sampled ``seconds`` after its start (bounded)."""
    sampler.start()
    first = sampler.samples[0].t_ns
    deadline = time.monotonic() + CENSUS_WAIT_S
    while sampler.samples[-1].t_ns - first < seconds * S and time.monotonic() < deadline:
        time.sleep(0.05)
    return sampler.stop()


@pytest.mark.e2e
def test_census_counts_each_workers_connections_and_leaves_the_supervisor_out() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", _SUPERVISOR, _WORKER],
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
    clients: list[socket.socket] = []
    try:
        assert supervisor.stdout is not None
        port = int(supervisor.stdout.readline())
        leader = psutil.Process(supervisor.pid)

        def tree() -> list[psutil.Process]:
            return [leader, *leader.children(recursive=True)]

        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CENSUS_CLIENTS)]
        # the workers accept asynchronously: count until all six are held (bounded)
        deadline = time.monotonic() + CENSUS_WAIT_S
        counts = connections_by_process(tree(), port)
        while sum(counts) < CENSUS_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = connections_by_process(tree(), port)
        assert sum(counts) == CENSUS_CLIENTS
        assert len(counts) == 2  # the two workers; the supervisor only listens
        assert list(counts) == sorted(counts, reverse=True)

        census = TreeSampler(tree, interval_s=0.05, census_port=port, census_after_s=0.1)
        assert _samples_past(census, 0.3).connections_by_process == counts
        # no port: no census
        assert _samples_past(TreeSampler(tree, interval_s=0.05), 0.3
                             ).connections_by_process is None
    finally:
        for client in clients:
            client.close()
        os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
