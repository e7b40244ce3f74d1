"""One generator process's event loop: a load model over a connection pool, with its book.

The worker only sequences: open the initial connections, start the model at the common start
time, sweep timeouts, flush the histograms, drain after the window, and report. What a request
is (``httpconn``, ``websocket``), how requests are paced (``models/``), how connections come and
go (``pool``) and what counts (``accounting``) each live in their own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from harness.loadgen.accounting import Book, WorkerReport
from harness.loadgen.histograms import NS_PER_S
from harness.loadgen.models import LOAD_MODELS, WorkerPlan
from harness.loadgen.schedule import Window

INITIAL_CONNECT_WAIT_S = 30.0
SWEEP_MIN_S = 0.01
SWEEP_MAX_S = 0.1
DRAIN_SWEEP_S = 0.005
FLUSH_INTERVAL_S = 0.5  # keeps each batch (and its pause) small
DRAIN_MARGIN_S = 1.0  # beyond the timeout, before the worker gives up on the drain


class Worker:
    """Runs one process's share of the load for warm-up, measurement and drain."""

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.loop = loop
        self.book = Book(service_time=plan.rate is not None)
        self.model = LOAD_MODELS.get(plan.load_model)(plan, loop, self.book)
        self.pool = self.model.pool
        self.done: asyncio.Future[None] = loop.create_future()
        self.handles: list[asyncio.TimerHandle] = []

    async def connect(self) -> int:
        """Open the initial connections (before the clock starts); return how many are up."""
        want = self.model.initial_connections()
        for _ in range(want):
            self.pool.open()
        connected = await self.pool.wait_initial(want, INITIAL_CONNECT_WAIT_S)
        await self.model.prepare()
        return connected

    async def run(self, start_ns: int) -> WorkerReport:
        plan = self.plan
        window = Window(start_ns=start_ns, m0_ns=start_ns + plan.warmup_ns,
                        m1_ns=start_ns + plan.warmup_ns + plan.duration_ns)
        self.book.arm(window)
        for book in self.model.kind_books.values():
            book.arm(window)
        # uvloop's timers round to the millisecond and may wake early: a load with no warm-up
        # would send its first requests before its window, uncounted
        while (early_ns := start_ns - time.monotonic_ns()) > 0:
            await asyncio.sleep(early_ns / NS_PER_S)
        self._at(window.m0_ns, self.book.mark_start)
        self._at(window.m1_ns, self.book.mark_end)
        self.handles.append(self.loop.call_later(FLUSH_INTERVAL_S, self._flush_tick))
        self.handles.append(self.loop.call_later(self._sweep_interval_s(), self._sweep))
        self.model.start(start_ns)
        hard_limit_s = (window.m1_ns - time.monotonic_ns()) / NS_PER_S \
            + plan.timeout_ns / NS_PER_S + 2 * DRAIN_MARGIN_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.done), hard_limit_s)
        return await self._finish()

    def _at(self, when_ns: int, callback: object) -> None:
        delay = max(0.0, (when_ns - time.monotonic_ns()) / NS_PER_S)
        self.handles.append(self.loop.call_later(delay, callback))  # type: ignore[arg-type]

    def _sweep_interval_s(self) -> float:
        return min(SWEEP_MAX_S, max(SWEEP_MIN_S, self.plan.timeout_ns / NS_PER_S / 10))

    def _sweep(self) -> None:
        if self.pool.stopping:
            return
        now = time.monotonic_ns()
        limit = now - self.plan.timeout_ns
        self.pool.sweep_timeouts(limit, now - int(self.pool.connect_timeout_s * NS_PER_S))
        self.model.expire(limit)
        m1 = self.book.m1
        if now >= m1 and self.model.schedule_over():
            drained = self.pool.busy == 0 and not self.model.waiting()
            if drained or now >= m1 + self.plan.timeout_ns + int(DRAIN_MARGIN_S * NS_PER_S):
                if not self.done.done():
                    self.done.set_result(None)
                return
        interval = DRAIN_SWEEP_S if now >= m1 else self._sweep_interval_s()
        self.handles.append(self.loop.call_later(interval, self._sweep))

    def _flush_tick(self) -> None:
        if self.pool.stopping:
            return
        self.book.flush()
        for book in self.model.kind_books.values():
            book.flush()
        self.handles.append(self.loop.call_later(FLUSH_INTERVAL_S, self._flush_tick))

    async def _finish(self) -> WorkerReport:
        for handle in self.handles:
            handle.cancel()
        if self.book.t_cpu1 == 0:
            self.book.mark_end()
        open_at_end = len(self.pool.conns)
        # whatever measured is still waiting or outstanding was not answered in time
        self.model.close()
        await self.pool.close()
        kinds = {name: book.report(proc=self.plan.proc, peak_connections=0, open_at_end=0,
                                   max_connections=0, precise_timer=self.model.precise_timer,
                                   notes=[])
                 for name, book in self.model.kind_books.items()}
        for book in self.model.kind_books.values():
            self.book.absorb(book)
        report = self.book.report(proc=self.plan.proc, peak_connections=self.pool.peak,
                                  open_at_end=open_at_end,
                                  max_connections=self.plan.max_connections,
                                  precise_timer=self.model.precise_timer,
                                  notes=self.model.notes)
        return dataclasses.replace(report, kinds=kinds) if kinds else report
