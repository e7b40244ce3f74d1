"""The database part of the app contract as pure functions: tables, seed rows, parsing, bodies.

Shared by every app family's database routes (``/db``, ``/queries``, ``/fortunes``,
``/db/sleep``), by the harness that seeds the tables (harness.services.database) and by verify.py,
so the rows, the clamping and the fortunes page are decided once. No driver is imported here:
each app brings its own (psycopg 3 sync or async, asyncpg, Django's ORM). The tables are
TechEmpower's: ``world`` (10,000 rows, random numbers 1..10,000) and ``fortune`` (its 12 rows).
"""

from __future__ import annotations

import html
import json
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from apps.raw import common

DB_URL_ENV = "HARNESS_DB_URL"
# Connections each worker process's pool holds (the harness sets it from the target's preset).
DB_POOL_ENV = "HARNESS_DB_POOL"
# The ASGI raw app's driver: "psycopg" (the default, the same driver as the WSGI app) or
# "asyncpg" (family raw-asyncpg).
DB_DRIVER_ENV = "HARNESS_DB_DRIVER"
DEFAULT_POOL = 4  # psycopg_pool's default min_size (and max_size), used when the env is unset

WORLD_ROWS = 10_000
RANDOM_MAX = 10_000
QUERIES_MIN = 1
QUERIES_MAX = 500
DB_SLEEP_MAX_MS = 10_000
RUNTIME_FORTUNE = "Additional fortune added at request time."

# TechEmpower's fortune table, ids 1..12 (the order the rows are inserted in).
FORTUNES: tuple[str, ...] = (
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. \u2014 Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    '<script>alert("This should not be displayed in a browser alert box.");</script>',
    "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af",
)

SCHEMA_SQL: tuple[str, ...] = (
    "CREATE TABLE world (id integer PRIMARY KEY, randomnumber integer NOT NULL)",
    "CREATE TABLE fortune (id integer PRIMARY KEY, message varchar(2048) NOT NULL)",
)
TABLES = ("world", "fortune")

# The drivers' placeholders differ: psycopg takes %s, asyncpg $1.
SELECT_WORLD = "SELECT id, randomnumber FROM world WHERE id = %s"
SELECT_WORLD_ASYNCPG = "SELECT id, randomnumber FROM world WHERE id = $1"
SELECT_FORTUNES = "SELECT id, message FROM fortune"
SELECT_SLEEP = "SELECT pg_sleep(%s)"
SELECT_SLEEP_ASYNCPG = "SELECT pg_sleep($1)"

DB_PATH = "/db"
QUERIES_PATH = "/queries"
FORTUNES_PATH = "/fortunes"
DB_SLEEP_PATH = "/db/sleep"
ROUTES = (DB_PATH, QUERIES_PATH, FORTUNES_PATH, DB_SLEEP_PATH)

TEXT_HTML = "text/html; charset=utf-8"

DbKind = Literal["db", "queries", "fortunes", "sleep"]
Row = tuple[Any, ...]
# How a family renders /fortunes from the table's rows (its own template engine, or ours).
FortunesRenderer = Callable[[Sequence[Row]], common.Response]


@dataclass(frozen=True, kw_only=True)
class DbRequest:
    """A valid database request: ``n`` random rows (``db``: one, as an object), the fortunes
    page, or a wait of ``ms`` inside the database."""

    kind: DbKind
    n: int = 1
    ms: int = 0


def seed_rows(rng: random.Random | None = None) -> list[tuple[int, int]]:
    """The world table: ids 1..WORLD_ROWS, each with a random number 1..RANDOM_MAX."""
    rng = rng or random.Random()
    return [(i, rng.randint(1, RANDOM_MAX)) for i in range(1, WORLD_ROWS + 1)]


def fortune_rows() -> list[tuple[int, str]]:
    return list(enumerate(FORTUNES, start=1))


def random_id() -> int:
    return random.randint(1, WORLD_ROWS)


def random_ids(n: int) -> list[int]:
    return [random.randint(1, WORLD_ROWS) for _ in range(n)]


