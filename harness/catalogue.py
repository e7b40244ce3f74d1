"""Servers and apps as data: name -> gateway, command, capabilities and a documented preset.

A new server is one ``Server`` entry in ``SERVERS``; a new app family is one entry in ``APPS``.
Each server's worker/thread preset for N CPUs follows that server's own documentation, carries a
note citing the rule, is recorded with every result, and can be overridden.

>>> target = make_target(get_server("gunicorn-sync"), app="raw", cpus=1)
>>> target.preset.workers
3
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any, Literal

from harness.errors import TargetError, UsageError

Gateway = Literal["wsgi", "asgi"]
GATEWAYS: tuple[Gateway, ...] = ("wsgi", "asgi")

HOST = "127.0.0.1"
# Every server listens with the same backlog. Left to their defaults (uWSGI and Hypercorn 100,
# Twisted 50, Granian 1024, gunicorn and uvicorn 2048) a small one turns waiting clients away
# before their request is sent, where closed-loop latency (ours and wrk's) does not see them,
# and flatters that server's tail. Capped at net.core.somaxconn (uWSGI refuses to start above).
LISTEN_BACKLOG = 1024
THREADS_ARGS = "{threads_args}"
# The folder that holds the ``apps`` package: servers run with it as cwd and on PYTHONPATH.
REPO_DIR = Path(__file__).resolve().parent.parent


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
    path answers 2xx, and readiness probes it instead of ``/hello``.
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

    @property
    def contract(self) -> bool:
        """Whether the apps answer the whole app contract (every family but a user's own)."""
        return self.check_path is None

    @property
    def ready_path(self) -> str:
        """The path a readiness probe may GET: ``/hello``, or an own app's ``check_path``."""
        return self.check_path if self.check_path is not None else "/hello"


# WebSocket: every server runs the same protocol as the harness client (no pings, no
# compression). "Off" for pings is an interval longer than any run where a flag takes only a
# number: uvicorn's --ws-ping-interval 0 would ping without pause with --ws websockets.
_NO_PING_S = 86400
_UVICORN_WS_ARGS = ("--ws-ping-interval", str(_NO_PING_S), "--ws-per-message-deflate", "false")
_UVICORN_WS_SETTINGS = (
    f"pings off: --ws-ping-interval {_NO_PING_S} (uvicorn's default pings every 20 s)",
    "permessage-deflate off: --ws-per-message-deflate false (moot: the harness client offers "
    "none)",
)

_GUNICORN_RULE = ("gunicorn docs (design, 'How Many Workers?'): (2 x $num_cores) + 1 workers "
                  "to start with")

SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server(
            name="gunicorn-sync", gateway="wsgi", websocket=False, distribution="gunicorn",
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "sync", "{app}"),
            preset=PresetRule(workers_per_cpu=2, workers_plus=1, note=_GUNICORN_RULE),
            description="pre-fork, one request per worker at a time, no keep-alive",
        ),
        Server(
            name="gunicorn-gthread", gateway="wsgi", websocket=False, distribution="gunicorn",
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "gthread", "{threads_args}",
                     "{app}"),
            threads_args=("--threads", "{threads}"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_per_cpu=2,
                note=_GUNICORN_RULE + "; settings 'threads': 'generally in the 2-4 x "
                "$(NUM_CORES) range' (the low end: every thread of every worker shares the "
                "CPUs)"),
            description="pre-fork, a thread pool per worker, keep-alive",
        ),
        Server(
            name="gunicorn-gevent", gateway="wsgi", websocket=False, distribution="gunicorn",
            extra_distributions=("gevent",),
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "gevent", "{threads_args}",
                     "{app}"),
            threads_args=("--worker-connections", "{threads}"),
            threads_meaning="greenlets per worker (worker_connections)",
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_fixed=1000,
                note=_GUNICORN_RULE + "; settings 'worker_connections': default 1000 "
                "simultaneous clients per worker"),
            description="pre-fork, greenlets per worker (monkey-patched blocking I/O)",
        ),
        Server(
            name="uwsgi", gateway="wsgi", websocket=False, distribution="uwsgi",
            # --http-socket: the worker speaks HTTP itself (--http would add a router process);
            # --die-on-term: TERM stops uWSGI 2.0 instead of reloading it; --lazy-apps: load
            # the app in each worker after fork, like gunicorn, so no pooled client is shared.
            command=("{bindir}/uwsgi", "--http-socket", "{host}:{port}", "--master",
                     "--die-on-term", "--disable-logging", "--need-app", "--lazy-apps",
                     "--strict", "--listen", "{backlog}", "--pythonpath", "{root}", "--module",
                     "{app}",
                     "--processes", "{workers}", "{threads_args}"),
            threads_args=("--threads", "{threads}"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_fixed=2,
                note="uWSGI docs ('Things to know'): 'There is no magic rule for setting the "
                "number of processes or threads'; quickstart shape --processes N --threads 2, "
                "with N = (2 x cores) + 1 as for the other pre-fork servers"),
            description="pre-fork master + processes x threads, HTTP parsed in C",
        ),
        Server(
            name="granian-wsgi", gateway="wsgi", websocket=False, distribution="granian",
            command=("{python}", "-m", "granian", "--interface", "wsgi", "--host", "{host}",
                     "--port", "{port}", "--backlog", "{backlog}", "--workers", "{workers}",
                     "--no-access-log",
                     "{threads_args}", "{app}"),
            threads_args=("--blocking-threads", "{threads}"),
            threads_meaning="blocking threads per worker (None: Granian's default, "
                            "backpressure / 2)",
            preset=PresetRule(
                workers_per_cpu=1,
                note="Granian README ('Processes and threads'): 'matching the amount of CPU "
                "cores for the workers is generally the best starting point'; 'the default "
                "number of blocking threads should work properly with the majority of "
                "applications'"),
            description="Rust (hyper) HTTP, Python app on blocking threads",
        ),
        Server(
            name="uvicorn", gateway="asgi", websocket=True, distribution="uvicorn",
            extra_distributions=("httptools", "uvloop"),
            command=("{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}",
                     "--backlog", "{backlog}",
                     "--workers", "{workers}", "--loop", "uvloop", "--http", "httptools",
                     "--ws", "websockets", *_UVICORN_WS_ARGS, "--no-access-log", "{app}"),
            websocket_settings=_UVICORN_WS_SETTINGS,
            preset=PresetRule(
                workers_per_cpu=1,
                note="uvicorn docs (deployment): one event loop per process, --workers for "
                "more cores; workers = cores"),
            description="event loop: httptools parser on uvloop",
        ),
        Server(
            name="uvicorn-h11", gateway="asgi", websocket=True, distribution="uvicorn",
            extra_distributions=("h11", "wsproto"),
            command=("{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}",
                     "--backlog", "{backlog}",
                     "--workers", "{workers}", "--loop", "asyncio", "--http", "h11",
                     "--ws", "wsproto", *_UVICORN_WS_ARGS, "--no-access-log", "{app}"),
            websocket_settings=_UVICORN_WS_SETTINGS,
            preset=PresetRule(
                workers_per_cpu=1,
                note="uvicorn docs (deployment): one event loop per process, --workers for "
                "more cores; workers = cores"),
            description="event loop: pure-Python h11/wsproto on the asyncio loop",
        ),
        Server(
            name="gunicorn-uvicorn", gateway="asgi", websocket=True, distribution="gunicorn",
            extra_distributions=("uvicorn-worker", "uvicorn"),
            # uvicorn_worker.UvicornWorker, with access_log=False through its CONFIG_KWARGS
            # hook: gunicorn's "no access log" still formats every access line otherwise.
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class",
                     "harness.backends.gunicorn_workers.QuietUvicornWorker", "{app}"),
            # gunicorn has no flag for them: the worker class's CONFIG_KWARGS sets them
            websocket_settings=(
                f"pings off: ws_ping_interval {_NO_PING_S} in the worker class's CONFIG_KWARGS "
                "(uvicorn's default pings every 20 s)",
                "permessage-deflate off: ws_per_message_deflate False in CONFIG_KWARGS (moot: "
                "the harness client offers none)"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1,
                note=_GUNICORN_RULE + " (gunicorn is the process manager here; "
                "uvicorn-worker docs: 'gunicorn example:app -w 4 -k "
                "uvicorn_worker.UvicornWorker')"),
            description="gunicorn master, uvicorn event-loop workers (uvicorn-worker)",
        ),
        Server(
            name="hypercorn", gateway="asgi", websocket=True, distribution="hypercorn",
            extra_distributions=("uvloop",),
            command=("{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "uvloop", "{app}"),
            websocket_settings=(
                "pings off: Hypercorn's default (websocket_ping_interval unset; its flag "
                "takes only a number)",
                "permessage-deflate: accepted when offered (moot: the harness client offers "
                "none)"),
            preset=PresetRule(
                workers_per_cpu=1,
                note="Hypercorn docs give no rule (default --workers 1); one event loop per "
                "core, as for uvicorn; workers = cores"),
            description="event loop: h11/h2/wsproto on uvloop, master + worker processes",
        ),
        Server(
            name="daphne", gateway="asgi", websocket=True, distribution="daphne",
            # -v 0: verbosity 1 (the default) writes an access log line to stdout
            command=("{python}", "-m", "daphne", "-e",
                     "tcp:port={port}:interface={host}:backlog={backlog}", "-v", "0",
                     "--ping-interval", str(_NO_PING_S), "{app}"),
            websocket_settings=(
                f"pings off: --ping-interval {_NO_PING_S} (by default daphne pings a "
                "connection idle for 20 s)",
                "permessage-deflate: never accepted (autobahn's default)"),
            preset=PresetRule(
                workers_per_cpu=0, workers_plus=1,
                note="Daphne is single-process (no workers option): it uses one CPU whatever "
                "the budget; its docs scale out with several daphne processes behind a "
                "load balancer"),
            description="Twisted event loop, one process",
        ),
        Server(
            name="granian-asgi", gateway="asgi", websocket=True, distribution="granian",
            command=("{python}", "-m", "granian", "--interface", "asgi", "--host", "{host}",
                     "--port", "{port}", "--backlog", "{backlog}", "--workers", "{workers}",
                     "--no-access-log", "--ws",
                     "{threads_args}", "{app}"),
            threads_args=("--runtime-threads", "{threads}"),
            websocket_settings=(
                "WebSocket on: --ws (Granian's default, set explicitly)",
                "pings: none (Granian sends none)",
                "permessage-deflate: not supported"),
            threads_meaning="Rust runtime threads per worker (None: Granian's default, 1)",
            preset=PresetRule(
                workers_per_cpu=1,
                note="Granian README ('Processes and threads'): 'matching the amount of CPU "
                "cores for the workers is generally the best starting point'; 'the default "
                "number of threads is fine for the vast majority of applications'"),
            description="Rust (hyper) HTTP, Python app on an asyncio (uvloop) loop",
        ),
    )
}

