"""The compose backend: each target in a container started by Docker Compose, pinned with cpuset.

One image holds every server (``compose/Dockerfile``); it is built once per run, tagged with a
hash of what it is built from, so the engine's cache serves every run until a file changes. Each
start writes a Compose file for one service (from :mod:`harness.compose_file`: the command,
preset, backlog and access-log settings of the local backend, the container's Python) with the
run's exact port, cpuset, app and environment, and runs ``docker compose up``. Containers use the
host's network and bind 127.0.0.1, so the generator on the host reaches them as it reaches local
processes; readiness is GET /hello answering 200, polled until a deadline.

Nothing survives a run. Everything the run creates carries the label ``harness.run=<id>`` (and
the Compose project ``harness-<id>``), so cleanup removes exactly its own:

- ``stop()`` stops a container (TERM, a grace period, KILL: ``docker stop``) and removes it;
- ``close()`` (and an ``atexit`` hook: a normal exit, Ctrl-C, the run's SIGTERM handler) removes
  every container and network labelled with the run;
- a watchdog process (its own session: a terminal's Ctrl-C does not reach it) does the same when
  the harness disappears, even by SIGKILL;
- Ctrl-C and SIGTERM are held back while a container is created and registered, and while it
  is stopped (:func:`harness.signals.interrupts_deferred`).

CPU and memory are sampled over the container's processes: the engine is on this machine, so
its cgroup's ``cgroup.procs`` lists host pids and the local backend's ``TreeSampler`` reads them
(RSS and PSS from /proc, as for a local target). With an engine elsewhere (``DOCKER_HOST``
pointing at another machine), the engine's stats API gives CPU and an RSS-like memory (no PSS).
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from harness import compose_file
from harness.backends.base import Backend, ResourceSampler, RunningTarget, start_until_ready
from harness.backends.local import (
    LOG_TAIL_LINES,
    UPSTREAM_READY_PATH,
    UPSTREAM_READY_RE,
    http_status,
)
from harness.catalogue import HOST, REPO_DIR, Target, listen_backlog
from harness.cpus import check_online, cpus_text
from harness.errors import TargetError, UsageError
from harness.ports import choose_port, free_port
from harness.sampling import (
    MB,
    SAMPLE_INTERVAL_S,
    PeriodicSampler,
    Sample,
    TreeSampler,
    watched_cpu_seconds,
)
from harness.signals import interrupts_deferred

COMPOSE_TIMEOUT_S = 180.0  # one ``up`` (creating a container copies the image on some drivers)
CONNECT_TIMEOUT_S = 10.0  # is an engine there?
# One engine API call. Removing a container or an image can take long: with the vfs storage
# driver every layer and every container is a full copy of the image's files.
ENGINE_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 1800.0
STOP_GRACE_S = compose_file.STOP_GRACE_S
GONE_TIMEOUT_S = 30.0
GONE_POLL_S = 0.1
WATCHDOG_POLL_S = 0.2
# After the harness is gone, the watchdog sweeps for this long: a ``compose up`` the harness
# started just before it died may still create a container.
WATCHDOG_SWEEP_S = 20.0
BUILD_TAIL_LINES = 20

LABEL_RUN = "harness.run"  # every container the run creates: harness.run=<run id>
LABEL_SERVICE = "harness.service"
LABEL_PORT = "harness.port"
LABEL_OWNER = "harness.owner"  # host:pid of the harness that started it
LABEL_IMAGE = "harness.image"  # on the images: harness.image=servers
PROJECT_LABEL = "com.docker.compose.project"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
START_ENGINE_HINT = ("start one (e.g. 'sudo systemctl start docker'; in this repository's CI: "
                     "'source ../shared/docker/local-engine.sh start') or set DOCKER_HOST to a "
                     "reachable engine")

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


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def engine_address(host: str | None = None) -> str | None:
    """The engine's machine when it is another one (``tcp://``, ``ssh://``), else None."""
    parts = urlsplit(host or docker_host())
    if parts.scheme in ("tcp", "ssh", "http", "https") and parts.hostname not in (
            None, "localhost", "127.0.0.1", "::1"):
        return parts.hostname
    return None


def find_compose() -> list[str]:
    """The Compose tool: the ``docker compose`` plugin, else ``docker-compose``."""
    docker = shutil.which("docker")
    if docker:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run([docker, "compose", "version"], capture_output=True,
                                   timeout=CONNECT_TIMEOUT_S, check=False)
            if probe.returncode == 0:
                return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise UsageError("--backend compose needs Docker Compose: install the 'docker compose' "
                     "plugin or 'docker-compose' (Debian: apt-get install docker-compose)")


