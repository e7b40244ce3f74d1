"""run_load: check the target, start pinned generator processes, start them together, merge.

Every generator runs in its own process (also with ``procs=1``) so that pinning, the open-file
limit and the event loop never touch the caller. Processes are started with ``spawn`` because
the runner has threads (samplers) and fork with threads is unsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.errors import GeneratorError, UnreachableError, UsageError
from harness.loadgen.accounting import WorkerReport
from harness.loadgen.models import WorkerPlan
from harness.loadgen.result import LoadResult, merge_reports
from harness.loadgen.spec import Endpoint, LoadSpec, encode_mix, encode_request
from harness.loadgen.worker import INITIAL_CONNECT_WAIT_S, Worker
from harness.signals import interrupts_deferred

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

REACHABILITY_TIMEOUT_S = 2.0
READY_TIMEOUT_S = INITIAL_CONNECT_WAIT_S + 30.0  # imports plus the initial connects
START_DELAY_S = 0.1  # between "go" and the common start time, so all processes start together
GO_TIMEOUT_S = READY_TIMEOUT_S + 10.0  # a child waiting this long for "go" gives up
RESULT_MARGIN_S = 15.0  # beyond warm-up + duration + timeout, waiting for the reports
STOP_TIMEOUT_S = 2.0  # after TERM, before KILL
FILES_MARGIN = 64  # descriptors besides the connections (pipes, libraries, timerfd)
NS_PER_S = 1_000_000_000


def run_load(spec: LoadSpec) -> LoadResult:
    """Run one load to completion (blocking) and return the merged result.

    Raises UsageError for a bad spec or an unreachable target. Ctrl-C stops and reaps the
    generator processes, then re-raises KeyboardInterrupt.
    """
    spec.validate()
    target = spec.target
    check_reachable(target)
    plans = split(spec, target, files_hard_limit=raise_open_files_limit())
    cpus = spec.cpus
    children: list[tuple[Any, mpc.Connection]] = []
    try:
        for plan in plans:
            cpu = cpus[plan.proc % len(cpus)] if cpus else None
            children.append(start_child(child_main, (plan, cpu), f"harness-loadgen-{plan.proc}"))
        ready = collect(children, "ready", time.monotonic() + READY_TIMEOUT_S)
        if sum(int(n) for n, _ in ready) == 0:
            failures = [why for _, why in ready if why]
            if failures and target.websocket:
                raise UnreachableError(f"WebSocket upgrade of {target.path} on {target.host}:"
                                       f"{target.port} failed: {failures[0]}; expected a "
                                       "WebSocket echo endpoint")
            raise UnreachableError(f"could not open any connection to {target.host}:"
                                   f"{target.port}" + (f" ({failures[0]})" if failures else "")
                                   + "; expected a server accepting connections")
        start_ns = time.monotonic_ns() + int(START_DELAY_S * NS_PER_S)
        for _, pipe in children:
            pipe.send(("go", start_ns))
        deadline = time.monotonic() + START_DELAY_S + spec.warmup_s + spec.duration_s \
            + spec.timeout_s + RESULT_MARGIN_S
        reports: list[WorkerReport] = collect(children, "done", deadline)
    finally:
        reap([proc for proc, _ in children])
        for _, pipe in children:
            pipe.close()
    return merge_reports(reports, url=spec.url, concurrency=spec.concurrency, rate=spec.rate,
                         duration_s=spec.duration_s, websocket=spec.websocket)


def check_reachable(target: Endpoint, timeout_s: float = REACHABILITY_TIMEOUT_S) -> None:
    """One connect before the load, so a typo is one line and not 10 s of connect errors."""
    where = f"{target.host}:{target.port}"
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot resolve host {target.host!r} ({exc.strerror}); "
                               "expected a reachable host") from None
    except ConnectionRefusedError:
        raise UnreachableError(f"connection to {where} refused; expected a server listening "
                               "there") from None
    except TimeoutError:
        raise UnreachableError(f"connection to {where} timed out after {timeout_s:g}s; "
                               "expected a reachable server") from None
    except OSError as exc:
        raise UnreachableError(f"cannot connect to {where} ({exc.strerror or exc}); "
                               "expected a reachable server") from None


def raise_open_files_limit() -> int | None:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the limit now in force."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def split(spec: LoadSpec, target: Endpoint, *, files_hard_limit: int | None) -> list[WorkerPlan]:
    """Each process's share: connections (closed loop) or every procs-th request (open)."""
    mix = encode_mix(spec) if spec.mix else ()
    # a mix's first kind stands for the load where one request is asked for (its method, and
    # whether answers are checked: all kinds are, or none)
    request = mix[0].request if mix else encode_request(spec)
    expect_body = mix[0].expect_body if mix else spec.expect_body
    plans: list[WorkerPlan] = []
    for k in range(spec.procs):
        concurrency = _share(spec.concurrency, spec.procs, k) \
            if spec.concurrency is not None else None
        cap = max(1, _share(spec.connection_cap, spec.procs, k))
        if files_hard_limit is not None:
            usable = files_hard_limit - FILES_MARGIN
            if concurrency is not None and concurrency > usable:
                raise UsageError(f"--concurrency needs {concurrency} connections in one process "
                                 f"but the open-file limit is {files_hard_limit}; raise it "
                                 "(ulimit -n) or use more --procs")
            cap = max(1, min(cap, usable))  # the open-loop cap is a ceiling; keep it possible
        plans.append(WorkerPlan(
            load_model=spec.load_model, websocket=target.websocket,
            host_header=target.host_header, path=target.path, text=spec.text,
            host=target.host, port=target.port, request=request, mix=mix,
            expect_body=expect_body, concurrency=concurrency, rate=spec.rate,
            proc=k, procs=spec.procs, max_connections=cap,
            warmup_ns=int(spec.warmup_s * NS_PER_S), duration_ns=int(spec.duration_s * NS_PER_S),
            timeout_ns=max(1, int(spec.timeout_s * NS_PER_S)), resend=spec.resend,
        ))
    return plans


