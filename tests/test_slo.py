"""The capacity search's scheduling and the objective's parsing (no server: a fake one whose
capacity is known)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.errors import UsageError
from harness.results import TrialRecord
from harness.slo import (
    PEAK_HEADROOM,
    CapacitySearch,
    SearchPolicy,
    Slo,
    judge_open_loop,
    parse_slo,
    start_rate_from,
)
from tests.analysis_fixtures import record


def _search(capacity: float, start: float, policy: SearchPolicy | None = None,
            invalid_at: float | None = None, peak: float | None = None
            ) -> tuple[CapacitySearch, list[float]]:
    search = CapacitySearch(policy or SearchPolicy(), start, peak_rps=peak)
    rates: list[float] = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        assert len(rates) <= 50, "the search must be bounded"
        if invalid_at is not None and rate >= invalid_at:
            search.record(rate, f"t{len(rates)}", None, undetermined="generator saturated")
            continue
        search.record(rate, f"t{len(rates)}", None if rate <= capacity else "p99 too high")
    return search, rates


@pytest.mark.parametrize(("capacity", "start"), [(57.0, 25.0), (5200.0, 3000.0),
                                                 (5200.0, 50.0), (300.0, 2000.0)])
def test_search_brackets_the_capacity_within_the_resolution(capacity: float,
                                                            start: float) -> None:
    search, rates = _search(capacity, start)
    result = search.result()
    assert result.status == "found", result
    assert result.capacity_rps is not None and result.failed_rate is not None
    assert result.capacity_rps <= capacity < result.failed_rate
    assert (result.failed_rate - result.capacity_rps) / result.capacity_rps <= 0.05
    assert result.steps == len(rates) <= SearchPolicy().max_steps
    assert result.proof_trial == f"t{rates.index(result.capacity_rps) + 1}"


def test_search_is_bounded_in_steps_and_rate() -> None:
    search, rates = _search(1e9, 50.0, SearchPolicy(max_rate=1000.0))
    result = search.result()
    assert result.status == "at_least" and result.capacity_rps == 1000.0
    assert max(rates) == 1000.0
    search, rates = _search(0.5, 50.0)
    assert search.result().status == "below_min" and search.result().capacity_rps is None
    search, rates = _search(5000.0, 1.0, SearchPolicy(max_steps=3))
    assert len(rates) == 3 and search.result().status == "at_least"


def test_the_first_step_above_the_closed_loop_peak_is_just_above_it() -> None:
    """uvicorn in reference run A: closed-loop peak 6,943 req/s, 7,000 met the objective, then
    14,000 and five steps down to 7,219 all missed. Told the peak, the ramp's step above 7,000
    is at +10 % of the peak, and the bisection has one step left to take."""
    blind, blind_rates = _search(7100.0, 3500.0)
    aware, rates = _search(7100.0, 3500.0, peak=6943.0)
    assert blind_rates == [3500.0, 7000.0, 14000.0, 10500.0, 8750.0, 7875.0, 7437.5, 7218.75]
    assert rates == [3500.0, 7000.0, pytest.approx(6943.0 * (1 + PEAK_HEADROOM)),
                     pytest.approx((7000.0 + 6943.0 * (1 + PEAK_HEADROOM)) / 2)]
    # the same answer, bracket and resolution: the ramp took another path, not a shortcut
    for result in (blind.result(), aware.result()):
        assert result.status == "found" and result.capacity_rps == 7000.0
        assert result.failed_rate is not None
        assert (result.failed_rate - 7000.0) / 7000.0 <= 0.05


def test_a_pass_above_the_peak_ramps_on_by_the_growth() -> None:
    """A closed-loop peak that the load's own ceiling set (Little's law) is no limit: a pass
    at +10 % ramps on by the growth, and the capacity is still found."""
    search, rates = _search(50_000.0, 1000.0, peak=2000.0)
    assert rates[:4] == [1000.0, 2000.0, pytest.approx(2200.0), pytest.approx(4400.0)]
    result = search.result()
    assert result.status == "found" and result.capacity_rps is not None
    assert result.capacity_rps <= 50_000.0 < (result.failed_rate or 0.0)


def test_an_invalid_step_ends_the_search_undetermined_with_what_was_met() -> None:
    search, _ = _search(5000.0, 100.0, invalid_at=800.0)
    result = search.result()
    assert result.status == "undetermined" and result.capacity_rps == 400.0
    assert "could not be judged" in result.note and "met the objective at 400" in result.note


def test_start_rate_is_half_the_closed_loop_peak() -> None:
    assert start_rate_from([57.3, 40.0]) == 29.0
    assert start_rate_from([6737.0]) == 3400.0
    assert start_rate_from([]) is None


def test_parse_slo() -> None:
    slo = parse_slo("p99=100ms")
    assert (slo.percentile, slo.threshold_ms, slo.max_error_rate) == ("p99", 100.0, 0.001)
    slo = parse_slo("p99.9=1s, errors=0.5%")
    assert (slo.percentile, slo.threshold_ms, slo.max_error_rate) == ("p99.9", 1000.0, 0.005)
    assert slo.describe() == "p99.9 <= 1000 ms, errors <= 0.5%"


@pytest.mark.parametrize(("text", "fragment"), [
    ("p99", "is not 'pNN=DURATION'"), ("p98=1ms", "expected one of"),
    ("p99=fast", "positive duration"), ("errors=1%", "names no latency percentile"),
    ("p99=1ms,p50=1ms", "one latency percentile"), ("p99=1ms,errors=200%", "percentage"),
])
def test_bad_slo_is_one_line(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        parse_slo(text)
    assert "\n" not in str(info.value)


# -- an open-loop rate that missed the objective is overloaded ------------------------------------

def _open(tid: str, p99_ms: float | None, **overrides: object) -> TrialRecord:
    fields: dict[str, object] = {"load_model": "open", "concurrency": None, "rate": 50.0,
                                 "offered_rps": 50.0, "p99_ms": p99_ms, **overrides}
    return record(tid, **fields)


def test_an_open_loop_rate_whose_latency_missed_the_objective_is_overloaded() -> None:
    """gunicorn-gthread at 50 req/s in the published io_bound run: p99 405 ms against an
    objective of 200 ms, and its capacity search said 39.9 req/s; the trial read "valid"."""
    slo = parse_slo("p99=200ms")
    judged = judge_open_loop(_open("t1", 405.2), slo)
    assert (judged.outcome, judged.valid) == ("overloaded", False)
    assert judged.invalid_reason == "p99 405.2 ms > 200 ms, the objective"
    assert judge_open_loop(_open("t2", 199.0), slo).outcome == "valid"
    strict = parse_slo("p99=200ms,errors=0.01%")
    errors = judge_open_loop(_open("t3", 60.0, error_rate=0.0005), strict)
    assert errors.outcome == "overloaded" and errors.invalid_reason.startswith("errors 0.05% > ")


@pytest.mark.parametrize("why", ["closed loop", "already overloaded", "invalid", "no objective",
                                 "nothing measured"])
def test_only_a_valid_open_loop_trial_is_judged_against_the_objective(why: str) -> None:
    slo: Slo | None = parse_slo("p99=200ms")
    trial = _open("t1", 900.0)
    if why == "closed loop":  # its clients wait: nothing queues, and its p99 is no rate's
        trial = record("t1", p99_ms=900.0)
    elif why == "already overloaded":
        trial = dataclasses.replace(trial, outcome="overloaded", valid=False,
                                    invalid_reason="errors 4.00% of requests (limit 0.1%)")
    elif why == "invalid":
        trial = dataclasses.replace(trial, outcome="invalid", valid=False,
                                    invalid_reason="generator saturated: its CPU 97% (> 90%)")
    elif why == "no objective":
        slo = None
    else:
        trial = _open("t1", None)
    assert judge_open_loop(trial, slo) == trial


def test_the_objective_reads_back_from_run_json() -> None:
    slo = parse_slo("p99.9=250ms,errors=0.5%")
    assert Slo.from_dict(slo.to_dict()) == slo
    for broken in (None, "p99=200ms", {}, {"percentile": "p42", "threshold_ms": 1.0},
                   {"percentile": "p99", "threshold_ms": "soon"}):
        assert Slo.from_dict(broken) is None
