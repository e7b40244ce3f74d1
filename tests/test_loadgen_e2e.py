"""The generator against real servers on loopback (tests.support.testserver in a subprocess)."""

from __future__ import annotations

import json
import resource
import subprocess
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from harness.loadgen import LoadResult, LoadSpec, run_load
from harness.loadgen.pool import ONE_SHOT_EVIDENCE
from harness.loadgen.spec import RequestKind
from tests.runhelpers import start_test_server

Server = Callable[..., str]

pytestmark = pytest.mark.e2e
RAW_NOTE = "opened on plain non-blocking sockets"
# How far past its delay the test server's median answer may come: its sleep's overshoot and
# loopback, unpinned on a shared machine (10.615 ms for a 10 ms delay in a CI run beside a
# Docker engine). A delay counted twice, or timed from the wrong moment, is 10 ms or more.
SERVER_OVERSHOOT_MAX_MS = 1.0


@pytest.fixture
def server() -> Iterator[Server]:
    """``server("--delay-ms", "10")`` starts a test server and returns its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc, base = start_test_server(*args)
        procs.append(proc)
        return base

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)


def _ok(result: LoadResult) -> None:
    assert result.errors["total"] == 0, result.errors
    assert set(result.errors) == {"connect", "io", "timeout", "status", "body", "total"}


def test_closed_loop_hello(server: Server) -> None:
    url = server()
    result = run_load(LoadSpec(url=url, concurrency=8, duration_s=1.0, warmup_s=0.3,
                               expect_body=b"hello"))
    _ok(result)
    assert result.requests > 1000
    assert result.latency.get_total_count() == result.requests
    assert result.offered_rps is None and result.service_time is None
    # closed loop in steady state: answered in the window ~ sent in it (differ by <= 8 in flight)
    assert abs(result.achieved_rps * 1.0 - result.requests) <= 8
    assert len(result.series) == 1 and result.series[0].requests == result.requests
    assert 0 < result.generator_cpu_pct <= 110
    data = result.to_json()
    for key in ("requests", "duration_s", "achieved_rps", "offered_rps", "errors", "latency_ms",
                "service_time_ms", "saturated", "generator_cpu_pct", "series"):
        assert key in data
    assert set(data["latency_ms"]) == {  # type: ignore[arg-type,call-overload]
        "p50", "p75", "p90", "p99", "p99_9", "p99_99", "max", "mean"}


def test_open_loop_rate_and_known_delay(server: Server) -> None:
    url = server("--delay-ms", "10")
    result = run_load(LoadSpec(url=url, rate=200.0, duration_s=1.5, warmup_s=0.3))
    _ok(result)
    assert result.offered_rps == 200.0
    assert result.requests == result.scheduled == 300
    assert result.service_time is not None
    lat = result.percentiles_ms(result.latency)
    svc = result.percentiles_ms(result.service_time)
    assert lat["p50"] is not None and svc["p50"] is not None and lat["p99"] is not None
    # the server waits 10 ms: the corrected median is that plus the test server's own
    # overshoot (what the generator adds is bounded separately, below)
    assert 10.0 <= lat["p50"] < 10.0 + SERVER_OVERSHOOT_MAX_MS, lat
    # what the generator adds to the service time stays well under a millisecond; p90, not
    # p99: at 300 samples p99 is the third-worst request, and on a shared, unpinned machine
    # one descheduling decides it (the pinned benchmark reports the p99 figures)
    assert svc["p90"] is not None and lat["p90"] is not None
    assert lat["p90"] - svc["p90"] < 1.0, (lat, svc)
    assert lat["p50"] - svc["p50"] < 0.3
    # not late by its own fault: within the 1 % a descheduling of this unpinned test may cost
    assert not result.saturated, result.saturation_reasons
    # 10 ms at 200/s needs ~2 connections in flight: the pool stays small
    assert result.peak_connections <= 16


def test_open_loop_overload_reports_what_the_server_delivered(server: Server) -> None:
    # capacity 100 req/s, offered 200 req/s: every request is answered (late) before the
    # timeout, yet throughput must be the server's 100/s, not the offered rate
    url = server("--delay-ms", "10", "--serial")
    result = run_load(LoadSpec(url=url, rate=200.0, duration_s=2.0, warmup_s=0.2,
                               timeout_s=10.0))
    _ok(result)
    assert result.offered_rps == 200.0
    assert 80.0 <= result.achieved_rps <= 110.0, result.achieved_rps
    # the latency sample still holds every request due in the window, answered late
    assert result.requests == result.scheduled == 400
    lat = result.percentiles_ms(result.latency)
    assert lat["p99"] is not None and lat["p99"] > 1000.0  # the queue grew for 2 s
    # per second too: answered at the server's pace, while the due count is the offered rate
    assert sum(p.completed for p in result.series) == result.completed
    assert [p.requests for p in result.series] == [200, 200]
    assert all(80 <= p.completed <= 110 for p in result.series), result.series


def test_stall_shows_in_corrected_latency_only(server: Server) -> None:
    # one connection, a 500 ms stall: requests queue in the generator while it lasts
    url = server("--stall-at-s", "0.8", "--stall-ms", "500")
    result = run_load(LoadSpec(url=url, rate=200.0, duration_s=2.0, max_connections=1))
    assert result.errors["total"] == 0
    assert result.service_time is not None
    corrected = result.percentiles_ms(result.latency)
    service = result.percentiles_ms(result.service_time)
    assert corrected["p99"] is not None and service["p99"] is not None
    assert corrected["p99"] > 400.0, corrected
    assert service["p99"] < 50.0, service  # only one request saw the stall on the wire
    assert result.behind > 0.01 * result.scheduled
    # its one connection was busy on the stalled server: the cap, not a late generator, so
    # the server's overload and not the generator's saturation
    assert result.behind_at_cap >= 0.9 * result.behind_generator  # a busy CPU may add a few
    assert not result.saturated, result.saturation_reasons
    assert any(r.startswith("connection cap reached") for r in result.overload_reasons), \
        result.overload_reasons
    worst = max(p.p99_ms or 0.0 for p in result.series)
    assert worst > 400.0


def test_status_errors_are_not_throughput(server: Server) -> None:
    url = server("--status", "500")
    result = run_load(LoadSpec(url=url, concurrency=4, duration_s=0.5))
    assert result.requests == 0 and result.achieved_rps == 0.0
    assert result.latency.get_total_count() == 0
    assert result.errors["status"] > 100 and result.errors["total"] == result.errors["status"]
    assert sum(p.errors for p in result.series) == result.errors["total"]


def test_wrong_body_counts_as_body_error(server: Server) -> None:
    url = server("--body", "goodbye")
    result = run_load(LoadSpec(url=url, concurrency=2, duration_s=0.5, expect_body=b"hello"))
    assert result.requests == 0
    assert result.errors["body"] > 10 and result.errors["status"] == 0


def test_closed_connections_are_io_errors(server: Server) -> None:
    url = server("--close")
    result = run_load(LoadSpec(url=url, concurrency=2, duration_s=0.5))
    assert result.requests == 0
    assert result.errors["io"] > 10


def test_server_closing_after_each_answer_is_not_an_error(server: Server) -> None:
    # uWSGI's http-socket answers HTTP/1.1 and closes without "Connection: close"; the request
    # already written on that connection got no byte back and is sent again (RFC 9112 9.3.1)
    # (or, mostly, the generator sees the close before it writes). After ONE_SHOT_EVIDENCE such
    # connections the pool opens its connections on plain sockets (rawconn), and says so.
    url = server("--close-after-answer")
    result = run_load(LoadSpec(url=url, concurrency=4, duration_s=1.0, warmup_s=0.2,
                               expect_body=b"hello"))
    _ok(result)
    assert result.requests > ONE_SHOT_EVIDENCE * 10
    assert any(RAW_NOTE in note for note in result.notes), result.notes
    # by name: the plain sockets go to the address the pool's connections reached
    opened = run_load(LoadSpec(url=url.replace("127.0.0.1", "localhost"), rate=200.0,
                               duration_s=1.0, warmup_s=0.3))
    _ok(opened)
    assert opened.requests == opened.scheduled == 200
    assert any(RAW_NOTE in note for note in opened.notes), opened.notes
    # a server that keeps connections alive never gets them
    kept = run_load(LoadSpec(url=server(), concurrency=4, duration_s=0.5))
    _ok(kept)
    assert not any(RAW_NOTE in note for note in kept.notes)


def test_plain_socket_connections_count_refused_connects_and_timeouts(server: Server) -> None:
    # the server exits mid-run: the pool is on plain sockets by then, connects are refused
    url = server("--close-after-answer", "--lifetime-s", "1.2")
    result = run_load(LoadSpec(url=url, concurrency=4, duration_s=1.5, warmup_s=0.1))
    assert any(RAW_NOTE in note for note in result.notes), result.notes
    assert result.requests > ONE_SHOT_EVIDENCE and result.errors["connect"] > 0
    # one answer held back for a second, the timeout 0.3 s: one timeout, the rest answered
    url = server("--close-after-answer", "--stall-at-s", "0.6", "--stall-ms", "1000")
    result = run_load(LoadSpec(url=url, concurrency=2, duration_s=1.0, warmup_s=0.2,
                               timeout_s=0.3))
    assert any(RAW_NOTE in note for note in result.notes), result.notes
    assert result.errors["timeout"] >= 1 and result.requests > ONE_SHOT_EVIDENCE
    assert result.errors["total"] == result.errors["timeout"]


def test_open_loop_against_one_blocking_worker_keeps_no_idle_connections(
        server: Server) -> None:
    # A sync worker that accepts a spare, idle connection blocks on it while the due request
    # waits on another: the generator must open connections only for requests that need one.
    url = server("--blocking", "--delay-ms", "2")
    result = run_load(LoadSpec(url=url, rate=50.0, duration_s=2.0, warmup_s=0.5,
                               timeout_s=5.0))
    _ok(result)
    assert result.requests == result.scheduled == 100
    svc = result.percentiles_ms(result.service_time)
    # 2 ms of work per request at 50 req/s: the worker is idle 90 % of the time
    assert svc["p50"] is not None and svc["p50"] < 20.0, svc


def test_server_gone_gives_io_and_connect_errors(server: Server) -> None:
    url = server("--lifetime-s", "0.6")  # the server exits (refusing connections) mid-run
    result = run_load(LoadSpec(url=url, concurrency=4, duration_s=1.2))
    assert result.requests > 0
    assert result.errors["connect"] > 0
    assert result.errors["total"] == sum(
        result.errors[k] for k in ("connect", "io", "timeout", "status", "body"))


def test_timeouts(server: Server) -> None:
    url = server("--delay-ms", "2000")
    result = run_load(LoadSpec(url=url, rate=20.0, duration_s=0.5, timeout_s=0.2))
    assert result.requests == 0
    assert result.errors["timeout"] == 10


def test_two_processes_merge(server: Server) -> None:
    url = server()
    result = run_load(LoadSpec(url=url, rate=400.0, duration_s=1.0, procs=2, cpus=(0,)))
    _ok(result)
    assert result.procs == 2 and len(result.generator_proc_cpu_pct) == 2
    assert result.requests == 400
    assert result.series[0].requests == 400


TEN_THOUSAND = 10_000


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < TEN_THOUSAND + 256,
                    reason="the open-file hard limit is below 10,000 connections")
def test_holds_ten_thousand_connections(server: Server) -> None:
    url = server()  # it raises its own open-file limit, as the generator does
    result = run_load(LoadSpec(url=url, concurrency=TEN_THOUSAND, duration_s=1.0,
                               warmup_s=1.0, timeout_s=10.0))
    _ok(result)
    assert result.peak_connections == TEN_THOUSAND
    assert result.requests >= TEN_THOUSAND  # every connection was answered at least once


def _counts(base: str) -> dict[str, int]:
    with urllib.request.urlopen(base + "__counts", timeout=5) as answer:
        counts: dict[str, int] = json.loads(answer.read())
    return counts


MIX = (RequestKind(name="fast", path="/fast", weight=90, expect_body=b"hello"),
       RequestKind(name="slow", path="/slow", weight=10, expect_body=b"hello"))


@pytest.mark.parametrize("rate", [None, 100.0])
def test_mix_kinds_have_their_own_latency_and_exact_counts(server: Server,
                                                           rate: float | None) -> None:
    """90 % of 1 ms and 10 % of 20 ms: each kind's median is its own service time, and each
    kind's count is what the server received of it (no warm-up: every request is counted)."""
    base = server("--route", "/fast=1", "--route", "/slow=20")
    result = run_load(LoadSpec(url=base, concurrency=None if rate else 4, rate=rate,
                               duration_s=2.0, mix=MIX))
    _ok(result)
    assert set(result.kinds) == {"fast", "slow"}
    received = _counts(base)
    for name, kind in result.kinds.items():
        _ok(kind)
        assert kind.requests == received[f"/{name}"], (name, kind.requests, received)
        p50 = kind.percentiles_ms(kind.latency)["p50"]
        service_ms = 1.0 if name == "fast" else 20.0
        assert p50 is not None and service_ms <= p50 < service_ms + SERVER_OVERSHOOT_MAX_MS, \
            (name, p50)
        assert sum(p.requests for p in kind.series) == kind.requests
    assert result.requests == sum(kind.requests for kind in result.kinds.values())
    assert result.latency.get_total_count() == result.requests
    # the cycle sends 90:10 exactly over each 1,000 requests; a part cycle is shuffled
    slow_share = result.kinds["slow"].requests / result.requests
    assert 0.07 < slow_share < 0.13, slow_share
    if rate is not None:
        assert result.requests == result.scheduled == 200


def test_mix_body_errors_count_against_their_kind(server: Server) -> None:
    base = server("--route", "/slow=5")
    mix = (RequestKind(name="right", path="/a", weight=1, expect_body=b"hello"),
           RequestKind(name="wrong", path="/b", weight=1, expect_body=b"other"))
    result = run_load(LoadSpec(url=base, concurrency=2, duration_s=0.5, mix=mix))
    assert result.kinds["right"].errors["total"] == 0
    assert result.kinds["wrong"].errors["body"] > 0
    assert result.kinds["wrong"].requests == 0
    assert result.errors["body"] == result.kinds["wrong"].errors["body"]
