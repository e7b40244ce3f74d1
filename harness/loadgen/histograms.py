"""HDR histograms of latency in microseconds, filled in batches from raw nanosecond samples.

The hot path only appends an int to an ``array('q')`` (per second of the measurement). A
periodic flush turns each batch into (value, count) pairs with numpy and records those into
the histograms: a few hundred ``record_value`` calls a second instead of one per request.
"""

from __future__ import annotations

from array import array

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: anything longer is counted in out_of_range
SIGNIFICANT_DIGITS = 3
NS_PER_US = 1_000
NS_PER_S = 1_000_000_000

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p99", 99.0),
    ("p99_9", 99.9), ("p99_99", 99.99),
)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def merge(histograms: list[HdrHistogram]) -> HdrHistogram:
    """Add counts (never average percentiles)."""
    total = new_histogram()
    for hist in histograms:
        if hist.get_total_count():
            total.add(hist)
    return total


def percentiles_ms(hist: HdrHistogram | None) -> dict[str, float | None]:
    """p50..p99_99, max and mean in milliseconds; all None for an empty histogram."""
    keys = [k for k, _ in PERCENTILES] + ["max", "mean"]
    if hist is None or hist.get_total_count() == 0:
        return dict.fromkeys(keys)
    out: dict[str, float | None] = {
        key: hist.get_value_at_percentile(pct) / 1000.0 for key, pct in PERCENTILES
    }
    out["max"] = hist.get_max_value() / 1000.0
    out["mean"] = hist.get_mean_value() / 1000.0
    return out


def counts_indices(hist: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """hdrh's ``_counts_index_for`` for many values at once (same arithmetic, vectorised)."""
    masked = values | hist.sub_bucket_mask
    # bit length; exact through float64 since values stay below 2**53
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + hist.unit_magnitude)
    indices: np.ndarray = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub_bucket \
        - hist.sub_bucket_half_count
    return indices


def record_batch(samples_ns: array[int], hists: tuple[HdrHistogram, ...]) -> int:
    """Record nanosecond samples into every histogram of ``hists``; return how many were out
    of range (counted by the caller, never dropped silently).

    The counts are added straight into hdrh's counters array (through a numpy view), the same
    cells ``record_value`` would increment, with total, min and max kept as it keeps them.
    """
    if not samples_ns:
        return 0
    us = np.frombuffer(samples_ns, dtype=np.int64) // NS_PER_US
    keep = (us >= 0) & (us <= HIGHEST_US)
    out_of_range = int(us.size - np.count_nonzero(keep))
    us = us[keep]
    if not us.size:
        return out_of_range
    low, high = int(us.min()), int(us.max())
    # every histogram here comes from new_histogram(): one layout, so one bincount serves all
    first = hists[0]
    added = np.bincount(counts_indices(first, us), minlength=first.counts_len)[:first.counts_len]
    for hist in hists:
        assert hist.counts_len == first.counts_len, "histograms of different layouts"
        counts = np.ctypeslib.as_array(hist.counts)
        counts += added.astype(counts.dtype)
        hist.total_count += int(us.size)
        hist.min_value = min(hist.min_value, low)
        hist.max_value = max(hist.max_value, high)
    return out_of_range


class SecondBook:
    """Raw samples of one stream (latency or service time), bucketed by measured second."""

    def __init__(self, seconds: int) -> None:
        self.buckets: list[array[int]] = [array("q") for _ in range(seconds)]
        self.total = new_histogram()
        self.per_second: list[HdrHistogram | None] = [None] * seconds
        self.out_of_range = 0
        self.out_of_range_per_second = [0] * seconds

    def flush(self) -> None:
        for sec, bucket in enumerate(self.buckets):
            if not bucket:
                continue
            # swap first: numpy holds a view on the old array while recording
            self.buckets[sec] = array("q")
            hist = self.per_second[sec]
            if hist is None:
                hist = self.per_second[sec] = new_histogram()
            lost = record_batch(bucket, (self.total, hist))
            self.out_of_range += lost
            self.out_of_range_per_second[sec] += lost

    def add(self, other: SecondBook) -> None:
        """Add ``other``'s flushed counts (a request kind's book into the total)."""
        if other.total.get_total_count():
            self.total.add(other.total)
        for sec, hist in enumerate(other.per_second):
            if hist is None:
                continue
            mine = self.per_second[sec]
            if mine is None:
                mine = self.per_second[sec] = new_histogram()
            mine.add(hist)
        self.out_of_range += other.out_of_range
        for sec, lost in enumerate(other.out_of_range_per_second):
            self.out_of_range_per_second[sec] += lost

    def encoded_seconds(self) -> list[bytes | None]:
        return [h.encode() if h is not None else None for h in self.per_second]
