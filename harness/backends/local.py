"""The local backend: a target as its own process group (harness.processes), pinned to a CPU set,
on 127.0.0.1, and the services a run needs beside it (the upstream, PostgreSQL).

>>> with start_target(target, cpus=(1,), upstream_url=up.url) as srv:  # doctest: +SKIP
...     urlopen(srv.url + "/hello")
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from apps.raw.tasklog import TASK_LOG_ENV
from harness.backends.base import Backend, start_until_ready
from harness.catalogue import HOST, REPO_DIR, Target, render_command, require_installed
from harness.cpus import check_online
from harness.httpget import READY_STATUS_TEXT, answers_ready
from harness.ports import choose_port
from harness.processes import LOG_TAIL_LINES, RunningServer, spawn
from harness.services import database
from harness.signals import interrupts_deferred

__all__ = ["LOG_TAIL_LINES", "LocalBackend", "RunningServer", "start_target", "start_upstream"]

UPSTREAM_READY_PATH = "/delay?ms=0"
UPSTREAM_URL_ENV = "HARNESS_UPSTREAM_URL"
UPSTREAM_READY_RE = re.compile(rb"upstream listening on (http://[0-9.]+:\d+)")
TASK_LOG_PREFIX = "harness-tasks-"

log = logging.getLogger(__name__)


def _environment(upstream_url: str | None, target: Target | None = None,
                 db_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    app_paths = list(target.family.paths) if target is not None else []
    env["PYTHONPATH"] = os.pathsep.join(
        [*app_paths, str(REPO_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
    if target is not None:
        env.update(target.family.env)
    if upstream_url:
        env[UPSTREAM_URL_ENV] = upstream_url
    else:
        env.pop(UPSTREAM_URL_ENV, None)
    env.update(database.app_environment(target, db_url))
    return env



def start_target(target: Target, *, cpus: Sequence[int], port: int = 0,
                 upstream_url: str | None = None, db_url: str | None = None,
                 task_log: bool = False) -> RunningServer:
    """Start ``target`` pinned to ``cpus`` and block until it answers GET /hello with a 2xx.

    Port 0 picks a free port; a port in use is replaced by a free one (see ``.notes``).
    ``task_log``: a new scratch folder for the app's task log (apps/raw/tasklog.py), its
    ``task_log``; it goes when the server is stopped, or with the watchdog if the harness dies.
    Raises TargetError (with the tail of the server's output) when it cannot start.
    """
    require_installed(target.server)
    pinned = check_online(cpus)
    env = _environment(upstream_url, target, db_url)
    notes: list[str] = []
    chosen, note = choose_port(port)
    if note:
        notes.append(note)
    ready_path = target.family.ready_path

    def launch(chosen: int) -> RunningServer:
        command = render_command(target, port=chosen)
        scratch = Path(tempfile.mkdtemp(prefix=TASK_LOG_PREFIX)) if task_log else None
        launch_env = env if scratch is None else {**env, TASK_LOG_ENV: str(scratch)}
        try:
            with interrupts_deferred():  # until the group is registered for stopping
                popen, watchdog, log_path = spawn(target.server.name, command, pinned,
                                                  launch_env, scratch=scratch)
                return RunningServer(name=target.server.name, popen=popen, command=command,
                                     cpus=pinned, port=chosen, log_path=log_path,
                                     watchdog=watchdog, target=target, notes=notes,
                                     scratch=scratch, task_log=scratch)
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise

    def ready(server: RunningServer) -> None:
        server.wait_ready(functools.partial(answers_ready, server.url + ready_path),
                          f"answer GET {ready_path} with {READY_STATUS_TEXT} on {server.url}")

    return start_until_ready(target.server.name, chosen, notes, launch, ready)


def start_upstream(cpus: Sequence[int], *, port: int = 0) -> RunningServer:
    """Start the upstream delay service (apps.upstream) pinned to ``cpus``; ``.url`` is its base.

    It binds the port itself (port 0: the kernel picks), so there is no race for the port.
    """
    pinned = check_online(cpus)
    chosen, note = choose_port(port) if port else (0, "")
    command = [sys.executable, "-m", "apps.upstream", "--port", str(chosen)]
    with interrupts_deferred():  # until the group is registered for stopping
        popen, watchdog, log_path = spawn("upstream", command, pinned, _environment(None))
        server = RunningServer(name="upstream", popen=popen, command=command, cpus=pinned,
                               port=chosen, log_path=log_path, watchdog=watchdog,
                               notes=[note] if note else [])

    def ready() -> bool:
        if not server.port:
            try:
                match = UPSTREAM_READY_RE.search(log_path.read_bytes())
            except OSError:
                match = None
            if match is None:
                return False
            server.url = match.group(1).decode()
            server.port = int(server.url.rsplit(":", 1)[1])
        return answers_ready(server.url + UPSTREAM_READY_PATH)

    try:
        server.wait_ready(ready, f"print its URL and answer GET {UPSTREAM_READY_PATH}")
    except BaseException:
        server.stop()
        raise
    return server


def start_database(cpus: Sequence[int], *, connections: int, port: int = 0) -> RunningServer:
    """A scratch PostgreSQL cluster (harness.services.database) pinned to ``cpus`` on
    127.0.0.1, with TechEmpower's tables seeded; ``.url`` is its postgresql:// URL.

    Stopping it removes the cluster; so does the watchdog if the harness is killed.
    """
    pinned = check_online(cpus)
    user = database.run_as()
    notes: list[str] = []
    chosen, note = choose_port(port)
    if note:
        notes.append(note)
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}

    def launch(chosen: int) -> RunningServer:
        scratch = Path(tempfile.mkdtemp(prefix="harness-postgres-"))
        try:
            data = database.init_cluster(scratch, user)
            command = database.server_command(data, chosen, connections)
            with interrupts_deferred():  # until the group is registered for stopping
                popen, watchdog, log_path = spawn("postgres", command, pinned, env, user=user,
                                                  scratch=scratch)
                server = RunningServer(name="postgres", popen=popen, command=command,
                                       cpus=pinned, port=chosen, log_path=log_path,
                                       watchdog=watchdog, notes=notes, scratch=scratch)
        except BaseException:
            database.remove(scratch)
            raise
        server.url = database.local_url(chosen)
        return server

    def ready(server: RunningServer) -> None:
        admin = database.local_url(server.port, database.SUPERUSER)
        server.wait_ready(functools.partial(database.accepts, admin),
                          f"accept connections on {HOST}:{server.port}")

    server = start_until_ready("postgres", chosen, notes, launch, ready)
    try:
        database.create_database(database.local_url(server.port, database.SUPERUSER))
        database.seed(server.url)
    except BaseException:
        server.stop()
        raise
    return server


class LocalBackend(Backend):
    """Targets as local process groups pinned with taskset (the default backend)."""

    name = "local"

    def start_target(self, target: Target, *, cpus: Sequence[int], port: int = 0,
                     upstream_url: str | None = None, db_url: str | None = None,
                     task_log: bool = False) -> RunningServer:
        return start_target(target, cpus=cpus, port=port, upstream_url=upstream_url,
                            db_url=db_url, task_log=task_log)

    def start_upstream(self, *, cpus: Sequence[int], port: int = 0) -> RunningServer:
        return start_upstream(cpus, port=port)

    def start_database(self, *, cpus: Sequence[int], connections: int) -> RunningServer:
        return start_database(cpus, connections=connections)
