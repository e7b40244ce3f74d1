"""The WebSocket echo and broadcast, checked where the server and the family have them."""

from __future__ import annotations

import asyncio

from harness.checks import Check
from harness.verify.probe import (
    LiveTarget,
    shorten,
)

WS_TEXT = "echo ✓ text"
WS_BYTES = bytes(range(256))
# /ws/broadcast reaches only the subscribers on the publisher's worker process, so several
# subscribers listen, and a new publisher tries again, with more subscribers, when none of them
# shared its worker (how a pre-fork server spreads connections over its workers is the kernel's
# accept race: a run of them can land on one worker).
WS_BROADCAST_SUBSCRIBERS = 8
WS_BROADCAST_MORE_SUBSCRIBERS = 4  # added before each new attempt
WS_BROADCAST_ATTEMPTS = 8
WS_BROADCAST_WAIT_S = 2.0  # for the first subscriber to receive: one worker's fan-out
WS_BROADCAST_QUIET_S = 0.3  # the publisher hears nothing, the other subscribers are served


def check_ws_echo(target: LiveTarget) -> Check:
    name = "ws_echo"
    url = target.ws_url("/ws/echo")
    if target.silent_since is not None:
        return Check(name=name, ok=False,
                     detail=f"WebSocket {url}: not tried, {target.silent_since} got no answer")
    # Imported here: only WebSocket targets need it, and it is the heaviest import of this module.
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect
    try:
        with connect(url, open_timeout=target.timeout_s, close_timeout=target.timeout_s,
                     compression=None) as ws:
            ws.send(WS_TEXT)
            got_text = ws.recv(timeout=target.timeout_s)
            ws.send(WS_BYTES)
            got_bytes = ws.recv(timeout=target.timeout_s)
    except (OSError, TimeoutError, WebSocketException) as exc:
        return Check(name=name, ok=False, detail=f"WebSocket {url}: {type(exc).__name__}: {exc}")
    problems = []
    if got_text != WS_TEXT:
        problems.append(f"sent text {WS_TEXT!r}, got back {got_text!r}"[:200])
    if got_bytes != WS_BYTES:
        shown = shorten(got_bytes) if isinstance(got_bytes, bytes) else repr(got_bytes)[:80]
        problems.append(f"sent {len(WS_BYTES)} bytes, got back {shown}")
    if problems:
        return Check(name=name, ok=False, detail=f"WebSocket {url}: " + "; ".join(problems))
    return Check(name=name, ok=True, detail=f"WebSocket {url}: text and bytes echoed")


async def _broadcast_once(base: str, timeout_s: float) -> tuple[list[str], int]:
    """Problems seen broadcasting one message, and how many subscribers received it; raises
    when a connection fails."""
    from websockets.asyncio.client import ClientConnection, connect

    async def dial(role: str) -> ClientConnection:
        return await connect(f"{base}?role={role}", open_timeout=timeout_s,
                             close_timeout=timeout_s, compression=None, ping_interval=None)

    subscribers: list[ClientConnection] = []
    publishers: list[ClientConnection] = []
    try:
        for _ in range(WS_BROADCAST_SUBSCRIBERS):
            subscribers.append(await dial("subscriber"))
        for attempt in range(WS_BROADCAST_ATTEMPTS):
            if attempt:
                for _ in range(WS_BROADCAST_MORE_SUBSCRIBERS):
                    subscribers.append(await dial("subscriber"))
            publisher = await dial("publisher")
            publishers.append(publisher)
            payload = bytes((attempt,)) + WS_BYTES  # opaque, and which attempt it came from
            await publisher.send(payload)
            waits = [asyncio.ensure_future(s.recv()) for s in subscribers]
            done, pending = await asyncio.wait(waits, timeout=min(timeout_s, WS_BROADCAST_WAIT_S),
                                               return_when=asyncio.FIRST_COMPLETED)
            if done and pending:
                more, pending = await asyncio.wait(pending, timeout=WS_BROADCAST_QUIET_S)
                done |= more
            for wait in pending:
                wait.cancel()
            if not done:
                continue  # no subscriber on this publisher's worker: a new publisher
            problems = [f"a subscriber got {shorten(got) if isinstance(got, bytes) else got!r}"
                        f", expected the {len(payload)} bytes published"
                        for got in (wait.result() for wait in done) if got != payload][:1]
            try:
                echoed = await asyncio.wait_for(publisher.recv(), WS_BROADCAST_QUIET_S)
            except TimeoutError:
                pass
            else:
                problems.append(f"the publisher got a message back ({len(echoed)} bytes)")
            return problems, len(done)
        return [f"none of {len(subscribers)} subscribers received a message from any "
                f"of {WS_BROADCAST_ATTEMPTS} publishers within {WS_BROADCAST_WAIT_S:g} s"], 0
    finally:
        for connection in publishers + subscribers:
            await connection.close()


def check_ws_broadcast(target: LiveTarget) -> Check:
    name = "ws_broadcast"
    base = target.ws_url("/ws/broadcast")
    if target.silent_since is not None:
        return Check(name=name, ok=False,
                     detail=f"WebSocket {base}: not tried, {target.silent_since} got no "
                            "answer")
    from websockets.exceptions import WebSocketException
    try:
        problems, received = asyncio.run(_broadcast_once(base, target.timeout_s))
    except (OSError, TimeoutError, WebSocketException) as exc:
        return Check(name=name, ok=False, detail=f"WebSocket {base}: {type(exc).__name__}: {exc}")
    if problems:
        return Check(name=name, ok=False, detail=f"WebSocket {base}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"WebSocket {base}: a publisher's message reached {received} "
                        f"subscriber(s) (those on its worker), not the publisher")
