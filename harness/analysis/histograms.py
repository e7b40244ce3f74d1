"""A trial's HDR histograms: loaded from its run folder, added together over repeats (never
percentiles averaged), read as percentiles in milliseconds."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from harness.errors import UsageError
from harness.results import HISTOGRAM_DIR, histogram_path


def load_histogram(run_dir: Path | str, trial_id: str,
                   kind: str = "latency") -> HdrHistogram | None:
    """The trial's HDR histogram (values in microseconds), or None when it was not written."""
    path = histogram_path(Path(run_dir), trial_id, kind)
    if not path.is_file():
        return None
    text = path.read_text(encoding="ascii").strip()
    if not text:
        return None
    try:
        return HdrHistogram.decode(text)
    except Exception as exc:  # hdrh raises its own cookie/length errors, zlib and base64 ones
        raise UsageError(f"{path}: not an HDR histogram in hdrh's encoding ({exc})") from None


def load_kind_histogram(run_dir: Path | str, trial_id: str,
                        kind: str) -> HdrHistogram | None:
    """A request mix's kind's latency histogram in one trial (histograms/*.by-name.json), or
    None when the trial wrote none for it."""
    path = Path(run_dir) / HISTOGRAM_DIR / f"{trial_id}.by-name.json"
    if not path.is_file():
        return None
    try:
        named = json.loads(path.read_text(encoding="utf-8")).get(kind) or {}
        text = named.get("latency_hdr")
        return HdrHistogram.decode(text) if text else None
    except Exception as exc:  # JSON's, hdrh's cookie/length, zlib and base64 errors
        raise UsageError(f"{path}: kind {kind!r}: not a latency histogram in hdrh's encoding "
                         f"({exc})") from None


def merge_histograms(histograms: Iterable[HdrHistogram]) -> HdrHistogram | None:
    """The sum of histograms (counts added): the only honest way to pool repeats."""
    hists = [h for h in histograms if h is not None]
    if not hists:
        return None
    # A fresh histogram wide enough for every input, so add() never overflows.
    merged = HdrHistogram(min(h.lowest_trackable_value for h in hists),
                          max(h.highest_trackable_value for h in hists),
                          max(h.significant_figures for h in hists))
    for hist in hists:
        merged.add(hist)
    return merged


def merged_histogram(run_dir: Path | str, trial_ids: Sequence[str],
                     kind: str = "latency") -> HdrHistogram | None:
    """Histograms of several trials (repeats of one level) added together.

    None when any of them is missing: a partial merge would look like the whole.
    """
    hists = [load_histogram(run_dir, t, kind) for t in trial_ids]
    if not hists or any(h is None for h in hists):
        return None
    return merge_histograms(h for h in hists if h is not None)


def histogram_ms(hist: HdrHistogram | None, percentile: float) -> float | None:
    """A percentile of a microsecond histogram in milliseconds (hdrh's own rounding)."""
    if hist is None or hist.get_total_count() == 0:
        return None
    return float(hist.get_value_at_percentile(percentile)) / 1000.0


def percentile_spectrum(hist: HdrHistogram, points: int = 200) -> pd.DataFrame:
    """Latency by percentile for an HDR-style plot: columns percentile, inverse_tail, value_ms.

    ``inverse_tail`` is 1/(1-p), the x axis of the classic percentile distribution plot.
    Percentiles go up to the last one the sample can resolve (1 - 1/count).
    """
    total = hist.get_total_count()
    if total == 0:
        return pd.DataFrame({"percentile": [], "inverse_tail": [], "value_ms": []})
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.int64)
    nonzero = np.flatnonzero(counts)
    cumulative = np.cumsum(counts[nonzero])
    values = np.array([hist.get_highest_equivalent_value(hist.get_value_from_index(int(i)))
                       for i in nonzero], dtype=np.float64)
    max_decades = max(math.log10(total), 1.0)
    tails = np.logspace(0, -max_decades, points)  # 1 - p, from 100 % down to 1/count
    percentiles = 100.0 * (1.0 - tails)
    percentiles[0] = 0.0
    # hdrh: the value at p is the first bucket whose running count reaches p % of the total.
    targets = np.maximum((percentiles * total / 100.0 + 0.5).astype(np.int64), 1)
    index = np.minimum(np.searchsorted(cumulative, targets, side="left"), len(values) - 1)
    return pd.DataFrame({
        "percentile": percentiles,
        "inverse_tail": 1.0 / tails,
        "value_ms": values[index] / 1000.0,
    })
