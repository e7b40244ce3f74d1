"""WebSocket end to end: `harness run --scenario websocket`, and `harness load ws://` bad input.

Real servers, the real generator, the CLI in a subprocess. Nothing here asserts ``valid``: on
a busy machine the generator's CPU may be flagged; the assertions are what must hold anyway.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.analysis.report import WS_HEADING
from harness.ports import free_port
from tests.analysis_fixtures import report_text
from tests.runhelpers import (
    harness_cmd,
    read_json,
    read_rows,
    stop_group,
    wait_for,
)

pytestmark = pytest.mark.e2e
RUN_TIMEOUT_S = 150.0
LOAD_TIMEOUT_S = 30.0
SERVER_READY_S = 20.0
UNSUPPORTED_REASON = "the WSGI interface has no way to hold a WebSocket connection"


@pytest.fixture(scope="module")
def ws_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ws-e2e") / "run"
    proc = subprocess.run(
        harness_cmd("run", "--scenario", "websocket", "--quick", "--servers",
                    "uvicorn,gunicorn-sync", "--out", str(out)),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_wsgi_server_is_unsupported_with_the_reason(ws_run: Path) -> None:
    meta = read_json(ws_run / "run.json")
    targets = {t["server"]: t for t in meta["targets"]}
    assert targets["gunicorn-sync"]["status"] == "unsupported"
    assert UNSUPPORTED_REASON in targets["gunicorn-sync"]["reason"]
    assert targets["uvicorn"]["status"] == "ok"
    rows = read_rows(ws_run / "trials.csv")
    assert not [r for r in rows if r["server"] == "gunicorn-sync" and r["status"] == "ok"]


def test_every_level_kind_was_measured(ws_run: Path) -> None:
    rows = [r for r in read_rows(ws_run / "trials.csv") if r["server"] == "uvicorn"]
    assert {r["load_model"] for r in rows} == {"closed", "open", "broadcast", "idle"}
    assert all(r["protocol"] == "websocket" and r["status"] == "ok" for r in rows)

    for row in (r for r in rows if r["load_model"] in ("closed", "open")):
        assert int(row["requests"]) > 0, row["trial_id"]
        assert int(row["errors"]) == 0, (row["trial_id"], row["invalid_reason"])
        assert row["message_size"] == "64"
        assert float(row["p50_ms"]) > 0
    opened = [r for r in rows if r["load_model"] == "open"]
    assert opened and all(r["service_p50_ms"] for r in opened)

    idle = [r for r in rows if r["load_model"] == "idle"]
    assert idle
    for row in idle:
        assert int(row["connections_at_end"]) == int(row["concurrency"])
        assert float(row["memory_per_connection_kb"]) > 0
        assert f"held {row['concurrency']} of {row['concurrency']} connections" in row["notes"]

    broadcast = [r for r in rows if r["load_model"] == "broadcast"]
    assert broadcast
    for row in broadcast:
        found = re.search(r"(\d+) of (\d+) expected deliveries arrived \(([\d.]+)%\)",
                          row["notes"])
        assert found, row["notes"]
        delivered, expected = int(found.group(1)), int(found.group(2))
        assert expected > 0 and delivered == int(row["requests"])


def test_report_has_the_websocket_section(ws_run: Path) -> None:
    html = report_text(ws_run, "html")  # the tables are in the appendix, trials.html/.md
    markdown = report_text(ws_run)
    for text in (html, markdown):
        assert WS_HEADING in text
        assert "gunicorn-sync" in text and UNSUPPORTED_REASON in text
        for heading in ("Echo, closed loop", "Echo, open loop", "Broadcast (level = "
                        "subscribers)", "Idle connections (level = connections held)"):
            assert heading in text, heading
    assert "plots/run-ws-throughput.png" in markdown and "plots/run-ws-idle.png" in markdown


# -- bad input: one line on stderr, exit 2 ---------------------------------------------------

def _load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd("load", *args), capture_output=True, text=True,
                          timeout=LOAD_TIMEOUT_S)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("harness load: error:"), err
    assert "Traceback" not in proc.stderr
    return err


def test_nothing_listening() -> None:
    port = free_port()
    err = _one_line_error(_load(f"ws://127.0.0.1:{port}/ws/echo", "-c", "4", "-d", "1s"))
    assert f"127.0.0.1:{port}" in err and "refused" in err


def test_message_size_zero() -> None:
    port = free_port()
    err = _one_line_error(_load(f"ws://127.0.0.1:{port}/ws/echo", "-c", "4", "-d", "1s",
                                "--message-size", "0"))
    assert "--message-size" in err and "got 0" in err


def test_refused_upgrade_says_why() -> None:
    import socket

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "apps.raw.asgi:app", "--host",
                               "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(accepting, SERVER_READY_S, "uvicorn to accept")
        err = _one_line_error(_load(f"ws://127.0.0.1:{port}/nope", "-c", "4", "-d", "1s"))
        assert "upgrade" in err.lower() and "failed" in err and "/nope" in err
        assert "403" in err  # why: the status the server answered with
    finally:
        stop_group(server)
