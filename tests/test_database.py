"""The database service (harness.services.database, backends.local.start_database) and the
plan's database: a seeded scratch cluster that leaves nothing behind, and one-line errors for a
database that cannot be used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import psycopg
import pytest

from apps import dbcontract
from harness.backends.local import start_database
from harness.errors import UsageError
from harness.plan import PlanOptions, build_plan
from harness.scenarios import load_scenario
from harness.services import database
from tests.runhelpers import REPO, harness_cmd, wait_for

GONE_TIMEOUT_S = 15.0


def _postgres_pids(scratch: Path) -> list[int]:
    """Live postgres processes whose command line names ``scratch`` (the cluster's folder)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(scratch) in a for a in cmdline):
            found.append(proc.pid)
    return found


# -- plan and input (no server) ----------------------------------------------------------------

def test_database_scenario_plans_families_without_database_routes_as_unsupported() -> None:
    plan = build_plan(load_scenario("db_single"),
                      PlanOptions(app="raw,quart", available_cpus=(0, 1)))
    reasons = {p.name: (p.supported, p.reason) for p in plan.targets}
    assert reasons["uvicorn+quart"] == (False, "app family 'quart' has no database routes")
    assert reasons["uvicorn+raw"] == (True, "")
    assert plan.database is not None and plan.database.url is None
    # gunicorn-sync: 3 workers x psycopg's 4 = 12 connections, the largest, + the reserve
    assert plan.database.connections == max(
        database.MIN_MAX_CONNECTIONS, 12 + database.RESERVED_CONNECTIONS)


@pytest.mark.parametrize(("options", "message"), [
    (PlanOptions(db_seed=True), "--db-seed: expected --db-url"),
    (PlanOptions(db_url="mysql://u@127.0.0.1/x"), "--db-url: expected postgresql://"),
    (PlanOptions(db_url="postgresql://u@127.0.0.1/x", db_cpus=(0,)),
     "--db-cpus: the database at --db-url is not started by the harness"),
])
def test_bad_database_options_are_one_line_usage_errors(options: PlanOptions,
                                                        message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_plan(load_scenario("db_single"), options)


def test_database_options_on_a_scenario_without_a_database_are_refused() -> None:
    with pytest.raises(UsageError, match="uses no database"):
        build_plan(load_scenario("hello"), PlanOptions(db_url="postgresql://u@127.0.0.1/x"))


def test_a_password_never_shows() -> None:
    assert database.redact("postgresql://bob:s3cret@db:5432/app") == \
        "postgresql://bob:***@db:5432/app"


def test_the_fortunes_page_escapes_and_sorts() -> None:
    page = dbcontract.fortunes_html(dbcontract.fortune_rows()).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    messages = [m for _, m in dbcontract.sorted_fortunes(dbcontract.fortune_rows())]
    assert messages == sorted(messages) and dbcontract.RUNTIME_FORTUNE in messages


# -- a real cluster --------------------------------------------------------------------------

@pytest.mark.e2e
def test_scratch_cluster_is_seeded_and_gone_after_stop() -> None:
    server = start_database((0,), connections=30)
    scratch = server.scratch
    assert scratch is not None and scratch.exists()
    with server:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT count(*) FROM world").fetchone() == (dbcontract.WORLD_ROWS,)
            fortunes = conn.execute("SELECT id, message FROM fortune ORDER BY id").fetchall()
            assert fortunes == dbcontract.fortune_rows()
            assert conn.execute("SHOW max_connections").fetchone() == ("30",)
        database.check_database(server.url)  # passes: both tables, every row
        assert _postgres_pids(scratch)
    assert not scratch.exists()
    assert not _postgres_pids(scratch)


@pytest.mark.e2e
def test_a_database_without_the_tables_is_refused_and_then_seeded_on_request() -> None:
    with start_database((0,), connections=20) as server:
        admin = database.local_url(server.port, database.SUPERUSER)
        database.create_database(admin, "empty")
        empty = database.local_url(server.port, "empty")
        with pytest.raises(UsageError, match="has no table world, fortune"):
            database.check_database(empty)
        database.prepare(empty, seed=True)
        database.check_database(empty)


_HOLDER = textwrap.dedent("""
    import sys, time
    from harness.backends.local import start_database
    server = start_database((0,), connections=20)
    print(server.scratch, flush=True)
    time.sleep(600)
""")


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_nothing_survives_a_harness_killed_or_interrupted(signum: int) -> None:
    """SIGKILL: the watchdog kills the cluster's group and removes its folder; Ctrl-C: the
    harness's own exit hook stops it."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        assert proc.stdout is not None
        scratch = Path(proc.stdout.readline().strip())
        assert scratch.exists() and _postgres_pids(scratch)
        os.kill(proc.pid, signum)
        proc.wait(timeout=GONE_TIMEOUT_S)
        wait_for(lambda: not _postgres_pids(scratch) and not scratch.exists(), GONE_TIMEOUT_S,
                 "the cluster's processes and folder to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_run_with_an_unreachable_db_url_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", "db_single", "--quick", "--out", str(out),
                    "--db-url", "postgresql://nobody:pw@127.0.0.1:1/none"),
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--db-url: cannot use postgresql://nobody:***@127.0.0.1:1/none" \
        in lines[0], done.stderr
    assert "pw" not in done.stderr.replace("postgresql", "")
    assert not out.exists()


@pytest.mark.e2e
def test_binaries_the_unprivileged_user_cannot_reach_are_copied_into_the_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, the cluster runs as nobody, who cannot enter a venv under /root (mode 700):
    the binaries are then copied into the scratch folder, and go with it."""
    if database.run_as() is None:
        pytest.skip("runs as an unprivileged user already: no copy is needed")
    monkeypatch.setattr(database, "_others_may_run", lambda path: False)
    server = start_database((0,), connections=20)
    scratch = server.scratch
    assert scratch is not None
    with server:
        assert server.command[0].startswith(str(scratch / "pg")), server.command
        database.check_database(server.url)
    assert not scratch.exists()
