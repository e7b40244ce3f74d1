"""The CLI is dispatch only: every subcommand module brings its parser and its main, and the
names offered in help text come from the registries, so a new one shows without a CLI edit."""

from __future__ import annotations

import argparse

import pytest

from harness import catalogue, cli
from harness.backends import BACKENDS
from harness.drivers import DRIVERS


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


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
