"""The framework families' long-lived routes (``/stream``, ``/upload``, ``/background``) behind
real servers, checked as ``harness verify`` checks them: each family only for the routes its
framework has (Django: no background tasks, so ``/background`` must be the contract's 404)."""

from __future__ import annotations

import pytest

from harness.backends import local
from harness.catalogue import get_app, get_server, make_target
from harness.verify import verify_long_lived

SERVER_CPUS = (1,)

# A sync framework on a threaded WSGI server, an async one on uvicorn, and Django's sync views
# under ASGI (the one place a sync view must hand Django an async iterator).
CASES = (
    ("flask", "gunicorn-gthread"),
    ("fastapi", "uvicorn"),
    ("django", "uvicorn"),
)


@pytest.mark.e2e
@pytest.mark.parametrize(("family", "server"), CASES, ids=[f"{f}@{s}" for f, s in CASES])
def test_framework_long_lived_routes_pass_verify(family: str, server: str) -> None:
    routes = get_app(family).long_lived
    target = make_target(get_server(server), app=family, cpus=len(SERVER_CPUS))
    with local.start_target(target, cpus=SERVER_CPUS) as running:
        report = verify_long_lived(running.url, routes=routes)
        assert running.alive(), running.exit_reason()
    assert report.ok, f"{family} on {server}: {report.summary()}"
    names = {check.name for check in report.checks}
    assert {"stream", "upload[16777216]", "upload_get", "upload_too_large"} <= names
    if "background" in routes:
        assert {"background", "background_stats"} <= names
    else:
        assert "background_not_served" in names and "background" not in names
