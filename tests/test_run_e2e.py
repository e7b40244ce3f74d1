"""`harness run` end to end: real servers, real generator, real run folder.

Short durations; the assertions are the physics a result must follow and the run-folder
contract, not figures.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from harness import runner as runner_module
from harness.analysis import load_series
from harness.analysis.rundata import busy_trials, load_run
from harness.backends.local import LocalBackend, RunningServer
from harness.catalogue import Target, get_server, make_target
from harness.errors import GeneratorError
from harness.loadgen import LoadResult, LoadSpec, run_load
from harness.loadgen.spec import encode_request
from harness.plan import SEARCH_REWARM_S, PlanOptions, build_plan
from harness.results import (
    CAPACITY_FILE,
    RunWriter,
    TrialRecord,
    histogram_path,
    read_meta,
    read_trials_rows,
    series_path,
)
from harness.runner import Runner
from harness.scenarios import load_scenario, parse_scenario
from harness.slo import parse_slo, start_rate_from
from tests.runhelpers import (
    FunctionDriver,
    all_gone,
    descendants,
    harness_cmd,
    read_json,
    read_rows,
    start_harness,
    wait_for,
)

pytestmark = pytest.mark.e2e
UPSTREAM_MS = 50
RUN_TIMEOUT_S = 240.0
CPU_BOUND_GAIN_MAX = 1.5  # uvicorn, 16 clients vs 1: measured 1.0-1.3x (I/O-bound: ~16x)
CPU_BOUND_ASYNC_GAIN_MAX = 2.0  # uvicorn vs gunicorn-sync: measured 1.1-1.6x (I/O-bound: ~100x)
# runs of the CPU-bound ratio test at most: one more when a trial was taken on a busy machine
CPU_BOUND_RUNS = 2
# a rate one generator process meets with ease on a busy machine (hello: thousands a second)
EASY_RATE_RPS = 100.0
# steps for a search that starts from 16 clients' closed-loop peak (the default is 12): see its test
SEARCH_STEPS_FROM_16_CLIENTS = 16


def test_two_servers_io_bound(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        harness_cmd("run", "--scenario", "io_bound", "--servers", "gunicorn-sync,uvicorn",
                    "--concurrency", "16", "--rate", "40", "--duration", "2s", "--warmup",
                    "500ms", "--out", str(out), "--no-report"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = read_meta(out)
    assert meta["status"] == "complete"
    assert meta["scenario"]["hash"].startswith("sha256:")
    assert meta["cpus"]["server"] and not set(meta["cpus"]["server"]) & set(meta["cpus"]["loadgen"])
    assert {t["server"]: t["status"] for t in meta["targets"]} == {
        "gunicorn-sync": "ok", "uvicorn": "ok"}
    assert meta["environment"]["versions"]["gunicorn"]
    assert meta["cpu_speed_probe"]["cpus"] == meta["cpus"]["server"]  # pinned where it counts

    rows = read_trials_rows(out)
    assert sorted((r["server"], r["load_model"]) for r in rows) == [
        ("gunicorn-sync", "closed"), ("gunicorn-sync", "open"),
        ("uvicorn", "closed"), ("uvicorn", "open")]
    for row in rows:
        assert histogram_path(out, row["trial_id"]).is_file()
        assert series_path(out, row["trial_id"]).is_file()
        assert float(row["requests"]) > 0
        # every answer waited on the 50 ms upstream: nothing can be faster than that
        assert float(row["p50_ms"]) >= UPSTREAM_MS
        assert float(row["server_cpu_pct"]) > 0
    # the server CPU's pace: each trial after the first is set against the ones before it
    # (the first, against the probe's readings before it, if it had at least three)
    assert all(float(r["cpu_slowdown"]) > 0 for r in rows[1:]), rows
    closed = {r["server"]: r for r in rows if r["load_model"] == "closed"}
    workers = make_target(get_server("gunicorn-sync"), app="raw", cpus=1).preset.workers
    assert workers is not None
    # W sync workers each blocked 50 ms per request cap near W / 0.05 req/s
    cap = workers / (UPSTREAM_MS / 1000)
    assert float(closed["gunicorn-sync"]["achieved_rps"]) <= cap * 1.1
    # 16 connections on an event loop all wait at once: near 16 / 0.05 req/s
    assert float(closed["uvicorn"]["achieved_rps"]) > cap * 1.2
    # the census mid-trial: uvicorn's one process held the 16 keep-alive connections; each of
    # gunicorn's sync workers serves one connection at a time (its arbiter only listens)
    assert closed["uvicorn"]["connections_per_worker"] == "16"
    sync_spread = [int(n) for n in closed["gunicorn-sync"]["connections_per_worker"].split()]
    assert len(sync_spread) == workers and max(sync_spread) <= 1
    opened = [r for r in rows if r["load_model"] == "open"]
    for row in opened:
        assert histogram_path(out, row["trial_id"], "service").is_file()
        assert float(row["offered_rps"]) == pytest.approx(40, rel=0.05)
    for row in rows:  # the per-second throughput adds up to the trial's
        answered = load_series(out, row["trial_id"])["completed"].sum()
        assert answered == round(float(row["achieved_rps"]) * float(row["duration_s"]))


def test_server_killed_mid_run_is_recorded_and_run_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_harness("run", "--scenario", "hello", "--servers", "gunicorn-sync,uvicorn",
                         "--concurrency", "8", "--duration", "3s", "--warmup", "200ms",
                         "--out", str(out), "--no-report")
    try:
        def first_running() -> bool:
            targets = read_json(out / "run.json").get("targets", [])
            return any(t["server"] == "gunicorn-sync" and t["status"] == "running"
                       for t in targets)

        wait_for(first_running, 60, "gunicorn-sync to be verified and measured", proc)
        # the arbiter is `python -m gunicorn ...` (its watchdog's log path also says gunicorn)
        masters = [p for p in descendants(proc.pid)
                   if p.ppid() == proc.pid and p.cmdline()[1:3] == ["-m", "gunicorn"]]
        assert masters, "gunicorn's master process should be a child of the harness"
        masters[0].send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stdout + stderr
    rows = read_trials_rows(out)
    killed = [r for r in rows if r["server"] == "gunicorn-sync"]
    assert len(killed) == 1
    assert killed[0]["valid"] == "false" and "server died" in killed[0]["invalid_reason"]
    assert killed[0]["status"] == "failed"
    assert [r["valid"] for r in rows if r["server"] == "uvicorn"] == ["true"]
    statuses = {t["server"]: t["status"] for t in read_meta(out)["targets"]}
    assert statuses == {"gunicorn-sync": "died", "uvicorn": "ok"}


def test_ctrl_c_stops_everything_and_keeps_what_was_measured(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_harness("run", "--scenario", "io_bound", "--servers", "uvicorn,hypercorn",
                         "--concurrency", "4,8,16", "--duration", "2s", "--warmup", "200ms",
                         "--out", str(out), "--no-report")
    seen: set[int] = set()
    try:
        def one_trial_written() -> bool:
            seen.update(p.pid for p in descendants(proc.pid))
            return len(read_rows(out / "trials.csv")) >= 1

        wait_for(one_trial_written, 90, "the first trial to be written", proc)
        seen.update(p.pid for p in descendants(proc.pid))
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    meta = read_meta(out)
    assert meta["status"] == "interrupted"
    rows = read_trials_rows(out)
    assert rows and all(r["requests"] for r in rows)
    # every process the harness started (servers, workers, upstream, generator) is gone
    wait_for(lambda: all_gone(sorted(seen)), 15, f"processes {sorted(seen)} to exit")


def test_cpu_bound_async_gains_nothing_and_blocks_its_loop(tmp_path: Path) -> None:
    """Ratios of 2 s trials on one CPU: a run where the harness flags one of uvicorn's trials as
    taken on a busy machine is run again, up to CPU_BOUND_RUNS in all, and the last one is
    asserted on. In a CI rehearsal (Dec 5) uvicorn served 108 req/s at 1 client and 168 at 16
    (1.56x) while the harness's probe found the server's CPU 1.3x slower than its recent pace
    during the first. uvicorn's only: gunicorn-sync's three workers at 16 clients put the probe
    at 1.4-1.7x in every run (three of three, quiet machine or not), so its flag says nothing
    of this run against another."""
    for attempt in range(1, CPU_BOUND_RUNS + 1):
        out = tmp_path / f"run{attempt}"
        proc = subprocess.run(
            harness_cmd("run", "--scenario", "cpu_bound", "--servers", "gunicorn-sync,uvicorn",
                        "--concurrency", "1,16", "--duration", "2s", "--warmup", "500ms",
                        "--out", str(out), "--no-report"),
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if not (busy_trials(load_run(out))["server"] == "uvicorn").any():
            break
    rows = {(r["server"], int(r["concurrency"])): r for r in read_trials_rows(out)}
    assert all(r["valid"] == "true" for r in rows.values()), rows
    sync16 = float(rows[("gunicorn-sync", 16)]["achieved_rps"])
    async16 = float(rows[("uvicorn", 16)]["achieved_rps"])
    async1 = float(rows[("uvicorn", 1)]["achieved_rps"])
    # one CPU, pure-Python work: sixteen clients get no more from the event loop than one did
    # (I/O-bound, the same step buys ~16x), and the async server no more than the sync one
    # (I/O-bound: ~100x). The margins are for this shared machine's noise, which moves one
    # server's rate against the other's by up to ~60 % (seen in CI: 245 vs 154 req/s)
    assert async16 < CPU_BOUND_GAIN_MAX * async1, (async16, async1)
    assert async16 < CPU_BOUND_ASYNC_GAIN_MAX * sync16, (async16, sync16)
    # a computing handler blocks the loop: 16 requests wait in line behind each other, so the
    # median latency grows with concurrency instead of staying at one request's work
    p50_1 = float(rows[("uvicorn", 1)]["p50_ms"])
    p50_16 = float(rows[("uvicorn", 16)]["p50_ms"])
    assert p50_16 > 8 * p50_1, (p50_1, p50_16)


class _Quiet:
    """A RunObserver that records what it hears."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def target_started(self, planned: object) -> None: ...
    def target_skipped(self, planned: object, status: str, reason: str) -> None: ...
    def trial_started(self, planned: object, level: object, repeat: int,
                      seconds: float) -> None: ...

    def trial_done(self, record: TrialRecord) -> None:
        self.done.append(record.trial_id)

    def capacity_found(self, planned: object, slo: object, capacity: object) -> None: ...
    def head_to_head(self, pair: object, why_not: str) -> None: ...


