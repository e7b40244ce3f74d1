"""Dispatch only: each subcommand is a module of harness.commands with ``HELP`` (its line in
``harness --help``), ``add_parser(subparsers)`` (its arguments) and ``main(args) -> int``,
listed once in :data:`COMMANDS`.

A command module imports at its top only what its parser needs, and the rest in ``main``; the
CLI builds the arguments of the one command named on the command line, the others by their
``HELP`` alone. So ``harness --help`` imports no command's dependencies, and ``harness X``
only X's.
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


def named_command(argv: Sequence[str]) -> str | None:
    """The module name of the subcommand ``argv`` names (its first word that is no option:
    ``harness`` itself takes no option with a value), or None."""
    word = next((a for a in argv if not a.startswith("-")), None)
    name = word.replace("-", "_") if word is not None else None
    return name if name in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand's arguments; given ``argv``, only those of the command
    it names, every other command listed by its help line (what ``harness --help`` shows)."""
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
    chosen = named_command(argv) if argv is not None else None
    for name in COMMANDS:
        module = command_module(name)
        if argv is None or name == chosen:
            module.add_parser(subparsers)
        else:
            subparsers.add_parser(name.replace("_", "-"), help=module.HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
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
