"""Unit tests of the generator's pure parts: schedule, histograms, spec, merging (no sockets)."""

from __future__ import annotations

import dataclasses
import itertools
from array import array

import pytest
from hdrh.histogram import HdrHistogram

from harness.errors import UsageError
from harness.loadgen import LoadSpec, merge, new_histogram, parse_header, parse_url, percentiles_ms
from harness.loadgen.accounting import BEHIND_THRESHOLD_MS, WorkerReport
from harness.loadgen.histograms import HIGHEST_US, SecondBook, record_batch
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.models.mix import MIX_CYCLE, KindCycle, cycle_counts
from harness.loadgen.result import (
    STALL_FRACTION,
    STALL_MIN_BEST_PER_S,
    STALL_NOTE,
    merge_reports,
)
from harness.loadgen.schedule import OpenLoopSchedule, Window
from harness.loadgen.spec import RequestKind, encode_mix, encode_request

NS = 1_000_000_000
URL = "http://127.0.0.1:8000/hello"


# -- open-loop schedule with a fake clock ---------------------------------------------------

def test_schedule_hands_out_due_requests_in_batches() -> None:
    sched = OpenLoopSchedule(start_ns=1_000, end_ns=1_000 + NS, rate=1000.0)
    assert sched.take_due(999) == []
    assert sched.take_due(1_000) == [1_000]
    # a late wake-up (fake clock jumps 5 ms) gets every request due meanwhile, at its own time
    batch = sched.take_due(1_000 + 5_000_000)
    assert batch == [1_000 + i * 1_000_000 for i in range(1, 6)]
    assert sched.next_due_ns() == 1_000 + 6_000_000


def test_schedule_ends_before_end_and_counts_exactly() -> None:
    sched = OpenLoopSchedule(start_ns=0, end_ns=NS, rate=250.0)
    assert len(sched.take_due(10 * NS)) == 250
    assert sched.finished and sched.next_due_ns() is None


def test_schedule_split_over_processes_interleaves_evenly() -> None:
    rate, procs = 1000.0, 3
    dues = sorted(d for k in range(procs) for d in OpenLoopSchedule(
        start_ns=0, end_ns=NS, rate=rate, proc=k, procs=procs).take_due(NS))
    assert len(dues) == 1000
    gaps = {b - a for a, b in itertools.pairwise(dues)}
    assert gaps <= {999_999, 1_000_000, 1_000_001}


