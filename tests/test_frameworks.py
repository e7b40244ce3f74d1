"""The framework families answer the app contract behind real servers, byte for byte as raw.

Each case starts one family on one server through the local backend (the way a run does), runs
``verify_target`` against it, then sends a set of edge-case requests (wrong methods, trailing
slashes, repeated parameters, HEAD, OPTIONS) to it and to the raw app on the same server and
compares status, app headers and body. ``harness verify --app NAME`` runs the full matrix.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.backends import local
from harness.backends.local import RunningServer
from harness.catalogue import APPS, GATEWAYS, get_app, get_server, make_target
from harness.verify import verify_target

SERVER_CPUS = (1,)
UPSTREAM_CPUS = (0,)
REQUEST_TIMEOUT_S = 10.0
# Headers a server adds on its own (the same server serves raw and the family, but the Date
# changes between the two answers).
SERVER_HEADERS = frozenset({"date", "server", "connection", "keep-alive"})

FRAMEWORK_FAMILIES = ("django", "django-async", "flask", "quart", "fastapi", "starlette",
                      "pyramid")

# Family x server: every family on the most common server of each of its gateways, and a few on
# a second server where that family's users often run it. `harness verify --app NAME` covers
# every server.
CASES = (
    ("django", "gunicorn-sync"),
    ("django", "uvicorn"),
    ("django-async", "uvicorn"),
    ("django-async", "daphne"),  # Channels' server; sends no lifespan
    ("flask", "gunicorn-sync"),
    ("flask", "gunicorn-gevent"),
    ("quart", "uvicorn"),
    ("quart", "hypercorn"),  # Quart's own server
    ("quart", "daphne"),  # sends a WebSocket scope without "scheme"
    ("fastapi", "uvicorn"),
    ("fastapi", "granian-asgi"),
    ("starlette", "uvicorn"),
    ("pyramid", "gunicorn-sync"),
)

# (method, path): the corners where a framework's defaults differ from the contract.
EDGE_REQUESTS = (
    ("GET", "/hello"), ("GET", "/json"), ("GET", "/hello?x=1"),
    ("GET", "/cpu?n=1000"), ("GET", "/cpu?n=5&n=7"), ("GET", "/cpu?n=%2B5"), ("GET", "/cpu"),
    ("GET", "/io?ms=abc"), ("GET", "/io?ms=1&mode=nap"), ("GET", "/io?ms=5&mode=sleep"),
    ("GET", "/io?ms=5"), ("GET", "/io?mode=sleep&ms=5&ms=x"),
    ("GET", "/no-such-path"), ("GET", "/"), ("GET", "/hello/"), ("GET", "/ws/echo"),
    ("GET", "/HELLO"),
    ("POST", "/hello"), ("PUT", "/io?ms=5"), ("DELETE", "/cpu?n=1"), ("OPTIONS", "/json"),
    ("HEAD", "/hello"), ("POST", "/no-such-path"),
    ("GET", "/cpu?n=5&offload=thread"), ("GET", "/cpu?n=5&offload=process"),
    ("GET", "/cpu?n=5&offload=bogus"), ("GET", "/cpu?n=5&offload=thread&offload=x"),
    ("GET", "/cpu?n=x&offload=bogus"),
    ("POST", "/upload"), ("GET", "/upload"), ("PUT", "/upload"),
    ("POST", "/stream?events=1&interval_ms=0"), ("GET", "/stream?events=0&interval_ms=0"),
)


@dataclass(frozen=True, kw_only=True)
class Answer:
    status: int
    # app headers, names lower-cased (HTTP names are case-insensitive; Pyramid's renderer spells
    # them Content-Type), in the order sent
    headers: tuple[tuple[str, str], ...]
    body: bytes


def fetch(base_url: str, method: str, path: str) -> Answer:
    host, _, port = base_url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    headers = tuple((name.lower(), value) for name, value in response.getheaders()
                    if name.lower() not in SERVER_HEADERS)
    return Answer(status=response.status, headers=headers, body=body)


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with local.start_upstream(UPSTREAM_CPUS) as upstream:
        yield upstream.url


def _start(family: str, server: str, upstream_url: str) -> RunningServer:
    target = make_target(get_server(server), app=family, cpus=len(SERVER_CPUS))
    return local.start_target(target, cpus=SERVER_CPUS, upstream_url=upstream_url)


@pytest.fixture(scope="module")
def raw_answers(upstream_url: str) -> Iterator[dict[str, dict[tuple[str, str], Answer]]]:
    """The raw app's answers to EDGE_REQUESTS, per server, fetched once per server."""
    cache: dict[str, dict[tuple[str, str], Answer]] = {}
    yield cache


def _raw_answers_on(server: str, upstream_url: str,
                    cache: dict[str, dict[tuple[str, str], Answer]]
                    ) -> dict[tuple[str, str], Answer]:
    if server not in cache:
        with _start("raw", server, upstream_url) as raw:
            cache[server] = {request: fetch(raw.url, *request) for request in EDGE_REQUESTS}
    return cache[server]


def test_every_framework_family_is_catalogued_with_what_it_needs() -> None:
    for name in FRAMEWORK_FAMILIES:
        family = get_app(name)
        assert family.modules, name
        assert family.contract and family.check_path is None, name
        assert family.distributions, f"{name}: no framework version would be recorded"
        assert family.groups, f"{name}: in no comparison group"
        assert family.description, name
    assert {name for name, _ in CASES} == set(FRAMEWORK_FAMILIES)


def test_each_comparison_group_spans_both_gateways() -> None:
    groups: dict[str, set[str]] = {}
    for family in APPS.values():
        for group in family.groups:
            groups.setdefault(group, set()).update(family.modules)
    assert groups, "no groups"
    for group, gateways in groups.items():
        assert gateways == set(GATEWAYS), f"group {group!r} covers only {sorted(gateways)}"


def test_django_variants_share_one_project_and_differ_by_settings() -> None:
    django, django_async = get_app("django"), get_app("django-async")
    assert django.modules["asgi"] == django_async.modules["asgi"]
    assert django.env["DJANGO_SETTINGS_MODULE"] != django_async.env["DJANGO_SETTINGS_MODULE"]
    assert "wsgi" not in django_async.modules  # async views need an event loop


@pytest.mark.e2e
@pytest.mark.parametrize(("family", "server"), CASES, ids=[f"{f}@{s}" for f, s in CASES])
def test_family_passes_the_contract_and_matches_raw(
        family: str, server: str, upstream_url: str,
        raw_answers: dict[str, dict[tuple[str, str], Answer]]) -> None:
    expected = _raw_answers_on(server, upstream_url, raw_answers)
    server_info = get_server(server)
    websocket = server_info.websocket and get_app(family).websocket
    with _start(family, server, upstream_url) as running:
        report = verify_target(running.url, websocket=websocket, io=True)
        assert report.ok, f"{family} on {server}: {report.summary()}"
        got = {request: fetch(running.url, *request) for request in EDGE_REQUESTS}
        assert running.alive(), running.exit_reason()
    differences = [f"{method} {path}: raw {expected[(method, path)]}, {family} {answer}"
                   for (method, path), answer in got.items()
                   if answer != expected[(method, path)]]
    assert not differences, "\n".join(differences)
