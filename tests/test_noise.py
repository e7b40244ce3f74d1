"""What else used the machine during a trial (issue 13): CPU outside the harness is seen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.noise import BUSY_OTHERS_PCT, SLOW_CPU_FACTOR, Noise, NoiseProbe
from tests.runhelpers import burner_outside_the_harness

BUSY_S = 1.5


# a process burning a CPU for seconds, measured on the real machine: out of the fast tier
@pytest.mark.e2e
def test_a_process_outside_the_harness_shows_as_others(tmp_path: Path) -> None:
    with burner_outside_the_harness(tmp_path / "pid", BUSY_S + 3):
        probe = NoiseProbe()
        probe.start()
        time.sleep(BUSY_S)
        noise = probe.stop()
    # one busy core outside the harness (it shares the machine with whatever else runs)
    assert noise.others_cpu_pct > 40.0, noise
    assert noise.busy and noise.others_cpu_pct > BUSY_OTHERS_PCT
    assert "processes outside the harness used" in noise.note()


def test_a_cpu_slower_than_its_pace_is_a_busy_machine_that_steal_does_not_show() -> None:
    quiet = Noise(others_cpu_pct=0.0, steal_pct=0.0, cpu_slowdown=1.05)
    assert not quiet.busy
    slowed = Noise(others_cpu_pct=0.0, steal_pct=0.0, cpu_slowdown=SLOW_CPU_FACTOR + 0.6)
    assert slowed.busy and slowed.slowed
    assert slowed.note() == ("busy machine: the server's CPU ran 1.9x slower than its recent "
                             "pace (a fixed probe on it, timed in its own CPU time) during the "
                             "trial")
    both = Noise(others_cpu_pct=50.0, steal_pct=0.0, cpu_slowdown=2.0)
    assert "processes outside the harness used 50%" in both.note() and "2.0x" in both.note()
    assert not Noise(others_cpu_pct=0.0, steal_pct=0.0).busy  # not probed: not flagged
