"""Guidance: sentences computed from the trials, each carrying the trial ids it came from.

Every item's numbers are recomputed from rows of trials.csv (and, for pooled percentiles, the
histograms those rows name; for capacities, capacity.csv): throughput is the mean
``achieved_rps`` of the referenced repeats, CPU the mean ``server_cpu_pct``, memory the peak
``server_pss_mb`` (else ``server_rss_mb``), p50/p99 the percentile of the referenced histograms
added together. Only valid levels are ranked: overloaded ones (the server did not keep up) are
stated as results, invalid ones (the harness cannot vouch for them) as caveats, with reasons.

Rankings that hold. With repeats, a comparison names a winner only when the difference is
significant: Student's t-test on the logarithm of the repeats' figures, two-sided, at
SIGNIFICANCE_LEVEL; otherwise it says "no significant difference". Logarithms because servers
differ by a factor and the noise of a shared machine is proportional to the figure; a pooled
variance because that proportional noise is the machine's, common to the servers it runs, and
with 2 or 3 repeats a per-server variance (Welch) leaves about one degree of freedom, too few
to separate even 50x. (Mann-Whitney's U, distribution-free, cannot go below p = 0.1 with 3
repeats per server, so it could never separate them at 0.05.) Groups of servers that cannot be
told apart are named together: a server joins the best's group unless its repeats show it more
than SAME_THROUGHPUT_RATIO_MAX behind (``tied``: a test against that margin, not against
zero, so that a second run names the same group), and the group is protected
(``leading_block``): pairwise tests run only when a one-way analysis of variance over all of
them finds a difference. Each figure
with repeats carries the 95 % confidence interval of its mean (Student's t). Without repeats a
difference under SINGLE_RUN_NOISE_FRACTION is called noise, not a ranking.

Little's law. In closed loop, N clients on work that takes at least D seconds cannot pass
N / D req/s. D is the scenario's declared wait when its path says one (``/io?ms=50``: 0.05 s,
a floor no server can beat), else the smallest p50 of any valid closed-loop level of the run
(the fastest server's unloaded latency: a floor measured on this machine). A server at or above
CEILING_FRACTION of N / D sits at the load's own ceiling: two such servers are not ranked at
that level, the report says a higher concurrency is needed to separate them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.frames import RunData, busy_trials
from harness.cpus import parse_cpus
from harness.errors import UsageError
from harness.loadgen.result import STALL_NOTE
from harness.noise import BUSY_OTHERS_PCT, BUSY_STEAL_PCT, SLOW_CPU_FACTOR

# A level whose repeats' throughput varies more than this (coefficient of variation) is noisy.
NOISY_CV_MAX = 0.10
# Without repeats, a difference this small between two servers may be run-to-run noise. Measured
# on the shared 2-core VM of the reference run: five runs of the default io_bound plan gave
# uvicorn 5,384 to 7,281 req/s at 512 clients (a server near 100 % of its CPU moves with what
# the neighbours take); most servers moved about 10 %, a few single levels more (granian-wsgi,
# hello, 256 clients: 58k and 40k req/s in two runs).
SINGLE_RUN_NOISE_FRACTION = 0.25
# The pair most teams weigh: gunicorn's sync workers against uvicorn's event loop.
CLASSIC_PAIR = ("gunicorn-sync", "uvicorn")
# Below this ratio two throughputs are reported as "about the same", and a server is named with
# the best unless its repeats show it further behind than this (``tied``).
SAME_THROUGHPUT_RATIO_MAX = 1.05
CONFIDENCE_LEVEL = 0.95
# A difference between two servers' repeats is significant below this p-value (two-sided).
SIGNIFICANCE_LEVEL = 0.05
# Why servers are named together with repeats (``tied``, ``leading_block``).
TIE_PHRASE = (f"none shown more than {round((SAME_THROUGHPUT_RATIO_MAX - 1) * 100)} % behind "
              "another")
# Fewest repeats per server for a confidence interval and a test.
MIN_REPEATS_FOR_STATS = 2
# A closed-loop level whose throughput reaches this fraction of N / D is at the load's ceiling.
CEILING_FRACTION = 0.90
# Every figure: 6,737 / 0.012 / 1.5 / 95 (a percentage, a p-value, a ratio, a count). Two
# sentences or reasons that differ only in these say the same (harness.analysis.agreement).
FIGURE_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")
# The wait a scenario's path declares: /io?ms=50
_DECLARED_WAIT_RE = re.compile(r"[?&]ms=(\d+(?:\.\d+)?)")
# Busy trials named one by one in the caveat; the rest are counted.
MAX_BUSY_LISTED = 8
# The tail is compared at the highest of these percentiles that rests on at least
# TAIL_BEYOND_MIN requests beyond it in every trial compared: a p99 of 250 requests is the
# third slowest, which moves between repeats by more than servers differ (two io_bound runs
# of 3 repeats each, at 50 req/s, put different servers in the lowest-p99 group).
TAIL_PERCENTILES = ((99.0, "p99_ms"), (90.0, "p90_ms"))
TAIL_BEYOND_MIN = 10
# A multi-worker server's connections are unevenly spread when its busiest worker held at least
# this multiple of an even share (harness.sampling's census), with at least UNEVEN_MIN_PER_WORKER
# connections per worker to spread: a worker serves only the connections it accepted.
UNEVEN_SHARE_MIN = 2.0
UNEVEN_MIN_PER_WORKER = 2

KIND_LABELS = {
    "io": "I/O-bound",
    "cpu": "CPU-bound",
    "hello": "Plaintext hello",
    "json": "JSON",
    "websocket": "WebSocket echo",
    "ws": "WebSocket echo",
}


@dataclass(frozen=True, kw_only=True)
class GuidanceItem:
    """One sentence of guidance and where its numbers come from.

    ``trial_ids`` are the rows of trials.csv the numbers were computed from (empty when the
    sentence is about run.json, such as a server that was not supported); ``values`` holds the
    unrounded numbers that appear in ``text``. ``winners``: the servers a comparison named
    the winners (empty when it named none, or is no comparison of two sides).
    """

    topic: str
    text: str
    run_id: str
    trial_ids: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    caveat: bool = False
    winners: tuple[str, ...] = ()


# -- number formatting (the report and the tests share these) ---------------------------------

def fmt_rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.1f}×"


def fmt_pct(value: float) -> str:
    return f"{value:.0f} %"


def fmt_mb(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


# -- statistics over repeats -------------------------------------------------------------------

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


# -- who cannot be told apart from the best -------------------------------------------------------

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

    Why the margin. Tested against no difference at all, membership of the best's group
    changed from run to run for servers a few per cent apart: two quiet runs of io_bound named
    gunicorn-uvicorn with the best at 512 clients in one (5,786 req/s against 5,985) and not in
    the other (5,669 against 6,579), and modelled from four such runs (each server's mean and
    spread over starts), two runs named the same group 0.66 of the time, 0.57 with 6 repeats:
    more repeats only find smaller gaps. Against the 5 % that already makes two throughputs
    "about the same", they agree 0.88 of the time (0.91 with 6 repeats):
    benchmarks/tie_agreement.py. ``margin`` 1.0 is the test against no gap at all, for that
    comparison."""
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
    named among the best while a better one beats it. Tested against the best alone, a group
    read "5 servers that cannot be told apart" while uvicorn beat uvicorn-h11 in it (p = 0.02):
    the best's one wild repeat (4,066-6,355 req/s) had tied everything within 30 % of it.

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


