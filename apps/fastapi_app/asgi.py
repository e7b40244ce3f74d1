"""The FastAPI app (`apps.fastapi_app.asgi:app`), async def path operations.

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made at
lifespan startup and closed at shutdown), so only the framework differs from the raw ASGI app:
FastAPI's routing, dependency resolution and Starlette underneath. Parameters are parsed from
the raw query string by apps/raw/common.py, not declared as typed ``Query`` parameters: those
answer 422 with a JSON body and take the last of repeated values, where the contract says 400
and the first. The OpenAPI schema and docs routes are off, as in a production API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from starlette.exceptions import HTTPException
from starlette.types import Message

from apps import fanout
from apps.raw import asgi as raw_asgi
from apps.raw import common


def answer(response: common.Response) -> Response:
    # Given both contract headers, Starlette adds neither of its own (it would put
    # content-length before content-type).
    return Response(response.body, status_code=response.status,
                    headers=dict(response.header_pairs))


def _query(request: Request) -> str:
    # The contract's parsing is common's (first value counts, ASCII digits only).
    return request.scope["query_string"].decode("latin-1")  # type: ignore[no-any-return]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raw_asgi._upstream_session()
    yield
    await raw_asgi._close_session()


# redirect_slashes off: "/hello/" is a 404 in the contract, not a 307 to "/hello".
app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
              redirect_slashes=False)


@app.get("/hello")
async def hello() -> Response:
    return answer(common.HELLO)


@app.get("/json")
async def json() -> Response:
    return answer(common.JSON)


@app.get("/io")
async def io(request: Request) -> Response:
    parsed = common.parse_io(_query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw ASGI app's wait: one aiohttp session per event loop, or asyncio.sleep.
    return answer(await raw_asgi._wait(parsed))


@app.get("/cpu")
async def cpu(request: Request) -> Response:
    # Computed on the event loop, as the raw ASGI app does (see apps/README.md).
    return answer(common.cpu_response(_query(request)))


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message.get("bytes") or b"")
    except WebSocketDisconnect:
        return


_subscribers: fanout.Subscribers[WebSocket] = fanout.Subscribers()


@app.websocket("/ws/broadcast")
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


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's JSON errors (``{"detail":"Not Found"}``) replaced by the contract's."""
    if exc.status_code == 405:
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
