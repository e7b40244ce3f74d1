"""The Starlette app (`apps.starlette_app.asgi:app`).

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made at
lifespan startup and closed at shutdown), so only the framework differs from the raw ASGI app:
Starlette's routing, middleware stack, Request and Response. ``/ws/echo`` and
``/ws/broadcast`` are WebSocketRoutes.

``/cpu?offload=thread`` runs the work with ``run_in_threadpool`` (how Starlette runs a sync
endpoint: anyio's worker threads), ``offload=process`` in the raw app's per-worker process pool
(apps/raw/offload.py, started and shut down in the lifespan). The long-lived routes are
Starlette's own idioms: ``/stream`` a StreamingResponse of an async generator, ``/upload``
hashes ``request.stream()`` chunk by chunk, ``/background`` a BackgroundTask that runs after
the response is sent. FastAPI serves the same functions.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from apps import fanout
from apps.raw import asgi as raw_asgi
from apps.raw import common, offload


def answer(response: common.Response, background: BackgroundTask | None = None) -> Response:
    # Given both contract headers, Starlette adds neither of its own (it would put
    # content-length before content-type).
    return Response(response.body, status_code=response.status,
                    headers=dict(response.header_pairs), background=background)


def query(request: Request) -> str:
    # The contract's parsing is common's (first value counts, ASCII digits only).
    return request.scope["query_string"].decode("latin-1")  # type: ignore[no-any-return]


async def hello(request: Request) -> Response:
    # A GET route also takes HEAD in Starlette; the contract serves GET only.
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.HELLO)


async def json(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.JSON)


async def io(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_io(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw ASGI app's wait: one aiohttp session per event loop, or asyncio.sleep.
    return answer(await raw_asgi._wait(parsed))


async def in_threadpool(n: int) -> int:
    """``/cpu``'s work the way Starlette runs a sync endpoint: anyio's worker threads."""
    return await run_in_threadpool(common.cpu_work, n)


async def cpu_answer(request: Request) -> Response:
    """Inline on the event loop, as the raw ASGI app does, unless ``offload`` says otherwise."""
    parsed = common.parse_cpu_request(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    return answer(await offload.cpu_answer(parsed, in_thread=in_threadpool))


async def cpu(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return await cpu_answer(request)


# The long-lived routes (shared with FastAPI).

background_counters = common.BackgroundCounters()


async def _events(stream: common.StreamRequest) -> AsyncIterator[bytes]:
    """Each event as it is made: StreamingResponse sends each chunk as it is yielded, so the
    wait runs between two sends."""
    for i in range(stream.events):
        if i:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(i)


def stream_answer(request: Request) -> Response:
    parsed = common.parse_stream(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # No content-length: the server frames the body.
    return StreamingResponse(_events(parsed), headers=dict(common.STREAM_HEADERS))


async def upload_answer(request: Request) -> Response:
    """The body hashed as it arrives (``request.stream()``), never held whole."""
    length = common.upload_length(request.headers.get("content-length"),
                                  request.headers.get("transfer-encoding"))
    if isinstance(length, common.Response):
        return answer(length)  # the body is left unread: the server discards it or closes
    digest = hashlib.sha256()
    got = 0
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            got += len(chunk)
    except ClientDisconnect:
        pass  # the client left: the 400 below goes nowhere, as the raw app's silence
    if got < length:
        return answer(common.upload_truncated(got, length))
    return answer(common.upload_response(got, digest.hexdigest()))


async def background_work(ms: int) -> None:
    """``ms`` of waiting work, run by Starlette after the response is sent; a cancelled task
    (the server stopping) does not count as finished."""
    background_counters.start()
    await asyncio.sleep(ms / 1000)
    background_counters.finish()


async def stream(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return stream_answer(request)


async def upload(request: Request) -> Response:
    return await upload_answer(request)


async def background(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_background(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    return answer(parsed.response, background=BackgroundTask(background_work, parsed.ms))


async def background_stats(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(background_counters.response())


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message.get("bytes") or b"")


_subscribers: fanout.Subscribers[WebSocket] = fanout.Subscribers()


async def ws_broadcast(websocket: WebSocket) -> None:
    """``/ws/broadcast?role=subscriber|publisher``: fan-out inside this worker process."""
    role = fanout.role(websocket.scope["query_string"].decode("latin-1"))
    if role is None:
        await websocket.close(code=1000)  # before accepting: the handshake is refused (403)
        return
    await websocket.accept()
    subscribers = _subscribers.local()
    if role == fanout.ROLE_SUBSCRIBER:
        subscribers[id(websocket)] = websocket
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if role == fanout.ROLE_PUBLISHER and message["type"] == "websocket.receive":
                outgoing = ({"type": "websocket.send", "text": message["text"]}
                            if message.get("text") is not None else
                            {"type": "websocket.send", "bytes": message.get("bytes") or b""})

                async def send(subscriber: WebSocket, outgoing: Message = outgoing) -> None:
                    await subscriber.send(outgoing)
                await _subscribers.publish(send)
    finally:
        subscribers.pop(id(websocket), None)


def method_not_allowed(path: str) -> common.Response:
    """The contract's 405: ``allow: POST`` on the one POST route, ``allow: GET`` elsewhere."""
    if path == common.UPLOAD_PATH:
        return common.METHOD_NOT_ALLOWED_POST
    return common.METHOD_NOT_ALLOWED


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's plain-text errors replaced by the contract's (its 405 says ``allow: GET,
    HEAD``)."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return answer(method_not_allowed(request.scope["path"]))
    return answer(common.NOT_FOUND)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    raw_asgi._upstream_session()
    await offload.start_at_startup()
    yield
    await raw_asgi._close_session()
    offload.shutdown()


app = Starlette(
    routes=[Route("/hello", hello), Route("/json", json), Route("/io", io), Route("/cpu", cpu),
            Route(common.STREAM_PATH, stream),
            Route(common.UPLOAD_PATH, upload, methods=["POST"]),
            Route(common.BACKGROUND_PATH, background),
            Route(common.BACKGROUND_STATS_PATH, background_stats),
            WebSocketRoute("/ws/echo", ws_echo),
            WebSocketRoute("/ws/broadcast", ws_broadcast)],
    exception_handlers={404: http_error, 405: http_error},
    lifespan=lifespan,
)
# "/hello/" is a 404 in the contract, not Starlette's 307 to "/hello".
app.router.redirect_slashes = False
