"""harness verify: start each server, check it against the app contract, stop it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import catalogue
from harness.backends import local
from harness.errors import TargetError, UsageError
from harness.verify import verify_target

# The table shows the first failing check; the full details fit in a terminal, not a cell.
DETAIL_MAX_CHARS = 240


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


def verify_server(server: catalogue.Server, *, app: str, cpus: tuple[int, ...],
                  upstream_url: str) -> Outcome:
    try:
        target = catalogue.make_target(server, app=app, cpus=len(cpus))
    except UsageError as exc:
        # an app family without this gateway: a pair that cannot work, not an error
        return Outcome(server=server, status="unsupported", detail=str(exc))
    preset = target.preset.describe()
    try:
        with local.start_target(target, cpus=cpus, upstream_url=upstream_url) as srv:
            report = verify_target(srv.url, websocket=server.websocket, io=True)
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


def main(args: argparse.Namespace) -> int:
    names = args.servers or list(catalogue.SERVERS)
    servers = [catalogue.get_server(name) for name in names]
    catalogue.get_app(args.app)
    cpus = tuple(args.cpus) if args.cpus else local.default_server_cpus()
    upstream_cpus = local.default_upstream_cpus(cpus)
    console = Console()
    outcomes: list[Outcome] = []
    try:
        upstream = local.start_upstream(upstream_cpus)
    except TargetError as exc:
        console.print(f"[red]upstream delay service failed to start[/]: {exc}")
        return 1
    with upstream:
        console.print(f"server CPUs {local.cpus_text(cpus)}, upstream {upstream.url} on CPUs "
                      f"{local.cpus_text(upstream_cpus)}")
        for server in servers:
            outcome = verify_server(server, app=args.app, cpus=cpus, upstream_url=upstream.url)
            colour = {"pass": "green", "unsupported": "yellow"}.get(outcome.status, "red")
            console.print(f"{server.name}: [{colour}]{outcome.status}[/]")
            outcomes.append(outcome)
    table = Table(title=f"verify: app {args.app!r}, CPUs {local.cpus_text(cpus)}",
                  title_justify="left")
    table.add_column("server", no_wrap=True)
    for column in ("gateway", "preset", "WebSocket", "checks", "result", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        colour = {"pass": "green", "unsupported": "yellow"}.get(outcome.status, "red")
        ws = "checked" if outcome.server.websocket else "unsupported (WSGI)"
        table.add_row(outcome.server.name, outcome.server.gateway, outcome.preset, ws,
                      outcome.checks, f"[{colour}]{outcome.status}[/]", escape(outcome.detail))
    console.print(table)
    return 1 if any(o.failed for o in outcomes) else 0
