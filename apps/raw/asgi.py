"""The raw ASGI 3 app (`apps.raw.asgi:app`): the contract of apps/README.md, no framework.

``/io`` calls the upstream delay service through one aiohttp ClientSession per event loop. The
session is made at lifespan startup when the server sends lifespan, and otherwise on first use
(daphne sends no lifespan); it is closed at lifespan shutdown. Sessions are keyed by loop and
process id because a session is bound to the loop it was made on, and a server may run lifespan
and requests on different loops or fork after import.

``/ws/broadcast`` keeps its subscribers the same way, per event loop and process: a publisher's
message goes to the subscribers of its own worker process only (apps/README.md).

The database routes (``/db``, ``/queries``, ``/fortunes``, ``/db/sleep``, apps/dbcontract.py)
use one pool per event loop and process, kept the same way: psycopg 3's
``AsyncConnectionPool`` (the default), or asyncpg's pool when ``HARNESS_DB_DRIVER=asyncpg``
(family ``raw-asyncpg``). It is opened at lifespan startup when a database URL is set (a
database that cannot be reached then does not stop the server: the routes answer 502 and the
next request tries again), otherwise on first use, and closed at lifespan shutdown.

The long-lived routes: ``/stream`` sends one ``http.response.body`` with ``more_body=True`` per
event, waiting between them while it watches ``receive()`` for ``http.disconnect`` (a client
that leaves ends the stream, as Starlette's StreamingResponse does), then a final empty body;
``/upload`` hashes each ``http.request`` message as it arrives; ``/background`` sends its whole
response, then does the work in the same handler, as Starlette's BackgroundTasks do.

``/cpu`` runs its work where ``offload`` (or ``HARNESS_CPU_OFFLOAD``) says: on the loop, on
its default thread pool, or in a per-worker process pool made at lifespan startup or on first
use and shut down at lifespan shutdown (apps/raw/offload.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import psycopg
from psycopg_pool import AsyncConnectionPool

from apps import dbcontract
from apps.raw import common, offload, tasklog

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WS_PATH = "/ws/echo"
WS_BROADCAST_PATH = "/ws/broadcast"

# (pid, id(loop)) -> (loop, session); the loop is kept so its id cannot be reused while listed.
_sessions: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = {}
# /ws/broadcast: (pid, id(loop)) -> (loop, {id(send): send}) of the subscribers connected to this
# worker process's event loop. A broadcast reaches no other process: that would need a broker.
_subscribers: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, dict[int, Send]]] = {}

DbDriver = Literal["psycopg", "asyncpg"]
DB_DRIVERS: tuple[DbDriver, ...] = ("psycopg", "asyncpg")
Row = dbcontract.Row
_PsycopgPool = AsyncConnectionPool[psycopg.AsyncConnection[Row]]
FortunesRenderer = dbcontract.FortunesRenderer
# (pid, id(loop), driver) -> (loop, the task opening the pool: AsyncConnectionPool or
# asyncpg.Pool). Concurrent first requests share the one task instead of opening a pool each.
_db_pools: dict[tuple[int, int, DbDriver],
                tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}
# What a failed database call raises (psycopg.Error covers the pool's PoolTimeout).
_DB_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.Error, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    OSError, TimeoutError, LookupError)

_log = logging.getLogger(__name__)


def _session_key() -> tuple[int, int]:
    return os.getpid(), id(asyncio.get_running_loop())


def _upstream_session() -> aiohttp.ClientSession:
    key = _session_key()
    entry = _sessions.get(key)
    if entry is None:
        # limit=0: one connection per request in flight, like the sync app's pool, so requests
        # never queue inside the client instead of inside the server under test.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                        cookie_jar=aiohttp.DummyCookieJar())
        entry = (asyncio.get_running_loop(), session)
        _sessions[key] = entry
    return entry[1]


async def _close_session() -> None:
    entry = _sessions.pop(_session_key(), None)
    if entry is not None:
        await entry[1].close()


async def _call_upstream(ms: int) -> common.Response | None:
    """None when the upstream answered 200 after its delay; otherwise the 502 to send."""
    base_url = common.upstream_base_url()
    if base_url is None:
        return common.upstream_not_configured()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=common.UPSTREAM_CONNECT_TIMEOUT_S,
                                    sock_read=common.upstream_timeout_s(ms))
    try:
        async with _upstream_session().get(common.upstream_delay_url(base_url, ms),
                                           timeout=timeout) as upstream:
            await upstream.read()
            status = upstream.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return common.upstream_unreachable(base_url)
    if status != 200:
        return common.upstream_bad_status(base_url, status)
    return None


async def _wait(io: common.IoRequest) -> common.Response:
    if io.mode == "sleep":
        await asyncio.sleep(io.ms / 1000)
    else:
        failure = await _call_upstream(io.ms)
        if failure is not None:
            return failure
    return common.io_ok(io)


def _db_driver() -> DbDriver:
    """``HARNESS_DB_DRIVER``: psycopg (unset or empty) or asyncpg; anything else is refused
    (a typo would otherwise measure the other driver under the wrong name)."""
    name = os.environ.get(dbcontract.DB_DRIVER_ENV, "").strip() or "psycopg"
    for driver in DB_DRIVERS:
        if name == driver:
            return driver
    raise ValueError(f"{dbcontract.DB_DRIVER_ENV}={name!r}: expected one of {DB_DRIVERS}")


async def _open_pool(url: str, driver: DbDriver) -> Any:
    size = dbcontract.pool_size()
    if driver == "asyncpg":
        # Connects min_size connections before returning: fails here if the database is down.
        return await asyncpg.create_pool(url, min_size=size, max_size=size)
    # open() starts the pool's connecting in the background; a request waits for a free
    # connection up to psycopg_pool's timeout (30 s), then fails with PoolTimeout.
    pool: _PsycopgPool = AsyncConnectionPool(url, min_size=size, max_size=size, open=False)
    await pool.open()
    return pool


def _pool_task(url: str, driver: DbDriver) -> asyncio.Task[Any]:
    key = (*_session_key(), driver)
    entry = _db_pools.get(key)
    if entry is not None:
        task = entry[1]
        if not task.done() or (not task.cancelled() and task.exception() is None):
            return task
    # None yet, or the last attempt failed: the next request tries again.
    loop = asyncio.get_running_loop()
    task = loop.create_task(_open_pool(url, driver))
    _db_pools[key] = (loop, task)
    return task


async def _database_pool(url: str, driver: DbDriver) -> Any:
    """This process's and event loop's pool for ``driver``, opened on first use."""
    task = _pool_task(url, driver)
    if task.done():
        return task.result()
    # shield: a request cancelled while the pool opens must not cancel the opening for all.
    return await asyncio.shield(task)


async def _close_pools() -> None:
    pid, loop_id = _session_key()
    for key in [key for key in _db_pools if key[:2] == (pid, loop_id)]:
        task = _db_pools.pop(key)[1]
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is None:
            await task.result().close()


async def _fetch_psycopg(pool: _PsycopgPool, db: dbcontract.DbRequest) -> list[Row]:
    # The pool's context commits the (read-only) transaction and gives the connection back.
    async with pool.connection() as conn:
        if db.kind == "fortunes":
            return await (await conn.execute(dbcontract.SELECT_FORTUNES)).fetchall()
        if db.kind == "sleep":
            await conn.execute(dbcontract.SELECT_SLEEP, (db.ms / 1000,))
            return []
        # One SELECT per row, one after another (TechEmpower's multiple queries).
        rows = []
        for world_id in dbcontract.random_ids(db.n):
            cursor = await conn.execute(dbcontract.SELECT_WORLD, (world_id,))
            rows.append(dbcontract.one_row(await cursor.fetchone()))
        return rows


async def _fetch_asyncpg(pool: Any, db: dbcontract.DbRequest) -> list[Row]:
    async with pool.acquire() as conn:
        if db.kind == "fortunes":
            return [tuple(record) for record in await conn.fetch(dbcontract.SELECT_FORTUNES)]
        if db.kind == "sleep":
            await conn.execute(dbcontract.SELECT_SLEEP_ASYNCPG, db.ms / 1000)
            return []
        return [tuple(dbcontract.one_row(
                    await conn.fetchrow(dbcontract.SELECT_WORLD_ASYNCPG, world_id)))
                for world_id in dbcontract.random_ids(db.n)]


async def _db_answer(db: dbcontract.DbRequest,
                     render_fortunes: FortunesRenderer = dbcontract.fortunes_response,
                     driver: DbDriver | None = None) -> common.Response:
    """A database request's answer; ``render_fortunes`` turns the fortune rows into the page
    (a framework passes its template engine); ``driver`` defaults to ``HARNESS_DB_DRIVER``."""
    url = dbcontract.db_url()
    if url is None:
        return dbcontract.db_not_configured()
    driver = driver or _db_driver()
    try:
        pool = await _database_pool(url, driver)
        if driver == "asyncpg":
            rows = await _fetch_asyncpg(pool, db)
        else:
            rows = await _fetch_psycopg(pool, db)
    except _DB_ERRORS as exc:
        return dbcontract.db_failed(exc)
    return dbcontract.respond(db, rows, render_fortunes)


async def _db_route(method: str, path: str, query_string: str) -> common.Response | None:
    """A database route's answer, or None when ``path`` is not one."""
    db = dbcontract.parse_db(method, path, query_string)
    return await _db_answer(db) if isinstance(db, dbcontract.DbRequest) else db


