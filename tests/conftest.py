"""Fixtures shared by test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import scratch_database


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A seeded scratch PostgreSQL's URL (started once per session, gone at its end)."""
    yield from scratch_database()