_DJANGO_SETTINGS = "DJANGO_SETTINGS_MODULE"

APPS: dict[str, AppFamily] = {
    family.name: family
    for family in (
        AppFamily(name="raw", modules={"wsgi": "apps.raw.wsgi:app", "asgi": "apps.raw.asgi:app"},
                  description="no framework: the contract on the bare gateway (the baseline)"),
        # One Django project (apps/djangoproj); the settings module picks the views.
        AppFamily(name="django",
                  modules={"wsgi": "apps.djangoproj.wsgi:application",
                           "asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings"},
                  description="Django, sync views: from wsgi.py, and from asgi.py (each view "
                              "run through sync_to_async, one thread per process)",
                  groups=("django",), distributions=("django", "asgiref")),
        AppFamily(name="django-async",
                  modules={"asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings_async"},
                  description="Django, async views from asgi.py (aiohttp for /io)",
                  groups=("django",), distributions=("django", "asgiref")),
        AppFamily(name="flask", modules={"wsgi": "apps.flask_app.wsgi:app"},
                  description="Flask, sync views", groups=("flask-quart", "flask-fastapi"),
                  distributions=("flask", "werkzeug")),
        AppFamily(name="quart", modules={"asgi": "apps.quart_app.asgi:app"},
                  description="Quart, Flask's route code with async views",
                  groups=("flask-quart",), distributions=("quart", "werkzeug")),
        AppFamily(name="fastapi", modules={"asgi": "apps.fastapi_app.asgi:app"},
                  description="FastAPI, async def path operations (the usual move from Flask)",
                  groups=("flask-fastapi",), distributions=("fastapi", "starlette")),
        AppFamily(name="starlette", modules={"asgi": "apps.starlette_app.asgi:app"},
                  description="Starlette, async endpoints (the toolkit under FastAPI)",
                  groups=("starlette-pyramid",), distributions=("starlette",)),
        AppFamily(name="pyramid", modules={"wsgi": "apps.pyramid_app.wsgi:app"},
                  description="Pyramid, TechEmpower's setup: no debug or reload, orjson "
                              "renderer", groups=("starlette-pyramid",),
                  distributions=("pyramid", "webob", "orjson")),
    )
}


