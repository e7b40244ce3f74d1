"""Helpers for tests that run the real harness CLI in a subprocess."""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from harness.loadgen import LoadResult, LoadSpec

# the repository's root: the test server runs from it (python -m tests.support.testserver)
REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.05


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def start_harness(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(harness_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, "COLUMNS": "160"})


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             proc: subprocess.Popen[str] | None = None) -> None:
    """Poll until ``predicate`` holds; fail with ``what`` (and the harness's output) if not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"harness exited {proc.returncode} before {what}:\n{out}\n{err}")
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def all_gone(pids: list[int]) -> bool:
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return not alive


BURNER_START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def burner_outside_the_harness(pid_file: Path, seconds: float) -> Iterator[int]:
    """A process spinning a CPU for ``seconds`` that is not a descendant of this one (its shell
    exits at once, orphaning it), as another tenant would; killed on exit. Yields its pid."""
    burn = f"import os,time; open({str(pid_file)!r},'w').write(str(os.getpid())); " \
           f"end=time.time()+{seconds}\nwhile time.time()<end: pass"
    subprocess.run(["sh", "-c", f"{sys.executable} -c \"{burn}\" >/dev/null 2>&1 &"],
                   check=True, timeout=10)
    deadline = time.monotonic() + BURNER_START_TIMEOUT_S
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the burner did not start"
        time.sleep(POLL_S)
    pid = int(pid_file.read_text())
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


GROUP_STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 10.0


def stop_group(process: subprocess.Popen[bytes], timeout_s: float = GROUP_STOP_TIMEOUT_S) -> None:
    """TERM, then KILL the process group of a test's server (started with a new session):
    no worker outlives the test."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def http_get(base_url: str, path: str, timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int, bytes]:
    """GET ``path`` from ``http://host:port``: (status, body)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                      timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


TEST_SERVER_READY_TIMEOUT_S = 10.0
TEST_SERVER_LIFETIME_S = 120  # the test server ends by itself even if a test forgets it


def start_test_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``tests.support.testserver`` with ``args``; return it and its base URL once it
    accepts connections (it prints its port once it listens). It runs from the repository's
    root, where ``python -m`` finds the ``tests`` package."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.testserver", "--port", "0",
                             "--lifetime-s", str(TEST_SERVER_LIFETIME_S), *args],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    port = int(line.split()[1])
    deadline = time.monotonic() + TEST_SERVER_READY_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "test server never accepted"
            time.sleep(POLL_S)
    return proc, f"http://127.0.0.1:{port}/"


class FunctionDriver:
    """A driver whose measure is a test's function (to kill a server between trials, or to
    fail as a crashed generator would)."""

    name = "function"

    def __init__(self, measure: Callable[[LoadSpec], LoadResult]) -> None:
        self._measure = measure

    def measure(self, spec: LoadSpec) -> LoadResult:
        return self._measure(spec)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def supports(self, spec: LoadSpec) -> str | None:
        return None
