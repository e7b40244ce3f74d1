"""harness servers: the catalogue, installed versions and the presets for a CPU budget."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.commands import options

if TYPE_CHECKING:
    from rich.table import Table

HELP = "list the servers under test, their versions and presets"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    servers = subparsers.add_parser("servers", help=HELP)
    servers.add_argument(
        "--cpus", type=options.cpus, help="CPU set the presets are computed for (default: 1 CPU)"
    )
    return servers


def build_table(cpus: int) -> Table:
    from rich.markup import escape
    from rich.table import Table

    from harness import catalogue

    table = Table(title=f"servers (presets for {cpus} CPU{'s' if cpus != 1 else ''})",
                  title_justify="left")
    table.add_column("server", no_wrap=True)
    table.add_column("gateway")
    table.add_column("version", no_wrap=True)
    table.add_column("WebSocket")
    table.add_column("workers", justify="right")
    table.add_column("threads", justify="right")
    table.add_column("preset rule", overflow="fold")
    for server in catalogue.SERVERS.values():
        preset = catalogue.preset_for(server, cpus)
        version = catalogue.installed_version(server)
        missing = catalogue.missing_distributions(server)
        shown = version or "[red]not installed[/]"
        if version and missing:
            shown += f" [red](missing {', '.join(missing)})[/]"
        threads = "-" if preset.threads is None else f"{preset.threads}"
        if server.threads_args and server.threads_meaning != "threads per worker":
            threads += f" ({server.threads_meaning.split(' (')[0]})"
        table.add_row(server.name, server.gateway, shown, "yes" if server.websocket else "no",
                      str(preset.workers), threads, escape(preset.note))
    return table


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    cpus = len(args.cpus) if args.cpus else 1
    console = Console()
    console.print(build_table(cpus))
    console.print("Override with --workers/--threads on run, serve and verify; "
                  "the preset used is recorded with every result.")
    return 0