@dataclass(frozen=True, kw_only=True)
class Target:
    """A server serving an app family with a preset: what one backend start runs."""

    server: Server
    family: AppFamily
    preset: Preset

    @property
    def app(self) -> str:
        return self.family.name

    @property
    def app_spec(self) -> str:
        """The import string the server loads, e.g. ``apps.raw.wsgi:app`` ("" when the family
        has no app of the server's gateway: such a target is planned as unsupported)."""
        return self.family.modules.get(self.server.gateway, "")

    def describe(self) -> str:
        return (f"{self.server.name} ({self.server.gateway}) serving {self.app_spec}, "
                f"{self.preset.describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server.name,
            "gateway": self.server.gateway,
            "websocket": self.server.websocket,
            "app": self.app,
            "app_spec": self.app_spec,
            "distribution": self.server.distribution,
            "version": installed_version(self.server),
            "cpus_for_preset": self.preset.cpus,
            "workers": self.preset.workers,
            "threads": self.preset.threads,
            "threads_meaning": self.server.threads_meaning,
            "preset_note": self.preset.note,
            "overridden": list(self.preset.overridden),
            "websocket_settings": list(self.server.websocket_settings),
            "family": {
                "name": self.family.name,
                "description": self.family.description,
                "groups": list(self.family.groups),
                "versions": {d: _version(d) for d in self.family.distributions},
                # names only: values may be secrets
                "env": sorted(self.family.env),
                "check_path": self.family.check_path,
            },
        }