def test_schedule_ramps_up_over_the_warm_up_then_holds_the_rate() -> None:
    rate, ramp = 1000.0, NS // 2  # 0 to 1,000 req/s over 0.5 s: 250 requests on the way up
    for procs in (1, 3):
        dues = sorted(d for k in range(procs) for d in OpenLoopSchedule(
            start_ns=0, end_ns=2 * NS, rate=rate, proc=k, procs=procs,
            ramp_ns=ramp).take_due(2 * NS))
        assert dues[0] == 0 and dues == sorted(set(dues))
        # the rate rises: each quarter of the ramp sends more than the one before ...
        quarters = [sum(1 for d in dues if q * ramp // 4 <= d < (q + 1) * ramp // 4)
                    for q in range(4)]
        assert quarters == sorted(quarters) and quarters[0] < quarters[3] / 3, quarters
        assert abs(sum(quarters) - 250) <= 1
        # ... then holds at the full rate: 1,000 in every second after it
        assert sum(1 for d in dues if NS <= d < 2 * NS) == 1000
        gaps = {b - a for a, b in itertools.pairwise(d for d in dues if d >= ramp)}
        assert gaps <= {999_999, 1_000_000, 1_000_001}, sorted(gaps)[:3]


def test_window_seconds_round_a_partial_second_up() -> None:
    assert Window(start_ns=0, m0_ns=2 * NS, m1_ns=int(3.5 * NS)).seconds == 2
    assert Window(start_ns=0, m0_ns=NS, m1_ns=NS).seconds == 1


# -- histograms --------------------------------------------------------------------------

def test_merge_adds_counts_and_survives_encoding() -> None:
    a, b = new_histogram(), new_histogram()
    for v in range(1, 1001):
        a.record_value(v)  # 1..1000 us
    for _ in range(1000):
        b.record_value(100_000)  # 100 ms
    merged = merge([HdrHistogram.decode(a.encode()), HdrHistogram.decode(b.encode())])
    assert merged.get_total_count() == 2000
    # the merged median sits between the two populations: not the mean of the two medians
    assert merged.get_value_at_percentile(50) <= 1001
    assert merged.get_value_at_percentile(75) >= 99_900
    pct = percentiles_ms(merged)
    assert pct["max"] == pytest.approx(100.0, rel=1e-3)


def test_record_batch_counts_out_of_range() -> None:
    hist = new_histogram()
    samples = array("q", [1_000, 2_000, 2_000, (HIGHEST_US + 10) * 1000])
    lost = record_batch(samples, (hist,))
    assert lost == 1
    assert hist.get_total_count() == 3
    assert hist.get_count_at_value(2) == 2


def test_second_book_flush_keeps_per_second_and_total() -> None:
    book = SecondBook(3)
    book.buckets[0].extend([1_000_000] * 10)  # 1 ms
    book.buckets[2].extend([5_000_000] * 5)  # 5 ms
    book.flush()
    book.buckets[2].append(5_000_000)
    book.flush()
    assert book.total.get_total_count() == 16
    assert book.per_second[1] is None
    assert book.per_second[2] is not None and book.per_second[2].get_total_count() == 6
    assert not any(book.buckets)


def test_percentiles_of_empty_histogram_are_none() -> None:
    assert set(percentiles_ms(new_histogram()).values()) == {None}


# -- spec and request ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    ({"concurrency": 1, "rate": 5.0}, "exactly one"),
    ({}, "exactly one"),
    ({"rate": 0.0}, "--rate"),
    ({"rate": -1.0}, "--rate"),
    ({"rate": float("nan")}, "--rate"),
    ({"concurrency": 0}, "--concurrency"),
    ({"concurrency": 2, "procs": 3}, "--procs"),
    ({"concurrency": 2, "duration_s": 0.0}, "--duration"),
    ({"concurrency": 2, "timeout_s": 0.0}, "--timeout"),
    ({"concurrency": 2, "method": "GE T"}, "--method"),
    ({"concurrency": 2, "headers": (("X", "a\r\nb"),)}, "--header"),
    ({"concurrency": 2, "cpus": (9999,)}, "--cpus"),
])
def test_spec_rejects_bad_input(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        LoadSpec(url=URL, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "ftp://x/", "127.0.0.1:80/",
                                 "http://", "http://h:99999/", "http://h:port/"])
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_parse_url_and_request_bytes() -> None:
    target = parse_url("http://localhost:8000/io?ms=5")
    assert (target.host, target.port, target.path) == ("localhost", 8000, "/io?ms=5")
    spec = LoadSpec(url="http://localhost:8000/io?ms=5", concurrency=1, method="POST",
                    headers=(parse_header("X-A: b"),), body=b"abc")
    assert encode_request(spec) == (b"POST /io?ms=5 HTTP/1.1\r\nHost: localhost:8000\r\n"
                                    b"X-A: b\r\nContent-Length: 3\r\n\r\nabc")
    with pytest.raises(UsageError):
        parse_header("no colon")


# -- merging reports ----------------------------------------------------------------------

