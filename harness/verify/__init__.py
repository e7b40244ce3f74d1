"""The app contract (apps/README.md), checked against a live target before any measurement.

A server that answers fast with the wrong bytes would win every benchmark, so each target must
first pass these checks: exact status, Content-Type, body framing and body of every endpoint,
the ``/cpu`` result computed here, ``/io`` waits at least the asked time, and the WebSocket echo
and broadcast where the server supports it. A missing Date header is a warning, not a failure
(daphne sends none). For a family that serves them, :func:`verify_long_lived` also checks the
long-lived routes: a stream's events arrive spread in time (not buffered), an upload's SHA-256,
the 413, and background work that runs after the response.

The checks use blocking stdlib clients (http.client, the websockets sync client), independent of
the apps' own clients, each bounded by a timeout so a stuck target fails instead of hanging::

    report = verify_target("http://127.0.0.1:8000", websocket=True)
    if not report.ok:
        print("; ".join(f"{c.name}: {c.detail}" for c in report.failures))
"""

from __future__ import annotations

from harness.catalogue import Target
from harness.checks import VerifyReport
from harness.ownapp import verify_path
from harness.verify.contract import verify_target
from harness.verify.database import verify_database
from harness.verify.longlived import verify_long_lived

__all__ = ["verify_database", "verify_family_target", "verify_long_lived", "verify_target"]


def verify_family_target(base_url: str, target: Target, *, io: bool = True,
                         db_url: str | None = None) -> VerifyReport:
    """Verify a live target as its app family asks: the whole app contract (WebSocket where
    both the server and the family have it; the long-lived routes the family serves), or, for a
    user's own app, that its path answers 2xx (the one thing the harness can know about it)."""
    family = target.family
    if family.check_path is not None:
        return verify_path(base_url, family.check_path).report
    report = verify_target(base_url, websocket=target.server.websocket and family.websocket,
                           io=io)
    if family.long_lived:
        report = VerifyReport(checks=report.checks + verify_long_lived(
            base_url, routes=family.long_lived).checks)
    if db_url is not None and family.database is not None:
        report = VerifyReport(checks=report.checks + verify_database(base_url, db_url).checks)
    return report