def get_server(name: str) -> Server:
    try:
        return SERVERS[name]
    except KeyError:
        raise UsageError(f"unknown server {name!r}: expected one of "
                         f"{', '.join(SERVERS)}") from None


def get_app(name: str) -> AppFamily:
    try:
        return APPS[name]
    except KeyError:
        raise UsageError(f"unknown app family {name!r}: expected one of "
                         f"{', '.join(APPS)}") from None


def supports(server: Server, *, websocket: bool) -> tuple[bool, str]:
    """Whether the server can run a scenario; an impossible pair is "unsupported", with why."""
    if websocket and not server.websocket:
        return False, (f"{server.name} is a {server.gateway.upper()} server: the WSGI interface "
                       "has no way to hold a WebSocket connection")
    return True, ""


def preset_for(server: Server, cpus: int, *, workers: int | None = None,
               threads: int | None = None) -> Preset:
    """The documented preset for ``cpus`` CPUs, with the user's overrides applied."""
    if cpus <= 0:
        raise UsageError(f"CPU count: expected at least 1, got {cpus}")
    for flag, value in (("--workers", workers), ("--threads", threads)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag}: expected a positive integer, got {value}")
    rule = server.preset
    overridden: list[str] = []
    n_workers = rule.workers(cpus)
    n_threads = rule.threads(cpus)
    note = rule.note
    if workers is not None and workers != n_workers:
        if rule.workers_per_cpu == 0:
            raise UsageError(f"--workers: {server.name} runs a single process and has no "
                             "workers option")
        n_workers = workers
        overridden.append("workers")
    if threads is not None and threads != n_threads:
        if not server.threads_args:
            raise UsageError(f"--threads: {server.name} has no thread setting (it is "
                             f"{'an event loop' if server.gateway == 'asgi' else 'pre-fork'})")
        n_threads = threads
        overridden.append("threads")
    return Preset(cpus=cpus, workers=n_workers, threads=n_threads, note=note,
                  overridden=tuple(overridden))


