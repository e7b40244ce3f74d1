"""Issue 13, the report side: capacity at an objective, three outcomes, rankings that hold,
Little's law, a busy machine. Fast: synthetic run folders only."""

from __future__ import annotations

import csv
import math
import shutil
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis import (
    INVALID_LABEL,
    OVERLOADED_LABEL,
    Finding,
    RunData,
    compute_guidance,
    load_capacity,
    mean_ci,
    plot_capacity,
    plot_throughput,
    server_capacities,
    summarize,
    write_report,
)
from harness.analysis.capacity import best_of_each_gateway, objective_of
from harness.analysis.report import PLOT_LEGEND
from harness.analysis.stats import SINGLE_RUN_NOISE_FRACTION
from harness.analysis.wording import fmt_ratio, fmt_rps
from harness.noise import BUSY_OTHERS_PCT
from harness.plan import PlanOptions, build_plan
from harness.results import CAPACITY_FILE, TRIALS_FILE, CapacityRecord, RunWriter
from harness.scenarios import load_scenario
from harness.searches import best_of_each_gateway as runner_best_of_each_gateway
from harness.slo import parse_slo
from tests.analysis_fixtures import meta, record, report_text, synthetic_run, write_run

SLO = parse_slo("p99=200ms")


@pytest.fixture(scope="module")
def capacity_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = synthetic_run(tmp_path_factory.mktemp("capacity") / "cap-run", repeats=2,
                            concurrency=(16, 256), rates=(50.0, 800.0), slo=SLO,
                            busy=(("uvicorn", 16),))
    write_report([run_dir])
    return run_dir


def _trials(run_dir: Path) -> dict[str, dict[str, str]]:
    with open(run_dir / TRIALS_FILE, newline="", encoding="utf-8") as handle:
        return {row["trial_id"]: row for row in csv.DictReader(handle)}


def _capacity_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / CAPACITY_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _items(run_dir: Path) -> dict[str, list[Finding]]:
    run = RunData.load(run_dir)
    found: dict[str, list[Finding]] = {}
    for item in compute_guidance(run, summarize(run)):
        found.setdefault(item.topic, []).append(item)
    return found


# -- capacity ----------------------------------------------------------------------------------

