"""Statistics over repeats: the mean and its confidence interval, Student's t on log figures,
and who cannot be told apart from the best.

Why these tests. Servers differ by a factor and the noise of a shared machine is proportional to
the figure, so every test runs on the logarithm of the repeats' figures. The variance is pooled
because that proportional noise is the machine's, common to the servers it runs; with 2 or 3
repeats a per-server variance (Welch) leaves about one degree of freedom, too few to separate
even 50x. Mann-Whitney's U cannot go below p = 0.1 with 3 repeats per server. Groups of servers
that cannot be told apart are named together (``tied``, ``leading_block``); docs/history.md
tells how these rules were measured.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import stats

from harness.analysis.wording import fmt_rps

# Without repeats, a difference this small between two servers may be run-to-run noise on a
# shared machine (docs/method.md, "Why the statistics are as they are", gives the runs).
SINGLE_RUN_NOISE_FRACTION = 0.25


# Below this ratio two throughputs are reported as "about the same", and a server is named with
# the best unless its repeats show it further behind than this (``tied``).
SAME_THROUGHPUT_RATIO_MAX = 1.05
# Why servers are named together with repeats (``tied``, ``leading_block``).
TIE_PHRASE = (f"none shown more than {round((SAME_THROUGHPUT_RATIO_MAX - 1) * 100)} % behind "
              "another")


CONFIDENCE_LEVEL = 0.95


# A difference between two servers' repeats is significant below this p-value (two-sided).
SIGNIFICANCE_LEVEL = 0.05


# Fewest repeats per server for a confidence interval and a test.
MIN_REPEATS_FOR_STATS = 2


@dataclass(frozen=True, kw_only=True)
class MeanCi:
    """The mean of a figure's repeats and the 95 % confidence interval of that mean."""

    mean: float
    low: float
    high: float
    n: int

    def text(self, fmt: Callable[[float], str] = fmt_rps, unit: str = "req/s") -> str:
        return (f"{CONFIDENCE_LEVEL:.0%} CI of the mean {fmt(self.low)}–{fmt(self.high)} "
                f"{unit} over {self.n} repeats").replace("95%", "95 %")


