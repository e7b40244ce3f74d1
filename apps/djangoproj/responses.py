"""The contract's answers as Django responses, shared by the sync and the async views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from apps.raw import common


def to_django(answer: common.Response) -> HttpResponse:
    # Headers passed in the contract's order and spelling; Django adds none of its own when no
    # middleware runs.
    return HttpResponse(answer.body, status=answer.status, headers=dict(answer.header_pairs))


METHOD_NOT_ALLOWED = common.METHOD_NOT_ALLOWED
METHOD_NOT_ALLOWED_POST = common.METHOD_NOT_ALLOWED_POST
NOT_FOUND = common.NOT_FOUND

SyncView = Callable[[HttpRequest], HttpResponse]
AsyncView = Callable[[HttpRequest], Awaitable[HttpResponse]]


def get_only(view: SyncView) -> SyncView:
    """405 with the contract's body for any method but GET (``require_GET`` answers an empty
    body, and lets HEAD through nowhere but here)."""
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return to_django(METHOD_NOT_ALLOWED)
        return view(request)
    return wrapper


def async_get_only(view: AsyncView) -> AsyncView:
    @wraps(view)
    async def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return to_django(METHOD_NOT_ALLOWED)
        return await view(request)
    return wrapper


def post_only(view: SyncView) -> SyncView:
    """405 with ``allow: POST`` for any method but POST (``/upload``, the one POST route)."""
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return to_django(METHOD_NOT_ALLOWED_POST)
        return view(request)
    return wrapper


def async_post_only(view: AsyncView) -> AsyncView:
    @wraps(view)
    async def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return to_django(METHOD_NOT_ALLOWED_POST)
        return await view(request)
    return wrapper


def query_string(request: HttpRequest) -> str:
    """The raw query string: the contract's parsing (first value counts, ASCII digits only) is
    common's, not QueryDict's."""
    return str(request.META.get("QUERY_STRING", ""))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: the contract's plain-text 404 instead of Django's HTML page."""
    return to_django(NOT_FOUND)
