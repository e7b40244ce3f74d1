"""harness run: take every server through a scenario and write a result folder."""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands import options
from harness.cpus import cpus_text
from harness.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from harness.backends.base import Backend
    from harness.drivers import Driver
    from harness.plan import Plan
    from harness.results import RunWriter, TargetStatus, TrialRecord
    from harness.scenarios import Scenario

PIPE_WIDTH_COLUMNS = 140
HELP = "take every server through a scenario and write a result folder"

# What each driver is, for --driver's help (a driver registered without a note shows bare).
DRIVER_NOTES = {
    "builtin": "asyncio + httptools, as fast as wrk",
    "locust": "closed-loop levels as Locust users; pip install -e '.[locust]'",
}


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    run = subparsers.add_parser(
        "run",
        help=HELP,
        description=(
            "Start each server pinned to its CPUs, verify it against the app contract, warm it "
            "up, measure every load level, stop it; write run.json, trials.csv, histograms and "
            "series into the run folder, then the report."
        ),
    )
    run.add_argument(
        "--scenario",
        required=True,
        help="a name from scenarios/ (hello, io_bound, cpu_bound, ...) or a TOML path",
    )
    run.add_argument(
        "--servers", type=options.names,
        help="comma-separated server names (default: the scenario's)"
    )
    options.add_app_options(run, "the scenario's, usually 'raw'")
    run.add_argument(
        "--quick",
        action="store_true",
        help="short levels and durations: a first look in a couple of minutes",
    )
    run.add_argument("--concurrency", type=options.int_list,
                     help="closed-loop levels, e.g. 1,8,64")
    run.add_argument("--rate", type=options.float_list,
                     help="open-loop levels in req/s, e.g. 100,500")
    run.add_argument("--duration", type=options.duration,
                     help="measured time per trial, e.g. 10s")
    run.add_argument("--warmup", type=options.duration, help="unrecorded warm-up per trial, e.g. "
                     "2s (in open loop the rate rises from 0 over its first half)")
    run.add_argument("--repeat", type=int, help="repeats per level (default: the scenario's)")
    run.add_argument("--out", help="run folder (default: results/<run-id>/)")
    run.add_argument(
        "--server-cpus", type=options.cpus,
        help="CPUs for the server under test (default: the upper half; on 2 cores CPU 1)",
    )
    run.add_argument(
        "--loadgen-cpus",
        type=options.cpus,
        help="CPUs for the load generator and upstream (default: all others)",
    )
    run.add_argument("--workers", type=int, help="override every server's worker preset")
    run.add_argument("--threads", type=int, help="override the thread preset of threaded servers")
    options.add_backend(run)
    _add_driver_options(run)
    _add_capacity_options(run)
    _add_database_options(run)
    run.add_argument("--dry-run", action="store_true", help="print the plan and its estimate only")
    run.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    return run


def _add_driver_options(run: argparse.ArgumentParser) -> None:
    from harness.drivers import DEFAULT_DRIVER, DRIVERS

    run.add_argument(
        "--driver", default=DEFAULT_DRIVER,
        help="load generator: " + options.choices_help(DRIVERS.names(), default=DEFAULT_DRIVER,
                                                       notes=DRIVER_NOTES),
    )
    locust = run.add_argument_group("with --driver locust")
    locust.add_argument(
        "--locustfile", type=Path, default=None,
        help="this locustfile's traffic mix against every server instead of the scenario's "
             "request (see scenarios/locustfiles/shop.py)")
    locust.add_argument(
        "--locust-workers", type=int, default=None, metavar="N",
        help="Locust's master plus N worker processes pinned to the generator CPUs "
             "(default: one process)")
    locust.add_argument(
        "--locust-remote-workers", type=int, default=0, metavar="M",
        help="also wait for M workers started elsewhere with "
             "'harness locust-worker --master-host HOST'")
    locust.add_argument(
        "--locust-master-bind", default="127.0.0.1", metavar="HOST",
        help="address the Locust master listens on for remote workers (e.g. 0.0.0.0)")
    locust.add_argument(
        "--locust-master-port", type=int, default=None, metavar="PORT",
        help="Locust master port (default: a free port; 5557 with remote workers)")
    locust.add_argument(
        "--stop-timeout", type=options.duration, default=None,
        help="how long requests in flight at the end may finish (default: the scenario's "
             "timeout); later ones count as timeouts")


