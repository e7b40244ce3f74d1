"""Scenario validation: every shipped scenario loads; every malformed one names file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cpus import parse_cpus
from harness.errors import UsageError
from harness.scenarios import available, load_scenario, parse_scenario
from harness.units import parse_duration

GOOD = """
name = "mine"
description = "a test scenario"
kind = "io"
servers = ["uvicorn"]
[request]
path = "/io"
params = { ms = 5 }
[load]
concurrency = [1, 4]
rate = [10]
[timing]
warmup = "100ms"
duration = "1s"
repeat = 2
"""


def test_shipped_scenarios_load() -> None:
    names = available()
    assert {"hello", "io_bound", "cpu_bound"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.levels.concurrency or scenario.levels.rate
        assert scenario.sha256 and scenario.servers


def test_io_bound_defaults() -> None:
    scenario = load_scenario("io_bound")
    assert scenario.path == "/io?ms=50"
    assert scenario.needs_upstream
    assert max(scenario.levels.concurrency) >= 256 and scenario.levels.rate


def test_good_scenario_parses() -> None:
    scenario = parse_scenario(GOOD, "mine.toml")
    assert scenario.path == "/io?ms=5"
    assert scenario.timing.warmup_s == pytest.approx(0.1)
    assert scenario.timing.repeat == 2
    assert scenario.levels.rate == (10.0,)
    # --quick falls back to the main levels when the file has no [quick] levels
    assert scenario.quick_levels == scenario.levels


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (('kind = "io"', 'kind = "telepathy"'), "'kind'"),
        (("concurrency = [1, 4]", "concurrency = [0, 4]"), "'load.concurrency'"),
        (("rate = [10]", "rate = [-5]"), "'load.rate'"),
        (('duration = "1s"', 'duration = "soon"'), "'timing.duration'"),
        (("repeat = 2", "repeat = 0"), "'timing.repeat'"),
        (('path = "/io"', 'path = "io"'), "'request.path'"),
        (('servers = ["uvicorn"]', "servers = []"), "'servers'"),
        (('name = "mine"', 'name = "mine"\ncolour = "blue"'), "'colour'"),
    ],
)
def test_bad_fields_are_named(edit: tuple[str, str], field: str) -> None:
    text = GOOD.replace(*edit)
    with pytest.raises(UsageError) as info:
        parse_scenario(text, "bad.toml")
    message = str(info.value)
    assert message.startswith("bad.toml: ")
    assert field in message
    assert "\n" not in message


def test_no_levels_is_an_error() -> None:
    text = GOOD.replace("concurrency = [1, 4]\nrate = [10]\n", "")
    with pytest.raises(UsageError, match="at least one of 'concurrency'"):
        parse_scenario(text, "bad.toml")


def test_not_toml() -> None:
    with pytest.raises(UsageError, match=r"bad\.toml: not valid TOML"):
        parse_scenario("name = [", "bad.toml")


def test_unknown_scenario_lists_names() -> None:
    with pytest.raises(UsageError, match="io_bound"):
        load_scenario("no_such_scenario")


def test_units() -> None:
    assert parse_duration("500ms") == pytest.approx(0.5)
    assert parse_duration("2m") == 120.0
    assert parse_duration(3) == 3.0
    assert parse_cpus("0-2,5") == (0, 1, 2, 5)
    for bad in ("x", "-1s", ""):
        with pytest.raises(UsageError):
            parse_duration(bad)
    for bad in ("a", "3-1", ""):
        with pytest.raises(UsageError):
            parse_cpus(bad)


@pytest.mark.e2e
def test_cli_bad_scenario_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("repeat = 2", 'repeat = "twice"'))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--scenario", str(bad), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "timing.repeat" in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (('duration = "1s"', 'duraton = "1s"'),
         "unknown key 'duraton' in table [timing] (did you mean 'duration'?)"),
        (("rate = [10]", "rate = [10]\nmax_conections = 5"),
         "unknown key 'max_conections' in table [load] (did you mean 'max_connections'?)"),
        (('path = "/io"', 'path = "/io"\nheader = { A = "b" }'),
         "unknown key 'header' in table [request] (did you mean 'headers'?)"),
        (("params = { ms = 5 }", "params = { ms = 5 }\n[upstream]\nenable = true"),
         "unknown key 'enable' in table [upstream] (did you mean 'enabled'?)"),
        (('name = "mine"', 'name = "mine"\ncolour = "blue"'),
         "unknown key 'colour' in the top level"),
        (("repeat = 2", "repeat = 2\n[quick]\nconcurency = [1]"),
         "unknown key 'concurency' in table [quick] (did you mean 'concurrency'?)"),
    ],
)
def test_unknown_keys_anywhere_are_named_with_their_table(edit: tuple[str, str],
                                                         fragment: str) -> None:
    """A misspelt key must not silently fall back to the default (issue 9)."""
    with pytest.raises(UsageError) as info:
        parse_scenario(GOOD.replace(*edit), "bad.toml")
    message = str(info.value)
    assert message.startswith("bad.toml: ") and fragment in message, message
    assert "\n" not in message


def test_request_headers_and_body_are_parsed_and_checked() -> None:
    text = GOOD.replace('path = "/io"', 'path = "/io"\nmethod = "post"\nbody = "x=1"\n'
                        'headers = { "X-Token" = "abc", Accept = "text/plain" }')
    scenario = parse_scenario(text, "mine.toml")
    assert scenario.method == "POST" and scenario.body == b"x=1"
    assert scenario.headers == (("X-Token", "abc"), ("Accept", "text/plain"))
    bad = GOOD.replace('path = "/io"', 'path = "/io"\nheaders = { "Bad Name" = "x" }')
    with pytest.raises(UsageError, match=r"'request\.headers'"):
        parse_scenario(bad, "bad.toml")


@pytest.mark.e2e
def test_cli_misspelt_key_exits_2_names_it_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text(GOOD.replace('duration = "1s"', 'duraton = "30s"'))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--scenario", str(bad), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'duraton'" in proc.stderr and "[timing]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


MIXED = """
name = "m"
description = "a mix"
kind = "mixed"
servers = ["uvicorn"]
[[mix]]
name = "light"
path = "/io"
params = { ms = 20 }
weight = 95
[[mix]]
name = "heavy"
path = "/cpu"
params = { n = 100 }
weight = 5
[load]
rate = [10]
[quick]
servers = ["uvicorn", "gunicorn-sync"]
app = "raw,raw-thread"
"""


def test_mixed_scenario_parses_its_kinds_and_quick_targets() -> None:
    scenario = parse_scenario(MIXED, "m.toml")
    assert [(k.name, k.path, k.weight) for k in scenario.mix] == [
        ("light", "/io?ms=20", 95.0), ("heavy", "/cpu?n=100", 5.0)]
    assert scenario.path == "/io?ms=20"
    assert scenario.endpoint == "95% light /io?ms=20, 5% heavy /cpu?n=100"
    assert scenario.quick_servers == ("uvicorn", "gunicorn-sync")
    assert scenario.quick_app == "raw,raw-thread"
    shipped = load_scenario("mixed")
    assert {k.name for k in shipped.mix} == {"light", "heavy"} and shipped.needs_upstream


@pytest.mark.parametrize(("edit", "message"), [
    (('kind = "mixed"', 'kind = "io"'), "expected kind = \"mixed\""),
    (('weight = 5', 'weight = 5\nspeed = 1'), "unknown key 'speed' in table \\[mix\\[1\\]\\]"),
    (('name = "heavy"', 'name = "light"'), "distinct names"),
    (('weight = 5', 'weight = -5'), "mix\\[1\\].weight"),
    (('path = "/cpu"', 'path = "cpu"'), "mix\\[1\\].path"),
    (('[load]', '[request]\npath = "/hello"\n[load]'), "no path in a mixed scenario"),
])
def test_bad_mixes_are_named(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_scenario(MIXED.replace(*edit), "m.toml")
