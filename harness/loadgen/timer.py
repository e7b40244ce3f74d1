"""A one-shot wake-up at an absolute monotonic time, precise to tens of microseconds.

asyncio and uvloop timers have millisecond resolution (uvloop rounds delays to whole ms), which
would add up to a millisecond of the generator's own lateness to every open-loop latency. On
Linux a timerfd (nanosecond resolution, CLOCK_MONOTONIC like ``time.monotonic_ns``) watched by
the event loop does better; elsewhere we fall back to ``loop.call_later``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1
_NS_PER_S = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class PreciseTimer:
    """Calls ``callback()`` once, at or just after the last time given to :meth:`at`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        self._spec = _Itimerspec()
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            self._settime = libc.timerfd_settime
            self._settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                      ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        except (OSError, AttributeError):
            fd = -1
        if fd >= 0:
            self._fd = fd
            self._spec_ref = ctypes.byref(self._spec)
            loop.add_reader(fd, self._fired)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def at(self, when_ns: int) -> None:
        if self._fd >= 0:
            # 0 would disarm the timer; a time in the past fires at once
            sec, nsec = divmod(max(when_ns, 1), _NS_PER_S)
            self._spec.it_value.tv_sec = sec
            self._spec.it_value.tv_nsec = nsec
            self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
            return
        if self._handle is not None:
            self._handle.cancel()
        delay_s = max(0.0, (when_ns - time.monotonic_ns()) / _NS_PER_S)
        self._handle = self._loop.call_later(delay_s, self._callback)

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        self._callback()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
