"""Closed loop: N connections, each sends its next request the moment its answer is complete.

For peak throughput. Latency is timed from the actual send, as wrk does.
"""

from __future__ import annotations

import time
from collections import deque

from harness.loadgen.connection import Connection
from harness.loadgen.models.base import LoadModel


class ClosedLoop(LoadModel):
    name = "closed"

    def cap(self) -> int:
        return self.plan.concurrency or 1

    def initial_connections(self) -> int:
        return self.cap()

    def start(self, start_ns: int) -> None:
        self.started = True
        pool = self.pool
        now = time.monotonic_ns()
        ready, pool.idle = pool.idle, deque()
        for conn in ready:
            self.send(conn, now, now)
        for _ in range(len(pool.conns) + pool.connecting, self.cap()):
            pool.open()  # replace connections that failed before the start

    def ready(self, conn: Connection, now: int) -> None:
        if self.started and now < self.book.m1:
            # the hot path, inlined: send the next request at once
            conn.due_ns = conn.sent_ns = now
            conn.busy = conn.fresh = True
            self.pool.busy += 1
            conn.transport.write(self.request)  # type: ignore[union-attr]
        else:
            self.pool.idle.append(conn)

    def replenish(self) -> None:
        if not self.pool.stopping and (not self.started or time.monotonic_ns() < self.book.m1):
            self.pool.open()