def leaders(rows: pd.DataFrame, column: str, figures: Callable[[pd.Series], list[float]], *,
            lowest: bool = False) -> list[pd.Series]:
    """The best row by ``column`` and the rows that cannot be told apart from it nor from each
    other (``leading_block``), by server name.

    A ranking between servers the measurement cannot separate changes from run to run; naming
    them together is what a second run confirms. ``figures``: a row's repeats' figures."""
    ordered = rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")
    group = leading_block([row for _, row in ordered.iterrows()],
                          lambda row: figures(row) or [float(row[column])], lowest=lowest)
    return sorted(group, key=lambda r: str(r["server"]))


def group_label(group: Sequence[pd.Series]) -> str:
    """``uvicorn (ASGI)``; ``granian-asgi (ASGI) and uvicorn (ASGI)`` (by name: a stable text)."""
    names = [_row_label(r) for r in sorted(group, key=lambda r: str(r["server"]))]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def tie_phrase(group: Sequence[pd.Series], repeated: bool | None = None) -> str:
    """Why a group is named together (empty for one row). ``repeated``: whether the figures
    had repeats (default: every row's ``repeats``)."""
    if len(group) < 2:
        return ""
    if repeated is None:
        repeated = all(int(r.get("repeats", 1) or 1) >= MIN_REPEATS_FOR_STATS for r in group)
    return (TIE_PHRASE if repeated else
            f"measured once, within {SINGLE_RUN_NOISE_FRACTION:.0%} of each other: not a "
            f"ranking")


def members_text(group: Sequence[pd.Series], part: Callable[[pd.Series], str],
                 repeated: bool | None = None) -> str:
    """Each row of a group (``part``), then why they are named together."""
    text = "; ".join(part(r) for r in group)
    return text + (f" ({tie_phrase(group, repeated)})" if len(group) > 1 else "")


def indistinct(best: Sequence[pd.Series], worst: Sequence[pd.Series], rows: pd.DataFrame
               ) -> list[pd.Series] | None:
    """Every row, by server name, when the best group and the worst share a server (the
    extremes cannot be told apart); None when they do not."""
    if not {str(r["server"]) for r in best} & {str(r["server"]) for r in worst}:
        return None
    return sorted((r for _, r in rows.iterrows()), key=lambda r: str(r["server"]))


def ends_winners(best: Sequence[pd.Series], every: Sequence[pd.Series] | None
                 ) -> tuple[str, ...]:
    """The winners (``GuidanceItem.winners``) of a sentence that names both ends of a ranking
    (the most and the least efficient, memory, tail latency): the best end's servers; none when
    the two ends cannot be told apart (``every``, from ``indistinct``).

    The best end, as for best WSGI vs best ASGI, where the losing side's tied group may differ
    from run to run: which servers are named with the worst is a gap near the tie margin too.
    In eight io_bound runs of the reference plan, the least efficient were gunicorn-sync alone
    in two and gunicorn-gthread with it in six (once uWSGI too): servers at 5-11 % of a CPU,
    their requests per CPU-second within about a fifth of each other. The most efficient were
    the same three servers in all eight."""
    return () if every is not None else tuple(sorted(str(r["server"]) for r in best))


def trial_figures(run: RunData, row: pd.Series, column: str) -> list[float]:
    """A summary row's measured repeats' ``column`` from trials.csv."""
    trials = run.trials.set_index("trial_id")
    rows = trials.loc[[t for t in row["trial_ids"] if t in trials.index]]
    return [float(v) for v in rows[rows["status"] == "ok"][column] if pd.notna(v)]


# -- Little's law ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ServiceFloor:
    """D: the least time one request takes in this run (module docstring), and its source."""

    seconds: float
    source: str
    trial_ids: tuple[str, ...] = ()

    def ceiling_rps(self, clients: float) -> float:
        return clients / self.seconds


def service_floor(run: RunData, summary: pd.DataFrame) -> ServiceFloor | None:
    """The scenario's declared wait, else the smallest p50 of a valid closed-loop level."""
    endpoint = str((run.meta.get("scenario") or {}).get("endpoint") or "")
    if not endpoint and not run.trials.empty:
        endpoint = str(run.trials["endpoint"].iloc[0])
    match = _DECLARED_WAIT_RE.search(endpoint)
    if match and float(match.group(1)) > 0:
        return ServiceFloor(seconds=float(match.group(1)) / 1000.0,
                            source=f"the scenario's declared wait, ms={match.group(1)} in "
                                   f"{endpoint}")
    closed = summary[(summary["load_model"] == "closed") & summary["valid"]
                     & (summary["p50_ms"] > 0)] if not summary.empty else summary
    if closed.empty:
        return None
    row = _best(closed, "p50_ms", lowest=True)
    return ServiceFloor(
        seconds=float(row["p50_ms"]) / 1000.0, trial_ids=_ids(row),
        source=(f"the smallest p50 of any valid closed-loop level, {fmt_ms(row['p50_ms'])} ms "
                f"({row['server']} at {level_phrase('closed', row['level'])})"))


