"""What else used the machine during a trial (issue 13): CPU outside the harness is seen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.noise import BUSY_OTHERS_PCT, NoiseProbe

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
