"""harness report: one self-contained HTML file, Markdown with plots/, traceable guidance."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

import pytest

from harness.analysis import RunData, compute_guidance, merge_histograms, summarize, write_report
from harness.analysis.wording import fmt_mb, fmt_ms, fmt_rps
from harness.cli import main as cli_main
from harness.errors import UsageError
from harness.results import TRIALS_FILE, histogram_path
from tests.analysis_fixtures import report_text, synthetic_run, write_run


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = synthetic_run(tmp_path_factory.mktemp("report") / "synthetic-io", repeats=3,
                            noisy=("hypercorn",))
    write_report([run_dir])
    return run_dir


def test_writes_html_markdown_and_plots(report_run: Path) -> None:
    html = report_text(report_run, "html")
    markdown = report_text(report_run)
    pngs = sorted((report_run / "plots").glob("*.png"))
    svgs = sorted((report_run / "plots").glob("*.svg"))
    names = {p.stem.removeprefix("synthetic-io-") for p in pngs}
    assert {"throughput", "latency-closed", "latency-open", "spectrum-closed", "spectrum-open",
            "timeline", "resources"} <= names
    assert len(svgs) == len(pngs)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{png.name})" in markdown
    assert "## I/O-bound: scenario io_bound" in markdown
    assert "### Findings" in markdown and "### Caveats" in markdown
    assert "<summary>What ran on what</summary>" in html
    assert not list(report_run.glob(".report-*")), "the staging folder must be gone"


def test_html_is_self_contained(report_run: Path) -> None:
    html = report_text(report_run, "html")
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(sources) >= 7
    assert all(s.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,"))
               for s in sources)
    lowered = html.lower()
    for external in ("http://", "https://", "<script", "<link", "@import", "url(", "@font-face",
                     'src="/', "src='"):
        assert external not in lowered, external


def test_report_shows_the_run_setup(report_run: Path) -> None:
    markdown = report_text(report_run)
    meta = json.loads((report_run / "run.json").read_text())
    for needle in ("harness run --scenario io_bound --quick", meta["scenario"]["hash"],
                   "server [1], load generator [0]", "Synthetic CPU", "gunicorn docs:",
                   "| gunicorn | 23.0.0 |", "invalid (not ranked)"):
        assert needle in markdown, needle


def test_a_run_that_carries_a_notice_shows_it_first(report_run: Path) -> None:
    """run.json's notice (the synthetic run's: made up, not measured) leads its section and
    its facts; the report does not ask what wrote the run."""
    notice = json.loads((report_run / "run.json").read_text())["notice"]
    markdown = report_text(report_run)
    html = report_text(report_run, "html")
    section = markdown.split("## I/O-bound: scenario io_bound", 1)[1]
    assert f"\n**Note:** {notice}\n" in section.split("### Findings", 1)[0]
    assert f"| NOTE | {notice} |" in markdown
    assert f'<p><span class="badge">note</span> {notice}</p>' in html


def test_both_renderers_walk_the_one_outline(report_run: Path) -> None:
    """Each renderer draws every part the outline puts in its format, and no other; a part
    shows where the outline puts it, in its order."""
    from harness.analysis.report import html, markdown
    from harness.analysis.report.sections import RUN_OUTLINE, Page, parts_on

    assert set(html.PARTS) == {p.name for p in RUN_OUTLINE if p.html is not None}
    assert set(markdown.PARTS) == {p.name for p in RUN_OUTLINE if p.markdown is not None}
    assert "presets" in parts_on(Page.REPORT, "html")
    assert "presets" in parts_on(Page.TRIALS, "markdown")
    report_md, trials_md, report_html, trials_html = (
        (report_run / name).read_text(encoding="utf-8")
        for name in ("report.md", "trials.md", "report.html", "trials.html"))
    for text, headings in (
            (report_md, ["### Findings", "### Caveats", "### Plots", "### What ran on what"]),
            (trials_md, ["### Results per server and level", "### Servers and presets",
                         "### Versions", "### All "]),
            (report_html, ["<h3>Findings</h3>", "<h3>Caveats</h3>", "<h3>Plots</h3>",
                           "<summary>What ran on what</summary>",
                           "<h4>Servers and presets</h4>", "<h4>Versions</h4>"])):
        places = [text.index(h) for h in headings]
        assert places == sorted(places), headings
    assert "Servers and presets" not in report_md and "Servers and presets" not in trials_html


def _rows(run_dir: Path) -> dict[str, dict[str, str]]:
    with open(run_dir / TRIALS_FILE, newline="", encoding="utf-8") as handle:
        return {row["trial_id"]: row for row in csv.DictReader(handle)}


def _p99_ms(run_dir: Path, ids: list[str]) -> float:
    from hdrh.histogram import HdrHistogram

    hists = [HdrHistogram.decode(histogram_path(run_dir, t).read_text().strip()) for t in ids]
    merged = merge_histograms(hists)
    assert merged is not None
    return float(merged.get_value_at_percentile(99)) / 1000.0


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def test_guidance_numbers_trace_back_to_trials_csv(report_run: Path) -> None:
    """Recompute the figures of the guidance from the rows (and histograms) it cites."""
    rows = _rows(report_run)
    run = RunData.load(report_run)
    items = {i.topic: i for i in compute_guidance(run, summarize(run))}
    markdown = report_text(report_run)
    for item in items.values():
        line = f"{item.text}"
        if item.trial_ids:
            line += " [trials: " + ", ".join(t[:4] for t in item.trial_ids) + "]"
        # the full sentence is the finding's footnote (the first layer is its headline)
        assert any(x.startswith("[^") and x.endswith("]: " + line)
                   for x in markdown.splitlines()), line
        # past two caveats of one topic, a section counts the rest (each still a footnote)
        assert f"- {item.short} [^" in markdown or (
            item.caveat and f"more of this kind ({item.topic})" in markdown), item.short

    best = items["best"]
    cited = [rows[t] for t in best.trial_ids]
    assert len({r["server"] for r in cited}) == 1 and all(r["valid"] == "true" for r in cited)
    rps = statistics.mean(float(r["achieved_rps"]) for r in cited)
    assert fmt_rps(rps) + " req/s" in best.text
    assert f"p99 {fmt_ms(_p99_ms(report_run, list(best.trial_ids)))} ms" in best.text
    cpu = statistics.mean(float(r["server_cpu_pct"]) for r in cited)
    assert f"CPU {cpu:.0f} %" in best.text
    # Nothing valid beats it.
    assert all(float(r["achieved_rps"]) <= max(float(c["achieved_rps"]) for c in cited) * 1.0001
               or r["valid"] == "false" or r["load_model"] != "closed" for r in rows.values())

    versus = items["wsgi_vs_asgi"]
    by_server: dict[str, list[dict[str, str]]] = {}
    for t in versus.trial_ids:
        by_server.setdefault(rows[t]["server"], []).append(rows[t])
    assert {rows[t]["gateway"] for t in versus.trial_ids} == {"wsgi", "asgi"}
    means = {s: statistics.mean(float(r["achieved_rps"]) for r in rs)
             for s, rs in by_server.items()}
    winner, loser = sorted(means, key=means.__getitem__, reverse=True)
    ratio = means[winner] / means[loser]
    numbers = _numbers(versus.text.split(":", 1)[1])
    assert round(ratio, 1) in numbers
    assert f"({fmt_rps(means[winner])} vs {fmt_rps(means[loser])} req/s)" in versus.text
    p99_w = _p99_ms(report_run, [r["trial_id"] for r in by_server[winner]])
    p99_l = _p99_ms(report_run, [r["trial_id"] for r in by_server[loser]])
    assert f"p99 of {fmt_ms(p99_w)} ms vs {fmt_ms(p99_l)} ms" in versus.text
    levels = {r["concurrency"] for t in versus.trial_ids for r in [rows[t]]}
    assert len(levels) == 1 and f"{levels.pop()} concurrent clients" in versus.text

    # the classic pair, when the best ones are others: gunicorn-sync against uvicorn
    classic = items["classic"]
    pair: dict[str, list[dict[str, str]]] = {}
    for t in classic.trial_ids:
        pair.setdefault(rows[t]["server"], []).append(rows[t])
    assert set(pair) == {"gunicorn-sync", "uvicorn"}
    assert len({r["concurrency"] for rs in pair.values() for r in rs}) == 1
    mean = {s: statistics.mean(float(r["achieved_rps"]) for r in rs) for s, rs in pair.items()}
    fast, slow = sorted(mean.values(), reverse=True)
    assert round(fast / slow, 1) in _numbers(classic.text.split(":", 1)[1])
    assert f"({fmt_rps(fast)} vs {fmt_rps(slow)} req/s)" in classic.text

    memory = items["memory"]
    low, high = (rows[t] for t in memory.trial_ids)
    # PSS when the run has it (the synthetic run does), the honest figure for forked workers
    assert memory.values["pss"] == 1.0
    assert memory.text.startswith("Memory (PSS at its peak): the least: ")
    least, most = memory.text.split("; the most: ")
    for row, part in ((low, least), (high, most)):
        mb = fmt_mb(float(row["server_pss_mb"]))
        assert f"{row['server']} ({row['gateway'].upper()}) {mb} MB (" in part
    assert memory.winners == (low["server"],)  # the least end (agreement.py judges by it)
    valid_rss = [float(r["server_rss_mb"]) for r in rows.values() if r["valid"] == "true"]
    assert float(high["server_rss_mb"]) == max(valid_rss)

    for item in (i for i in items.values() if i.topic == "invalid"):
        assert all(rows[t]["valid"] == "false" for t in item.trial_ids)
        assert rows[item.trial_ids[0]]["invalid_reason"].split(":")[0] in item.text


def test_cli_report_and_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path / "run", [])
    out = tmp_path / "elsewhere"
    assert cli_main(["report", str(run_dir), "--out", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert not (run_dir / "report.html").exists()
    assert "No valid trial" in (out / "report.html").read_text()
    assert "report.html" in capsys.readouterr().out
    # Again: replaced in place, nothing left behind.
    assert cli_main(["report", str(run_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["findings.json", "report.html",
                                                    "report.md", "trials.html", "trials.md"]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run(tmp_path / "good", [])
    (tmp_path / "notrun").mkdir()
    assert cli_main(["report", str(good), str(tmp_path / "notrun")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no run.json" in err and "harness report: error:" in err
    assert sorted(p.name for p in good.iterdir()) == ["histograms", "run.json", "series",
                                                      "trials.csv"]
    meta = json.loads((good / "run.json").read_text())
    (good / "run.json").write_text(json.dumps({**meta, "schema_version": 0}))
    with pytest.raises(UsageError, match="schema_version 0"):
        write_report([good])
    (good / "run.json").write_text(json.dumps(meta))
    (good / TRIALS_FILE).unlink()
    with pytest.raises(UsageError, match=r"no trials\.csv"):
        write_report([good])
    assert not (good / "report.html").exists() and not (good / "plots").exists()
    with pytest.raises(UsageError, match="expected at least one"):
        write_report([])


# two more synthetic runs and their report: seconds of plotting, out of the fast tier
@pytest.mark.e2e
def test_several_runs_in_one_report(tmp_path: Path) -> None:
    a = synthetic_run(tmp_path / "a" / "run-a")
    b = synthetic_run(tmp_path / "b" / "run-b", seed=3)
    html_path, md_path = write_report([a, b], tmp_path / "combined")
    markdown = md_path.read_text()
    assert "(run run-a)" in markdown and "(run run-b)" in markdown
    plots = {p.name for p in (tmp_path / "combined" / "plots").iterdir()}
    assert "run-a-throughput.png" in plots and "run-b-throughput.png" in plots
    assert html_path.read_text().count("<section") == 3  # What to run, then the two runs
