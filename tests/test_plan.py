"""Planning: disjoint CPU sets, levels, estimates, unsupported pairs, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cpus import CpuPlan, allocate_cpus
from harness.errors import UsageError
from harness.plan import PlanOptions, build_plan
from harness.scenarios import load_scenario
from harness.slo import OFF


def test_two_cores_split_server_one_generator_zero() -> None:
    assert allocate_cpus([0, 1]) == CpuPlan(server=(1,), loadgen=(0,))
    assert allocate_cpus([0, 1, 2, 3]) == CpuPlan(server=(2, 3), loadgen=(0, 1))
    assert allocate_cpus([0, 1, 2, 3], server=[3]) == CpuPlan(server=(3,), loadgen=(0, 1, 2))


@pytest.mark.parametrize(
    ("server", "loadgen", "fragment"),
    [([1], [1], "share CPU 1"), ([7], None, "CPU 7 is not available"),
     ([0, 1], None, "no CPU left")],
)
def test_bad_cpu_sets(server: list[int], loadgen: list[int] | None, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        allocate_cpus([0, 1], server=server, loadgen=loadgen)


def test_one_cpu_needs_explicit_sets() -> None:
    with pytest.raises(UsageError, match="disjoint"):
        allocate_cpus([0])


def test_plan_expands_levels_and_estimates() -> None:
    scenario = load_scenario("io_bound")
    plan = build_plan(scenario, PlanOptions(servers=["uvicorn", "gunicorn-sync"],
                                            available_cpus=[0, 1]))
    levels = len(scenario.levels.concurrency) + len(scenario.levels.rate)
    assert plan.trial_count == 2 * levels
    assert plan.server_cpus == (1,) and plan.loadgen_cpus == (0,)
    per_trial = scenario.timing.warmup_s + scenario.timing.duration_s
    assert plan.estimate_s() > plan.trial_count * per_trial
    quick = build_plan(scenario, PlanOptions(quick=True, available_cpus=[0, 1]))
    assert quick.timing.duration_s < scenario.timing.duration_s
    assert len(quick.targets) == len(scenario.servers)


def test_default_io_bound_plan_fits_fifteen_minutes() -> None:
    plan = build_plan(load_scenario("io_bound"), PlanOptions(available_cpus=[0, 1]))
    assert plan.estimate_s() < 15 * 60


def test_quick_io_bound_plan_fits_two_minutes() -> None:
    plan = build_plan(load_scenario("io_bound"), PlanOptions(quick=True, available_cpus=[0, 1]))
    assert plan.estimate_s() < 2 * 60


def test_searches_add_rounds_that_search_alone() -> None:
    """--searches 3 on a one-repeat plan: three rounds, the levels in the first only; it costs
    less than --repeat 3, which runs every level three times."""
    scenario = load_scenario("io_bound")
    one = build_plan(scenario, PlanOptions(available_cpus=[0, 1]))
    three = build_plan(scenario, PlanOptions(searches=3, available_cpus=[0, 1]))
    repeated = build_plan(scenario, PlanOptions(repeat=3, available_cpus=[0, 1]))
    assert (one.rounds, one.search_rounds) == (1, 1)
    assert (three.rounds, three.search_rounds, three.timing.repeat) == (3, 3, 1)
    assert three.trial_count == one.trial_count
    assert one.estimate_s() < three.estimate_s() < repeated.estimate_s()
    assert three.summary()["searches"] == 3 and repeated.summary()["searches"] == 3
    # fewer searches than repeats: the search in the first round only
    fewer = build_plan(scenario, PlanOptions(repeat=3, searches=1, available_cpus=[0, 1]))
    assert (fewer.rounds, fewer.search_rounds) == (3, 1)


@pytest.mark.parametrize(("scenario", "kwargs", "fragment"), [
    ("io_bound", {"searches": 0}, "--searches: expected a positive integer, got 0"),
    ("hello", {"searches": 2}, "--searches: the plan has no capacity search"),
    ("io_bound", {"searches": 2, "quick": True}, "--searches: the plan has no capacity search"),
])
def test_searches_bad_input(scenario: str, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        build_plan(load_scenario(scenario),
                   PlanOptions(available_cpus=[0, 1], **kwargs))  # type: ignore[arg-type]


def test_head_to_head_adds_two_searches_a_pair_after_the_plan() -> None:
    scenario = load_scenario("io_bound")
    plain = build_plan(scenario, PlanOptions(available_cpus=[0, 1]))
    paired = build_plan(scenario, PlanOptions(head_to_head=4, available_cpus=[0, 1]))
    more = build_plan(scenario, PlanOptions(head_to_head=8, available_cpus=[0, 1]))
    assert (paired.rounds, paired.trial_count) == (plain.rounds, plain.trial_count)
    assert plain.estimate_s() < paired.estimate_s() < more.estimate_s()
    # each pair costs the same: two servers, each started for one search
    assert more.estimate_s() - paired.estimate_s() == pytest.approx(
        paired.estimate_s() - plain.estimate_s())
    assert paired.summary()["head_to_head"] == 4 and plain.summary()["head_to_head"] == 0


@pytest.mark.parametrize(("servers", "kwargs", "fragment"), [
    (None, {"head_to_head": 0}, "--head-to-head: expected a positive number of pairs, got 0"),
    (None, {"head_to_head": 2, "slo": OFF}, "--head-to-head: the plan has no capacity search"),
    (["gunicorn-sync", "granian-wsgi"], {"head_to_head": 2},
     "--head-to-head: .* expected servers of both gateways, got only WSGI"),
])
def test_head_to_head_bad_input(servers: list[str] | None, kwargs: dict[str, object],
                                fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        build_plan(load_scenario("io_bound"),
                   PlanOptions(servers=servers, available_cpus=[0, 1],
                               **kwargs))  # type: ignore[arg-type]


def test_command_line_levels_replace_the_scenarios() -> None:
    plan = build_plan(load_scenario("io_bound"),
                      PlanOptions(servers=["uvicorn"], concurrency=[3], available_cpus=[0, 1]))
    assert [(lv.load_model, lv.concurrency) for lv in plan.levels] == [("closed", 3)]


def test_unknown_server_lists_known_names() -> None:
    with pytest.raises(UsageError, match="gunicorn-sync"):
        build_plan(load_scenario("hello"),
                   PlanOptions(servers=["nginx-unit"], available_cpus=[0, 1]))


@pytest.mark.e2e
def test_dry_run_prints_plan_and_starts_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--scenario", "io_bound", "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "estimated" in proc.stdout and "uvicorn" in proc.stdout
    assert "granian-asgi" in proc.stdout


@pytest.mark.e2e
def test_head_to_head_on_the_command_line() -> None:
    """--dry-run says what the head-to-head adds; a plan of one gateway exits 2 in one line."""
    base = [sys.executable, "-m", "harness.cli", "run", "--scenario", "io_bound"]
    proc = subprocess.run([*base, "--head-to-head", "6", "--dry-run"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "head to head after the plan: best WSGI vs best ASGI, 6 pairs" in proc.stdout
    proc = subprocess.run([*base, "--servers", "uvicorn,daphne", "--head-to-head", "6"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "got only ASGI" in proc.stderr


@pytest.mark.e2e
def test_unknown_server_on_the_command_line_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--scenario", "hello", "--servers", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "uvicorn" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_repeats_rotate_each_target_through_the_round() -> None:
    from harness.runner import repeat_order

    targets = [f"t{i}" for i in range(20)]
    rounds = [repeat_order(targets, r, 3) for r in (1, 2, 3)]
    assert all(sorted(r) == sorted(targets) for r in rounds)
    # each target is early in one round, midway in another, late in the third
    for target in targets:
        slots = sorted(r.index(target) for r in rounds)
        assert slots[-1] - slots[0] >= 12
    assert [r[0] for r in rounds] == ["t0", "t6", "t12"]
    # more repeats than targets: one slot on each time
    assert [repeat_order(["a", "b"], r, 3) for r in (1, 2, 3)] == [
        ["a", "b"], ["b", "a"], ["a", "b"]]
    assert repeat_order([], 2, 3) == []
