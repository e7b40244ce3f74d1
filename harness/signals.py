"""One way of handling Ctrl-C and SIGTERM for every command.

Both take the KeyboardInterrupt path (``terminate_as_interrupt``): ``run`` and ``serve`` unwind
through their ``finally`` blocks, which stop every server and close the run folder, and the CLI
exits 130. Where an interrupt must not land (between spawning a process group and registering
it for stopping, or in the middle of stopping one), ``interrupts_deferred`` holds it until the
block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

# Signals held back (see interrupts_deferred) while a process group is spawned or stopped.
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt: one path for both.

    SIGINT is set too, not left to Python's default: a process started in the background by a
    non-interactive shell inherits SIGINT ignored, and ``kill -INT`` would then do nothing.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    with _handling(handler):
        yield


@contextlib.contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM inside the block; the previous ones restored."""
    previous = {signum: signal.signal(signum, handler) for signum in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that arrived.

    Python-level handlers, not a blocked signal mask: a mask would be inherited across exec by
    the servers spawned inside the block. Nested blocks pass the signal outwards. Signals only
    reach Python's main thread, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or any(
            signal.getsignal(signum) is None for signum in DEFERRED_SIGNALS):
        yield  # (None: a handler set outside Python, which could not be put back)
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    try:
        with _handling(hold):
            yield
    finally:
        if received:
            # through whatever handler was in place before: KeyboardInterrupt, the run's SIGTERM
            # handler, an outer deferral, or the default action
            signal.raise_signal(received[0])