def at_ceiling(row: pd.Series, floor: ServiceFloor | None) -> bool:
    """Whether a closed-loop level reached CEILING_FRACTION of N / D."""
    if floor is None or row["load_model"] != "closed" or math.isnan(row["achieved_rps"]):
        return False
    return bool(row["achieved_rps"] >= CEILING_FRACTION * floor.ceiling_rps(row["level"]))


def ceiling_phrase(level: float, floor: ServiceFloor) -> str:
    return (f"{level:g} clients / {fmt_ms(1000 * floor.seconds)} ms = "
            f"{fmt_rps(floor.ceiling_rps(level))} req/s")


def level_phrase(load_model: str, level: float) -> str:
    if load_model == "closed":
        return f"{level:g} concurrent clients"
    if load_model == "broadcast":
        return f"{level:g} subscribers (broadcast)"
    if load_model == "idle":
        return f"{level:g} idle connections"
    return f"{level:g} req/s offered (open loop)"


def kind_label(meta: Mapping[str, Any]) -> str:
    scenario = meta.get("scenario") or {}
    kind = str(scenario.get("kind") or "")
    return KIND_LABELS.get(kind, str(scenario.get("name") or kind or "Scenario"))


def cpu_phrase(cpus_text: str) -> str:
    try:
        count = len(parse_cpus(cpus_text)) if cpus_text else 0
    except UsageError:
        return f"CPUs {cpus_text}"
    if count == 0:
        return "same CPU set"
    return "same single CPU" if count == 1 else f"same {count} CPUs"


def _row_label(row: pd.Series) -> str:
    return f"{row['server']} ({str(row['gateway']).upper()})"


def _ids(*rows: pd.Series) -> tuple[str, ...]:
    ids: list[str] = []
    for row in rows:
        ids.extend(str(t) for t in row["trial_ids"])
    return tuple(dict.fromkeys(ids))


def _best(rows: pd.DataFrame, column: str = "achieved_rps", *, lowest: bool = False) -> pd.Series:
    # Ties go to the first server by name, so the same data always gives the same sentence.
    ordered = rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")
    return ordered.iloc[0]


def _ranked(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["valid"] & (summary["achieved_rps"] > 0)]


def servers_per_level(rows: pd.DataFrame) -> dict[float, int]:
    counts = rows.groupby("level")["server"].nunique()
    return {float(level): int(n) for level, n in zip(counts.index.tolist(), counts.tolist(),
                                                      strict=True)}


def pick_level(rows: pd.DataFrame) -> tuple[str, float] | None:
    """The level with the most servers in ``rows`` (ties: the highest load), closed loop first."""
    for load_model in ("closed", "open"):
        counts = servers_per_level(rows[rows["load_model"] == load_model])
        if counts:
            return load_model, max(counts, key=lambda lv: (counts[lv], lv))
    return None


def _rps_values(run: RunData, row: pd.Series) -> list[float]:
    """The measured repeats' throughput of a summary row, from trials.csv."""
    return trial_figures(run, row, "achieved_rps")


def _best_throughput(run: RunData, ranked: pd.DataFrame, kind: str,
                     floor: ServiceFloor | None) -> list[GuidanceItem]:
    if ranked.empty:
        return []
    closed = ranked[ranked["load_model"] == "closed"]
    group = leaders(_peaks(closed if not closed.empty else ranked), "achieved_rps",
                    lambda r: _rps_values(run, r))
    row = max(group, key=lambda r: float(r["achieved_rps"]))
    values: dict[str, float] = {"rps": row["achieved_rps"], "p99_ms": row["p99_ms"],
                                "servers": float(len(group))}
    if len(group) > 1:
        members = "; ".join(
            f"{_row_label(r)} {fmt_rps(r['achieved_rps'])} req/s at "
            f"{level_phrase(r['load_model'], r['level'])}, p99 {fmt_ms(r['p99_ms'])} ms"
            for r in group)
        text = (f"{kind}: the highest valid throughput, {len(group)} servers that cannot be "
                f"told apart ({tie_phrase(group)}): {members}")
        capped = [r for r in group if floor is not None and at_ceiling(r, floor)]
        if capped and floor is not None:
            text += (f"; {group_label(capped)} sat at the load's own ceiling (Little's law, "
                     f"{ceiling_phrase(capped[0]['level'], floor)}): a higher concurrency may "
                     f"give more")
        return [GuidanceItem(topic="best", text=text + ".", run_id=run.run_id,
                             trial_ids=_ids(*group), values=values)]
    text = (f"{kind}: the highest valid throughput was {_row_label(row)}, "
            f"{fmt_rps(row['achieved_rps'])} req/s at "
            f"{level_phrase(row['load_model'], row['level'])}")
    spread = mean_ci(_rps_values(run, row))
    if spread is not None:
        text += f" ({spread.text()})"
        values.update(ci_low=spread.low, ci_high=spread.high)
    text += f", p99 {fmt_ms(row['p99_ms'])} ms"
    if not math.isnan(row["server_cpu_pct"]):
        text += f", server CPU {fmt_pct(row['server_cpu_pct'])} of one core"
        values["cpu_pct"] = row["server_cpu_pct"]
    if floor is not None and at_ceiling(row, floor):
        text += (f"; that is the load's own ceiling (Little's law: "
                 f"{ceiling_phrase(row['level'], floor)}): a higher concurrency may give more")
        values["ceiling_rps"] = floor.ceiling_rps(row["level"])
    return [GuidanceItem(topic="best", text=text + ".", run_id=run.run_id, trial_ids=_ids(row),
                         values=values)]