def clamp_queries(text: str | None) -> int:
    """TechEmpower's rule: missing or not an integer is 1, then clamped to 1..500."""
    try:
        n = int(text) if text is not None and text.isascii() and len(text) <= 9 else 1
    except ValueError:
        n = 1
    return min(QUERIES_MAX, max(QUERIES_MIN, n))


def parse_db(method: str, path: str, query_string: str) -> DbRequest | common.Response | None:
    """A database route's request or its error response; None when ``path`` is not one."""
    if path not in ROUTES:
        return None
    if method != "GET":
        return common.METHOD_NOT_ALLOWED
    if path == DB_PATH:
        return DbRequest(kind="db")
    if path == QUERIES_PATH:
        return DbRequest(kind="queries", n=clamp_queries(common.query_param(query_string, "n")))
    if path == FORTUNES_PATH:
        return DbRequest(kind="fortunes")
    text = common.query_param(query_string, "ms")
    if (text is None or not text.isascii() or not text.isdigit() or len(text) > 9
            or int(text) > DB_SLEEP_MAX_MS):
        return common.bad_request(f"ms must be an integer 0..{DB_SLEEP_MAX_MS}")
    return DbRequest(kind="sleep", ms=int(text))


def world_object(row: Sequence[int]) -> dict[str, int]:
    return {"id": int(row[0]), "randomNumber": int(row[1])}


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def db_response(row: Sequence[int]) -> common.Response:
    """``/db``: one row as ``{"id":N,"randomNumber":M}``."""
    return common.Response(status=200, content_type=common.APPLICATION_JSON,
                           body=_json(world_object(row)))


def queries_response(rows: Iterable[Sequence[int]]) -> common.Response:
    """``/queries``: a JSON array of row objects, in the order they were asked for."""
    return common.Response(status=200, content_type=common.APPLICATION_JSON,
                           body=_json([world_object(row) for row in rows]))


def sleep_response(ms: int) -> common.Response:
    return common.Response(status=200, content_type=common.APPLICATION_JSON,
                           body=_json({"ms": ms, "mode": "db"}))


def sorted_fortunes(rows: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """The table's rows plus the run-time fortune (id 0), sorted by message."""
    return sorted([*((int(i), str(m)) for i, m in rows), (0, RUNTIME_FORTUNE)],
                  key=lambda row: row[1])


def fortunes_html(rows: Iterable[tuple[int, str]]) -> bytes:
    """TechEmpower's page for ``sorted_fortunes(rows)``, every message HTML-escaped."""
    cells = "".join(f"<tr><td>{i}</td><td>{html.escape(m)}</td></tr>"
                    for i, m in sorted_fortunes(rows))
    return ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
            f"<tr><th>id</th><th>message</th></tr>{cells}</table></body></html>").encode()


def fortunes_response(rows: Iterable[tuple[int, str]]) -> common.Response:
    return common.Response(status=200, content_type=TEXT_HTML, body=fortunes_html(rows))


def db_url() -> str | None:
    """The database URL from the environment (read when a pool is made)."""
    return os.environ.get(DB_URL_ENV, "").strip() or None


def pool_size() -> int:
    text = os.environ.get(DB_POOL_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_POOL


def db_not_configured() -> common.Response:
    return common.Response(status=502, content_type=common.TEXT_PLAIN,
                           body=f"Bad Gateway: no database configured (set {DB_URL_ENV})".encode())


def db_failed(exc: BaseException) -> common.Response:
    return common.Response(status=502, content_type=common.TEXT_PLAIN,
                           body=f"Bad Gateway: database error {type(exc).__name__}".encode())


def one_row(row: Row | None) -> Row:
    """A world row a SELECT by id returned (every id 1..WORLD_ROWS exists when seeded)."""
    if row is None:
        raise LookupError("no such world row")
    return row


def respond(db: DbRequest, rows: Sequence[Row],
            render_fortunes: FortunesRenderer = fortunes_response) -> common.Response:
    """The answer to a database request from the rows it read (none for ``sleep``)."""
    if db.kind == "db":
        return db_response(rows[0])
    if db.kind == "queries":
        return queries_response(rows)
    if db.kind == "fortunes":
        return render_fortunes(rows)
    return sleep_response(db.ms)