def test_server_dead_between_trials_fails_that_trial_not_the_run(tmp_path: Path) -> None:
    scenario = load_scenario("hello")
    plan = build_plan(scenario, PlanOptions(servers=["uvicorn", "granian-asgi"],
                                            concurrency=[4, 8], duration_s=0.5, warmup_s=0.1))
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    calls: list[LoadSpec] = []

    def measure(spec: LoadSpec) -> LoadResult:
        calls.append(spec)
        if len(calls) == 2:  # uvicorn's second trial: its server is gone before it starts
            port = urlsplit(spec.url).port
            for proc in psutil.process_iter(["cmdline"]):
                cmd = proc.info["cmdline"] or []
                if cmd[1:3] == ["-m", "uvicorn"] and str(port) in cmd:
                    proc.kill()
                    proc.wait(10)
        return run_load(spec)

    observer = _Quiet()
    outcome = Runner(plan, writer, observer, backend=LocalBackend(),
                     driver=FunctionDriver(measure)).run()
    rows = read_trials_rows(tmp_path / "run")
    assert [(r["server"], r["status"], r["valid"]) for r in rows] == [
        ("uvicorn", "ok", "true"), ("uvicorn", "failed", "false"),
        ("granian-asgi", "ok", "true"), ("granian-asgi", "ok", "true")]
    assert "server died" in rows[1]["invalid_reason"]
    assert outcome.target_status["uvicorn"][0] == "died"
    assert outcome.target_status["granian-asgi"][0] == "ok"
    assert len(observer.done) == 4


