"""The FastAPI app (`apps.fastapi_app.asgi:app`), async def path operations.

Bodies, parsing and the ``/io`` wait are apps/raw's (one aiohttp session per event loop, made at
lifespan startup and closed at shutdown), so only the framework differs from the raw ASGI app:
FastAPI's routing, dependency resolution and Starlette underneath. Parameters are parsed from
the raw query string by apps/raw/common.py, not declared as typed ``Query`` parameters: those
answer 422 with a JSON body and take the last of repeated values, where the contract says 400
and the first. The OpenAPI schema and docs routes are off, as in a production API.

The database routes use the raw ASGI app's psycopg ``AsyncConnectionPool`` (one per event loop
and process, opened at lifespan startup, closed at shutdown) and render ``/fortunes`` with
Jinja2 (autoescape on), the template compiled once at import.

``/cpu?offload=thread`` runs the work with ``run_in_threadpool``, which is how FastAPI runs a
``def`` path operation; ``offload=process`` in the raw app's per-worker process pool (started
and shut down in the lifespan). The long-lived routes are the Starlette app's functions (a
StreamingResponse, ``request.stream()``), and ``/background`` adds its work to FastAPI's
``BackgroundTasks``, run after the response is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request, Response
from jinja2 import Environment
from starlette.exceptions import HTTPException

from apps import dbcontract
from apps.raw import asgi as raw_asgi
from apps.raw import common, offload
from apps.starlette_app.asgi import (
    answer,
    background_counters,
    background_work,
    cpu_answer,
    method_not_allowed,
    query,
    stream_answer,
    upload_answer,
    ws_broadcast,
    ws_echo,
)

FORTUNES_SOURCE = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>"
    "{% endfor %}</table></body></html>")
FORTUNES = Environment(autoescape=True).from_string(FORTUNES_SOURCE)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raw_asgi._upstream_session()
    await offload.start_at_startup()
    await raw_asgi._open_database_at_startup("psycopg")
    yield
    await raw_asgi._close_session()
    await raw_asgi._close_pools()
    offload.shutdown()


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
    return await cpu_answer(request)


@app.get(common.STREAM_PATH)
async def stream(request: Request) -> Response:
    return stream_answer(request)


@app.post(common.UPLOAD_PATH)
async def upload(request: Request) -> Response:
    # No body parameter is declared, so FastAPI leaves the body unread for request.stream().
    return await upload_answer(request)


@app.get(common.BACKGROUND_PATH)
async def background(request: Request, tasks: BackgroundTasks) -> Response:
    parsed = common.parse_background(query(request))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    tasks.add_task(background_work, parsed.ms)  # FastAPI attaches them to the response
    return answer(parsed.response)


@app.get(common.BACKGROUND_STATS_PATH)
async def background_stats() -> Response:
    return answer(background_counters.response())


def _fortunes_page(rows: Sequence[tuple[Any, ...]]) -> common.Response:
    page = FORTUNES.render(fortunes=dbcontract.sorted_fortunes(rows))
    return common.Response(status=200, content_type=dbcontract.TEXT_HTML, body=page.encode())


async def _db_route(request: Request) -> Response:
    parsed = dbcontract.parse_db("GET", request.scope["path"], query(request))
    if parsed is None:  # pragma: no cover - only the database routes come here
        return answer(common.NOT_FOUND)
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw ASGI app's database call, always psycopg (HARNESS_DB_DRIVER is raw's choice).
    return answer(await raw_asgi._db_answer(parsed, _fortunes_page, driver="psycopg"))


@app.get("/db")
async def db(request: Request) -> Response:
    return await _db_route(request)


@app.get("/queries")
async def queries(request: Request) -> Response:
    return await _db_route(request)


@app.get("/fortunes")
async def fortunes(request: Request) -> Response:
    return await _db_route(request)


@app.get("/db/sleep")
async def db_sleep(request: Request) -> Response:
    return await _db_route(request)


# FastAPI's WebSocket is Starlette's: the handlers are the Starlette app's, routed by FastAPI.
app.add_api_websocket_route("/ws/echo", ws_echo)
app.add_api_websocket_route("/ws/broadcast", ws_broadcast)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's JSON errors (``{"detail":"Not Found"}``) replaced by the contract's."""
    if exc.status_code == 405:
        return answer(method_not_allowed(request.scope["path"]))
    return answer(common.NOT_FOUND)
