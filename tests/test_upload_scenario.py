"""Uploads in a run: the [upload] table and its sizes, the plan's levels, the body and the
answer the harness expects, the findings and the "What to run" row on a small made-up run, and
a real run of uvicorn and gunicorn-sync."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.raw import wsgi
from harness import catalogue
from harness.analysis.answers import answer_rows
from harness.analysis.guidance import compute_guidance
from harness.analysis.rundata import RunData, summarize
from harness.errors import UsageError
from harness.loadgen.accounting import Book
from harness.loadgen.launch import split
from harness.loadgen.models.closed import ClosedLoop
from harness.loadgen.spec import LoadSpec, encode_request
from harness.plan import PlanOptions, build_plan
from harness.results import trial_id
from harness.scenarios import load_scenario, parse_scenario
from harness.slo import parse_slo
from harness.units import format_size, parse_size
from harness.uploads import MAX_UPLOAD_BYTES, upload_answer, upload_body, upload_request
from tests.analysis_fixtures import record, write_run
from tests.runhelpers import REPO, harness_cmd, read_rows

KIB, MIB = 1024, 1024 * 1024
_BASE = """
name = "u"
description = "d"
kind = "upload"
servers = ["uvicorn"]
[request]
path = "/upload"
[load]
concurrency = [2]
"""


def test_sizes_take_binary_units_and_print_back() -> None:
    assert [parse_size(t) for t in ("64KiB", "1MiB", "16 MiB", "512", "512B", 7)] == \
        [64 * KIB, MIB, 16 * MIB, 512, 512, 7]
    assert [format_size(s) for s in (64 * KIB, MIB, 16 * MIB, 1000)] == \
        ["64 KiB", "1 MiB", "16 MiB", "1000 B"]
    assert format_size(16 * MIB, sep="") == "16MiB"
    for bad in ("64KB", "1.5MiB", "-1", "lots", True):
        with pytest.raises(UsageError, match="expected a size like '64KiB'"):
            parse_size(bad)  # type: ignore[arg-type]


def test_the_shipped_scenario_runs_each_closed_level_once_per_size() -> None:
    scenario = load_scenario("upload")
    assert (scenario.kind, scenario.method, scenario.path) == ("upload", "POST", "/upload")
    assert scenario.upload_sizes == (64 * KIB, MIB, 16 * MIB)
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1)))
    assert [(lv.load_model, lv.concurrency, lv.upload_bytes) for lv in plan.levels] == [
        ("closed", 1, 64 * KIB), ("closed", 8, 64 * KIB), ("closed", 1, MIB),
        ("closed", 8, MIB), ("closed", 1, 16 * MIB), ("closed", 8, 16 * MIB)]
    assert plan.levels[-1].label() == "8 conn (16 MiB uploads)"
    assert plan.summary()["levels"][-1]["upload_bytes"] == 16 * MIB
    assert len(plan.runnable) == 12
    assert plan.estimate_s() <= 15 * 60  # the default plan on 2 cores
    quick = build_plan(scenario, PlanOptions(available_cpus=(0, 1), quick=True))
    assert [(lv.concurrency, lv.upload_bytes) for lv in quick.levels] == [
        (4, 64 * KIB), (4, 16 * MIB)]
    assert quick.estimate_s() <= 2 * 60
    assert trial_id(3, "uvicorn", "closed", 8, 1, None, 16 * MIB) == "0003-uvicorn-c8-u16MiB-r1"


@pytest.mark.parametrize(("text", "message"), [
    ("", "field 'upload.sizes': expected a non-empty list of distinct sizes from 1 B to 64 MiB"),
    ('[upload]\nsizes = []', "field 'upload.sizes': expected a non-empty list"),
    ('[upload]\nsizes = ["64KB"]', "field 'upload.sizes': .*got \\['64KB'\\]"),
    ('[upload]\nsizes = ["65MiB"]', "field 'upload.sizes': .*the app contract's limit"),
    ('[upload]\nsizes = [0]', "field 'upload.sizes'"),
    ('[upload]\nsizes = ["1MiB", 1048576]', "field 'upload.sizes': .*distinct"),
    ('[upload]\nsizes = "1MiB"', "field 'upload.sizes'"),
    ('[upload]\nsizes = ["1MiB"]\n[quick]\nupload_sizes = ["big"]', "field 'quick.upload_sizes'"),
    ('[upload]\nsizes = ["1MiB"]\nsize = 3', "unknown key 'size' in table \\[upload\\]"),
])
def test_a_bad_upload_table_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_scenario(_BASE + text + "\n", "u.toml")
    assert str(info.value).startswith("u.toml: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("base", "extra", "message"), [
    (_BASE.replace('path = "/upload"', 'path = "/upload"\nbody = "x"'), "",
     "field 'request.body': expected no body in an upload scenario"),
    (_BASE.replace('path = "/upload"', 'path = "/upload"\nmethod = "GET"'), "",
     "field 'request.method': expected one of POST, PUT, PATCH"),
    (_BASE.replace("concurrency = [2]", "concurrency = [2]\nrate = [10]"), "",
     "closed-loop levels only: expected \\[load\\] 'concurrency', not 'rate'"),
    (_BASE, '[slo]\nobjective = "p99=100ms"', "table 'slo': an upload scenario"),
    (_BASE.replace('kind = "upload"', 'kind = "hello"'), "",
     "table 'upload': expected kind = \"upload\""),
])
def test_an_upload_scenario_refuses_what_it_cannot_run(base: str, extra: str,
                                                        message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_scenario(base + '[upload]\nsizes = ["1KiB"]\n' + extra + "\n", "u.toml")


def test_the_plan_refuses_rates_and_objectives_and_a_family_without_uploads() -> None:
    scenario = parse_scenario(_BASE + '[upload]\nsizes = ["1KiB"]\n', "u.toml")
    assert scenario.method == "POST"
    with pytest.raises(UsageError, match="--rate: an upload scenario runs closed-loop"):
        build_plan(scenario, PlanOptions(available_cpus=(0, 1), rate=[10.0]))
    with pytest.raises(UsageError, match="--slo: the capacity search"):
        build_plan(scenario, PlanOptions(available_cpus=(0, 1),
                                         slo=parse_slo("p99=100ms", what="--slo")))
    # a family without the route: a user's own app
    own = dataclasses.replace(catalogue.get_app("raw"), name="mine", long_lived=())
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1), app=own))
    assert [(t.supported, t.reason) for t in plan.targets] == [
        (False, "app family 'mine' has no /upload route")]


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None,
                    /) -> Callable[[bytes], object]:
    return lambda data: None


def test_the_expected_answer_is_the_apps_own() -> None:
    """The body is the pattern of every byte value; the answer the harness computes is byte for
    byte what the raw app answers for it."""
    body, answer = upload_request(1000)
    assert body == (bytes(range(256)) * 4)[:1000]
    assert json.loads(answer) == {"bytes": 1000, "sha256": hashlib.sha256(body).hexdigest()}
    for size in (1, 64 * KIB + 3):
        body = upload_body(size)
        environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/upload",
                                   "QUERY_STRING": "", "CONTENT_LENGTH": str(size),
                                   "wsgi.input": io.BytesIO(body)}
        got = b"".join(wsgi.app(environ, _start_response))
        assert got == upload_answer(body)
    assert len(upload_body(MAX_UPLOAD_BYTES)) == MAX_UPLOAD_BYTES
    with pytest.raises(ValueError, match="upload size"):
        upload_body(MAX_UPLOAD_BYTES + 1)


def test_the_request_carries_the_body_with_its_length() -> None:
    body, answer = upload_request(16 * MIB)
    spec = LoadSpec(url="http://127.0.0.1:8000/upload", concurrency=1, method="POST",
                    body=body, expect_body=answer)
    request = encode_request(spec)
    head, _, rest = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /upload HTTP/1.1\r\n")
    assert f"Content-Length: {16 * MIB}".encode() in head
    assert rest == body


def test_an_upload_a_server_dropped_unread_is_sent_again() -> None:
    """POST is not idempotent, but /upload has no side effects: the generator may resend one
    that a reused connection lost before any byte of its answer (uWSGI closes kept-alive
    connections after an answer without saying so), as it does a GET."""
    loop = asyncio.new_event_loop()
    try:
        for resend, may in ((False, False), (True, True)):
            spec = LoadSpec(url="http://127.0.0.1:8000/upload", concurrency=1, method="POST",
                            body=b"x", resend=resend)
            plan = split(spec, spec.target, files_hard_limit=None)[0]
            assert ClosedLoop(plan, loop, Book(service_time=False)).may_resend is may
    finally:
        loop.close()


def _upload_run(tmp_path: Path) -> RunData:
    """Two servers at two sizes: uvicorn moves more bytes, daphne holds bodies in memory."""
    def trial(tid: str, server: str, size: int, rps: float, pss: float,
              **more: Any) -> tuple[Any, None]:
        rec = record(tid, scenario="upload", server=server, endpoint="/upload",
                     concurrency=4, achieved_rps=rps, requests=int(rps * 2), p50_ms=5.0,
                     server_rss_mb=pss + 10, server_pss_mb=pss, upload_bytes=size, **more)
        return rec, None
    trials = [trial("0001-uvicorn-c4-u64KiB-r1", "uvicorn", 64 * KIB, 3200.0, 40.0),
              trial("0002-uvicorn-c4-u16MiB-r1", "uvicorn", 16 * MIB, 32.0, 44.0),
              trial("0003-daphne-c4-u64KiB-r1", "daphne", 64 * KIB, 1600.0, 60.0),
              trial("0004-daphne-c4-u16MiB-r1", "daphne", 16 * MIB, 16.0, 124.0),
              trial("0005-gunicorn-sync-c4-u64KiB-r1", "gunicorn-sync", 64 * KIB, 2000.0,
                    50.0, gateway="wsgi"),
              trial("0006-gunicorn-sync-c4-u16MiB-r1", "gunicorn-sync", 16 * MIB, 8.0, 52.0,
                    gateway="wsgi", valid=False, outcome="invalid",
                    invalid_reason="generator saturated: busy")]
    levels = [{"load_model": "closed", "concurrency": 4, "upload_bytes": s}
              for s in (64 * KIB, 16 * MIB)]
    run_dir = write_run(tmp_path / "up", trials,
                        scenario={"name": "upload", "kind": "upload", "endpoint": "/upload"},
                        plan={"levels": levels, "repeat": 1})
    return RunData.load(run_dir)


def test_findings_give_mb_per_s_per_size_and_memory_against_the_smallest(
        tmp_path: Path) -> None:
    run = _upload_run(tmp_path)
    summary = summarize(run)
    assert sorted(summary["upload_bytes"].dropna().astype(int).unique()) == [64 * KIB, 16 * MIB]
    findings = compute_guidance(run, summary)
    upload = {int(f.question["upload"]): f for f in findings if f.topic == "upload"}
    big = upload[16 * MIB]
    assert big.values["mb_s_uvicorn"] == pytest.approx(512.0)  # 32 req/s x 16 MiB
    assert big.values["mb_s_daphne"] == pytest.approx(256.0)
    assert big.winners == ("uvicorn",)
    assert big.question["not_valid"] == ["gunicorn-sync"]
    assert "gunicorn-sync (generator saturated" in big.text
    assert upload[64 * KIB].values["mb_s_uvicorn"] == pytest.approx(200.0)
    memory = next(f for f in findings if f.topic == "upload_memory")
    assert memory.question["baseline"] == "64 KiB" and memory.question["memory"] == "PSS"
    # every measured trial counts for memory, the invalid one too
    assert memory.values["peak_gunicorn-sync"] == pytest.approx(52.0)
    assert memory.values["ratio_daphne"] == pytest.approx(124.0 / 60.0)
    assert memory.values["bodies_daphne"] == pytest.approx(4.0)  # 64 MB over: 4 bodies
    assert memory.winners == ("uvicorn",) and memory.others[-1] == "daphne"
    assert "daphne 124 MB (2.1× its 60 MB at 64 KiB: +64 MB, 4.0 bodies of 16 MiB)" \
        in memory.text
    rows = answer_rows(run, findings)
    assert len(rows) == 1
    row = rows[0]
    assert (row.work, row.run) == ("16 MiB uploads, closed loop", "uvicorn")
    assert row.by.startswith("512 MB/s on uvicorn, peak memory 44 MB (1.1× its own at 64 KiB)")
    # gunicorn-sync's only 16 MiB trial is not valid: the slowest valid server is named
    assert row.by.endswith("; 256 MB/s on daphne, peak memory 124 MB (2.1× its own at 64 KiB)")
    assert row.instead_of == "daphne"
    assert row.why.endswith("a server that held whole bodies shows it in memory: daphne did")


def test_an_older_run_without_the_column_reads_as_no_upload(tmp_path: Path) -> None:
    run = _upload_run(tmp_path)
    rows = read_rows(run.run_dir / "trials.csv")
    columns = [c for c in rows[0] if c != "upload_bytes"]
    text = ",".join(columns) + "\n" + "".join(
        ",".join(r[c] for c in columns) + "\n" for r in rows)
    (run.run_dir / "trials.csv").write_text(text)
    again = RunData.load(run.run_dir)
    assert again.trials["upload_bytes"].isna().all()
    assert not [f for f in compute_guidance(again) if f.topic == "upload"]


@pytest.mark.e2e
def test_uploads_through_uvicorn_and_gunicorn_sync(tmp_path: Path) -> None:
    scenario = tmp_path / "upload.toml"
    scenario.write_text((REPO / "scenarios" / "upload.toml").read_text()
                        .replace('upload_sizes = ["64KiB", "16MiB"]',
                                 'upload_sizes = ["64KiB", "1MiB"]'))
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", str(scenario), "--quick", "--servers",
                    "uvicorn,gunicorn-sync", "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_rows(out / "trials.csv")
    assert sorted((r["server"], r["upload_bytes"]) for r in rows) == [
        ("gunicorn-sync", str(MIB)), ("gunicorn-sync", str(64 * KIB)),
        ("uvicorn", str(MIB)), ("uvicorn", str(64 * KIB))]
    for row in rows:
        # every answer's length and SHA-256 matched the harness's
        assert (row["status"], row["errors"], row["errors_body"]) == ("ok", "0", "0"), row
        assert int(row["requests"]) > 0 and float(row["server_pss_mb"]) > 0, row
        assert "-u1MiB-" in row["trial_id"] or "-u64KiB-" in row["trial_id"]
    findings = json.loads((out / "findings.json").read_text())["findings"]
    upload = {int(f["question"]["upload"]): f for f in findings if f["topic"] == "upload"}
    assert set(upload) == {64 * KIB, MIB}
    assert {k for k in upload[MIB]["values"] if k.startswith("mb_s_")} <= {
        "mb_s_uvicorn", "mb_s_gunicorn-sync"}
    memory = next(f for f in findings if f["topic"] == "upload_memory")
    assert {"peak_uvicorn", "peak_gunicorn-sync"} <= set(memory["values"])
    report = (out / "report.md").read_text()
    assert "1 MiB uploads, closed loop" in report and "MB/s" in report


def test_record_has_the_column() -> None:
    assert "upload_bytes" in {f.name for f in dataclasses.fields(record("x"))}
