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

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from apps.raw import asgi as raw_asgi
from apps.raw import common
from apps.starlette_app.asgi import answer, query, ws_broadcast, ws_echo


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
    parsed = common.parse_io(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw ASGI app's wait: one aiohttp session per event loop, or asyncio.sleep.
    return answer(await raw_asgi._wait(parsed))


@app.get("/cpu")
async def cpu(request: Request) -> Response:
    # Computed on the event loop, as the raw ASGI app does (see apps/README.md).
    return answer(common.cpu_response(query(request)))


# FastAPI's WebSocket is Starlette's: the handlers are the Starlette app's, routed by FastAPI.
app.add_api_websocket_route("/ws/echo", ws_echo)
app.add_api_websocket_route("/ws/broadcast", ws_broadcast)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's JSON errors (``{"detail":"Not Found"}``) replaced by the contract's."""
    if exc.status_code == 405:
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
