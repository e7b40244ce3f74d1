"""The WebSocket section of the report, on a synthetic WebSocket run (fast, no server)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from harness.analysis import RunData, compute_guidance, merge_histograms, summarize, write_report
from harness.analysis.report import MODEL_HEADINGS, WS_HEADING, WS_NOTE
from harness.analysis.websocket import fmt_fraction, fmt_kib
from harness.analysis.wording import fmt_ms, fmt_rps
from harness.results import TRIALS_FILE, histogram_path
from tests.analysis_fixtures import report_text
from tests.support.synthetic import SyntheticWsSpec, write_synthetic_ws_run


@pytest.fixture(scope="module")
def ws_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("ws") / "synthetic-ws"
    write_synthetic_ws_run(run_dir, SyntheticWsSpec(run_id="synthetic-ws"))
    write_report([run_dir])
    return run_dir


def _rows(run_dir: Path) -> dict[str, dict[str, str]]:
    with open(run_dir / TRIALS_FILE, newline="", encoding="utf-8") as handle:
        return {row["trial_id"]: row for row in csv.DictReader(handle)}


def _pct(run_dir: Path, trial_id: str, percentile: float, kind: str = "latency") -> float:
    text = histogram_path(run_dir, trial_id, kind).read_text().strip()
    merged = merge_histograms([HdrHistogram.decode(text)])
    assert merged is not None
    return float(merged.get_value_at_percentile(percentile)) / 1000.0


def test_summary_keeps_message_sizes_apart(ws_run: Path) -> None:
    run = RunData.load(ws_run)
    summary = summarize(run)
    closed = summary[(summary["load_model"] == "closed") & (summary["server"] == "uvicorn")]
    # 3 connection counts x 2 message sizes: six levels, none merged
    assert len(closed) == 6
    assert sorted(set(closed["message_size"].astype(int))) == [64, 8192]
    assert all(len(ids) == 1 for ids in closed["trial_ids"])
    idle = summary[summary["load_model"] == "idle"]
    assert idle["message_size"].isna().all() and idle["memory_per_connection_kb"].notna().all()
    broadcast = summary[summary["load_model"] == "broadcast"]
    assert broadcast["delivered_fraction"].between(0.99, 1.0).all()


def test_http_summary_unchanged_by_message_size_key(tmp_path: Path) -> None:
    from tests.analysis_fixtures import synthetic_run

    run = RunData.load(synthetic_run(tmp_path / "io", repeats=2))
    summary = summarize(run)
    # one row per server and level, repeats pooled: message_size (NA) does not split them
    assert len(summary) == len(run.trials) // 2
    assert summary["message_size"].isna().all()
    assert set(summary["protocol"]) == {"http"}


def test_report_has_the_websocket_section(ws_run: Path) -> None:
    markdown = report_text(ws_run)
    html = report_text(ws_run, "html")
    for text in (markdown, html):
        assert WS_HEADING in text
        assert "the WSGI interface has no way to hold a WebSocket connection" in text
        assert "gunicorn-sync, uwsgi" in text
    assert WS_NOTE in markdown
    for model in ("broadcast", "idle"):
        assert f"#### {MODEL_HEADINGS[model]}" in markdown
        assert f"<h4>{MODEL_HEADINGS[model]}</h4>" in html
    assert "#### Echo, closed loop (level = connections)" in markdown
    assert "#### Echo, open loop (level = offered messages/s)" in markdown
    # the HTTP tables are not there
    assert "### Results per server and level" not in markdown
    plots = {p.stem.removeprefix("synthetic-ws-") for p in (ws_run / "plots").glob("*.png")}
    assert {"ws-throughput", "ws-latency-open", "ws-broadcast", "ws-idle"} <= plots
    assert len(re.findall(r'<img[^>]*\ssrc="data:image/svg\+xml;base64,', html)) == len(plots)
    # the overloaded idle level (daphne dropped connections) is said as such
    assert "held only 9,000 of 10,000" in markdown
    assert "Overloaded: daphne (ASGI), 10,000 idle connections" in markdown


def test_websocket_guidance_traces_to_trials(ws_run: Path) -> None:
    rows = _rows(ws_run)
    run = RunData.load(ws_run)
    items = compute_guidance(run, summarize(run))
    markdown = report_text(ws_run)
    for item in items:
        line = f"{item.text}"
        if item.trial_ids:
            line += " [trials: " + ", ".join(t[:4] for t in item.trial_ids) + "]"
        # the full sentence is the finding's footnote (the first layer is its headline)
        assert any(x.startswith("[^") and x.endswith("]: " + line)
                   for x in markdown.splitlines()), line
        # past two caveats of one topic, a section counts the rest (each still a footnote)
        assert f"- {item.short} [^" in markdown or (
            item.caveat and f"more of this kind ({item.topic})" in markdown), item.short
    topics = [i.topic for i in items]
    assert topics[0] == "ws_unsupported"
    assert topics.count("ws_echo_closed") == 2  # one per message size
    assert topics.count("ws_broadcast") == 2 and topics.count("ws_idle") == 2

    for item in (i for i in items if i.topic == "ws_echo_closed"):
        best, worst = (rows[t] for t in item.trial_ids)
        assert best["load_model"] == worst["load_model"] == "closed"
        assert best["message_size"] == worst["message_size"]
        assert best["concurrency"] == worst["concurrency"]
        assert all(r["valid"] == "true" for r in (best, worst))
        size = int(best["message_size"])
        assert f"{size // 1024} KiB" in item.text if size >= 1024 else f"{size} B" in item.text
        rps_best, rps_worst = float(best["achieved_rps"]), float(worst["achieved_rps"])
        assert f"carried {fmt_rps(rps_best)} msgs/s" in item.text
        assert f"{rps_best / rps_worst:.1f}× {worst['server']}'s" in item.text
        assert (f"p99 {fmt_ms(_pct(ws_run, best['trial_id'], 99))} ms vs "
                f"{fmt_ms(_pct(ws_run, worst['trial_id'], 99))} ms") in item.text
        # nothing valid at that level and size carried more
        same = [r for r in rows.values() if r["load_model"] == "closed"
                and r["message_size"] == best["message_size"]
                and r["concurrency"] == best["concurrency"] and r["valid"] == "true"]
        assert max(float(r["achieved_rps"]) for r in same) == rps_best

    for item in (i for i in items if i.topic == "ws_echo_open"):
        low = rows[item.trial_ids[0]]
        assert low["load_model"] == "open" and low["valid"] == "true"
        assert f"lowest p99, {fmt_ms(_pct(ws_run, low['trial_id'], 99))} ms" in item.text
        service = fmt_ms(_pct(ws_run, low["trial_id"], 99, "service"))
        assert f"p99 from the actual send {service} ms" in item.text

    for item in (i for i in items if i.topic == "ws_broadcast"):
        cited = [rows[t] for t in item.trial_ids]
        assert {r["load_model"] for r in cited} == {"broadcast"}
        assert len({r["concurrency"] for r in cited}) == 1
        assert f"Broadcast to {int(cited[0]['concurrency']):,} subscribers" in item.text
        for row in cited:
            expected = int(row["requests"]) + int(row["errors_timeout"])
            fraction = fmt_fraction(int(row["requests"]) / expected)
            p99 = fmt_ms(_pct(ws_run, row["trial_id"], 99))
            assert f"{row['server']} {p99} ms (p50 " in item.text
            assert fraction in item.text

    for item in (i for i in items if i.topic == "ws_idle"):
        cited = [rows[t] for t in item.trial_ids]
        assert {r["load_model"] for r in cited} == {"idle"}
        kib = sorted((float(r["memory_per_connection_kb"]), r["server"]) for r in cited)
        assert f"{kib[0][1]} used {fmt_kib(kib[0][0])} KiB per connection" in item.text
        for value, server in kib[1:]:
            assert f"{server} {fmt_kib(value)} KiB (" in item.text

    invalid = [i for i in items if i.topic == "invalid"]
    assert invalid and all(i.caveat for i in invalid)
    assert all(rows[t]["valid"] == "false" for i in invalid for t in i.trial_ids)
    # unsupported servers are said once, as a finding, not again as caveats
    assert not any("was not measured (unsupported)" in i.text for i in items)
