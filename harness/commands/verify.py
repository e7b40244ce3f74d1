"""harness verify: start each server, check it against the app contract, stop it."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.commands import options
from harness.cpus import allocate_for_server, cpus_text
from harness.errors import TargetError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from harness import catalogue
    from harness.backends.base import Backend

HELP = "check live servers against the app contract"
# The table shows the first failing check; the full details fit in a terminal, not a cell.
DETAIL_MAX_CHARS = 240


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    verify = subparsers.add_parser("verify", help=HELP)
    verify.add_argument("--servers", type=options.names,
                        help="comma-separated names (default: all)")
    options.add_app_options(verify, "raw")
    verify.add_argument(
        "--cpus", type=options.cpus,
        help="CPUs to pin the servers to (default: the upper half; on 2 cores CPU 1)",
    )
    options.add_backend(verify)
    verify.add_argument(
        "--db-url", metavar="URL",
        help="PostgreSQL with TechEmpower's tables for the database routes (default: a "
             "scratch cluster the harness starts, when the family has database routes)")
    return verify


def _shorten(text: str) -> str:
    return text if len(text) <= DETAIL_MAX_CHARS else text[:DETAIL_MAX_CHARS - 1] + "…"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    server: catalogue.Server
    status: str  # "pass", "FAIL", "unsupported", "start failed"
    detail: str
    preset: str = ""
    checks: str = ""

    @property
    def failed(self) -> bool:
        return self.status not in ("pass", "unsupported")


def verify_server(backend: Backend, server: catalogue.Server, *, app: str | catalogue.AppFamily,
                  cpus: tuple[int, ...], upstream_url: str,
                  db_url: str | None = None) -> Outcome:
    from harness import catalogue
    from harness.verify import verify_family_target

    try:
        target = catalogue.make_target(server, app=app, cpus=len(cpus))
    except UsageError as exc:
        # an app family without this gateway: a pair that cannot work, not an error
        return Outcome(server=server, status="unsupported", detail=str(exc))
    preset = target.preset.describe()
    try:
        with backend.start_target(target, cpus=cpus, upstream_url=upstream_url,
                                  db_url=db_url) as srv:
            report = verify_family_target(srv.url, target, io=True, db_url=db_url)
            died = None if srv.alive() else srv.exit_reason()
    except TargetError as exc:
        return Outcome(server=server, status="start failed", detail=_shorten(str(exc)),
                       preset=preset)
    counts = f"{len(report.checks) - len(report.failures)}/{len(report.checks)}"
    if died:
        return Outcome(server=server, status="FAIL", detail=_shorten(died), preset=preset,
                       checks=counts)
    if not report.ok:
        first, *others = report.failures
        detail = f"{first.name}: {_shorten(first.detail)}"
        if others:
            detail += f" (and {len(others)} more: {', '.join(c.name for c in others)})"
        return Outcome(server=server, status="FAIL", detail=detail, preset=preset, checks=counts)
    warnings = "; ".join(f"warning {c.name}: {c.detail}" for c in report.warnings)
    return Outcome(server=server, status="pass", detail=warnings, preset=preset, checks=counts)


def _colour(outcome: Outcome) -> str:
    return {"pass": "green", "unsupported": "yellow"}.get(outcome.status, "red")


def _verify_one(console: Console, backend: Backend, server: catalogue.Server, *,
                app: str | catalogue.AppFamily,
                cpus: tuple[int, ...], upstream_url: str, db_url: str | None) -> Outcome:
    outcome = verify_server(backend, server, app=app, cpus=cpus, upstream_url=upstream_url,
                            db_url=db_url)
    console.print(f"{server.name}: [{_colour(outcome)}]{outcome.status}[/]")
    return outcome


def _connections(family: catalogue.AppFamily, servers: list[catalogue.Server], cpus: int) -> int:
    """The most database connections one of ``servers`` serving ``family`` may hold."""
    from harness import catalogue

    return max((catalogue.make_target(s, app=family, cpus=cpus).db_connections
                for s in servers if s.gateway in family.modules), default=0)


def _scratch_database(console: Console, stack: contextlib.ExitStack, backend: Backend,
                      cpus: tuple[int, ...], connections: int) -> str | None:
    """A scratch database for the family's database routes, or None (with a note) where the
    backend cannot start one."""
    from harness.services import database

    try:
        server = stack.enter_context(backend.start_database(
            cpus=cpus, connections=database.max_connections([connections])))
    except UsageError as exc:
        console.print(f"[yellow]database routes not checked[/]: {exc}")
        return None
    return server.url


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness import catalogue
    from harness.backends import get_backend
    from harness.ownapp import family_from_args
    from harness.services import database
    from harness.signals import terminate_as_interrupt

    names = args.servers or list(catalogue.SERVERS)
    servers = [catalogue.get_server(name) for name in names]
    family = family_from_args(args, "raw")
    assert family is not None
    label = family if isinstance(family, str) else family.name
    plan = allocate_for_server(args.cpus)
    cpus = plan.server
    console = Console()
    outcomes: list[Outcome] = []
    resolved = family if isinstance(family, catalogue.AppFamily) else catalogue.get_app(family)
    db_url = database.check_url(args.db_url) if args.db_url else None
    if db_url is not None:
        database.check_database(db_url)
    with terminate_as_interrupt(), get_backend(args.backend) as backend, \
            contextlib.ExitStack() as stack:
        try:
            upstream = stack.enter_context(backend.start_upstream(cpus=plan.loadgen))
            if db_url is None and resolved.database is not None:
                db_url = _scratch_database(console, stack, backend, plan.loadgen,
                                           _connections(resolved, servers, len(cpus)))
        except TargetError as exc:
            console.print(f"[red]a service failed to start[/]: {exc}")
            return 1
        console.print(f"{backend.name} backend: server CPUs {cpus_text(cpus)}, upstream "
                      f"{upstream.url} on CPUs {cpus_text(plan.loadgen)}"
                      + (f", database {database.redact(db_url)}" if db_url else ""))
        outcomes = [_verify_one(console, backend, server, app=family, cpus=cpus,
                                upstream_url=upstream.url, db_url=db_url)
                    for server in servers]
    _print_outcomes(console, outcomes, f"verify: app {label!r}, CPUs {cpus_text(cpus)}")
    return 1 if any(o.failed for o in outcomes) else 0


def _print_outcomes(console: Console, outcomes: list[Outcome], title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("server", no_wrap=True)
    for column in ("gateway", "preset", "WebSocket", "checks", "result", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        colour = _colour(outcome)
        ws = "checked" if outcome.server.websocket else "unsupported (WSGI)"
        table.add_row(outcome.server.name, outcome.server.gateway, outcome.preset, ws,
                      outcome.checks, f"[{colour}]{outcome.status}[/]", escape(outcome.detail))
    console.print(table)