def _add_database_options(run: argparse.ArgumentParser) -> None:
    db = run.add_argument_group("with a database scenario (db_bound, db_single, db_fortunes, "
                                "db_sleep)")
    db.add_argument(
        "--db-url", metavar="URL",
        help="your own PostgreSQL, e.g. postgresql://user:pass@127.0.0.1:5432/bench, instead of "
             "the scratch cluster the harness starts; it must hold TechEmpower's world and "
             "fortune tables (nothing in it is changed unless --db-seed)")
    db.add_argument(
        "--db-seed", action="store_true",
        help="create and fill the world and fortune tables in --db-url's database when it has "
             "neither")
    db.add_argument(
        "--db-cpus", type=options.cpus,
        help="CPUs for the harness's scratch PostgreSQL (default: the load generator's)")


def _add_capacity_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--slo", metavar="OBJECTIVE",
        help="also find each server's capacity at a latency objective, e.g. 'p99=100ms' or "
             "'p99.9=250ms,errors=0.5%%': an open-loop rate search (ramp, then bisection to "
             "5%%), every step a trial; capacity.csv holds the answers (default: the "
             "scenario's [slo] with its own plan, none with --quick or --concurrency/--rate; "
             "'off': none)",
    )
    run.add_argument(
        "--searches", type=int, metavar="N",
        help="capacity searches per server, each on a freshly started server (default: one "
             "per repeat); rounds past --repeat start each server for its search alone, so "
             "capacity gets more repeats without repeating every level",
    )
    run.add_argument(
        "--head-to-head", type=int, metavar="PAIRS",
        help="after the plan, search the capacity of the best WSGI and the best ASGI server "
             "(highest mean capacity of each) in turn, PAIRS times each: A B, B A, ..., on "
             "freshly started servers. Best WSGI vs best ASGI then takes every search of the "
             "two, the plan's and these: more searches where the report's headline comparison "
             "needs them, without another round of every server (default: none)",
    )


def _print_plan(console: Console, plan: Plan) -> None:
    from rich.table import Table

    table = Table(title=f"plan: {plan.scenario.name} ({plan.scenario.endpoint})",
                  title_justify="left")
    table.add_column("server")
    table.add_column("gateway")
    table.add_column("workers", justify="right")
    table.add_column("threads", justify="right")
    table.add_column("status")
    for planned in plan.targets:
        preset = planned.target.preset
        table.add_row(planned.name, planned.target.server.gateway, str(preset.workers),
                      str(preset.threads or "-"),
                      "planned" if planned.supported else f"unsupported: {planned.reason}")
    console.print(table)
    levels = ", ".join(level.label() for level in plan.levels)
    minutes, seconds = divmod(int(plan.estimate_s()), 60)
    console.print(
        f"levels: {levels}\n"
        f"timing: warm-up {plan.timing.warmup_s:g}s, measure {plan.timing.duration_s:g}s, "
        f"repeat {plan.timing.repeat}\n"
        f"CPUs: server {cpus_text(plan.server_cpus)}, load generator"
        f"{' + upstream' if plan.scenario.needs_upstream else ''} {cpus_text(plan.loadgen_cpus)}\n"
        + (f"capacity search at {plan.slo.describe()}: {plan.search_rounds} per server (up "
           f"to {plan.search.max_steps} steps each)\n" if plan.slo is not None else "")
        + (f"head to head after the plan: best WSGI vs best ASGI, {plan.head_to_head} pairs "
           f"of capacity searches\n" if plan.head_to_head else "")
        + _database_line(plan)
        + f"{plan.trial_count} trials, estimated {minutes}m{seconds:02d}s"
    )


def _database_line(plan: Plan) -> str:
    from harness.services import database

    db = plan.database
    if db is None:
        return ""
    pools = sorted({f"{p.target.family.database.name} {p.target.db_pool}"
                    for p in plan.runnable if p.target.family.database is not None})
    where = (f"yours, {database.redact(db.url)}" if db.url is not None else
             f"a scratch PostgreSQL on CPUs {cpus_text(db.cpus)}, max_connections "
             f"{db.connections}")
    return f"database: {where}; pool per worker process: {', '.join(pools)}\n"