def _report(proc: int, latencies_us: list[int], *, cpu_s: float = 0.5, behind: int = 0,
            scheduled: int = 0, errors: int = 0, at_cap: int = 0) -> WorkerReport:
    hist = new_histogram()
    for v in latencies_us:
        hist.record_value(v)
    errs = dict.fromkeys(ERROR_KINDS, 0)
    errs["status"] = errors
    errs["total"] = errors
    return WorkerReport(
        proc=proc, requests=len(latencies_us), errors=errs, latency_hdr=hist.encode(),
        service_hdr=hist.encode(), out_of_range=0, second_requests=[len(latencies_us)],
        second_completed=[len(latencies_us)],
        second_errors=[errors], second_latency_hdr=[hist.encode()], behind=behind,
        behind_generator=behind, behind_at_cap=at_cap, completed=len(latencies_us),
        resent=0, window_start_ns=0, window_end_ns=1_000_000_000, scheduled=scheduled,
        cpu_s=cpu_s, window_s=1.0,
        peak_connections=4, max_connections=8, precise_timer=True)


def test_merge_reports_sums_and_merges_series() -> None:
    result = merge_reports([_report(0, [1000] * 99, errors=2), _report(1, [50_000])],
                           url=URL, concurrency=8, rate=None, duration_s=1.0)
    assert result.requests == 100 and result.achieved_rps == 100.0
    assert result.errors["status"] == 2 and result.errors["total"] == 2
    assert result.latency.get_total_count() == 100
    assert result.generator_cpu_pct == pytest.approx(100.0)
    assert not result.saturated
    assert result.series[0].requests == 100 and result.series[0].errors == 2
    assert result.series[0].p99_ms is not None and result.series[0].p99_ms < 2.0
    assert result.to_json()["latency_ms"]["max"] == pytest.approx(50.0, rel=1e-3)  # type: ignore[index]


def _seconds_report(per_second: list[int]) -> WorkerReport:
    """One process's report whose answers per second are ``per_second``."""
    hist = new_histogram().encode()
    return dataclasses.replace(_report(0, [1000] * sum(per_second)),
                               second_requests=list(per_second),
                               second_completed=list(per_second),
                               second_errors=[0] * len(per_second),
                               second_latency_hdr=[hist] * len(per_second))


def test_whole_seconds_with_next_to_no_answers_are_a_stall() -> None:
    # granian-wsgi at 512 clients, io_bound_l repeat 1: two seconds of answers, three of none
    stalled = merge_reports([_seconds_report([4311, 4489, 0, 0, 0])], url=URL, concurrency=512,
                            rate=None, duration_s=5.0)
    assert [n for n in stalled.notes if STALL_NOTE in n] == [
        f"{STALL_NOTE} in 3 of its 5 measured seconds: it answered under 20% of its best "
        "second's 4,489 in second(s) 2, 3, 4 (counting from 0; per second in series/)"]
    # a steady trial, one whose last second is partial, and one too slow to judge: no stall
    for per_second, duration_s in (([4311, 4489, 4100, 4300, 4400], 5.0),
                                   ([4311, 4489, 4100, 4300, 40], 4.1),
                                   ([STALL_MIN_BEST_PER_S - 1, 0, 0], 3.0)):
        result = merge_reports([_seconds_report(per_second)], url=URL, concurrency=512,
                               rate=None, duration_s=duration_s)
        assert not any(STALL_NOTE in n for n in result.notes), per_second
    # the limit is a share of the best second: just under it is a stall, at it is not
    edge = int(STALL_FRACTION * 1000)
    for completed, expected in ((edge - 1, True), (edge, False)):
        result = merge_reports([_seconds_report([1000, completed])], url=URL, concurrency=64,
                               rate=None, duration_s=2.0)
        assert any(STALL_NOTE in n for n in result.notes) is expected, completed


