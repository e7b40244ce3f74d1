"""The raw ASGI 3 app (`apps.raw.asgi:app`): the contract of apps/README.md, no framework.

``/io`` calls the upstream delay service through one aiohttp ClientSession per event loop. The
session is made at lifespan startup when the server sends lifespan, and otherwise on first use
(daphne sends no lifespan); it is closed at lifespan shutdown. Sessions are keyed by loop and
process id because a session is bound to the loop it was made on, and a server may run lifespan
and requests on different loops or fork after import.

``/ws/broadcast`` keeps its subscribers the same way, per event loop and process: a publisher's
message goes to the subscribers of its own worker process only (apps/README.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

from apps.raw import common

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


async def _http(scope: Scope, send: Send) -> None:
    answer = common.route(scope["method"], scope["path"],
                          scope.get("query_string", b"").decode("latin-1"))
    response = await _wait(answer) if isinstance(answer, common.IoRequest) else answer
    await send({"type": "http.response.start", "status": response.status,
                "headers": list(response.raw_headers)})
    await send({"type": "http.response.body", "body": response.body})


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


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                _upstream_session()
            except Exception as exc:  # the server reports the reason and does not start
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _close_session()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
    else:
        raise ValueError(f"unsupported ASGI scope type {kind!r}")
