"""A target (a server serving an app family with a preset), and what is needed to start one:
the preset for N CPUs, the installed versions, the listen backlog and the command line."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any

from harness.catalogue.apps import APPS
from harness.catalogue.servers import SERVERS
from harness.catalogue.types import (
    HOST,
    LISTEN_BACKLOG,
    REPO_DIR,
    THREADS_ARGS,
    AppFamily,
    Preset,
    Server,
)
from harness.errors import TargetError, UsageError


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

    @property
    def db_pool(self) -> int | None:
        """Database connections each worker process holds (None: no database routes)."""
        driver = self.family.database
        return driver.pool if driver is not None else None

    @property
    def db_connections(self) -> int:
        """Database connections the whole target may hold: pool x worker processes."""
        return (self.db_pool or 0) * self.preset.workers

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
            "database": None if self.family.database is None else {
                "driver": self.family.database.name,
                "pool_per_process": self.db_pool,
                "connections": self.db_connections,
                "note": self.family.database.note,
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
