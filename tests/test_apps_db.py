"""The database routes (apps/dbcontract.py) of every family that has them, behind real servers
on loopback, against a seeded scratch PostgreSQL (the harness's database service,
harness.backends.local.start_database): the rows are the database's, ``/queries`` clamps,
``/fortunes`` is escaped and sorted (byte for byte the same from the raw apps on both gateways
and both drivers), ``/db/sleep`` waits in the database, each process holds at most its pool,
and without ``HARNESS_DB_URL`` the routes answer 502 while ``/hello`` still works."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from apps import dbcontract
from apps.djangoproj.settings import database_settings
from apps.raw import asgi as raw_asgi
from apps.raw import common
from harness.ports import free_port
from tests.runhelpers import stop_group
from tests.test_apps import Answer, fetch, wait_ready

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POOL = 2  # HARNESS_DB_POOL of every server here: small, so the cap shows
DB_CPUS = (0,)
DB_CONNECTIONS = 60  # beyond every server's pools together
SLEEP_MS = 100
DJANGO = "DJANGO_SETTINGS_MODULE"
ROW_RE = re.compile(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class Family:
    """One app family on one server: argv (``{port}`` filled in) and its own environment."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    # /fortunes byte for byte dbcontract.fortunes_html (html.escape); a framework's template
    # engine may spell the escapes of ' and " its own way (Jinja: &#39; &#34;)
    exact_fortunes: bool = False


def _uvicorn(app: str) -> tuple[str, ...]:
    return (str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", "{port}",
            "--lifespan", "on", "--no-access-log", "--log-level", "warning")


def _gunicorn(app: str, *extra: str) -> tuple[str, ...]:
    return (str(BIN / "gunicorn"), app, "-b", "127.0.0.1:{port}", "--log-level", "warning",
            *extra)


RAW_WSGI = Family(name="raw-gunicorn", exact_fortunes=True,
                  # two workers made by fork after the app was imported: a pool each
                  argv=_gunicorn("apps.raw.wsgi:app", "-w", "2", "-k", "sync", "--preload"))
RAW_GEVENT = Family(name="raw-gunicorn-gevent", exact_fortunes=True,
                    # --preload imports the app before the worker monkey-patches
                    argv=_gunicorn("apps.raw.wsgi:app", "-w", "1", "-k", "gevent", "--preload"))
RAW_ASGI = Family(name="raw-uvicorn", exact_fortunes=True, argv=_uvicorn("apps.raw.asgi:app"))
RAW_ASYNCPG = Family(name="raw-asyncpg-uvicorn", exact_fortunes=True,
                     argv=_uvicorn("apps.raw.asgi:app"),
                     env=((dbcontract.DB_DRIVER_ENV, "asyncpg"),))
DJANGO_WSGI = Family(name="django-gunicorn", argv=_gunicorn("apps.djangoproj.wsgi:application"),
                     env=((DJANGO, "apps.djangoproj.settings"),))
DJANGO_ASGI = Family(name="django-uvicorn", argv=_uvicorn("apps.djangoproj.asgi:application"),
                     env=((DJANGO, "apps.djangoproj.settings"),))
DJANGO_ASYNC = Family(name="django-async-uvicorn",
                      argv=_uvicorn("apps.djangoproj.asgi:application"),
                      env=((DJANGO, "apps.djangoproj.settings_async"),))
FLASK = Family(name="flask-gunicorn", argv=_gunicorn("apps.flask_app.wsgi:app"))
FASTAPI = Family(name="fastapi-uvicorn", argv=_uvicorn("apps.fastapi_app.asgi:app"))

RAW = (RAW_WSGI, RAW_GEVENT, RAW_ASGI, RAW_ASYNCPG)
FAMILIES = (*RAW, DJANGO_WSGI, DJANGO_ASGI, DJANGO_ASYNC, FLASK, FASTAPI)
WITHOUT_DB_ROUTES = (
    Family(name="quart-uvicorn", argv=_uvicorn("apps.quart_app.asgi:app")),
    Family(name="starlette-uvicorn", argv=_uvicorn("apps.starlette_app.asgi:app")),
    Family(name="pyramid-gunicorn", argv=_gunicorn("apps.pyramid_app.wsgi:app")),
)


@dataclass
class Server:
    family: Family
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def start_server(family: Family, db_url: str | None) -> Iterator[Server]:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in family.argv]
    env = {k: v for k, v in os.environ.items()
           if k not in (dbcontract.DB_URL_ENV, dbcontract.DB_POOL_ENV, dbcontract.DB_DRIVER_ENV)}
    env.update(family.env)
    env[dbcontract.DB_POOL_ENV] = str(POOL)
    if db_url is not None:
        env[dbcontract.DB_URL_ENV] = db_url
    process = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url)
        yield Server(family=family, url=url, process=process)
    finally:
        stop_group(process)


