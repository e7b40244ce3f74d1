"""The raw apps' task log: what every worker process did with its background tasks and its
streams, written where the harness can count it after the process is gone.

When ``HARNESS_TASK_LOG`` names a folder, each process appends to two files of its own there:

- ``tasks-<pid>``: one byte per background task event, ``s`` when a task's work starts and
  ``f`` when it finishes (a task cut short, its worker killed or its handler cancelled, has an
  ``s`` and no ``f``);
- ``streams-<pid>``: one line per ``/stream`` response that ended, however it ended:
  ``<id> <sent> <of> <end_ns> <how>\\n``: the request's ``id`` (``-`` without one), the events
  handed to the server, the events asked for, ``time.monotonic_ns()`` at the end (one clock
  for every process on Linux, the client's too) and ``done`` (every event made), ``gone``
  (the server closed the response early: the client left) or ``error``.

Unset or empty, nothing is written. Each record is one ``os.write`` on a file opened with
``O_APPEND``: it lands whole even with several threads writing, costs one system call, and is on
disk (in the page cache) the moment it returns, so a worker killed a moment later has lost
nothing it wrote. The counters of ``/background/stats`` answer for one process while it lives;
this log answers for all of them, after they exit (apps/README.md, "The task log").

The readers (:func:`read_task_counts`, :func:`read_stream_ends`) are the harness's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TASK_LOG_ENV = "HARNESS_TASK_LOG"
TASK_STARTED = b"s"
TASK_FINISHED = b"f"
TASKS_PREFIX = "tasks-"
STREAMS_PREFIX = "streams-"
NO_STREAM_ID = "-"
STREAM_DONE = "done"
STREAM_GONE = "gone"
STREAM_ERROR = "error"
_FILE_MODE = 0o644


class TaskLog:
    """This process's two log files, opened on first use and again after a fork (a file
    inherited from the parent is the parent's). Thread-safe; a write that fails (the folder
    removed, a full disk) is dropped: the app answers whatever happens to the harness's log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._fds: dict[str, int | None] = {}

    def _fd(self, prefix: str) -> int | None:
        pid = os.getpid()
        if self._pid == pid and prefix in self._fds:
            return self._fds[prefix]
        with self._lock:
            if self._pid != pid:
                self._pid, self._fds = pid, {}  # the parent's stay open for the parent
            if prefix not in self._fds:
                folder = os.environ.get(TASK_LOG_ENV, "").strip()
                fd = None
                if folder:
                    with contextlib.suppress(OSError):
                        fd = os.open(os.path.join(folder, f"{prefix}{pid}"),
                                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                     _FILE_MODE)
                self._fds[prefix] = fd
            return self._fds[prefix]

    def _write(self, prefix: str, data: bytes) -> None:
        fd = self._fd(prefix)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, data)

    def task_started(self) -> None:
        self._write(TASKS_PREFIX, TASK_STARTED)

    def task_finished(self) -> None:
        self._write(TASKS_PREFIX, TASK_FINISHED)

    def stream_ended(self, stream_id: str | None, sent: int, of: int, how: str) -> None:
        """A stream's end: ``sent`` of its ``of`` events were handed to the server."""
        line = f"{stream_id or NO_STREAM_ID} {sent} {of} {time.monotonic_ns()} {how}\n"
        self._write(STREAMS_PREFIX, line.encode("ascii"))


# One per process: both apps (and the counters of /background/stats) write through it.
TASK_LOG = TaskLog()


@dataclass(frozen=True, kw_only=True)
class TaskCounts:
    """Background task events in a log folder, summed over its processes."""

    started: int = 0
    finished: int = 0
    processes: int = 0  # processes that logged a task

    @property
    def running(self) -> int:
        """Started and not finished: running now, or cut short if the processes are gone."""
        return self.started - self.finished


@dataclass(frozen=True, kw_only=True)
class StreamEnd:
    """One ``streams-<pid>`` line."""

    stream_id: str
    sent: int
    of: int
    end_ns: int
    how: str
    pid: int


def _logs(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """``(pid, path)`` of the folder's files of one kind (none when the folder is gone)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [(int(name.removeprefix(prefix)), folder / name) for name in sorted(names)
            if name.startswith(prefix) and name.removeprefix(prefix).isdigit()]


def read_task_counts(folder: Path) -> TaskCounts:
    """Every process's task events in ``folder`` (bytes other than ``s`` and ``f`` are not
    counted)."""
    started = finished = processes = 0
    for _pid, path in _logs(folder, TASKS_PREFIX):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        started += data.count(TASK_STARTED)
        finished += data.count(TASK_FINISHED)
        processes += bool(data)
    return TaskCounts(started=started, finished=finished, processes=processes)


def parse_stream_line(line: str, pid: int) -> StreamEnd | None:
    """One stream record, or None for a line that is not one (a write cut by a full disk)."""
    parts = line.split()
    if len(parts) != 5 or not all(p.isdigit() for p in parts[1:4]):
        return None
    return StreamEnd(stream_id=parts[0], sent=int(parts[1]), of=int(parts[2]),
                     end_ns=int(parts[3]), how=parts[4], pid=pid)


def read_stream_ends(folder: Path) -> list[StreamEnd]:
    """Every stream that ended, in every process of ``folder``."""
    ends = []
    for pid, path in _logs(folder, STREAMS_PREFIX):
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        ends += [end for line in text.splitlines()
                 if (end := parse_stream_line(line, pid)) is not None]
    return ends
