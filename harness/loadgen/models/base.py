"""The load-model seam: how requests are paced over the pool's connections.

A load model owns the pool of one generator process and decides what a free connection does
next (``ready``), whether a lost connection is re-opened (``replenish``), and when the load is
over. The pool and the book (accounting) are shared machinery; a model is one class, found by
name in :data:`harness.loadgen.models.LOAD_MODELS`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from harness.loadgen.accounting import Book
from harness.loadgen.connection import Connection
from harness.loadgen.httpconn import IDEMPOTENT_METHODS, http_connection_class
from harness.loadgen.pool import Pool
from harness.loadgen.spec import EncodedKind


@dataclass(frozen=True, kw_only=True)
class WorkerPlan:
    """One process's share of a LoadSpec."""

    load_model: str  # a name in LOAD_MODELS
    host: str
    port: int
    request: bytes  # HTTP: the encoded request; WebSocket: one message's payload
    expect_body: bytes | None
    concurrency: int | None  # this process's connections (closed loop)
    rate: float | None  # the global rate (open loop); this process takes every procs-th request
    proc: int
    procs: int
    max_connections: int  # this process's cap
    warmup_ns: int
    duration_ns: int
    timeout_ns: int
    websocket: bool = False
    host_header: str = ""  # WebSocket: the upgrade request's Host and path
    path: str = "/"
    text: bool = False  # WebSocket: text frames (the server validates UTF-8) or binary
    mix: tuple[EncodedKind, ...] = ()  # a request mix (models/mix.py): each kind, encoded
    resend: bool = False  # LoadSpec.resend: safe to send again whatever its method


class LoadModel(abc.ABC):
    """Paces requests over a pool. Subclasses say how many connections, and what a free one
    does; ``send`` is the one way a request goes out."""

    name: ClassVar[str]

    def __init__(self, plan: WorkerPlan, loop: asyncio.AbstractEventLoop, book: Book) -> None:
        self.plan = plan
        self.loop = loop
        self.book = book
        self.request = plan.request
        self.expect_body = plan.expect_body
        # the pool may resend a request the server never answered on a reused connection (an
        # idempotent HTTP request; never a WebSocket message)
        self.may_resend = not plan.websocket and (
            plan.resend or plan.request.split(b" ", 1)[0] in IDEMPOTENT_METHODS)
        self.started = False
        self.precise_timer = True
        self.notes: list[str] = []
        self.pool = Pool(loop, host=plan.host, port=plan.port,
                         factory=self.connection_factory(), cap=self.cap(),
                         connect_timeout_s=plan.timeout_ns / 1e9, book=book, model=self)

    def connection_factory(self) -> Callable[[Pool], Connection]:
        """The protocol this model's connections speak (HTTP/1.1 by default)."""
        return http_connection_class(self.plan.expect_body)

    @abc.abstractmethod
    def cap(self) -> int:
        """The most connections, open and opening, this process may hold."""

    @abc.abstractmethod
    def initial_connections(self) -> int:
        """How many to open before the clock starts."""

    @abc.abstractmethod
    def start(self, start_ns: int) -> None:
        """The common start time (warm-up begins): start sending."""

    @abc.abstractmethod
    def ready(self, conn: Connection, now: int) -> None:
        """A connection is free (new, or its answer is complete): send on it, or idle it."""

    @abc.abstractmethod
    def replenish(self) -> None:
        """A connection was lost or failed to open: open another if the model wants one."""

    async def prepare(self) -> None:  # noqa: B027 - optional hook
        """After the initial connections, before the clock starts (a broadcast's probe)."""

    def resend(self, due_ns: int, book: Book) -> None:  # noqa: B027 - optional hook
        """The request due at ``due_ns`` must go out again (its connection was closed);
        ``book``: the one it was counted in (its kind's, in a mix)."""

    def pick(self) -> int:
        """The kind of the next request (a mix's index; 0 for a single request)."""
        return 0

    def book_of(self, kind: int) -> Book:
        """Where a request of ``kind`` is counted."""
        return self.book

    def kind_of(self, book: Book) -> int:
        """The kind whose requests ``book`` counts."""
        return 0

    @property
    def kind_books(self) -> dict[str, Book]:
        """A mix's book per kind, by name (empty for a single request: the one book)."""
        return {}

    def schedule_over(self) -> bool:
        """Whether every request the model will send has been handed out."""
        return True

    def waiting(self) -> int:
        """Requests due but not yet sent (waiting for a connection)."""
        return 0

    def expire(self, limit_ns: int) -> None:  # noqa: B027 - optional hook
        """Requests waiting since before ``limit_ns`` time out (counted as errors)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop timers; whatever still waits counts as a timeout."""

    def send(self, conn: Connection, due: int, now: int, kind: int = 0) -> None:
        conn.due_ns = due
        conn.sent_ns = now
        conn.busy = conn.fresh = True
        self.pool.busy += 1
        conn.write(self.request)