def mean_ci(values: Sequence[float]) -> MeanCi | None:
    """Mean and Student's t confidence interval of the mean; None under MIN_REPEATS_FOR_STATS."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(data) < MIN_REPEATS_FOR_STATS:
        return None
    mean = float(data.mean())
    sem = float(stats.sem(data))
    if sem == 0.0:
        return MeanCi(mean=mean, low=mean, high=mean, n=len(data))
    low, high = stats.t.interval(CONFIDENCE_LEVEL, len(data) - 1, loc=mean, scale=sem)
    if (data >= 0).all():  # a rate is never negative, whatever a wide interval says
        low = max(float(low), 0.0)
    return MeanCi(mean=mean, low=float(low), high=float(high), n=len(data))


@dataclass(frozen=True, kw_only=True)
class Significance:
    """Student's t-test (pooled variance) on the logarithm of two servers' repeats."""

    p_value: float
    n_a: int
    n_b: int
    what: str = "throughput"

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL

    def text(self) -> str:
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        return f"t-test on log {self.what}, {self.n_a} vs {self.n_b} repeats: {p}"


def compare_repeats(a: Sequence[float], b: Sequence[float], what: str = "throughput"
                    ) -> Significance | None:
    """Whether the repeats ``a`` and ``b`` differ (module docstring); None when either has
    fewer than MIN_REPEATS_FOR_STATS values."""
    xa = np.asarray([v for v in a if not math.isnan(v)], dtype=np.float64)
    xb = np.asarray([v for v in b if not math.isnan(v)], dtype=np.float64)
    if min(len(xa), len(xb)) < MIN_REPEATS_FOR_STATS:
        return None
    if (xa > 0).all() and (xb > 0).all():
        xa, xb = np.log(xa), np.log(xb)
    if xa.std() == 0.0 and xb.std() == 0.0:  # identical repeats: t is undefined
        p_value = 1.0 if xa.mean() == xb.mean() else 0.0
    else:
        with warnings.catch_warnings():  # nearly identical repeats: scipy warns, t is still fine
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ttest_ind(xa, xb, equal_var=True)
        p_value = float(result.pvalue)
        if math.isnan(p_value):
            p_value = 1.0
    return Significance(p_value=p_value, n_a=len(xa), n_b=len(xb), what=what)


T = TypeVar("T")  # what leading_block orders: summary rows, or servers' capacities


def behind_beyond(best: Sequence[float], other: Sequence[float], ratio: float, *,
                  lowest: bool = False) -> bool | None:
    """Whether ``other``'s repeats show it more than ``ratio`` behind ``best``'s: the
    CONFIDENCE_LEVEL confidence interval of the gap between their log means (Student's t,
    pooled variance, as ``compare_repeats``) lies wholly beyond log(``ratio``). None when
    either has fewer than MIN_REPEATS_FOR_STATS positive figures.

    A test against a margin, not against zero (a minimum-effect test): "behind" is claimed only
    where the gap is shown to matter, so a gap well inside the margin is never claimed and one
    well beyond it always is, given repeats enough; only gaps near the margin itself can come
    out either way from run to run."""
    xa = np.asarray([v for v in best if not math.isnan(v)], dtype=np.float64)
    xb = np.asarray([v for v in other if not math.isnan(v)], dtype=np.float64)
    if min(len(xa), len(xb)) < MIN_REPEATS_FOR_STATS or (xa <= 0).any() or (xb <= 0).any():
        return None
    ahead, behind = (np.log(xb), np.log(xa)) if lowest else (np.log(xa), np.log(xb))
    with warnings.catch_warnings():  # identical repeats: scipy warns, the interval is the gap
        warnings.simplefilter("ignore", RuntimeWarning)
        gap = stats.ttest_ind(ahead, behind, equal_var=True).confidence_interval(CONFIDENCE_LEVEL)
    return float(gap.low) > math.log(ratio)


def tied(best: Sequence[float], other: Sequence[float], *, lowest: bool = False,
         margin: float = SAME_THROUGHPUT_RATIO_MAX) -> bool:
    """Whether ``other`` cannot be told apart from ``best`` (each the figures of a row's
    repeats; ``lowest``: smaller is better): within SAME_THROUGHPUT_RATIO_MAX of it, or, over
    repeats, not shown more than SAME_THROUGHPUT_RATIO_MAX behind it (``behind_beyond``), or,
    measured once, within the single-run noise.

    Against a margin, not against no gap at all, so that a second run names the same group:
    a test against any gap decides servers a few per cent apart by chance (docs/method.md,
    measured with benchmarks/tie_agreement.py). ``margin`` 1.0 is the test against no gap at
    all, for that comparison."""
    b, o = float(np.mean(best)), float(np.mean(other))
    if b <= 0 or o <= 0:
        return b == o
    ratio = o / b if lowest else b / o
    if ratio < SAME_THROUGHPUT_RATIO_MAX:
        return True
    behind = behind_beyond(best, other, margin, lowest=lowest)
    if behind is None:
        return ratio < 1.0 + SINGLE_RUN_NOISE_FRACTION
    return not behind


def differ_at_all(groups: Sequence[Sequence[float]]) -> bool | None:
    """Whether a one-way analysis of variance on the logarithm of ``groups`` (each an item's
    repeats) finds any difference at SIGNIFICANCE_LEVEL; None when it does not apply: fewer
    than three groups (a pairwise test is the whole answer), or a group with fewer than
    MIN_REPEATS_FOR_STATS positive figures."""
    data = [np.asarray([v for v in g if not math.isnan(v)], dtype=np.float64) for g in groups]
    if len(data) < 3 or any(len(d) < MIN_REPEATS_FOR_STATS or (d <= 0).any() for d in data):
        return None
    logs = [np.log(d) for d in data]
    if all(d.std() == 0.0 for d in logs):  # identical repeats within each: F is undefined
        return len({float(d.mean()) for d in logs}) > 1
    with warnings.catch_warnings():  # nearly identical repeats: scipy warns, F is still fine
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.f_oneway(*logs).pvalue)
    return not math.isnan(p_value) and p_value < SIGNIFICANCE_LEVEL


def leading_block(ordered: Sequence[T], figures: Callable[[T], Sequence[float]], *,
                  lowest: bool = False, margin: float = SAME_THROUGHPUT_RATIO_MAX) -> list[T]:
    """``ordered`` best first: the first, then each next one while it cannot be told apart
    (``tied``) from any before it; the first that one of them beats ends the block.

    So "none shown more than 5 % behind another" (TIE_PHRASE) holds for every pair named (or,
    when the gate below names them all, no difference at all is shown), and no server is
    named among the best while a better one beats it (tested against the best alone, one wild
    repeat of the best ties everything near it: docs/method.md).

    Protected first (Fisher's protected LSD): with three or more items, each with repeats, the
    pairwise tests run only when a one-way analysis of variance on the log figures says the
    items differ at all (``differ_at_all``); when it does not, they are all named together.
    Among many near-equal servers, one of the dozens of pairwise tests is bound to come out
    below 0.05 by chance alone, and which one changes from run to run."""
    if differ_at_all([figures(item) for item in ordered]) is False:
        return list(ordered)
    block: list[T] = []
    seen: list[Sequence[float]] = []
    for item in ordered:
        mine = figures(item)
        if block and not all(tied(theirs, mine, lowest=lowest, margin=margin)
                             for theirs in seen):
            break
        block.append(item)
        seen.append(mine)
    return block


def ratio_ci(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """The CONFIDENCE_LEVEL confidence interval of mean(a) / mean(b), from the interval of the
    gap between their log means (Student's t, pooled variance, as ``compare_repeats``); None
    when either has fewer than MIN_REPEATS_FOR_STATS positive figures."""
    xa = np.asarray([v for v in a if not math.isnan(v)], dtype=np.float64)
    xb = np.asarray([v for v in b if not math.isnan(v)], dtype=np.float64)
    if min(len(xa), len(xb)) < MIN_REPEATS_FOR_STATS or (xa <= 0).any() or (xb <= 0).any():
        return None
    with warnings.catch_warnings():  # identical repeats: scipy warns, the interval is the gap
        warnings.simplefilter("ignore", RuntimeWarning)
        gap = stats.ttest_ind(np.log(xa), np.log(xb), equal_var=True).confidence_interval(
            CONFIDENCE_LEVEL)
    if math.isnan(float(gap.low)) or math.isnan(float(gap.high)):
        return None
    return math.exp(float(gap.low)), math.exp(float(gap.high))
