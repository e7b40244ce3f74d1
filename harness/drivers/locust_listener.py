"""The harness's listener, loaded into every Locust process: ``locust -f LOCUSTFILE,<this file>``.

It records every request's latency at full precision (Locust's ``response_time`` is a float in
ms; Locust's own statistics round it into buckets) into HDR histograms in microseconds, by
second of a measured window, with errors by kind, exactly as the built-in generator counts them
(see harness.drivers.locust_book.LocustBook).

- The window: once every user is spawned, the master (or the single process) opens it after the
  warm-up, ``[m0, m1)`` on time.monotonic_ns(), and tells the workers (a ``harness_window``
  message; a worker on another machine shifts it to its own clock). At ``m1`` it stops the test:
  Locust's ``--stop-timeout`` lets requests in flight finish; those it then kills count as
  timeouts (the harness wraps Locust's HTTP sessions to see them).
- Workers send what they recorded since the last report with every ``report_to_master`` (every
  3 s) and the rest from their ``test_stop`` (a ``harness_final`` message, which Locust delivers
  before the worker reports that it stopped, so the master has it before its own test stops).
- The master (or the single process) writes every process's book to the JSON file named by
  $HARNESS_LOCUST_RESULT and quits.

Its settings come from ``--harness-config`` (or $HARNESS_LOCUST_CONFIG): JSON written by
harness.drivers.locust. Locust forwards custom options to its workers, so a worker started by
hand on another machine needs only the files.

This file runs under gevent's monkey patching: it imports locust, gevent, hdrh and the standard
library only, and loads locust_book.py beside it by path (importing the ``harness`` package
would start the built-in generator's imports: uvloop, numpy).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import gevent
from gevent import GreenletExit
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.rpc.protocol import Message
from locust.runners import MasterRunner, WorkerRunner

if TYPE_CHECKING:
    from harness.drivers.locust_book import LocustBook

CONFIG_ENV = "HARNESS_LOCUST_CONFIG"
RESULT_ENV = "HARNESS_LOCUST_RESULT"
# the request context key by which the harness's own user asks for its body to be checked
CHECK_BODY_KEY = "harness_check_body"
# the window opens this long after the warm-up at the earliest, so that every worker has
# heard of it before it opens
WINDOW_LEAD_S = 0.1
# after the test stopped, how long the master waits for a worker's last report
FINAL_REPORT_WAIT_S = 5.0
NS_PER_S = 1_000_000_000
MAX_UNWRAP = 5
NS_PER_MS = 1_000_000
US_PER_MS = 1_000

logger = logging.getLogger("harness.locust")


def _load_book_module() -> ModuleType:
    name = "harness_locust_book"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().with_name("locust_book.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_book_module = _load_book_module()


def _boot_id() -> str:
    """Which boot of which machine: time.monotonic_ns() is shared by processes of one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


class _State:
    """One per Locust process."""

    def __init__(self) -> None:
        self.env: Environment | None = None
        self.config: dict[str, Any] = {}
        self.book: LocustBook | None = None
        self.expect_body: bytes | None = None
        self.window: tuple[int, int] | None = None
        self.cpu0_ns = self.cpu1_ns = self.t0_ns = self.t1_ns = 0
        self.final_sent = False
        self.finishing = False
        self.users = 0
        # master: per worker (client id) its identity, its book and whether its last came in
        self.workers: dict[str, dict[str, Any]] = {}

    @property
    def role(self) -> str:
        runner = self.env.runner if self.env is not None else None
        if isinstance(runner, MasterRunner):
            return "master"
        if isinstance(runner, WorkerRunner):
            return "worker"
        return "local"

    def identity(self) -> dict[str, Any]:
        runner = self.env.runner if self.env is not None else None
        return {"role": self.role, "host": socket.gethostname(), "pid": os.getpid(),
                "cpus": _cpus(), "client_id": getattr(runner, "client_id", None)}

    def cpu(self) -> dict[str, float]:
        """This process's own CPU time over the window (for workers the harness cannot see)."""
        end_cpu = self.cpu1_ns or time.process_time_ns()
        end_t = self.t1_ns or time.monotonic_ns()
        if not self.t0_ns:
            return {"cpu_s": 0.0, "window_s": 0.0}
        return {"cpu_s": (end_cpu - self.cpu0_ns) / NS_PER_S,
                "window_s": max(0, end_t - self.t0_ns) / NS_PER_S}

    def new_book(self) -> LocustBook:
        seconds = _book_module.window_seconds(float(self.config["duration_s"]))
        book: LocustBook = _book_module.LocustBook(hdr=tuple(self.config["hdr"]), seconds=seconds)
        return book