def make_target(server: Server, *, app: str | AppFamily = "raw", cpus: int = 1,
                workers: int | None = None, threads: int | None = None) -> Target:
    """A target for ``cpus`` CPUs; UsageError for an unknown app or a bad override."""
    family = app if isinstance(app, AppFamily) else get_app(app)
    if server.gateway not in family.modules:
        raise UsageError(f"app family {app!r} has no {server.gateway.upper()} app for "
                         f"{server.name}: expected one of {', '.join(family.modules)}")
    return Target(server=server, family=family,
                  preset=preset_for(server, cpus, workers=workers, threads=threads))


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_version(server: Server) -> str | None:
    """The installed version of the server's main distribution, or None when it is missing."""
    return _version(server.distribution)


def missing_distributions(server: Server) -> tuple[str, ...]:
    return tuple(d for d in server.distributions if _version(d) is None)


class MissingPackageError(TargetError):
    """A server's distribution is not installed."""


def require_installed(server: Server) -> None:
    """Raise MissingPackageError with one line naming the package and how to install it."""
    missing = missing_distributions(server)
    if missing:
        names = " ".join(missing)
        raise MissingPackageError(
            f"{server.name}: package {names} is not installed; install it with "
            f"'{Path(sys.executable).parent / 'pip'} install {names}'")


def listen_backlog() -> int:
    """LISTEN_BACKLOG, capped at the kernel's limit (the kernel caps it silently anyway)."""
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text().strip())
    except (OSError, ValueError):
        return LISTEN_BACKLOG
    return min(LISTEN_BACKLOG, somaxconn)


def render_command(target: Target, *, port: int, host: str = HOST,
                   root: Path | PurePath | None = None, python: str | None = None,
                   backlog: int | None = None) -> list[str]:
    """The server's argv for this target, with every placeholder filled in.

    ``python`` (default: this interpreter; ``{bindir}`` is its folder), ``root`` and
    ``backlog`` are given for another machine's paths, e.g. a container's.
    """
    python = python or sys.executable
    values = {
        "python": python,
        "bindir": str(PurePath(python).parent),
        "root": str(root if root is not None else REPO_DIR),
        "app": target.app_spec,
        "host": host,
        "port": str(port),
        "workers": str(target.preset.workers),
        "backlog": str(backlog if backlog is not None else listen_backlog()),
        "threads": str(target.preset.threads),
    }
    argv: list[str] = []
    for part in target.server.command:
        if part == THREADS_ARGS:
            if target.preset.threads is not None:
                argv += [arg.format(**values) for arg in target.server.threads_args]
        else:
            argv.append(part.format(**values))
    return argv
