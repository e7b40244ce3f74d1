"""Locust as a driver: real ``locust`` subprocesses against real servers on loopback, and the
histogram merge on its own.

Locust is never imported here (``import locust`` monkey-patches the whole process with gevent);
the driver runs it as a subprocess. The tests need the ``locust`` extra:
``pip install -e '.[test,locust]'``.
"""

from __future__ import annotations

import math
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from harness.drivers import DRIVERS, get_driver
from harness.drivers.locust import (
    HDR,
    LocustDriver,
    ProcessRow,
    build_result,
    merge_by_name,
    to_worker_report,
    worker_command,
)
from harness.drivers.locust_book import ERROR_KINDS as BOOK_ERROR_KINDS
from harness.drivers.locust_book import NS_PER_S, LocustBook
from harness.errors import UnreachableError, UsageError
from harness.loadgen import ERROR_KINDS, LoadResult, LoadSpec, percentiles_ms
from harness.loadgen.result import merge_reports
from harness.sampling import Sample, Usage
from tests.runhelpers import harness_cmd, read_json, read_rows, start_test_server

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "scenarios" / "locustfiles" / "shop.py"
HELLO = b"hello"

try:
    metadata.version("locust")
    HAVE_LOCUST = True
except metadata.PackageNotFoundError:
    HAVE_LOCUST = False
needs_locust = pytest.mark.skipif(not HAVE_LOCUST,
                                  reason="needs the locust extra: pip install -e '.[locust]'")


# ---- the merge, without Locust ---------------------------------------------------------------

def _book(values_us: list[int], *, name: str = "GET /hello", seconds: int = 2) -> LocustBook:
    """A book whose window is [0, seconds): value i sent in second i % seconds."""
    book = LocustBook(hdr=HDR, seconds=seconds, m0_ns=0, m1_ns=seconds * NS_PER_S)
    for i, value in enumerate(values_us):
        sent = (i % seconds) * NS_PER_S + 1
        book.success(name, sent, sent + value * 1000, value)
    return book


def test_error_kinds_are_the_builtin_generators() -> None:
    assert BOOK_ERROR_KINDS == ERROR_KINDS


def test_books_merge_by_adding_histograms_never_averaging_percentiles() -> None:
    fast = _book([100] * 990)  # 990 answers at 0.1 ms
    slow = _book([50_000] * 10, name="GET /slow")  # 10 at 50 ms
    # a worker's periodic reports (take) and its last one, added by the master
    master_side = LocustBook(hdr=HDR, seconds=2, m0_ns=0, m1_ns=2 * NS_PER_S)
    master_side.add(fast.take())
    master_side.add(slow.to_dict())
    assert fast.requests == 0  # take() emptied it
    reports = [to_worker_report(k, book, m0_ns=0, m1_ns=2 * NS_PER_S)
               for k, book in enumerate([master_side, _book([100] * 990)])]
    merged = merge_reports(reports, url="http://x/hello", concurrency=2, rate=None,
                           duration_s=2.0)
    assert merged.requests == 1990 == merged.latency.get_total_count()
    # the p99.9 of the merged data is the slow tail; an average of the two processes'
    # p99.9 would be ~25 ms
    pct = percentiles_ms(merged.latency)
    assert pct["p50"] == pytest.approx(0.1, abs=0.001)
    assert pct["p99_9"] == pytest.approx(50.0, rel=0.01)
    assert sum(p.requests for p in merged.series) == 1990
    hists, errors = merge_by_name([master_side, _book([100] * 990)])
    assert {k: h.get_total_count() for k, h in hists.items()} == {"GET /hello": 1980,
                                                                 "GET /slow": 10}
    assert errors == {}


def test_book_window_excludes_warmup_and_counts_answers_by_second() -> None:
    book = LocustBook(hdr=HDR, seconds=2, m0_ns=10 * NS_PER_S, m1_ns=12 * NS_PER_S)
    book.success("a", 9 * NS_PER_S, int(10.5 * NS_PER_S), 1)  # sent in the warm-up
    book.success("a", int(11.9 * NS_PER_S), int(12.1 * NS_PER_S), 200_000)  # answered after
    book.error("a", "timeout", int(11.5 * NS_PER_S), killed=True)
    book.error("a", "status", 13 * NS_PER_S)  # after the window
    assert book.requests == 1 and book.completed == 1
    assert book.sec_completed == [1, 0] and book.sec_errors == [0, 1]
    assert book.errors["timeout"] == 1 and book.killed == 1 and book.errors["status"] == 0
    again = LocustBook.from_dict(book.to_dict(), hdr=HDR)
    assert again.to_dict() == book.to_dict()