STATE = _State()


def read_config(environment: Environment) -> dict[str, Any]:
    text = getattr(environment.parsed_options, "harness_config", "") or \
        os.environ.get(CONFIG_ENV, "")
    if not text:
        raise RuntimeError(f"the harness listener needs --harness-config or ${CONFIG_ENV}")
    config: dict[str, Any] = json.loads(text)
    return config


def _add_options(parser: Any, **_kw: Any) -> None:
    parser.add_argument("--harness-config", type=str, env_var=CONFIG_ENV, default="",
                        include_in_web_ui=False,
                        help="the harness driver's settings (JSON); forwarded to workers")


def _on_init(environment: Environment, **_kw: Any) -> None:
    STATE.env = environment
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message("harness_final", _on_final)
        _listen(environment.events.worker_report, _on_worker_report)
    elif isinstance(runner, WorkerRunner):
        runner.register_message("harness_window", _on_window)
        _listen(environment.events.report_to_master, _on_report_to_master)
    FastHttpSession.request = _guard(FastHttpSession.request)  # type: ignore[method-assign]
    HttpSession.request = _guard(HttpSession.request)  # type: ignore[method-assign]


def _guard(original: Callable[..., Any]) -> Callable[..., Any]:
    """A request that Locust kills at the end of its stop timeout never fires events.request:
    count it as a timeout, in the second it was sent."""
    @functools.wraps(original)
    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent_ns = time.monotonic_ns()
        try:
            return original(self, method, url, *args, **kwargs)
        except GreenletExit:
            book = STATE.book
            if book is not None:
                name = kwargs.get("name") or (args[0] if args and isinstance(args[0], str)
                                              else None) \
                    or getattr(self, "request_name", None) or url
                book.error(f"{method} {name}", "timeout", sent_ns, killed=True)
            raise
    return request


def _on_test_start(environment: Environment, **_kw: Any) -> None:
    STATE.config = read_config(environment)
    expect = STATE.config.get("expect_body")
    STATE.expect_body = bytes.fromhex(expect) if expect is not None else None
    STATE.book = STATE.new_book()


def _on_spawning_complete(user_count: int, **_kw: Any) -> None:
    env = STATE.env
    if env is None or isinstance(env.runner, WorkerRunner) or STATE.window is not None:
        return
    STATE.users = user_count
    now = time.monotonic_ns()
    m0 = now + int((float(STATE.config["warmup_s"]) + WINDOW_LEAD_S) * NS_PER_S)
    m1 = m0 + int(float(STATE.config["duration_s"]) * NS_PER_S)
    _arm(m0, m1)
    if isinstance(env.runner, MasterRunner):
        env.runner.send_message("harness_window", {"m0_ns": m0, "m1_ns": m1,
                                                   "boot_id": _boot_id(),
                                                   "sent_ns": time.monotonic_ns()})
    gevent.spawn(_finish, env)


def _arm(m0: int, m1: int) -> None:
    STATE.window = (m0, m1)
    if STATE.book is not None:
        STATE.book.set_window(m0, m1)
    now = time.monotonic_ns()
    gevent.spawn_later(max(0, m0 - now) / NS_PER_S, _mark_start)
    gevent.spawn_later(max(0, m1 - now) / NS_PER_S, _mark_end)


def _mark_start() -> None:
    STATE.t0_ns, STATE.cpu0_ns = time.monotonic_ns(), time.process_time_ns()


def _mark_end() -> None:
    STATE.t1_ns, STATE.cpu1_ns = time.monotonic_ns(), time.process_time_ns()


def _on_window(environment: Environment, msg: Message, **_kw: Any) -> None:
    data = msg.data
    m0, m1 = int(data["m0_ns"]), int(data["m1_ns"])
    if data.get("boot_id") != _boot_id():
        # another machine: another monotonic clock. Shift by the offset the message shows
        # (its network delay is the error).
        offset = time.monotonic_ns() - int(data["sent_ns"])
        m0, m1 = m0 + offset, m1 + offset
    _arm(m0, m1)


def _on_request(request_type: str, name: str, response_time: float, response: Any = None,
                context: Any = None, exception: BaseException | None = None,
                **_kw: Any) -> None:
    book = STATE.book
    if book is None or not book.m1:
        return  # the warm-up
    done_ns = time.monotonic_ns()
    sent_ns = done_ns - int(response_time * NS_PER_MS)
    key = f"{request_type} {name}"
    status = getattr(response, "status_code", None) if response is not None else None
    if exception is not None:
        book.error(key, classify(exception, status), sent_ns)
    elif status is not None and not 200 <= status < 300:
        book.error(key, "status", sent_ns)
    elif STATE.expect_body is not None and context and context.get(CHECK_BODY_KEY) \
            and response.content != STATE.expect_body:
        book.error(key, "body", sent_ns)
    else:
        book.success(key, sent_ns, done_ns, int(response_time * US_PER_MS))


