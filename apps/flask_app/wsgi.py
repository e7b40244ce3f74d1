"""The Flask app (`apps.flask_app.wsgi:app`), route for route the same code as apps/quart_app.

Bodies, parsing and the ``/io`` wait are apps/raw's, so only the framework differs from the raw
WSGI app: Werkzeug's request and routing, Flask's dispatch and response handling.

The database routes use the raw WSGI app's psycopg pool (one per process, made after fork) and
render ``/fortunes`` with Flask's Jinja environment (``render_template``, autoescape on for an
``.html`` name). The template is this module's string, served by a ``DictLoader`` so it is
compiled once and cached like a template file (``render_template_string`` would compile the
source again on every request).

``/cpu`` runs inline whatever ``offload`` says (a sync worker has no event loop to keep free;
the parameter is still checked). The long-lived routes are Flask's idioms: ``/stream`` a
generator response wrapped in ``stream_with_context``, ``/upload`` reads ``request.stream`` in
chunks up to the Content-Length, ``/background`` registers its work with
``response.call_on_close``, which the server calls once the body is sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from flask import Flask, Response, render_template, request, stream_with_context
from jinja2 import DictLoader
from werkzeug.exceptions import ClientDisconnected, HTTPException

from apps import dbcontract
from apps.raw import common
from apps.raw import wsgi as raw_wsgi

FORTUNES_TEMPLATE = "fortunes.html"
FORTUNES_SOURCE = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>"
    "{% endfor %}</table></body></html>")


class ContractResponse(Response):
    # The contract's headers are passed in order and spelling; Werkzeug would otherwise respell
    # content-length as it sets it.
    automatically_set_content_length = False


def answer(response: common.Response) -> ContractResponse:
    # The status as a line: Werkzeug would spell the reason phrase in capitals ("NOT FOUND").
    return ContractResponse(response.body, status=response.status_line,
                            headers=response.header_pairs)


app = Flask(__name__)
app.response_class = ContractResponse
# OPTIONS answered by Flask itself would be a 200 with an Allow header: the contract says 405.
app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
# The app's template folder, in memory (Flask autoescapes templates named *.html).
app.jinja_loader = DictLoader({FORTUNES_TEMPLATE: FORTUNES_SOURCE})


def _not_get() -> bool:
    # A GET rule also matches HEAD in Werkzeug; the contract serves GET only.
    return request.method != "GET"


@app.get("/hello")
def hello() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.HELLO)


@app.get("/json")
def json() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.JSON)


@app.get("/io")
def io() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_io(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw WSGI app's wait: the per-process urllib3 pool, or time.sleep.
    return answer(raw_wsgi._wait(parsed))


@app.get("/cpu")
def cpu() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    # Inline whatever ``offload`` says (the parameter is still checked).
    return answer(common.cpu_response(request.query_string.decode("latin-1")))


_background = common.BackgroundCounters()




@app.get(common.STREAM_PATH)
def stream() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_stream(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # No content-length: the server frames the body.
    return ContractResponse(stream_with_context(common.sync_stream(parsed)), status="200 OK",
                            headers=list(common.STREAM_HEADERS))


@app.post(common.UPLOAD_PATH)
def upload() -> ContractResponse:
    length = common.upload_length(request.headers.get("Content-Length"),
                                  request.headers.get("Transfer-Encoding"))
    if isinstance(length, common.Response):
        return answer(length)  # the body is left unread: the server drains it or closes
    return answer(common.read_upload(request.stream.read, length,
                                     gone=(ClientDisconnected, OSError)))


def _background_work(ms: int) -> None:
    """Run by the server's ``close()`` of the response, in the thread (greenlet) that served
    it: the work holds that worker until it is done."""
    _background.start()
    time.sleep(ms / 1000)
    _background.finish()  # not counted when the work is cut (the worker killed)


@app.get(common.BACKGROUND_PATH)
def background() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = common.parse_background(request.query_string.decode("latin-1"))
    if isinstance(parsed, common.Response):
        return answer(parsed)
    response = answer(parsed.response)
    response.call_on_close(partial(_background_work, parsed.ms))
    return response


@app.get(common.BACKGROUND_STATS_PATH)
def background_stats() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(_background.response())


def _fortunes_page(rows: Sequence[tuple[Any, ...]]) -> common.Response:
    page = render_template(FORTUNES_TEMPLATE, fortunes=dbcontract.sorted_fortunes(rows))
    return common.Response(status=200, content_type=dbcontract.TEXT_HTML, body=page.encode())


def _db_route() -> ContractResponse:
    if _not_get():
        return answer(common.METHOD_NOT_ALLOWED)
    parsed = dbcontract.parse_db("GET", request.path, request.query_string.decode("latin-1"))
    if parsed is None:  # pragma: no cover - only the database routes come here
        return answer(common.NOT_FOUND)
    if isinstance(parsed, common.Response):
        return answer(parsed)
    # The raw WSGI app's database call: the per-process psycopg pool.
    return answer(raw_wsgi._db_answer(parsed, _fortunes_page))


@app.get("/db")
def db() -> ContractResponse:
    return _db_route()


@app.get("/queries")
def queries() -> ContractResponse:
    return _db_route()


@app.get("/fortunes")
def fortunes() -> ContractResponse:
    return _db_route()


@app.get("/db/sleep")
def db_sleep() -> ContractResponse:
    return _db_route()


@app.errorhandler(HTTPException)
def http_error(error: HTTPException) -> ContractResponse:
    """Werkzeug's HTML error pages replaced by the contract's plain-text answers."""
    if error.code == 405:
        return answer(common.METHOD_NOT_ALLOWED_POST if request.path == common.UPLOAD_PATH
                      else common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
