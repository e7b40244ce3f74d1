"""What the sync and the async database views share: parsing, errors, the fortunes page and
the wait inside the database."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ObjectDoesNotExist
from django.db import Error, connection
from django.http import HttpRequest
from django.template.loader import render_to_string

from apps import dbcontract
from apps.djangoproj.responses import query_string
from apps.raw import common

# What a failed ORM call raises: Django's wrappers of the driver's errors (the pool's
# PoolTimeout arrives as django.db.OperationalError), or a world row that is not there.
DB_ERRORS: tuple[type[BaseException], ...] = (Error, ObjectDoesNotExist)

FORTUNES_TEMPLATE = "fortunes.html"


def parse(request: HttpRequest) -> dbcontract.DbRequest | common.Response:
    """The contract's parsing of a database route (the views are GET-only already)."""
    parsed = dbcontract.parse_db("GET", request.path_info, query_string(request))
    if parsed is None:  # pragma: no cover - the URLconf routes only the contract's paths here
        return common.NOT_FOUND
    return parsed


def fortunes_page(rows: Iterable[tuple[int, str]]) -> common.Response:
    """The fortunes page from Django's template engine (autoescape on): the rows, the run-time
    fortune, sorted by message."""
    page = render_to_string(FORTUNES_TEMPLATE, {"fortunes": dbcontract.sorted_fortunes(rows)})
    return common.Response(status=200, content_type=dbcontract.TEXT_HTML, body=page.encode())


def sleep_in_db(ms: int) -> None:
    """``SELECT pg_sleep(ms / 1000)`` on this request's connection (sync: Django 5.2 has no
    async cursor)."""
    with connection.cursor() as cursor:
        cursor.execute(dbcontract.SELECT_SLEEP, [ms / 1000])
