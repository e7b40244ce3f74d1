"""gunicorn's own ASGI worker as the catalogue runs it (loaded inside the server, not the
harness); apart from ``gunicorn_workers`` so that its processes never import uvicorn."""

from __future__ import annotations

import functools

from gunicorn.workers.gasgi import ASGIWorker  # type: ignore[import-untyped]


class BacklogASGIWorker(ASGIWorker):  # type: ignore[misc]
    """gunicorn's ``-k asgi`` worker, listening with the ``--backlog`` gunicorn was given.

    The worker hands the shared listening socket to ``loop.create_server`` without a backlog,
    so asyncio and uvloop listen on it again with their default of 100 (gunicorn 27.0.1; uvicorn's
    worker had the same bug, uvicorn issue #544). Every server in the catalogue listens with the
    same backlog, so this class passes gunicorn's on; nothing else differs from ``-k asgi``.
    """

    def _setup_event_loop(self) -> None:
        super()._setup_event_loop()
        # The worker calls create_server itself deep inside _serve(); the loop is the one object
        # of ours it goes through, and this is the last moment before it does.
        self.loop.create_server = functools.partial(self.loop.create_server,
                                                    backlog=self.cfg.backlog)
