"""Where an ASGI app runs ``/cpu``'s work (apps/README.md, "CPU work offloaded"): inline on the
event loop, on the loop's default thread pool, or in this worker process's process pool.

The process pool is one per worker process (remade when the process id changes: a pool is not
usable across a fork), of ``PROCESS_POOL_WORKERS`` processes started with ``spawn``: a fork of a
worker whose event loop, executor threads (and, under Granian, Rust runtime threads) may hold
locks at that instant is unsafe, and the spawned child imports only ``apps.raw.common`` and
this module. It is made at lifespan startup when the family's default offload
(``HARNESS_CPU_OFFLOAD``) is ``process``, otherwise on first use (a family that never asks for
it has no extra processes, whose memory would count against the server; daphne sends no
lifespan), and shut down at lifespan shutdown, or by ``concurrent.futures``' exit hook when the
server sends no lifespan. Its processes die with the worker even when it is killed: each polls
its parent and exits once it is gone, and all are in the server's process group.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from apps.raw import common

# One process per worker: the harness gives a server one CPU (its workers share it), so more
# processes would only time-slice that CPU; one is enough to take the work off the event loop,
# which is what the offload measures.
PROCESS_POOL_WORKERS = 1
PROCESS_START_METHOD = "spawn"
# How often a pool process checks that the worker that made it is still there.
PARENT_POLL_S = 1.0

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_pid = 0

InThread = Callable[[int], Awaitable[int]]


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)  # the worker is gone (killed, not shut down): nothing will ask for work again


def _die_with_parent() -> None:
    """The pool processes' initializer: a daemon thread that ends the process with its parent."""
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True,
                     name="die-with-parent").start()


def process_pool() -> ProcessPoolExecutor:
    """This worker process's pool, made on first use (its processes start on first submit)."""
    global _pool, _pool_pid
    pid = os.getpid()
    pool = _pool
    if pool is not None and _pool_pid == pid:
        return pool
    with _lock:
        if _pool is None or _pool_pid != pid:
            _pool = ProcessPoolExecutor(
                max_workers=PROCESS_POOL_WORKERS,
                mp_context=multiprocessing.get_context(PROCESS_START_METHOD),
                initializer=_die_with_parent)
            _pool_pid = pid
        return _pool


async def start_at_startup() -> None:
    """Lifespan startup: when ``HARNESS_CPU_OFFLOAD`` is ``process``, make the pool and start
    its process now, so no request pays for the spawn. Raises ValueError on a bad value."""
    if common.default_cpu_offload() == "process":
        await in_process(0)


def shutdown() -> None:
    """Lifespan shutdown: wait for the work in flight (at most one request's), cancel what is
    queued, and join the pool's processes. Blocks the loop, but no request is served by then."""
    global _pool
    with _lock:
        pool, _pool = (_pool, None) if _pool_pid == os.getpid() else (None, _pool)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _children_allowed() -> Iterator[None]:
    """Hypercorn runs its workers as daemonic multiprocessing processes, which multiprocessing
    forbids to start children (a daemon is ended without cleanup and would orphan them). Ours
    exit with their parent (``_die_with_parent``), so the flag is cleared while the pool starts
    its process (on a submit) and then put back."""
    process = multiprocessing.current_process()
    if not process.daemon:
        yield
        return
    process.daemon = False
    try:
        yield
    finally:
        process.daemon = True


def _discard(pool: ProcessPoolExecutor) -> None:
    """Drop a broken pool (one of its processes died, e.g. killed): the next request makes a
    new one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


async def in_process(n: int) -> int:
    pool = process_pool()
    try:
        with _children_allowed():
            done = asyncio.get_running_loop().run_in_executor(pool, common.cpu_work, n)
        return await done
    except BrokenProcessPool:
        _discard(pool)  # this request fails (500); the pool is remade for the next
        raise


async def in_default_thread(n: int) -> int:
    """The event loop's default executor (a ThreadPoolExecutor): the plain asyncio idiom."""
    return await asyncio.get_running_loop().run_in_executor(None, common.cpu_work, n)


async def cpu_answer(cpu: common.CpuRequest,
                     in_thread: InThread = in_default_thread) -> common.Response:
    """``/cpu``'s answer, the work run where ``cpu.offload`` says; ``in_thread`` is the
    framework's own way to a thread (Starlette's ``run_in_threadpool``, Quart's ``run_sync``,
    asgiref's ``sync_to_async``)."""
    if cpu.offload == "thread":
        result = await in_thread(cpu.n)
    elif cpu.offload == "process":
        result = await in_process(cpu.n)
    else:
        result = common.cpu_work(cpu.n)
    return common.cpu_result(cpu.n, result)