def test_generator_failure_fails_that_trial_and_the_run_goes_on(tmp_path: Path) -> None:
    plan = build_plan(load_scenario("hello"), PlanOptions(
        servers=["uvicorn", "granian-asgi"], concurrency=[4, 8], duration_s=0.5, warmup_s=0.1))
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    calls: list[LoadSpec] = []

    def measure(spec: LoadSpec) -> LoadResult:
        calls.append(spec)
        if len(calls) == 1:  # as run_load reports a crashed generator process
            raise GeneratorError("generator process 0 exited with code -9")
        return run_load(spec)

    outcome = Runner(plan, writer, _Quiet(), backend=LocalBackend(),
                     driver=FunctionDriver(measure)).run()
    rows = read_trials_rows(tmp_path / "run")
    assert [(r["server"], r["status"]) for r in rows] == [
        ("uvicorn", "failed"), ("granian-asgi", "ok"), ("granian-asgi", "ok")]
    assert rows[0]["invalid_reason"].startswith("generator failed: generator process 0")
    assert outcome.target_status["uvicorn"][0] == "failed"


def test_scenario_request_headers_and_body_reach_the_generator(tmp_path: Path) -> None:
    """[request] method, headers and body are sent, not accepted and ignored (issue 9)."""
    text = (Path("scenarios/hello.toml").read_text()
            .replace('path = "/hello"', 'path = "/hello"\nheaders = { "X-Trace" = "on" }'))
    scenario = parse_scenario(text, "hello-with-headers.toml")
    plan = build_plan(scenario, PlanOptions(servers=["uvicorn"], concurrency=[2],
                                            duration_s=0.3, warmup_s=0.0))
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    specs: list[LoadSpec] = []

    def measure(spec: LoadSpec) -> LoadResult:
        specs.append(spec)
        return run_load(spec)

    Runner(plan, writer, _Quiet(), backend=LocalBackend(), driver=FunctionDriver(measure)).run()
    assert specs and specs[0].headers == (("X-Trace", "on"),)
    assert b"\r\nX-Trace: on\r\n" in encode_request(specs[0])
    (row,) = read_trials_rows(tmp_path / "run")
    # answered, and every answer had the body of the very request the load sends
    assert row["status"] == "ok" and int(row["requests"]) > 0 and row["errors"] == "0", row