def connect() -> Any:
    """A docker SDK client for DOCKER_HOST; UsageError (one line) when no engine answers."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - a dependency of the project
        raise UsageError("--backend compose needs the docker package: "
                         "pip install 'docker>=7'") from None
    try:
        client = docker.from_env(timeout=int(CONNECT_TIMEOUT_S))
        client.ping()
        client.api.timeout = ENGINE_TIMEOUT_S
    except (DockerException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"no Docker engine reachable at DOCKER_HOST={docker_host()} "
                         f"({reason[:160]}): {START_ENGINE_HINT}") from None
    return client


def _answers(url: str, path: str) -> bool:
    return http_status(url, path) == 200


def _labels_filter(**labels: str) -> dict[str, list[str]]:
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


def _containers(client: Any, labels: dict[str, str], *, stopped: bool = True) -> list[Any]:
    """The containers carrying every one of ``labels`` (running only unless ``stopped``)."""
    # docker-py lists, then inspects each container: one removed in between (by the watchdog,
    # or a stop on another thread) would fail the whole listing with a 404 unless ignored
    return list(client.containers.list(all=stopped, ignore_removed=True,
                                       filters=_labels_filter(**labels)))


def build_image(client: Any, *, base_image: str,
                on_line: Callable[[str], None] | None = None) -> tuple[str, bool]:
    """Build the servers' image unless the engine has it; (tag, built now).

    The tag is a hash of everything the image is built from, so a change rebuilds. A failed
    build raises UsageError naming the failing step, with its last lines of output.
    """
    from docker.errors import APIError, BuildError, ImageNotFound

    base_id = None
    with contextlib.suppress(ImageNotFound, APIError):
        base_id = client.images.get(base_image).id
    digest = compose_file.context_hash(base_image=base_image, base_image_id=base_id)
    tag = f"{compose_file.IMAGE_NAME}:{digest}"
    with contextlib.suppress(ImageNotFound):
        client.images.get(tag)
        return tag, False
    step, lines = "", []
    try:
        stream = client.api.build(
            path=str(REPO_DIR), dockerfile=str(compose_file.DOCKERFILE.relative_to(REPO_DIR)),
            tag=tag, buildargs={"BASE_IMAGE": base_image}, network_mode="host", rm=True,
            forcerm=True, decode=True, labels={LABEL_IMAGE: "servers"},
            timeout=BUILD_TIMEOUT_S)
        for chunk in stream:
            if "error" in chunk:
                lines.append(str(chunk["error"]))
                raise BuildError(str(chunk["error"]), [])
            for line in str(chunk.get("stream", "")).splitlines():
                if line.startswith("Step "):
                    step, lines = line, []
                elif line.strip():
                    lines.append(line)
                    lines = lines[-BUILD_TAIL_LINES:]
                if on_line is not None and line.strip():
                    on_line(line)
    except (BuildError, APIError) as exc:
        tail = "\n".join(lines[-BUILD_TAIL_LINES:]) or str(exc)
        raise UsageError(f"building the servers' image from {compose_file.DOCKERFILE} "
                         f"(BASE_IMAGE={base_image}) failed at {step or 'the start'}; "
                         f"its output ends with:\n{tail}") from None
    threading.Thread(target=_prune_old_images, args=(tag,), name="prune-images",
                     daemon=True).start()
    return tag, True


def _prune_old_images(keep: str) -> None:
    """Remove this image's older builds, in the background (slow on some storage drivers); an
    image a container still uses is kept, and a failure only leaves an image behind."""
    try:
        import docker

        client = docker.from_env(timeout=int(ENGINE_TIMEOUT_S))  # its own: another thread
        for image in client.images.list(filters=_labels_filter(**{LABEL_IMAGE: "servers"})):
            if keep not in image.tags:
                with contextlib.suppress(Exception):
                    client.images.remove(image.id)
    except Exception as exc:  # the engine's business; the run goes on
        log.debug("pruning old images: %s", exc)


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
        for container in _containers(self.client, {LABEL_PORT: str(port)}, stopped=False):
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
            found = _containers(self.client, {LABEL_RUN: self.run_id, LABEL_SERVICE: spec.name})
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
                     upstream_url: str | None = None) -> ContainerTarget:
        """Start ``target``'s container pinned to ``cpus``; return once GET /hello answers 200.

        Port 0 picks a free port; a port in use is replaced by a free one (see ``.notes``),
        unless a harness container left by an earlier run holds it: UsageError naming it.
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
                upstream_url=upstream_url, backlog=listen_backlog(),
                labels=self._labels(service, chosen))
            return self._up(spec, port=chosen, cpus=pinned, target=target, notes=notes)

        def ready(running: ContainerTarget) -> None:
            running.wait_ready(functools.partial(_answers, running.url, ready_path),
                               f"answer GET {ready_path} with 200 on {running.url}")

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
            return http_status(running.url, UPSTREAM_READY_PATH) == 200

        try:
            running.wait_ready(ready, f"print its URL and answer GET {UPSTREAM_READY_PATH}")
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
        names = [c.name for c in _containers(self._client, {LABEL_RUN: self.run_id})]
        names += [n.name for n in self._client.networks.list(
            filters=_labels_filter(**{PROJECT_LABEL: self.project}))]
        return names

    def remove_all(self) -> None:
        """Remove every container and network of this run (by label), whatever their state."""
        if self._client is None:
            return
        from docker.errors import APIError, NotFound

        for container in _containers(self._client, {LABEL_RUN: self.run_id}):
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True, v=True)
        for network in self._client.networks.list(
                filters=_labels_filter(**{PROJECT_LABEL: self.project})):
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
                    if self._watchdog.poll() is None:
                        self._watchdog.kill()
                    self._watchdog.wait()
                    if self._watchdog.stdin is not None:
                        with contextlib.suppress(OSError):
                            self._watchdog.stdin.close()
                if self._workdir is not None:
                    shutil.rmtree(self._workdir, ignore_errors=True)
                _LIVE.discard(self)