def start_child(main: Callable[..., None], args: tuple[Any, ...],
                name: str) -> tuple[Any, mpc.Connection]:
    """A spawned daemon process running ``main(pipe, *args)``, and the parent's end of its
    pipe. Spawned, not forked: the caller has threads (samplers), and fork with threads is
    unsafe."""
    ctx = mp.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=main, args=(child_end, *args), name=name, daemon=True)
    try:
        # Ctrl-C mid-start would cut the hand-over of the child's start-up data (the child then
        # dies with a traceback, "Ran out of input"): held until the child has it, then raised
        with interrupts_deferred():
            proc.start()
    except BaseException:
        parent_end.close()
        raise
    finally:
        child_end.close()
    return proc, parent_end


@contextlib.contextmanager
def reports_to(pipe: mpc.Connection) -> Iterator[None]:
    """In a child process: an exception becomes its ``("error", why)`` message to the parent
    (which raises it as GeneratorError); a parent already gone ends the child quietly."""
    try:
        yield
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone
    except Exception as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def collect(children: list[tuple[Any, mpc.Connection]], kind: str, deadline: float) -> list[Any]:
    """Wait (bounded) for one ``(kind, payload)`` message from every child, in child order."""
    pending = {id(pipe): i for i, (_, pipe) in enumerate(children)}
    out: list[Any] = [None] * len(children)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GeneratorError(f"load generator: no '{kind}' from {len(pending)} process(es) "
                               "in time")
        pipes = [pipe for _, pipe in children if id(pipe) in pending]
        for pipe in mpc.wait(pipes, timeout=min(left, 0.5)):
            index = pending.pop(id(pipe))
            try:
                tag, payload = pipe.recv()  # type: ignore[union-attr,call-arg]
            except EOFError:
                raise GeneratorError(f"load generator process {index} exited unexpectedly "
                                   f"(exit code {children[index][0].exitcode})") from None
            if tag == "error":
                raise GeneratorError(f"load generator process {index} failed: {payload}")
            out[index] = payload
    return out


def reap(procs: list[Any]) -> None:
    """TERM, then KILL after STOP_TIMEOUT_S; every child joined."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(STOP_TIMEOUT_S)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@contextlib.contextmanager
def child_loop(cpus: Iterable[int] | None) -> Iterator[asyncio.AbstractEventLoop]:
    """In a generator-side child process: Ctrl-C left to the parent (it reaches the whole
    process group; the parent decides and reaps us), pinned to ``cpus``, the open-file limit
    raised, and a fresh event loop, closed at the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    raise_open_files_limit()
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.close()


def child_main(pipe: mpc.Connection, plan: WorkerPlan, cpu: int | None) -> None:
    """A generator process: connect, report ready, wait for the common start, run, report."""
    with child_loop(() if cpu is None else (cpu,)) as loop, reports_to(pipe):
        worker = Worker(plan, loop)
        connected = loop.run_until_complete(worker.connect())
        pipe.send(("ready", (connected, worker.pool.last_failure)))
        if not pipe.poll(GO_TIMEOUT_S):
            return
        tag, start_ns = pipe.recv()
        if tag != "go":
            return
        report = loop.run_until_complete(worker.run(int(start_ns)))
        pipe.send(("done", report))