def test_repeats_restart_servers_and_interleave_targets(tmp_path: Path) -> None:
    """--repeat N: each repeat starts every server afresh, each round one target further on
    (A B, then B A), so what varies between server starts is in the spread (issue 13)."""
    plan = build_plan(load_scenario("hello"), PlanOptions(
        servers=["uvicorn", "granian-asgi"], concurrency=[2], duration_s=0.3, warmup_s=0.0,
        repeat=2))
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    seen: list[str] = []

    def measure(spec: LoadSpec) -> LoadResult:
        seen.append(spec.url)
        return run_load(spec)

    Runner(plan, writer, _Quiet(), backend=LocalBackend(), driver=FunctionDriver(measure)).run()
    rows = read_trials_rows(tmp_path / "run")
    assert [(r["server"], r["repeat"]) for r in rows] == [
        ("uvicorn", "1"), ("granian-asgi", "1"), ("granian-asgi", "2"), ("uvicorn", "2")]
    # a new server process (on a new port) for every repeat of every target
    assert len({urlsplit(url).port for url in seen}) == 4


class _StartsCounted(LocalBackend):
    """The local backend, keeping every target it started (to check each was stopped)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[RunningServer] = []

    def start_target(self, target: Target, *, cpus: Sequence[int], port: int = 0,
                     upstream_url: str | None = None, db_url: str | None = None,
                     task_log: bool = False) -> RunningServer:
        server = super().start_target(target, cpus=cpus, port=port, upstream_url=upstream_url,
                                      db_url=db_url, task_log=task_log)
        self.started.append(server)
        return server


def test_capacity_at_an_objective_and_a_new_server_after_each_missed_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13's check: gunicorn-sync's capacity at p99 <= 200 ms is its physics (3 workers,
    50 ms each: 60 req/s), uvicorn's at least 20x that; every search step is a trial, and a
    step that missed the objective hands over to a new server (each one stopped at the end).

    The busy-CPU check is off, as in the two tests below: in a CI rehearsal (Dec 5) uvicorn's
    search ended undetermined, a step invalid twice, where three rehearsals before it of the
    same search code had passed. The keep-up and lateness checks still judge every step."""
    monkeypatch.setattr(runner_module, "LOADGEN_CPUS_BUSY_MAX_PCT", 100.0)
    slo = parse_slo("p99=200ms,errors=0.1%")
    plan = build_plan(load_scenario("io_bound"), PlanOptions(
        servers=["gunicorn-sync", "uvicorn"], concurrency=[16], duration_s=1.0, warmup_s=0.5,
        slo=slo))
    # 16 clients hold uvicorn to ~310 req/s closed-loop, so its search starts 20-40x below its
    # capacity (the default plans start near it, from 512 clients' peak): on a quiet machine it
    # passed 5,632 req/s and 12 steps (the default) ended with a 5.3 % bracket, "at_least".
    plan = dataclasses.replace(plan, search=dataclasses.replace(
        plan.search, max_steps=SEARCH_STEPS_FROM_16_CLIENTS))
    backend = _StartsCounted()
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    outcome = Runner(plan, writer, _Quiet(), backend=backend,
                     driver=FunctionDriver(run_load)).run()
    assert {s: st for s, (st, _) in outcome.target_status.items()} == {
        "gunicorn-sync": "ok", "uvicorn": "ok"}
    capacity = {r["server"]: r for r in read_rows(tmp_path / "run" / CAPACITY_FILE)}
    trials = read_trials_rows(tmp_path / "run")
    by_id = {t["trial_id"]: t for t in trials}
    sync, uvicorn = capacity["gunicorn-sync"], capacity["uvicorn"]
    assert sync["status"] == uvicorn["status"] == "found", (sync, uvicorn)
    assert 40.0 <= float(sync["capacity_rps"]) <= 60.0, sync
    assert float(uvicorn["capacity_rps"]) >= 20 * float(sync["capacity_rps"]), uvicorn
    for server, row in capacity.items():
        proof, failed = by_id[row["proof_trial"]], by_id[row["failed_trial"]]
        assert proof["phase"] == failed["phase"] == "search"
        assert float(proof["p99_ms"]) <= 200.0 and proof["outcome"] == "valid"
        assert float(failed["offered_rps"]) == float(row["failed_rate"])
        # a step's trial is taken twice when the first could not be vouched for: by rate
        steps = list({t["offered_rps"]: t for t in trials
                      if t["server"] == server and t["phase"] == "search"}.values())
        assert len(steps) == int(row["steps"])
        missed = [t for t in steps[:-1] if t["outcome"] == "overloaded"
                  or float(t["p99_ms"]) > slo.threshold_ms
                  or float(t["error_rate"]) > slo.max_error_rate]
        started = [s for s in backend.started if s.name == server]
        # one server for the levels and the first step, then one after each missed step
        assert len(started) == 1 + len(missed), (server, len(started), len(missed))
        assert len({s.url for s in started}) == len(started)
    assert not any(s.alive() for s in backend.started)