def _usage(pid_cpu_pct: float, m0: int, m1: int) -> Usage:
    seconds = (m1 - m0) / NS_PER_S
    return Usage(samples=[Sample(t_ns=m0, cpu_s=0.0, rss_mb=0.0, pss_mb=None),
                          Sample(t_ns=m1, cpu_s=pid_cpu_pct / 100 * seconds, rss_mb=0.0,
                                 pss_mb=None)])


def test_locust_at_its_cpu_limit_marks_the_trial_saturated_naming_locust() -> None:
    m0, m1 = 1_000 * NS_PER_S, 1_002 * NS_PER_S
    book = LocustBook(hdr=HDR, seconds=2, m0_ns=m0, m1_ns=m1)
    book.success("GET /hello", m0 + 5, m0 + 500_005, 500)
    data = {"m0_ns": m0, "m1_ns": m1, "master": {"role": "master", "host": "h", "pid": 1},
            "processes": [
                {"role": "worker", "host": "h", "pid": 2, "cpus": [0], "final": True,
                 "cpu_s": 0.0, "window_s": 0.0, "book": book.to_dict()},
                # a worker on another machine reports its own CPU time
                {"role": "worker", "host": "far", "pid": 3, "cpus": [5], "final": False,
                 "cpu_s": 1.9, "window_s": 2.0, "book": book.to_dict()}]}
    spec = LoadSpec(url="http://127.0.0.1:1/hello", concurrency=2, duration_s=2.0)
    result = build_result(spec, data, {1: _usage(2.0, m0, m1), 2: _usage(97.0, m0, m1)},
                          stop_timeout_s=5)
    assert result.saturated
    assert len(result.saturation_reasons) == 2
    assert all("Locust" in r and "not the server" in r for r in result.saturation_reasons)
    assert "pid 2" in result.saturation_reasons[0] and "pid 3 on far" in \
        result.saturation_reasons[1]
    rows = [ProcessRow(**row) for row in result.generator_processes]  # type: ignore[arg-type]
    assert [(r.role, r.cpu_source) for r in rows] == [
        ("master", "harness"), ("worker", "harness"), ("worker", "self-reported")]
    assert result.requests == 2 == sum(r.requests or 0 for r in rows)
    assert any("never sent their last report" in n for n in result.notes)


def test_open_loop_levels_are_refused_with_the_reason() -> None:
    driver = LocustDriver()
    spec = LoadSpec(url="http://127.0.0.1:1/hello", rate=100.0)
    reason = driver.supports(spec)
    assert reason is not None and "coordinated omission" in reason
    assert driver.supports(LoadSpec(url="http://127.0.0.1:1/hello", concurrency=4)) is None
    with pytest.raises(UsageError, match=r"cannot run level --rate 100.*--driver builtin"):
        driver.measure(spec)


def test_registered_and_described() -> None:
    assert "locust" in DRIVERS.names()
    driver = get_driver("locust")
    assert driver.name == "locust"
    assert driver.describe()["version"] == (metadata.version("locust") if HAVE_LOCUST
                                            else None)
    with pytest.raises(UsageError, match="no such file"):
        LocustDriver(locustfile="/nonexistent/locustfile.py")
    assert worker_command("10.0.0.1")[-1].endswith("locust_plain.py," + str(
        ROOT / "harness" / "drivers" / "locust_listener.py"))


def test_unreachable_target_is_refused_before_locust_starts() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UnreachableError):
        LocustDriver().measure(LoadSpec(url=f"http://127.0.0.1:{port}/", concurrency=1))


# ---- real Locust against real servers ------------------------------------------------------

@pytest.fixture
def server() -> Iterator[str]:
    proc, url = start_test_server()
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def _spec(url: str, **kw: object) -> LoadSpec:
    options: dict[str, object] = {"concurrency": 8, "duration_s": 2.0, "warmup_s": 0.5,
                                  "cpus": (0,), "expect_body": HELLO}
    options.update(kw)
    return LoadSpec(url=url, **options)  # type: ignore[arg-type]


def _consistent(result: LoadResult, duration_s: float) -> None:
    """Every count adds up: histograms, series, per-process rows."""
    assert result.latency.get_total_count() + result.out_of_range == result.requests
    assert len(result.series) == math.ceil(duration_s)
    assert sum(p.requests for p in result.series) == result.requests
    assert sum(p.completed for p in result.series) == result.completed
    assert sum(p.errors for p in result.series) == result.errors["total"]
    assert result.achieved_rps == pytest.approx(result.completed / duration_s)
    assert sum(h.get_total_count() for h in result.by_name.values()) == \
        result.latency.get_total_count()
    assert result.window_end_ns - result.window_start_ns == int(duration_s * NS_PER_S)
    assert result.window_end_ns < time.monotonic_ns()


