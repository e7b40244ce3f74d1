"""How fast the server's CPU ran during a trial (harness.cpuspeed): a host that slows a guest's
CPU shows no steal, so a probe on it times a fixed piece of work."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from harness.cpuspeed import BASELINE_TRIALS, MIN_READINGS, CpuSpeed
from harness.noise import SLOW_CPU_FACTOR, Noise

MS = 1_000_000
READY_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0


def _window(speed: CpuSpeed, start_s: int, spent_ms: float, n: int = 10) -> float | None:
    """``n`` readings of ``spent_ms`` in the second starting at ``start_s``; its slowdown."""
    for i in range(n):
        speed.add_reading(start_s * 1000 * MS + i * 50 * MS, int(spent_ms * MS))
    return speed.slowdown(start_s * 1000 * MS, start_s * 1000 * MS + 999 * MS)


def test_a_slow_stretch_stands_out_against_the_recent_pace() -> None:
    speed = CpuSpeed([0])
    for i in range(MIN_READINGS):  # the machine before any load: the first trial's baseline
        speed.add_reading(i * MS, 2 * MS)
    for second in range(1, 6):
        assert _window(speed, second, 2.0) == pytest.approx(1.0)
    slowed = _window(speed, 6, 3.8)
    assert slowed == pytest.approx(1.9)
    assert Noise(others_cpu_pct=0.0, steal_pct=0.0, cpu_slowdown=slowed).busy
    # one slow trial does not move the baseline the next is judged against
    assert _window(speed, 7, 2.0) == pytest.approx(1.0)


def test_a_lasting_change_of_pace_becomes_the_new_baseline() -> None:
    """The reference VM's probe took 1.9 ms through one run and 0.9 ms through the next: a run
    in a slow hour is not flagged from end to end, only its outliers are."""
    speed = CpuSpeed([0])
    assert _window(speed, 0, 1.0) is None  # nothing before it: the next ones have a baseline
    for second in range(1, 4):
        _window(speed, second, 1.0)
    changed = [_window(speed, 10 + k, 1.9) for k in range(BASELINE_TRIALS + 1)]
    first = changed[0]
    assert first is not None and first == pytest.approx(1.9) and first > SLOW_CPU_FACTOR
    assert changed[-1] == pytest.approx(1.0)


def test_too_few_readings_say_nothing() -> None:
    speed = CpuSpeed([0])
    assert _window(speed, 0, 2.0, n=MIN_READINGS - 1) is None
    # no reading before the first window: no baseline yet
    assert CpuSpeed([0]).slowdown(0, 10**12) is None


# the probe in a real subprocess: out of the fast tier
@pytest.mark.e2e
def test_the_probe_reports_from_its_cpu_and_stops_with_the_run() -> None:
    with CpuSpeed([0]) as speed:
        pids = speed.pids
        assert len(pids) == 1
        start = time.monotonic_ns()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(speed.readings(start, time.monotonic_ns())) < MIN_READINGS:
            assert time.monotonic() < deadline, "the probe reported nothing"
            time.sleep(0.05)
        spent = speed.readings(start, time.monotonic_ns())
        assert all(0 < ns < 1000 * MS for ns in spent), spent
        assert psutil.Process(pids[0]).cpu_affinity() == [0]  # pinned before its first report
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)


@pytest.mark.e2e
def test_the_probe_exits_when_whoever_reads_it_is_gone() -> None:
    """Nothing survives a run: a harness killed outright leaves its probe a closed pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cpuspeed", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert len(proc.stdout.readline().split()) == 2
        proc.stdout.close()
        assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

