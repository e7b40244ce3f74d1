"""The Backend seam: how a target (a server serving an app) is started, watched and stopped.

A backend starts a target pinned to a CPU set and hands back a :class:`RunningTarget`: its URL,
whether it is alive and why it exited, how to stop it (everything it started, gone), and a
resource sampler for the server's CPU and memory during a trial. It also starts the upstream
delay service. The runner, ``serve`` and ``verify`` hold only this interface; backends are
chosen by name from :data:`harness.backends.BACKENDS`.

>>> from harness.backends import get_backend
>>> with get_backend("local") as backend:  # doctest: +SKIP
...     with backend.start_target(target, cpus=(1,)) as running:
...         urlopen(running.url + "/hello")
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from harness.catalogue import Target
from harness.errors import TargetError, UsageError
from harness.ports import PORT_ATTEMPTS, PORT_IN_USE_RE, free_port
from harness.sampling import Usage
from harness.signals import interrupts_deferred

# How long a started server may take to answer, and how often it is asked (every backend).
READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.05

log = logging.getLogger(__name__)


@runtime_checkable
class ResourceSampler(Protocol):
    """Samples the server's CPU and memory between ``start()`` and ``stop()``.

    ``stop()`` returns the samples as :class:`harness.sampling.Usage`, on ``time.monotonic_ns``
    (the clock the generator's measured window is on). ``watch_cpus`` given to the factory are
    the generator's CPUs: how busy they were is sampled too.
    """

    def start(self) -> None: ...
    def stop(self) -> Usage: ...
    @property
    def running(self) -> bool: ...


class RunningTarget(abc.ABC):
    """A started target (or the upstream). ``stop()`` is idempotent; also a context manager.

    Subclasses call ``super().__init__()`` and implement ``_stop_now``; ``stop`` runs it once,
    with Ctrl-C and SIGTERM held until it is done (harness.signals.interrupts_deferred), so an
    interrupt cannot end a stop half way.
    """

    name: str
    url: str  # http://HOST:PORT, no trailing slash
    command: list[str]
    cpus: tuple[int, ...]
    notes: list[str]  # what the user should know (a port that was taken, ...)
    # whether its processes descend from the harness's (a local process group: yes; a
    # container: no), so what else used the machine is not mistaken for it (harness.noise)
    in_harness_tree: bool = True
    # the folder its app writes its task log in (apps/raw/tasklog.py), when it was started with
    # one the harness can read and can stop by signal (a local process group); else None
    task_log: Path | None = None

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether it is still running (False once stopped)."""

    @abc.abstractmethod
    def log_tail(self) -> str:
        """The end of its output (for errors that must show why it failed)."""

    def wait_ready(self, ready: Callable[[], bool], what: str,
                   timeout_s: float | None = None) -> None:
        """Poll ``ready`` until it holds (no sleep-and-hope); TargetError if it exits first or
        the deadline (default READY_TIMEOUT_S) passes, with the end of its output."""
        if timeout_s is None:
            timeout_s = READY_TIMEOUT_S
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise TargetError(self.exit_reason())
            if ready():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                raise TargetError(f"{self.name} did not {what} within {timeout_s:g}s"
                                  + (f"; its output ends with:\n{tail}" if tail else ""))
            time.sleep(READY_POLL_S)

    @abc.abstractmethod
    def exit_reason(self) -> str:
        """Why it is not running, with the end of its output; meaningful once not alive."""

    def __init__(self) -> None:
        self._stop_lock = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        """TERM, a grace period, KILL: every process (or container) it started is gone."""
        with interrupts_deferred():
            with self._stop_lock:
                if self._stopped:
                    return
                self._stopped = True
            self._stop_now()

    @abc.abstractmethod
    def _stop_now(self) -> None:
        """Stop it (called once, by ``stop``)."""

    def send_stop_signal(self) -> None:
        """SIGTERM to its main process only, as a process manager (systemd's main PID,
        Docker, Kubernetes) asks a server to stop: what the server then does with its workers
        is its own documented graceful shutdown. Only where ``task_log`` is set."""
        raise NotImplementedError(f"{self.name}: cannot be signalled by the harness")

    def wait_exited(self, timeout_s: float) -> bool:
        """Whether every one of its processes is gone within ``timeout_s`` (``stop`` still
        cleans up after). Only where ``task_log`` is set."""
        raise NotImplementedError(f"{self.name}: cannot be watched by the harness")

    def kill_now(self) -> None:
        """SIGKILL to every one of its processes, its files kept for reading (``stop``
        removes them). Only where ``task_log`` is set."""
        raise NotImplementedError(f"{self.name}: cannot be signalled by the harness")

    @abc.abstractmethod
    def sampler(self, *, watch_cpus: Sequence[int] = (),
                census_after_s: float | None = None) -> ResourceSampler:
        """A new sampler of this target's CPU and memory (whole process tree or container);
        with ``census_after_s``, where the processes can be read, it also counts each
        process's connections on the target's port that long after it starts
        (harness.sampling)."""

    def describe(self) -> dict[str, Any]:
        """What run.json records of this running target (pid, container, ...)."""
        return {"url": self.url, "command": list(self.command)}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Backend(abc.ABC):
    """Starts targets and the upstream. Use it as a context manager: ``close()`` removes
    whatever the backend itself set up (images are kept; containers and networks are not)."""

    name: ClassVar[str]

    def check(self) -> None:  # noqa: B027 - optional hook: most backends always work
        """Raise UsageError (one line: what is missing, how to get it) when it cannot work."""

    def describe(self) -> dict[str, Any]:
        """What run.json records of the backend (its name, engine version, ...)."""
        return {"name": self.name}

    @abc.abstractmethod
    def start_target(self, target: Target, *, cpus: Sequence[int], port: int = 0,
                     upstream_url: str | None = None, db_url: str | None = None,
                     task_log: bool = False) -> RunningTarget:
        """Start ``target`` pinned to ``cpus``; return once it answers GET /hello with 200.
        ``db_url``: the database its database routes use (harness.services.database).
        ``task_log``: give its app a task log folder of its own (apps/raw/tasklog.py), set as
        the running target's ``task_log`` where the harness can read it (else None).

        Port 0 picks a free port. Raises TargetError (with the end of the server's output)
        when it cannot start, UsageError for input that can never work.
        """

    @abc.abstractmethod
    def start_upstream(self, *, cpus: Sequence[int], port: int = 0) -> RunningTarget:
        """Start the upstream delay service (apps.upstream) pinned to ``cpus``."""

    def start_database(self, *, cpus: Sequence[int], connections: int) -> RunningTarget:
        """Start a seeded scratch PostgreSQL (harness.services.database) pinned to ``cpus``,
        allowing ``connections`` clients; its ``url`` is a postgresql:// URL."""
        raise UsageError(f"the {self.name} backend cannot start a database: run with the local "
                         "backend, or give --db-url")

    def close(self) -> None:  # noqa: B027 - optional hook: most backends set nothing up
        """Remove what the backend set up for this session; idempotent."""

    def __enter__(self) -> Self:
        self.check()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


Running = TypeVar("Running", bound=RunningTarget)


def start_until_ready(name: str, port: int, notes: list[str], launch: Callable[[int], Running],
                      ready: Callable[[Running], None]) -> Running:
    """Launch a server on ``port`` and wait for ``ready`` (which raises TargetError if it never
    is); whatever was launched is stopped when that fails or is interrupted.

    A free port can be taken by another process between choosing it and the server binding it:
    when the server's output says so, it is launched again on another free port (up to
    PORT_ATTEMPTS in all), and ``notes`` says which. The notes are logged once it is up.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        running = launch(port)
        try:
            ready(running)
        except TargetError as exc:
            running.stop()
            if attempt < PORT_ATTEMPTS and PORT_IN_USE_RE.search(str(exc)):
                taken, port = port, free_port()
                notes.append(f"Port taken: port {taken} was taken before {name} bound it, so "
                             f"another free port is used: {port}")
                continue
            raise
        except BaseException:
            running.stop()
            raise
        for line in notes:
            log.warning("%s", line)
        return running
    raise AssertionError("unreachable")  # pragma: no cover
