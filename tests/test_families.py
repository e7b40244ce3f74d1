"""harness.analysis.families: runs of several app families keep each (server, app) apart, and
the guidance within a family (groups, the cost against raw) is computed from valid levels only
and names its trials. Synthetic run folders only: fast."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import GROUP_KEYS, RunData, compute_guidance, plot_throughput, summarize
from harness.analysis.families import multi_app, series_name, series_run, series_view
from harness.analysis.findings.families import family_guidance
from harness.analysis.findings.record import Finding
from harness.analysis.report import write_report
from harness.analysis.wording import fmt_ms, fmt_ratio, fmt_rps
from tests.analysis_fixtures import report_text
from tests.support.synthetic import (
    SyntheticFamiliesSpec,
    SyntheticSpec,
    write_synthetic_families_run,
    write_synthetic_run,
)


@pytest.fixture(scope="module")
def families_run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return RunData.load(write_synthetic_families_run(tmp_path_factory.mktemp("fam") / "run"))


@pytest.fixture(scope="module")
def families_summary(families_run: RunData) -> pd.DataFrame:
    return summarize(families_run)


@pytest.fixture(scope="module")
def items(families_run: RunData, families_summary: pd.DataFrame) -> list[Finding]:
    return compute_guidance(families_run, families_summary)


def _row(summary: pd.DataFrame, server: str, app: str, level: int) -> pd.Series:
    match = summary[(summary["server"] == server) & (summary["app"] == app)
                    & (summary["level"] == level) & (summary["load_model"] == "closed")]
    assert len(match) == 1, (server, app, level)
    return match.iloc[0]


def _item(items: list[Finding], topic: str, start: str) -> Finding:
    found = [i for i in items if i.topic == topic and i.text.startswith(start)]
    assert len(found) == 1, [i.text for i in items if i.topic == topic]
    return found[0]


def _ids(*rows: pd.Series) -> tuple[str, ...]:
    return tuple(t for row in rows for t in row["trial_ids"])


# -- grouping ----------------------------------------------------------------------------------

def test_summary_keeps_each_server_and_app_apart(families_summary: pd.DataFrame) -> None:
    assert "app" in GROUP_KEYS
    pairs = set(zip(families_summary["server"], families_summary["app"], strict=True))
    assert len(pairs) == 10  # 4 families on gunicorn-sync, 6 on uvicorn
    assert len(families_summary) == 10 * 3  # three levels each, never merged
    assert set(families_summary["server"]) == {"gunicorn-sync", "uvicorn"}  # real names kept
    raw, django = (_row(families_summary, "uvicorn", a, 256) for a in ("raw", "django"))
    assert raw["achieved_rps"] == 2400.0 and django["achieved_rps"] == 300.0
    assert raw["trial_ids"] == ("0015-uvicorn+raw-c256-r1",)


def test_series_view_names_server_and_family(families_run: RunData,
                                             families_summary: pd.DataFrame) -> None:
    view = series_view(families_summary)
    assert series_name("uvicorn", "django") == "uvicorn · django"
    assert "uvicorn · django" in set(view["server"])
    assert len(set(view["server"])) == 10
    assert series_view(view)["server"].tolist() == view["server"].tolist()  # idempotent
    run = series_run(families_run)
    assert "gunicorn-sync · raw" in set(run.trials["server"].astype(str))
    assert {t["server"] for t in run.meta["targets"]} >= {"uvicorn · flask", "uvicorn · raw"}


def test_one_app_runs_are_untouched(tmp_path: Path) -> None:
    run = RunData.load(write_synthetic_run(tmp_path / "one", SyntheticSpec(rates=())))
    summary = summarize(run)
    assert not multi_app(summary)
    assert series_view(summary) is summary
    assert series_run(run) is run
    found = compute_guidance(run, summary)
    assert not [i for i in found if i.topic.startswith("family")]
    assert not [i for i in found if " · " in i.text]


def test_cross_server_items_and_plots_name_the_series(items: list[Finding],
                                                      families_summary: pd.DataFrame) -> None:
    best = _item(items, "best", "I/O-bound: the highest")
    assert "uvicorn · raw (ASGI), 2,400 req/s" in best.text
    assert "uvicorn · flask was not measured (unsupported): app family 'flask' has no ASGI " \
           "app [run.json]." in [i.text for i in items if i.topic == "target"]
    fig = plot_throughput(families_summary)
    _handles, labels = fig.axes[0].get_legend_handles_labels()
    assert "uvicorn · django (ASGI)" in labels and "gunicorn-sync · django (WSGI)" in labels
    series = [lab for lab in labels if " · " in lab]
    assert len(series) == 10


# -- within a group -------------------------------------------------------------------------

def test_django_sync_wsgi_sync_asgi_async(items: list[Finding],
                                          families_summary: pd.DataFrame) -> None:
    item = _item(items, "family_group", "Django,")
    wsgi = _row(families_summary, "gunicorn-sync", "django", 256)
    sync_asgi = _row(families_summary, "uvicorn", "django", 256)
    async_asgi = _row(families_summary, "uvicorn", "django-async", 256)
    a, s, w = (r["achieved_rps"] for r in (async_asgi, sync_asgi, wsgi))
    assert item.text == (
        f"Django, I/O-bound, 256 concurrent clients: async views from asgi.py on uvicorn served "
        f"{fmt_ratio(a / w)} the throughput of sync views from wsgi.py on gunicorn-sync "
        f"({fmt_rps(a)} vs {fmt_rps(w)} req/s; p50 {fmt_ms(async_asgi['p50_ms'])} ms vs "
        f"{fmt_ms(wsgi['p50_ms'])} ms); sync views from asgi.py on uvicorn served "
        f"{fmt_ratio(s / w)} ({fmt_rps(s)} req/s; p50 {fmt_ms(sync_asgi['p50_ms'])} ms).")
    assert fmt_ratio(a / w) == "17.3×" and fmt_ratio(s / w) == "5.8×"
    assert item.trial_ids == _ids(wsgi, async_asgi, sync_asgi)
    assert item.trial_ids == ("0006-gunicorn-sync+django-c256-r1",
                              "0021-uvicorn+django-async-c256-r1", "0018-uvicorn+django-c256-r1")
    assert not item.caveat
    assert item.values["ratio_django-async_asgi"] == pytest.approx(a / w)


def test_flask_quart_at_the_level_both_held(items: list[Finding],
                                            families_summary: pd.DataFrame) -> None:
    # Flask on gunicorn-sync was overloaded at 256 clients: the comparison is at 64.
    item = _item(items, "family_group", "Flask vs Quart")
    flask = _row(families_summary, "gunicorn-sync", "flask", 64)
    quart = _row(families_summary, "uvicorn", "quart", 64)
    assert item.text.startswith(
        f"Flask vs Quart, I/O-bound, 64 concurrent clients: Quart on uvicorn served "
        f"{fmt_ratio(quart['achieved_rps'] / flask['achieved_rps'])} the throughput of Flask on "
        f"gunicorn-sync ({fmt_rps(quart['achieved_rps'])} vs {fmt_rps(flask['achieved_rps'])} "
        "req/s; ")
    assert item.trial_ids == ("0008-gunicorn-sync+flask-c64-r1", "0023-uvicorn+quart-c64-r1")


def test_flask_fastapi_says_when_the_load_capped_the_faster(items: list[Finding]) -> None:
    item = _item(items, "family_group", "Flask vs FastAPI")
    assert item.text.startswith("Flask vs FastAPI, I/O-bound, 64 concurrent clients: FastAPI on "
                                "uvicorn served 22.2× the throughput of Flask on gunicorn-sync")
    assert ("uvicorn sat at the load's own ceiling (Little's law: 64 clients / 50.0 ms = "
            "1,280 req/s), so the gap may be larger") in item.text


def test_no_valid_comparison_names_the_levels_that_were_not(items: list[Finding]) -> None:
    item = _item(items, "family_group", "Pyramid vs Starlette")
    assert item.caveat
    assert item.text == (
        "Pyramid vs Starlette, I/O-bound: no valid comparison: no closed-loop level where two of "
        "Pyramid, Starlette were valid; Starlette: invalid at 1, 64, 256 concurrent clients "
        "(generator saturated).")
    assert item.trial_ids == ("0028-uvicorn+starlette-c1-r1", "0029-uvicorn+starlette-c64-r1",
                              "0030-uvicorn+starlette-c256-r1")


def test_no_common_valid_level(tmp_path: Path) -> None:
    spec = SyntheticFamiliesSpec(overloaded=(("gunicorn-sync", "flask", 1),
                                             ("gunicorn-sync", "flask", 64)),
                                 invalid=(("uvicorn", "quart", 256),))
    run = RunData.load(write_synthetic_families_run(tmp_path / "run", spec))
    item = _item(family_guidance(run, summarize(run)), "family_group", "Flask vs Quart")
    assert item.caveat
    assert item.text == ("Flask vs Quart, I/O-bound: no valid comparison: no closed-loop level "
                         "where two of Flask, Quart were valid; Flask: valid at 256 concurrent "
                         "clients only; Quart: valid at 1, 64 concurrent clients only.")
    assert item.trial_ids == ("0007-gunicorn-sync+flask-c1-r1", "0008-gunicorn-sync+flask-c64-r1",
                              "0024-uvicorn+quart-c256-r1")


def test_only_valid_levels_are_compared(tmp_path: Path) -> None:
    # django-async's 256-client level is invalid: the three variants meet at 64 instead.
    spec = SyntheticFamiliesSpec(invalid=(("uvicorn", "django-async", 256),))
    run = RunData.load(write_synthetic_families_run(tmp_path / "run", spec))
    summary = summarize(run)
    item = _item(family_guidance(run, summary), "family_group", "Django,")
    assert item.text.startswith("Django, I/O-bound, 64 concurrent clients: async views")
    assert "0021-uvicorn+django-async-c256-r1" not in item.trial_ids
    assert all(str(t).endswith("-c64-r1") for t in item.trial_ids)


def test_repeats_carry_the_test(tmp_path: Path) -> None:
    run = RunData.load(write_synthetic_families_run(tmp_path / "run",
                                                    SyntheticFamiliesSpec(repeats=2)))
    item = _item(family_guidance(run, summarize(run)), "family_group", "Django,")
    assert item.values["p_value_django-async_asgi"] < 0.05
    assert len(item.trial_ids) == 6  # both repeats of each of the three levels


# -- the cost against raw on the same server ------------------------------------------------

def test_framework_cost_on_uvicorn(items: list[Finding],
                                   families_summary: pd.DataFrame) -> None:
    item = _item(items, "family_overhead", "Framework cost on uvicorn")
    raw = _row(families_summary, "uvicorn", "raw", 256)
    fastapi = _row(families_summary, "uvicorn", "fastapi", 256)
    assert item.text.startswith(
        "Framework cost on uvicorn, I/O-bound, 256 concurrent clients: fastapi served 0.6× "
        f"raw's req/s (1,500 vs 2,400; p50 {fmt_ms(fastapi['p50_ms'])} ms vs "
        f"{fmt_ms(raw['p50_ms'])} ms); django-async served 0.4× raw's req/s")
    assert item.text.endswith("; starlette: no valid comparison at this level (invalid at 256 "
                              "concurrent clients (generator saturated)).")
    assert item.trial_ids[0] == "0015-uvicorn+raw-c256-r1"
    assert "0030-uvicorn+starlette-c256-r1" in item.trial_ids
    assert item.values["ratio_fastapi"] == pytest.approx(1500 / 2400)


def test_framework_cost_picks_the_level_with_most_families(items: list[Finding]) -> None:
    # flask was overloaded at 256 clients: at 64 all three frameworks compare with raw
    item = _item(items, "family_overhead", "Framework cost on gunicorn-sync")
    assert item.text.startswith("Framework cost on gunicorn-sync, I/O-bound, 64 concurrent "
                                "clients: flask served 1.0× raw's req/s (56.0 vs 58.0; ")
    assert item.text.count("measured once: under 25% apart is within run-to-run noise") == 3
    assert item.trial_ids == ("0002-gunicorn-sync+raw-c64-r1", "0008-gunicorn-sync+flask-c64-r1",
                              "0011-gunicorn-sync+pyramid-c64-r1",
                              "0005-gunicorn-sync+django-c64-r1")


def test_framework_cost_without_raw(tmp_path: Path) -> None:
    spec = SyntheticFamiliesSpec(failed=(("gunicorn-sync", "raw", "verify_failed",
                                          "io_upstream: took 1189 ms"),))
    run = RunData.load(write_synthetic_families_run(tmp_path / "run", spec))
    item = _item(family_guidance(run, summarize(run)), "family_overhead",
                 "Framework cost on gunicorn-sync")
    assert item.caveat and item.trial_ids == ()
    assert item.text == ("Framework cost on gunicorn-sync, I/O-bound: no valid comparison "
                         "against raw: raw on gunicorn-sync: not measured (verify_failed: "
                         "io_upstream: took 1189 ms).")


def test_family_items_come_after_the_cross_server_findings(items: list[Finding]) -> None:
    topics = [i.topic for i in items]
    assert topics.index("wsgi_vs_asgi") < topics.index("family_group")
    assert all(i.run_id == "synthetic-frameworks" for i in items)


# -- the report ---------------------------------------------------------------------------------

# a whole report of the families run: seconds of plotting, out of the fast tier
@pytest.mark.e2e
def test_report_tables_have_an_app_column(families_run: RunData, tmp_path: Path) -> None:
    write_report([families_run.run_dir], tmp_path / "report")
    text = report_text(tmp_path / "report")
    assert "| server | app | gateway | level |" in text
    assert "| trial | server | app |" in text
    assert "| uvicorn | django-async | ASGI | 256 |" in text
    assert "async views from asgi.py on uvicorn served 17.3×" in text
    assert "a line per server · family" in text
