"""harness.analysis: typed loading, histogram merging, summaries, plots' honesty, guidance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from harness.analysis import (
    INVALID_LABEL,
    NOISY_CV_MAX,
    SINGLE_RUN_NOISE_FRACTION,
    RunData,
    compute_guidance,
    load_histogram,
    load_run,
    load_runs,
    load_series,
    merge_histograms,
    merged_histogram,
    percentile_spectrum,
    plot_throughput,
    server_styles,
    summarize,
)
from harness.errors import UsageError
from harness.loadgen.result import STALL_NOTE
from harness.results import TRIALS_FILE
from tests.analysis_fixtures import histogram, record, write_run


def _two_server_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", [
        (record("0001-gunicorn-sync-c16-r1", server="gunicorn-sync", gateway="wsgi",
                achieved_rps=20.0, requests=40, workers=2), [400_000] * 40),
        (record("0002-uvicorn-c16-r1", achieved_rps=300.0, requests=600), [52_000] * 600),
        (record("0003-uvicorn-R50-r1", load_model="open", concurrency=None, rate=50.0,
                offered_rps=50.0, achieved_rps=50.0, requests=100), [51_000] * 100),
    ])


def test_load_run_types_columns_and_run_id(tmp_path: Path) -> None:
    df = load_run(_two_server_run(tmp_path))
    assert len(df) == 3
    assert (df["run_id"] == "run").all()
    assert str(df["concurrency"].dtype) == "Int64"
    assert df["concurrency"].isna().tolist() == [False, False, True]
    assert str(df["workers"].dtype) == "Int64" and df["threads"].isna().all()
    assert df["rate"].dtype == "float64" and df["achieved_rps"].dtype == "float64"
    assert df["valid"].dtype == bool and df["saturated"].dtype == bool
    for name in ("server", "gateway", "load_model"):
        assert isinstance(df[name].dtype, pd.CategoricalDtype), name
    assert df["level"].tolist() == [16.0, 16.0, 50.0]
    assert df.loc[0, "p50_ms"] == pytest.approx(400.0, rel=1e-3)


def test_load_runs_combines_with_run_id(tmp_path: Path) -> None:
    a = _two_server_run(tmp_path / "a")
    b = write_run(tmp_path / "b" / "other", [(record("0001-hypercorn-c16-r1", server="hypercorn"),
                                               [60_000] * 10)])
    df = load_runs([a, b])
    assert df.groupby("run_id").size().to_dict() == {"other": 1, "run": 3}
    assert set(df["server"].cat.categories) == {"gunicorn-sync", "uvicorn", "hypercorn"}


def test_bad_run_folders_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no run\.json"):
        load_run(tmp_path / "empty")
    run = _two_server_run(tmp_path)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(UsageError, match="schema_version 99"):
        load_run(run)
    (run / "run.json").write_text(json.dumps(meta))
    text = (run / TRIALS_FILE).read_text().replace(",300,", ",lots,", 1)
    (run / TRIALS_FILE).write_text(text)
    with pytest.raises(UsageError, match="achieved_rps: expected a number, got 'lots'"):
        load_run(run)
    (run / TRIALS_FILE).unlink()
    with pytest.raises(UsageError, match=r"no trials\.csv"):
        load_run(run)


def test_merge_adds_counts_never_averages_percentiles() -> None:
    fast = histogram([1_000] * 99 + [100_000])  # p99 1 ms
    slow = histogram([1_000] * 50 + [50_000] * 50)  # p99 50 ms
    merged = merge_histograms([fast, slow])
    assert merged is not None
    assert merged.get_total_count() == 200
    assert merged.get_count_at_value(1_000) == 149
    assert merged.get_count_at_value(50_000) == 50
    assert merged.get_max_value() == fast.get_max_value()
    # The pooled p75 is 50 ms; averaging the two p75s would say about 25 ms.
    assert merged.get_value_at_percentile(75) == pytest.approx(50_000, rel=1e-3)


def test_merge_accepts_histograms_of_different_ranges() -> None:
    from hdrh.histogram import HdrHistogram

    wide = HdrHistogram(1, 3_600_000_000, 2)
    wide.record_value(2_000_000_000)
    merged = merge_histograms([histogram([1_000] * 3), wide])
    assert merged is not None and merged.get_total_count() == 4
    assert merged.get_max_value() >= 1_990_000_000


def test_summary_pools_repeats_from_histograms(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-uvicorn-c16-r1", repeat=1, achieved_rps=100.0, server_rss_mb=30.0),
         [10_000] * 100),
        (record("0002-uvicorn-c16-r2", repeat=2, achieved_rps=120.0, server_rss_mb=34.0),
         [10_000] * 90 + [200_000] * 10),
        (record("0003-uvicorn-c16-r3", repeat=3, achieved_rps=110.0, server_rss_mb=32.0),
         [10_000] * 100),
    ])
    run = RunData.load(run_dir)
    summary = summarize(run)
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row["trial_ids"] == ("0001-uvicorn-c16-r1", "0002-uvicorn-c16-r2",
                                "0003-uvicorn-c16-r3")
    assert row["achieved_rps"] == pytest.approx(110.0)
    assert row["rps_cv"] == pytest.approx(10.0 / 110.0)
    assert row["server_rss_mb"] == 34.0
    merged = merged_histogram(run_dir, list(row["trial_ids"]))
    assert merged is not None and merged.get_total_count() == 300
    # 10 slow of 300: the pooled p99 is the slow value; repeat 1's own p99 is 10 ms.
    assert row["p99_ms"] == pytest.approx(merged.get_value_at_percentile(99) / 1000.0)
    assert row["p99_ms"] > 150.0
    assert row["valid"]


def test_missing_histogram_falls_back_to_worst_repeat(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-uvicorn-c16-r1", p99_ms=70.0), None),
        (record("0002-uvicorn-c16-r2", repeat=2, p99_ms=90.0), [10_000] * 10),
    ])
    assert load_histogram(run_dir, "0001-uvicorn-c16-r1") is None
    row = summarize(RunData.load(run_dir)).iloc[0]
    assert row["p99_ms"] == pytest.approx(70.0)  # repeat 2's p99 was rewritten to 10 ms


def test_percentile_spectrum_agrees_with_hdrh() -> None:
    hist = histogram(list(range(1_000, 101_000, 10)))
    spectrum = percentile_spectrum(hist, points=50)
    assert spectrum["inverse_tail"].is_monotonic_increasing
    assert spectrum["value_ms"].is_monotonic_increasing
    for _, point in spectrum.iloc[1::7].iterrows():
        expected = hist.get_value_at_percentile(point["percentile"]) / 1000.0
        assert point["value_ms"] == pytest.approx(expected, rel=1e-6)
    assert spectrum["percentile"].iloc[-1] == pytest.approx(100 * (1 - 1 / 10_000))


def test_load_series_types(tmp_path: Path) -> None:
    run_dir = _two_server_run(tmp_path)
    series = load_series(run_dir, "0002-uvicorn-c16-r1")
    assert series["second"].tolist() == [0, 1]
    assert str(series["requests"].dtype) == "Int64"
    assert series["p99_ms"].dtype == "float64"
    # this fixture writes no "completed" (as runs before it existed): its requests stand in
    # (harness.analysis.migrate), never zero
    assert str(series["completed"].dtype) == "Int64"
    assert series["completed"].tolist() == series["requests"].tolist()
    assert load_series(run_dir, "9999-nothing").empty


# -- invalid trials and guidance --------------------------------------------------------------

def test_invalid_levels_are_never_ranked(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        # The fastest by far, but invalid: it must not win anything.
        (record("0001-granian-asgi-c16-r1", server="granian-asgi", achieved_rps=9_000.0,
                server_cpu_pct=10.0, server_rss_mb=5.0, valid=False,
                invalid_reason="errors 5.00% of requests (limit 0.1%)"), [1_000] * 50),
        # One invalid repeat makes the whole level unranked.
        (record("0002-hypercorn-c16-r1", server="hypercorn", achieved_rps=800.0), [5_000] * 50),
        (record("0003-hypercorn-c16-r2", server="hypercorn", repeat=2, achieved_rps=800.0,
                valid=False, saturated=True, invalid_reason="generator saturated: CPU 97%"),
         [5_000] * 50),
        (record("0004-uvicorn-c16-r1", achieved_rps=300.0), [52_000] * 50),
        (record("0005-gunicorn-sync-c16-r1", server="gunicorn-sync", gateway="wsgi",
                achieved_rps=20.0, server_rss_mb=40.0), [400_000] * 50),
    ])
    run = RunData.load(run_dir)
    summary = summarize(run)
    invalid_servers = set(summary[~summary["valid"]]["server"])
    assert invalid_servers == {"granian-asgi", "hypercorn"}
    items = compute_guidance(run, summary)
    bad_ids = {"0001-granian-asgi-c16-r1", "0002-hypercorn-c16-r1", "0003-hypercorn-c16-r2"}
    for item in items:
        if not item.caveat:
            assert not bad_ids & set(item.trial_ids), item.text
            assert "granian" not in item.text and "hypercorn" not in item.text
    best = next(i for i in items if i.topic == "best")
    assert best.trial_ids == ("0004-uvicorn-c16-r1",)
    caveats = {i.trial_ids: i.text for i in items if i.topic == "invalid"}
    assert "errors 5.00%" in caveats[("0001-granian-asgi-c16-r1",)]
    assert "generator saturated" in caveats[("0002-hypercorn-c16-r1", "0003-hypercorn-c16-r2")]


def test_guidance_compares_best_wsgi_and_asgi_with_numbers(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-gunicorn-sync-c256-r1", server="gunicorn-sync", gateway="wsgi",
                concurrency=256, achieved_rps=20.0, server_cpu_pct=8.0), [900_000] * 50),
        (record("0002-uvicorn-c256-r1", concurrency=256, achieved_rps=162.0,
                server_cpu_pct=90.0), [62_000] * 50),
    ])
    run = RunData.load(run_dir)
    item = next(i for i in compute_guidance(run, summarize(run)) if i.topic == "wsgi_vs_asgi")
    assert item.text.startswith("I/O-bound, 256 concurrent clients")
    assert "uvicorn (ASGI) served 8.1× the throughput of gunicorn-sync (WSGI)" in item.text
    assert "(162 vs 20.0 req/s)" in item.text
    assert "p99 of 62.0 ms vs 900 ms" in item.text
    assert "same single CPU" in item.text
    assert item.values["ratio"] == pytest.approx(8.1)
    assert set(item.trial_ids) == {"0001-gunicorn-sync-c256-r1", "0002-uvicorn-c256-r1"}
    efficiency = next(i for i in compute_guidance(run, summarize(run)) if i.topic == "efficiency")
    # 20 req/s on 8 % of a core beats 162 req/s on 90 %: efficiency is not throughput.
    assert "peak throughput: gunicorn-sync (WSGI) 250 requests per CPU-second" in efficiency.text
    assert "least efficient: uvicorn (ASGI) 180 requests per CPU-second" in efficiency.text


def test_noisy_repeats_are_flagged_with_a_confidence_interval(tmp_path: Path) -> None:
    rows = [(record(f"000{i}-uvicorn-c16-r{i}", repeat=i, achieved_rps=rps), [50_000] * 20)
            for i, rps in enumerate((100.0, 140.0, 70.0), start=1)]
    rows += [(record(f"000{i + 3}-hypercorn-c16-r{i}", server="hypercorn", repeat=i,
                     achieved_rps=rps), [50_000] * 20)
             for i, rps in enumerate((100.0, 101.0, 99.0), start=1)]
    run = RunData.load(write_run(tmp_path / "run", rows))
    items = compute_guidance(run, summarize(run))
    noisy = [i for i in items if i.topic == "noisy"]
    assert len(noisy) == 1 and noisy[0].caveat
    assert noisy[0].text.startswith("Noisy: uvicorn (ASGI) at 16 concurrent clients")
    cv = pd.Series([100.0, 140.0, 70.0]).std() / pd.Series([100.0, 140.0, 70.0]).mean()
    assert cv > NOISY_CV_MAX
    assert noisy[0].values["cv_pct"] == pytest.approx(100 * cv)
    assert f"{100 * cv:.0f} %" in noisy[0].text
    low, high = noisy[0].values["ci_low"], noisy[0].values["ci_high"]
    assert low < 103.33 < high
    assert "95% confidence interval" in noisy[0].text


def test_a_noisy_level_says_how_many_of_its_repeats_stalled(tmp_path: Path) -> None:
    stall = f"{STALL_NOTE} in 3 of its 5 measured seconds: ..."
    rows = [(record(f"000{i}-granian-wsgi-c512-r{i}", server="granian-wsgi", gateway="wsgi",
                    concurrency=512, repeat=i, achieved_rps=rps, notes=note), [50_000] * 20)
            for i, (rps, note) in enumerate(((1760.0, stall), (4289.0, ""), (3404.0, "")),
                                            start=1)]
    run = RunData.load(write_run(tmp_path / "run", rows))
    noisy = [i for i in compute_guidance(run, summarize(run)) if i.topic == "noisy"]
    assert len(noisy) == 1
    assert "; 1 of the 3 repeats stalled (whole seconds with next to no answers" in noisy[0].text
    assert noisy[0].values["stalled"] == 1


def test_single_repeat_and_unmeasured_targets_are_caveats(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [(record("0001-uvicorn-c16-r1"), [50_000] * 10)],
                        targets=[{"server": "uwsgi", "gateway": "wsgi", "status": "unsupported",
                                  "reason": "no WebSocket in WSGI"}],
                        status="interrupted")
    run = RunData.load(run_dir)
    items = compute_guidance(run, summarize(run))
    topics = {i.topic: i for i in items}
    assert topics["single_repeat"].caveat
    assert f"move by {SINGLE_RUN_NOISE_FRACTION:.0%} or more" in topics["single_repeat"].text
    assert "uwsgi was not measured (unsupported): no WebSocket in WSGI" in topics["target"].text
    assert "interrupted" in topics["run_status"].text


def test_no_valid_trial_ranks_nothing(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-uvicorn-c16-r1", valid=False, invalid_reason="server died: exit 1",
                status="failed"), [50_000] * 10)])
    run = RunData.load(run_dir)
    items = compute_guidance(run, summarize(run))
    assert items[0].topic == "none_valid"
    assert all(i.caveat for i in items)


# -- plots --------------------------------------------------------------------------------------

def _hue(colour: str) -> float:
    return float(matplotlib.colors.rgb_to_hsv(matplotlib.colors.to_rgb(colour))[0])


def test_colours_keep_gateways_apart() -> None:
    pairs = [("gunicorn-sync", "wsgi"), ("gunicorn-gthread", "wsgi"), ("uwsgi", "wsgi"),
             ("granian-wsgi", "wsgi"), ("gunicorn-gevent", "wsgi"), ("my-wsgi", "wsgi"),
             ("uvicorn", "asgi"), ("hypercorn", "asgi"), ("daphne", "asgi"),
             ("granian-asgi", "asgi"), ("gunicorn-uvicorn", "asgi"), ("uvicorn-h11", "asgi"),
             ("my-asgi", "asgi")]
    styles = server_styles(pairs)
    for server, gateway in pairs:
        hue = _hue(styles[server].colour)
        if gateway == "wsgi":
            assert 0.2 <= hue <= 0.7, (server, hue)  # greens to blues
        else:
            assert hue <= 0.12 or hue >= 0.9, (server, hue)  # reds to oranges
    # Stable: the same server gets the same colour whatever else is in the report.
    assert server_styles([("uvicorn", "asgi")])["uvicorn"] == styles["uvicorn"]
    assert len({s.colour for s in styles.values()}) == len(pairs)


def test_throughput_plot_marks_invalid_points_apart(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [
        (record("0001-uvicorn-c16-r1", concurrency=16, achieved_rps=300.0), [50_000] * 10),
        (record("0002-uvicorn-c64-r1", concurrency=64, achieved_rps=900.0, valid=False,
                invalid_reason="errors"), [50_000] * 10),
    ])
    summary = summarize(RunData.load(run_dir))
    fig = plot_throughput(summary)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert INVALID_LABEL in [t.get_text() for t in legend.get_texts()]
    coloured = [line for line in ax.lines if line.get_label() == "uvicorn (ASGI)"]
    assert len(coloured) == 1
    xdata = np.asarray(coloured[0].get_xdata(), dtype=float)
    assert xdata.tolist() == [16.0]  # the invalid level is not on the valid line
    grey = [line for line in ax.lines
            if 900.0 in np.asarray(line.get_ydata(), dtype=float).tolist()]
    assert grey and all(line.get_markerfacecolor() == "none" or line.get_marker() == "x"
                        for line in grey)
    assert math.isclose(ax.get_ylim()[0], 0.0)


def test_connections_held_by_one_worker_are_a_caveat(tmp_path: Path) -> None:
    # gthread-like: at 16 clients one of 3 workers held every connection in 2 of 3 repeats;
    # at 64 clients they spread. uvicorn has one process: its census is never judged.
    spreads = {16: ("16 0 0", "9 4 3", "15 1 0"), 64: ("22 21 21", "20 22 22", "23 21 20")}
    rows = []
    for clients, per_repeat in spreads.items():
        for repeat, spread in enumerate(per_repeat, start=1):
            rows.append((record(f"g-c{clients}-r{repeat}", server="gunicorn-gthread",
                                gateway="wsgi", concurrency=clients, repeat=repeat, workers=3,
                                threads=2, connections_per_worker=spread), [50_000] * 20))
            rows.append((record(f"u-c{clients}-r{repeat}", concurrency=clients, repeat=repeat,
                                connections_per_worker=str(clients)), [50_000] * 20))
    run = RunData.load(write_run(tmp_path / "run", rows))
    items = [i for i in compute_guidance(run, summarize(run)) if i.topic == "uneven"]
    assert len(items) == 1 and items[0].caveat
    text = items[0].text
    assert "gunicorn-gthread (WSGI): at 16 concurrent clients 16 0 0 (2 of 3 repeats)" in text
    assert "64 concurrent clients" not in text and "uvicorn" not in text
    assert set(items[0].trial_ids) == {"g-c16-r1", "g-c16-r3"}
    assert items[0].values["worst_share"] == pytest.approx(1.0)


def test_runs_without_a_census_have_no_spread_caveat(tmp_path: Path) -> None:
    run = RunData.load(_two_server_run(tmp_path))
    assert run.trials["connections_per_worker"].isna().all() \
        or (run.trials["connections_per_worker"].fillna("") == "").all()
    assert not [i for i in compute_guidance(run, summarize(run)) if i.topic == "uneven"]


@pytest.mark.parametrize(("requests", "name"), [(250, "p90"), (2000, "p99")])
def test_tail_is_compared_at_a_percentile_the_requests_support(
        tmp_path: Path, requests: int, name: str) -> None:
    # hypercorn's slowest fifth is 3x uvicorn's; each trial has `requests` answers
    rows = []
    for repeat in (1, 2, 3):
        for server, slow_us in (("uvicorn", 60_000), ("hypercorn", 180_000)):
            values = [50_000] * (requests - requests // 5) + [slow_us] * (requests // 5)
            rows.append((record(f"{server}-R50-r{repeat}", server=server, load_model="open",
                                concurrency=None, rate=50.0, offered_rps=50.0,
                                achieved_rps=50.0, requests=requests, repeat=repeat,
                                duration_s=requests / 50.0,
                                p90_ms=slow_us / 1000, p99_ms=slow_us / 1000), values))
    run = RunData.load(write_run(tmp_path / "run", rows))
    tail = [i for i in compute_guidance(run, summarize(run)) if i.topic == "tail"]
    assert len(tail) == 1
    text = tail[0].text
    assert f"the lowest {name}: uvicorn (ASGI) 60" in text
    assert "hypercorn (ASGI) 180" in text and "3.0× higher" in text
    rests = f"a trial had only {requests:,} requests, and its p99 would rest on 2.5 of them"
    assert (rests in text) == (name == "p90")
    assert tail[0].values["percentile"] == float(name[1:])
    assert tail[0].winners == ("uvicorn",)  # the lowest end (agreement.py judges by it)