def _versus(run: RunData, kind: str, what: str, topic: str, level: float, a: pd.Series,
            b: pd.Series, floor: ServiceFloor | None = None,
            groups: Sequence[Sequence[pd.Series]] = ()) -> GuidanceItem:
    """One closed-loop comparison of two servers at one level, with its numbers.

    A winner is named only when the difference holds: significant over repeats, above the
    single-run noise without them, and not two servers both at the load's own ceiling.
    ``groups``: the servers tied with ``a`` and with ``b`` (``leaders``): named beside it, and
    they are the winners (``GuidanceItem.winners``) when its side wins. The figures and the
    test are ``a``'s and ``b``'s own."""
    win, lose = (a, b) if a["achieved_rps"] >= b["achieved_rps"] else (b, a)
    tied_with = {str(r["server"]): g for g in groups if len(g) > 1 for r in g}

    def label(row: pd.Series) -> str:
        group = tied_with.get(str(row["server"]))
        if group is None:
            return _row_label(row)
        others = group_label([r for r in group if str(r["server"]) != str(row["server"])])
        return f"{_row_label(row)} (tied with {others}: {tie_phrase(group)})"

    ratio = win["achieved_rps"] / lose["achieved_rps"]
    cpus = (cpu_phrase(str(win["server_cpus"])) if win["server_cpus"] == lose["server_cpus"]
            else f"CPUs {win['server_cpus']} vs {lose['server_cpus']}")
    values: dict[str, float] = {
        "level": level, "rps_winner": win["achieved_rps"], "rps_loser": lose["achieved_rps"],
        "ratio": ratio, "p99_winner_ms": win["p99_ms"], "p99_loser_ms": lose["p99_ms"]}
    head = f"{kind}, {level_phrase('closed', level)}, {what}: "
    rps_win, rps_lose = _rps_values(run, win), _rps_values(run, lose)
    test = compare_repeats(rps_win, rps_lose)
    numbers = f"({fmt_rps(win['achieved_rps'])} vs {fmt_rps(lose['achieved_rps'])} req/s)"
    latency = f"p99 of {fmt_ms(win['p99_ms'])} ms vs {fmt_ms(lose['p99_ms'])} ms"
    both_at_ceiling = at_ceiling(win, floor) and at_ceiling(lose, floor)
    if both_at_ceiling and floor is not None:
        values.update(ranked=0.0, ceiling_rps=floor.ceiling_rps(level))
        text = (f"{head}{label(win)} and {label(lose)} both sat at the load's own "
                f"ceiling {numbers}: Little's law, {ceiling_phrase(level, floor)} "
                f"(D: {floor.source}); the load, not the server, set their throughput, so they "
                f"are not ranked here: a higher concurrency is needed to separate them")
    elif test is not None and not test.significant:
        values.update(ranked=0.0, p_value=test.p_value)
        text = (f"{head}no significant difference between {label(win)} and "
                f"{label(lose)} {numbers}, {fmt_ratio(ratio)}, at a {latency}")
    elif test is None and ratio < 1.0 + SINGLE_RUN_NOISE_FRACTION:
        values.update(ranked=0.0)
        same = "about the same throughput" if ratio < SAME_THROUGHPUT_RATIO_MAX else \
            f"throughputs {fmt_ratio(ratio)} apart"
        text = (f"{head}{label(win)} and {label(lose)} served {same} {numbers} at a "
                f"{latency}: measured once, a difference under "
                f"{SINGLE_RUN_NOISE_FRACTION:.0%} is within run-to-run noise, not a ranking")
    else:
        values.update(ranked=1.0)
        text = (f"{head}{label(win)} served {fmt_ratio(ratio)} the throughput of "
                f"{label(lose)} {numbers} at a {latency}, on the {cpus}")
        if floor is not None and at_ceiling(win, floor):
            values["ceiling_rps"] = floor.ceiling_rps(level)
            text += (f"; {label(win)} sat at the load's own ceiling (Little's law, "
                     f"{ceiling_phrase(level, floor)}), so the ratio is a lower bound")
    if values["ranked"] == 0.0:
        text += f", on the {cpus}"
    spreads = [mean_ci(rps_win), mean_ci(rps_lose)]
    if spreads[0] is not None and spreads[1] is not None:
        cis = [f"{row['server']} {fmt_rps(ci.low)}–{fmt_rps(ci.high)}"
               for row, ci in ((win, spreads[0]), (lose, spreads[1]))]
        if cis:
            text += (f"; {CONFIDENCE_LEVEL:.0%} CIs of the mean: " + ", ".join(cis)
                     + " req/s").replace("95%", "95 %")
        values.update(ci_low_winner=spreads[0].low, ci_high_winner=spreads[0].high,
                      ci_low_loser=spreads[1].low, ci_high_loser=spreads[1].high)
    if test is not None:
        text += f"; {test.text()}"
        values["p_value"] = test.p_value
    winners = tuple(sorted(str(r["server"]) for r in tied_with.get(str(win["server"]), [win])))
    return GuidanceItem(topic=topic, text=text + ".", run_id=run.run_id,
                        trial_ids=_ids(win, lose), values=values,
                        winners=winners if values["ranked"] == 1.0 else ())


def _wsgi_vs_asgi(run: RunData, ranked: pd.DataFrame, kind: str,
                  floor: ServiceFloor | None) -> list[GuidanceItem]:
    # Closed loop only: in open loop every server that keeps up serves the offered rate, so
    # throughput says nothing there (the tail item compares open-loop latency instead).
    part = ranked[ranked["load_model"] == "closed"]
    gateways = part["gateway"].str.lower()
    common = sorted(set(part[gateways == "wsgi"]["level"]) & set(part[gateways == "asgi"]["level"]))
    if not common:
        return []
    level = common[-1]  # the most demanding level both gateways held without failing
    at = part[part["level"] == level]
    at_gw = gateways[at.index]
    groups = [leaders(at[at_gw == gw], "achieved_rps", lambda r: _rps_values(run, r))
              for gw in ("wsgi", "asgi")]
    # Each gateway's best against the other's, the servers tied with it named beside it. Not
    # the weakest of the leading group against the other's best (so that the verdict held for
    # every one named): that pair's p moved with the weakest member's own spread, and the
    # published io_bound pair read "no significant difference" (p = 0.153: gunicorn-uvicorn's
    # 3,930-6,250 req/s against granian-wsgi's 3,076-4,193) and "2.1x" (p = 0.003), with the
    # best 1.8x and 2.2x apart (p = 0.005 and 0.002). Nor the groups' repeats pooled: pooled,
    # cpu_bound's four to six servers a side called 1.16x significant (p = 0.026) in one run
    # and 1.06x not in the other.
    wsgi, asgi = (max(g, key=lambda r: float(r["achieved_rps"])) for g in groups)
    items = [_versus(run, kind, "best WSGI vs best ASGI", "wsgi_vs_asgi", level, wsgi, asgi,
                     floor, groups)]
    # The choice most teams face: the default sync WSGI deployment or the default ASGI one.
    sync_name, async_name = CLASSIC_PAIR
    # (unless the comparison above was that pair alone: a tied group names more servers)
    if {str(r["server"]) for g in groups for r in g} != set(CLASSIC_PAIR):
        sync_rows = part[part["server"] == sync_name]
        async_rows = part[part["server"] == async_name]
        both = sorted(set(sync_rows["level"]) & set(async_rows["level"]))
        if both:
            level = both[-1]
            items.append(_versus(
                run, kind, "classic sync WSGI vs an event loop", "classic", level,
                sync_rows[sync_rows["level"] == level].iloc[0],
                async_rows[async_rows["level"] == level].iloc[0], floor))
    return items


