"""The Starlette app (`apps.starlette_app.asgi:app`).

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made at
lifespan startup and closed at shutdown), so only the framework differs from the raw ASGI app:
Starlette's routing, middleware stack, Request and Response. ``/ws/echo`` and
``/ws/broadcast`` are WebSocketRoutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from apps import fanout
from apps.raw import asgi as raw_asgi
from apps.raw import common


def answer(response: common.Response) -> Response:
    # Given both contract headers, Starlette adds neither of its own (it would put
    # content-length before content-type).
    return Response(response.body, status_code=response.status,
                    headers=dict(response.header_pairs))


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


async def cpu(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    # Computed on the event loop, as the raw ASGI app does (see apps/README.md).
    return answer(common.cpu_response(query(request)))


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


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's plain-text errors replaced by the contract's (its 405 says ``allow: GET,
    HEAD``)."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    raw_asgi._upstream_session()
    yield
    await raw_asgi._close_session()


app = Starlette(
    routes=[Route("/hello", hello), Route("/json", json), Route("/io", io), Route("/cpu", cpu),
            WebSocketRoute("/ws/echo", ws_echo),
            WebSocketRoute("/ws/broadcast", ws_broadcast)],
    exception_handlers={404: http_error, 405: http_error},
    lifespan=lifespan,
)
# "/hello/" is a 404 in the contract, not Starlette's 307 to "/hello".
app.router.redirect_slashes = False