def test_load_capacity_is_typed(capacity_run: Path, tmp_path: Path) -> None:
    caps = load_capacity(capacity_run)
    assert len(caps) == 4 * 2  # four servers, two repeats
    assert str(caps["repeat"].dtype) == "Int64" and caps["capacity_rps"].dtype == "float64"
    assert (caps["run_id"] == "cap-run").all()
    trials = _trials(capacity_run)
    for tid in caps["proof_trial"].dropna():
        assert trials[tid]["phase"] == "search"
        assert float(trials[tid]["p99_ms"]) <= SLO.threshold_ms
    empty = load_capacity(write_run(tmp_path / "none", []))
    assert empty.empty and "capacity_rps" in empty.columns
    assert str(caps["pair"].dtype) == "Int64" and caps["pair"].isna().all()
    # a capacity.csv from before the pair column still loads, its pair empty
    older = tmp_path / "older"
    shutil.copytree(capacity_run, older)
    rows = _capacity_rows(older)
    columns = [c for c in rows[0] if c != "pair"]
    with open(older / CAPACITY_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert "pair" not in (older / CAPACITY_FILE).read_text(encoding="utf-8").splitlines()[0]
    loaded = load_capacity(older)
    assert len(loaded) == len(caps) and loaded["pair"].isna().all()
    assert [i.text for i in _items(older)["capacity_wsgi_vs_asgi"]] == \
        [i.text for i in _items(capacity_run)["capacity_wsgi_vs_asgi"]]


def test_capacity_guidance_traces_to_capacity_csv(capacity_run: Path) -> None:
    rows = _capacity_rows(capacity_run)
    trials = _trials(capacity_run)
    by_server: dict[str, list[float]] = {}
    for row in rows:
        by_server.setdefault(row["server"], []).append(float(row["capacity_rps"]))
    items = _items(capacity_run)
    (summary,) = items["capacity"]
    for server, figures in by_server.items():
        assert f"{server} (" in summary.text
        assert f"{fmt_rps(statistics.mean(figures))} req/s" in summary.text
        spread = mean_ci(figures)
        assert spread is not None and spread.text() in summary.text
    (versus,) = items["capacity_wsgi_vs_asgi"]
    text = versus.text
    assert text.startswith("At p99 <= 200 ms, errors <= 0.1%, best WSGI vs best ASGI: ")
    means = {s: statistics.mean(v) for s, v in by_server.items()}
    best_wsgi = max(("gunicorn-sync", "gunicorn-gthread"), key=means.__getitem__)
    best_asgi = max(("uvicorn", "hypercorn"), key=means.__getitem__)
    ratio = means[best_asgi] / means[best_wsgi]
    assert f"{best_asgi} (ASGI) sustained {fmt_rps(means[best_asgi])} req/s" in text
    assert f": {fmt_ratio(ratio)} (t-test on log capacity, 2 vs 2 repeats: p" in text
    cited = set(versus.trial_ids)
    expected = {r[c] for r in rows if r["server"] in (best_wsgi, best_asgi)
                for c in ("proof_trial", "failed_trial") if r[c]}
    assert cited == expected
    for tid in cited:  # each failed trial missed the objective or did not keep up
        row = trials[tid]
        assert row["server"] in (best_wsgi, best_asgi) and row["phase"] == "search"
    (classic,) = items["capacity_classic"]
    assert "gunicorn-sync (WSGI)" in classic.text and "uvicorn (ASGI)" in classic.text
    assert f"{fmt_ratio(means['uvicorn'] / means['gunicorn-sync'])}" in classic.text


def test_report_has_capacity_table_and_plot(capacity_run: Path) -> None:
    markdown = report_text(capacity_run)
    assert "### Capacity at the objective" in markdown
    head = "| server | gateway | repeat | status | capacity req/s | spread | p99 at capacity, ms |"
    assert head in markdown
    for row in _capacity_rows(capacity_run):
        assert f"| {row['server']} | {row['gateway'].upper()} | {row['repeat']} | found | " \
               f"{fmt_rps(float(row['capacity_rps']))} |" in markdown
        assert f"| {row['proof_trial'][:4]} |" in markdown
    assert "| uvicorn | ASGI | all 2 | found |" in markdown
    assert "95 % CI of the mean" in markdown
    assert (capacity_run / "plots" / "cap-run-capacity.png").is_file()
    html = report_text(capacity_run, "html")
    assert "<h3>Capacity at the objective</h3>" in html


def test_capacity_plot_marks_objective_and_capacities(capacity_run: Path) -> None:
    run = RunData.load(capacity_run)
    caps = load_capacity(capacity_run)
    objective = objective_of(run.meta, caps)
    assert objective is not None and objective.column == "p99_ms"
    fig = plot_capacity(run.trials, caps, objective.column, "p99", objective.threshold_ms)
    assert fig is not None
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert "objective: p99 <= 200 ms" in labels and OVERLOADED_LABEL in labels
    horizontal = [line for line in ax.lines
                  if np.asarray(line.get_ydata(), dtype=float).tolist() == [200.0, 200.0]]
    assert horizontal
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    proofs = set(caps["proof_trial"].dropna())
    assert sum(len(np.asarray(s.get_xdata())) for s in stars) == len(proofs)
    # every open-loop trial is drawn, the search steps included
    opened = run.trials[run.trials["load_model"] == "open"]
    assert (opened["phase"] == "search").sum() > 0
    drawn = {(float(x), float(y)) for line in ax.lines
             for x, y in zip(np.asarray(line.get_xdata(), dtype=float),
                             np.asarray(line.get_ydata(), dtype=float), strict=True)}
    assert {(float(r), float(p)) for r, p in zip(opened["rate"], opened["p99_ms"],
                                                   strict=True)} <= drawn


Searches = Mapping[str, Sequence[tuple[str, float | None]]]


def _capacity_fixture(tmp_path: Path, figures: Searches, pairs: Searches | None = None) -> Path:
    """A run with capacity.csv rows only (and their proof trials): server -> (status, rps);
    ``server/app`` names the app family (default raw). ``pairs``: head-to-head searches after
    the plan, the k-th of each server in pair k."""
    writer = RunWriter(tmp_path / "caprun", meta("caprun", plan={"slo": SLO.to_dict()}))
    rounds = max(len(repeats) for repeats in figures.values())
    searches: list[tuple[str, int, int | None, tuple[str, float | None]]] = [
        (key, repeat, None, found) for key, repeats in figures.items()
        for repeat, found in enumerate(repeats, start=1)]
    searches += [(key, rounds + k, k, found) for key, repeats in (pairs or {}).items()
                 for k, found in enumerate(repeats, start=1)]
    for index, (key, repeat, pair, (status, rps)) in enumerate(searches, start=1):
        server, _, app = key.partition("/")
        app = app or "raw"
        gateway = "wsgi" if server.startswith("gunicorn") else "asgi"
        tid = f"{index:04d}-{server}+{app}-R{rps}-r{repeat}"
        writer.append_trial(record(tid, server=server, app=app, gateway=gateway,
                                   load_model="open",
                                   concurrency=None, rate=rps, achieved_rps=rps or 1.0,
                                   repeat=repeat, phase="search"))
        writer.append_capacity(CapacityRecord(
            server=server, repeat=repeat, gateway=gateway, app=app, slo=SLO.describe(),
            status=status, capacity_rps=rps, proof_trial=tid if rps else None,
            failed_rate=None, failed_trial=None, steps=5,
            note="" if status == "found" else "trial 0099 at 9000 req/s could not be "
            "judged: generator saturated", pair=pair))
    return tmp_path / "caprun"


def test_close_capacities_are_no_significant_difference(tmp_path: Path) -> None:
    run_dir = _capacity_fixture(tmp_path, {
        "gunicorn-gthread": [("found", 1000.0), ("found", 1300.0)],
        "uvicorn": [("found", 1100.0), ("found", 1250.0)]})
    (item,) = _items(run_dir)["capacity_wsgi_vs_asgi"]
    assert "no significant difference" in item.text
    assert item.values["ranked"] == 0.0
    assert item.values["p_value"] > 0.05


def test_each_gateways_best_capacity_is_compared_its_tied_peers_named_beside_it(
        tmp_path: Path) -> None:
    """The second published io_bound run's capacities (granian-wsgi as gunicorn-gevent,
    granian-asgi and gunicorn-uvicorn as hypercorn and daphne): the best ASGI server against
    the best WSGI one, p = 0.045. The weakest of the ASGI servers tied with the best (3,809
    req/s) against the best WSGI (3,290) would say no significant difference (p = 0.398)."""
    run_dir = _capacity_fixture(tmp_path, {
        "gunicorn-gevent": [("found", 3250.0), ("found", 3294.0), ("found", 3325.0)],
        "uvicorn": [("found", 5000.0), ("found", 3850.0), ("found", 3881.0)],
        "hypercorn": [("found", 3594.0), ("found", 4262.0), ("found", 4025.0)],
        "daphne": [("found", 2953.0), ("found", 3750.0), ("found", 4725.0)]})
    (versus,) = _items(run_dir)["capacity_wsgi_vs_asgi"]
    assert versus.text.startswith(
        "At p99 <= 200 ms, errors <= 0.1%, best WSGI vs best ASGI: uvicorn (ASGI) (tied with "
        "daphne (ASGI) and hypercorn (ASGI): none shown more than 5 % behind another) "
        "sustained 4,244 req/s"), versus.text
    assert ", gunicorn-gevent (WSGI) 3,290 req/s" in versus.text and ": 1.3× (" in versus.text
    assert versus.values["ranked"] == 1.0 and 0.04 < versus.values["p_value"] < 0.05
    assert versus.winners == ("daphne", "hypercorn", "uvicorn")


def test_the_classic_pair_is_compared_when_each_is_only_the_best_of_a_tied_group(
        tmp_path: Path) -> None:
    # cpu_bound: gunicorn-sync and uvicorn were each gateway's best, each tied with others
    run_dir = _capacity_fixture(tmp_path, {
        "gunicorn-sync": [("found", 189.0), ("found", 140.0), ("found", 180.0)],
        "gunicorn-gthread": [("found", 188.0), ("found", 111.0), ("found", 139.0)],
        "uvicorn": [("found", 127.0), ("found", 123.0), ("found", 190.0)],
        "daphne": [("found", 109.0), ("found", 111.0), ("found", 142.0)]})
    items = _items(run_dir)
    (versus,) = items["capacity_wsgi_vs_asgi"]
    assert "gunicorn-sync (WSGI) (tied with gunicorn-gthread (WSGI)" in versus.text
    (classic,) = items["capacity_classic"]
    assert "classic sync WSGI vs an event loop: no significant difference: gunicorn-sync " \
           "(WSGI) sustained 170 req/s" in classic.text


def test_each_app_family_has_its_own_capacity(tmp_path: Path) -> None:
    # a multi-family run (--app raw,django): one server, two targets, two capacities
    run_dir = _capacity_fixture(tmp_path, {
        "gunicorn-sync/raw": [("found", 55.0)], "uvicorn/raw": [("found", 4800.0)],
        "uvicorn/django": [("found", 1100.0)]})
    (summary,) = _items(run_dir)["capacity"]
    assert "uvicorn · raw (ASGI) 4,800 req/s" in summary.text
    assert "uvicorn · django (ASGI) 1,100 req/s" in summary.text
    (versus,) = _items(run_dir)["capacity_wsgi_vs_asgi"]
    assert "uvicorn · raw (ASGI) sustained 4,800 req/s" in versus.text
    write_report([run_dir])
    report = report_text(run_dir)
    assert "| uvicorn · django | ASGI | 1 |" in report


def test_a_lower_bound_loser_is_not_ranked(tmp_path: Path) -> None:
    run_dir = _capacity_fixture(tmp_path, {
        "gunicorn-sync": [("found", 50.0)],
        "uvicorn": [("undetermined", 40.0)]})
    items = _items(run_dir)
    assert "uvicorn (ASGI) at least 40.0 req/s (a lower bound" in items["capacity"][0].text
    (versus,) = items["capacity_wsgi_vs_asgi"]
    assert "cannot be ranked" in versus.text
    run_dir2 = _capacity_fixture(tmp_path / "b", {
        "gunicorn-sync": [("found", 50.0)], "uvicorn": [("undetermined", 4800.0)]})
    (versus,) = _items(run_dir2)["capacity_wsgi_vs_asgi"]
    assert "uvicorn (ASGI) sustained at least 4,800 req/s" in versus.text
    assert ": at least 96.0×" in versus.text


# io_bound's reference run of Dec 4 (ref_h2h_a), req/s: the plan's three searches of the best
# WSGI (granian-wsgi; gunicorn-gevent here, the fixture's WSGI name) and the best ASGI
# server, then their eight head-to-head searches.
PLAN_WSGI = [("found", 2906.0), ("found", 2200.0), ("found", 3444.0)]
PLAN_ASGI = [("found", 4556.0), ("found", 2422.0), ("found", 4875.0)]
H2H_WSGI = (3463.0, 3332.0, 3332.0, 3572.0, 3200.0, 2500.0, 2300.0, 3463.0)
H2H_ASGI = (3712.0, 3712.0, 5400.0, 2616.0, 4556.0, 4556.0, 4894.0, 3712.0)


def test_head_to_head_searches_join_the_plans_in_best_wsgi_vs_best_asgi(tmp_path: Path) -> None:
    """Three searches a server cannot tell 1.3x apart on this VM; with the eight head-to-head
    searches of each, the comparison takes all eleven and can. The plan's own capacities (the
    summary, the table's mean) stay the plan's."""
    plan = {"gunicorn-gevent": PLAN_WSGI, "uvicorn": PLAN_ASGI}
    (alone,) = _items(_capacity_fixture(tmp_path / "plan", plan))["capacity_wsgi_vs_asgi"]
    assert alone.values["ranked"] == 0.0 and "no significant difference" in alone.text
    run_dir = _capacity_fixture(tmp_path / "h2h", plan, pairs={
        "gunicorn-gevent": [("found", v) for v in H2H_WSGI],
        "uvicorn": [("found", v) for v in H2H_ASGI]})
    items = _items(run_dir)
    (versus,) = items["capacity_wsgi_vs_asgi"]
    wsgi = [v for _, v in PLAN_WSGI] + list(H2H_WSGI)
    asgi = [v for _, v in PLAN_ASGI] + list(H2H_ASGI)
    assert versus.text.startswith(
        "At p99 <= 200 ms, errors <= 0.1%, best WSGI vs best ASGI, with the head-to-head "
        f"searches: uvicorn (ASGI) sustained {fmt_rps(statistics.fmean(asgi))} req/s "
        "(95 % CI of the mean "), versus.text
    assert "over 11 repeats" in versus.text and "t-test on log capacity, 11 vs 11" in versus.text
    assert versus.values["ranked"] == 1.0 and versus.values["p_value"] < 0.05
    assert versus.values["ratio"] == pytest.approx(statistics.fmean(asgi) / statistics.fmean(wsgi))
    assert versus.winners == ("uvicorn",)
    (summary,) = items["capacity"]
    assert f"uvicorn (ASGI) {fmt_rps(statistics.fmean(v for _, v in PLAN_ASGI))} req/s" \
        in summary.text
    assert len(load_capacity(run_dir)) == 6 + 16
    write_report([run_dir])
    report = report_text(run_dir)
    for k in (1, 8):
        assert f"| uvicorn | ASGI | head to head {k} |" in report
        assert f"| gunicorn-gevent | WSGI | head to head {k} |" in report


def test_a_head_to_head_search_without_a_capacity_leaves_the_plans_comparison(
        tmp_path: Path) -> None:
    wsgi: list[tuple[str, float | None]] = [("found", v) for v in H2H_WSGI]
    wsgi[2] = ("below_min", None)
    plan = {"gunicorn-gevent": PLAN_WSGI, "uvicorn": PLAN_ASGI}
    run_dir = _capacity_fixture(tmp_path, plan, pairs={
        "gunicorn-gevent": wsgi, "uvicorn": [("found", v) for v in H2H_ASGI]})
    (versus,) = _items(run_dir)["capacity_wsgi_vs_asgi"]
    (alone,) = _items(_capacity_fixture(tmp_path / "plan", plan))["capacity_wsgi_vs_asgi"]
    assert versus.text == alone.text and "head-to-head" not in versus.text


def test_the_runner_picks_the_head_to_head_pair_by_the_reports_rule(tmp_path: Path) -> None:
    """The runner chooses the two servers before the report exists; both must pick the same:
    the highest mean capacity of each gateway over the plan's searches, a server counted only
    when every search of it has a figure, head-to-head rows left out."""
    plan = build_plan(load_scenario("io_bound"), PlanOptions(
        available_cpus=[0, 1],
        servers=["gunicorn-gevent", "gunicorn-gthread", "uvicorn", "daphne"]))
    by_name = {p.name: p for p in plan.runnable}
    figures: dict[str, list[tuple[str, float | None]]] = {
        "gunicorn-gevent": [("found", 1500.0), ("found", 1600.0)],
        "gunicorn-gthread": [("found", 3100.0), ("below_min", None)],  # not every one found
        "uvicorn": [("found", 4000.0), ("found", 4200.0)],
        "daphne": [("found", 4500.0), ("found", 4300.0)]}
    pairs = {"uvicorn": [("found", 9000.0)], "daphne": [("found", 100.0)]}  # left out
    run_dir = _capacity_fixture(tmp_path, figures, pairs)
    records = [(by_name[r["server"]], CapacityRecord(
        server=r["server"], repeat=int(r["repeat"]), gateway=r["gateway"], app=r["app"],
        slo=r["slo"], status=r["status"],
        capacity_rps=float(r["capacity_rps"]) if r["capacity_rps"] else None,
        proof_trial=None, failed_rate=None, failed_trial=None, steps=5, note="",
        pair=int(r["pair"]) if r["pair"] else None)) for r in _capacity_rows(run_dir)]
    chosen = runner_best_of_each_gateway(plan.runnable, records)
    assert chosen is not None and [p.name for p in chosen] == ["gunicorn-gevent", "daphne"]
    reported = best_of_each_gateway(server_capacities(load_capacity(run_dir)))
    assert reported is not None and [c.server for c in reported] == ["gunicorn-gevent", "daphne"]
    only_asgi = [(p, r) for p, r in records if r.gateway == "asgi"]
    assert runner_best_of_each_gateway(plan.runnable, only_asgi) is None


# -- three outcomes ------------------------------------------------------------------------------

def test_overloaded_is_a_result_invalid_is_not_ranked(capacity_run: Path) -> None:
    markdown = report_text(capacity_run)
    trials = _trials(capacity_run)
    overloaded = [r for r in trials.values() if r["outcome"] == "overloaded"
                  and r["phase"] == "sweep" and r["load_model"] == "closed"]
    assert overloaded
    reason = overloaded[0]["invalid_reason"]
    assert reason.startswith("errors ")
    assert "| overloaded: repeat 1: errors" in markdown or f"| overloaded: {reason}" in markdown
    assert "| invalid (not ranked): generator saturated" in markdown
    items = _items(capacity_run)
    over = items["overloaded"]
    assert over and not any(i.caveat for i in over)
    for item in over:
        assert item.text.startswith("Overloaded: ")
        assert all(trials[t]["outcome"] == "overloaded" for t in item.trial_ids)
    for item in items["invalid"]:
        assert item.caveat
        assert all(trials[t]["outcome"] == "invalid" for t in item.trial_ids)
        assert "invalid, the harness cannot vouch for it" in item.text
    assert "overloaded" in PLOT_LEGEND and INVALID_LABEL in PLOT_LEGEND
    assert PLOT_LEGEND in markdown


def test_plots_draw_overloaded_apart_from_invalid(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-uvicorn-c16-r1", concurrency=16, achieved_rps=300.0), [50_000] * 10),
        (record("0002-uvicorn-c64-r1", concurrency=64, achieved_rps=900.0, valid=False,
                outcome="overloaded", invalid_reason="errors 39.60% of requests"),
         [50_000] * 10),
        (record("0003-uvicorn-c256-r1", concurrency=256, achieved_rps=700.0, valid=False,
                outcome="invalid", invalid_reason="generator saturated"), [50_000] * 10),
    ])
    summary = summarize(RunData.load(run_dir))
    assert summary.set_index("level")["outcome"].to_dict() == {
        16.0: "valid", 64.0: "overloaded", 256.0: "invalid"}
    ax = plot_throughput(summary).axes[0]
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert OVERLOADED_LABEL in labels and INVALID_LABEL in labels
    uvicorn_colour = "#e8590c"
    at_900 = [line for line in ax.lines
              if np.asarray(line.get_ydata(), dtype=float).tolist() == [900.0]]
    assert len(at_900) == 1 and at_900[0].get_markeredgecolor() == uvicorn_colour
    assert at_900[0].get_markerfacecolor() == "none"
    at_700 = [line for line in ax.lines
              if np.asarray(line.get_ydata(), dtype=float).tolist() == [700.0]]
    assert {line.get_marker() for line in at_700} == {"s", "x"}  # ASGI: squares
    assert all(line.get_markeredgecolor() == "#9e9e9e" or line.get_color() == "#9e9e9e"
               for line in at_700)


