"""Findings as records, findings.json, and the "What to run" rows, on the published runs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from harness.analysis.answers import answer_rows
from harness.analysis.findings.common import service_floor
from harness.analysis.findings.record import (
    FINDINGS_FILE,
    HEADLINE_CHARS_MAX,
    NO_DIFFERENCE,
    RANKED,
    VERDICTS,
    Finding,
    read_findings,
    write_findings,
)
from harness.analysis.guidance import compute_guidance
from harness.analysis.report import write_report
from harness.analysis.rundata import RunData, summarize

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


@cache  # the published runs do not change; computing their findings takes seconds
def _findings(name: str) -> tuple[RunData, list[Finding]]:
    run = RunData.load(REFERENCE / name)
    return run, compute_guidance(run, summarize(run))


def test_findings_json_round_trips_every_record(tmp_path: Path) -> None:
    _run, findings = _findings("io_bound")
    path = write_findings(tmp_path / FINDINGS_FILE, findings, runs=["ref"])
    assert json.loads(path.read_text())["schema"] == 1
    again = read_findings(path)
    assert [f.to_json() for f in again] == [f.to_json() for f in findings]
    assert all(f.verdict in VERDICTS for f in again)
    assert not list(tmp_path.glob(".*partial"))  # written beside, then renamed into place


def test_comparisons_carry_winners_other_side_ratio_and_test() -> None:
    _run, findings = _findings("io_bound")
    versus = next(f for f in findings if f.topic == "capacity_wsgi_vs_asgi")
    assert versus.verdict == RANKED and versus.p_value is not None and versus.p_value < 0.05
    assert versus.winners and all(w not in versus.others for w in versus.winners)
    assert versus.figures is not None and versus.ratio is not None
    assert versus.ratio == pytest.approx(versus.figures[0] / versus.figures[1])
    assert versus.ratio_ci is not None and versus.ratio_ci[0] < versus.ratio < versus.ratio_ci[1]
    # the headline is rendered from the record: its servers and its ratio
    assert versus.winners[0] in versus.headline and f"{versus.ratio:.1f}×" in versus.headline
    _run, cpu = _findings("cpu_bound")
    tie = next(f for f in cpu if f.topic == "capacity_wsgi_vs_asgi")
    assert tie.verdict == NO_DIFFERENCE and tie.winners == () and tie.answer() == ("unranked",)


# hello and frameworks: two more published runs' findings to compute, seconds each
@pytest.mark.parametrize("name", ["io_bound", "cpu_bound",
                                  pytest.param("hello", marks=pytest.mark.e2e),
                                  pytest.param("frameworks", marks=pytest.mark.e2e)])
def test_the_first_layer_is_short(name: str) -> None:
    _run, findings = _findings(name)
    lengths = [len(f.short) for f in findings if not f.caveat]
    assert lengths and max(lengths) <= HEADLINE_CHARS_MAX + 10, max(lengths)
    assert sum(lengths) < sum(len(f.text) for f in findings if not f.caveat) / 2


def test_what_to_run_names_the_winning_gateway_and_the_workers_cap() -> None:
    run, findings = _findings("io_bound")
    summary = summarize(run)
    floor = service_floor(run, summary)
    assert floor is not None and floor.declared
    (row,) = answer_rows(run, findings, wait_s=floor.seconds)
    versus = next(f for f in findings if f.topic == "capacity_wsgi_vs_asgi")
    assert "(ASGI)" in row.run and "(WSGI)" in row.instead_of and "gunicorn-sync" in row.instead_of
    assert row.sure.startswith("p < 0.001") and "searches" in row.sure
    # the physics comes from run.json's preset and the declared wait, not from a constant
    sync = next(t for t in run.meta["targets"] if t["server"] == "gunicorn-sync")
    cap = sync["workers"] / floor.seconds
    assert f"{sync['workers']} workers ÷ {1000 * floor.seconds:g} ms = {cap:,.0f} req/s" in row.why
    assert f"{versus.ratio:.1f}×" in row.by


def test_no_significant_difference_names_no_gateway() -> None:
    run, findings = _findings("cpu_bound")
    (row,) = answer_rows(run, findings)
    assert row.run.startswith("either gateway") and row.instead_of == "—"
    assert row.sure.startswith("no significant difference")


# the full report of two published runs: seconds of plotting, out of the fast tier
@pytest.mark.e2e
def test_the_report_opens_with_what_to_run_and_writes_findings_json(tmp_path: Path) -> None:
    runs = [REFERENCE / name for name in ("hello", "cpu_bound")]
    html, markdown = write_report(runs, tmp_path)
    text = markdown.read_text(encoding="utf-8")
    assert text.index("## What to run") < text.index("## Plaintext hello")
    assert text.index("## What to run") < text.index("## Evidence")
    page = html.read_text(encoding="utf-8")
    assert page.index('id="what-to-run"') < page.index("<h3>Findings</h3>")
    records = read_findings(tmp_path / FINDINGS_FILE)
    assert {f.run_id for f in records} == {RunData.load(r).run_id for r in runs}
    assert (tmp_path / "trials.md").is_file() and (tmp_path / "trials.html").is_file()
    assert "## Evidence" in text and "| trial |" not in text.split("## Evidence")[0]
