"""Dispatch only: each subcommand is a module of harness.commands with ``add_parser(subparsers)``
(its arguments and help) and ``main(args) -> int``, listed once in :data:`COMMANDS`.

The command modules keep pandas and matplotlib inside their ``main``, so that ``harness --help``
and ``harness load`` do not pay for them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from harness import __version__
from harness.commands.options import EXIT_USAGE, Parser
from harness.errors import UsageError

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT: 128 + 2

# The subcommands, in --help's order: modules of harness.commands (``locust_worker`` is
# ``harness locust-worker``).
COMMANDS = ("run", "load", "servers", "serve", "verify", "upstream", "compose", "locust_worker",
            "report", "compare")


def command_module(name: str) -> ModuleType:
    """The module of a subcommand, by its module name or its command name."""
    return importlib.import_module(f"harness.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harness",
        description=(
            "Compare Python gateway models (WSGI vs ASGI) and their servers under load: "
            "identical apps behind every server, a fast and honest load generator, "
            "results you can trust and a report that guides the choice."
        ),
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        command_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = command_module(args.command).main(args)
    except UsageError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
