"""The local backend with real servers: start pinned, answer, stop, and leave nothing behind.

Nothing survives a target: not a normal stop, not Ctrl-C in the harness, not a SIGKILLed
harness (the watchdog kills the group). Each check polls with a deadline; nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from harness import catalogue, processes
from harness.backends import base
from harness.backends.local import RunningServer, start_target, start_upstream
from harness.catalogue import REPO_DIR, get_server, make_target
from harness.cpus import allocate_for_server
from harness.errors import TargetError, UsageError
from harness.ports import free_port
from harness.signals import interrupts_deferred
from tests.runhelpers import http_get

pytestmark = pytest.mark.e2e

CPUS = allocate_for_server(None).server
UPSTREAM_CPUS = allocate_for_server(None).loadgen
GONE_TIMEOUT_S = 15.0
POLL_S = 0.02


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_S)


def running(pids: list[int]) -> list[int]:
    """The pids still running (a zombie has exited: it only waits for its parent)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def group_members(pgid: int) -> list[int]:
    return [p.pid for p in processes._group_members(pgid)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningServer]:
    with start_upstream(UPSTREAM_CPUS) as up:
        yield up


def test_upstream_is_pinned_and_answers(upstream: RunningServer) -> None:
    assert upstream.url.startswith("http://127.0.0.1:") and upstream.port > 0
    assert http_get(upstream.url, "/delay?ms=0") == (200, b"OK")
    assert all(tuple(p.cpu_affinity()) == UPSTREAM_CPUS for p in upstream.processes())
    assert upstream.alive()