def test_saturation_from_cpu_and_from_falling_behind() -> None:
    busy = merge_reports([_report(0, [1000], cpu_s=0.95)], url=URL, concurrency=1, rate=None,
                         duration_s=1.0)
    assert busy.saturated and "CPU" in busy.saturation_reasons[0]
    late = merge_reports([_report(0, [1000], behind=5, scheduled=100)], url=URL,
                         concurrency=None, rate=100.0, duration_s=1.0)
    assert late.saturated and f"{BEHIND_THRESHOLD_MS:g} ms" in late.saturation_reasons[0]
    assert "generator itself was late" in late.saturation_reasons[0]
    # behind because every connection waited on the server: the server's overload (a result),
    # not the generator's saturation (issue 13)
    capped = merge_reports([_report(0, [1000], behind=5, at_cap=4, scheduled=100)], url=URL,
                           concurrency=None, rate=100.0, duration_s=1.0)
    assert not capped.saturated and capped.behind_at_cap == 4
    assert capped.overload_reasons[0].startswith("connection cap reached: 4 of 100")
    assert "all 8 the generator may hold open or opening (4 open at most)" in \
        capped.overload_reasons[0]
    both = merge_reports([_report(0, [1000], behind=9, at_cap=4, scheduled=100)], url=URL,
                         concurrency=None, rate=100.0, duration_s=1.0)
    assert both.saturated and both.overload_reasons
    assert both.saturation_reasons[0].startswith("open-loop schedule fell behind: 5 of 100")
    # what the verdict may discount: the generator's own late sends, none in closed loop
    assert (both.sent_late, late.sent_late, capped.sent_late, busy.sent_late) == (5, 5, 1, None)
    fine = merge_reports([_report(0, [1000], behind=1, scheduled=100)], url=URL,
                         concurrency=None, rate=100.0, duration_s=1.0)
    assert not fine.saturated and fine.service_time is not None


