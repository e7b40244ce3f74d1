"""A target running in a container: its state, output and stop, and the two ways its CPU and
memory are sampled (its cgroup's processes on this machine, or the engine's stats API).

CPU and memory are sampled over the container's processes: the engine is on this machine, so
its cgroup's ``cgroup.procs`` lists host pids and the local backend's ``TreeSampler`` reads them
(RSS and PSS from /proc, as for a local target). With an engine elsewhere (``DOCKER_HOST``
pointing at another machine), the engine's stats API gives CPU and an RSS-like memory (no PSS).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from harness import compose_file
from harness.backends.base import ResourceSampler, RunningTarget
from harness.backends.local import LOG_TAIL_LINES
from harness.catalogue import Target
from harness.cpus import cpus_text
from harness.sampling import (
    MB,
    SAMPLE_INTERVAL_S,
    PeriodicSampler,
    Sample,
    TreeSampler,
    watched_cpu_seconds,
)


class ContainerHost(Protocol):
    """What a container target needs of the backend that started it (the backend module imports
    this one, so it is named by what it offers, not imported)."""

    remote: str | None
    project: str
    image: str | None
    _running: set[ContainerTarget]

    @property
    def client(self) -> Any: ...

STOP_GRACE_S = compose_file.STOP_GRACE_S
GONE_TIMEOUT_S = 30.0
GONE_POLL_S = 0.1

log = logging.getLogger(__name__)


class ContainerTarget(RunningTarget):
    """A started container: a target (or the upstream) answering on ``url``."""

    # its processes are the engine's children, not the harness's (harness.noise)
    in_harness_tree = False

    def __init__(self, *, backend: ContainerHost, name: str, service: str, container: Any,
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