# -- rankings that hold --------------------------------------------------------------------------

def _pair_run(tmp_path: Path, wsgi: list[float], asgi: list[float], level: int = 256) -> Path:
    rows = []
    for i, rps in enumerate(wsgi, start=1):
        rows.append((record(f"00{i:02d}-granian-wsgi-c{level}-r{i}", server="granian-wsgi",
                            gateway="wsgi", concurrency=level, repeat=i, achieved_rps=rps),
                     [60_000] * 20))
    for i, rps in enumerate(asgi, start=1):
        rows.append((record(f"01{i:02d}-uvicorn-c{level}-r{i}", concurrency=level, repeat=i,
                            achieved_rps=rps), [60_000] * 20))
    return write_run(tmp_path / "pair", rows)


def test_overlapping_repeats_are_no_significant_difference(tmp_path: Path) -> None:
    run_dir = _pair_run(tmp_path, [1000.0, 1300.0, 900.0], [1100.0, 1200.0, 1000.0])
    (item,) = _items(run_dir)["wsgi_vs_asgi"]
    text = item.text
    assert "no significant difference between uvicorn (ASGI) and granian-wsgi (WSGI)" in text
    assert "served" not in text.split("no significant")[1].split(";")[0]
    assert "t-test on log throughput, 3 vs 3 repeats: p = " in text
    spread = mean_ci([1100.0, 1200.0, 1000.0])
    assert spread is not None
    assert f"uvicorn {fmt_rps(spread.low)}–{fmt_rps(spread.high)}" in text
    assert "95 % CIs of the mean" in text


