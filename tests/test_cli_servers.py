"""`harness servers`, `harness serve` and `harness verify` as a user runs them."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from harness import catalogue, processes
from harness.cli import main as cli_main
from harness.commands import verify as verify_command
from harness.cpus import CpuPlan, allocate_cpus, allocate_for_server
from tests.runhelpers import all_gone, descendants, harness_cmd, http_get, start_harness, wait_for

CLI_TIMEOUT_S = 120.0


# A contract-breaking ASGI app for the FAIL path of `harness verify`: right /hello, wrong /json.
async def broken_app(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    body = b"Hello, World!" if scope["path"] == "/hello" else b"nope"
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd(*args), capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.e2e
def test_servers_lists_every_server_with_version_and_preset() -> None:
    result = run_cli("servers", "--cpus", "0,1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "presets for 2 CPUs" in out
    for name, server in catalogue.SERVERS.items():
        row = next(line for line in out.splitlines() if re.search(rf"\b{name}\s", line))
        version = catalogue.installed_version(server)
        assert version and version in row, row
        preset = catalogue.preset_for(server, 2)
        assert re.search(rf"│\s+{preset.workers}\s+│", row), row
        assert ("yes" if server.websocket else "no") in row


def test_servers_default_preset_is_for_one_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["servers"]) == 0
    out = capsys.readouterr().out
    assert "presets for 1 CPU)" in out


@pytest.mark.e2e
@pytest.mark.parametrize("argv", [
    ["serve", "gunicorn-turbo"],
    ["verify", "--servers", "uvicorn,gunicorn-turbo"],
])
def test_unknown_server_name_exits_2_listing_the_known_names(argv: list[str]) -> None:
    result = run_cli(*argv)
    assert result.returncode == 2
    assert "unknown server 'gunicorn-turbo'" in result.stderr
    for name in catalogue.SERVERS:
        assert name in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_serve_rejects_a_bad_override_with_exit_2() -> None:
    result = run_cli("serve", "daphne", "--workers", "4")
    assert result.returncode == 2 and "single process" in result.stderr


@pytest.mark.e2e
def test_serve_keeps_the_target_up_until_ctrl_c_then_stops_everything() -> None:
    proc = start_harness("serve", "gunicorn-gthread", "--workers", "2", "--threads", "3")
    seen: set[int] = set()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        wait_for(lambda: _read_until(proc, lines, "Ctrl-C stops it"), 60, "serve to be ready",
                 proc)
        text = "\n".join(lines)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
        assert url, text
        assert "workers=2 threads=3 (overridden: workers, threads)" in text
        assert "upstream delay service: http://127.0.0.1:" in text
        assert f"{url.group(1)}/io?ms=50" in text
        assert http_get(url.group(1), "/hello") == (200, b"Hello, World!")
        status, body = http_get(url.group(1), "/io?ms=20")
        assert status == 200 and b"upstream" in body
        seen.update(p.pid for p in descendants(proc.pid))
        assert len(seen) >= 5  # upstream, its watchdog, master + 2 workers, their watchdog
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert all_gone(sorted(seen)), sorted(seen)


def _read_until(proc: subprocess.Popen[str], lines: list[str], marker: str) -> bool:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line:
        lines.append(line.rstrip("\n"))
    return marker in line


@pytest.mark.e2e
def test_verify_passes_real_servers_and_shows_a_table() -> None:
    result = run_cli("verify", "--servers", "gunicorn-sync,uvicorn")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {name: line for line in result.stdout.splitlines()
            for name in ("gunicorn-sync", "uvicorn") if re.match(rf"│ {name}\s", line)}
    assert "pass" in rows["gunicorn-sync"] and "unsupported (WSGI)" in rows["gunicorn-sync"]
    assert "pass" in rows["uvicorn"] and "checked" in rows["uvicorn"]
    # every check passed: the WebSocket echo and broadcast, the database, the long-lived routes
    # and /cpu's offloads included (36 when this was written)
    checks = re.search(r"(\d+)/(\d+)", rows["uvicorn"])
    assert checks is not None and checks[1] == checks[2] and int(checks[2]) >= 36, rows


@pytest.fixture
def broken_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A catalogue entry serving ``broken_app`` with uvicorn, and an app family without WSGI."""
    uvicorn = catalogue.get_server("uvicorn")
    broken = dataclasses.replace(uvicorn, name="uvicorn-broken")
    monkeypatch.setitem(catalogue.SERVERS, broken.name, broken)
    monkeypatch.setitem(catalogue.APPS, "broken", catalogue.AppFamily(
        name="broken", modules={"asgi": "tests.test_cli_servers:broken_app"}))
    yield broken.name


@pytest.mark.e2e
def test_verify_reports_the_failing_check_unsupported_pairs_and_exits_1(
        broken_server: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    args = argparse.Namespace(servers=[broken_server, "gunicorn-sync"], app="broken", cpus=None,
                              backend="local", wsgi_app=None, asgi_app=None, app_dir=None,
                              env=None, path=None, db_url=None)
    code = verify_command.main(args)
    out = capsys.readouterr().out
    assert code == 1, out
    broken_row = next(line for line in out.splitlines() if "uvicorn-broken" in line
                      and "│" in line)
    assert "FAIL" in broken_row and "json: GET /json" in broken_row
    # the first failing check in full, then the others' names
    assert "more: not_found, cpu[n=0]" in out
    wsgi_row = next(line for line in out.splitlines() if line.startswith("│ gunicorn-sync"))
    assert "unsupported" in wsgi_row
    assert "no WSGI app" in out
    # everything it started is stopped
    assert not processes._LIVE


def test_serve_and_verify_use_the_run_policy_for_cpus() -> None:
    # the same split as `harness run`, so a server is verified where it is measured
    assert allocate_for_server(None, [0, 1]) == allocate_cpus([0, 1])
    assert allocate_for_server(None, [0, 1, 2, 3]).server == (2, 3)
    assert allocate_for_server((3,), [0, 1, 2, 3]).loadgen == (0, 1, 2)
    # one CPU: nothing to separate, the upstream shares it
    assert allocate_for_server(None, [0]) == CpuPlan(server=(0,), loadgen=(0,))
