"""``/cpu?offload=inline|thread|process`` (apps/README.md, "CPU work offloaded"): the parsing and
the env default in apps/raw/common.py, each raw app in-process, and the process pool behind real
ASGI servers (the same body, and no pool process left once the server is gone)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from wsgiref.util import setup_testing_defaults

import psutil
import pytest

from apps.raw import asgi, common, offload, wsgi
from harness.backends import local
from harness.backends.local import RunningServer
from harness.catalogue import APPS, get_server, make_target
from harness.verify import verify_target
from tests.test_frameworks import fetch

SERVER_CPUS = (1,)
N = 5000
EXPECTED = common.cpu_body(N, common.cpu_work(N))
BAD_OFFLOAD = b"Bad Request: offload must be 'inline', 'thread' or 'process'"
STOP_TIMEOUT_S = 15.0
# A pool process whose worker was killed notices within PARENT_POLL_S; the rest is slack for a
# busy machine.
ORPHAN_EXIT_S = offload.PARENT_POLL_S + 4.0

Message = MutableMapping[str, Any]


# ---------------------------------------------------------------- parsing (no servers)

def test_offload_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.CPU_OFFLOAD_ENV, raising=False)
    parse = common.parse_cpu_request
    assert parse("n=5") == common.CpuRequest(n=5, offload="inline")
    for name in ("inline", "thread", "process"):
        assert parse(f"n=5&offload={name}") == common.CpuRequest(n=5, offload=name)
    assert parse("offload=process&n=7&offload=bogus") == common.CpuRequest(n=7, offload="process")
    assert common.BAD_OFFLOAD.body == BAD_OFFLOAD and common.BAD_OFFLOAD.status == 400
    for query in ("n=5&offload=bogus", "n=5&offload=", "n=5&offload=Thread",
                  "n=5&offload=thread%20"):
        assert parse(query) is common.BAD_OFFLOAD, query
    # n is checked first, as every route checks its parameters in the contract's order
    assert parse("n=-1&offload=bogus") == common.bad_request("n must be an integer 0..1000000")
    assert common.route("GET", "/cpu", "n=5&offload=thread") == common.CpuRequest(
        n=5, offload="thread")
    assert common.cpu_response("n=5&offload=process").body == common.cpu_body(
        5, common.cpu_work(5))
    assert common.cpu_response("n=5&offload=x") is common.BAD_OFFLOAD


def test_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.CPU_OFFLOAD_ENV, "process")
    assert common.parse_cpu_request("n=1") == common.CpuRequest(n=1, offload="process")
    assert common.parse_cpu_request("n=1&offload=inline") == common.CpuRequest(
        n=1, offload="inline")
    monkeypatch.setenv(common.CPU_OFFLOAD_ENV, " ")
    assert common.default_cpu_offload() == "inline"
    monkeypatch.setenv(common.CPU_OFFLOAD_ENV, "threads")  # a typo is refused, never inline
    with pytest.raises(ValueError, match="HARNESS_CPU_OFFLOAD='threads'"):
        common.default_cpu_offload()


def test_offload_families() -> None:
    for name, offload_name in (("raw-thread", "thread"), ("raw-process", "process")):
        family = APPS[name]
        assert family.modules == {"asgi": "apps.raw.asgi:app"}, name
        assert family.env == {common.CPU_OFFLOAD_ENV: offload_name}, name
        assert family.groups == ("offload",) and family.description, name
    assert "offload" in APPS["raw"].groups  # the baseline the offloads are compared with
    assert common.CPU_OFFLOAD_ENV not in APPS["raw"].env


# ---------------------------------------------------------------- each app in-process

def _wsgi_get(query: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/cpu",
                               "QUERY_STRING": query}
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)

    body = b"".join(wsgi.app(environ, start_response))
    return status[0], body


def test_wsgi_runs_every_offload_inline() -> None:
    for name in common.CPU_OFFLOADS:
        assert _wsgi_get(f"n={N}&offload={name}") == ("200 OK", EXPECTED)
    assert _wsgi_get(f"n={N}&offload=bogus") == ("400 Bad Request", BAD_OFFLOAD)


async def _asgi_get(query: str) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/cpu",
             "query_string": query.encode(), "headers": []}
    await asgi.app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_asgi_inline_and_thread_in_process() -> None:
    async def main() -> list[tuple[int, bytes]]:
        return [await _asgi_get(f"n={N}&offload={name}") for name in ("inline", "thread")] + [
            await _asgi_get(f"n={N}&offload=nope")]
    assert asyncio.run(main()) == [(200, EXPECTED), (200, EXPECTED), (400, BAD_OFFLOAD)]


def test_a_framework_passes_its_own_thread_runner() -> None:
    used: list[int] = []

    async def in_thread(n: int) -> int:
        used.append(n)
        return common.cpu_work(n)

    async def main() -> common.Response:
        return await offload.cpu_answer(common.CpuRequest(n=3, offload="thread"),
                                        in_thread=in_thread)
    assert asyncio.run(main()).body == common.cpu_body(3, common.cpu_work(3)) and used == [3]


# ---------------------------------------------------------------- real servers

def _pool_processes(server: RunningServer) -> list[psutil.Process]:
    """The server's multiprocessing children: the pool's processes and the resource tracker."""
    found = []
    for proc in server.processes()[1:]:
        try:
            if "multiprocessing" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _alive(processes: list[psutil.Process]) -> list[int]:
    return [p.pid for p in processes
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(processes)


@contextmanager
def _raw_process_on(server: str) -> Iterator[RunningServer]:
    target = make_target(get_server(server), app="raw-process", cpus=len(SERVER_CPUS))
    with local.start_target(target, cpus=SERVER_CPUS) as running:
        yield running


@pytest.mark.e2e
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "daphne"])
def test_process_pool_answers_alike_and_stops_with_the_server(server: str) -> None:
    """uvicorn sends lifespan (the pool starts with the server), hypercorn runs daemonic
    worker processes (which multiprocessing forbids children unless the app allows them),
    daphne sends no lifespan (the pool starts on first use, ends at exit)."""
    with _raw_process_on(server) as running:
        if server != "daphne":
            assert _pool_processes(running), "no pool process after lifespan startup"
        for name in common.CPU_OFFLOADS:
            answer = fetch(running.url, "GET", f"/cpu?n={N}&offload={name}")
            assert (answer.status, answer.body) == (200, EXPECTED), name
        answer = fetch(running.url, "GET", f"/cpu?n={N}")  # HARNESS_CPU_OFFLOAD=process
        assert (answer.status, answer.body) == (200, EXPECTED)
        assert fetch(running.url, "GET", f"/cpu?n={N}&offload=bogus").body == BAD_OFFLOAD
        pool = _pool_processes(running)
        assert pool
        # TERM to the server's own process, not its group: the app must end its pool itself.
        running.send_stop_signal()
        assert running.wait_exited(STOP_TIMEOUT_S), running.exit_reason()
        assert _wait_gone(pool, 1.0) == [], f"{server} left its pool processes"


@pytest.mark.e2e
def test_pool_processes_die_with_a_killed_worker() -> None:
    with _raw_process_on("uvicorn") as running:
        pool = _pool_processes(running)
        assert pool
        os.kill(running.pid, signal.SIGKILL)  # no lifespan shutdown, no exit hooks
        assert _wait_gone(pool, ORPHAN_EXIT_S) == []


@pytest.mark.e2e
@pytest.mark.parametrize(("family", "server"), [("raw-thread", "granian-asgi"),
                                                ("raw-process", "gunicorn-uvicorn")])
def test_offload_families_pass_the_contract(family: str, server: str) -> None:
    target = make_target(get_server(server), app=family, cpus=len(SERVER_CPUS))
    with local.start_target(target, cpus=SERVER_CPUS) as running:
        report = verify_target(running.url, websocket=True, io=False)
    assert report.ok, report.summary()
    assert {"cpu[offload=thread]", "cpu[offload=process]", "cpu_bad_offload"} <= {
        c.name for c in report.checks}