@dataclass(frozen=True)
class Database:
    url: str
    port: int
    world: dict[int, int]
    fortunes: list[tuple[int, str]]


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    try:
        from harness.backends.local import start_database
    except ImportError as exc:  # pragma: no cover - the service is part of the harness
        pytest.skip(f"the harness's database service is not available: {exc}")
    with start_database(DB_CPUS, connections=DB_CONNECTIONS) as server:
        assert server.url is not None
        with psycopg.connect(server.url) as conn:
            world: dict[int, int] = dict(
                conn.execute("SELECT id, randomnumber FROM world").fetchall())
            fortunes = conn.execute("SELECT id, message FROM fortune").fetchall()
        yield Database(url=server.url, port=server.port, world=world, fortunes=fortunes)


@pytest.fixture(scope="module")
def servers(database: Database) -> Iterator[Callable[[Family], Server]]:
    """Each family's server, started on first use and kept for the module."""
    started: dict[str, Server] = {}
    with ExitStack() as stack:
        def get(family: Family) -> Server:
            if family.name not in started:
                started[family.name] = stack.enter_context(start_server(family, database.url))
            return started[family.name]

        yield get


def _json(answer: Answer) -> Any:
    assert answer.status == 200, answer.body
    assert dict(answer.headers)["content-type"] == common.APPLICATION_JSON
    return json.loads(answer.body)


def _assert_rows(database: Database, value: Any, count: int) -> None:
    assert isinstance(value, list) and len(value) == count, value
    for item in value:
        assert set(item) == {"id", "randomNumber"}, item
        assert database.world[item["id"]] == item["randomNumber"], item


def _page_rows(page: str) -> list[tuple[int, str]]:
    return [(int(i), html.unescape(m)) for i, m in ROW_RE.findall(page)]


# -- no server ------------------------------------------------------------------------------

def test_django_database_settings_come_from_the_url() -> None:
    settings = database_settings(
        "postgresql://bench:p%40ss@127.0.0.1:5433/hello%20db?sslmode=disable", 7)
    assert settings == {
        "ENGINE": "django.db.backends.postgresql", "NAME": "hello db", "USER": "bench",
        "PASSWORD": "p@ss", "HOST": "127.0.0.1", "PORT": "5433", "CONN_MAX_AGE": 0,
        "OPTIONS": {"sslmode": "disable", "pool": {"min_size": 7, "max_size": 7}},
    }
    assert database_settings("postgres://u@[::1]/d", 1)["HOST"] == "::1"
    with pytest.raises(ValueError, match="postgresql://"):
        database_settings("mysql://u@h/d", 1)


def test_the_asgi_driver_is_psycopg_or_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dbcontract.DB_DRIVER_ENV, raising=False)
    assert raw_asgi._db_driver() == "psycopg"
    monkeypatch.setenv(dbcontract.DB_DRIVER_ENV, "asyncpg")
    assert raw_asgi._db_driver() == "asyncpg"
    monkeypatch.setenv(dbcontract.DB_DRIVER_ENV, "asyncpg2")
    with pytest.raises(ValueError, match="asyncpg2"):
        raw_asgi._db_driver()


# -- real servers and a real database ---------------------------------------------------------

@pytest.mark.e2e
def test_raw_fortunes_are_the_same_bytes_on_both_gateways_and_drivers(
        database: Database, servers: Callable[[Family], Server]) -> None:
    expected = dbcontract.fortunes_html(database.fortunes)
    for family in RAW:
        answer = fetch(servers(family).url, dbcontract.FORTUNES_PATH)
        assert (answer.status, answer.headers, answer.body) == (
            200, (("content-type", dbcontract.TEXT_HTML),
                  ("content-length", str(len(expected)))), expected), family.name


@pytest.mark.e2e
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_database_routes(family: Family, database: Database,
                         servers: Callable[[Family], Server]) -> None:
    url = servers(family).url
    one = _json(fetch(url, dbcontract.DB_PATH))
    _assert_rows(database, [one], 1)
    for query, count in (("n=3", 3), ("n=0", 1), ("n=501", 500), ("n=abc", 1), ("", 1),
                         ("n=20&n=7", 20)):
        _assert_rows(database, _json(fetch(url, f"{dbcontract.QUERIES_PATH}?{query}")), count)

    page = fetch(url, dbcontract.FORTUNES_PATH)
    assert (page.status, dict(page.headers)["content-type"]) == (200, dbcontract.TEXT_HTML)
    expected = dbcontract.fortunes_html(database.fortunes)
    if family.exact_fortunes:
        assert page.body == expected
    text = page.body.decode()
    assert "<script>" not in text  # escaped
    assert html.unescape(text) == html.unescape(expected.decode())
    assert _page_rows(text) == dbcontract.sorted_fortunes(database.fortunes)

    slept = fetch(url, f"{dbcontract.DB_SLEEP_PATH}?ms={SLEEP_MS}")
    assert _json(slept) == {"ms": SLEEP_MS, "mode": "db"}
    assert slept.body == dbcontract.sleep_response(SLEEP_MS).body
    assert slept.elapsed_ms >= SLEEP_MS
    bad = fetch(url, f"{dbcontract.DB_SLEEP_PATH}?ms=abc")
    assert (bad.status, bad.body) == (400, b"Bad Request: ms must be an integer 0..10000")
    post = fetch(url, dbcontract.DB_PATH, method="POST")
    assert (post.status, post.body, dict(post.headers)["allow"]) == (
        405, common.METHOD_NOT_ALLOWED_BODY, "GET")
    assert fetch(url, "/hello").body == common.HELLO_BODY