def _ceiling(run: RunData, ranked: pd.DataFrame, floor: ServiceFloor | None
             ) -> list[GuidanceItem]:
    """Closed-loop levels where two or more servers sat at the load's own ceiling."""
    if floor is None:
        return []
    closed = ranked[ranked["load_model"] == "closed"]
    items = []
    for level in sorted(float(v) for v in closed["level"].unique()):
        at = closed[closed["level"] == level]
        capped = [row for _, row in at.sort_values(["achieved_rps", "server"],
                                                    ascending=[False, True]).iterrows()
                  if at_ceiling(row, floor)]
        if len(capped) < 2:
            continue
        names = ", ".join(f"{_row_label(r)} {fmt_rps(r['achieved_rps'])}" for r in capped)
        text = (f"Little's law: at {level_phrase('closed', level)} no server can pass "
                f"{ceiling_phrase(level, floor)} (D: {floor.source}); {names} req/s reached "
                f"at least {100 * CEILING_FRACTION:.0f} % of it, so the load, not the server, "
                f"set their throughput: they are not ranked at this level, a higher "
                f"concurrency is needed to separate them.")
        items.append(GuidanceItem(
            topic="ceiling", caveat=True, run_id=run.run_id, text=text,
            trial_ids=tuple(dict.fromkeys(_ids(*capped) + floor.trial_ids)),
            values={"level": level, "ceiling_rps": floor.ceiling_rps(level),
                    "floor_s": floor.seconds, "servers": float(len(capped))}))
    return items


def tail_percentile(run: RunData, rows: pd.DataFrame) -> tuple[float, str, int]:
    """The percentile the tail of ``rows`` is compared at (TAIL_PERCENTILES, TAIL_BEYOND_MIN),
    its summary column, and the fewest requests of any of their trials: in open loop those
    the schedule offered (rate x duration: the plan's count, which a request answered late
    does not change), in closed loop those answered."""
    def sizes(row: pd.Series) -> list[float]:
        if row["load_model"] == "open":
            return [rate * seconds for rate, seconds in
                    zip(trial_figures(run, row, "offered_rps"),
                        trial_figures(run, row, "duration_s"), strict=False)]
        return trial_figures(run, row, "requests")

    fewest = min((round(n) for _, row in rows.iterrows() for n in sizes(row)
                  if not math.isnan(n)), default=0)
    for pct, column in TAIL_PERCENTILES:
        if fewest * (1.0 - pct / 100.0) >= TAIL_BEYOND_MIN:
            return pct, column, fewest
    pct, column = TAIL_PERCENTILES[-1]
    return pct, column, fewest


