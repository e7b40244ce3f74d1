"""A started process group pinned to a CPU set, and everything that makes sure it ends.

Every process a server (or a service) starts stays in one new session and process group,
pinned with ``taskset`` before its first instruction so forked and spawned workers inherit the
CPU set. Nothing survives the harness:

- ``stop()`` sends TERM to the group, waits a grace period, then KILLs the group and every process
  of the tree, and checks with psutil that none is left;
- an ``atexit`` hook stops what is still running when the harness exits normally or on Ctrl-C;
- a tiny watchdog process per group (in its own session, so a terminal's Ctrl-C or hang-up does
  not reach it) KILLs the group as soon as the harness disappears, even by SIGKILL, and removes
  the group's log and scratch folder;
- Ctrl-C (SIGINT) and SIGTERM are held back while a group is being spawned and registered, and
  while it is being stopped, then delivered: an interrupt in between could otherwise lose the
  only handle on a new process group, or end a stop after its watchdog was disarmed.

prctl(PR_SET_PDEATHSIG) is not used: Linux sends it when the *thread* that forked the child
exits, so a target started from a short-lived thread would be killed under the runner's feet, and
it only covers the direct child, not the workers.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from harness.backends.base import ResourceSampler, RunningTarget
from harness.catalogue import HOST, REPO_DIR, Target
from harness.cpus import cpus_text
from harness.errors import TargetError
from harness.sampling import TreeSampler

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
KILL_WAIT_S = 5.0
GONE_POLL_S = 0.02
WATCHDOG_POLL_S = 0.1
LOG_TAIL_LINES = 15
LOG_TAIL_BYTES = 16_384

# Runs with ``python -c``: argv[1] is the harness pid, argv[2:] the paths to remove (the group's
# log file, a scratch folder); the process group id arrives on stdin. It KILLs the group (and
# removes the paths) when the harness is gone: stdin at EOF or the parent pid changed (the check
# that holds even when a forked child of the harness still holds the pipe).
_WATCHDOG = """
import os, select, shutil, signal, sys
harness, buf, pgid = int(sys.argv[1]), b"", None
while True:
    ready, _, _ = select.select([0], [], [], POLL_S)
    if ready:
        data = os.read(0, 64)
        if not data:
            break
        buf += data
        if pgid is None and b"\\n" in buf:
            pgid = int(buf.split(b"\\n")[0])
    if os.getppid() != harness:
        break