@pytest.mark.e2e
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_the_harness_verifier_accepts_the_database_routes(
        family: Family, database: Database, servers: Callable[[Family], Server]) -> None:
    from harness.verify import verify_database

    report = verify_database(servers(family).url, database.url)
    assert [c for c in report.checks if not c.ok] == []


def _db_connections(pid: int, db_port: int) -> dict[int, int]:
    """Connections to the database of ``pid`` and its children, per process."""
    counts: dict[int, int] = {}
    parent = psutil.Process(pid)
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            found = [c for c in proc.net_connections(kind="tcp")
                     if c.raddr and c.raddr.port == db_port]
        except psutil.NoSuchProcess:
            continue
        if found:
            counts[proc.pid] = len(found)
    return counts


@pytest.mark.e2e
@pytest.mark.parametrize("family", [RAW_GEVENT, RAW_ASGI, RAW_ASYNCPG, DJANGO_ASGI,
                                    DJANGO_ASYNC, FASTAPI], ids=lambda f: f.name)
def test_a_process_waits_in_parallel_up_to_its_pool(
        family: Family, database: Database, servers: Callable[[Family], Server]) -> None:
    """One process, POOL connections: 3 x POOL concurrent waits of 300 ms take three rounds
    (the pool caps them), not one, and not 3 x POOL (a blocking wait: psycopg imported before
    gevent's patching would do that); the process holds POOL connections, no more (Django's
    router must not open the raw app's pool beside the ORM's)."""
    server = servers(family)
    ms, requests = 300, 3 * POOL
    fetch(server.url, dbcontract.DB_PATH)  # the pool is open
    start = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        answers = list(pool.map(
            lambda _: fetch(server.url, f"{dbcontract.DB_SLEEP_PATH}?ms={ms}"), range(requests)))
    elapsed_ms = (time.perf_counter() - start) * 1000
    assert [a.status for a in answers] == [200] * requests
    assert 3 * ms * 0.95 <= elapsed_ms < requests * ms * 0.9, elapsed_ms
    counts = _db_connections(server.process.pid, database.port)
    assert counts and all(n <= POOL for n in counts.values()), counts


@pytest.mark.e2e
def test_each_forked_worker_has_its_own_pool(
        database: Database, servers: Callable[[Family], Server]) -> None:
    """gunicorn --preload -w 2: the master holds no connection, each worker at most POOL."""
    server = servers(RAW_WSGI)
    for _ in range(20):
        fetch(server.url, dbcontract.DB_PATH)
    counts = _db_connections(server.process.pid, database.port)
    assert server.process.pid not in counts
    assert counts and all(n <= POOL for n in counts.values()), counts


@pytest.mark.e2e
@pytest.mark.parametrize("family", (*FAMILIES, *WITHOUT_DB_ROUTES), ids=lambda f: f.name)
def test_without_a_database(family: Family) -> None:
    """No HARNESS_DB_URL: the database routes answer 502 (404 where a family has none) and
    every other route is unchanged."""
    with start_server(family, None) as server:
        assert fetch(server.url, "/hello").body == common.HELLO_BODY
        assert fetch(server.url, "/json").body == common.JSON_BODY
        expected = dbcontract.db_not_configured() if family in FAMILIES else common.NOT_FOUND
        for path in (dbcontract.DB_PATH, f"{dbcontract.QUERIES_PATH}?n=2",
                     dbcontract.FORTUNES_PATH, f"{dbcontract.DB_SLEEP_PATH}?ms=1"):
            answer = fetch(server.url, path)
            assert (answer.status, answer.body) == (expected.status, expected.body), path
            assert dict(answer.headers)["content-type"] == expected.content_type


@pytest.mark.e2e
def test_an_unreachable_database_is_a_502_and_the_server_still_starts() -> None:
    """asyncpg connects at lifespan startup: refused there, the server starts anyway and the
    route answers 502 at once (psycopg's pools wait their 30 s timeout first)."""
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/harness"
    with start_server(RAW_ASYNCPG, closed) as server:
        answer = fetch(server.url, dbcontract.DB_PATH)
        assert (answer.status, answer.body) == (
            502, dbcontract.db_failed(ConnectionRefusedError()).body)
