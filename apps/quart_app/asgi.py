"""The Quart app (`apps.quart_app.asgi:app`), route for route the same code as apps/flask_app.

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made
when serving starts and closed when it stops), so only the framework differs from the raw ASGI
app. ``/ws/echo`` and ``/ws/broadcast`` are Quart's own WebSocket routes.
"""

from __future__ import annotations

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, Response, request, websocket
from quart.wrappers import Websocket
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from apps import fanout
from apps.raw import asgi as raw_asgi
from apps.raw import common


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


@app.before_serving
async def _open_session() -> None:
    raw_asgi._upstream_session()


@app.after_serving
async def _close_session() -> None:
    await raw_asgi._close_session()


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


@app.get("/cpu")
async def cpu() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    # Computed on the event loop, as the raw ASGI app does (see apps/README.md).
    return answer(common.cpu_response(request.query_string.decode("latin-1")))


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
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
