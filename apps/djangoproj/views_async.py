"""Async views (family ``django-async``): run on the server's event loop, no thread hop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from apps import dbcontract
from apps.djangoproj import database
from apps.djangoproj.db.models import Fortune, World
from apps.djangoproj.responses import async_get_only, query_string, to_django
from apps.raw import asgi as raw_asgi
from apps.raw import common


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


@async_get_only
async def cpu(request: HttpRequest) -> HttpResponse:
    # Computed on the event loop, as the raw ASGI app does (see apps/README.md).
    return to_django(common.cpu_response(query_string(request)))


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
