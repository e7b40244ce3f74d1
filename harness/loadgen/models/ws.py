"""WebSocket echo load: the closed and open loops over WebSocket connections.

A message round trip is the unit: closed loop, each connection sends its next message when the
echo of the previous one arrives; open loop, message i is due at start + i/R and waits for a
free connection (latency from the intended send). The client offers no extension and sends no
pings (``websocket.CLIENT_SETTINGS``, recorded with the result).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.loadgen.connection import Connection
from harness.loadgen.models.base import LoadModel
from harness.loadgen.models.closed import ClosedLoop
from harness.loadgen.models.open import OpenLoop
from harness.loadgen.pool import Pool
from harness.loadgen.wsconn import WsConnection


def ws_factory(model: LoadModel) -> Callable[[Pool], Connection]:
    """WebSocket connections to the plan's path (a model's ``connection_factory``)."""
    plan = model.plan

    def factory(pool: Pool) -> Connection:
        return WsConnection(pool, host_header=plan.host_header, path=plan.path, text=plan.text)

    return factory


class WsClosedLoop(ClosedLoop):
    """Each connection sends its next message the moment the echo of the last arrives."""

    name = "ws-closed"

    def connection_factory(self) -> Callable[[Pool], Connection]:
        return ws_factory(self)

    def ready(self, conn: Connection, now: int) -> None:
        if self.started and now < self.book.m1:
            conn.due_ns = conn.sent_ns = now
            conn.busy = conn.fresh = True
            self.pool.busy += 1
            conn.write(self.request)
        else:
            self.pool.idle.append(conn)


class WsOpenLoop(OpenLoop):
    """Messages due at start + i/R over a fixed set of connections, all opened up front (a
    WebSocket client keeps its connections; it does not open one per message)."""

    name = "ws-open"

    def connection_factory(self) -> Callable[[Pool], Connection]:
        return ws_factory(self)

    def initial_connections(self) -> int:
        return self.cap()

    def replenish(self) -> None:
        if not self.pool.stopping:
            self.pool.open()  # keep the set whole: a lost connection is replaced
