"""Gunicorn worker classes the catalogue names (loaded inside the server, not the harness)."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]


class QuietUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn-worker's UvicornWorker with uvicorn's access log off.

    Gunicorn without ``--access-logfile`` writes nothing, but uvicorn would still build every
    access record; every other server in the catalogue runs with its access log off entirely.
    """

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "access_log": False}
