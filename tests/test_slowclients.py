"""harness.loadgen.slowclients: slow clients against tests.support.longserver, a server with W
workers (a connection holds one from accept to close) and an optional header timeout."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import psutil
import pytest

from harness.errors import UnreachableError, UsageError
from harness.loadgen.slowclients import (
    MAX_SLOW_CLIENTS,
    SlowClients,
    answer_status,
    check_loopback,
)
from tests.support.longserver import LongServer

HELLO_WAIT_S = 1.0  # how long a /hello may wait before it counts as held up
HELLO_FAST_S = 0.5  # what an unblocked /hello takes at most on a shared, unpinned machine
GONE_WAIT_S = 5.0
POLL_S = 0.02


def _hello(port: int, timeout_s: float = HELLO_WAIT_S) -> bytes | None:
    """One GET /hello; its answer, or None when it did not come in ``timeout_s``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return data
    except TimeoutError:
        return None


def _client_sockets(port: int) -> list[object]:
    """Established connections to ``port`` on this machine, client side (any process)."""
    return [c for c in psutil.net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]


def _eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GONE_WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(POLL_S)


def _all_closed(slow: SlowClients, server: LongServer) -> None:
    pid = slow.pid
    assert pid is not None
    _eventually(lambda: not psutil.pid_exists(pid)
                or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                "the slow clients' process ended")
    _eventually(lambda: not _client_sockets(server.port), "no client socket left")
    _eventually(lambda: server.open_connections == 0, "the server saw every connection close")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.0.1", "localhost", "LOCALHOST", "::1",
                                  "[::1]"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.5", "example.com", "0.0.0.0", "::"])
def test_other_hosts_are_refused_in_one_line(host: str) -> None:
    with pytest.raises(UsageError) as info:
        SlowClients(host, 8000, 3, mode="headers", byte_interval_s=1.0, duration_s=1.0)
    message = str(info.value)
    assert "\n" not in message and repr(host) in message and "expected 127.0.0.1" in message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, "count must be"),
    ({"count": MAX_SLOW_CLIENTS + 1}, "count must be"),
    ({"mode": "write"}, "mode 'write'"),
    ({"byte_interval_s": 0.0}, "byte_interval_s must be"),
    ({"duration_s": float("inf")}, "duration_s must be"),
    ({"path": "hello"}, "path 'hello'"),
    ({"port": 0}, "port 0"),
])
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"host": "127.0.0.1", "port": 8000, "count": 3,
                               "mode": "headers", "byte_interval_s": 1.0, "duration_s": 1.0}
    args.update(kwargs)
    with pytest.raises(UsageError, match=message):
        SlowClients(**args)  # type: ignore[arg-type]


def test_answer_status() -> None:
    assert answer_status(b"HTTP/1.1 408 Request Timeout\r\n") == "408"
    assert answer_status(b"HTTP/1.0 431") == "431"
    assert answer_status(b"garbage") == "?"


@pytest.mark.e2e
def test_three_slow_header_clients_hold_three_workers() -> None:
    with LongServer(workers=3) as server:
        assert _hello(server.port) is not None
        with SlowClients("127.0.0.1", server.port, 3, mode="headers", byte_interval_s=0.1,
                         duration_s=30.0, cpus=(min(os.sched_getaffinity(0)),)) as slow:
            assert slow.opened_at_start == 3
            assert slow.pid is not None
            assert psutil.Process(slow.pid).cpu_affinity() == [min(os.sched_getaffinity(0))]
            started = time.monotonic()
            assert _hello(server.port) is None  # waited for a worker, in vain
            assert time.monotonic() - started >= HELLO_WAIT_S * 0.9
        result = slow.result
        assert result is not None
        assert (result.opened, result.held_at_end, result.closed_by_server) == (3, 3, 0)
        assert result.bytes_sent >= 3 * 5  # a byte a tick each, over a second
        _all_closed(slow, server)
        answer = _hello(server.port)  # the workers are free again
        assert answer is not None and answer.startswith(b"HTTP/1.1 200")


@pytest.mark.e2e
def test_slow_header_clients_do_not_hold_a_server_with_room() -> None:
    with LongServer(workers=1000) as server, SlowClients(
            "localhost", server.port, 3, mode="headers", byte_interval_s=0.1,
            duration_s=30.0) as slow:
        started = time.monotonic()
        answer = _hello(server.port)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < HELLO_FAST_S
        assert server.open_connections == 3
    assert slow.result is not None and slow.result.held_at_end == 3


@pytest.mark.e2e
def test_closes_by_the_server_are_counted_and_timed_and_reopened() -> None:
    with LongServer(header_timeout_s=0.3, timeout_answer=True) as server:
        with SlowClients("127.0.0.1", server.port, 3, mode="headers", byte_interval_s=0.05,
                         duration_s=1.2) as slow:
            time.sleep(1.5)  # past the duration: the clients stop by themselves
        result = slow.result
        assert result is not None
        assert result.closed_by_server >= 3 * 2, result.to_dict()
        assert result.opened == result.closed_by_server + result.held_at_end
        assert result.closed_by_server == server.state.header_timeouts
        assert result.answers == {"408": result.closed_by_server}
        held = result.held_before_close_s
        assert held["p50"] is not None and held["max"] is not None
        assert 0.3 <= held["p50"] < 0.3 + 0.1, held
        assert 1.1 <= result.duration_s < 1.2 + 0.3
        _all_closed(slow, server)


@pytest.mark.e2e
def test_slow_readers_hold_a_stream_and_read_a_byte_a_tick() -> None:
    with LongServer() as server:
        with SlowClients("127.0.0.1", server.port, 2, mode="read", byte_interval_s=0.05,
                         duration_s=1.0, path="/stream?events=1000&interval_ms=1") as slow:
            time.sleep(1.2)
            assert server.state.streams_started == 2
        result = slow.result
        assert result is not None
        assert (result.held_at_end, result.closed_by_server) == (2, 0), result.to_dict()
        # a byte every 50 ms for a second, each
        assert 2 * 10 <= result.bytes_read <= 2 * 21, result.to_dict()
        _all_closed(slow, server)


@pytest.mark.e2e
def test_everything_is_closed_after_an_exception_or_ctrl_c() -> None:
    with LongServer(workers=3) as server:
        for error in (RuntimeError, KeyboardInterrupt):
            slow = SlowClients("127.0.0.1", server.port, 3, mode="headers",
                               byte_interval_s=0.1, duration_s=30.0)
            with pytest.raises(error), slow:
                assert len(_client_sockets(server.port)) == 3
                raise error("in the middle of a trial")
            assert slow.result is not None and slow.result.held_at_end == 3
            _all_closed(slow, server)


@pytest.mark.e2e
def test_a_server_that_is_not_there_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    with pytest.raises(UnreachableError, match="could not open any connection"):
        SlowClients("127.0.0.1", port, 2, mode="headers", byte_interval_s=0.1,
                    duration_s=1.0).start()
