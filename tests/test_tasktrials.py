"""Background work and clients that leave a stream (harness.tasktrials): the app's task log,
what is counted against a test server whose behaviour is known (tests.support.taskserver), the
scenarios and plans, the findings and their rows, and real runs on gunicorn-sync and uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from apps.raw import asgi, common, tasklog
from apps.raw.tasklog import (
    TASK_LOG_ENV,
    TaskLog,
    parse_stream_line,
    read_stream_ends,
    read_task_counts,
)
from harness import tasktrials
from harness.analysis.answers import answer_rows
from harness.analysis.guidance import compute_guidance
from harness.analysis.rundata import RunData
from harness.errors import UsageError
from harness.httpget import answers_ready
from harness.plan import PlanOptions, build_plan
from harness.ports import free_port
from harness.processes import RunningServer, spawn
from harness.results import RunWriter, TrialRecord, TrialStatus
from harness.scenarios import load_scenario, parse_scenario
from tests.runhelpers import REPO, harness_cmd, read_rows

CPUS = (sorted(os.sched_getaffinity(0))[0],)
# the answer the test server gives /background?ms=N (the app contract's)
TASK_MS = 400


@contextlib.contextmanager
def _taskserver(*args: str) -> Iterator[RunningServer]:
    """tests.support.taskserver as the local backend runs a server: its own process group and
    task log folder, stopped (and the folder removed) at the end."""
    scratch = Path(tempfile.mkdtemp(prefix="harness-tasks-test-"))
    port = free_port()
    command = [sys.executable, "-m", "tests.support.taskserver", "--port", str(port), *args]
    env = {**os.environ, TASK_LOG_ENV: str(scratch), "PYTHONPATH": str(REPO)}
    popen, watchdog, log_path = spawn("taskserver", command, CPUS, env, scratch=scratch)
    server = RunningServer(name="taskserver", popen=popen, command=command, cpus=CPUS,
                           port=port, log_path=log_path, watchdog=watchdog, scratch=scratch,
                           task_log=scratch)
    try:
        server.wait_ready(functools.partial(answers_ready, server.url + "/hello"),
                          "answer /hello")
        yield server
    finally:
        server.stop()
        assert not scratch.exists()


# -- the task log


def test_the_task_log_counts_every_process_and_outlives_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_LOG_ENV, str(tmp_path))
    log = TaskLog()
    log.task_started()
    log.task_started()
    log.task_finished()
    pid = os.fork()
    if pid == 0:  # a worker forked after the first writes: files of its own
        log.task_started()
        log.stream_ended("abc-1", 5, 50, "gone")
        os._exit(0)
    os.waitpid(pid, 0)
    counts = read_task_counts(tmp_path)
    assert (counts.started, counts.finished, counts.running, counts.processes) == (3, 1, 2, 2)
    (end,) = read_stream_ends(tmp_path)
    assert (end.stream_id, end.sent, end.of, end.how, end.pid) == ("abc-1", 5, 50, "gone", pid)
    assert 0 < end.end_ns <= time.monotonic_ns()


def test_without_a_folder_nothing_is_written_and_a_bad_line_is_no_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TASK_LOG_ENV, raising=False)
    TaskLog().task_started()  # no folder: nothing, no error
    monkeypatch.setenv(TASK_LOG_ENV, str(tmp_path / "gone"))
    TaskLog().task_started()  # a folder that is not there: dropped, no error
    assert read_task_counts(tmp_path) == read_task_counts(tmp_path / "gone")
    assert parse_stream_line("x 1 2 3 done", 7) is not None
    assert parse_stream_line("x 1 2 3", 7) is None
    assert parse_stream_line("x one 2 3 done", 7) is None


def test_the_raw_apps_log_each_stream_end_and_each_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TASK_LOG_ENV, str(tmp_path))
    monkeypatch.setattr(tasklog, "TASK_LOG", TaskLog())  # files opened in this test's folder
    events = common.sync_stream(common.StreamRequest(events=5, interval_ms=0, stream_id="w1"))
    assert isinstance(events, types.GeneratorType)
    next(events)
    next(events)
    events.close()  # the server closes the generator at its yield: a write failed
    assert len(list(common.sync_stream(common.StreamRequest(events=2, interval_ms=0,
                                                            stream_id="w2")))) == 2
    sent: list[Mapping[str, Any]] = []
    gone = asyncio.Event()

    async def receive() -> Mapping[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)
        if sum(1 for m in sent if m.get("body")) == 2:
            gone.set()  # the client leaves after two events

    asyncio.run(asgi._stream(common.StreamRequest(events=50, interval_ms=20, stream_id="a1"),
                             receive, send))  # type: ignore[arg-type]
    ends = {e.stream_id: (e.sent, e.of, e.how) for e in read_stream_ends(tmp_path)}
    assert ends == {"w1": (2, 5, "gone"), "w2": (2, 2, "done"), "a1": (2, 50, "gone")}
    counters = common.BackgroundCounters()
    counters.start()
    counters.finish()
    assert (read_task_counts(tmp_path).started, read_task_counts(tmp_path).finished) == (1, 1)


def test_stream_takes_an_optional_id_that_changes_no_byte() -> None:
    parsed = common.parse_stream("events=3&interval_ms=0&id=a-Z_9")
    assert isinstance(parsed, common.StreamRequest) and parsed.stream_id == "a-Z_9"
    assert parsed.event(0) == common.stream_event(0, 3, 0)
    for bad in ("", "a b", "é", "x" * 65, "a.b"):
        answer = common.parse_stream(f"events=3&interval_ms=0&id={bad}")
        assert isinstance(answer, common.Response) and answer.status == 400, bad
        assert answer.body == b"Bad Request: id must be 1..64 letters, digits, '-' or '_'"
    assert common.parse_stream("events=3&interval_ms=0").stream_id is None  # type: ignore[union-attr]


# -- counting against a server whose behaviour is known


def _term_line(server: RunningServer) -> tuple[int, int]:
    match = re.search(r"answered (\d+), running (\d+) at SIGTERM", server.log_tail())
    assert match, server.log_tail()
    return int(match.group(1)), int(match.group(2))


def test_a_server_that_finishes_k_of_n_tasks_on_sigterm_loses_n_minus_k() -> None:
    with _taskserver("--finish-on-term", "3") as server:
        load, figures = tasktrials.run_background(
            server, f"{server.url}/background?ms={TASK_MS}", load_model="sigterm", clients=8,
            warmup_s=0.2, duration_s=1.0, timeout_s=2.0, think_s=0.0, expect_body=None,
            cpus=CPUS)
        answered, running = _term_line(server)
        assert running > 3
        assert figures.tasks_accepted == answered  # every answer the server wrote arrived
        assert figures.tasks_started == answered
        assert figures.tasks_lost == running - 3
        assert figures.stopped and figures.died is None
        assert figures.exit_after_s is not None and figures.exit_after_s < 2.0
        assert not server.alive()
        # refused connects after the signal are errors, but not held against the trial
        assert load.errors["total"] > 0 and figures.errors_judged == 0
        assert f"lost {running - 3}" in load.notes[-1]
        server.stop()  # the runner's stop of a server that has exited: only cleanup
        assert server.leftovers == []


def test_a_server_that_ignores_sigterm_is_killed_at_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasktrials, "SIGTERM_EXIT_TIMEOUT_S", 1.0)
    with _taskserver("--ignore-term") as server:
        started = time.monotonic()
        load, figures = tasktrials.run_background(
            server, f"{server.url}/background?ms=100", load_model="sigterm", clients=2,
            warmup_s=0.0, duration_s=0.4, timeout_s=1.0, think_s=0.0, expect_body=None,
            cpus=CPUS)
        assert time.monotonic() - started < 10.0
        assert figures.exit_after_s is None and not server.alive()
        assert "did not exit within 1 s of SIGTERM: killed" in load.notes[-1]
        pid = server.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_background_level_counts_the_tasks_of_its_window() -> None:
    with _taskserver() as server:
        load, figures = tasktrials.run_background(
            server, f"{server.url}/background?ms=100", load_model="background", clients=4,
            warmup_s=0.2, duration_s=1.0, timeout_s=2.0, think_s=0.02,
            expect_body=b'{"ms":100,"queued":true}', cpus=CPUS)
        assert load.errors["total"] == 0 and load.requests > 20
        assert figures.tasks_accepted == load.requests
        # the window's tasks: those of its answers, give or take the ones at its edges
        assert abs((figures.tasks_started or 0) - load.requests) <= 4
        assert abs((figures.tasks_finished or 0) - load.requests) <= 8
        assert server.alive() and not figures.stopped


def test_a_server_that_makes_two_events_after_the_close_is_measured_as_two() -> None:
    with _taskserver("--linger", "2") as server:
        load, figures = tasktrials.run_disconnect(
            server, f"{server.url}/stream", clients=5, events=20, interval_ms=50, read=3,
            timeout_s=5.0, cpus=CPUS)
        assert (figures.events_after_close_p50, figures.events_after_close_max,
                figures.streams_never_ended) == (2.0, 2, 0)
        assert load.requests == 5 and load.errors["total"] == 0
        stop_ms = load.latency.get_value_at_percentile(50) / 1000
        assert 90 <= stop_ms <= 400  # two more 50 ms waits after the close


def test_a_stream_never_ended_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasktrials, "STREAM_END_GRACE_S", 0.2)
    with _taskserver("--linger", "-1") as server:
        load, figures = tasktrials.run_disconnect(
            server, f"{server.url}/stream", clients=3, events=6, interval_ms=50, read=2,
            timeout_s=5.0, cpus=CPUS)
        # the clients left: measured, and a result (not a trial without an answer)
        assert figures.streams_never_ended == 3 and load.requests == 3
        assert figures.events_after_close_max is None


def test_a_target_without_a_task_log_is_unsupported() -> None:
    class NoLog:
        task_log = None

    reason = tasktrials.unsupported(NoLog())  # type: ignore[arg-type]
    assert reason is not None and "local backend" in reason


# -- scenarios and plans


def test_the_background_plan_ends_each_target_with_its_sigterm_level() -> None:
    scenario = load_scenario("background")
    assert scenario.needs_task_log and scenario.background is not None
    assert scenario.background.think_s == 0.05
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1)))
    assert [(lv.load_model, lv.concurrency) for lv in plan.levels] == [
        ("background", 16), ("background", 64), ("sigterm", 64)]
    quick = build_plan(scenario, PlanOptions(quick=True, available_cpus=(0, 1)))
    assert [lv.label() for lv in quick.levels] == ["16 conn (background work)",
                                                   "16 conn + SIGTERM"]
    assert quick.estimate_s() <= 120.0
    assert build_plan(scenario, PlanOptions(available_cpus=(0, 1))).estimate_s() <= 15 * 60
    with pytest.raises(UsageError, match="closed-loop levels only"):
        build_plan(scenario, PlanOptions(rate=[100.0], available_cpus=(0, 1)))


def test_the_disconnect_plan() -> None:
    scenario = load_scenario("disconnect")
    assert scenario.disconnect is not None
    assert (scenario.disconnect.events, scenario.disconnect.read) == (50, 3)
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1)))
    assert [(lv.load_model, lv.concurrency) for lv in plan.levels] == [
        ("disconnect", 10), ("disconnect", 50)]
    assert plan.estimate_s() <= 15 * 60
    assert build_plan(scenario, PlanOptions(quick=True, available_cpus=(0, 1))
                      ).estimate_s() <= 120.0


_BASE = """
name = "s"
description = "d"
kind = "{kind}"
servers = ["uvicorn"]
[request]
path = "/x"
[load]
concurrency = [4]
"""


@pytest.mark.parametrize(("kind", "table", "message"), [
    ("disconnect", "[disconnect]\nevents = 5\nread = 5", "field 'disconnect.read': expected "
     "fewer than events"),
    ("disconnect", "[disconnect]\npace = 1", "unknown key 'pace' in table \\[disconnect\\]"),
    ("background", "[background]\nsigterm = 1", "field 'background.sigterm'"),
    ("hello", "[background]\nsigterm = true", "table 'background': expected kind = "
     "\"background\""),
    ("background", "[load]\nrate = [10]", "closed-loop levels only"),
    ("background", '[slo]\nobjective = "p99=100ms"', "no capacity search"),
])
def test_a_bad_task_table_is_one_line(kind: str, table: str, message: str) -> None:
    text = _BASE.format(kind=kind)
    if table.startswith("[load]"):
        text = text.replace("[load]\nconcurrency = [4]\n", table + "\n")
    else:
        text += table + "\n"
    with pytest.raises(UsageError, match=message):
        parse_scenario(text, "s.toml")


def test_a_family_that_does_not_log_what_is_read_is_unsupported() -> None:
    streams = build_plan(load_scenario("disconnect"),
                         PlanOptions(app="flask,raw", servers=["gunicorn-sync"],
                                     available_cpus=(0, 1)))
    assert [(t.target.family.name, t.supported) for t in streams.targets] == [
        ("flask", False), ("raw", True)]
    assert "does not log its streams' ends" in streams.targets[0].reason
    work = build_plan(load_scenario("background"),
                      PlanOptions(app="django", servers=["gunicorn-sync"],
                                  available_cpus=(0, 1)))
    assert [(t.supported, t.reason) for t in work.targets] == [
        (False, "app family 'django' has no /background route")]


def test_sigterm_false_has_no_sigterm_level_and_slo_is_refused() -> None:
    scenario = parse_scenario(_BASE.format(kind="background")
                              + "[background]\nsigterm = false\n", "s.toml")
    plan = build_plan(scenario, PlanOptions(available_cpus=(0, 1)))
    assert [lv.load_model for lv in plan.levels] == ["background"]
    from harness.slo import parse_slo
    with pytest.raises(UsageError, match="--slo: a background scenario"):
        build_plan(scenario, PlanOptions(slo=parse_slo("p99=100ms"), available_cpus=(0, 1)))


# -- findings and "What to run"


def _record(trial_id: str, server: str, load_model: str, level: int, **extra: Any
            ) -> TrialRecord:
    fields: dict[str, Any] = dict(
        trial_id=trial_id, scenario="s", server=server,
        gateway="wsgi" if server.startswith("gunicorn") else "asgi", app="raw",
        endpoint="/background?ms=200", load_model=load_model, concurrency=level, rate=None,
        repeat=1, duration_s=2.0, requests=100, achieved_rps=50.0, offered_rps=None, errors=0,
        error_rate=0.0, errors_connect=0, errors_io=0, errors_timeout=0, errors_status=0,
        errors_body=0, p50_ms=1.0, p75_ms=1.0, p90_ms=1.0, p99_ms=2.0, p99_9_ms=2.0,
        p99_99_ms=2.0, max_ms=3.0, mean_ms=1.0, service_p50_ms=None, service_p99_ms=None,
        behind=0, out_of_range=0, server_cpu_pct=50.0, server_rss_mb=30.0, server_pss_mb=None,
        loadgen_cpu_pct=10.0, saturated=False, valid=True, invalid_reason="",
        status=TrialStatus.OK, workers=1, threads=None, server_cpus="1", loadgen_cpus="0",
        started_at="2024-01-01T00:00:00+00:00")
    fields.update(extra)
    return TrialRecord(**fields)


def _run(tmp_path: Path, scenario: str, records: list[TrialRecord]) -> RunData:
    levels = [{"load_model": m, "concurrency": c} for m, c in
              dict.fromkeys((r.load_model, r.concurrency) for r in records)]
    writer = RunWriter(tmp_path / "run", {
        "run_id": "r", "scenario": {"name": scenario, "kind": scenario, "endpoint": "/x",
                                    "definition": {}},
        "plan": {"levels": levels, "repeat": 1}, "targets": []})
    for record in records:
        writer.append_trial(record)
    return RunData.load(tmp_path / "run")


def test_the_background_findings_and_rows(tmp_path: Path) -> None:
    run = _run(tmp_path, "background", [
        _record("1", "gunicorn-sync", "background", 16, tasks_accepted=30, tasks_started=30,
                tasks_finished=30),
        _record("2", "uvicorn", "background", 16, tasks_accepted=600, tasks_started=600,
                tasks_finished=598),
        _record("3", "gunicorn-sync", "sigterm", 16, tasks_accepted=24, tasks_started=24,
                tasks_finished=24, exit_after_s=0.6),
        _record("4", "daphne", "sigterm", 16, tasks_accepted=377, tasks_started=377,
                tasks_finished=329, exit_after_s=None),
    ])
    findings = {f.topic: f for f in compute_guidance(run)}
    rate, term = findings["background"], findings["background_sigterm"]
    assert (rate.winners, rate.others) == (("uvicorn",), ("gunicorn-sync",))
    assert rate.values["finished_per_s_gunicorn-sync"] == 15.0
    assert (term.winners, term.others) == (("gunicorn-sync",), ("daphne",))
    assert term.values["lost_daphne"] == 48.0 and term.question["killed"] == ["daphne"]
    assert "daphne lost 48 of 377" in term.text and "killed" in term.text
    rows = answer_rows(run, list(findings.values()))
    assert [r.work for r in rows] == ["work after each answer, 16 clients",
                                      "background tasks lost on SIGTERM, 16 clients"]
    assert rows[1].by == "daphne 48 of 377, gunicorn-sync 0 of 24; daphne killed at the bound"
    assert rows[1].run == "gunicorn-sync"
    assert term.headline == ("Background tasks lost on SIGTERM: daphne 48 of 377; none on "
                             "gunicorn-sync.")


def test_the_disconnect_finding_and_row(tmp_path: Path) -> None:
    run = _run(tmp_path, "disconnect", [
        _record("1", "gunicorn-sync", "disconnect", 10, p50_ms=201.0, max_ms=203.0,
                events_after_close_p50=2.0, events_after_close_max=2, streams_never_ended=0),
        _record("2", "uvicorn", "disconnect", 10, p50_ms=0.4, max_ms=0.5,
                events_after_close_p50=0.0, events_after_close_max=0, streams_never_ended=0),
        _record("3", "granian-wsgi", "disconnect", 10, p50_ms=4700.0, max_ms=4800.0,
                events_after_close_p50=47.0, events_after_close_max=47,
                streams_never_ended=1),
    ])
    (finding,) = [f for f in compute_guidance(run) if f.topic == "disconnect"]
    assert finding.winners == ("uvicorn",)
    assert finding.others == ("gunicorn-sync", "granian-wsgi")
    assert finding.values["after_max_gunicorn-sync"] == 2.0
    assert "1 never ended" in finding.text
    (row,) = answer_rows(run, [finding])
    assert row.run == "uvicorn"
    # the classic pair where the run has it
    assert row.by == ("stops 0.40 ms after the close (uvicorn) vs 201 ms, after 2 more events "
                      "(gunicorn-sync)")
    assert "1–47 more events" not in finding.headline and "2–47 more events" in finding.headline


# -- real runs


def _leftovers(run_dir: Path, before: set[str]) -> list[str]:
    """Task log folders this run left, and its servers' processes still alive."""
    left = sorted(set(os.listdir(tempfile.gettempdir())) - before)
    left = [name for name in left if name.startswith("harness-tasks-")]
    meta = json.loads((run_dir / "run.json").read_text())
    for target in meta["targets"]:
        pid = target.get("pid")
        if pid and psutil.pid_exists(pid):
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(f"pid {pid} ({target['server']})")
    return left


