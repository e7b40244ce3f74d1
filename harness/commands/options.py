"""What the subcommands' parsers share (not a subcommand): the parser class, argument types, and
the option groups of several commands (the app served, ``--backend``).

Names offered in help text are read from their registries (the catalogue's app families,
:data:`harness.backends.BACKENDS`), so a new one shows in ``--help`` without editing a parser.
They are imported by the functions that add those options, not here: ``harness --help``
imports this module and needs none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from harness.cpus import parse_cpus
from harness.errors import UsageError
from harness.units import parse_duration

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad input already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# What ``harness.cli.build_parser`` hands each command module's ``add_parser``.
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


# -- argument types ---------------------------------------------------------------------------

def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cpus(text: str) -> tuple[int, ...]:
    try:
        return parse_cpus(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '1,8,64', got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like '1,8,64', got {text!r}")
    return values


def float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like '100,500', got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers like '100,500', got {text!r}")
    return values


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# -- help text from the registries ------------------------------------------------------------

def one_of(items: Iterable[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(items)
    return " or ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def choices_help(choices: Iterable[str], *, default: str, notes: Mapping[str, str]) -> str:
    """Each registered name with its note, the default marked: ``local (default; pinned
    processes) or compose (Docker containers ...)``; a name without a note shows bare."""
    shown = []
    for name in choices:
        note = "; ".join(([] if name != default else ["default"])
                         + ([notes[name]] if name in notes else []))
        shown.append(f"{name} ({note})" if note else name)
    return one_of(shown)


# -- option groups of several commands --------------------------------------------------------

def add_app_options(parser: argparse.ArgumentParser, default: str) -> None:
    from harness import catalogue

    group = parser.add_argument_group("the app served")
    group.add_argument("--app", help=f"app family: {', '.join(catalogue.APPS)} "
                                     f"(default: {default})")
    group.add_argument("--wsgi-app", metavar="MODULE:ATTR",
                       help="your own WSGI app, e.g. mysite.wsgi:application (instead of --app)")
    group.add_argument("--asgi-app", metavar="MODULE:ATTR",
                       help="your own ASGI app, e.g. mysite.asgi:application")
    group.add_argument("--app-dir", metavar="DIR",
                       help="your app's folder, first on the servers' PYTHONPATH (default: .)")
    group.add_argument("--env", action="append", metavar="NAME=VALUE",
                       help="environment for your app's servers, repeatable, e.g. "
                            "DJANGO_SETTINGS_MODULE=mysite.settings")
    group.add_argument("--path", help="your app's path to load (and to check answers 2xx), "
                                      "e.g. /api/items (default: /)")


# What each backend is, for --backend's help (a backend registered without a note shows bare).
BACKEND_NOTES = {
    "local": "pinned processes",
    "compose": "Docker containers pinned with cpuset; needs a Docker engine, see README",
}


def add_backend(parser: argparse.ArgumentParser) -> None:
    from harness.backends import BACKENDS, DEFAULT_BACKEND

    parser.add_argument(
        "--backend", default=DEFAULT_BACKEND,
        help="how servers run: " + choices_help(BACKENDS.names(), default=DEFAULT_BACKEND,
                                                notes=BACKEND_NOTES),
    )
