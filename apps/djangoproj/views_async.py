"""Async views (family ``django-async``): run on the server's event loop, no thread hop."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

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
