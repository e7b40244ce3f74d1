"""``harness load``: bad input is one line and exit 2; output; Ctrl-C reaps the generators."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from harness.ports import free_port
from tests.runhelpers import start_test_server

# every test runs the harness CLI in a subprocess, most against the test server
pytestmark = pytest.mark.e2e


def _harness(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    proc, base = start_test_server()
    yield base + "hello"
    proc.kill()
    proc.wait(5)


@pytest.mark.parametrize("args", [
    ["--rate", "0"],
    ["--rate", "-10"],
    [],
    ["--rate", "5", "--concurrency", "2"],
    ["--concurrency", "2", "--header", "nonsense"],
    ["--concurrency", "2", "--procs", "0"],
    ["--concurrency", "2", "--mix", "heavy=x:/cpu"],
    ["--concurrency", "2", "--mix", "5/cpu"],
    ["--concurrency", "2", "--mix", "a=1:/a", "--mix", "a=1:/b"],
])
def test_bad_options(url: str, args: list[str]) -> None:
    done = _harness("load", url, "--duration", "1s", *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("target", ["not-a-url", "https://127.0.0.1:1/", "ftp://127.0.0.1/",
                                    "http://127.0.0.1:99999/", "CLOSED",
                                    "http://no-such-host.invalid/"])
def test_bad_targets(target: str) -> None:
    if target == "CLOSED":
        target = f"http://127.0.0.1:{free_port()}/"
    done = _harness("load", target, "--concurrency", "1", "--duration", "1s")
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


@pytest.mark.e2e
def test_json_output(url: str) -> None:
    done = _harness("load", url, "--rate", "100", "--duration", "1s", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["requests"] == 100 and data["offered_rps"] == 100.0
    assert data["errors"]["total"] == 0
    assert data["service_time_ms"]["p99"] is not None
    assert data["series"][0]["second"] == 0


def test_mix_json_has_each_kind(url: str) -> None:
    done = _harness("load", url, "--rate", "100", "--duration", "1s", "--json",
                    "--mix", "a=3:/hello", "--mix", "b=1:/other")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    kinds = data["kinds"]
    assert set(kinds) == {"a", "b"}
    assert kinds["a"]["requests"] + kinds["b"]["requests"] == data["requests"] == 100
    # 3:1 is exact over each cycle of 1,000; 100 requests are a shuffled part of one
    assert 60 <= kinds["a"]["requests"] <= 90, kinds


@pytest.mark.e2e
def test_human_output(url: str) -> None:
    done = _harness("load", url, "-c", "4", "-d", "1s", "--expect-body", "nope")
    assert done.returncode == 0, done.stderr
    for needle in ("Requests/sec:", "99.99%", "Errors:", "body", "Generator CPU"):
        assert needle in done.stdout, done.stdout


@pytest.mark.e2e
def test_ctrl_c_reaps_generators(url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "load", url, "-c", "4",
                             "-d", "30s", "--procs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        children: list[psutil.Process] = []
        while len(children) < 2:  # both generator processes are up
            assert time.monotonic() < deadline, "generators never started"
            children = [c for c in parent.children(recursive=True)
                        if "multiprocessing" in " ".join(c.cmdline())
                        and "resource_tracker" not in " ".join(c.cmdline())]
            time.sleep(0.05)
        time.sleep(1.0)  # let the load begin
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
