"""Sync views: served from wsgi.py directly, and from asgi.py through sync_to_async.

``/cpu`` runs inline whatever ``offload`` says (checked all the same): a sync view has no event
loop to keep free, and under ASGI it already runs in a thread of its own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps import dbcontract
from apps.djangoproj import database, longlived
from apps.djangoproj.db.models import Fortune, World
from apps.djangoproj.responses import get_only, post_only, query_string, to_django
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


@get_only
def stream(request: HttpRequest) -> HttpResponse:
    # An async iterator from asgi.py: Django would consume a sync one whole before sending it.
    return longlived.stream_response(request, asynchronous=longlived.served_by_asgi(request))


@post_only
def upload(request: HttpRequest) -> HttpResponse:
    return longlived.upload_response(request)


# The database routes: the ORM on the pool of settings.DATABASES (see settings.py).

def _db_view(request: HttpRequest,
             fetch: Callable[[dbcontract.DbRequest], common.Response]) -> HttpResponse:
    parsed = database.parse(request)
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    if dbcontract.db_url() is None:
        return to_django(dbcontract.db_not_configured())
    try:
        return to_django(fetch(parsed))
    except database.DB_ERRORS as exc:
        return to_django(dbcontract.db_failed(exc))


def _world(world_id: int) -> tuple[int, int]:
    world = World.objects.get(id=world_id)
    return world.id, world.randomnumber


def _one_world(parsed: dbcontract.DbRequest) -> common.Response:
    return dbcontract.db_response(_world(dbcontract.random_id()))


def _worlds(parsed: dbcontract.DbRequest) -> common.Response:
    # One query per row (TechEmpower's multiple queries), not one IN query.
    return dbcontract.queries_response([_world(i) for i in dbcontract.random_ids(parsed.n)])


def _fortunes(parsed: dbcontract.DbRequest) -> common.Response:
    return database.fortunes_page([(f.id, f.message) for f in Fortune.objects.all()])


def _sleep(parsed: dbcontract.DbRequest) -> common.Response:
    database.sleep_in_db(parsed.ms)
    return dbcontract.sleep_response(parsed.ms)


@get_only
def db(request: HttpRequest) -> HttpResponse:
    return _db_view(request, _one_world)


@get_only
def queries(request: HttpRequest) -> HttpResponse:
    return _db_view(request, _worlds)


@get_only
def fortunes(request: HttpRequest) -> HttpResponse:
    return _db_view(request, _fortunes)


@get_only
def db_sleep(request: HttpRequest) -> HttpResponse:
    return _db_view(request, _sleep)