if pgid is not None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    for path in sys.argv[2:]:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
""".replace("POLL_S", repr(WATCHDOG_POLL_S))


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _describe_returncode(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _wait_gone(procs: Sequence[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as gone); return the survivors."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(GONE_POLL_S)
        alive = [p for p in alive if _alive(p)]
    return alive


class RunningServer(RunningTarget):
    """A started process group: a target (or the upstream) answering on ``url``.

    ``stop()`` is idempotent and runs at interpreter exit for anything still running; the
    object is also a context manager.
    """

    def __init__(self, *, name: str, popen: subprocess.Popen[bytes], command: list[str],
                 cpus: tuple[int, ...], port: int, log_path: Path,
                 watchdog: subprocess.Popen[bytes], target: Target | None = None,
                 notes: Sequence[str] = (), scratch: Path | None = None,
                 task_log: Path | None = None) -> None:
        self.name = name
        self.task_log = task_log  # inside ``scratch``: removed with it
        self.target = target
        self.command = command
        self.cpus = cpus
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.scratch = scratch
        self.notes = list(notes)
        self._popen = popen
        self._watchdog = watchdog
        self._pgid = popen.pid  # start_new_session: the leader's pid is the group id
        self._leader = psutil.Process(popen.pid)
        super().__init__()
        self._final_tail: str | None = None
        self.leftovers: list[int] = []
        _LIVE.add(self)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("alive" if self.alive() else "dead")
        return f"<RunningServer {self.name} {self.url} pid={self.pid} {state}>"

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def pgid(self) -> int:
        return self._pgid

    @property
    def returncode(self) -> int | None:
        """The leader's exit status once it has exited (negative: killed by that signal)."""
        return self._popen.poll()

    def alive(self) -> bool:
        return not self._stopped and self._popen.poll() is None

    def log_tail(self) -> str:
        return self._final_tail if self._final_tail is not None else _tail(self.log_path)

    def exit_reason(self) -> str:
        code = self._popen.poll()
        if code is None:
            return f"{self.name} is running"
        tail = self.log_tail()
        reason = f"{self.name} exited ({_describe_returncode(code)})"
        return f"{reason}; its output ends with:\n{tail}" if tail else reason

    def sampler(self, *, watch_cpus: Sequence[int] = (),
                census_after_s: float | None = None) -> ResourceSampler:
        return TreeSampler(self.processes, watch_cpus=watch_cpus,
                           census_port=self.port, census_after_s=census_after_s)

    def describe(self) -> dict[str, object]:
        return {"url": self.url, "command": list(self.command), "pid": self.pid}

    def processes(self) -> list[psutil.Process]:
        """The whole tree now (leader first), for CPU and memory sampling."""
        if self._stopped or not _alive(self._leader):
            return []
        try:
            children = self._leader.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [self._leader, *children]

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, signum)

    def _stop_now(self) -> None:
        """TERM to the group, a grace period, then KILL; every process of the tree is reaped."""
        try:
            tree = [self._leader, *self._descendants()]
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=STOP_GRACE_S)
            # workers that left the tree (their master died first) are still in the group
            alive = _wait_gone(tree + _group_members(self._pgid),
                               max(0.0, deadline - time.monotonic()))
            if alive or self._popen.poll() is None:
                self._signal_group(signal.SIGKILL)
                for proc in alive:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(timeout=KILL_WAIT_S)
                alive = _wait_gone(alive, KILL_WAIT_S)
            leftovers = {p.pid for p in alive + _group_members(self._pgid)}
            self.leftovers = sorted(leftovers)
            if self.leftovers:
                log.warning("%s: processes %s survived SIGKILL", self.name, self.leftovers)
        finally:
            self._end_watchdog()
            self._final_tail = _tail(self.log_path)
            with contextlib.suppress(OSError):
                self.log_path.unlink()
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
            _LIVE.discard(self)

    def send_stop_signal(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self._popen.pid, signal.SIGTERM)

    def wait_exited(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=timeout_s)
        # workers whose master went first are still in the group until they end too
        left = _wait_gone(_group_members(self._pgid), max(0.0, deadline - time.monotonic()))
        return self._popen.poll() is not None and not left

    def kill_now(self) -> None:
        self._signal_group(signal.SIGKILL)
        for proc in _group_members(self._pgid):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=KILL_WAIT_S)

    def _descendants(self) -> list[psutil.Process]:
        try:
            return self._leader.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def _end_watchdog(self) -> None:
        end_watchdog(self._watchdog)



_LIVE: set[RunningServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def end_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """Disarm a watchdog once what it guards is stopped: it is killed before it could act."""
    if watchdog.poll() is None:
        watchdog.kill()
    watchdog.wait()
    if watchdog.stdin is not None:
        with contextlib.suppress(OSError):
            watchdog.stdin.close()


def _start_watchdog(*paths: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), *map(str, paths)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, cwd="/",
    )


def _pin_self(cpus: tuple[int, ...]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)
    return pin


def spawn(name: str, command: list[str], cpus: tuple[int, ...], env: dict[str, str], *,
          user: str | None = None, scratch: Path | None = None,
          ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path]:
    """Start ``command`` in a new session pinned to ``cpus``, with its watchdog armed.

    ``user``: run it as this (unprivileged) user; ``scratch``: a folder the watchdog removes
    with the log when the harness dies (``RunningServer`` removes it on stop)."""
    handle, log_name = tempfile.mkstemp(prefix=f"harness-{name}-", suffix=".log")
    log_path = Path(log_name)
    # taskset pins before exec, so no Python runs in the forked child; the preexec_fn
    # fallback is for systems without util-linux.
    taskset = shutil.which("taskset")
    argv = [taskset, "-c", cpus_text(cpus), *command] if taskset else command
    watchdog = _start_watchdog(log_path, *([scratch] if scratch is not None else []))
    if user is not None:
        os.chown(log_path, pwd.getpwnam(user).pw_uid, -1)
    try:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            cwd=REPO_DIR if user is None else "/", env=env, start_new_session=True,
            preexec_fn=None if taskset else _pin_self(cpus), user=user,
        )
    except OSError as exc:
        watchdog.kill()
        watchdog.wait()
        raise TargetError(f"{name}: cannot start {command[0]}: {exc.strerror}") from None
    finally:
        os.close(handle)
    assert watchdog.stdin is not None
    watchdog.stdin.write(f"{popen.pid}\n".encode())
    watchdog.stdin.flush()
    return popen, watchdog, log_path