def classify(exception: BaseException, status: int | None) -> str:
    """The harness's error kind of a failed request."""
    if status and not 200 <= status < 300:
        return "status"
    # geventhttpclient wraps what it may retry (a timeout, a broken pipe, a connection closed
    # before the answer) in RetriesExceeded(original=...)
    for _ in range(MAX_UNWRAP):
        original = getattr(exception, "original", None)
        if not isinstance(original, BaseException):
            break
        exception = original
    if isinstance(exception, TimeoutError | gevent.Timeout) or \
            "timeout" in type(exception).__name__.lower():
        return "timeout"
    if isinstance(exception, ConnectionRefusedError | socket.gaierror):
        return "connect"
    if isinstance(exception, OSError) or \
            type(exception).__module__.startswith(("geventhttpclient", "requests", "urllib3")):
        return "io"
    # a failure the locustfile reported itself (response.failure(...)): the answer was wrong
    return "body"


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    if STATE.book is not None and not STATE.final_sent:
        data["harness"] = {"identity": STATE.identity(), "book": STATE.book.take()}


def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) and STATE.book is not None and not STATE.final_sent:
        STATE.final_sent = True
        runner.send_message("harness_final", {"identity": STATE.identity(),
                                              "book": STATE.book.take(), **STATE.cpu()})


def _worker_entry(client_id: str, identity: dict[str, Any]) -> dict[str, Any]:
    entry = STATE.workers.get(client_id)
    if entry is None:
        entry = STATE.workers[client_id] = {"identity": identity, "book": STATE.new_book(),
                                            "final": False, "cpu_s": 0.0, "window_s": 0.0}
    return entry


def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    report = data.get("harness")
    if report is not None and STATE.config:
        _worker_entry(client_id, report["identity"])["book"].add(report["book"])


def _on_final(environment: Environment, msg: Message, **_kw: Any) -> None:
    if not STATE.config:
        return
    entry = _worker_entry(msg.node_id, msg.data["identity"])
    entry["book"].add(msg.data["book"])
    entry.update(final=True, cpu_s=msg.data["cpu_s"], window_s=msg.data["window_s"])


def _finish(environment: Environment) -> None:
    """At the window's end: stop (in-flight requests get Locust's stop timeout), collect every
    process's book, write the result, quit."""
    assert STATE.window is not None
    gevent.sleep(max(0, STATE.window[1] - time.monotonic_ns()) / NS_PER_S)
    runner = environment.runner
    assert runner is not None
    STATE.finishing = True
    runner.stop()
    if isinstance(runner, MasterRunner):
        deadline = time.monotonic() + FINAL_REPORT_WAIT_S
        while time.monotonic() < deadline and (
                not STATE.workers or not all(w["final"] for w in STATE.workers.values())):
            gevent.sleep(0.05)
    try:
        _write_result(environment)
    finally:
        environment.process_exit_code = 0
        runner.quit()


def _write_result(environment: Environment) -> None:
    assert STATE.window is not None and STATE.book is not None
    runner = environment.runner
    processes: list[dict[str, Any]] = []
    if isinstance(runner, MasterRunner):
        for entry in STATE.workers.values():
            processes.append({**entry["identity"], "final": entry["final"],
                              "cpu_s": entry["cpu_s"], "window_s": entry["window_s"],
                              "book": entry["book"].to_dict()})
    else:
        processes.append({**STATE.identity(), "final": True, **STATE.cpu(),
                          "book": STATE.book.to_dict()})
    exceptions = sum(int(row.get("count", 0)) for row in runner.exceptions.values()) \
        if runner is not None else 0
    result = {
        "schema": _book_module.SCHEMA_VERSION,
        "m0_ns": STATE.window[0],
        "m1_ns": STATE.window[1],
        "users": STATE.users,
        "master": STATE.identity(),
        "processes": processes,
        "exceptions": exceptions,
    }
    path = os.environ.get(RESULT_ENV)
    if not path:
        logger.error("harness listener: $%s is not set; the result is not written", RESULT_ENV)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle)
    os.replace(tmp, path)


def _listen(hook: Any, listener: Callable[..., None]) -> None:
    hook.add_listener(listener)


_listen(events.init_command_line_parser, _add_options)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.spawning_complete, _on_spawning_complete)
_listen(events.request, _on_request)
_listen(events.test_stop, _on_test_stop)
