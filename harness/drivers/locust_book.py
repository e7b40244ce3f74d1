"""What one Locust process measured, in a form both sides of the process boundary share.

The listener (inside Locust, where gevent has patched everything) records into a
:class:`LocustBook`; a worker sends the master what it recorded since its last report
(``take``), the master adds (``add``) and writes every process's book to a JSON file, and the
driver (in the harness) reads it back. Histograms travel HDR-encoded and are only ever added,
never averaged.

This module imports hdrh and the standard library only: the listener loads it by file path,
because importing anything through the ``harness`` package would pull in the built-in
generator (uvloop, numpy) inside Locust. For the same reason it loads the error kinds
(harness/loadgen/kinds.py, which imports nothing) by file path.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

_KINDS_MODULE = "harness.loadgen.kinds"


def _error_kinds() -> tuple[str, ...]:
    """harness.loadgen.kinds.ERROR_KINDS: from the module when it is already imported (in the
    harness), else loaded by path (inside Locust)."""
    module = sys.modules.get(_KINDS_MODULE)
    if module is None:
        path = Path(__file__).resolve().parent.parent / "loadgen" / "kinds.py"
        spec = importlib.util.spec_from_file_location("harness_error_kinds", path)
        assert spec is not None and spec.loader is not None, f"cannot load {path}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    kinds: tuple[str, ...] = module.ERROR_KINDS
    return kinds


# The same kinds, in the same order, as the built-in generator's (defined once, in kinds.py).
ERROR_KINDS = _error_kinds()
NS_PER_S = 1_000_000_000
SCHEMA_VERSION = 1


def window_seconds(duration_s: float) -> int:
    """How many per-second rows a window of ``duration_s`` has (as harness.loadgen.schedule)."""
    return max(1, math.ceil(duration_s))


class LocustBook:
    """Counts and latency of the requests of one process, by second of the measured window.

    A request belongs to the measurement when it was *sent* inside ``[m0, m1)``: its latency
    (successes only) and its errors go into the second it was sent in. A success *answered*
    inside the window counts as throughput (``completed``) in the second it was answered. Until
    the window is known (``m0 == m1 == 0``) nothing is recorded: that is the warm-up.
    """

    def __init__(self, *, hdr: tuple[int, int, int], seconds: int, m0_ns: int = 0,
                 m1_ns: int = 0) -> None:
        self.hdr = hdr
        self.seconds = seconds
        self.m0 = m0_ns
        self.m1 = m1_ns
        self._reset()

    def _reset(self) -> None:
        self.sec_hist: list[HdrHistogram | None] = [None] * self.seconds
        self.sec_lost = [0] * self.seconds  # successes whose latency was out of range
        self.sec_errors = [0] * self.seconds
        self.sec_completed = [0] * self.seconds
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.by_name: dict[str, HdrHistogram] = {}
        self.by_name_errors: dict[str, int] = {}
        # counted apart from the histograms, so the two can be checked against each other
        self.requests = 0
        self.completed = 0
        self.out_of_range = 0
        self.killed = 0  # in flight when Locust stopped its users: counted as timeouts

    def new_histogram(self) -> HdrHistogram:
        return HdrHistogram(*self.hdr)

    def set_window(self, m0_ns: int, m1_ns: int) -> None:
        self.m0, self.m1 = m0_ns, m1_ns

    def _second(self, t_ns: int) -> int | None:
        if self.m0 <= t_ns < self.m1:
            return (t_ns - self.m0) // NS_PER_S
        return None

    def success(self, name: str, sent_ns: int, done_ns: int, latency_us: int) -> None:
        sec = self._second(sent_ns)
        if sec is not None:
            self.requests += 1
            hist = self.sec_hist[sec]
            if hist is None:
                hist = self.sec_hist[sec] = self.new_histogram()
            if hist.record_value(latency_us):
                named = self.by_name.get(name)
                if named is None:
                    named = self.by_name[name] = self.new_histogram()
                named.record_value(latency_us)
            else:
                self.out_of_range += 1
                self.sec_lost[sec] += 1
        done = self._second(done_ns)
        if done is not None:
            self.completed += 1
            self.sec_completed[done] += 1

    def error(self, name: str, kind: str, sent_ns: int, *, killed: bool = False) -> None:
        sec = self._second(sent_ns)
        if sec is None:
            return
        self.errors[kind] += 1
        self.sec_errors[sec] += 1
        self.by_name_errors[name] = self.by_name_errors.get(name, 0) + 1
        if killed:
            self.killed += 1

    def to_dict(self) -> dict[str, Any]:
        """JSON- and msgpack-safe: histograms HDR-encoded as text."""
        return {
            "seconds": self.seconds,
            "hist": {str(sec): h.encode().decode("ascii")
                     for sec, h in enumerate(self.sec_hist) if h is not None},
            "sec_lost": list(self.sec_lost),
            "sec_errors": list(self.sec_errors),
            "sec_completed": list(self.sec_completed),
            "errors": dict(self.errors),
            "by_name": {name: h.encode().decode("ascii") for name, h in self.by_name.items()},
            "by_name_errors": dict(self.by_name_errors),
            "requests": self.requests,
            "completed": self.completed,
            "out_of_range": self.out_of_range,
            "killed": self.killed,
        }

    def take(self) -> dict[str, Any]:
        """What was recorded since the last take (a worker's report to the master)."""
        data = self.to_dict()
        self._reset()
        return data

    def add(self, data: dict[str, Any]) -> None:
        """Add another book's ``to_dict``/``take`` (same window and layout): counts summed,
        histograms added bucket by bucket."""
        for sec_text, encoded in data["hist"].items():
            sec = int(sec_text)
            hist = self.sec_hist[sec]
            if hist is None:
                hist = self.sec_hist[sec] = self.new_histogram()
            hist.decode_and_add(encoded)
        for name, encoded in data["by_name"].items():
            named = self.by_name.get(name)
            if named is None:
                named = self.by_name[name] = self.new_histogram()
            named.decode_and_add(encoded)
        for sec in range(self.seconds):
            self.sec_lost[sec] += data["sec_lost"][sec]
            self.sec_errors[sec] += data["sec_errors"][sec]
            self.sec_completed[sec] += data["sec_completed"][sec]
        for kind in ERROR_KINDS:
            self.errors[kind] += data["errors"].get(kind, 0)
        for name, count in data["by_name_errors"].items():
            self.by_name_errors[name] = self.by_name_errors.get(name, 0) + count
        for key in ("requests", "completed", "out_of_range", "killed"):
            setattr(self, key, getattr(self, key) + data[key])

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, hdr: tuple[int, int, int]) -> LocustBook:
        book = cls(hdr=hdr, seconds=int(data["seconds"]))
        book.add(data)
        return book

    def latency(self) -> HdrHistogram:
        """Every success's latency in the window: the per-second histograms added."""
        total = self.new_histogram()
        for hist in self.sec_hist:
            if hist is not None:
                total.add(hist)
        return total
