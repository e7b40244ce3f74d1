"""The long-lived routes Django has: ``/stream`` (StreamingHttpResponse) and ``/upload`` (the
request read as a file, in chunks), for the sync and the async views. ``/background`` is not
served: Django 5.2 has no background-task API (``django.tasks`` arrives in 6.0), so it is the
contract's 404.

Django serves a StreamingHttpResponse's iterator as its gateway needs it: under ASGI a sync
iterator is consumed *whole* (``sync_to_async(list)``, with a warning) before the first byte is
sent, and under WSGI an async one likewise (``async_to_sync``); Django's docs ask for an async
iterator under ASGI. So a sync view gives the iterator of its gateway, and an async view (ASGI
only) an async one.

Django's ASGI handler reads the whole request body (into a SpooledTemporaryFile, on disk above
``FILE_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB) before any view runs, an oversized one too; under WSGI
the view reads ``wsgi.input`` (bounded by the Content-Length) as it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.djangoproj.responses import query_string, to_django
from apps.raw import common


async def _async_events(stream: common.StreamRequest) -> AsyncIterator[bytes]:
    """Each event as it is made: Django's ASGI handler sends each chunk as it is yielded."""
    for i in range(stream.events):
        if i:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(i)


def stream_response(request: HttpRequest, *, asynchronous: bool) -> HttpResponse:
    """``/stream``'s answer; ``asynchronous``: the async iterator (an ASGI server)."""
    parsed = common.parse_stream(query_string(request))
    if isinstance(parsed, common.Response):
        return to_django(parsed)
    events = _async_events(parsed) if asynchronous else common.sync_stream(parsed)
    # No content-length: the server frames the body.
    return StreamingHttpResponse(events, headers=dict(common.STREAM_HEADERS))


def served_by_asgi(request: HttpRequest) -> bool:
    return isinstance(request, ASGIRequest)


def upload_response(request: HttpRequest) -> HttpResponse:
    """``POST /upload``: the body hashed a chunk at a time, never held whole by the view."""
    length = common.upload_length(request.META.get("CONTENT_LENGTH"),
                                  request.META.get("HTTP_TRANSFER_ENCODING"))
    if isinstance(length, common.Response):
        return to_django(length)  # the body is left unread (read already under ASGI)
    # a client gone mid-body: Django's UnreadablePostError is an OSError
    return to_django(common.read_upload(request.read, length))