@pytest.mark.e2e
@needs_locust
def test_one_process_measures_at_microsecond_resolution(server: str) -> None:
    result = LocustDriver().measure(_spec(server + "hello"))
    assert result.errors["total"] == 0 and result.requests > 100
    _consistent(result, 2.0)
    # Locust's own statistics round to whole milliseconds; these do not
    lat = result.latency
    assert lat.get_min_value() < 1000 or lat.get_value_at_percentile(50) % 1000 != 0
    assert any(v % 1000 for v in (lat.get_value_at_percentile(p) for p in (50, 90, 99)))
    [row] = result.generator_processes
    assert row["role"] == "local" and row["cpu_source"] == "harness" and row["cpus"] == [0]
    assert result.generator_cpu_pct > 0


@pytest.mark.e2e
@needs_locust
def test_two_workers_merge_to_the_sum_of_their_counts(server: str) -> None:
    result = LocustDriver(workers=2).measure(_spec(server + "hello"))
    rows = result.generator_processes
    workers = [row for row in rows if row["role"] == "worker"]
    assert [row["role"] for row in rows].count("master") == 1 and len(workers) == 2
    assert len({row["pid"] for row in workers}) == 2
    assert all(int(row["requests"]) > 0 and row["final"] for row in workers)  # type: ignore[call-overload]
    assert result.requests == sum(int(row["requests"]) for row in workers)  # type: ignore[call-overload]
    assert result.completed == sum(int(row["completed"]) for row in workers)  # type: ignore[call-overload]
    assert result.procs == 2 and result.errors["total"] == 0
    _consistent(result, 2.0)


@pytest.mark.e2e
@needs_locust
def test_requests_in_flight_at_the_end_are_timeouts_without_stop_timeout() -> None:
    # 4 users, 900 ms answers, window [0.1, 2.1) s after spawning: the requests sent at 1.8 s
    # are still in flight when the window ends; with --stop-timeout 0 Locust kills them
    proc, url = start_test_server("--delay-ms", "900")
    try:
        result = LocustDriver(stop_timeout_s=0).measure(
            _spec(url + "hello", concurrency=4, warmup_s=0.0))
    finally:
        proc.kill()
        proc.wait()
    assert result.errors["timeout"] == 4 == result.errors["total"]
    assert result.requests == 4 and result.completed == 8
    assert any("stopped by Locust" in note for note in result.notes)
    _consistent(result, 2.0)


@pytest.mark.e2e
@needs_locust
def test_wrong_status_and_wrong_body_are_errors_by_kind() -> None:
    bad_status, url = start_test_server("--status", "500")
    try:
        result = LocustDriver().measure(_spec(url + "hello", warmup_s=0.0, duration_s=1.0))
    finally:
        bad_status.kill()
        bad_status.wait()
    assert result.requests == 0 and result.errors["status"] == result.errors["total"] > 0
    wrong_body, url = start_test_server("--body", "other")
    try:
        result = LocustDriver().measure(_spec(url + "hello", warmup_s=0.0, duration_s=1.0))
    finally:
        wrong_body.kill()
        wrong_body.wait()
    assert result.requests == 0 and result.errors["body"] == result.errors["total"] > 0


@pytest.mark.e2e
@needs_locust
def test_user_locustfile_mix_against_uvicorn_by_name() -> None:
    from harness.backends.local import start_target
    from harness.catalogue import get_server, make_target

    target = start_target(make_target(get_server("uvicorn")), cpus=(1,))
    try:
        result = LocustDriver(locustfile=SHOP).measure(
            LoadSpec(url=target.url + "/hello", concurrency=8, duration_s=2.0, warmup_s=0.5,
                     cpus=(0,)))
    finally:
        target.stop()
    assert result.errors["total"] == 0
    assert set(result.by_name) == {"GET /hello", "GET /json", "GET /io", "GET /cpu"}
    counts = {name: hist.get_total_count() for name, hist in result.by_name.items()}
    assert counts["GET /hello"] > counts["GET /io"] > 0  # weights 10 : 2
    io: HdrHistogram = result.by_name["GET /io"]
    assert io.get_value_at_percentile(50) >= 50_000  # µs: the 50 ms wait
    _consistent(result, 2.0)


@pytest.mark.e2e
@needs_locust
def test_harness_run_with_the_locust_driver(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(harness_cmd("run", "--scenario", "hello", "--servers", "uvicorn",
                                      "--concurrency", "8", "--duration", "2s", "--warmup",
                                      "500ms", "--repeat", "1", "--driver", "locust",
                                      "--no-report", "--out", str(out)),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = read_json(out / "run.json")
    assert meta["driver"]["name"] == "locust"
    assert meta["driver"]["version"] == metadata.version("locust")
    [row] = read_rows(out / "trials.csv")
    assert row["status"] == "ok" and int(row["requests"]) > 0 and row["errors"] == "0"
    assert float(row["p50_ms"]) > 0 and float(row["loadgen_cpu_pct"]) > 0