_LIVE: set[ComposeBackend] = set()


@atexit.register
def _close_all() -> None:
    for backend in list(_LIVE):
        backend.close()


class ContainerTarget(RunningTarget):
    """A started container: a target (or the upstream) answering on ``url``."""

    # its processes are the engine's children, not the harness's (harness.noise)
    in_harness_tree = False

    def __init__(self, *, backend: ComposeBackend, name: str, service: str, container: Any,
                 command: list[str], cpus: tuple[int, ...], port: int, url: str,
                 compose_path: Path, target: Target | None = None,
                 notes: Sequence[str] = ()) -> None:
        self.backend = backend
        self.name = name
        self.service = service
        self.container = container
        self.command = command
        self.cpus = cpus
        self.port = port
        self.url = url
        self.target = target
        self.notes = list(notes)
        self.compose_text = compose_path.read_text()
        super().__init__()
        self._final_state: dict[str, Any] | None = None
        self._final_tail: str | None = None
        self._procs_path: Path | None = None
        self._init_pid: int | None = None
        backend._running.add(self)

    def __repr__(self) -> str:
        return f"<ContainerTarget {self.name} {self.container.name} {self.url}>"

    def _state(self) -> dict[str, Any]:
        if self._final_state is not None:
            return self._final_state
        from docker.errors import APIError, NotFound

        try:
            self.container.reload()
        except (NotFound, APIError):
            return {"Status": "removed", "Running": False}
        return dict(self.container.attrs.get("State", {}))

    def alive(self) -> bool:
        return not self._stopped and bool(self._state().get("Running"))

    def logs(self, tail: int | None = None) -> str:
        from docker.errors import APIError, NotFound

        try:
            data: bytes = self.container.logs(tail=tail if tail is not None else "all")
        except (NotFound, APIError):
            return ""
        return data.decode("utf-8", "replace")

    def log_tail(self) -> str:
        if self._final_tail is not None:
            return self._final_tail
        return "\n".join(self.logs(tail=LOG_TAIL_LINES).strip().splitlines()[-LOG_TAIL_LINES:])

    def exit_reason(self) -> str:
        state = self._state()
        if state.get("Running") and not self._stopped:
            return f"{self.name} is running (container {self.container.name})"
        code = state.get("ExitCode")
        why = [f"exit code {code}" if code is not None else str(state.get("Status"))]
        if state.get("OOMKilled"):
            why.append("killed: out of memory")
        if state.get("Error"):
            why.append(str(state["Error"]))
        reason = f"{self.name} (container {self.container.name}) exited ({', '.join(why)})"
        tail = self.log_tail()
        return f"{reason}; its output ends with:\n{tail}" if tail else reason

    # -- sampling

    def processes(self) -> list[psutil.Process]:
        """The container's processes now (host pids, from its cgroup), its init excluded."""
        if self._stopped or self._procs_path is None:
            return []
        try:
            pids = [int(p) for p in self._procs_path.read_text().split()]
        except (OSError, ValueError):
            return []
        procs = []
        for pid in sorted(pids):
            if pid == self._init_pid:
                continue
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        return procs

    def cgroup_procs(self) -> Path | None:
        """The container's ``cgroup.procs`` on this machine, or None (an engine elsewhere).

        The engine's pid for the container is checked against its id in /proc/PID/cgroup, so a
        pid of another machine is never mistaken for one here.
        """
        if self.backend.remote:
            return None
        state = self._state()
        pid, cid = int(state.get("Pid") or 0), str(self.container.id)
        if not pid:
            return None
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if cid not in path:
                continue
            roots = [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")] if not controllers \
                else [Path("/sys/fs/cgroup") / controllers.removeprefix("name=")]
            for root in roots:
                candidate = root / path.lstrip("/") / "cgroup.procs"
                with contextlib.suppress(OSError, ValueError):
                    if pid in {int(p) for p in candidate.read_text().split()}:
                        self._init_pid = pid
                        return candidate
        return None

    def sampler(self, *, watch_cpus: Sequence[int] = (), census_after_s: float | None = None,
                engine_stats: bool = False) -> ResourceSampler:
        """Over the container's processes from its cgroup (RSS and PSS), or, for an engine on
        another machine (or ``engine_stats``), from the engine's stats API (no PSS)."""
        if not engine_stats and self._procs_path is None:
            self._procs_path = self.cgroup_procs()
        if engine_stats or self._procs_path is None:
            return EngineStatsSampler(self.container, watch_cpus=watch_cpus)
        # host network: the container's sockets are in this machine's network namespace
        return TreeSampler(self.processes, watch_cpus=watch_cpus,
                           census_port=self.port, census_after_s=census_after_s)

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "command": list(self.command),
                "container": self.container.name, "container_id": self.container.id,
                "service": self.service, "project": self.backend.project,
                "image": self.backend.image, "cpuset": cpus_text(self.cpus)}

    # -- stopping

    def _stop_now(self) -> None:
        """TERM, a grace period, KILL (``docker stop``); then the container is removed."""
        from docker.errors import APIError, NotFound

        try:
            with contextlib.suppress(NotFound, APIError):
                self.container.stop(timeout=int(STOP_GRACE_S))
            self._final_state = None
            state = self._state()
            self._final_tail = "\n".join(
                self.logs(tail=LOG_TAIL_LINES).strip().splitlines()[-LOG_TAIL_LINES:])
            self._final_state = state
            with contextlib.suppress(NotFound, APIError):
                self.container.remove(force=True, v=True)
            self._wait_removed()
        finally:
            self.backend._running.discard(self)

    def _wait_removed(self) -> None:
        from docker.errors import NotFound

        deadline = time.monotonic() + GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                self.backend.client.containers.get(self.container.id)
            except NotFound:
                return
            time.sleep(GONE_POLL_S)
        log.warning("%s: container %s still exists after removal", self.name,
                    self.container.name)