def test_separated_repeats_name_a_winner_with_p(tmp_path: Path) -> None:
    run_dir = _pair_run(tmp_path, [1000.0, 1050.0, 980.0], [3000.0, 3100.0, 2950.0])
    (item,) = _items(run_dir)["wsgi_vs_asgi"]
    text = item.text
    ratio = statistics.mean([3000.0, 3100.0, 2950.0]) / statistics.mean([1000.0, 1050.0, 980.0])
    assert f"uvicorn (ASGI) served {fmt_ratio(ratio)} the throughput of granian-wsgi" in text
    assert item.values["p_value"] < 0.05 and item.values["ranked"] == 1.0
    (best,) = _items(run_dir)["best"]
    spread = mean_ci([3000.0, 3100.0, 2950.0])
    assert spread is not None and spread.text() in best.text


def test_single_runs_under_the_noise_are_not_ranked(tmp_path: Path) -> None:
    run_dir = _pair_run(tmp_path, [1000.0], [1150.0])
    items = _items(run_dir)
    (item,) = items["wsgi_vs_asgi"]
    assert 1 + SINGLE_RUN_NOISE_FRACTION > 1150 / 1000
    assert "within run-to-run noise, not a ranking" in item.text
    assert "single_repeat" in items  # the caveat stays


# -- Little's law --------------------------------------------------------------------------------

