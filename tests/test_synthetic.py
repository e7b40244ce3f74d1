"""tests.support.synthetic fills its histograms and reads their percentiles and mean by numpy:
the very histograms and numbers hdrh's own (slow) calls give. Fast: no run folder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from tests.support.synthetic import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    HIST_SIGNIFICANT_FIGURES,
    _counts_indexes,
    _histogram,
    _latencies_us,
    _mean_ms,
    _ms,
)

PERCENTILES = (0.0, 1.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def _empty() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_FIGURES)


def _one_value() -> HdrHistogram:
    hist = _empty()
    hist.record_value(51_234, 7)
    return hist


def _spread() -> HdrHistogram:
    # values across many buckets, up to the histogram's highest
    hist = _empty()
    for value, count in ((1, 3), (999, 1), (2_049, 5), (123_456, 2), (HIST_HIGHEST_US, 1)):
        hist.record_value(value, count)
    return hist


def _synthetic(seed: int, median_ms: float, total: int) -> HdrHistogram:
    rng = np.random.default_rng(seed)
    return _histogram(_latencies_us(rng, median_ms, 1000), total)


@pytest.mark.parametrize("make", [
    _one_value,
    _spread,
    lambda: _synthetic(1, 50.0, 2_000),
    lambda: _synthetic(2, 0.4, 137),
    lambda: _synthetic(3, 4_000.0, 90_000),
], ids=["one-value", "spread", "io-bound", "sub-ms", "queued"])
def test_percentiles_and_mean_are_hdrhs(make: Callable[[], HdrHistogram]) -> None:
    hist = make()
    for percentile in PERCENTILES:
        assert _ms(hist, percentile) == hist.get_value_at_percentile(percentile) / 1000.0
    assert _mean_ms(hist) == hist.get_mean_value() / 1000.0


def test_an_empty_histogram_has_no_percentile_and_a_zero_mean() -> None:
    hist = _empty()
    assert _ms(hist, 99.0) is None
    assert _mean_ms(hist) == hist.get_mean_value() / 1000.0 == 0.0


def test_counts_indexes_are_hdrhs() -> None:
    hist = _empty()
    rng = np.random.default_rng(5)
    edges = [2**k + d for k in range(26) for d in (-1, 0, 1)]
    values = np.unique(np.r_[np.arange(1, 5_000), rng.integers(1, HIST_HIGHEST_US, 20_000),
                             edges, HIST_HIGHEST_US]).astype(np.int64)
    values = values[values >= HIST_LOWEST_US]
    expected = [hist._counts_index_for(v) for v in values.tolist()]
    assert _counts_indexes(hist, values).tolist() == expected


@pytest.mark.parametrize(("median_ms", "total"), [(50.0, 2_000), (0.4, 137), (4_000.0, 90_000)])
def test_a_histogram_is_the_one_a_record_per_value_makes(median_ms: float, total: int) -> None:
    values = _latencies_us(np.random.default_rng(7), median_ms, 4000)
    hist = _histogram(values, total)
    plain = _empty()
    unique, counts = np.unique(values, return_counts=True)
    weights = np.maximum(np.round(counts * total / len(values)), 1).astype(np.int64)
    for value, weight in zip(unique.tolist(), weights.tolist(), strict=True):
        plain.record_value(value, weight)
    assert hist.encode() == plain.encode()
    assert hist.get_total_count() == plain.get_total_count()
    assert hist.get_min_value() == plain.get_min_value()
    assert hist.get_max_value() == plain.get_max_value()
