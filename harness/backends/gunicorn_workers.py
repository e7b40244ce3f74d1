"""Gunicorn worker classes the catalogue names (loaded inside the server, not the harness)."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

# As the catalogue's uvicorn entries: a day between pings (0 would ping without pause with the
# websockets implementation), no permessage-deflate.
NO_PING_INTERVAL_S = 86400.0


class QuietUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn-worker's UvicornWorker with uvicorn's access log off, and the WebSocket protocol
    every server runs here (no pings, no compression).

    Gunicorn without ``--access-logfile`` writes nothing, but uvicorn would still build every
    access record; every other server in the catalogue runs with its access log off entirely.
    Gunicorn has no flags for uvicorn's WebSocket settings: this class is where they go.
    """

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS, "access_log": False,
        "ws_ping_interval": NO_PING_INTERVAL_S, "ws_per_message_deflate": False,
    }