async def _open_database_at_startup(driver: DbDriver | None = None) -> None:
    """Open the pool before the first request when a database URL is set; a failure is logged
    and left to the routes (502, and the next request tries again)."""
    url = dbcontract.db_url()
    if url is None:
        return
    driver = driver or _db_driver()
    try:
        await _database_pool(url, driver)
    except _DB_ERRORS as exc:
        _log.warning("database pool not opened at startup (%s): %r", driver, exc)


_background = common.BackgroundCounters()
_STREAM_RAW_HEADERS = [(name.encode("latin-1"), value.encode("latin-1"))
                       for name, value in common.STREAM_HEADERS]


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower-case, as ASGI gives names)."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _until_disconnect(receive: Receive) -> None:
    """Returns when the client has gone (``http.disconnect``); the request's body messages
    before it are read and dropped (a GET has one, empty)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stream(stream: common.StreamRequest, receive: Receive, send: Send) -> None:
    """The events, each sent as made, until the last or the client's leaving; the end, and the
    events handed to the server by then, go to the task log (apps/raw/tasklog.py)."""
    gone = asyncio.ensure_future(_until_disconnect(receive))
    sent = 0
    how = tasklog.STREAM_GONE
    try:
        await send({"type": "http.response.start", "status": 200,
                    "headers": list(_STREAM_RAW_HEADERS)})
        for i in range(stream.events):
            if i and stream.interval_ms:
                # The wait, cut short when the client leaves (asyncio.wait never cancels it).
                await asyncio.wait((gone,), timeout=stream.interval_s)
            if gone.done():
                return  # no one to send the rest to
            sent += 1  # counted when handed over: the send may fail
            await send({"type": "http.response.body", "body": stream.event(i),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        how = tasklog.STREAM_DONE
    except OSError:  # the spec's error for a send on a closed connection: the client left
        return
    except asyncio.CancelledError:  # the server cancelled the handler: it let the stream go
        raise
    except BaseException:
        how = tasklog.STREAM_ERROR
        raise
    finally:
        gone.cancel()
        tasklog.TASK_LOG.stream_ended(stream.stream_id, sent, stream.events, how)


async def _upload(scope: Scope, receive: Receive) -> common.Response | None:
    """The upload's answer, or None when the client left before the body's end."""
    length = common.upload_length(_header(scope, b"content-length"),
                                  _header(scope, b"transfer-encoding"))
    if isinstance(length, common.Response):
        return length  # the body is left unread: the server discards it or closes
    digest = hashlib.sha256()
    got = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        digest.update(chunk)
        got += len(chunk)
        if not message.get("more_body", False):
            break
    if got < length:
        return common.upload_truncated(got, length)
    return common.upload_response(got, digest.hexdigest())


async def _respond(send: Send, response: common.Response) -> None:
    await send({"type": "http.response.start", "status": response.status,
                "headers": list(response.raw_headers)})
    await send({"type": "http.response.body", "body": response.body})


async def _background_work(ms: int) -> None:
    """``ms`` of waiting work after the response, in the handler that sent it (as Starlette's
    BackgroundTasks); a cancelled handler (the server stopping) does not count it finished."""
    _background.start()
    await asyncio.sleep(ms / 1000)
    _background.finish()


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["method"]
    path = scope["path"]
    query_string = scope.get("query_string", b"").decode("latin-1")
    answer = common.route(method, path, query_string)
    if isinstance(answer, common.StreamRequest):
        await _stream(answer, receive, send)
        return
    if isinstance(answer, common.BackgroundRequest):
        await _respond(send, answer.response)
        await _background_work(answer.ms)
        return
    if isinstance(answer, common.IoRequest):
        response = await _wait(answer)
    elif isinstance(answer, common.CpuRequest):
        response = await offload.cpu_answer(answer)
    elif isinstance(answer, common.UploadRequest):
        uploaded = await _upload(scope, receive)
        if uploaded is None:
            return
        response = uploaded
    elif isinstance(answer, common.StatsRequest):
        response = _background.response()
    elif answer is common.NOT_FOUND:  # not one of common's routes: maybe a database route
        response = await _db_route(method, path, query_string) or answer
    else:
        response = answer
    await _respond(send, response)


def _local_subscribers() -> dict[int, Send]:
    key = _session_key()
    entry = _subscribers.get(key)
    if entry is None:
        entry = (asyncio.get_running_loop(), {})
        _subscribers[key] = entry
    return entry[1]


def _outgoing(message: Message) -> Message:
    """The websocket.send carrying a received message's payload unchanged (text or bytes)."""
    if message.get("text") is not None:
        return {"type": "websocket.send", "text": message["text"]}
    return {"type": "websocket.send", "bytes": message.get("bytes") or b""}


