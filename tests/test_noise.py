"""What else used the machine during a trial (issue 13): CPU outside the harness is seen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.noise import BUSY_OTHERS_PCT, SLOW_CPU_FACTOR, Noise, NoiseProbe

BUSY_S = 1.5


def test_a_process_outside_the_harness_shows_as_others(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # an orphan (its shell exits at once), so it is not a descendant of this process
    burn = f"import os,time; open({str(pid_file)!r},'w').write(str(os.getpid())); " \
           f"end=time.time()+{BUSY_S + 3}\nwhile time.time()<end: pass"
    subprocess.run(["sh", "-c", f"{sys.executable} -c \"{burn}\" >/dev/null 2>&1 &"],
                   check=True, timeout=10)
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the burner did not start"
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    try:
        probe = NoiseProbe()
        probe.start()
        time.sleep(BUSY_S)
        noise = probe.stop()
    finally:
        os.kill(pid, signal.SIGKILL)
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