def test_servers_at_the_loads_ceiling_are_not_ranked(tmp_path: Path) -> None:
    # /io?ms=50 and 16 clients: no server can pass 16 / 0.05 = 320 req/s
    run_dir = _pair_run(tmp_path, [300.0], [310.0], level=16)
    items = _items(run_dir)
    (versus,) = items["wsgi_vs_asgi"]
    text = versus.text
    assert "both sat at the load's own ceiling" in text
    assert "16 clients / 50.0 ms = 320 req/s" in text
    assert "a higher concurrency is needed to separate them" in text
    assert versus.values["ranked"] == 0.0
    (ceiling,) = items["ceiling"]
    assert ceiling.caveat and len(ceiling.trial_ids) == 2
    trials = _trials(run_dir)
    for tid in ceiling.trial_ids:
        assert float(trials[tid]["achieved_rps"]) >= 0.9 * 16 / 0.050


def test_the_floor_is_measured_without_a_declared_wait(tmp_path: Path) -> None:
    rows = [(record("0001-uvicorn-c1-r1", endpoint="/cpu?n=100", concurrency=1,
                    achieved_rps=240.0), [4_000] * 50),
            (record("0002-granian-wsgi-c1-r1", server="granian-wsgi", gateway="wsgi",
                    endpoint="/cpu?n=100", concurrency=1, achieved_rps=230.0), [4_100] * 50),
            (record("0003-uvicorn-c64-r1", endpoint="/cpu?n=100", concurrency=64,
                    achieved_rps=250.0), [250_000] * 50)]
    scenario = {"name": "cpu_bound", "kind": "cpu", "endpoint": "/cpu?n=100", "hash": "x"}
    run_dir = write_run(tmp_path / "cpu", rows, scenario=scenario)
    items = _items(run_dir)
    (ceiling,) = items["ceiling"]
    text = ceiling.text
    assert "at 1 concurrent clients" in text and "smallest p50 of any valid closed-loop" in text
    assert "0001-uvicorn-c1-r1" in ceiling.trial_ids
    # 250 req/s at 64 clients is far from 64 / 4 ms: no ceiling there
    assert all(i.values["level"] == 1.0 for i in items["ceiling"])


