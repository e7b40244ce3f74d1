"""Sync views: served from wsgi.py directly, and from asgi.py through sync_to_async."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.djangoproj.responses import get_only, query_string, to_django
from apps.raw import common
from apps.raw import wsgi as raw_wsgi


@get_only
def hello(request: HttpRequest) -> HttpResponse:
    return to_django(common.HELLO)


@get_only
def json(request: HttpRequest) -> HttpResponse:
    return to_django(common.JSON)


@get_only
def io(request: HttpRequest) -> HttpResponse:
    parsed = common.parse_io(query_string(request))
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    # The raw WSGI app's wait: the per-process urllib3 pool, or time.sleep.
    return to_django(raw_wsgi._wait(parsed))


@get_only
def cpu(request: HttpRequest) -> HttpResponse:
    return to_django(common.cpu_response(query_string(request)))