def _tail(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    # Open loop first: its latency is timed from the intended send, so a stall cannot hide.
    for load_model in ("open", "closed"):
        part = ranked[(ranked["load_model"] == load_model) & ranked["p99_ms"].notna()]
        if part["server"].nunique() < 2:
            continue
        counts = servers_per_level(part)
        level = max((lv for lv, n in counts.items() if n >= 2), key=lambda lv: (counts[lv], lv),
                    default=None)
        if level is None:
            continue
        at = part[part["level"] == level]
        pct, column, fewest = tail_percentile(run, at)
        name = f"p{pct:g}"

        def tails(row: pd.Series, _column: str = column) -> list[float]:
            return trial_figures(run, row, _column)

        lows = leaders(at, column, tails, lowest=True)
        highs = leaders(at, column, tails)
        low = min(lows, key=lambda r: float(r[column]))
        high = max(highs, key=lambda r: float(r[column]))
        ratio = high[column] / low[column] if low[column] > 0 else math.nan
        where = (f"{level:g} req/s offered (open loop, latency timed from the intended send)"
                 if load_model == "open" else level_phrase(load_model, float(level)))
        if column != TAIL_PERCENTILES[0][1]:
            top = TAIL_PERCENTILES[0][0]
            where += (f"; by {name}: a trial had only {fewest:,} requests, and its p{top:g} "
                      f"would rest on {fewest * (1 - top / 100):.1f} of them")

        def members(group: list[pd.Series], _column: str = column) -> str:
            return members_text(group, lambda r: f"{_row_label(r)} {fmt_ms(r[_column])} ms "
                                                 f"(p50 {fmt_ms(r['p50_ms'])} ms)")

        every = indistinct(lows, highs, at)
        if every is not None:
            text = (f"Tail latency at {where}: the lowest and the highest {name} cannot be "
                    f"told apart: {members(every)}.")
        else:
            spread = (f"about the same (within {SAME_THROUGHPUT_RATIO_MAX - 1:.0%})"
                      if ratio < SAME_THROUGHPUT_RATIO_MAX else f"{fmt_ratio(ratio)} higher")
            text = (f"Tail latency at {where}: the lowest {name}: {members(lows)}; the "
                    f"highest: {members(highs)}, {spread}.")
        return [GuidanceItem(topic="tail", text=text, run_id=run.run_id,
                             trial_ids=_ids(*lows, *highs), winners=ends_winners(lows, every),
                             values={"ranked": float(every is None),
                                     "level": float(level), "percentile": pct,
                                     f"{name}_low_ms": low[column], "p50_low_ms": low["p50_ms"],
                                     f"{name}_high_ms": high[column],
                                     "p50_high_ms": high["p50_ms"], "ratio": ratio})]
    return []


def _open_capacity(run: RunData, ranked: pd.DataFrame, summary: pd.DataFrame
                   ) -> list[GuidanceItem]:
    """Open loop: the highest offered rate each gateway's servers held with a valid trial."""
    part = ranked[ranked["load_model"] == "open"]
    tried = summary[summary["load_model"] == "open"]
    if part.empty or tried["level"].nunique() < 2:
        return []
    phrases: list[str] = []
    rows: list[pd.Series] = []
    values: dict[str, float] = {}
    for gateway in ("wsgi", "asgi"):
        mine = part[part["gateway"].str.lower() == gateway]
        if mine.empty:
            continue
        top = mine[mine["level"] == mine["level"].max()]
        row = _best(top, "p99_ms", lowest=True)
        rows.append(row)
        values[f"rate_{gateway}"] = float(row["level"])
        values[f"p99_{gateway}_ms"] = float(row["p99_ms"])
        phrases.append(f"{gateway.upper()} up to {row['level']:g} req/s ({row['server']}, "
                       f"p99 {fmt_ms(row['p99_ms'])} ms)")
    if not rows:
        return []
    text = (f"Open loop, offered rates up to {tried['level'].max():g} req/s: the highest rate "
            f"served with a valid trial was " + "; ".join(phrases) + ".")
    return [GuidanceItem(topic="open_capacity", text=text, run_id=run.run_id,
                         trial_ids=_ids(*rows), values=values)]


def _peaks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Each server's highest-throughput valid level (closed loop when it has one)."""
    rows = []
    for _server, part in ranked.groupby("server"):
        closed = part[part["load_model"] == "closed"]
        rows.append(_best(closed if not closed.empty else part))
    return pd.DataFrame(rows)


def _efficiency(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    with_cpu = ranked[ranked["server_cpu_pct"].notna() & (ranked["server_cpu_pct"] > 0)]
    peaks = _peaks(with_cpu) if not with_cpu.empty else with_cpu
    if len(peaks) < 2:
        return []

    def per_cpu_s(row: pd.Series) -> list[float]:
        rps, cpu = trial_figures(run, row, "achieved_rps"), trial_figures(run, row,
                                                                             "server_cpu_pct")
        return [r / (c / 100.0) for r, c in zip(rps, cpu, strict=False) if c > 0]

    his = leaders(peaks, "rps_per_cpu_s", per_cpu_s)
    los = leaders(peaks, "rps_per_cpu_s", per_cpu_s, lowest=True)
    hi = max(his, key=lambda r: float(r["rps_per_cpu_s"]))
    lo = min(los, key=lambda r: float(r["rps_per_cpu_s"]))

    def part(row: pd.Series) -> str:
        return (f"{_row_label(row)} {fmt_rps(row['rps_per_cpu_s'])} requests per CPU-second "
                f"({fmt_rps(row['achieved_rps'])} req/s at {fmt_pct(row['server_cpu_pct'])} CPU, "
                f"{level_phrase(row['load_model'], row['level'])})")

    every = indistinct(his, los, peaks)
    if every is not None:
        text = (f"CPU efficiency at each server's peak throughput: the most and the least "
                f"efficient cannot be told apart: {members_text(every, part)}.")
    else:
        text = (f"CPU efficiency at each server's peak throughput: {members_text(his, part)}; "
                f"least efficient: {members_text(los, part)}.")
    return [GuidanceItem(topic="efficiency", text=text, run_id=run.run_id,
                         trial_ids=_ids(*his, *los), winners=ends_winners(his, every),
                         values={"ranked": float(every is None),
                                 "rps_per_cpu_s_best": hi["rps_per_cpu_s"],
                                 "rps_best": hi["achieved_rps"], "cpu_best": hi["server_cpu_pct"],
                                 "rps_per_cpu_s_worst": lo["rps_per_cpu_s"],
                                 "rps_worst": lo["achieved_rps"],
                                 "cpu_worst": lo["server_cpu_pct"]})]


def _memory(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    trials = run.trials
    valid_ids = {t for ids in ranked["trial_ids"] for t in ids}
    rows = trials[trials["trial_id"].isin(valid_ids)]
    # PSS splits the pages forked workers share between them; RSS counts them once per worker
    # and so overstates pre-fork servers. PSS when every row has it, else RSS.
    column, label = ("server_pss_mb", "PSS") if rows["server_pss_mb"].notna().all() \
        else ("server_rss_mb", "RSS")
    rows = rows[rows[column].notna()]
    if rows["server"].nunique() < 2:
        return []
    # The peak of each server: the row where its memory was highest; its repeats' figures:
    # each repeat's peak (a repeat restarts the server).
    peak_idx = rows.groupby("server", observed=True)[column].idxmax()
    peaks = rows.loc[peak_idx.tolist()].sort_values([column, "trial_id"])

    def per_repeat(row: pd.Series) -> list[float]:
        mine = rows[rows["server"] == row["server"]]
        return [float(v) for v in mine.groupby("repeat")[column].max()]

    repeated = rows["repeat"].nunique() >= MIN_REPEATS_FOR_STATS
    lows = leaders(peaks, column, per_repeat, lowest=True)
    highs = leaders(peaks, column, per_repeat)
    low = min(lows, key=lambda r: float(r[column]))
    high = max(highs, key=lambda r: float(r[column]))
    ratio = high[column] / low[column]

    def members(group: list[pd.Series]) -> str:
        return members_text(group, lambda r: f"{_row_label(r)} {fmt_mb(r[column])} MB "
                                             f"({r['workers']} worker(s))", repeated)

    every = indistinct(lows, highs, peaks)
    if every is not None:
        text = (f"Memory ({label} at its peak): the least and the most cannot be told apart: "
                f"{members(every)}.")
    else:
        text = (f"Memory ({label} at its peak): the least: {members(lows)}; the most: "
                f"{members(highs)}, {fmt_ratio(ratio)} the least.")
    return [GuidanceItem(topic="memory", text=text, run_id=run.run_id,
                         trial_ids=tuple(dict.fromkeys(str(r["trial_id"]) for r in lows + highs)),
                         winners=ends_winners(lows, every),
                         values={"ranked": float(every is None),
                                 "pss": float(column == "server_pss_mb"), "low_mb": low[column],
                                 "high_mb": high[column], "ratio": ratio})]


def _overloaded(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    """Levels a server did not keep up with: a result about the server (one item per server)."""
    part = summary[summary["outcome"] == "overloaded"]
    items = []
    for _server, rows in part.groupby("server", sort=True):
        first = rows.iloc[0]
        levels = "; ".join(f"{level_phrase(r['load_model'], r['level'])} "
                           f"({overload_reasons(run, r)})" for _, r in rows.iterrows())
        text = (f"Overloaded: {_row_label(first)} did not keep up at {levels}. A result about "
                f"the server, shown but not ranked.")
        items.append(GuidanceItem(topic="overloaded", text=text, run_id=run.run_id,
                                  trial_ids=_ids(*(r for _, r in rows.iterrows())),
                                  values={"levels": float(len(rows))}))
    return items


def overload_reasons(run: RunData, row: pd.Series) -> str:
    """Why a summary row's repeats were overloaded: each kind of reason once (kinds differ in
    words, not figures), in how many of the repeats, with the figures of the first.

    "repeat 1: p99 253 ms > 200 ms; repeat 2: p99 405 ms > 200 ms" and, in a second run, three
    such repeats say one thing: the server missed the objective at that rate."""
    trials = run.trials.set_index("trial_id")
    mine = trials.loc[[t for t in row["trial_ids"] if t in trials.index]]
    over = mine[mine["outcome"].astype("string") == "overloaded"]
    kinds: dict[str, list[tuple[int, str]]] = {}
    for repeat, why in zip(over["repeat"], over["invalid_reason"].astype(str), strict=True):
        kinds.setdefault(FIGURE_RE.sub("#", why), []).append((int(repeat), why))
    if not kinds:
        return str(row["invalid_reason"]) or "overloaded"
    if len(mine) < 2:
        return "; ".join(whys[0][1] for whys in kinds.values())
    return "; ".join(f"in {len(whys)} of {len(mine)} repeats; repeat {whys[0][0]}: {whys[0][1]}"
                     for whys in kinds.values())


def _invalid(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    items = []
    for _, row in summary[summary["outcome"] == "invalid"].iterrows():
        text = (f"Not ranked: {_row_label(row)} at {level_phrase(row['load_model'], row['level'])}"
                f": invalid, the harness cannot vouch for it: "
                f"{row['invalid_reason'] or 'no reason recorded'}.")
        items.append(GuidanceItem(topic="invalid", text=text, run_id=run.run_id,
                                  trial_ids=_ids(row), caveat=True))
    return items


def _busy(run: RunData) -> list[GuidanceItem]:
    """Trials taken while the machine was busy (harness.noise): other processes, steal, or
    the server's CPU running slower than its recent pace."""
    busy = busy_trials(run.trials)
    if busy.empty:
        return []
    listed = []
    for _, row in busy.head(MAX_BUSY_LISTED).iterrows():
        others, steal, slow = row["others_cpu_pct"], row["steal_pct"], row["cpu_slowdown"]
        numbers = ", ".join(part for part in (
            f"others {others:.0f} %" if pd.notna(others) else "",
            f"steal {steal:.0f} %" if pd.notna(steal) else "",
            f"CPU {slow:.1f}x slower" if pd.notna(slow) and slow > SLOW_CPU_FACTOR else "")
            if part)
        listed.append(f"{row['trial_id']}" + (f" ({numbers})" if numbers else ""))
    more = len(busy) - len(listed)
    # the CPU's pace only where it was probed (runs before harness.cpuspeed were not)
    slow = (f", or the server's CPU ran more than {SLOW_CPU_FACTOR:g}x slower than its recent "
            f"pace (a host that slows a guest's CPU shows no steal)"
            if run.trials["cpu_slowdown"].notna().any() else "")
    text = (f"Busy machine during {len(busy)} of {len(run.trials)} trials: processes outside "
            f"the harness used more than {BUSY_OTHERS_PCT:.0f} % of a CPU"
            + (", steal was above" if slow else ", or steal was above")
            + f" {BUSY_STEAL_PCT:.0f} %{slow}: " + "; ".join(listed)
            + (f"; and {more} more" if more > 0 else "")
            + ". Their throughput may be low and their latency high: measure them again on a "
              "quiet machine before relying on them.")
    return [GuidanceItem(topic="busy", text=text, run_id=run.run_id, caveat=True,
                         trial_ids=tuple(str(t) for t in busy["trial_id"]),
                         values={"trials": float(len(busy)),
                                 "max_others_pct": float(busy["others_cpu_pct"].max())})]


def worker_counts(text: object) -> list[int]:
    """``"16 0 0"`` (trials.csv's connections_per_worker) -> [16, 0, 0]; [] when not counted."""
    if not isinstance(text, str):
        return []
    return [int(part) for part in text.split() if part.isdigit()]


def uneven(counts: Sequence[int]) -> bool:
    """Whether one worker held far more than its share of the connections (UNEVEN_SHARE_MIN)."""
    workers, total = len(counts), sum(counts)
    return (workers >= 2 and total >= UNEVEN_MIN_PER_WORKER * workers
            and max(counts) >= UNEVEN_SHARE_MIN * total / workers)


def _uneven(run: RunData) -> list[GuidanceItem]:
    """Levels where one worker of a multi-worker server held most of the connections."""
    trials = run.trials
    if trials.empty or "connections_per_worker" not in trials.columns:
        return []
    measured = trials[(trials["status"].astype("string") == "ok")
                      & (trials["phase"].astype("string") == "sweep")]
    parts: list[str] = []
    ids: list[str] = []
    worst_share = 0.0
    for _server, rows in measured.groupby("server", sort=True, observed=True):
        levels: list[str] = []
        for (load_model, _level), at in rows.groupby(["load_model", "level"], sort=True,
                                                     observed=True):
            counted = [(str(r["trial_id"]), worker_counts(r["connections_per_worker"]))
                       for _, r in at.iterrows()]
            counted = [(t, c) for t, c in counted if c]
            skewed = [(t, c) for t, c in counted if uneven(c)]
            if not skewed:
                continue
            _, counts = max(skewed, key=lambda tc: max(tc[1]) / sum(tc[1]))
            worst_share = max(worst_share, max(counts) / sum(counts))
            ids += [t for t, _ in skewed]
            levels.append(f"at {level_phrase(str(load_model), float(at['level'].iloc[0]))} "
                          f"{' '.join(map(str, counts))} ({len(skewed)} of {len(counted)} "
                          f"{'repeat' if len(counted) == 1 else 'repeats'})")
        if levels:
            first = rows.iloc[0]
            parts.append(f"{_row_label(first)}: " + "; ".join(levels))
    if not parts:
        return []
    text = ("Connections unevenly spread over a server's workers (counted mid-trial, per "
            "worker, busiest first): " + ". ".join(parts) + ". Each worker serves only the "
            "connections it accepted, so the others idle meanwhile: sync or threaded workers, "
            "which serve a few requests at a time each, then fall short of their worker limit "
            "at that level (an event loop's worker can carry them all); a client with more "
            "connections spreads them.")
    return [GuidanceItem(topic="uneven", text=text, run_id=run.run_id, caveat=True,
                         trial_ids=tuple(dict.fromkeys(ids)),
                         values={"worst_share": worst_share})]


def _noise(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    repeated = ranked[ranked["repeats"] >= 2]
    if repeated.empty:
        if not ranked.empty:
            return [GuidanceItem(
                topic="single_repeat", caveat=True, run_id=run.run_id,
                text=("Each level was measured once, so the spread is unknown. On a shared "
                      "machine a server's throughput can move by "
                      f"{SINGLE_RUN_NOISE_FRACTION:.0%} or more between runs: treat smaller "
                      "differences as noise, and measure the spread with --repeat 3 before "
                      "relying on a close ranking."))]
        return []
    items: list[GuidanceItem] = []
    trials = run.trials.set_index("trial_id")
    for _, row in repeated[repeated["rps_cv"] > NOISY_CV_MAX].iterrows():
        text = (f"Noisy: {_row_label(row)} at {level_phrase(row['load_model'], row['level'])}: "
                f"throughput varied by {fmt_pct(100 * row['rps_cv'])} (coefficient of variation) "
                f"across {row['repeats']} repeats, above the {NOISY_CV_MAX:.0%} threshold")
        values = {"cv_pct": 100 * row["rps_cv"], "rps": row["achieved_rps"]}
        if row["repeats"] >= MIN_REPEATS_FOR_STATS:
            rps = trials.loc[list(row["trial_ids"]), "achieved_rps"].astype("float64")
            low, high = stats.t.interval(CONFIDENCE_LEVEL, len(rps) - 1, loc=rps.mean(),
                                         scale=stats.sem(rps))
            text += (f"; {CONFIDENCE_LEVEL:.0%} confidence interval of the mean "
                     f"{fmt_rps(float(low))}–{fmt_rps(float(high))} req/s")
            values.update(ci_low=float(low), ci_high=float(high))
        notes = trials.loc[list(row["trial_ids"]), "notes"].astype("string").fillna("")
        stalled = int(notes.str.contains(STALL_NOTE, regex=False).sum())
        if stalled:
            # the spread is then the server's stalls, not a slow machine: say so
            text += (f"; {stalled} of the {row['repeats']} repeats stalled (whole seconds "
                     "with next to no answers: their notes say which)")
            values["stalled"] = stalled
        items.append(GuidanceItem(topic="noisy", text=text + ".", run_id=run.run_id,
                                  trial_ids=_ids(row), values=values, caveat=True))
    if not items:
        worst = _best(repeated, "rps_cv")
        items.append(GuidanceItem(
            topic="stable", run_id=run.run_id, trial_ids=_ids(worst),
            values={"cv_pct": 100 * worst["rps_cv"]},
            text=(f"Repeats agreed: every ranked level's throughput varied by at most "
                  f"{fmt_pct(100 * worst['rps_cv'])} (coefficient of variation, worst: "
                  f"{_row_label(worst)} at {level_phrase(worst['load_model'], worst['level'])}), "
                  f"under the {NOISY_CV_MAX:.0%} threshold.")))
    return items


def _targets(run: RunData) -> list[GuidanceItem]:
    items = []
    for target in run.meta.get("targets") or []:
        status = str(target.get("status") or "")
        if status in ("ok", "", "pending"):
            continue
        reason = str(target.get("reason") or "no reason recorded")
        items.append(GuidanceItem(
            topic="target", caveat=True, run_id=run.run_id,
            text=f"{target.get('server')} was not measured ({status}): {reason} [run.json]."))
    run_status = run.meta.get("status")
    if run_status not in (None, "complete"):
        items.append(GuidanceItem(
            topic="run_status", caveat=True, run_id=run.run_id,
            text=f"The run's status is '{run_status}': what came after it stopped is missing."))
    return items


def compute_guidance(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    """Findings first (capacity at the objective, best throughput, WSGI vs ASGI, tail, CPU
    efficiency, memory, overloaded levels), then the caveats (Little's-law ceilings,
    connections unevenly spread over workers, noise, a busy machine, invalid levels, targets
    not measured)."""
    # imported here: the WebSocket module builds on this one's helpers
    from harness.analysis.websocket import is_websocket, websocket_guidance

    if is_websocket(run.meta):
        return websocket_guidance(run, summary)
    from harness.analysis.capacity import capacity_guidance
    from harness.analysis.families import family_guidance, multi_app, series_run, series_view

    # Several app families: each (server, app) is a series of its own ("uvicorn · django") in
    # every item below, and the comparisons within a family follow the cross-server ones.
    family_items: list[GuidanceItem] = []
    if multi_app(summary):
        family_items = family_guidance(run, summary)
        run, summary = series_run(run), series_view(summary)
    kind = kind_label(run.meta)
    ranked = _ranked(summary)
    floor = service_floor(run, summary)
    items: list[GuidanceItem] = []
    items += capacity_guidance(run)
    items += _best_throughput(run, ranked, kind, floor)
    items += _wsgi_vs_asgi(run, ranked, kind, floor)
    items += family_items
    items += _open_capacity(run, ranked, summary)
    items += _tail(run, ranked)
    items += _efficiency(run, ranked)
    items += _memory(run, ranked)
    items += _overloaded(run, summary)
    items += _ceiling(run, ranked, floor)
    items += _uneven(run)
    items += _noise(run, ranked)
    items += _busy(run)
    items += _invalid(run, summary)
    items += _targets(run)
    if ranked.empty:
        items.insert(0, GuidanceItem(
            topic="none_valid", caveat=True, run_id=run.run_id,
            text="No valid trial in this run: nothing is ranked (see the caveats below)."))
    return items


# The helpers other guidance modules (harness.analysis.websocket) build on.
row_label = _row_label
trial_ids_of = _ids
noise_items = _noise
target_items = _targets


def guidance_table(items: Sequence[GuidanceItem]) -> pd.DataFrame:
    """The items as a frame (topic, text, trial_ids, caveat), handy in a notebook."""
    return pd.DataFrame([{"run_id": i.run_id, "topic": i.topic, "text": i.text,
                          "trial_ids": list(i.trial_ids), "caveat": i.caveat} for i in items])