def _common_level(records: Sequence[TrialRecord]) -> int | None:
    """The closed-loop concurrency that the most servers passed validly (the highest on a tie),
    so p99 is compared at one level."""
    levels = {r.concurrency for r in records
              if r.concurrency and r.valid and r.load_model == "closed"}
    if not levels:
        return None
    return max(levels, key=lambda c: (len({r.server for r in records
                                           if r.concurrency == c and r.valid}), c))


def _print_summary(console: Console, plan: Plan, records: Sequence[TrialRecord],
                   status: dict[str, tuple[TargetStatus, str]]) -> None:
    from rich.table import Table

    common = _common_level(records)
    table = Table(title="summary (valid trials only; invalid ones are in trials.csv)",
                  title_justify="left")
    for column, justify in (("server", "left"), ("gateway", "left"), ("best req/s", "right"),
                            ("at", "right"), (f"p99 @ {common} conn" if common else "p99",
                                              "right"),
                            ("server CPU %", "right"), ("PSS MB", "right"),
                            ("invalid", "right"), ("status", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for planned in plan.targets:
        mine = [r for r in records if r.server == planned.server
                and r.app == planned.target.app]
        valid = [r for r in mine if r.valid]
        # requests (or echo round trips) per second: broadcast deliveries are another unit
        best = max((r for r in valid if r.load_model in ("closed", "open")),
                   key=lambda r: r.achieved_rps, default=None)
        at_common = [r.p99_ms for r in valid if r.concurrency == common
                     and r.load_model == "closed" and r.p99_ms is not None]
        state, reason = status.get(planned.name, (None, ""))
        state_text = state.label if state is not None else "not run"
        table.add_row(
            planned.name, planned.target.server.gateway,
            f"{best.achieved_rps:,.0f}" if best else "-",
            (f"{best.concurrency} conn" if best.load_model == "closed" else f"{best.rate:g}/s")
            if best else "-",
            f"{max(at_common):.1f} ms" if at_common else "-",
            f"{best.server_cpu_pct:.0f}" if best and best.server_cpu_pct is not None else "-",
            f"{best.server_pss_mb:.0f}" if best and best.server_pss_mb is not None else "-",
            str(len(mine) - len(valid)),
            state_text if not reason else f"{state_text}: {reason[:60]}",
        )
    console.print(table)


def _print_answer(console: Console, run_dir: Path) -> None:
    """findings.json into the run folder, and its "What to run" rows under the summary."""
    # pandas only when needed
    from rich.table import Table

    from harness.analysis.answers import answer_rows
    from harness.analysis.findings.common import service_floor
    from harness.analysis.findings.record import FINDINGS_FILE, write_findings
    from harness.analysis.guidance import compute_guidance
    from harness.analysis.rundata import RunData, summarize

    run = RunData.load(run_dir)
    summary = summarize(run)
    findings = compute_guidance(run, summary)
    write_findings(run_dir / FINDINGS_FILE, findings, runs=[run.run_id])
    floor = service_floor(run, summary)
    rows = answer_rows(run, findings, wait_s=floor.seconds if floor and floor.declared else None)
    if not rows:
        return
    table = Table(title="What to run", show_lines=False)
    for column in rows[0].cells():
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row.cells().values())
    console.print(table)


@contextmanager
def _pinned(cpus: tuple[int, ...]) -> Iterator[None]:
    """Keep the harness itself (sampler, progress, report) off the server's CPUs.

    Called before any thread starts: on Linux the affinity is per thread, and new threads
    inherit it from the one that creates them.
    """
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


# Options that only the locust driver takes: (argument, the driver's keyword, its default).
_LOCUST_OPTIONS = (("locustfile", "locustfile", None), ("locust_workers", "workers", None),
                   ("locust_remote_workers", "remote_workers", 0),
                   ("locust_master_bind", "master_bind_host", "127.0.0.1"),
                   ("locust_master_port", "master_port", None),
                   ("stop_timeout", "stop_timeout_s", None))


def _driver_options(args: argparse.Namespace) -> dict[str, object]:
    """The chosen driver's own options; another driver's options are an error, not ignored."""
    given = {keyword: getattr(args, name) for name, keyword, default in _LOCUST_OPTIONS
             if getattr(args, name, default) != default}
    if args.driver == "locust":
        return given
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name, keyword, _ in _LOCUST_OPTIONS
                          if keyword in given)
        raise UsageError(f"{flags}: only with --driver locust (the driver is {args.driver})")
    return {}


