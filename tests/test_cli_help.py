"""The CLI is dispatch only: every subcommand module brings its parser and its main, and the
names offered in help text come from the registries, so a new one shows without a CLI edit."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from harness import catalogue, cli
from harness.backends import BACKENDS
from harness.drivers import DRIVERS


def _subparser_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[
        argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise AssertionError("no subcommands")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return dict(_subparser_action(parser).choices)


def _help_of(parser: argparse.ArgumentParser, flag: str) -> str:
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    return action.help or ""


def test_each_listed_module_owns_its_subcommand() -> None:
    commands = _subparsers(cli.build_parser())
    assert list(commands) == [name.replace("_", "-") for name in cli.COMMANDS]
    for name in cli.COMMANDS:
        module = cli.command_module(name)
        assert callable(module.add_parser) and callable(module.main), name


def test_registered_names_appear_in_help_by_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    BACKENDS.register("recording", "harness.backends.local:LocalBackend")
    DRIVERS.register("counting", "harness.drivers.builtin:BuiltinDriver")
    monkeypatch.setitem(catalogue.APPS, "myfamily", catalogue.APPS["raw"])
    try:
        commands = _subparsers(cli.build_parser())
    finally:
        BACKENDS.unregister("recording")
        DRIVERS.unregister("counting")
    for command in ("run", "serve", "verify"):
        assert "recording" in _help_of(commands[command], "--backend"), command
        assert "myfamily" in _help_of(commands[command], "--app"), command
    driver_help = _help_of(commands["run"], "--driver")
    assert driver_help.startswith("load generator: builtin (default; ")
    assert driver_help.endswith(" or counting")
    assert "recording" in commands["serve"].format_help()  # argparse formats it


def test_a_command_named_gets_its_arguments_and_the_rest_their_help_line() -> None:
    """``harness X`` builds X's arguments only; every command's line in ``harness --help`` is
    its module's HELP either way, so the two parsers print the same help."""
    full = cli.build_parser()
    lines = {a.dest: a.help for a in _subparser_action(full)._choices_actions}
    assert lines == {n.replace("_", "-"): cli.command_module(n).HELP for n in cli.COMMANDS}
    assert cli.build_parser(["--help"]).format_help() == full.format_help()
    commands = _subparsers(cli.build_parser(["report", "--out", "x", "run-a"]))
    assert _help_of(commands["report"], "--out")
    assert not [a for a in commands["run"]._actions if a.option_strings != ["-h", "--help"]]
    assert cli.named_command(["--version"]) is None
    assert cli.named_command(["locust-worker", "--master-host", "h"]) == "locust_worker"
    assert cli.named_command(["nonesuch"]) is None


# What the help of a command does not need: the analysis, the generator, the servers' and
# the database's libraries. (The registries a command's help names are its own business.)
_HEAVY = ("pandas", "matplotlib", "numpy", "aiohttp", "psycopg", "harness.analysis",
          "harness.loadgen", "harness.catalogue", "harness.backends", "rich")


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["compare", "--help"],
                                  ["load", "--help"], ["servers", "--help"],
                                  ["upstream", "--help"], ["compose", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code = ("import sys\nfrom harness.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