@pytest.mark.e2e
def test_background_run_counts_tasks_and_leaves_nothing(tmp_path: Path) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", "background", "--quick", "--servers",
                    "gunicorn-sync,uvicorn", "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {(r["server"], r["load_model"]): r for r in read_rows(out / "trials.csv")}
    assert set(rows) == {(s, m) for s in ("gunicorn-sync", "uvicorn")
                         for m in ("background", "sigterm")}
    for (_server, model), row in rows.items():
        assert row["status"] == "ok", row
        accepted, finished = int(row["tasks_accepted"]), int(row["tasks_finished"])
        assert accepted > 0 and finished > 0, row
        if model == "sigterm":
            # both wait for their requests' work before they exit: nothing lost
            assert finished == accepted == int(row["tasks_started"]), row
            assert row["exit_after_s"] and float(row["exit_after_s"]) < 30, row
    # three sync workers, each held 200 ms a task: 15 a second at most
    assert float(rows[("gunicorn-sync", "background")]["tasks_finished"]) <= 2 * 16
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert {"background", "background_sigterm"} <= {f["topic"] for f in findings}
    assert _leftovers(out, before) == []


@pytest.mark.e2e
def test_disconnect_run_tells_the_asgi_stop_from_the_wsgi_one(tmp_path: Path) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", "disconnect", "--quick", "--servers",
                    "gunicorn-sync,uvicorn", "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["server"]: r for r in read_rows(out / "trials.csv")}
    # uvicorn's app hears http.disconnect: no event after the close
    assert rows["uvicorn"]["events_after_close_max"] == "0"
    assert float(rows["uvicorn"]["p50_ms"]) < 50
    # gunicorn-sync's generator is closed when a write fails: the next or the one after
    assert 1 <= int(rows["gunicorn-sync"]["events_after_close_max"]) <= 2
    assert all(r["streams_never_ended"] == "0" for r in rows.values())
    assert _leftovers(out, before) == []