# -- a busy machine --------------------------------------------------------------------------------

def test_busy_trials_are_flagged_with_their_ids(capacity_run: Path) -> None:
    trials = _trials(capacity_run)
    busy_ids = {t for t, r in trials.items()
                if float(r["others_cpu_pct"]) > BUSY_OTHERS_PCT or "busy machine" in r["notes"]}
    assert busy_ids
    (item,) = _items(capacity_run)["busy"]
    assert item.caveat and set(item.trial_ids) == busy_ids
    assert f"Busy machine during {len(busy_ids)} of {len(trials)} trials" in item.text
    markdown = report_text(capacity_run)
    assert "busy machine: processes outside the harness used" in markdown
    first = sorted(busy_ids)[0]
    assert f"{first} (others {float(trials[first]['others_cpu_pct']):.0f} %" in item.text
    assert not math.isnan(item.values["max_others_pct"])


def test_search_steps_stay_out_of_the_level_tables(capacity_run: Path) -> None:
    run = RunData.load(capacity_run)
    search_ids = set(run.trials[run.trials["phase"] == "search"]["trial_id"])
    assert search_ids
    swept = {t for ids in summarize(run)["trial_ids"] for t in ids}
    assert not swept & search_ids
    every = {t for ids in summarize(run, phases=None)["trial_ids"] for t in ids}
    assert search_ids <= every
    markdown = report_text(capacity_run)
    assert all(f"| {t} | " in markdown for t in search_ids)  # in the list of all trials


def test_repeats_ending_on_the_same_step_are_told_by_their_bracket() -> None:
    from harness.analysis.capacity import ServerCapacity

    def rows(capacities: list[float], failed: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"repeat": list(range(1, len(capacities) + 1)),
                             "status": ["found"] * len(capacities),
                             "capacity_rps": capacities, "failed_rate": failed,
                             "proof_trial": ["p"] * len(capacities),
                             "failed_trial": ["f"] * len(capacities)})

    sharp = ServerCapacity(server="uwsgi", gateway="wsgi",
                           rows=rows([120.0, 120.0, 120.0], [126.0, 126.0, 132.0]))
    assert sharp.same_step == 126.0
    varied = ServerCapacity(server="uvicorn", gateway="asgi",
                            rows=rows([5000.0, 5200.0, 4800.0], [5250.0, 5460.0, 5040.0]))
    assert varied.same_step is None
    # the guidance sentence keeps one shape, so a second run whose repeats differ pairs with it
    assert "95 % CI of the mean 120–120 req/s" in sharp.figure_text()