async def _ws_echo(receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message["type"] == "websocket.receive":
            await send(_outgoing(message))


async def _ws_subscriber(receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    subscribers = _local_subscribers()
    subscribers[id(send)] = send  # registered from the accept on, before any await
    try:
        while True:  # what a subscriber sends is read and ignored
            if (await receive())["type"] == "websocket.disconnect":
                return
    finally:
        subscribers.pop(id(send), None)


async def _ws_publisher(receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    subscribers = _local_subscribers()
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message["type"] != "websocket.receive":
            continue
        outgoing = _outgoing(message)
        # One after another, in the order they subscribed, from this handler: a subscriber
        # whose connection pushes back (flow control) delays the rest, as in a plain app.
        for key, subscriber in list(subscribers.items()):
            try:
                await subscriber(outgoing)
            except Exception:  # the subscriber went away mid-send; servers differ in what
                subscribers.pop(key, None)  # they raise, and the others must still be served


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    path = scope["path"]
    if path == WS_PATH:
        await _ws_echo(receive, send)
        return
    role = None
    if path == WS_BROADCAST_PATH:
        role = common.query_param(scope.get("query_string", b"").decode("latin-1"), "role")
    if role == "subscriber":
        await _ws_subscriber(receive, send)
    elif role == "publisher":
        await _ws_publisher(receive, send)
    else:
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1000})


async def _lifespan(receive: Receive, send: Send, *, database: bool = True) -> None:
    """Startup makes the aiohttp session, the process pool when ``/cpu`` offloads to a process
    by default, and, with ``database``, opens the database pool (off for an app that brings its
    own, as Django, whose router sends lifespan here); shutdown closes them."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                _upstream_session()
                await offload.start_at_startup()
                if database:
                    await _open_database_at_startup()
            except Exception as exc:  # the server reports the reason and does not start
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _close_session()
            await _close_pools()
            offload.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
    else:
        raise ValueError(f"unsupported ASGI scope type {kind!r}")
