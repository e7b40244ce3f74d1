"""The Flask app (`apps.flask_app.wsgi:app`), route for route the same code as apps/quart_app.

Bodies, parsing and the ``/io`` wait are apps/raw's, so only the framework differs from the raw
WSGI app: Werkzeug's request and routing, Flask's dispatch and response handling.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from apps.raw import common
from apps.raw import wsgi as raw_wsgi


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
    return answer(common.cpu_response(request.query_string.decode("latin-1")))


@app.errorhandler(HTTPException)
def http_error(error: HTTPException) -> ContractResponse:
    """Werkzeug's HTML error pages replaced by the contract's plain-text answers."""
    if error.code == 405:
        return answer(common.METHOD_NOT_ALLOWED)
    return answer(common.NOT_FOUND)