def test_searches_past_the_repeats_start_a_server_for_the_search_alone(tmp_path: Path) -> None:
    """--searches 2 with one repeat: the second round starts the server again and runs only
    the search, from the first round's closed-loop peak, its first step warmed longer (a new
    server, not warmed by the levels); capacity.csv gets a row per round."""
    plan = build_plan(load_scenario("hello"), PlanOptions(
        servers=["uvicorn"], concurrency=[4], duration_s=0.3, warmup_s=0.1,
        slo=parse_slo("p99=1s"), searches=2))
    plan = dataclasses.replace(plan, search=dataclasses.replace(plan.search, max_steps=2))
    warmups: list[tuple[float, float]] = []  # (rate, warm-up) of every open-loop trial

    def measure(spec: LoadSpec) -> LoadResult:
        if spec.rate is not None:
            warmups.append((spec.rate, spec.warmup_s))
        return run_load(spec)

    backend = _StartsCounted()
    Runner(plan, RunWriter(tmp_path / "run", {"run_id": "t"}), _Quiet(), backend=backend,
           driver=FunctionDriver(measure)).run()
    trials = read_trials_rows(tmp_path / "run")
    assert {t["phase"] for t in trials if t["repeat"] == "1"} == {"sweep", "search"}
    assert {t["phase"] for t in trials if t["repeat"] == "2"} == {"search"}
    capacity = read_rows(tmp_path / "run" / CAPACITY_FILE)
    assert [(r["server"], r["repeat"]) for r in capacity] == [("uvicorn", "1"), ("uvicorn", "2")]
    # the hint is the valid closed-loop peak (none on a busy machine: the policy's start)
    peaks = [float(t["achieved_rps"]) for t in trials if t["phase"] == "sweep"
             and t["valid"] == "true"]
    start = start_rate_from(peaks) if peaks else plan.search.start_rate
    first = [next(t for t in trials if t["repeat"] == r and t["phase"] == "search")
             for r in ("1", "2")]
    assert float(first[0]["rate"]) == float(first[1]["rate"]) == start
    searched_in_round_1 = sum(1 for t in trials if t["repeat"] == "1" and t["phase"] == "search")
    step = plan.search_timing.warmup_s
    assert warmups[0][1] == step  # on the server the levels warmed
    assert warmups[searched_in_round_1][1] == step + SEARCH_REWARM_S
    assert len({s.url for s in backend.started}) == len(backend.started) >= 2
    assert not any(s.alive() for s in backend.started)


