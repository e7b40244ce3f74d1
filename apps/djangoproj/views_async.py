"""Async views (family ``django-async``): run on the server's event loop, no thread hop.

``/cpu?offload=thread`` runs the work through asgiref's ``sync_to_async(thread_sensitive=False)``
(a thread of its own pool, not the request's), ``offload=process`` in the raw app's per-worker
process pool (asgi.py routes lifespan to the raw app, which starts and stops it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from apps import dbcontract
from apps.djangoproj import database, longlived
from apps.djangoproj.db.models import Fortune, World
from apps.djangoproj.responses import (
    async_get_only,
    async_post_only,
    query_string,
    to_django,
)
from apps.raw import asgi as raw_asgi
from apps.raw import common, offload


@async_get_only
async def hello(request: HttpRequest) -> HttpResponse:
    return to_django(common.HELLO)


@async_get_only
async def json(request: HttpRequest) -> HttpResponse:
    return to_django(common.JSON)


@async_get_only
async def io(request: HttpRequest) -> HttpResponse:
    parsed = common.parse_io(query_string(request))
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    # The raw ASGI app's wait: one aiohttp session per event loop, or asyncio.sleep.
    return to_django(await raw_asgi._wait(parsed))


async def _in_thread(n: int) -> int:
    result: int = await sync_to_async(common.cpu_work, thread_sensitive=False)(n)
    return result


@async_get_only
async def cpu(request: HttpRequest) -> HttpResponse:
    # Inline on the event loop, as the raw ASGI app does, unless ``offload`` says otherwise.
    parsed = common.parse_cpu_request(query_string(request))
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    return to_django(await offload.cpu_answer(parsed, in_thread=_in_thread))


@async_get_only
async def stream(request: HttpRequest) -> HttpResponse:
    return longlived.stream_response(request, asynchronous=True)


@async_post_only
async def upload(request: HttpRequest) -> HttpResponse:
    # Django 5.2 has no async body API; the handler has read the body already (into memory, or
    # a temporary file above 2.5 MB), so these reads do not wait on the network.
    return longlived.upload_response(request)


# The database routes: the ORM's a-methods. Django 5.2's ORM is sync underneath: each aget()
# and each step of an async for runs the sync query through sync_to_async (thread_sensitive),
# in the request's own thread (Django's ASGI handler gives every request a
# ThreadSensitiveContext).

async def _db_view(request: HttpRequest,
                   fetch: Callable[[dbcontract.DbRequest], Awaitable[common.Response]]
                   ) -> HttpResponse:
    parsed = database.parse(request)
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    if dbcontract.db_url() is None:
        return to_django(dbcontract.db_not_configured())
    try:
        return to_django(await fetch(parsed))
    except database.DB_ERRORS as exc:
        return to_django(dbcontract.db_failed(exc))


async def _world(world_id: int) -> tuple[int, int]:
    world = await World.objects.aget(id=world_id)
    return world.id, world.randomnumber


async def _one_world(parsed: dbcontract.DbRequest) -> common.Response:
    return dbcontract.db_response(await _world(dbcontract.random_id()))


async def _worlds(parsed: dbcontract.DbRequest) -> common.Response:
    # One query per row, one after another (TechEmpower's multiple queries).
    return dbcontract.queries_response(
        [await _world(i) for i in dbcontract.random_ids(parsed.n)])


async def _fortunes(parsed: dbcontract.DbRequest) -> common.Response:
    return database.fortunes_page([(f.id, f.message) async for f in Fortune.objects.all()])


async def _sleep(parsed: dbcontract.DbRequest) -> common.Response:
    # No async cursor in Django 5.2: the sync cursor through sync_to_async, as the a-methods do.
    await sync_to_async(database.sleep_in_db)(parsed.ms)
    return dbcontract.sleep_response(parsed.ms)


@async_get_only
async def db(request: HttpRequest) -> HttpResponse:
    return await _db_view(request, _one_world)


@async_get_only
async def queries(request: HttpRequest) -> HttpResponse:
    return await _db_view(request, _worlds)


@async_get_only
async def fortunes(request: HttpRequest) -> HttpResponse:
    return await _db_view(request, _fortunes)


@async_get_only
async def db_sleep(request: HttpRequest) -> HttpResponse:
    return await _db_view(request, _sleep)
