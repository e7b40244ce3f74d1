"""A seeded scratch PostgreSQL for tests: the harness's own (harness.backends.local), once per
test session, on CPU 0. Tests that need it take the ``database_url`` fixture from
tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.backends.local import start_database
from harness.errors import UsageError

TEST_DB_CONNECTIONS = 100


def scratch_database() -> Iterator[str]:
    """Start the cluster (skip with the reason when its binaries are missing), yield its URL,
    stop and remove it."""
    try:
        server = start_database((0,), connections=TEST_DB_CONNECTIONS)
    except UsageError as exc:
        pytest.skip(str(exc))
    with server:
        yield server.url