def _paced_report(medians_ms: list[float], *, per_second: int, answered: int) -> WorkerReport:
    """An open-loop process's report: ``per_second`` requests due each second, their latency
    the second's median, ``answered`` of them answered inside the window."""
    seconds = [new_histogram() for _ in medians_ms]
    for hist, median in zip(seconds, medians_ms, strict=True):
        for _ in range(per_second):
            hist.record_value(int(median * 1000))
    total = new_histogram()
    for hist in seconds:
        total.add(hist)
    due = per_second * len(medians_ms)
    return dataclasses.replace(
        _report(0, [], scheduled=due), requests=due, completed=answered,
        latency_hdr=total.encode(), service_hdr=total.encode(),
        second_requests=[per_second] * len(medians_ms),
        second_completed=[answered // len(medians_ms)] * len(medians_ms),
        second_errors=[0] * len(medians_ms), second_latency_hdr=[h.encode() for h in seconds],
        window_end_ns=len(medians_ms) * 1_000_000_000, window_s=float(len(medians_ms)))


def test_an_open_loop_server_that_falls_behind_is_overloaded() -> None:
    """A queue that grows through the window is overload, seen either way: the server answered
    fewer than offered, or the median latency rose second by second (both as measured on
    gunicorn-sync, 3 workers of 50 ms, at 61.0 and 59.4 req/s)."""
    def verdict(medians: list[float], *, per_second: int, answered: int) -> list[str]:
        return merge_reports([_paced_report(medians, per_second=per_second, answered=answered)],
                             url=URL, concurrency=None, rate=float(per_second),
                             duration_s=float(len(medians))).overload_reasons

    (short,) = verdict([92.0, 92.0, 92.0], per_second=61, answered=176)
    assert short.startswith("fell behind: answered 58.67 of 61 req/s offered, 7 of 183 "
                            "requests (3.8%) short"), short
    (rising,) = verdict([68.0, 82.0, 93.0], per_second=59, answered=176)
    assert rising.startswith("fell behind: the median latency rose from 68 to 93 ms "
                             "from second 0 to 2"), rising
    # kept up: short within the share (daphne, 1.8 %), or by a couple of requests at a few dozen
    # a second; a median that rose by 10 ms a second or less, or fell
    assert verdict([52.0, 52.0, 52.0], per_second=2344, answered=6906) == []
    assert verdict([51.0, 51.0, 51.0], per_second=28, answered=82) == []
    assert verdict([50.0, 60.0, 70.0], per_second=100, answered=300) == []
    assert verdict([90.0, 70.0, 60.0], per_second=100, answered=300) == []
    # a single second has no rise to read
    assert verdict([50.0], per_second=100, answered=100) == []
    # closed loop has no schedule to fall behind
    closed = merge_reports([_paced_report([50.0, 90.0], per_second=50, answered=10)], url=URL,
                           concurrency=8, rate=None, duration_s=2.0)
    assert closed.overload_reasons == []


def test_batch_recording_matches_record_value() -> None:
    import random

    rng = random.Random(7)
    values_us = [rng.choice([0, 1, 2, 999, 2047, 2048, 2049, 123_456, 10**7, HIGHEST_US])
                 for _ in range(200)] + [rng.randrange(0, 10**9) for _ in range(2000)]
    slow, fast = new_histogram(), new_histogram()
    for v in values_us:
        assert slow.record_value(v)
    assert record_batch(array("q", [v * 1000 + 999 for v in values_us]), (fast,)) == 0
    assert fast.get_total_count() == slow.get_total_count()
    assert list(fast.counts) == list(slow.counts)
    assert fast.get_max_value() == slow.get_max_value()
    assert fast.get_min_value() == slow.get_min_value()
    for pct in (50, 90, 99, 99.99):
        assert fast.get_value_at_percentile(pct) == slow.get_value_at_percentile(pct)


def test_mix_cycle_is_exact_over_each_cycle_and_shuffled() -> None:
    assert cycle_counts([95, 5]) == [950, 50]
    assert cycle_counts([1, 1, 1]) == [334, 333, 333]
    assert cycle_counts([1_000_000, 1]) == [999, 1]  # a named kind is always sent
    cycle = KindCycle([90, 10], seed=0)
    first = [cycle.next() for _ in range(MIX_CYCLE)]
    second = [cycle.next() for _ in range(MIX_CYCLE)]
    assert first.count(1) == second.count(1) == 100
    assert first != second  # shuffled anew each cycle
    assert first[:50] != [0] * 50 or first[-50:] != [1] * 50  # not in blocks
    again = KindCycle([90, 10], seed=0)
    assert [again.next() for _ in range(MIX_CYCLE)] == first  # the same sequence every run


@pytest.mark.parametrize(("mix", "message"), [
    ((RequestKind(name="a", path="/a", weight=1), RequestKind(name="a", path="/b", weight=1)),
     "repeat"),
    ((RequestKind(name="a", path="a", weight=1),), "starting with '/'"),
    ((RequestKind(name="a", path="/a", weight=0),), "weight 0"),
    ((RequestKind(name="a", path="/a", weight=1, expect_body=b"x"),
      RequestKind(name="b", path="/b", weight=1)), "expected body or none"),
    ((RequestKind(name="a,b", path="/a", weight=1),), "without commas"),
])
def test_mix_validation_names_what_is_wrong(mix: tuple[RequestKind, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        LoadSpec(url="http://127.0.0.1:8000/", concurrency=1, mix=mix)


def test_mix_encodes_each_kind_with_the_specs_headers() -> None:
    spec = LoadSpec(url="http://127.0.0.1:8000/", concurrency=1, headers=(("X-A", "1"),),
                    mix=(RequestKind(name="get", path="/io?ms=20", weight=95),
                         RequestKind(name="post", path="/upload", weight=5, method="POST",
                                     body=b"abc")))
    assert spec.load_model == "closed-mix"
    get, post = encode_mix(spec)
    assert get.request == b"GET /io?ms=20 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nX-A: 1\r\n\r\n"
    assert post.request.startswith(b"POST /upload HTTP/1.1\r\n")
    assert post.request.endswith(b"Content-Length: 3\r\n\r\nabc")
    assert (get.weight, post.weight) == (95, 5)