def test_head_to_head_searches_the_best_of_each_gateway_in_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--head-to-head 2 after a one-round plan of a WSGI and an ASGI server: pair 1 searches
    the WSGI one, then the ASGI one; pair 2 the other way round; each on a new server, with
    the search alone; capacity.csv numbers the pairs, run.json names the two.

    The pair is chosen only when each server's search found a figure. From hello's closed-loop
    peak the search starts at 15,000-17,000 req/s, which the generator on one busy CPU could
    not offer in time on a CI runner: uvicorn's step was invalid twice, its search ended
    undetermined and no pair was chosen. So the search is held to a rate the generator meets
    with ease, and the busy-CPU check is off: this is about the order of the searches."""
    monkeypatch.setattr(runner_module, "LOADGEN_CPUS_BUSY_MAX_PCT", 100.0)
    plan = build_plan(load_scenario("hello"), PlanOptions(
        servers=["granian-wsgi", "uvicorn"], concurrency=[4], duration_s=0.3, warmup_s=0.1,
        slo=parse_slo("p99=1s"), head_to_head=2))
    plan = dataclasses.replace(plan, search=dataclasses.replace(
        plan.search, max_steps=2, start_rate=EASY_RATE_RPS, min_rate=EASY_RATE_RPS / 4,
        max_rate=EASY_RATE_RPS))
    backend = _StartsCounted()
    writer = RunWriter(tmp_path / "run", {"run_id": "t"})
    Runner(plan, writer, _Quiet(), backend=backend, driver=FunctionDriver(run_load)).run()
    assert read_meta(tmp_path / "run")["head_to_head"]["pairs"] == 2
    capacity = read_rows(tmp_path / "run" / CAPACITY_FILE)
    assert [(r["server"], r["repeat"], r["pair"]) for r in capacity] == [
        ("granian-wsgi", "1", ""), ("uvicorn", "1", ""),
        ("granian-wsgi", "2", "1"), ("uvicorn", "2", "1"),
        ("uvicorn", "3", "2"), ("granian-wsgi", "3", "2")]
    trials = read_trials_rows(tmp_path / "run")
    assert {t["phase"] for t in trials if t["repeat"] in ("2", "3")} == {"search"}
    assert read_meta(tmp_path / "run")["head_to_head"]["servers"] == ["granian-wsgi", "uvicorn"]
    # one server per target in the plan's round, then one per head-to-head search (and one
    # more after each step that missed the objective)
    assert len(backend.started) >= 2 + 4
    assert len({s.url for s in backend.started}) == len(backend.started)
    assert not any(s.alive() for s in backend.started)


def test_ctrl_c_during_a_step_on_a_new_server_stops_it(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A step misses (nothing meets p99 <= 1 us), so the next runs on a new server, with a
    longer warm-up; Ctrl-C arrives during it: both servers are stopped, and it propagates.

    This is about the servers' lifecycle, not about vouching for a figure: on a busy machine
    (a CI runner once was) the generator's CPUs were over 90 % busy, the first step was
    invalid twice, and the search ended undetermined before any restart. So the busy-CPU
    check is off here, and the search is held to a rate the generator meets with ease."""
    monkeypatch.setattr(runner_module, "LOADGEN_CPUS_BUSY_MAX_PCT", 100.0)
    plan = build_plan(load_scenario("hello"), PlanOptions(
        servers=["uvicorn"], concurrency=[4], duration_s=0.3, warmup_s=0.1,
        slo=parse_slo("p99=0.001ms")))
    plan = dataclasses.replace(plan, search=dataclasses.replace(
        plan.search, start_rate=EASY_RATE_RPS, min_rate=EASY_RATE_RPS / 4,
        max_rate=EASY_RATE_RPS))
    longer = plan.search_timing.warmup_s + SEARCH_REWARM_S

    def measure(spec: LoadSpec) -> LoadResult:
        if spec.rate is not None and spec.warmup_s == longer:
            raise KeyboardInterrupt
        return run_load(spec)

    backend = _StartsCounted()
    try:
        Runner(plan, RunWriter(tmp_path / "run", {"run_id": "t"}), _Quiet(), backend=backend,
               driver=FunctionDriver(measure)).run()
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail("no step ran on a new server; the search ended with "
                    f"{read_rows(tmp_path / 'run' / CAPACITY_FILE)}")
    assert len(backend.started) == 2
    assert not any(s.alive() for s in backend.started)
    # one step, taken once (or twice, when the first try could not be vouched for)
    search = [r for r in read_trials_rows(tmp_path / "run") if r["phase"] == "search"]
    assert len({r["offered_rps"] for r in search}) == 1, search
    assert search[-1]["outcome"] != "invalid" and float(search[-1]["p99_ms"]) > 0.001
