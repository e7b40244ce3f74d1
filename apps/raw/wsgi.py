"""The raw WSGI app (`apps.raw.wsgi:app`): the contract of apps/README.md, no framework.

``/io`` calls the upstream delay service through one urllib3 pool per process. The pool is made
on first use and remade when the process id changes, so a pool built before a fork (gunicorn
``--preload``, uWSGI's master) is never shared by workers, and under gevent it is built after
the monkey-patching, on cooperative sockets.

The database routes (``/db``, ``/queries``, ``/fortunes``, ``/db/sleep``, apps/dbcontract.py)
use one psycopg 3 ``ConnectionPool`` per process, made and remade the same way. psycopg itself
is imported only then: it picks its way of waiting on a socket when first imported, and under
gevent that must happen after the monkey-patching (gunicorn ``--preload`` imports this module in
the master, before any worker patches), or every query would block the whole worker.

The long-lived routes use only PEP 3333: ``/stream`` returns a generator that yields each event
(the server writes each as it is yielded) and sleeps between them; ``/upload`` reads
``wsgi.input`` in chunks up to ``CONTENT_LENGTH``, hashing as it reads; ``/background`` returns
an iterable whose ``close()``, which the server calls once the body is sent, does the work.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import urllib3
from urllib3.exceptions import HTTPError

from apps import dbcontract
from apps.raw import common

if TYPE_CHECKING:
    from psycopg import Connection, Cursor
    from psycopg_pool import ConnectionPool

try:
    from wsgiref.types import StartResponse, WSGIEnvironment
except ImportError:  # pragma: no cover - Python < 3.11 has only the typeshed names
    StartResponse = WSGIEnvironment = object  # type: ignore[assignment,misc]

_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None
_pool_pid = 0


def _upstream_pool() -> urllib3.PoolManager:
    global _pool, _pool_pid
    pid = os.getpid()
    pool = _pool
    if pool is not None and _pool_pid == pid:
        return pool
    with _pool_lock:
        if _pool is None or _pool_pid != pid:
            # block=False: past maxsize a request opens an extra connection instead of queueing
            # in the client; retries=False: a failed call is reported, not silently repeated.
            _pool = urllib3.PoolManager(num_pools=4, maxsize=common.UPSTREAM_POOL_MAXSIZE,
                                        block=False, retries=False)
            _pool_pid = pid
        return _pool


def _call_upstream(ms: int) -> common.Response | None:
    """None when the upstream answered 200 after its delay; otherwise the 502 to send."""
    base_url = common.upstream_base_url()
    if base_url is None:
        return common.upstream_not_configured()
    timeout = urllib3.Timeout(connect=common.UPSTREAM_CONNECT_TIMEOUT_S,
                              read=common.upstream_timeout_s(ms))
    try:
        upstream = _upstream_pool().request("GET", common.upstream_delay_url(base_url, ms),
                                            timeout=timeout)
    except (HTTPError, OSError):
        return common.upstream_unreachable(base_url)
    if upstream.status != 200:
        return common.upstream_bad_status(base_url, upstream.status)
    return None


def _wait(io: common.IoRequest) -> common.Response:
    if io.mode == "sleep":
        time.sleep(io.ms / 1000)
    else:
        failure = _call_upstream(io.ms)
        if failure is not None:
            return failure
    return common.io_ok(io)


_db_lock = threading.Lock()
_db_pool: ConnectionPool | None = None
_db_pool_pid = 0
# A pool inherited through fork is kept, untouched: closing or collecting it here would stop
# threads that are not ours and end sessions that belong to the parent.
_db_inherited: list[ConnectionPool] = []

Row = dbcontract.Row
FortunesRenderer = dbcontract.FortunesRenderer


def _database_pool(url: str) -> ConnectionPool:
    """This process's pool of ``dbcontract.pool_size()`` connections, made on first use and
    remade after a fork (the old one belongs to the parent: its connections are not ours)."""
    global _db_pool, _db_pool_pid
    pid = os.getpid()
    pool = _db_pool
    if pool is not None and _db_pool_pid == pid:
        return pool
    with _db_lock:
        if _db_pool is None or _db_pool_pid != pid:
            from psycopg_pool import ConnectionPool

            if _db_pool is not None:
                _db_inherited.append(_db_pool)
            size = dbcontract.pool_size()
            # open=True: the pool's workers start connecting now; a request waits for a free
            # connection up to psycopg_pool's timeout (30 s), then fails with PoolTimeout.
            _db_pool = ConnectionPool(url, min_size=size, max_size=size, open=True)
            _db_pool_pid = pid
        return _db_pool


def _db_errors() -> tuple[type[BaseException], ...]:
    """What a failed database call raises. Evaluated only when an exception is on its way (an
    ``except`` clause's expression), so psycopg is imported here, late, never before a fork."""
    import psycopg

    # psycopg.Error covers the pool's PoolTimeout and PoolClosed (OperationalError).
    return psycopg.Error, OSError, LookupError


def _one(cursor: Cursor[Row]) -> Row:
    return dbcontract.one_row(cursor.fetchone())


def _db_fetch(conn: Connection[Row], db: dbcontract.DbRequest) -> list[Row]:
    """The rows a request needs: one SELECT per world row (TechEmpower's multiple queries),
    the fortune table, or nothing after ``pg_sleep``."""
    if db.kind == "fortunes":
        return conn.execute(dbcontract.SELECT_FORTUNES).fetchall()
    if db.kind == "sleep":
        conn.execute(dbcontract.SELECT_SLEEP, (db.ms / 1000,))
        return []
    return [_one(conn.execute(dbcontract.SELECT_WORLD, (world_id,)))
            for world_id in dbcontract.random_ids(db.n)]


def _db_answer(db: dbcontract.DbRequest,
               render_fortunes: FortunesRenderer = dbcontract.fortunes_response
               ) -> common.Response:
    """A database request's answer; ``render_fortunes`` turns the fortune rows into the page
    (a framework passes its template engine)."""
    url = dbcontract.db_url()
    if url is None:
        return dbcontract.db_not_configured()
    try:
        # The pool's context commits the (read-only) transaction and gives the connection back.
        with _database_pool(url).connection() as conn:
            rows = _db_fetch(conn, db)
    except _db_errors() as exc:
        return dbcontract.db_failed(exc)
    return dbcontract.respond(db, rows, render_fortunes)


def _db_route(method: str, path: str, query_string: str) -> common.Response | None:
    """A database route's answer, or None when ``path`` is not one."""
    db = dbcontract.parse_db(method, path, query_string)
    return _db_answer(db) if isinstance(db, dbcontract.DbRequest) else db


_background = common.BackgroundCounters()


def _upload(environ: WSGIEnvironment) -> common.Response:
    length = common.upload_length(environ.get("CONTENT_LENGTH"),
                                  environ.get("HTTP_TRANSFER_ENCODING"))
    if isinstance(length, common.Response):
        return length  # the body is left unread: the server drains it or closes
    # a client gone mid-body: gunicorn's NoMoreData is an IOError
    return common.read_upload(environ["wsgi.input"].read, length)


class WorkAfterResponse:
    """A one-item body whose ``close()`` does ``ms`` of waiting work (a sleep: cooperative under
    gevent), counted in ``counters``. PEP 3333 servers call ``close()`` once they have sent the
    body, in the thread (greenlet) that served the request, so the work holds that worker until
    it is done. (Pyramid's app_iter is the same object.)"""

    def __init__(self, body: bytes, ms: int, counters: common.BackgroundCounters) -> None:
        self._body = body
        self._ms = ms
        self._counters = counters

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def close(self) -> None:
        self._counters.start()
        time.sleep(self._ms / 1000)
        self._counters.finish()  # not counted when the work is cut (the worker killed)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    query_string = environ.get("QUERY_STRING", "")
    answer = common.route(method, path, query_string)
    if isinstance(answer, common.StreamRequest):
        # No content-length: the server frames the body (chunked, or by closing).
        start_response("200 OK", list(common.STREAM_HEADERS))
        return common.sync_stream(answer)
    if isinstance(answer, common.BackgroundRequest):
        response = answer.response
        start_response(response.status_line, list(response.header_pairs))
        return WorkAfterResponse(response.body, answer.ms, _background)
    if isinstance(answer, common.IoRequest):
        response = _wait(answer)
    elif isinstance(answer, common.CpuRequest):
        # Inline whatever ``offload`` says: a sync worker has no event loop to keep free.
        response = common.cpu_result(answer.n, common.cpu_work(answer.n))
    elif isinstance(answer, common.UploadRequest):
        response = _upload(environ)
    elif isinstance(answer, common.StatsRequest):
        response = _background.response()
    elif answer is common.NOT_FOUND:  # not one of common's routes: maybe a database route
        response = _db_route(method, path, query_string) or answer
    else:
        response = answer
    # A copy: some servers (wsgiref) add their own headers to the list they are given.
    start_response(response.status_line, list(response.header_pairs))
    return [response.body]
