"""``/ws/broadcast`` for the framework families: the subscribers of one worker process.

The same rule as the raw ASGI app (apps/README.md, "/ws/broadcast"): subscribers are kept per
event loop and process, a publisher's message goes to the subscribers of its own loop only, one
after another in the order they subscribed, and a subscriber whose send fails is dropped. Each
framework keeps its own WebSocket objects here and sends with its own API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from apps.raw import common

T = TypeVar("T")

ROLE_SUBSCRIBER = "subscriber"
ROLE_PUBLISHER = "publisher"


def role(query_string: str) -> str | None:
    """``subscriber``, ``publisher`` (the first ``role`` counts), or None: refuse."""
    value = common.query_param(query_string, "role")
    return value if value in (ROLE_SUBSCRIBER, ROLE_PUBLISHER) else None


class Subscribers(Generic[T]):
    """Per (process, event loop): subscriber id -> the framework's WebSocket object."""

    def __init__(self) -> None:
        # the loop is kept so its id cannot be reused while listed
        self._by_loop: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, dict[int, T]]] = {}

    def local(self) -> dict[int, T]:
        loop = asyncio.get_running_loop()
        key = (os.getpid(), id(loop))
        entry = self._by_loop.get(key)
        if entry is None:
            entry = (loop, {})
            self._by_loop[key] = entry
        return entry[1]

    async def publish(self, send: Callable[[T], Awaitable[None]]) -> None:
        """``send`` to every local subscriber in order; drop those whose send fails."""
        subscribers = self.local()
        for key, subscriber in list(subscribers.items()):
            try:
                await send(subscriber)
            except Exception:  # gone mid-send; the others must still be served
                subscribers.pop(key, None)
