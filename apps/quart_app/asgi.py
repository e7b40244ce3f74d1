"""The Quart app (`apps.quart_app.asgi:app`), route for route the same code as apps/flask_app.

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made
when serving starts and closed when it stops), so only the framework differs from the raw ASGI
app. ``/ws/echo`` and ``/ws/broadcast`` are Quart's own WebSocket routes.

``/cpu?offload=thread`` runs the work through Quart's ``run_sync`` (the loop's default
executor, as Quart runs a sync view), ``offload=process`` in the raw app's per-worker process
pool (made in ``before_serving``, shut down in ``after_serving``). The long-lived routes are
Quart's idioms: ``/stream`` an async generator as the response body (with no response timeout:
Quart's default of 60 s would cut a longer stream), ``/upload`` iterates ``request.body`` (the
chunks Quart's receiving task has buffered), ``/background`` hands its work to
``app.add_background_task``, a task that starts as soon as the view returns.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, Response, request, websocket
from quart.utils import run_sync
from quart.wrappers import Websocket
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from apps import fanout
from apps.raw import asgi as raw_asgi
from apps.raw import common, offload


class ContractResponse(Response):
    # The contract's headers are passed in order and spelling; Werkzeug would otherwise respell
    # content-length as it sets it.
    automatically_set_content_length = False


def answer(response: common.Response) -> ContractResponse:
    return ContractResponse(response.body, status=response.status,
                            headers=Headers(response.header_pairs))


class ContractQuart(Quart):
    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable,
                       send: ASGISendCallable) -> None:
        # The ASGI spec makes a WebSocket scope's "scheme" optional (default "ws") and daphne
        # leaves it out; Quart 0.22 reads scope["scheme"] and answers the handshake with 500.
        if scope["type"] == "websocket" and "scheme" not in scope:
            scope["scheme"] = "ws"
        await super().__call__(scope, receive, send)


app = ContractQuart(__name__)
app.response_class = ContractResponse
app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
# Quart refuses bodies above 16 MiB by default; the contract's limit (413) is 64 MiB.
app.config["MAX_CONTENT_LENGTH"] = common.UPLOAD_MAX_BYTES


@app.before_serving
async def _open_session() -> None:
    raw_asgi._upstream_session()
    await offload.start_at_startup()


@app.after_serving
async def _close_session() -> None:
    await raw_asgi._close_session()
    offload.shutdown()


def _not_get() -> bool:
    # A GET rule also matches HEAD in Werkzeug; the contract serves GET only.
    return request.method != "GET"


@app.get("/hello")
async def hello() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.HELLO)


@app.get("/json")
async def json() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.JSON)


@app.get("/io")
async def io() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_io(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw ASGI app's wait: one aiohttp session per event loop, or asyncio.sleep.
    return answer(await raw_asgi._wait(parsed))


async def _in_executor(n: int) -> int:
    """``/cpu``'s work the way Quart runs a sync view: ``run_sync``, the default executor."""
    result: int = await run_sync(common.cpu_work)(n)
    return result


@app.get("/cpu")
async def cpu() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    # Inline on the event loop, as the raw ASGI app does, unless ``offload`` says otherwise.
    parsed = common.parse_cpu_request(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    return answer(await offload.cpu_answer(parsed, in_thread=_in_executor))


_background = common.BackgroundCounters()


async def _events(stream: common.StreamRequest) -> AsyncIterator[bytes]:
    """Each event as it is made: Quart sends each chunk as it is yielded."""
    for i in range(stream.events):
        if i:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(i)


@app.get(common.STREAM_PATH)
async def stream() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_stream(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # No content-length: the server frames the body.
    response = ContractResponse(_events(parsed), headers=Headers(common.STREAM_HEADERS))
    response.timeout = None  # RESPONSE_TIMEOUT (60 s) would cut a longer stream
    return response


@app.post(common.UPLOAD_PATH)
async def upload() -> ContractResponse:
    length = common.upload_length(request.headers.get("Content-Length"),
                                  request.headers.get("Transfer-Encoding"))
    if isinstance(length, common.Response):
        return answer(length)  # the body is left unread
    digest = hashlib.sha256()
    got = 0
    # A client that leaves mid-body ends the request: Quart cancels this view.
    async for chunk in request.body:
        digest.update(chunk)
        got += len(chunk)
    if got < length:
        return answer(common.upload_truncated(got, length))
    return answer(common.upload_response(got, digest.hexdigest()))


async def _background_work(ms: int) -> None:
    _background.start()
    await asyncio.sleep(ms / 1000)
    _background.finish()  # not counted when the task is cancelled (the server stopping)


@app.get(common.BACKGROUND_PATH)
async def background() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_background(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    app.add_background_task(_background_work, parsed.ms)
    return answer(parsed.response)


@app.get(common.BACKGROUND_STATS_PATH)
async def background_stats() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(_background.response())


@app.websocket("/ws/echo")
async def ws_echo() -> None:
    await websocket.accept()
    while True:
        # str for a text frame, bytes for a binary one: sent back as the same kind.
        await websocket.send(await websocket.receive())


# Quart's ``websocket`` is a context-local proxy; the object behind it is what a publisher's
# handler sends to.
_subscribers: fanout.Subscribers[Websocket] = fanout.Subscribers()


@app.websocket("/ws/broadcast")
async def ws_broadcast() -> None:
    """``/ws/broadcast?role=subscriber|publisher``: fan-out inside this worker process."""
    role = fanout.role(websocket.query_string.decode("latin-1"))
    if role is None:
        await websocket.close(1000)  # before accepting: the handshake is refused (403)
        return
    await websocket.accept()
    me: Websocket = websocket._get_current_object()  # type: ignore[attr-defined]
    subscribers = _subscribers.local()
    if role == fanout.ROLE_SUBSCRIBER:
        subscribers[id(me)] = me
    try:
        while True:
            data = await websocket.receive()
            if role == fanout.ROLE_PUBLISHER:
                async def send(subscriber: Websocket, data: str | bytes = data) -> None:
                    await subscriber.send(data)
                await _subscribers.publish(send)
    finally:
        subscribers.pop(id(me), None)


@app.errorhandler(HTTPException)
async def http_error(error: HTTPException) -> ContractResponse:
    """Werkzeug's HTML error pages replaced by the contract's plain-text answers (a plain GET of
    /ws/echo is Werkzeug's 400 "WebsocketMismatch": the contract says 404)."""
    if error.code == 405:
        return answer(common.METHOD_NOT_ALLOWED_POST if request.path == common.UPLOAD_PATH
                      else common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
