"""The Docker engine as the compose backend sees it: where it is, a client for it, the Compose
tool, the labels that mark what a run owns, and the servers' image built once and cached.

A failure to reach any of them is a one-line UsageError that says how to fix it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from harness import compose_file
from harness.catalogue import REPO_DIR
from harness.errors import UsageError

CONNECT_TIMEOUT_S = 10.0  # is an engine there?
# One engine API call. Removing a container or an image can take long: with the vfs storage
# driver every layer and every container is a full copy of the image's files.
ENGINE_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 1800.0
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


def docker_host() -> str:
    """The engine the run uses: DOCKER_HOST, else the local socket."""
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


def labels_filter(**labels: str) -> dict[str, list[str]]:
    """An engine API filter matching every one of ``labels``."""
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


def labelled_containers(client: Any, labels: dict[str, str], *,
                        stopped: bool = True) -> list[Any]:
    """The containers carrying every one of ``labels`` (running only unless ``stopped``)."""
    # docker-py lists, then inspects each container: one removed in between (by the watchdog,
    # or a stop on another thread) would fail the whole listing with a 404 unless ignored
    return list(client.containers.list(all=stopped, ignore_removed=True,
                                       filters=labels_filter(**labels)))


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
    threading.Thread(target=prune_old_images, args=(tag,), name="prune-images",
                     daemon=True).start()
    return tag, True


def prune_old_images(keep: str) -> None:
    """Remove this image's older builds, in the background (slow on some storage drivers); an
    image a container still uses is kept, and a failure only leaves an image behind."""
    try:
        import docker

        client = docker.from_env(timeout=int(ENGINE_TIMEOUT_S))  # its own: another thread
        for image in client.images.list(filters=labels_filter(**{LABEL_IMAGE: "servers"})):
            if keep not in image.tags:
                with contextlib.suppress(Exception):
                    client.images.remove(image.id)
    except Exception as exc:  # the engine's business; the run goes on
        log.debug("pruning old images: %s", exc)