def _plan_of(args: argparse.Namespace) -> tuple[Scenario, Plan]:
    """The scenario named and the plan the options make of it (UsageError on bad input)."""
    from harness.ownapp import family_from_args
    from harness.plan import PlanOptions, build_plan
    from harness.scenarios import load_scenario
    from harness.slo import parse_slo

    scenario = load_scenario(args.scenario)
    return scenario, build_plan(scenario, PlanOptions(
        servers=args.servers, app=family_from_args(args, None), quick=args.quick,
        concurrency=args.concurrency, rate=args.rate, duration_s=args.duration,
        warmup_s=args.warmup, repeat=args.repeat, server_cpus=args.server_cpus,
        loadgen_cpus=args.loadgen_cpus, workers=args.workers, threads=args.threads,
        slo=parse_slo(args.slo) if args.slo else None, searches=args.searches,
        head_to_head=args.head_to_head, db_url=args.db_url, db_cpus=args.db_cpus,
        db_seed=args.db_seed,
    ))


def _writer(run_dir: Path, scenario: Scenario, plan: Plan, backend: Backend,
            driver: Driver) -> RunWriter:
    """The run folder, begun: run.json with everything known before the first trial."""
    from harness import environment
    from harness.results import RunWriter

    return RunWriter(run_dir, {
        "run_id": run_dir.name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "finished_at": None,
        "command_line": ["harness", *sys.argv[1:]],
        "scenario": scenario.summary(),
        "plan": plan.summary(),
        "environment": environment.collect(),
        "cpus": {"server": list(plan.server_cpus), "loadgen": list(plan.loadgen_cpus)},
        "backend": backend.describe(),
        "driver": driver.describe(),
    })


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.backends import get_backend
    from harness.console import RichObserver
    from harness.drivers import get_driver
    from harness.runner import Runner, default_run_dir
    from harness.services import database
    from harness.signals import terminate_as_interrupt

    # Piped output (CI, tee) has no terminal width, so rich would fold the tables into 80
    # columns, and is block-buffered, so progress would show only at the end.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH_COLUMNS)
    scenario, plan = _plan_of(args)
    run_dir = Path(args.out) if args.out else default_run_dir(scenario.name)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(f"--out {run_dir}: already exists and is not empty: expected a new "
                         "or empty folder (results are never overwritten)")
    backend = get_backend(args.backend)
    driver = get_driver(args.driver, **_driver_options(args))
    _print_plan(console, plan)
    if args.dry_run:
        return 0
    if not plan.runnable:
        raise UsageError("no server in the plan supports this scenario: expected at least one")
    backend.check()  # no engine, no run folder
    if plan.database is not None:
        database.prepare(plan.database.url, seed=plan.database.seed)  # nor a database

    writer = _writer(run_dir, scenario, plan, backend, driver)
    observer = RichObserver(console, plan)
    runner = Runner(plan, writer, observer, backend=backend, driver=driver)
    try:
        with terminate_as_interrupt(), _pinned(plan.loadgen_cpus), backend, observer:
            runner.run()
    except KeyboardInterrupt:
        writer.update_meta(status="interrupted",
                           finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        console.print(f"[yellow]interrupted[/]: every server stopped; "
                      f"{len(runner.outcome.records)} trials kept in {run_dir}")
        raise
    except Exception:
        # a bug, not bad input: the traceback is wanted, and run.json must not say "running"
        writer.update_meta(status="failed", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        raise
    writer.update_meta(status="complete", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _print_summary(console, plan, runner.outcome.records, runner.outcome.target_status)
    _print_answer(console, run_dir)
    if not args.no_report:
        from harness.analysis import write_report  # pandas and matplotlib only when needed

        html, _markdown = write_report([run_dir])
        console.print(f"report: {html}")
    console.print(f"results: {run_dir}")
    return 0