class EngineStatsSampler(PeriodicSampler):
    """Samples a container through the engine's stats API (an engine on another machine).

    CPU: the container's cumulative CPU time. Memory: RSS-like (anonymous memory, or usage
    minus page cache); PSS is unknown (None). The generator's CPUs are read here, from
    /proc/stat, as for the local sampler.
    """

    def __init__(self, container: Any, *, interval_s: float = SAMPLE_INTERVAL_S,
                 watch_cpus: Sequence[int] = ()) -> None:
        super().__init__(interval_s=interval_s, watch_cpus=watch_cpus)
        self._container = container
        self._base_ns: int | None = None
        self._last: Sample | None = None

    def _read(self) -> tuple[int, float] | None:
        from docker.errors import APIError, NotFound

        try:
            stats = self._container.stats(stream=False, one_shot=True)
        except (NotFound, APIError, OSError, ValueError):
            return None
        cpu_ns = int(stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage") or 0)
        memory = stats.get("memory_stats", {}) or {}
        detail = memory.get("stats", {}) or {}
        rss = detail.get("total_rss", detail.get("rss", detail.get("anon")))
        if rss is None:
            usage = int(memory.get("usage") or 0)
            rss = usage - int(detail.get("total_inactive_file", detail.get(
                "inactive_file", detail.get("cache", 0))) or 0)
        return cpu_ns, max(0, int(rss)) / MB

    def _take(self) -> Sample:
        before = time.monotonic_ns()
        read = self._read()
        t_ns = (before + time.monotonic_ns()) // 2  # the API call's midpoint
        busy_s, total_s = watched_cpu_seconds(self._watch_cpus)
        if read is None:  # the container is gone: its last figures stand
            last = self._last
            sample = Sample(t_ns=t_ns, cpu_s=last.cpu_s if last else 0.0,
                            rss_mb=last.rss_mb if last else 0.0, pss_mb=None,
                            cpus_busy_s=busy_s, cpus_total_s=total_s)
        else:
            cpu_ns, rss_mb = read
            if self._base_ns is None:
                self._base_ns = cpu_ns
            sample = Sample(t_ns=t_ns, cpu_s=(cpu_ns - self._base_ns) / 1e9, rss_mb=rss_mb,
                            pss_mb=None, cpus_busy_s=busy_s, cpus_total_s=total_s)
        self._last = sample
        return sample


@contextlib.contextmanager
def compose_backend() -> Iterator[ComposeBackend]:
    """``with compose_backend() as backend:`` a checked backend, closed on the way out."""
    backend = ComposeBackend()
    with backend:
        yield backend
