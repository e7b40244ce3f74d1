"""harness verify: start each server, check it against the app contract, stop it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import catalogue
from harness.backends import get_backend
from harness.backends.base import Backend
from harness.commands import options
from harness.cpus import allocate_for_server, cpus_text
from harness.errors import TargetError, UsageError
from harness.ownapp import family_from_args
from harness.signals import terminate_as_interrupt
from harness.verify import verify_family_target

# The table shows the first failing check; the full details fit in a terminal, not a cell.
DETAIL_MAX_CHARS = 240


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    verify = subparsers.add_parser("verify", help="check live servers against the app contract")
    verify.add_argument("--servers", type=options.names,
                        help="comma-separated names (default: all)")
    options.add_app_options(verify, "raw")
    verify.add_argument(
        "--cpus", type=options.cpus,
        help="CPUs to pin the servers to (default: the upper half; on 2 cores CPU 1)",
    )
    options.add_backend(verify)
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
                  cpus: tuple[int, ...], upstream_url: str) -> Outcome:
    try:
        target = catalogue.make_target(server, app=app, cpus=len(cpus))
    except UsageError as exc:
        # an app family without this gateway: a pair that cannot work, not an error
        return Outcome(server=server, status="unsupported", detail=str(exc))
    preset = target.preset.describe()
    try:
        with backend.start_target(target, cpus=cpus, upstream_url=upstream_url) as srv:
            report = verify_family_target(srv.url, target, io=True)
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
                cpus: tuple[int, ...], upstream_url: str) -> Outcome:
    outcome = verify_server(backend, server, app=app, cpus=cpus, upstream_url=upstream_url)
    console.print(f"{server.name}: [{_colour(outcome)}]{outcome.status}[/]")
    return outcome


def main(args: argparse.Namespace) -> int:
    names = args.servers or list(catalogue.SERVERS)
    servers = [catalogue.get_server(name) for name in names]
    family = family_from_args(args, "raw")
    assert family is not None
    label = family if isinstance(family, str) else family.name
    plan = allocate_for_server(args.cpus)
    cpus = plan.server
    console = Console()
    outcomes: list[Outcome] = []
    with terminate_as_interrupt(), get_backend(args.backend) as backend:
        try:
            upstream = backend.start_upstream(cpus=plan.loadgen)
        except TargetError as exc:
            console.print(f"[red]upstream delay service failed to start[/]: {exc}")
            return 1
        with upstream:
            console.print(f"{backend.name} backend: server CPUs {cpus_text(cpus)}, upstream "
                          f"{upstream.url} on CPUs {cpus_text(plan.loadgen)}")
            outcomes = [_verify_one(console, backend, server, app=family, cpus=cpus,
                                    upstream_url=upstream.url) for server in servers]
    table = Table(title=f"verify: app {label!r}, CPUs {cpus_text(cpus)}",
                  title_justify="left")
    table.add_column("server", no_wrap=True)
    for column in ("gateway", "preset", "WebSocket", "checks", "result", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        colour = _colour(outcome)
        ws = "checked" if outcome.server.websocket else "unsupported (WSGI)"
        table.add_row(outcome.server.name, outcome.server.gateway, outcome.preset, ws,
                      outcome.checks, f"[{colour}]{outcome.status}[/]", escape(outcome.detail))
    console.print(table)
    return 1 if any(o.failed for o in outcomes) else 0