def listen_backlogs(port: int) -> list[int] | None:
    """Backlogs of the sockets listening on ``port`` (ss shows them as Send-Q), or None
    where ss is missing."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    out = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return [int(line.split()[2]) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("name", list(catalogue.SERVERS))
def test_each_server_starts_pinned_verifies_and_leaves_nothing(
        name: str, upstream: RunningServer) -> None:
    from harness.verify import verify_target

    server = get_server(name)
    target = make_target(server, cpus=len(CPUS))
    srv = start_target(target, cpus=CPUS, upstream_url=upstream.url)
    try:
        assert srv.alive() and srv.url == f"http://127.0.0.1:{srv.port}"
        assert srv.command == catalogue.render_command(target, port=srv.port)
        tree = srv.processes()
        assert tree and tree[0].pid == srv.pid
        # every process of the target (workers inherit it) runs on the server CPUs only
        for proc in tree:
            assert tuple(proc.cpu_affinity()) == CPUS, (proc.pid, proc.cmdline())
            assert os.getpgid(proc.pid) == srv.pgid
        report = verify_target(srv.url, websocket=server.websocket, io=True)
        assert report.ok, report.summary()
        backlogs = listen_backlogs(srv.port)
        if backlogs is not None:  # every server queues the same number of waiting clients
            assert backlogs and set(backlogs) == {catalogue.listen_backlog()}, backlogs
        pids = [p.pid for p in srv.processes()]
    finally:
        srv.stop()
    assert srv.leftovers == []
    assert not running(pids), f"{name}: {running(pids)} still running after stop()"
    assert group_members(srv.pgid) == []
    # TERM was enough: the server shut down by itself, not by the KILL fallback
    assert srv.returncode not in (None, -signal.SIGKILL)
    assert not srv.alive()
    srv.stop()  # idempotent


def test_processes_is_the_whole_tree_and_death_is_reported() -> None:
    target = make_target(get_server("gunicorn-sync"), cpus=1, workers=2)
    with start_target(target, cpus=CPUS) as srv:
        wait_until(lambda: len(srv.processes()) == 3, 10, "master + 2 workers")
        assert {p.ppid() for p in srv.processes()[1:]} == {srv.pid}
        psutil.Process(srv.pid).kill()
        wait_until(lambda: not srv.alive(), 5, "the master to die")
        reason = srv.exit_reason()
        assert "gunicorn-sync exited (killed by SIGKILL)" in reason
        assert srv.processes() == []
    assert group_members(srv.pgid) == []


def test_port_taken_uses_another_free_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        with start_target(make_target(get_server("uvicorn")), cpus=CPUS, port=taken) as srv:
            assert srv.port != taken
            assert any(n.startswith("Port taken") and str(taken) in n for n in srv.notes)
            assert http_get(srv.url, "/hello")[0] == 200


def test_a_requested_free_port_is_used() -> None:
    port = free_port()
    with start_target(make_target(get_server("uvicorn")), cpus=CPUS, port=port) as srv:
        assert srv.port == port and srv.notes == []


def _fake(command: tuple[str, ...]) -> catalogue.Target:
    server = dataclasses.replace(get_server("uvicorn"), name="fake", command=command,
                                 extra_distributions=())
    return make_target(server)


def test_a_server_that_exits_is_a_target_error_with_its_output() -> None:
    target = _fake(("{python}", "-c", "import sys; print('boom: bad config'); sys.exit(3)"))
    with pytest.raises(TargetError) as info:
        start_target(target, cpus=CPUS)
    assert "fake exited (exit code 3)" in str(info.value)
    assert "boom: bad config" in str(info.value)


def test_a_server_that_never_answers_times_out_and_is_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "READY_TIMEOUT_S", 0.5)
    target = _fake(("{python}", "-c", "import time; print('sleeping', flush=True); "
                    "time.sleep(60)"))
    started: list[RunningServer] = []
    real_init = RunningServer.__init__

    def spy(self: RunningServer, **kwargs: object) -> None:
        real_init(self, **kwargs)  # type: ignore[arg-type]
        started.append(self)

    monkeypatch.setattr(RunningServer, "__init__", spy)
    with pytest.raises(TargetError, match=r"(?s)did not answer GET /hello with a 2xx status on "
                       r"http://127.0.0.1:\d+ within 0.5s.*sleeping"):
        start_target(target, cpus=CPUS)
    assert started and not started[0].alive()
    assert running([started[0].pid]) == []


def test_missing_package_fails_before_anything_starts() -> None:
    server = dataclasses.replace(get_server("hypercorn"), distribution="no-such-server-dist")
    with pytest.raises(catalogue.MissingPackageError, match="no-such-server-dist"):
        start_target(make_target(server), cpus=CPUS)


# A harness stand-in: starts a target, prints the pids of its whole tree, then waits.
_HOLDER = textwrap.dedent("""
    import json, sys, time
    from harness.backends.local import start_target
    from harness.catalogue import get_server, make_target
    name, workers, expected, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    target = make_target(get_server(name), cpus=1,
                         workers=int(workers) if workers != "-" else None)
    srv = start_target(target, cpus=(cpu,))
    deadline = time.monotonic() + 20
    while len(srv.processes()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    print(json.dumps({"pgid": srv.pgid, "watchdog": srv._watchdog.pid,
                      "pids": [p.pid for p in srv.processes()], "log": str(srv.log_path)}),
          flush=True)
    sys.stdin.read()
""")


def _start_holder(name: str, workers: int | None, expected: int,
                  ) -> tuple[subprocess.Popen[str], dict[str, object]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, name, str(workers or "-"), str(expected), str(CPUS[0])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO_DIR)
    assert holder.stdout is not None
    line = holder.stdout.readline()
    if not line:
        holder.kill()
        _, err = holder.communicate()
        raise AssertionError(f"holder failed: {err}")
    info: dict[str, object] = json.loads(line)
    return holder, info


@pytest.mark.parametrize(("name", "workers", "expected"), [
    ("gunicorn-sync", 2, 3),  # master + 2 workers
    ("uwsgi", None, 4),  # master + 3 processes
    ("granian-wsgi", 2, 3),  # master + 2 workers
    ("uvicorn", 2, 3),  # supervisor + 2 spawned workers
    ("hypercorn", 2, 3),  # master + 2 spawned workers
])
def test_sigkilled_harness_leaves_no_server_process(name: str, workers: int | None,
                                                    expected: int) -> None:
    holder, info = _start_holder(name, workers, expected)
    pids = info["pids"]
    assert isinstance(pids, list) and len(pids) >= expected, info
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        wait_until(lambda: not running(pids), GONE_TIMEOUT_S,
                   f"{name} processes {pids} to die with the harness")
        pgid = info["pgid"]
        assert isinstance(pgid, int)
        assert group_members(pgid) == []
        watchdog = info["watchdog"]
        assert isinstance(watchdog, int)
        wait_until(lambda: not running([watchdog]), GONE_TIMEOUT_S, "the watchdog to exit")
        assert not os.path.exists(str(info["log"]))  # the watchdog removed the log too
    finally:
        for pid in running(pids):  # leave nothing even when the test fails
            os.kill(pid, signal.SIGKILL)
        if holder.poll() is None:
            holder.kill()
        holder.communicate()


def test_ctrl_c_in_the_harness_stops_the_server_cleanly() -> None:
    holder, info = _start_holder("gunicorn-sync", 2, 3)
    pids = info["pids"]
    assert isinstance(pids, list)
    try:
        holder.send_signal(signal.SIGINT)
        _, err = holder.communicate(timeout=20)
        assert "KeyboardInterrupt" in err
        # the atexit hook stopped it (TERM first): nothing left, well before the watchdog
        assert not running(pids), running(pids)
        assert not os.path.exists(str(info["log"]))
    finally:
        for pid in running(pids):
            os.kill(pid, signal.SIGKILL)
        if holder.poll() is None:
            holder.kill()
            holder.communicate()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_harness_pinned_elsewhere_still_pins_the_target_to_its_cpus() -> None:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, UPSTREAM_CPUS)  # as the runner does for the load generator
    try:
        with start_target(make_target(get_server("uvicorn")), cpus=CPUS) as srv:
            assert {tuple(p.cpu_affinity()) for p in srv.processes()} == {CPUS}
    finally:
        os.sched_setaffinity(0, before)


def test_cpus_outside_the_machine_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="expected CPUs from 0"):
        start_target(make_target(get_server("uvicorn")), cpus=(os.cpu_count() or 1,))


# A server that ignores TERM: its stop takes the whole grace period, then a KILL.
_TERM_IGNORING = textwrap.dedent("""
    import http.server, signal, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
    http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Hello).serve_forever()
""")


def test_ctrl_c_during_a_stop_waits_until_the_group_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the KeyboardInterrupt cut the grace period short, and the stop's cleanup disarmed
    # the watchdog, so a server that ignores TERM outlived the harness.
    monkeypatch.setattr(processes, "STOP_GRACE_S", 1.0)
    srv = start_target(_fake(("{python}", "-c", _TERM_IGNORING, "{host}", "{port}")), cpus=CPUS)
    pids = [p.pid for p in srv.processes()]
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            srv.stop()
    finally:
        timer.cancel()
        if group_members(srv.pgid):  # the failure this test is for: do not leave it behind
            os.killpg(srv.pgid, signal.SIGKILL)
    # the interrupt arrived only after the stop had finished its work
    assert running(pids) == [] and group_members(srv.pgid) == []
    assert srv._watchdog.poll() is not None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupts_deferred_delivers_after_the_block() -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        with interrupts_deferred():  # nested: passed outwards, still held
            os.kill(os.getpid(), signal.SIGINT)
        finished = True
    assert finished
    with interrupts_deferred():  # nothing received: nothing delivered
        pass
