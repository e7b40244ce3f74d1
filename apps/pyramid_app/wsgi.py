"""The Pyramid app (`apps.pyramid_app.wsgi:app`), configured as TechEmpower's Pyramid entry:
no debug or reload settings, no tweens beyond Pyramid's own, and a fast JSON renderer (orjson)
for ``/json``.

Bodies, parsing and the ``/io`` wait are apps/raw's, so only the framework differs from the raw
WSGI app: WebOb's request and response, Pyramid's routing, view lookup and renderer.

``/cpu`` runs inline whatever ``offload`` says (a sync worker has no event loop to keep free;
the parameter is still checked). The long-lived routes use what WebOb gives: ``/stream`` a
Response whose ``app_iter`` is a generator, ``/upload`` reads ``request.body_file`` (bounded by
the Content-Length) in chunks, and ``/background`` returns an ``app_iter`` whose ``close()``,
which the server calls once the body is sent, does the work (Pyramid has no background-task
API; its finished callbacks run before the body is sent).
"""

from __future__ import annotations

import warnings
from typing import Any

import orjson

# Pyramid 2.1 still imports pkg_resources (hence setuptools < 82), which warns at import: one
# line in every worker's log that says nothing about the app.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from pyramid.config import Configurator  # noqa: E402
from pyramid.renderers import JSON  # noqa: E402
from pyramid.request import Request  # noqa: E402
from webob import Response  # noqa: E402

from apps.raw import common  # noqa: E402
from apps.raw import wsgi as raw_wsgi  # noqa: E402

SETTINGS = {
    "pyramid.reload_templates": False,
    "pyramid.reload_assets": False,
    "pyramid.debug_authorization": False,
    "pyramid.debug_notfound": False,
    "pyramid.debug_routematch": False,
    "pyramid.prevent_http_cache": False,
    "pyramid.default_locale_name": "en",
}


def answer(response: common.Response) -> Response:
    # An app_iter and a header list given as they are: setting ``body`` would make WebOb append
    # its own Content-Length after ours.
    return Response(app_iter=[response.body], status=response.status_line,
                    headerlist=list(response.header_pairs))


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


def hello(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.HELLO)


def json(request: Request) -> Response | dict[str, str]:
    """Rendered by the ``json`` renderer (orjson): the same 27 bytes, as TechEmpower does it.
    WebOb spells the header names ``Content-Type``, ``Content-Length`` (HTTP names are
    case-insensitive; the values and order are the contract's)."""
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return {"message": "Hello, World!"}


def io(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_io(request.query_string)
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw WSGI app's wait: the per-process urllib3 pool, or time.sleep.
    return answer(raw_wsgi._wait(parsed))


def cpu(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    # Inline whatever ``offload`` says (the parameter is still checked).
    return answer(common.cpu_response(request.query_string))


_background = common.BackgroundCounters()




def stream(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_stream(request.query_string)
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # No content-length: the server frames the body.
    return Response(app_iter=common.sync_stream(parsed), status="200 OK",
                    headerlist=list(common.STREAM_HEADERS))


def upload(request: Request) -> Response:
    if request.method != "POST":
        return answer(common.METHOD_NOT_ALLOWED_POST)
    length = common.upload_length(request.headers.get("Content-Length"),
                                  request.headers.get("Transfer-Encoding"))
    if isinstance(length, common.Response):
        return answer(length)  # the body is left unread: the server drains it or closes
    # a client gone mid-body: WebOb's DisconnectionError is an OSError
    return answer(common.read_upload(request.body_file.read, length))


def background(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_background(request.query_string)
    if isinstance(parsed, common.Response):
        return answer(parsed)
    response = parsed.response
    work = raw_wsgi.WorkAfterResponse(response.body, parsed.ms, _background)
    return Response(app_iter=work, status=response.status_line,
                    headerlist=list(response.header_pairs))


def background_stats(request: Request) -> Response:
    if request.method != "GET":
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(_background.response())


def not_found(request: Request) -> Response:
    return answer(common.NOT_FOUND)


def make_app() -> Any:
    # Views take no request_method predicate: a predicate that does not match makes Pyramid
    # answer 404, where the contract says 405.
    with Configurator(settings=SETTINGS) as config:
        config.add_renderer("json", JSON(serializer=_dumps))
        for name, path, view in (
                ("hello", "/hello", hello), ("json", "/json", json), ("io", "/io", io),
                ("cpu", "/cpu", cpu), ("stream", common.STREAM_PATH, stream),
                ("upload", common.UPLOAD_PATH, upload),
                ("background", common.BACKGROUND_PATH, background),
                ("background_stats", common.BACKGROUND_STATS_PATH, background_stats)):
            config.add_route(name, path)
            config.add_view(view, route_name=name, renderer="json" if name == "json" else None)
        config.add_notfound_view(not_found)
        return config.make_wsgi_app()


app = make_app()
