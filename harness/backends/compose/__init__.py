"""The compose backend: each target in a container started by Docker Compose, pinned with cpuset.

One image holds every server (``compose/Dockerfile``); it is built once per run, tagged with a
hash of what it is built from, so the engine's cache serves every run until a file changes. Each
start writes a Compose file for one service with the run's exact port, cpuset, app and
environment, and runs ``docker compose up``. Containers use the host's network and bind
127.0.0.1, so the generator on the host reaches them as it reaches local processes; readiness is
the harness's one rule (:func:`harness.httpget.is_ready`: GET /hello answering any 2xx), polled
until a deadline.

Nothing survives a run. Everything the run creates carries the label ``harness.run=<id>`` (and
the Compose project ``harness-<id>``), so cleanup removes exactly its own:

- ``stop()`` stops a container (TERM, a grace period, KILL: ``docker stop``) and removes it;
- ``close()`` (and an ``atexit`` hook: a normal exit, Ctrl-C, the run's SIGTERM handler) removes
  every container and network labelled with the run;
- a watchdog process (its own session: a terminal's Ctrl-C does not reach it) does the same when
  the harness disappears, even by SIGKILL;
- Ctrl-C and SIGTERM are held back while a container is created and registered, and while it
  is stopped (:func:`harness.signals.interrupts_deferred`).

Where each part lives:

- :mod:`~harness.backends.compose.engine`: reaching the Docker engine and the Compose tool, the
  labels, building the servers' image;
- :mod:`~harness.backends.compose.backend`: :class:`ComposeBackend`, which starts targets, the
  upstream and the database (PostgreSQL as an unprivileged user, its data in the container) and
  cleans up after the run;
- :mod:`~harness.backends.compose.container`: :class:`ContainerTarget`, one started container,
  and :class:`EngineStatsSampler`, its CPU and memory through the engine's stats API.
"""

from __future__ import annotations

from harness.backends.compose.backend import ComposeBackend, compose_backend
from harness.backends.compose.container import ContainerTarget, EngineStatsSampler
from harness.backends.compose.engine import (
    DEFAULT_DOCKER_HOST,
    LABEL_OWNER,
    LABEL_RUN,
    build_image,
    connect,
    docker_host,
    engine_address,
    find_compose,
)

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "LABEL_OWNER",
    "LABEL_RUN",
    "ComposeBackend",
    "ContainerTarget",
    "EngineStatsSampler",
    "build_image",
    "compose_backend",
    "connect",
    "docker_host",
    "engine_address",
    "find_compose",
]
