"""A request mix: several kinds of request (``95 % /io?ms=20, 5 % /cpu?n=...``) over one pool,
in the closed and the open loop.

Each kind has a book of its own (histograms, errors, per-second series), as Locust keeps
statistics per request name, but as precise as the rest of the generator. The kind of a request
is drawn from a shuffled cycle (:class:`KindCycle`), so over every cycle the mix is exact; a
connection carries its request's book and expected body, so the answer is counted where it
belongs with no lookup. A single-request load never comes here: its hot path is unchanged.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from harness.loadgen.accounting import Book
from harness.loadgen.connection import Connection
from harness.loadgen.httpconn import IDEMPOTENT_METHODS
from harness.loadgen.models.base import LoadModel, WorkerPlan
from harness.loadgen.models.closed import ClosedLoop
from harness.loadgen.models.open import OpenLoop

# Requests in one cycle of the mix; each kind holds its weight's share of the slots (at least
# one), so 95:5 is exactly 950 and 50 of every 1,000 requests a process sends.
MIX_CYCLE = 1000


def cycle_counts(weights: Sequence[float], slots: int = MIX_CYCLE) -> list[int]:
    """Each kind's slots of a cycle: its share of ``slots`` by largest remainder, at least 1
    (a kind named in a mix is sent)."""
    total = sum(weights)
    exact = [w / total * slots for w in weights]
    counts = [max(1, int(x)) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - int(exact[i]),
                          reverse=True)
    for i in by_remainder[:max(0, slots - sum(counts))]:
        counts[i] += 1
    return counts


class KindCycle:
    """The kind of each next request: a cycle of slots in proportion to the weights,
    shuffled anew each cycle (a seeded generator: the same sequence every run) so heavy
    requests do not arrive at a fixed stride."""

    def __init__(self, weights: Sequence[float], seed: int) -> None:
        self.slots = [k for k, n in enumerate(cycle_counts(weights)) for _ in range(n)]
        self.rng = random.Random(seed)
        self.rng.shuffle(self.slots)
        self.i = 0

    def next(self) -> int:
        i = self.i
        if i == len(self.slots):
            self.rng.shuffle(self.slots)
            i = 0
        self.i = i + 1
        return self.slots[i]


class _Mix(LoadModel):
    """What both loops of a mix share: the kinds, their books, and the send. (Listed first in
    each loop's bases, so its hooks override the single-request ones.)"""

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop, book: Book) -> None:
        super().__init__(plan, loop, book)
        kinds = plan.mix
        self.kind_names = tuple(kind.name for kind in kinds)
        self.kind_requests = tuple(kind.request for kind in kinds)
        self.kind_expects = tuple(kind.expect_body for kind in kinds)
        self.books = [Book(service_time=book.service_time) for _ in kinds]
        self.cycle = KindCycle([kind.weight for kind in kinds], seed=plan.proc)
        self.may_resend = plan.resend or all(
            kind.request.split(b" ", 1)[0] in IDEMPOTENT_METHODS for kind in kinds)

    def pick(self) -> int:
        return self.cycle.next()

    def book_of(self, kind: int) -> Book:
        return self.books[kind]

    def kind_of(self, book: Book) -> int:
        return self.books.index(book)

    @property
    def kind_books(self) -> dict[str, Book]:
        return dict(zip(self.kind_names, self.books, strict=True))

    def send(self, conn: Connection, due: int, now: int, kind: int = -1) -> None:
        """Send a request of ``kind`` (the cycle's next when not given): its bytes, and the
        book and expected body its answer is checked and counted against."""
        if kind < 0:
            kind = self.cycle.next()
        conn.book = self.books[kind]
        conn.expect_body = self.kind_expects[kind]  # type: ignore[attr-defined]
        conn.due_ns = due
        conn.sent_ns = now
        conn.busy = conn.fresh = True
        self.pool.busy += 1
        conn.transport.write(self.kind_requests[kind])  # type: ignore[union-attr]


class ClosedMix(_Mix, ClosedLoop):
    """The closed loop over a mix: each connection's next request is the cycle's next kind."""

    name = "closed-mix"

    def ready(self, conn: Connection, now: int) -> None:
        if self.started and now < self.book.m1:
            self.send(conn, now, now)
        else:
            self.pool.idle.append(conn)


class OpenMix(_Mix, OpenLoop):
    """The open loop over a mix: each request draws its kind when it is due (a request that
    times out waiting for a connection counts against its kind)."""

    name = "open-mix"
