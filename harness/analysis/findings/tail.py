"""Tail latency: the lowest and the highest tail at the level most servers were measured at,
open loop first (its latency is timed from the intended send, so a stall cannot hide).
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.findings.common import (
    Context,
    ends_winners,
    indistinct,
    leaders,
    members_text,
    servers_per_level,
    trial_figures,
    trial_ids_of,
)
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import (
    SAME_THROUGHPUT_RATIO_MAX,
)
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    fmt_ms,
    fmt_ratio,
    level_phrase,
    names_text,
    row_label,
)

# The tail is compared at the highest of these percentiles that rests on at least
# TAIL_BEYOND_MIN requests beyond it in every trial compared: a p99 of 250 requests is the
# third slowest, which moves between repeats by more than servers differ (two io_bound runs
# of 3 repeats each, at 50 req/s, put different servers in the lowest-p99 group).
TAIL_PERCENTILES = ((99.0, "p99_ms"), (90.0, "p90_ms"))


TAIL_BEYOND_MIN = 10


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


def _tail(run: RunData, ranked: pd.DataFrame) -> list[Finding]:
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
            return members_text(group, lambda r: f"{row_label(r)} {fmt_ms(r[_column])} ms "
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
        short_where = (f"{level:g} req/s offered" if load_model == "open"
                       else level_phrase(load_model, float(level)))
        headline = (f"Tail latency at {short_where}: the lowest {name}, "
                    f"{names_text(sorted(str(x['server']) for x in lows), HEADLINE_NAMES_MAX)} "
                    f"({fmt_ms(low[column])} ms); the highest, "
                    f"{names_text(sorted(str(x['server']) for x in highs), HEADLINE_NAMES_MAX)} "
                    f"({fmt_ms(high[column])} ms)." if every is None else
                    f"Tail latency at {short_where}: no server told apart by {name} "
                    f"({fmt_ms(low[column])}–{fmt_ms(high[column])} ms).")
        return [Finding(topic="tail", text=text, run_id=run.run_id,
                        trial_ids=trial_ids_of(*lows, *highs),
                        winners=ends_winners(lows, every), headline=headline,
                        others=() if every is not None else
                        tuple(sorted(str(x["server"]) for x in highs)),
                        ratio=float(ratio), unit="ms",
                        figures=(float(low[column]), float(high[column])),
                        question={"where": short_where, "percentile": name,
                                  "load_model": load_model, "level": float(level)},
                        values={"ranked": float(every is None),
                                     "level": float(level), "percentile": pct,
                                     f"{name}_low_ms": low[column], "p50_low_ms": low["p50_ms"],
                                     f"{name}_high_ms": high[column],
                                     "p50_high_ms": high["p50_ms"], "ratio": ratio})]
    return []


def find(ctx: Context) -> list[Finding]:
    return _tail(ctx.run, ctx.ranked)
