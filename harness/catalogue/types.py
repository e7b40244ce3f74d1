"""What the catalogue is made of: a server, its documented preset rule, an app family."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Gateway = Literal["wsgi", "asgi"]


GATEWAYS: tuple[Gateway, ...] = ("wsgi", "asgi")

# The contract's long-lived routes (apps/README.md): ``stream`` is ``GET /stream``, ``upload``
# ``POST /upload``, ``background`` ``GET /background`` with ``GET /background/stats``.
LongLived = Literal["stream", "upload", "background"]
LONG_LIVED: tuple[LongLived, ...] = ("stream", "upload", "background")


HOST = "127.0.0.1"


# Every server listens with the same backlog. Left to their defaults (uWSGI and Hypercorn 100,
# Twisted 50, Granian 1024, gunicorn and uvicorn 2048) a small one turns waiting clients away
# before their request is sent, where closed-loop latency (ours and wrk's) does not see them,
# and flatters that server's tail. Capped at net.core.somaxconn (uWSGI refuses to start above).
LISTEN_BACKLOG = 1024


THREADS_ARGS = "{threads_args}"


# The folder that holds the ``apps`` package: servers run with it as cwd and on PYTHONPATH.
REPO_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class PresetRule:
    """Workers and threads for N CPUs as data: ``workers = workers_per_cpu * N + workers_plus``;
    ``threads = threads_per_cpu * N`` or ``threads_fixed`` (None: the server decides)."""

    workers_per_cpu: int
    workers_plus: int = 0
    threads_per_cpu: int = 0
    threads_fixed: int | None = None
    note: str

    def workers(self, cpus: int) -> int:
        return max(1, self.workers_per_cpu * cpus + self.workers_plus)

    def threads(self, cpus: int) -> int | None:
        if self.threads_per_cpu:
            return self.threads_per_cpu * cpus
        return self.threads_fixed


@dataclass(frozen=True, kw_only=True)
class Server:
    """One server configuration under test.

    ``command`` is an argv template with the placeholders ``{python}`` (this interpreter),
    ``{bindir}`` (its scripts folder), ``{root}`` (the folder ``apps`` imports from), ``{app}``
    (the import string), ``{host}``, ``{port}`` and ``{workers}``. The item ``{threads_args}``
    becomes ``threads_args`` (with ``{threads}`` filled in) when the preset has a thread count,
    and nothing when it has none.
    """

    name: str
    gateway: Gateway
    websocket: bool
    distribution: str
    # further distributions the command needs (e.g. a worker class shipped separately)
    extra_distributions: tuple[str, ...] = ()
    command: tuple[str, ...]
    threads_args: tuple[str, ...] = ()
    # what "threads" means for this server, shown next to the number
    threads_meaning: str = "threads per worker"
    preset: PresetRule
    description: str
    # How the server's WebSocket protocol is set so every server runs the same one (no pings,
    # no compression): one human-readable note per setting, recorded with every result.
    websocket_settings: tuple[str, ...] = ()

    @property
    def distributions(self) -> tuple[str, ...]:
        return (self.distribution, *self.extra_distributions)


@dataclass(frozen=True, kw_only=True)
class Preset:
    """The workers and threads a target runs with, and where the numbers come from."""

    cpus: int
    workers: int
    threads: int | None
    note: str
    overridden: tuple[str, ...] = ()  # which of "workers", "threads" the user set

    def describe(self) -> str:
        threads = "-" if self.threads is None else str(self.threads)
        extra = f" (overridden: {', '.join(self.overridden)})" if self.overridden else ""
        return f"workers={self.workers} threads={threads}{extra}"


@dataclass(frozen=True, kw_only=True)
class DbDriver:
    """How a family's database routes reach PostgreSQL: the driver, and the connections each
    worker process's pool holds, with where that number comes from."""

    name: str
    pool: int  # connections per worker process
    note: str


@dataclass(frozen=True, kw_only=True)
class AppFamily:
    """Identical apps for each gateway: gateway -> ``module:attribute`` import string.

    ``env`` is the environment the apps need (e.g. ``DJANGO_SETTINGS_MODULE``) and ``paths``
    the folders put first on their PYTHONPATH (a user's ``--app-dir``); every backend gives
    both to the server it starts.

    ``groups`` name the comparisons the report puts this family in (``flask-quart``: the same
    route code on each gateway); ``distributions`` are the framework packages whose versions a
    result records; ``websocket`` says whether the ASGI app serves ``/ws/echo`` (False: a
    WebSocket check or scenario is "unsupported" for this family). ``check_path`` is set for a
    user's own app only: it does not answer the app contract, so verify checks just that this
    path answers 2xx, and readiness probes it instead of ``/hello``. ``database`` is the driver
    of its database routes (``/db``, ``/queries``, ``/fortunes``, ``/db/sleep``; None: it has
    none, and a database scenario plans it as unsupported). ``long_lived``: which of the
    long-lived routes its apps serve (``LONG_LIVED``; Django has no background-task API, so
    not ``background``); verify checks those.
    """

    name: str
    modules: dict[Gateway, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    paths: tuple[str, ...] = ()
    description: str = ""
    groups: tuple[str, ...] = ()
    distributions: tuple[str, ...] = ()
    websocket: bool = True
    check_path: str | None = None
    database: DbDriver | None = None
    long_lived: tuple[LongLived, ...] = ()

    @property
    def contract(self) -> bool:
        """Whether the apps answer the whole app contract (every family but a user's own)."""
        return self.check_path is None

    @property
    def ready_path(self) -> str:
        """The path a readiness probe may GET: ``/hello``, or an own app's ``check_path``."""
        return self.check_path if self.check_path is not None else "/hello"
